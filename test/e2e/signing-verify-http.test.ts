// Verification over HTTP against the running appliance (`yiqian init`, `serve`): keys made by the
// OpenSSL CLI, certified by the appliance's CA through POST /api/v1/certs, signatures made by
// OpenSSL and by our CMS signer in the test; then /api/v1/verify/cms|raw|certificate|batch.
// An invalid signature is still 200 with the verdict in the report; a malformed request is a
// problem+json 4xx with its code; a certificate revoked through the API verifies as CERT_REVOKED
// at level 2 for a signature made after the revocation, and still valid for one made before;
// a batch of 1,001 items is BATCH_TOO_LARGE and a mixed batch answers every item on its own.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromPem } from '../../appliance/src/crypto/der.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import { signCms } from '../../appliance/src/signing/cms-sign.js';
import { opensslCsr, type CsrKind } from '../helpers/pki-hierarchy.js';
import { startCa, type RunningCa } from '../helpers/revocation-client.js';

const CONTENT = Buffer.from('出院小结 DS-2026-1123-07 / discharge summary', 'utf8');
const b64 = (b: Buffer): string => b.toString('base64');

let ca: RunningCa;
interface Key {
  serial: string;
  der: Buffer;
  pem: string;
  certFile: string;
  keyFile: string;
  signer: Signer;
}
let sm2: Key;
let ec: Key;

async function issue(kind: CsrKind, cn: string): Promise<Key> {
  const csr = opensslCsr(ca.work, kind, `/CN=${cn}`, cn);
  const r = await ca.api('POST', '/certs', { profile: 'personal', csr: csr.csrPem, commonName: cn, employeeId: `E-${cn}` });
  if (r.status !== 201) throw new Error(`issue ${cn}: ${r.status} ${JSON.stringify(r.json)}`);
  const certFile = join(ca.work, `${cn}.pem`);
  writeFileSync(certFile, r.json.certificate);
  return { serial: r.json.serial, der: fromPem(r.json.certificate)[0].der, pem: r.json.certificate, certFile, keyFile: csr.keyFile, signer: createSoftwareSigner(readFileSync(csr.keyFile, 'utf8')) };
}

function problem(t: Test, r: { status: number; json: any; headers: Record<string, unknown> }, status: number, code: string): void {
  t.equal(r.status, status, `${code}: HTTP ${status}`);
  t.match(String(r.headers['content-type']), /^application\/problem\+json/, `${code}: problem+json`);
  t.equal(r.json?.code, code);
  t.ok(r.json?.message?.['zh-CN'] && r.json?.message?.en, `${code}: zh-CN and en message`);
  t.notMatch(JSON.stringify(r.json), /at .*\.js:\d+/, 'no stack');
}

t.before(async () => {
  ca = await startCa(t);
  sm2 = await issue('sm2', 'sm2-verify');
  ec = await issue('ecdsa-p256', 'ec-verify');
});

