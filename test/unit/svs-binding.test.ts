// The GB/T 38629 HTTP binding (http/svs-binding.ts) over a real HTTP server: the form and JSON
// codecs, the request-type path segment, each request type mapped onto the services of
// signing/types.ts, and each failure's respValue (Annex B). The services here are small in-test
// implementations over REAL keys and certificates made by the OpenSSL CLI: signatures are made
// by the software signers and CMS by signing/cms-sign.ts, and checked by crypto/verify.ts,
// signing/cms-verify.ts and `openssl` — so a binding that garbles data fails. The full path
// through the appliance's own services is test/e2e/svs-binding.test.ts.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCertificate } from '../../appliance/src/asn1/certificate.js';
import { fromPem } from '../../appliance/src/crypto/der.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import { keyAlgorithmOfSpki, verifySignature } from '../../appliance/src/crypto/verify.js';
import { YiqianError } from '../../appliance/src/errors.js';
import { createSvsApp, decodeBase64, encodeForm, parseForm, parseJson, wellFormedRequestTime, type SvsServices } from '../../appliance/src/http/svs-binding.js';
import { signCms } from '../../appliance/src/signing/cms-sign.js';
import { verifyCms } from '../../appliance/src/signing/cms-verify.js';
import { RespValue, SGD, requestTypeOf } from '../../appliance/src/signing/svs-codes.js';
import type { HeldKeyView, SigningService, VerificationReport, VerificationService } from '../../appliance/src/signing/types.js';
import { fetchRaw } from '../helpers/appliance.js';

const APP = '01JTESTAPP000000000000000A';
const OTHER = '01JTESTAPP000000000000000B';
const DATA = Buffer.from('医嘱 #20261123-0001: 阿司匹林 100 mg qd', 'utf8');

