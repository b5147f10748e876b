// Signing as a hospital system meets it (needs `make build`): `yiqian init`, two apps, held keys
// made with `yiqian signing-key create` (SM2 with an access code from standard input, ECDSA, RSA)
// granted to one app, `yiqian serve`; then over HTTPS with YQ1-signed requests: raw SM2 / ECDSA /
// RSA signatures (checked with openssl and the appliance's certificate), CMS in both forms with
// a CAdES-T time-stamp (checked by openssl cms -verify against `yiqian ca export`), a batch with
// good and bad items, KEY_NOT_GRANTED for the other app, and each bad input's code.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, createPublicKey, verify as nodeVerify } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CLI, cli, fetchRaw, serve, tempDataDir, type Served } from '../helpers/appliance.js';
import { signRequest } from '../../appliance/src/http/yq1-scheme.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';
import { sm2Verify } from '../../appliance/src/crypto/sm2.js';
import { OID_SIGNATURE_TIME_STAMP_TOKEN, parseSignedData } from '../../appliance/src/asn1/cms-signed-data.js';

const data = tempDataDir();
const work = dirname(data);
let server: Served | undefined;
const apps: Record<'his' | 'lis', { id: string; signer: Signer }> = {} as never;
const DOC = Buffer.from('住院病历 ZY-2026-004417 首页 / inpatient record front page', 'utf8');
const b64 = (b: Buffer | string): string => Buffer.from(b).toString('base64');