t.test('POST /verify/cms: SM2 (GB/T 35275) and openssl ECDSA (PEM), tampered, malformed', async (t) => {
  const cms = await signCms({ signer: sm2.signer, certificate: sm2.der, content: CONTENT, detached: false, form: 'gbt35275' });
  const r = await ca.api('POST', '/verify/cms', { cms: b64(cms) });
  t.equal(r.status, 200);
  t.match(r.json, { valid: true, code: 'OK', gbtCode: 0, level: 2, form: 'gbt35275', judgedAtSource: 'now', content: b64(CONTENT) });
  t.match(r.json.signer, { serial: sm2.serial, commonName: 'sm2-verify', employeeId: 'E-sm2-verify' });
  t.equal(r.json.chain.length, 3, 'leaf, issuing CA, root');
  t.equal(r.json.revocation.ok, true);
  t.same(r.json.checks.find((c: any) => c.name === 'contentIntact'), { name: 'contentIntact', ok: true, label: '原文未改' });

  writeFileSync(join(ca.work, 'content.bin'), CONTENT);
  const pem = execFileSync('openssl', ['cms', '-sign', '-binary', '-md', 'sha256', '-in', 'content.bin', '-signer', ec.certFile, '-inkey', ec.keyFile, '-outform', 'PEM'], { cwd: ca.work }).toString();
  const d = await ca.api('POST', '/verify/cms', { cms: pem, content: b64(CONTENT), level: 1 });
  t.equal(d.status, 200);
  t.match(d.json, { valid: true, code: 'OK', level: 1, form: 'rfc5652' });
  t.equal(d.json.checks.find((c: any) => c.name === 'revocation').ok, null, 'revocation not checked at level 1');
  const other = await ca.api('POST', '/verify/cms', { cms: pem, content: b64(Buffer.from('another summary')) });
  t.equal(other.status, 200, 'an invalid signature is still 200');
  t.match(other.json, { valid: false, code: 'CONTENT_ALTERED', gbtCode: 0x0400000c });

  const sigBad = Buffer.from(cms);
  sigBad[sigBad.length - 2] ^= 0x10;
  t.match((await ca.api('POST', '/verify/cms', { cms: b64(sigBad) })).json, { valid: false, code: 'SIGNATURE_INVALID' });
  t.match((await ca.api('POST', '/verify/cms', { cms: b64(Buffer.from('garbage, not DER')) })).json, { valid: false, code: 'CMS_MALFORMED', gbtCode: 0x0400000d });
  t.match((await ca.api('POST', '/verify/cms', { cms: b64(cms.subarray(0, 100)) })).json, { valid: false, code: 'CMS_MALFORMED' });

  problem(t, await ca.api('POST', '/verify/cms', {}), 400, 'SIGNATURE_REQUIRED');
  problem(t, await ca.api('POST', '/verify/cms', { cms: 'not base64 !!' }), 400, 'VERIFY_REQUEST_INVALID');
  problem(t, await ca.api('POST', '/verify/cms', { cms: pem }), 400, 'CONTENT_REQUIRED');
  problem(t, await ca.api('POST', '/verify/cms', { cms: b64(cms), level: 3 }), 400, 'VERIFY_REQUEST_INVALID');
  problem(t, await ca.api('POST', '/verify/cms', [1, 2]), 400, 'VERIFY_REQUEST_INVALID');
  t.equal((await ca.api('POST', '/verify/cms', { cms: b64(cms) })).json.valid, true, 'still serving after bad input');
});