const dir = mkdtempSync(join(tmpdir(), 'yq-svs-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function openssl(args: string[]): string {
  return execFileSync('openssl', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

interface Made { der: Buffer; pemFile: string; signer: Signer; serial: string }

/** A self-signed certificate by the OpenSSL CLI (SM2 with the default ID, or RSA-2048 SHA-256). */
function make(name: string, kind: 'sm2' | 'rsa', subject: string, serial: string): Made {
  if (kind === 'sm2') openssl(['genpkey', '-algorithm', 'SM2', '-out', `${name}.key`]);
  else openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', `${name}.key`]);
  const sig = kind === 'sm2' ? ['-sm3', '-sigopt', 'distid:1234567812345678'] : ['-sha256'];
  writeFileSync(join(dir, 'x.cnf'), '[req]\ndistinguished_name=dn\n[dn]\n[ext]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\nsubjectKeyIdentifier=hash\n');
  openssl(['req', '-new', '-x509', '-key', `${name}.key`, ...sig, '-utf8', '-subj', subject, '-days', '30', '-config', 'x.cnf', '-extensions', 'ext', '-set_serial', `0x${serial}`, '-out', `${name}.pem`]);
  const pem = readFileSync(join(dir, `${name}.pem`), 'utf8');
  return { der: fromPem(pem)[0].der, pemFile: join(dir, `${name}.pem`), signer: createSoftwareSigner(readFileSync(join(dir, `${name}.key`), 'utf8')), serial };
}

const sm2 = make('sm2', 'sm2', '/C=CN/O=某医院/OU=心内科/CN=张三/emailAddress=zhangsan@hospital.cn', '5a01');
const rsa = make('rsa', 'rsa', '/C=CN/O=某医院/CN=rsa seal', '5a02');
const stranger = make('stranger', 'sm2', '/C=CN/CN=not granted', '5a03');

function view(id: string, label: string, m: Made, grants: string[], accessCodeRequired: boolean): HeldKeyView {
  return {
    id, label, kind: 'department', usage: 'sign', algorithm: m.signer.algorithm, hierarchy: m.signer.algorithm === 'sm2' ? 'sm2' : 'ecdsa',
    keyId: id, keyUri: `pkcs11:object=${label}`, certSerial: m.serial, subject: 'x', grants, accessCodeRequired, createdAt: new Date().toISOString(),
  };
}

const keys = new Map<string, { key: HeldKeyView; made: Made; code?: string }>();
for (const k of [
  { key: view('01JKEY00000000000000000SM2', 'dept-sign', sm2, [APP], true), made: sm2, code: '12345678' },
  { key: view('01JKEY00000000000000000RSA', 'rsa-seal', rsa, [APP], false), made: rsa },
  { key: view('01JKEY0000000000000000STRG', 'stranger', stranger, [OTHER], false), made: stranger },
]) {
  keys.set(k.key.id, k);
  keys.set(k.key.label, k);
}
const certsBySerial = new Map([sm2, rsa, stranger].map((m) => [m.serial, m.der]));

const notFound = (ref: string) => new YiqianError('KEY_NOT_FOUND', 404, { zh: '没有这个密钥', en: `no key ${ref}` });

/** HeldKeys.forUse's rules (grant, access code), as signing/types.ts states them. */
function forUse(ref: string, appId: string, accessCode?: string) {
  const k = keys.get(ref);
  if (!k) throw notFound(ref);
  if (!k.key.grants.includes(appId)) throw new YiqianError('KEY_NOT_GRANTED', 403, { zh: '未授权', en: 'not granted' });
  if (k.code !== undefined && accessCode === undefined) throw new YiqianError('ACCESS_CODE_REQUIRED', 403, { zh: '需要访问码', en: 'access code required' });
  if (k.code !== undefined && accessCode !== k.code) throw new YiqianError('ACCESS_CODE_INVALID', 403, { zh: '访问码错误', en: 'access code invalid' });
  return k;
}

const signing: SigningService = {
  async signRaw(appId, req) {
    const k = forUse(req.key, appId, req.accessCode);
    const signature = await k.made.signer.sign(req.data!, { ...(req.hash ? { hash: req.hash } : {}), ...(req.rsaPadding ? { rsaPadding: req.rsaPadding } : {}) });
    return { signature, algorithm: k.key.algorithm, key: k.key, certificate: k.made.der };
  },
  async signCms(appId, req) {
    const k = forUse(req.key, appId, req.accessCode);
    const cms = await signCms({ signer: k.made.signer, certificate: k.made.der, content: req.content, detached: req.detached, form: req.form ?? 'gbt35275' });
    lastCmsRequest = req;
    return { cms, form: req.form ?? 'gbt35275', key: k.key, signingTime: new Date().toISOString() };
  },
};
let lastCmsRequest: Parameters<SigningService['signCms']>[1] | undefined;

function report(valid: boolean, gbtCode: number, code: string): VerificationReport {
  return {
    valid, code, gbtCode, level: 2, form: 'raw', judgedAt: new Date().toISOString(), judgedAtSource: 'now',
    checks: [{ name: 'signatureIntact', ok: valid, label: '签名未改', ...(valid ? {} : { reason: code }) }],
    revocation: { ok: true, certificates: [{ serial: 'x', subject: 'x', status: revocationStatus }] },
  };
}
let revocationStatus: 'good' | 'revoked' | 'unknown' = 'good';
let lastVerifyLevel: number | undefined;

const verification: VerificationService = {
  async verifyRaw(req) {
    lastVerifyLevel = req.level;
    const spki = readCertificate(req.certificate!).publicKeyInfo;
    const ok = await verifySignature(keyAlgorithmOfSpki(spki), spki, req.data!, req.signature, { ...(req.hash ? { hash: req.hash } : {}), ...(req.rsaPadding ? { rsaPadding: req.rsaPadding } : {}) });
    return ok ? report(true, 0, 'OK') : report(false, RespValue.INVALID_SIGNATURE, 'SIGNATURE_INVALID');
  },
  async verifyCms(req) {
    const r = await verifyCms(req.cms, req.content ? { content: req.content } : {});
    if (r.valid) return report(true, 0, 'OK');
    return r.checks.some((c) => c.name === 'structure' && !c.ok) ? report(false, RespValue.INVALID_DATA_FORMAT, 'CMS_MALFORMED') : report(false, RespValue.INVALID_SIGNATURE, 'SIGNATURE_INVALID');
  },
  async validateCertificate(req) {
    const info = readCertificate(req.certificate);
    if (info.notAfter < new Date()) return report(false, RespValue.CERT_INVALID_AF, 'CERT_EXPIRED');
    return revocationStatus === 'revoked' ? report(false, RespValue.CERT_REVOKED, 'CERT_REVOKED') : report(true, 0, 'OK');
  },
};

function services(over: Partial<SvsServices> = {}): SvsServices {
  return {
    appId: APP,
    appActive: async (id) => id === APP,
    heldKeys: {
      async get(ref) {
        const k = keys.get(ref);
        if (!k) throw notFound(ref);
        return k.key;
      },
      async findByCertSerial(serial) {
        return [...keys.values()].find((k) => k.key.certSerial === serial)?.key;
      },
    },
    certificateBySerial: async (serial) => certsBySerial.get(serial),
    signing,
    verification,
    ...over,
  };
}

async function listen(over: Partial<SvsServices> & { allow?: string[]; requireTls?: boolean; maxRequestBytes?: number } = {}): Promise<{ url: string; server: Server }> {
  const app = createSvsApp({ ...services(over), allow: over.allow ?? [], maxRequestBytes: over.maxRequestBytes ?? 64 * 1024, requireTls: over.requireTls ?? false });
  const server = createServer(app.callback());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

interface Answer { status: number; fields: Record<string, string>; headers: Record<string, string | string[] | undefined>; body: string }

function form(fields: Record<string, string | number>): string {
  return Object.entries(fields).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`).join('&');
}

async function post(url: string, path: string, body: string | Buffer, headers: Record<string, string> = {}): Promise<Answer> {
  const r = await fetchRaw(`${url}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded', ...headers }, body });
  const fields: Record<string, string> = {};
  if (String(r.headers['content-type']).startsWith('application/x-www-form-urlencoded')) for (const [k, v] of new URLSearchParams(r.body)) fields[k] = v;
  return { status: r.status, fields, headers: r.headers, body: r.body };
}

const hex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;

t.test('codec', async (t) => {
  t.test('form fields, duplicates, client slips in Base64', async (t) => {
    const f = parseForm(Buffer.from('a=1&b=TRUE&inData=ab%2Bc%2F%3D%3D&empty=&x'));
    t.equal(f.get('a'), '1');
    t.equal(f.get('inData'), 'ab+c/==');
    t.equal(f.get('empty'), '');
    t.equal(f.get('x'), '');
    t.throws(() => parseForm(Buffer.from('a=1&a=2')), { code: 'SVS_INVALID_DATA_FORMAT' });
    t.throws(() => parseForm(Buffer.from('a=%E4%B8')), { code: 'SVS_INVALID_DATA_FORMAT' }, 'broken percent-encoding');
    t.throws(() => parseForm(Buffer.from([0x61, 0x3d, 0xff, 0xfe])), { code: 'SVS_INVALID_DATA_FORMAT' }, 'not UTF-8');
    const bytes = Buffer.from([0xfb, 0xef, 0xbe, 0x00, 0x3f]);
    const b64 = bytes.toString('base64');
    t.match(b64, /[+/]/);
    t.same(decodeBase64(b64, 'f'), bytes);
    t.same(decodeBase64(b64.replace(/\+/g, ' '), 'f'), bytes, "an unescaped '+' that arrived as a space");
    t.same(decodeBase64(encodeURIComponent(b64), 'f'), bytes, 'percent-encoded twice');
    t.throws(() => decodeBase64('abc', 'f'), { code: 'SVS_INVALID_DATA_FORMAT' });
    t.throws(() => decodeBase64('ab$=', 'f'), { code: 'SVS_INVALID_DATA_FORMAT' });
  });
  t.test('JSON flat and in the vendor envelope', async (t) => {
    t.same([...parseJson(Buffer.from('{"signMethod":131585,"hashFlag":false}')).fields], [['signMethod', 131585], ['hashFlag', false]]);
    const wrapped = parseJson(Buffer.from('{"version":"v1","reqType":"SignData","request":{"keyIndex":"k"},"reqTime":"20260101000000Z"}'));
    t.same([...wrapped.fields], [['keyIndex', 'k']]);
    t.same(wrapped.envelope, { version: 'v1', reqType: 'SignData' });
    t.throws(() => parseJson(Buffer.from('[1]')), { code: 'SVS_INVALID_DATA_FORMAT' });
    t.throws(() => parseJson(Buffer.from('{"a":{"b":1}}')), { code: 'SVS_INVALID_DATA_FORMAT' });
    t.throws(() => parseJson(Buffer.from('{')), { code: 'SVS_INVALID_DATA_FORMAT' });
  });
  t.test('answers and request types', async (t) => {
    t.equal(encodeForm({ respValue: 0, fields: { signature: 'a+b/c=' } }), 'respValue=0&signature=a%2Bb%2Fc%3D');
    t.equal(requestTypeOf('signData'), 'signData');
    t.equal(requestTypeOf('SignData'), 'signData');
    t.equal(requestTypeOf('VERIFYSIGNEDMESSAGE'), 'verifySignedMessage');
    t.equal(requestTypeOf('0'), 'exportCert');
    t.equal(requestTypeOf('12'), 'verifySignedMessage');
    t.equal(requestTypeOf('13'), undefined);
    t.equal(requestTypeOf('03'), undefined);
    t.equal(requestTypeOf('sign'), undefined);
    for (const ok of ['20260101120000', '20260101120000Z', '20260101120000+0800', '2026-01-01T12:00:00Z', '2026-01-01 12:00:00', '1767268800000']) t.ok(wellFormedRequestTime(ok), ok);
    for (const bad of ['yesterday', '20261301120000', '2026-01-01T25:00:00Z', '']) t.notOk(wellFormedRequestTime(bad), bad);
  });
});

t.test('request types over HTTP', async (t) => {
  const { url, server } = await listen();
  t.teardown(() => server.close());

  t.test('exportCert: a key granted to the app, by label, id or certificate serial', async (t) => {
    for (const id of ['dept-sign', '01JKEY00000000000000000SM2', '5a01', '0x5A01']) {
      const a = await post(url, '/svs/exportCert', form({ identification: id }));
      t.equal(a.status, 200);
      t.equal(a.fields.respValue, '0', id);
      t.same(Buffer.from(a.fields.cert, 'base64'), sm2.der, id);
    }
    for (const id of ['nope', 'stranger', '5a03']) {
      const a = await post(url, '/svs/ExportCert', form({ identification: id }));
      t.equal(Number(a.fields.respValue), RespValue.CERT_ID, `${id} → CERT_ID`);
      t.equal(a.fields.cert, undefined);
    }
    t.equal(Number((await post(url, '/svs/exportCert', '')).fields.respValue), RespValue.INVALID_DATA_FORMAT, 'identification missing');
  });

  t.test('parseCert: GB/T 33560 Table 8 items', async (t) => {
    const parse = async (infoType: number, cert: string = sm2.der.toString('base64')) => (await post(url, '/svs/parseCert', form({ infoType, cert }))).fields;
    const expect: [number, string][] = [
      [0x01, '3'],
      [0x02, '5a01'],
      [0x31, '张三'],
      [0x32, '某医院'],
      [0x33, '心内科'],
      [0x34, 'zhangsan@hospital.cn'],
      [0x21, '张三'],
      [0x07, 'emailAddress=zhangsan@hospital.cn,CN=张三,OU=心内科,O=某医院,C=CN'],
      [0x05, 'emailAddress=zhangsan@hospital.cn,CN=张三,OU=心内科,O=某医院,C=CN'],
      [0x08, readCertificate(sm2.der).publicKeyInfo.toString('base64')],
    ];
    for (const [type, value] of expect) {
      const f = await parse(type);
      t.equal(f.respValue, '0', `infoType ${type}`);
      t.equal(f.info, value, `infoType 0x${type.toString(16)}`);
    }
    // Validity against openssl's reading of the same certificate.
    const dates = openssl(['x509', '-in', sm2.pemFile, '-noout', '-startdate', '-enddate', '-dateopt', 'iso_8601']);
    const [nb, na] = [...dates.matchAll(/=(.+)$/gm)].map((m) => new Date(m[1].trim().replace(' ', 'T')));
    const gt = (d: Date) => d.toISOString().replace(/[-:T]/g, '').replace(/\.\d{3}/, '');
    t.equal((await parse(0x35)).info, gt(nb));
    t.equal((await parse(0x36)).info, gt(na));
    t.equal((await parse(0x06)).info, `${gt(nb)},${gt(na)}`);
    // Extensions: the DER openssl finds in the certificate.
    const ext = Buffer.from((await parse(0x09)).info, 'base64');
    const dump = execFileSync('openssl', ['asn1parse', '-inform', 'DER'], { input: ext, encoding: 'utf8' });
    t.match(dump, /X509v3 Basic Constraints/);
    t.match(dump, /X509v3 Key Usage/);
    t.match(dump, /X509v3 Subject Key Identifier/);
    // PEM is accepted too; other ids, garbage and missing fields are refused.
    t.equal((await post(url, '/svs/parseCert', form({ infoType: 2, cert: readFileSync(sm2.pemFile, 'utf8') }))).fields.info, '5a01', 'PEM');
    t.equal(Number((await parse(0x03)).respValue), RespValue.CERT_INFO_TYPE);
    t.equal(Number((await parse(0x99)).respValue), RespValue.CERT_INFO_TYPE);
    t.equal(Number((await parse(1, Buffer.from('not a certificate').toString('base64'))).respValue), RespValue.CERT_DECODE);
    t.equal(Number((await parse(1, sm2.der.subarray(0, 100).toString('base64'))).respValue), RespValue.CERT_DECODE, 'truncated DER');
    t.equal(Number((await post(url, '/svs/parseCert', form({ infoType: 'seven', cert: 'AA==' }))).fields.respValue), RespValue.INVALID_DATA_FORMAT);
  });

  t.test('validateCert: the report verdict and state', async (t) => {
    const a = await post(url, '/svs/validateCert', form({ cert: sm2.der.toString('base64'), ocsp: 'FALSE' }));
    t.same(a.fields, { respValue: '0', state: '0' });
    revocationStatus = 'revoked';
    const r = await post(url, '/svs/validateCert', form({ cert: sm2.der.toString('base64'), ocsp: 'TRUE' }));
    revocationStatus = 'good';
    t.equal(Number(r.fields.respValue), RespValue.CERT_REVOKED);
    t.equal(r.fields.state, '1');
    t.equal(r.headers['x-yiqian-code'], 'CERT_REVOKED');
    t.equal(Number((await post(url, '/svs/validateCert', form({ cert: 'AAAA' }))).fields.respValue), RespValue.CERT_DECODE);
    t.equal(Number((await post(url, '/svs/validateCert', form({ cert: sm2.der.toString('base64'), ocsp: 'maybe' }))).fields.respValue), RespValue.INVALID_DATA_FORMAT);
  });

  t.test('signData / verifySignedData', async (t) => {
    const base = { signMethod: SGD.SM3_SM2, keyIndex: 'dept-sign', keyValue: '12345678', inDataLen: DATA.length, inData: DATA.toString('base64') };
    const a = await post(url, '/svs/signData', form(base));
    t.equal(a.fields.respValue, '0');
    const sig = Buffer.from(a.fields.signature, 'base64');
    t.ok(await verifySignature('sm2', sm2.signer.publicKeyInfo, DATA, sig), 'an SM2 signature (default ID) over inData');
    // openssl, an independent verifier, agrees.
    writeFileSync(join(dir, 'data.bin'), DATA);
    writeFileSync(join(dir, 'data.sig'), sig);
    openssl(['x509', '-in', sm2.pemFile, '-pubkey', '-noout', '-out', 'sm2.pub']);
    t.match(openssl(['dgst', '-sm3', '-verify', 'sm2.pub', '-sigopt', 'distid:1234567812345678', '-signature', 'data.sig', 'data.bin']), /Verified OK/);

    t.equal((await post(url, '/svs/3', form(base))).fields.respValue, '0', 'request type by number');
    t.equal((await post(url, '/svs/vendor/prefix/SignData', form(base))).fields.respValue, '0', 'reqType as the last of several segments');
    const code = async (over: Record<string, string | number>, path = '/svs/signData') => Number((await post(url, path, form({ ...base, ...over }))).fields.respValue);
    t.equal(await code({ signMethod: SGD.SHA256_RSA }), RespValue.SIGN_METHOD, 'RSA method for an SM2 key');
    t.equal(await code({ signMethod: SGD.SHA1_RSA }), RespValue.SIGN_METHOD, 'SHA-1 not offered');
    t.equal(await code({ signMethod: 'x' }), RespValue.INVALID_DATA_FORMAT);
    t.equal(await code({ keyIndex: 'nope' }), RespValue.KEY_INDEX, 'unknown key');
    t.equal(await code({ keyIndex: 'stranger' }), RespValue.KEY_INDEX, 'key granted to another app');
    t.equal(await code({ keyValue: 'wrong' }), RespValue.KEY_VALUE, 'wrong access code');
    t.equal(await code({ keyValue: '' }), RespValue.KEY_VALUE, 'no access code');
    t.equal(await code({ inDataLen: DATA.length + 1 }), RespValue.INVALID_DATA_FORMAT, 'inDataLen mismatch');
    t.equal(await code({ inData: '' }), RespValue.INVALID_DATA_FORMAT, 'empty inData');
    t.equal(await code({ inData: '!!!' }), RespValue.INVALID_DATA_FORMAT, 'not Base64');

    // RSA: SGD_SHA256_RSA, PKCS#1 v1.5, verified by openssl.
    const r = await post(url, '/svs/signData', form({ signMethod: SGD.SHA256_RSA, keyIndex: 'rsa-seal', inData: DATA.toString('base64') }));
    t.equal(r.fields.respValue, '0');
    writeFileSync(join(dir, 'rsa.sig'), Buffer.from(r.fields.signature, 'base64'));
    openssl(['x509', '-in', rsa.pemFile, '-pubkey', '-noout', '-out', 'rsa.pub']);
    t.match(openssl(['dgst', '-sha256', '-verify', 'rsa.pub', '-signature', 'rsa.sig', 'data.bin']), /Verified OK/);
    t.equal(await code({ signMethod: SGD.SM3_SM2, keyIndex: 'rsa-seal', keyValue: '' }), RespValue.SIGN_METHOD, 'SM2 method for an RSA key');

    const v = { signMethod: SGD.SM3_SM2, type: 1, cert: sm2.der.toString('base64'), inDataLen: DATA.length, inData: DATA.toString('base64'), signature: sig.toString('base64'), verifyLevel: 1 };
    const vcode = async (over: Record<string, string | number>) => Number((await post(url, '/svs/verifySignedData', form({ ...v, ...over }))).fields.respValue);
    t.equal(await vcode({}), 0, 'type 1 (cert)');
    t.equal(lastVerifyLevel, 1, 'verifyLevel passed on');
    t.equal(await vcode({ type: 2, cert: '', certSN: '5A01' }), 0, 'type 2 (certSN)');
    t.equal(await vcode({ inData: Buffer.from('tampered').toString('base64'), inDataLen: 8 }), RespValue.INVALID_SIGNATURE, 'tampered data');
    t.equal(await vcode({ cert: stranger.der.toString('base64') }), RespValue.INVALID_SIGNATURE, 'swapped certificate');
    t.equal(await vcode({ type: 2, cert: '', certSN: 'ffff' }), RespValue.CERT, 'unknown certSN');
    t.equal(await vcode({ type: 2, cert: '', certSN: 'xyz' }), RespValue.INVALID_DATA_FORMAT, 'certSN not hex');
    t.equal(await vcode({ type: 3 }), RespValue.INVALID_DATA_FORMAT, 'type 3');
    t.equal(await vcode({ cert: 'AAAA' }), RespValue.CERT_DECODE, 'garbage certificate');
    t.equal(await vcode({ signMethod: SGD.SHA256_RSA }), RespValue.SIGN_METHOD, 'RSA method for an SM2 certificate');
    t.equal(await vcode({ verifyLevel: 3 }), RespValue.INVALID_DATA_FORMAT, 'verifyLevel 3');
    t.equal(await vcode({ signMethod: SGD.SHA256_RSA, cert: rsa.der.toString('base64'), signature: r.fields.signature, inDataLen: '' }), 0, 'RSA');
  });

  t.test('signMessage / verifySignedMessage', async (t) => {
    const base = { signMethod: SGD.SM3_SM2, keyIndex: 'dept-sign', keyValue: '12345678', inDataLen: DATA.length, inData: DATA.toString('base64'), hashFlag: 'FALSE', originalText: 'TRUE', certificateChain: 'TRUE', crl: 'FALSE', authenticationAttributes: 'TRUE' };
    const a = await post(url, '/svs/signMessage', form(base));
    t.equal(a.fields.respValue, '0');
    t.equal(lastCmsRequest?.detached, false);
    t.equal(lastCmsRequest?.includeChain, true);
    const cms = Buffer.from(a.fields.signedMessage, 'base64');
    const r = await verifyCms(cms);
    t.ok(r.valid, 'a valid CMS SignedData');
    t.equal(r.form, 'gbt35275');
    t.same(r.content, DATA, 'attached (originalText=TRUE)');
    t.equal((await post(url, '/svs/verifySignedMessage', form({ signedMessage: a.fields.signedMessage }))).fields.respValue, '0');

    const d = await post(url, '/svs/signMessage', form({ ...base, originalText: 'FALSE', certificateChain: 'FALSE' }));
    t.equal(d.fields.respValue, '0');
    t.equal(lastCmsRequest?.detached, true);
    t.equal(lastCmsRequest?.includeChain, false);
    const vm = async (fields: Record<string, string | number>) => Number((await post(url, '/svs/verifySignedMessage', form(fields))).fields.respValue);
    t.equal(await vm({ signedMessage: d.fields.signedMessage, inData: DATA.toString('base64'), inDataLen: DATA.length, originalText: 'FALSE' }), 0, 'detached with its original');
    t.equal(await vm({ signedMessage: d.fields.signedMessage, inData: Buffer.from('tampered').toString('base64') }), RespValue.INVALID_SIGNATURE, 'detached, tampered original');
    t.equal(await vm({ signedMessage: Buffer.from('garbage').toString('base64') }), RespValue.INVALID_DATA_FORMAT, 'garbage CMS');
    t.equal(await vm({ signedMessage: d.fields.signedMessage, inData: DATA.toString('base64'), hashFlag: 'TRUE' }), RespValue.INVALID_DATA_FORMAT, 'hashFlag TRUE not offered');
    t.equal(await vm({}), RespValue.INVALID_DATA_FORMAT, 'signedMessage missing');

    const code = async (over: Record<string, string | number>) => Number((await post(url, '/svs/signMessage', form({ ...base, ...over }))).fields.respValue);
    t.equal(await code({ hashFlag: 'TRUE' }), RespValue.INVALID_DATA_FORMAT, 'hashFlag TRUE not offered');
    t.equal(await code({ crl: 'TRUE' }), RespValue.INVALID_DATA_FORMAT, 'crl TRUE not offered');
    t.equal(await code({ keyValue: 'bad' }), RespValue.KEY_VALUE);
    t.equal(await code({ keyIndex: 'stranger' }), RespValue.KEY_INDEX);
    t.equal(await code({ signMethod: SGD.SHA256_RSA }), RespValue.SIGN_METHOD);
  });

  t.test('JSON variant: flat and in the vendor envelope', async (t) => {
    const flat = await fetchRaw(`${url}/svs/signData`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ signMethod: SGD.SM3_SM2, keyIndex: 'dept-sign', keyValue: '12345678', inData: DATA.toString('base64') }),
    });
    t.match(flat.headers['content-type'], /^application\/json/);
    const j = JSON.parse(flat.body);
    t.equal(j.respValue, 0);
    t.ok(await verifySignature('sm2', sm2.signer.publicKeyInfo, DATA, Buffer.from(j.signature, 'base64')));
    const wrapped = await fetchRaw(`${url}/svs/VerifySignedData`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'SVS-Request-Version': 'v1', 'SVS-Request-Time': '20260101120000+0800' },
      body: JSON.stringify({ version: 'v1', reqType: 'VerifySignedData', reqTime: '20260101120000+0800', request: { type: 1, cert: sm2.der.toString('base64'), certSN: '', signMethod: SGD.SM3_SM2, inData: DATA.toString('base64'), signature: j.signature, verifyLevel: 1 } }),
    });
    t.same(JSON.parse(wrapped.body), { version: 'v1', reqType: 'VerifySignedData', respond: { respValue: 0 } });
    t.equal(wrapped.headers['svs-request-version'], 'v1', 'headers echoed');
    t.equal(wrapped.headers['svs-request-time'], '20260101120000+0800');
    t.match(wrapped.headers['svs-response-time'], /^\d{14}Z$/);
    const failed = JSON.parse((await fetchRaw(`${url}/svs/signData`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ signMethod: SGD.SM3_SM2, keyIndex: 'nope', inData: 'AA==' }) })).body);
    t.equal(failed.respValue, RespValue.KEY_INDEX);
    t.equal(failed.error.code, 'SVS_KEY_INDEX');
    t.ok(failed.error.message['zh-CN'] && failed.error.message.en, 'zh and en messages');
    const mismatch = JSON.parse((await fetchRaw(`${url}/svs/signData`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ reqType: 'parseCert', request: {} }) })).body);
    t.equal(mismatch.respond.respValue, RespValue.INVALID_DATA_FORMAT, 'reqType in the body must match the path');
  });

  t.test('transport failures: still an answer with a respValue, never problem+json', async (t) => {
    const expectAnswer = (a: Answer, status: number, respValue: number, what: string) => {
      t.equal(a.status, status, `${what}: HTTP ${status}`);
      t.equal(Number(a.fields.respValue), respValue, `${what}: ${hex(respValue)}`);
      t.notMatch(String(a.headers['content-type']), /problem/, what);
      t.notMatch(a.body, /at .+\.(ts|js):\d+/, `${what}: no stack`);
    };
    const get = await fetchRaw(`${url}/svs/signData`);
    t.equal(get.status, 405);
    t.equal(get.headers.allow, 'POST');
    t.match(get.body, /^respValue=67108877/);
    expectAnswer(await post(url, '/svs/nonsense', form({})), 404, RespValue.INVALID_DATA_FORMAT, 'unknown reqType');
    expectAnswer(await post(url, '/svs', form({})), 404, RespValue.INVALID_DATA_FORMAT, 'no reqType');
    expectAnswer(await post(url, '/svs/13', form({})), 404, RespValue.INVALID_DATA_FORMAT, 'reqType 13');
    const multi = await post(url, '/svs/signDataInit', form({}));
    expectAnswer(multi, 200, RespValue.INVALID_DATA_FORMAT, 'multi-part not offered');
    t.equal(multi.headers['x-yiqian-code'], 'SVS_REQUEST_TYPE_UNSUPPORTED');
    const plain = await fetchRaw(`${url}/svs/parseCert`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'x' });
    t.equal(plain.status, 415);
    t.match(plain.body, /^respValue=67108877/);
    expectAnswer(await post(url, '/svs/parseCert', 'infoType=1', { 'Content-Type': 'application/x-www-form-urlencoded; charset=GBK' }), 415, RespValue.INVALID_DATA_FORMAT, 'GBK');
    expectAnswer(await post(url, '/svs/parseCert', `cert=${'A'.repeat(70 * 1024)}`), 413, RespValue.INVALID_DATA_FORMAT, 'oversize');
    expectAnswer(await post(url, '/svs/parseCert', form({ infoType: 2, cert: sm2.der.toString('base64') }), { 'SVS-Request-Time': 'yesterday' }), 200, RespValue.INVALID_DATA_FORMAT, 'malformed SVS-Request-Time');
    expectAnswer(await post(url, '/svs/parseCert', form({ infoType: 2, cert: sm2.der.toString('base64') }) + '&infoType=3'), 200, RespValue.INVALID_DATA_FORMAT, 'a field twice');
    // Garbage of every kind leaves the server serving.
    for (let i = 0; i < 50; i++) {
      const junk = Buffer.from(Array.from({ length: 200 }, (_, j) => (i * 31 + j * 17) % 256));
      const a = await post(url, ['/svs/signData', '/svs/verifySignedMessage', '/svs/parseCert'][i % 3], junk);
      t.ok(a.status === 200 && Number(a.fields.respValue) > 0, `junk ${i}`);
    }
    const still = await post(url, '/svs/parseCert', form({ infoType: 2, cert: sm2.der.toString('base64') }));
    t.same(still.fields, { respValue: '0', info: '5a01' }, 'still serving');
  });
});