t.teardown(async () => {
  if (server && server.proc.exitCode === null) await server.stop('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

interface Res {
  status: number;
  json: any;
  body: string;
}

async function post(who: 'his' | 'lis', path: string, body: unknown, raw?: string): Promise<Res> {
  const app = apps[who];
  const text = raw ?? JSON.stringify(body);
  const auth = await signRequest(app.signer, app.id, 'POST', `/api/v1${path}`, text);
  const r = await fetchRaw(`${server!.httpsUrl}/api/v1${path}`, { method: 'POST', headers: { Authorization: auth, 'Content-Type': 'application/json' }, body: text });
  let json: any;
  try {
    json = JSON.parse(r.body);
  } catch {
    json = undefined;
  }
  return { status: r.status, json, body: r.body };
}

function openssl(args: string[]): { ok: boolean; out: string } {
  try {
    return { ok: true, out: execFileSync('openssl', args, { cwd: work, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    return { ok: false, out: String(err.stderr ?? err.message) };
  }
}

t.before(async () => {
  const init = cli(['init', '--data', data, '--json']);
  if (init.code !== 0) throw new Error(init.stderr);
  for (const who of ['his', 'lis'] as const) {
    const keyFile = join(work, `${who}.key`);
    const created = cli(['app', 'create', '--data', data, '--name', who.toUpperCase(), '--key-out', keyFile, '--json']);
    if (created.code !== 0) throw new Error(created.stderr);
    apps[who] = { id: JSON.parse(created.stdout).id, signer: createSoftwareSigner(readFileSync(keyFile, 'utf8')) };
  }
  const sm2 = spawnSync(
    process.execPath,
    [CLI, 'signing-key', 'create', '--data', data, '--label', 'org-sm2', '--kind', 'organisation', '--cn', '某某医院', '--grant', apps.his.id, '--access-code-file', '-'],
    { env: { ...process.env, NODE_ENV: 'test' }, input: 'hospital-2026\n', encoding: 'utf8', timeout: 120_000 },
  );
  if (sm2.status !== 0) throw new Error(sm2.stderr);
  for (const [label, alg] of [['seal-ecdsa', 'ecdsa-p256'], ['org-rsa', 'rsa-2048']] as const) {
    const r = cli(['signing-key', 'create', '--data', data, '--label', label, '--kind', 'seal', '--alg', alg, '--cn', `某某医院 ${alg}`, '--grant', apps.his.id]);
    if (r.code !== 0) throw new Error(r.stderr);
  }
  writeFileSync(join(work, 'roots.pem'), cli(['ca', 'export', '--data', data]).stdout);
  writeFileSync(join(work, 'doc.bin'), DOC);
  server = await serve(data);
});

t.test('raw signatures over HTTPS', async (t) => {
  const sm2 = await post('his', '/sign/raw', { key: 'org-sm2', accessCode: 'hospital-2026', data: b64(DOC) });
  t.equal(sm2.status, 200, sm2.body);
  t.match(sm2.json, { algorithm: 'SM2-SM3', keyId: /^[0-9A-Z]{26}$/, certSerial: /^[0-9a-f]+$/, certificate: /^-----BEGIN CERTIFICATE-----/ });
  const sm2Spki = createPublicKey(sm2.json.certificate).export({ type: 'spki', format: 'der' });
  t.ok(await sm2Verify(sm2Spki, DOC, Buffer.from(sm2.json.signature, 'base64')), 'SM2 signature verifies with the default ID');
  const withId = await post('his', '/sign/raw', { key: 'org-sm2', accessCode: 'hospital-2026', data: b64(DOC), sm2Id: '医生0042@hospital' });
  t.ok(await sm2Verify(sm2Spki, DOC, Buffer.from(withId.json.signature, 'base64'), { id: Buffer.from('医生0042@hospital', 'utf8') }), 'sm2Id is taken as UTF-8');

  const ec = await post('his', '/sign/raw', { key: 'seal-ecdsa', digest: b64(createHash('sha256').update(DOC).digest()) });
  t.equal(ec.status, 200, ec.body);
  t.equal(ec.json.algorithm, 'ECDSA-SHA256');
  t.ok(nodeVerify('sha256', DOC, ec.json.certificate, Buffer.from(ec.json.signature, 'base64')), 'ECDSA over a digest verifies over the document');

  const pss = await post('his', '/sign/raw', { key: 'org-rsa', data: b64(DOC), rsaPadding: 'pss', hash: 'sha384' });
  t.equal(pss.status, 200, pss.body);
  t.equal(pss.json.algorithm, 'RSA-PSS-SHA384');
  writeFileSync(join(work, 'rsa.pem'), pss.json.certificate);
  writeFileSync(join(work, 'rsa.sig'), Buffer.from(pss.json.signature, 'base64'));
  openssl(['x509', '-in', 'rsa.pem', '-pubkey', '-noout', '-out', 'rsa.pub']);
  const v = openssl(['dgst', '-sha384', '-verify', 'rsa.pub', '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:digest', '-signature', 'rsa.sig', 'doc.bin']);
  t.ok(v.ok, `openssl verifies RSA-PSS: ${v.out.trim()}`);
});

t.test('CMS over HTTPS: GB/T 35275 default, RFC 5652, CAdES-T; openssl verifies ECDSA to the exported roots', async (t) => {
  const gm = await post('his', '/sign/cms', { key: 'org-sm2', accessCode: 'hospital-2026', content: b64(DOC) });
  t.equal(gm.status, 200, gm.body);
  t.equal(gm.json.form, 'gbt35275');
  t.ok(Date.parse(gm.json.signingTime) > Date.now() - 120_000, 'signingTime is now');
  t.equal(parseSignedData(Buffer.from(gm.json.cms, 'base64')).eContentType, '1.2.156.10197.6.1.4.2.1');
  const rfc = await post('his', '/sign/cms', { key: 'org-sm2', accessCode: 'hospital-2026', content: b64(DOC), form: 'rfc5652', detached: true, timestamp: true });
  t.equal(rfc.status, 200, rfc.body);
  t.match(rfc.json, { form: 'rfc5652', timestamp: { genTime: /Z$/, serial: /^[0-9a-f]+$/ } });
  const si = parseSignedData(Buffer.from(rfc.json.cms, 'base64')).signerInfos[0];
  t.equal(si.unsignedAttrs[0]?.type, OID_SIGNATURE_TIME_STAMP_TOKEN, 'CAdES-T attribute');

  const ec = await post('his', '/sign/cms', { key: 'seal-ecdsa', content: b64(DOC), timestamp: true });
  t.equal(ec.status, 200, ec.body);
  t.equal(ec.json.form, 'rfc5652');
  writeFileSync(join(work, 'ec.p7s'), Buffer.from(ec.json.cms, 'base64'));
  const v = openssl(['cms', '-verify', '-binary', '-inform', 'DER', '-in', 'ec.p7s', '-purpose', 'any', '-CAfile', 'roots.pem', '-out', 'ec.out']);
  t.ok(v.ok, `openssl cms -verify: ${v.out.trim()}`);
  t.ok(readFileSync(join(work, 'ec.out')).equals(DOC), 'content out');
  const token = si.unsignedAttrs[0].values[0].raw;
  t.ok(token.length > 100, 'token embedded');
});

t.test('batch: mixed good and bad items, each answered on its own', async (t) => {
  const items = [
    { type: 'raw', key: 'seal-ecdsa', data: b64('a') },
    { type: 'cms', key: 'org-sm2', accessCode: 'hospital-2026', content: b64(DOC), detached: true },
    { type: 'raw', key: 'seal-ecdsa', digest: b64(Buffer.alloc(20)) },
    { type: 'raw', key: 'org-sm2', data: b64('x') },
    { type: 'rsa', key: 'org-rsa', data: b64('x') },
    { type: 'raw', key: 'no-such-key', data: b64('x') },
    'not an object',
    { type: 'raw', key: 'org-rsa', data: b64('y'), rsaPadding: 'pss' },
    { type: 'cms', key: 'seal-ecdsa', content: b64(DOC), form: 'gbt35275' },
  ];
  const r = await post('his', '/sign/batch', { items });
  t.equal(r.status, 200, r.body);
  t.equal(r.json.items.length, items.length);
  const by = (i: number) => r.json.items[i];
  t.match(by(0), { index: 0, ok: true, type: 'raw', algorithm: 'ECDSA-SHA256' });
  t.match(by(1), { index: 1, ok: true, type: 'cms', form: 'gbt35275' });
  t.match(by(2), { index: 2, ok: false, error: { code: 'DIGEST_LENGTH_INVALID', status: 400 } });
  t.match(by(3), { index: 3, ok: false, error: { code: 'ACCESS_CODE_REQUIRED', status: 403 } });
  t.match(by(4), { index: 4, ok: false, error: { code: 'SIGN_INPUT_INVALID', status: 400 } });
  t.match(by(5), { index: 5, ok: false, error: { code: 'KEY_NOT_FOUND', status: 404 } });
  t.match(by(6), { index: 6, ok: false, error: { code: 'SIGN_INPUT_INVALID' } });
  t.match(by(7), { index: 7, ok: true, algorithm: 'RSA-PSS-SHA256' });
  t.match(by(8), { index: 8, ok: false, error: { code: 'UNSUPPORTED_ALGORITHM', status: 400 } });
  t.equal(r.json.succeeded, 3);
  t.equal(r.json.failed, 6);
  t.ok(nodeVerify('sha256', Buffer.from('a'), by(0).certificate, Buffer.from(by(0).signature, 'base64')), 'batch item 0 verifies');

  const many = await post('his', '/sign/batch', { items: Array.from({ length: 200 }, (_, i) => ({ type: 'raw', key: 'seal-ecdsa', data: b64(`order ${i}`) })) });
  t.equal(many.status, 200);
  t.equal(many.json.succeeded, 200, '200 items in one call');
  t.ok(many.json.items.every((x: any, i: number) => x.index === i && nodeVerify('sha256', Buffer.from(`order ${i}`), x.certificate, Buffer.from(x.signature, 'base64'))), 'in order, each verifies');

  const big = await post('his', '/sign/batch', { items: Array.from({ length: 1001 }, () => ({ type: 'raw', key: 'seal-ecdsa', data: 'YQ==' })) });
  t.equal(big.status, 413);
  t.equal(big.json.code, 'BATCH_TOO_LARGE');
  const empty = await post('his', '/sign/batch', { items: [] });
  t.equal(empty.status, 400);
  t.equal(empty.json.code, 'BATCH_EMPTY');
});

t.test('KEY_NOT_GRANTED and each bad input with its code; the service keeps serving', async (t) => {
  const other = await post('lis', '/sign/raw', { key: 'seal-ecdsa', data: b64(DOC) });
  t.equal(other.status, 403);
  t.equal(other.json.code, 'KEY_NOT_GRANTED');
  t.equal((await post('lis', '/sign/cms', { key: 'org-sm2', content: b64(DOC) })).json.code, 'KEY_NOT_GRANTED');
  const cases: [string, string, unknown, number, string][] = [
    ['both data and digest', '/sign/raw', { key: 'seal-ecdsa', data: 'YQ==', digest: b64(Buffer.alloc(32)) }, 400, 'SIGN_INPUT_INVALID'],
    ['neither data nor digest', '/sign/raw', { key: 'seal-ecdsa' }, 400, 'SIGN_INPUT_INVALID'],
    ['not base64', '/sign/raw', { key: 'seal-ecdsa', data: 'not base64!' }, 400, 'SIGN_INPUT_INVALID'],
    ['unknown field', '/sign/raw', { key: 'seal-ecdsa', data: 'YQ==', digset: 'x' }, 400, 'SIGN_INPUT_INVALID'],
    ['no key', '/sign/raw', { data: 'YQ==' }, 400, 'SIGN_INPUT_INVALID'],
    ['SM2 digest of 20 bytes', '/sign/raw', { key: 'org-sm2', accessCode: 'hospital-2026', digest: b64(Buffer.alloc(20)) }, 400, 'DIGEST_LENGTH_INVALID'],
    ['sha512 digest of 32 bytes', '/sign/raw', { key: 'seal-ecdsa', digest: b64(Buffer.alloc(32)), hash: 'sha512' }, 400, 'DIGEST_LENGTH_INVALID'],
    ['hash with SM2', '/sign/raw', { key: 'org-sm2', accessCode: 'hospital-2026', data: 'YQ==', hash: 'sha256' }, 400, 'UNSUPPORTED_ALGORITHM'],
    ['hash md5', '/sign/raw', { key: 'seal-ecdsa', data: 'YQ==', hash: 'md5' }, 400, 'UNSUPPORTED_ALGORITHM'],
    ['PSS with ECDSA', '/sign/raw', { key: 'seal-ecdsa', data: 'YQ==', rsaPadding: 'pss' }, 400, 'UNSUPPORTED_ALGORITHM'],
    ['sm2Id with ECDSA', '/sign/raw', { key: 'seal-ecdsa', data: 'YQ==', sm2Id: 'x' }, 400, 'UNSUPPORTED_ALGORITHM'],
    ['sm2Id with a digest', '/sign/raw', { key: 'org-sm2', accessCode: 'hospital-2026', digest: b64(Buffer.alloc(32)), sm2Id: 'x' }, 400, 'SIGN_INPUT_INVALID'],
    ['wrong access code', '/sign/raw', { key: 'org-sm2', accessCode: 'wrong-code', data: 'YQ==' }, 403, 'ACCESS_CODE_INVALID'],
    ['unknown key', '/sign/cms', { key: 'nope', content: 'YQ==' }, 404, 'KEY_NOT_FOUND'],
    ['CMS without content', '/sign/cms', { key: 'seal-ecdsa' }, 400, 'SIGN_INPUT_INVALID'],
    ['CMS detached not boolean', '/sign/cms', { key: 'seal-ecdsa', content: 'YQ==', detached: 'yes' }, 400, 'SIGN_INPUT_INVALID'],
    ['CMS unknown form', '/sign/cms', { key: 'org-sm2', accessCode: 'hospital-2026', content: 'YQ==', form: 'pkcs7' }, 400, 'SIGN_INPUT_INVALID'],
    ['GB/T 35275 with RSA', '/sign/cms', { key: 'org-rsa', content: 'YQ==', form: 'gbt35275' }, 400, 'UNSUPPORTED_ALGORITHM'],
    ['body is an array', '/sign/raw', [], 400, 'SIGN_INPUT_INVALID'],
    ['batch items not an array', '/sign/batch', { items: {} }, 400, 'SIGN_INPUT_INVALID'],
  ];
  for (const [name, path, body, status, code] of cases) {
    const r = await post('his', path, body);
    t.equal(r.status, status, `${name}: ${status} (${r.body.slice(0, 200)})`);
    t.equal(r.json?.code, code, `${name}: ${code}`);
    t.ok(r.json?.message?.['zh-CN'] && r.json?.message?.en, `${name}: zh and en messages`);
    t.notMatch(r.body, /\bat .*\.js:\d+/, `${name}: no stack`);
  }
  const broken = await post('his', '/sign/raw', undefined, '{"key": ');
  t.equal(broken.status, 400);
  t.equal(broken.json.code, 'INVALID_JSON');
  const ok = await post('his', '/sign/raw', { key: 'seal-ecdsa', data: 'YQ==' });
  t.equal(ok.status, 200, 'still serving');
});