t.test('POST /verify/raw and /verify/certificate', async (t) => {
  const sig = await sm2.signer.sign(CONTENT);
  const r = await ca.api('POST', '/verify/raw', { certSerial: sm2.serial, data: b64(CONTENT), signature: b64(sig) });
  t.equal(r.status, 200);
  t.match(r.json, { valid: true, code: 'OK', form: 'raw', judgedAtSource: 'now', signer: { serial: sm2.serial } });
  const withId = await sm2.signer.sign(CONTENT, { sm2Id: Buffer.from('doctor@hospital') });
  t.match((await ca.api('POST', '/verify/raw', { certificate: sm2.pem, data: b64(CONTENT), signature: b64(withId), sm2Id: 'doctor@hospital' })).json, { valid: true });
  const ecSig = execFileSync('openssl', ['dgst', '-sha256', '-sign', ec.keyFile, 'content.bin'], { cwd: ca.work });
  t.match((await ca.api('POST', '/verify/raw', { certificate: b64(ec.der), data: b64(CONTENT), signature: b64(ecSig) })).json, { valid: true });
  t.match((await ca.api('POST', '/verify/raw', { certificate: b64(ec.der), data: b64(Buffer.from('x')), signature: b64(ecSig) })).json, { valid: false, code: 'SIGNATURE_INVALID', gbtCode: 0x0400000c });
  t.match((await ca.api('POST', '/verify/raw', { certificate: b64(ec.der), digest: b64(Buffer.alloc(20)), signature: b64(ecSig) })).json, { valid: false, code: 'DIGEST_LENGTH_INVALID' });
  t.match((await ca.api('POST', '/verify/raw', { certificate: b64(Buffer.from('garbage')), data: b64(CONTENT), signature: b64(ecSig) })).json, { valid: false, code: 'CERT_DECODE_FAILED', gbtCode: 0x04000008 });
  t.match((await ca.api('POST', '/verify/raw', { certificate: b64(ec.der), data: b64(CONTENT), signature: b64(ecSig), at: '2001-01-01T00:00:00Z' })).json, { valid: false, code: 'CERT_NOT_YET_VALID', judgedAtSource: 'request' });
  t.match((await ca.api('POST', '/verify/raw', { certificate: b64(ec.der), data: b64(CONTENT), signature: b64(ecSig), at: '2099-01-01T00:00:00+08:00' })).json, { valid: false, code: 'CERT_EXPIRED' });

  problem(t, await ca.api('POST', '/verify/raw', { certSerial: '0123456789abcdef0123', data: b64(CONTENT), signature: b64(sig) }), 404, 'CERT_NOT_FOUND');
  problem(t, await ca.api('POST', '/verify/raw', { certSerial: sm2.serial, data: b64(CONTENT), digest: b64(Buffer.alloc(32)), signature: b64(sig) }), 400, 'DATA_OR_DIGEST_REQUIRED');
  problem(t, await ca.api('POST', '/verify/raw', { certSerial: sm2.serial, data: b64(CONTENT) }), 400, 'SIGNATURE_REQUIRED');
  problem(t, await ca.api('POST', '/verify/raw', { data: b64(CONTENT), signature: b64(sig) }), 400, 'CERTIFICATE_REQUIRED');
  problem(t, await ca.api('POST', '/verify/raw', { certSerial: sm2.serial, data: b64(CONTENT), signature: b64(sig), at: 'yesterday' }), 400, 'VERIFY_REQUEST_INVALID');
  problem(t, await ca.api('POST', '/verify/raw', { certSerial: sm2.serial, data: b64(CONTENT), signature: b64(sig), hash: 'md5' }), 400, 'VERIFY_REQUEST_INVALID');

  const c = await ca.api('POST', '/verify/certificate', { certificate: sm2.pem });
  t.match(c.json, { valid: true, code: 'OK', signer: { serial: sm2.serial } });
  t.match((await ca.api('POST', '/verify/certificate', { certificate: b64(sm2.der.subarray(0, 50)) })).json, { valid: false, code: 'CERT_DECODE_FAILED' });
  problem(t, await ca.api('POST', '/verify/certificate', {}), 400, 'CERTIFICATE_REQUIRED');

  const anon = await ca.publicCall('/api/v1/verify/certificate', { method: 'POST', https: true, body: Buffer.from(JSON.stringify({ certificate: sm2.pem })), headers: { 'Content-Type': 'application/json' } });
  t.equal(anon.status, 401, 'behind app authentication');
});

t.test('revoked through the API: CERT_REVOKED at level 2 after the revocation, valid before it and at levels 0/1', async (t) => {
  const k = await issue('sm2', 'sm2-to-revoke');
  const before = await signCms({ signer: k.signer, certificate: k.der, content: CONTENT, detached: false, form: 'rfc5652', signingTime: new Date(Date.now() - 2_000) });
  const rv = await ca.api('POST', `/certs/${k.serial}/revoke`, { reason: 'keyCompromise' });
  t.equal(rv.status, 200);
  const after = await signCms({ signer: k.signer, certificate: k.der, content: CONTENT, detached: false, form: 'rfc5652', signingTime: new Date(Date.now() + 2_000) });
  const r = await ca.api('POST', '/verify/cms', { cms: b64(after) });
  t.match(r.json, { valid: false, code: 'CERT_REVOKED', gbtCode: 0x0400000b });
  t.match(r.json.checks.find((c: any) => c.name === 'revocation'), { ok: false, label: '证书状态' });
  t.match(r.json.revocation.certificates[0], { status: 'revoked', source: 'appliance-ca', reason: 'keyCompromise' });
  t.match((await ca.api('POST', '/verify/cms', { cms: b64(after), level: 1 })).json, { valid: true });
  t.match((await ca.api('POST', '/verify/cms', { cms: b64(after), level: 0 })).json, { valid: true });
  t.match((await ca.api('POST', '/verify/cms', { cms: b64(before) })).json, { valid: false, code: 'CERT_REVOKED', judgedAtSource: 'now' }, 'a signer-claimed earlier signingTime proves nothing');
  t.match((await ca.api('POST', '/verify/cms', { cms: b64(before), at: new Date(Date.now() - 60_000).toISOString() })).json, { valid: true, code: 'OK', judgedAtSource: 'request' }, 'judged at a time the caller vouches for, before the revocation');
  t.match((await ca.api('POST', '/verify/certificate', { certificate: k.pem })).json, { valid: false, code: 'CERT_REVOKED' });
});