t.test('configuration and access', async (t) => {
  t.test('no app configured, or a frozen one: key operations refused, the rest works', async (t) => {
    for (const over of [{ appId: undefined }, { appActive: async () => false }]) {
      const { url, server } = await listen(over);
      const a = await post(url, '/svs/signData', form({ signMethod: SGD.SM3_SM2, keyIndex: 'dept-sign', keyValue: '12345678', inData: DATA.toString('base64') }));
      t.equal(Number(a.fields.respValue), RespValue.SYSTEM_FAILURE);
      t.equal(a.headers['x-yiqian-code'], 'SVS_NOT_CONFIGURED');
      t.equal(Number((await post(url, '/svs/exportCert', form({ identification: 'dept-sign' }))).fields.respValue), RespValue.SYSTEM_FAILURE);
      t.equal((await post(url, '/svs/parseCert', form({ infoType: 2, cert: sm2.der.toString('base64') }))).fields.respValue, '0');
      server.close();
    }
  });
  t.test('svs.allow and HTTPS only', async (t) => {
    const closed = await listen({ allow: ['10.0.0.0/8'] });
    const a = await post(closed.url, '/svs/parseCert', form({ infoType: 2, cert: sm2.der.toString('base64') }));
    t.equal(a.status, 403);
    t.equal(Number(a.fields.respValue), RespValue.SERVER_CONNECT);
    closed.server.close();
    const open = await listen({ allow: ['127.0.0.0/8'] });
    t.equal((await post(open.url, '/svs/parseCert', form({ infoType: 2, cert: sm2.der.toString('base64') }))).fields.respValue, '0');
    open.server.close();
    const tls = await listen({ requireTls: true });
    const p = await post(tls.url, '/svs/parseCert', form({ infoType: 2, cert: sm2.der.toString('base64') }));
    t.equal(p.status, 403, 'plain HTTP refused');
    t.equal(p.headers['x-yiqian-code'], 'HTTPS_REQUIRED');
    t.ok(Number(p.fields.respValue) > 0);
    tls.server.close();
  });
});

