// GB/T 38629 binding as a vendor SVS client meets it: `yiqian init`, two apps, held keys made by
// `yiqian signing-key create` (granted to one app, one with an access code), svs.appId set in the
// data dir's config, `yiqian serve`, then form-urlencoded POSTs to /svs/<reqType> over HTTPS for
// every request type. Signatures are checked by openssl (SM2 with the default ID, RSA PKCS#1),
// CMS round-trips through verifySignedMessage and `openssl cms -verify` (RSA); each failure's
// respValue; a revoked certificate → 0x0400000B; plain HTTP refused; garbage keeps it serving.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cli, fetchRaw, serve, tempDataDir, type Served } from '../helpers/appliance.js';
import { signRequest } from '../../appliance/src/http/yq1-scheme.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import { fromPem } from '../../appliance/src/crypto/der.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';

const data = tempDataDir();
const tmp = dirname(data);
let server: Served | undefined;
let emr: { id: string; signer: Signer };
let lis: { id: string };
const keys: Record<string, { id: string; certSerial: string }> = {};
const DATA = Buffer.from('电子处方 RX-20261123-0042: 阿莫西林 0.5 g tid', 'utf8');
const SM3_SM2 = 0x00020201;
const SHA256_RSA = 0x00010004;
const R = { CERT_ID: 0x04000001, CERT_INFO_TYPE: 0x04000002, SERVER_CONNECT: 0x04000003, SIGN_METHOD: 0x04000004, KEY_INDEX: 0x04000005, KEY_VALUE: 0x04000006, CERT: 0x04000007, CERT_DECODE: 0x04000008, REVOKED: 0x0400000b, INVALID_SIGNATURE: 0x0400000c, DATA_FORMAT: 0x0400000d };