t.test('POST /verify/batch', async (t) => {
  const cms = await signCms({ signer: ec.signer, certificate: ec.der, content: CONTENT, detached: false, form: 'rfc5652' });
  const sig = await sm2.signer.sign(CONTENT);
  const big = await ca.api('POST', '/verify/batch', { items: Array.from({ length: 1001 }, () => ({ type: 'certificate', certificate: 'AA==' })) });
  problem(t, big, 413, 'BATCH_TOO_LARGE');
  problem(t, await ca.api('POST', '/verify/batch', { items: [] }), 400, 'BATCH_EMPTY');
  problem(t, await ca.api('POST', '/verify/batch', { items: 'x' }), 400, 'VERIFY_REQUEST_INVALID');

  const items = [
    { type: 'cms', cms: b64(cms) },
    { type: 'raw', certSerial: sm2.serial, data: b64(CONTENT), signature: b64(sig) },
    { type: 'raw', certSerial: sm2.serial, data: b64(Buffer.from('tampered')), signature: b64(sig) },
    { type: 'certificate', certificate: b64(Buffer.from('garbage')) },
    { type: 'raw', certSerial: '0123456789abcdef0123', data: b64(CONTENT), signature: b64(sig) },
    { type: 'envelope' },
    'not an object',
    { type: 'cms', cms: '%%%' },
    { type: 'certificate', certificate: ec.pem, level: 0 },
  ];
  const r = await ca.api('POST', '/verify/batch', { items });
  t.equal(r.status, 200);
  t.match(r.json, { count: 9, valid: 3, invalid: 2, errors: 4 });
  const res = r.json.results;
  t.same(res.map((x: any) => x.index), [0, 1, 2, 3, 4, 5, 6, 7, 8], 'one answer per item, in order');
  t.match(res[0].report, { valid: true, form: 'rfc5652' });
  t.match(res[1].report, { valid: true, form: 'raw' });
  t.match(res[2].report, { valid: false, code: 'SIGNATURE_INVALID' });
  t.match(res[3].report, { valid: false, code: 'CERT_DECODE_FAILED' });
  t.match(res[4].error, { code: 'CERT_NOT_FOUND', status: 404 });
  t.match(res[5].error, { code: 'VERIFY_REQUEST_INVALID', status: 400 });
  t.match(res[6].error, { code: 'VERIFY_REQUEST_INVALID', status: 400 });
  t.match(res[7].error, { code: 'VERIFY_REQUEST_INVALID', status: 400 });
  t.ok(res[4].error.title && res[4].error.message['zh-CN'], 'errors carry a title and zh-CN message');
  t.match(res[8].report, { valid: true, level: 0 });

  const full = await ca.api('POST', '/verify/batch', { items: Array.from({ length: 1000 }, (_, i) => ({ type: 'raw', certSerial: sm2.serial, data: b64(CONTENT), signature: b64(i % 2 ? sig : Buffer.from('bad')) })) });
  t.equal(full.status, 200, '1,000 items are accepted');
  t.match(full.json, { count: 1000, valid: 500, invalid: 500, errors: 0 });
});