t.test('config: the svs section is defaulted and validated', async (t) => {
  const { defaultConfig, validateConfig } = await import('../../appliance/src/config/config.js');
  const withSvs = (svs: unknown) => ({ ...JSON.parse(JSON.stringify(defaultConfig())), svs });
  const legacy = JSON.parse(JSON.stringify(defaultConfig()));
  delete legacy.svs;
  t.same(validateConfig(legacy).svs, { enabled: true, allow: [], maxRequestBytes: 4 * 1024 * 1024 }, 'a data dir from before the binding gets the defaults');
  t.same(validateConfig(withSvs({ appId: APP, allow: ['10.0.0.0/8'] })).svs, { appId: APP, allow: ['10.0.0.0/8'], enabled: true, maxRequestBytes: 4 * 1024 * 1024 });
  for (const [bad, problem] of [
    [{ appId: 'not-an-id' }, /svs\.appId/],
    [{ allow: ['10.0.0.0/33'] }, /svs\.allow/],
    [{ enabled: 'yes' }, /svs\.enabled/],
    [{ maxRequestBytes: 10 }, /svs\.maxRequestBytes/],
    [{ listen: 'x' }, /svs\.listen is not a setting/],
    ['on', /svs must be an object/],
  ] as const) {
    t.throws(() => validateConfig(withSvs(bad)), { code: 'CONFIG_INVALID', message: problem }, JSON.stringify(bad));
  }
});