t.teardown(async () => {
  if (server && server.proc.exitCode === null) await server.stop('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

function run(args: string[]): string {
  const r = cli(args);
  if (r.code !== 0) throw new Error(`yiqian ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

function openssl(args: string[], input?: Buffer): string {
  return execFileSync('openssl', args, { cwd: tmp, input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

t.before(async () => {
  run(['init', '--data', data, '--json']);
  const app = (name: string) => {
    const keyFile = join(tmp, `${name}.key`);
    const id = JSON.parse(run(['app', 'create', '--data', data, '--name', name, '--key-out', keyFile, '--json'])).id as string;
    return { id, signer: createSoftwareSigner(readFileSync(keyFile, 'utf8')) };
  };
  emr = app('EMR');
  lis = app('LIS');
  writeFileSync(join(tmp, 'code'), '12345678\n');
  const key = (label: string, extra: string[]) => {
    const k = JSON.parse(run(['signing-key', 'create', '--data', data, '--label', label, '--json', ...extra]));
    keys[label] = { id: k.id, certSerial: k.certSerial };
  };
  key('dept-cardiology-sign', ['--kind', 'department', '--cn', '心内科', '--ou', '心内科', '--grant', emr.id, '--access-code-file', join(tmp, 'code')]);
  key('hospital-seal-rsa', ['--kind', 'seal', '--cn', '医院公章', '--alg', 'rsa-2048', '--grant', emr.id]);
  key('lis-sign', ['--kind', 'department', '--cn', '检验科', '--grant', lis.id]);
  key('ward-sign', ['--kind', 'department', '--cn', '病房', '--grant', emr.id]);
  const configFile = join(data, 'config.json');
  const config = JSON.parse(readFileSync(configFile, 'utf8'));
  config.svs = { enabled: true, appId: emr.id, allow: ['127.0.0.0/8', '::1/128'] };
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  run(['config', 'check', '--data', data]);
  server = await serve(data);
});

interface Answer { status: number; fields: Record<string, string>; headers: Record<string, string | string[] | undefined> }

function form(fields: Record<string, string | number>): string {
  return Object.entries(fields).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`).join('&');
}

async function svs(reqType: string, fields: Record<string, string | number> | string, base = server!.httpsUrl): Promise<Answer> {
  const r = await fetchRaw(`${base}/svs/${reqType}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded; charset=UTF-8', 'SVS-Request-Version': '1.0', 'SVS-Request-Time': '20261123120000Z' },
    body: typeof fields === 'string' ? fields : form(fields),
  });
  const out: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(r.body)) out[k] = v;
  return { status: r.status, fields: out, headers: r.headers };
}

const rv = (a: Answer): number => Number(a.fields.respValue);

t.test('exportCert and parseCert', async (t) => {
  const a = await svs('exportCert', { identification: 'dept-cardiology-sign' });
  t.equal(a.status, 200);
  t.equal(a.fields.respValue, '0');
  t.equal(a.headers['svs-request-version'], '1.0', 'SVS-Request-Version echoed');
  const der = Buffer.from(a.fields.cert, 'base64');
  writeFileSync(join(tmp, 'dept.der'), der);
  t.match(openssl(['x509', '-inform', 'DER', '-in', 'dept.der', '-noout', '-subject', '-nameopt', 'utf8']), /CN\s*=\s*心内科/);
  t.equal(openssl(['x509', '-inform', 'DER', '-in', 'dept.der', '-noout', '-serial']).trim().split('=')[1].toLowerCase().replace(/^(00)+/, ''), keys['dept-cardiology-sign'].certSerial);
  t.equal(rv(await svs('exportCert', { identification: keys['dept-cardiology-sign'].certSerial })), 0, 'by certificate serial');
  t.equal(rv(await svs('exportCert', { identification: 'lis-sign' })), R.CERT_ID, 'a key of another app');
  t.equal(rv(await svs('exportCert', { identification: 'nope' })), R.CERT_ID);

  const cert = der.toString('base64');
  t.same((await svs('parseCert', { infoType: 0x02, cert })).fields, { respValue: '0', info: keys['dept-cardiology-sign'].certSerial });
  t.same((await svs('1', { infoType: 0x31, cert })).fields, { respValue: '0', info: '心内科' }, 'reqType 1 = parseCert');
  t.equal((await svs('parseCert', { infoType: 0x01, cert })).fields.info, '3');
  t.match((await svs('parseCert', { infoType: 0x05, cert })).fields.info, /^CN=.*SM2 Issuing CA,/);
  t.equal(rv(await svs('parseCert', { infoType: 0x03, cert })), R.CERT_INFO_TYPE);
  t.equal(rv(await svs('parseCert', { infoType: 0x02, cert: 'AAAA' })), R.CERT_DECODE);
});

t.test('validateCert: our certificate is good, a foreign self-signed one is not', async (t) => {
  const cert = Buffer.from((await svs('exportCert', { identification: 'dept-cardiology-sign' })).fields.cert, 'base64').toString('base64');
  t.same((await svs('validateCert', { cert, ocsp: 'FALSE' })).fields, { respValue: '0', state: '0' });
  openssl(['req', '-new', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'foreign.key', '-subj', '/CN=foreign', '-days', '2', '-out', 'foreign.pem']);
  const foreign = fromPem(readFileSync(join(tmp, 'foreign.pem'), 'utf8'))[0].der.toString('base64');
  const f = await svs('validateCert', { cert: foreign, ocsp: 'TRUE' });
  t.equal(f.status, 200);
  t.not(rv(f), 0, `untrusted → ${f.fields.respValue}`);
  t.equal(rv(f), R.CERT, 'not chaining to a trust anchor → CERT (0x04000007)');
});

t.test('signData and verifySignedData (SM2 and RSA)', async (t) => {
  const base = { signMethod: SM3_SM2, keyIndex: 'dept-cardiology-sign', keyValue: '12345678', inDataLen: DATA.length, inData: DATA.toString('base64') };
  const a = await svs('signData', base);
  t.equal(a.fields.respValue, '0', JSON.stringify(a.headers['x-yiqian-code']));
  const sig = Buffer.from(a.fields.signature, 'base64');
  const certDer = Buffer.from((await svs('exportCert', { identification: 'dept-cardiology-sign' })).fields.cert, 'base64');
  writeFileSync(join(tmp, 'data.bin'), DATA);
  writeFileSync(join(tmp, 'sm2.sig'), sig);
  writeFileSync(join(tmp, 'dept.der'), certDer);
  openssl(['x509', '-inform', 'DER', '-in', 'dept.der', '-pubkey', '-noout', '-out', 'dept.pub']);
  t.match(openssl(['dgst', '-sm3', '-verify', 'dept.pub', '-sigopt', 'distid:1234567812345678', '-signature', 'sm2.sig', 'data.bin']), /Verified OK/, 'openssl verifies the SM2 signature (default ID)');

  const code = async (over: Record<string, string | number>) => rv(await svs('signData', { ...base, ...over }));
  t.equal(await code({ keyValue: 'wrong-code' }), R.KEY_VALUE, 'wrong access code');
  t.equal(await code({ keyValue: '' }), R.KEY_VALUE, 'no access code');
  t.equal(await code({ keyIndex: 'lis-sign', keyValue: '' }), R.KEY_INDEX, 'key granted to another app');
  t.equal(await code({ keyIndex: 'no-such-key' }), R.KEY_INDEX, 'unknown key');
  t.equal(await code({ signMethod: SHA256_RSA }), R.SIGN_METHOD, 'RSA method with an SM2 key');
  t.equal(await code({ signMethod: 0x00010002 }), R.SIGN_METHOD, 'SHA-1 RSA not offered');
  t.equal(await code({ inDataLen: 3 }), R.DATA_FORMAT, 'inDataLen mismatch');

  const v = { signMethod: SM3_SM2, type: 1, cert: certDer.toString('base64'), inDataLen: DATA.length, inData: DATA.toString('base64'), signature: sig.toString('base64'), verifyLevel: 2 };
  t.equal(rv(await svs('verifySignedData', v)), 0, 'type 1, level 2');
  t.equal(rv(await svs('4', { ...v, type: 2, cert: '', certSN: keys['dept-cardiology-sign'].certSerial })), 0, 'reqType 4, type 2 (certSN)');
  t.equal(rv(await svs('verifySignedData', { ...v, inData: Buffer.from('tampered').toString('base64'), inDataLen: 8 })), R.INVALID_SIGNATURE, 'tampered data');
  t.equal(rv(await svs('verifySignedData', { ...v, type: 2, cert: '', certSN: 'abcdef0123' })), R.CERT, 'unknown certSN');

  const r = await svs('signData', { signMethod: SHA256_RSA, keyIndex: 'hospital-seal-rsa', inData: DATA.toString('base64') });
  t.equal(r.fields.respValue, '0');
  writeFileSync(join(tmp, 'rsa.sig'), Buffer.from(r.fields.signature, 'base64'));
  const rsaCert = Buffer.from((await svs('exportCert', { identification: 'hospital-seal-rsa' })).fields.cert, 'base64');
  writeFileSync(join(tmp, 'seal.der'), rsaCert);
  openssl(['x509', '-inform', 'DER', '-in', 'seal.der', '-pubkey', '-noout', '-out', 'seal.pub']);
  t.match(openssl(['dgst', '-sha256', '-verify', 'seal.pub', '-signature', 'rsa.sig', 'data.bin']), /Verified OK/, 'openssl verifies the RSA PKCS#1 v1.5 signature');
  t.equal(rv(await svs('verifySignedData', { signMethod: SHA256_RSA, type: 1, cert: rsaCert.toString('base64'), inData: DATA.toString('base64'), signature: r.fields.signature, verifyLevel: 2 })), 0);
  t.equal(rv(await svs('signData', { signMethod: SM3_SM2, keyIndex: 'hospital-seal-rsa', inData: DATA.toString('base64') })), R.SIGN_METHOD, 'SM2 method with an RSA key');
});

t.test('signMessage and verifySignedMessage', async (t) => {
  const base = { signMethod: SM3_SM2, keyIndex: 'dept-cardiology-sign', keyValue: '12345678', inDataLen: DATA.length, inData: DATA.toString('base64'), hashFlag: 'FALSE', originalText: 'TRUE', certificateChain: 'TRUE', crl: 'FALSE', authenticationAttributes: 'TRUE' };
  const attached = await svs('signMessage', base);
  t.equal(attached.fields.respValue, '0');
  const cms = Buffer.from(attached.fields.signedMessage, 'base64');
  t.match(openssl(['asn1parse', '-inform', 'DER'], cms), /1\.2\.156\.10197\.6\.1\.4\.2\.2/, 'GB/T 35275 signedData OID');
  t.equal(rv(await svs('verifySignedMessage', { signedMessage: attached.fields.signedMessage, verifyLevel: 2 })), 0, 'attached verifies');
  const tampered = Buffer.from(cms);
  const at = tampered.indexOf(DATA);
  t.ok(at > 0, 'the original is inside');
  tampered[at + 2] ^= 0x01;
  t.equal(rv(await svs('12', { signedMessage: tampered.toString('base64') })), R.INVALID_SIGNATURE, 'reqType 12, altered content');

  const detached = await svs('signMessage', { ...base, originalText: 'FALSE' });
  t.equal(detached.fields.respValue, '0');
  const vm = { signedMessage: detached.fields.signedMessage, inDataLen: DATA.length, inData: DATA.toString('base64'), hashFlag: 'FALSE', originalText: 'FALSE', certificateChain: 'TRUE', crl: 'FALSE', authenticationAttributes: 'TRUE' };
  t.equal(rv(await svs('verifySignedMessage', vm)), 0, 'detached with its original');
  t.equal(rv(await svs('verifySignedMessage', { ...vm, inData: Buffer.from('x').toString('base64'), inDataLen: 1 })), R.INVALID_SIGNATURE, 'detached, wrong original');
  t.equal(rv(await svs('verifySignedMessage', { signedMessage: Buffer.from('garbage').toString('base64') })), R.DATA_FORMAT, 'garbage CMS');
  t.equal(rv(await svs('signMessage', { ...base, hashFlag: 'TRUE' })), R.DATA_FORMAT, 'hashFlag TRUE not offered');
  t.equal(rv(await svs('signMessage', { ...base, keyValue: 'nope' })), R.KEY_VALUE);

  // RSA in the RFC 5652 form with the chain: openssl cms -verify against the appliance's roots.
  const rsa = await svs('signMessage', { ...base, signMethod: SHA256_RSA, keyIndex: 'hospital-seal-rsa', keyValue: '' });
  t.equal(rsa.fields.respValue, '0');
  writeFileSync(join(tmp, 'seal.p7'), Buffer.from(rsa.fields.signedMessage, 'base64'));
  writeFileSync(join(tmp, 'roots.pem'), run(['ca', 'export', '--data', data]));
  const out = execFileSync('openssl', ['cms', '-verify', '-inform', 'DER', '-in', 'seal.p7', '-CAfile', 'roots.pem', '-purpose', 'any'], { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
  t.same(out, DATA, 'openssl cms -verify: the attached original');
});

t.test('JSON variant', async (t) => {
  const r = await fetchRaw(`${server!.httpsUrl}/svs/SignData`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'SVS-Request-Version': 'v1', 'SVS-Request-Time': '20261123120000+0800' },
    body: JSON.stringify({ version: 'v1', reqType: 'SignData', reqTime: '20261123120000+0800', request: { signMethod: SM3_SM2, keyIndex: 'dept-cardiology-sign', keyValue: '12345678', inDataLen: DATA.length, inData: DATA.toString('base64') } }),
  });
  t.equal(r.status, 200);
  const j = JSON.parse(r.body);
  t.equal(j.version, 'v1');
  t.equal(j.reqType, 'SignData');
  t.equal(j.respond.respValue, 0);
  writeFileSync(join(tmp, 'json.sig'), Buffer.from(j.respond.signature, 'base64'));
  t.match(openssl(['dgst', '-sm3', '-verify', 'dept.pub', '-sigopt', 'distid:1234567812345678', '-signature', 'json.sig', 'data.bin']), /Verified OK/);
});

t.test('revoked certificate: validateCert 0x0400000B, and its key no longer signs', async (t) => {
  const serial = keys['ward-sign'].certSerial;
  const path = `/api/v1/certs/${serial}/revoke`;
  const body = JSON.stringify({ reason: 'keyCompromise' });
  const auth = await signRequest(emr.signer, emr.id, 'POST', path, body);
  const revoked = await fetchRaw(`${server!.httpsUrl}${path}`, { method: 'POST', headers: { Authorization: auth, 'Content-Type': 'application/json' }, body });
  t.equal(revoked.status, 200, revoked.body.slice(0, 300));
  const cert = (await svs('exportCert', { identification: 'ward-sign' })).fields.cert;
  const v = await svs('validateCert', { cert, ocsp: 'FALSE' });
  t.equal(rv(v), R.REVOKED);
  t.equal(v.fields.state, '1');
  t.equal(rv(await svs('signData', { signMethod: SM3_SM2, keyIndex: 'ward-sign', inData: DATA.toString('base64') })), R.REVOKED, 'signing with it refused');
});

t.test('transport: plain HTTP refused, bad requests answered, the server keeps serving', async (t) => {
  const plain = await svs('parseCert', { infoType: 2, cert: 'AAAA' }, server!.httpUrl);
  t.equal(plain.status, 403);
  t.ok(rv(plain) > 0);
  t.equal(plain.headers['x-yiqian-code'], 'HTTPS_REQUIRED');
  const get = await fetchRaw(`${server!.httpsUrl}/svs/signData`);
  t.equal(get.status, 405);
  t.match(get.body, /^respValue=67108877/);
  const unknown = await svs('nonsense', {});
  t.equal(unknown.status, 404);
  t.equal(rv(unknown), R.DATA_FORMAT);
  t.equal(rv(await svs('signDataInit', {})), R.DATA_FORMAT, 'multi-part not offered');
  const wrongType = await fetchRaw(`${server!.httpsUrl}/svs/signData`, { method: 'POST', headers: { 'Content-Type': 'text/xml' }, body: '<x/>' });
  t.equal(wrongType.status, 415);
  for (const junk of ['%%%', 'inData=%FF%FE&keyIndex=a&signMethod=131585', Buffer.alloc(300, 0xff).toString('latin1'), 'a=1&a=2']) {
    const a = await svs('signData', junk);
    t.equal(a.status, 200);
    t.ok(rv(a) > 0, `junk answered ${a.fields.respValue}`);
  }
  const big = await svs('verifySignedMessage', `signedMessage=${'A'.repeat(5 * 1024 * 1024)}`);
  t.equal(big.status, 413);
  const again = await svs('signData', { signMethod: SM3_SM2, keyIndex: 'dept-cardiology-sign', keyValue: '12345678', inData: DATA.toString('base64') });
  t.equal(again.fields.respValue, '0', 'still serving');
  t.equal(server!.proc.exitCode, null);
});
