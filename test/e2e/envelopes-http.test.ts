// Digital envelopes (issue 4 item 5) as hospital systems meet them over HTTPS (needs `make build`):
// `yiqian init`, two apps, held encryption keys made with `yiqian signing-key create --usage
// encrypt` (SM2, RSA-2048 with an access code, P-256) granted to one app, `yiqian serve`. Then,
// with YQ1-signed requests:
//   - an app seals to certificates OpenSSL made (RSA and EC P-256) and `openssl cms -decrypt`
//     opens them with the recipient's key (RFC 5083 AuthEnvelopedData, AES-256-GCM; OAEP-SHA-256 /
//     RFC 5753 ECDH);
//   - it seals to each held key (by label, and to the certificate from /signing-keys/…/certificate)
//     and opens with /envelopes/open: the granted app gets the content, another app
//     KEY_NOT_GRANTED, the access code is required and checked; `openssl cms -encrypt` output for
//     the held RSA and EC keys opens too;
//   - each bad input gets its code over HTTP (problem+json, no stack), and the service keeps serving.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cli, fetchRaw, serve, tempDataDir, type Served } from '../helpers/appliance.js';
import { signRequest } from '../../appliance/src/http/yq1-scheme.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const data = tempDataDir();
const work = dirname(data);
let server: Served | undefined;
const apps: Record<'his' | 'lis', { id: string; signer: Signer }> = {} as never;
const CONTENT = Buffer.from('检验报告 LAB-2026-0501 / lab report: 血常规未见异常, HbA1c 5.4 %\n', 'utf8');
const ACCESS_CODE = 'records-2026';
const b64 = (b: Buffer | string): string => Buffer.from(b).toString('base64');

t.teardown(async () => {
  if (server && server.proc.exitCode === null) await server.stop('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

interface Res {
  status: number;
  json: any;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

async function call(who: 'his' | 'lis', method: 'GET' | 'POST', path: string, body?: unknown, raw?: string): Promise<Res> {
  const app = apps[who];
  const text = raw ?? (body === undefined ? '' : JSON.stringify(body));
  const auth = await signRequest(app.signer, app.id, method, `/api/v1${path}`, text);
  const headers: Record<string, string> = { Authorization: auth };
  if (method === 'POST') headers['Content-Type'] = 'application/json';
  const r = await fetchRaw(`${server!.httpsUrl}/api/v1${path}`, { method, headers, ...(method === 'POST' ? { body: text } : {}) });
  let json: any;
  try {
    json = JSON.parse(r.body);
  } catch {
    json = undefined;
  }
  return { status: r.status, json, body: r.body, headers: r.headers };
}

const post = (who: 'his' | 'lis', path: string, body: unknown, raw?: string): Promise<Res> => call(who, 'POST', path, body, raw);

function openssl(args: string[], input?: Buffer): Buffer {
  return execFileSync('openssl', args, { cwd: work, input, stdio: ['pipe', 'pipe', 'pipe'] });
}

function run(args: string[]): string {
  const r = cli(args);
  if (r.code !== 0) throw new Error(`yiqian ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** A 4xx problem+json with this code, zh and en messages and no stack. */
function problem(t: Test, r: Res, status: number, code: string, what: string): void {
  t.equal(r.status, status, `${what}: HTTP ${status}${r.status !== status ? ` (${r.body.slice(0, 300)})` : ''}`);
  t.match(String(r.headers['content-type']), /^application\/problem\+json/, `${what}: problem+json`);
  t.equal(r.json?.code, code, `${what}: ${code}`);
  t.ok(r.json?.message?.['zh-CN'] && r.json?.message?.en, `${what}: zh-CN and en messages`);
  t.notMatch(r.body, /\n\s+at |node_modules|\.ts:\d+/, `${what}: no stack`);
}

t.before(async () => {
  run(['init', '--data', data, '--json']);
  for (const who of ['his', 'lis'] as const) {
    const keyFile = join(work, `${who}.key`);
    const id = JSON.parse(run(['app', 'create', '--data', data, '--name', who.toUpperCase(), '--key-out', keyFile, '--json'])).id as string;
    apps[who] = { id, signer: createSoftwareSigner(readFileSync(keyFile, 'utf8')) };
  }
  writeFileSync(join(work, 'code.txt'), `${ACCESS_CODE}\n`);
  const enc = (label: string, alg: string, extra: string[] = []): void => {
    run(['signing-key', 'create', '--data', data, '--label', label, '--kind', 'department', '--usage', 'encrypt', '--alg', alg, '--cn', `病案室 ${alg}`, '--grant', apps.his.id, ...extra]);
  };
  enc('records-sm2', 'sm2');
  enc('records-rsa', 'rsa-2048', ['--access-code-file', join(work, 'code.txt')]);
  enc('records-ec', 'ecdsa-p256');
  run(['signing-key', 'create', '--data', data, '--label', 'org-sign', '--kind', 'organisation', '--alg', 'ecdsa-p256', '--cn', '某某医院', '--grant', apps.his.id]);
  writeFileSync(join(work, 'lab.txt'), CONTENT);
  server = await serve(data);
});

t.test('seal to OpenSSL-made RSA and EC certificates; openssl cms -decrypt opens them', async (t) => {
  openssl(['req', '-x509', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'clinic-rsa.key', '-out', 'clinic-rsa.pem', '-days', '30', '-subj', '/CN=clinic rsa', '-addext', 'keyUsage=critical,keyEncipherment']);
  openssl(['req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'clinic-ec.key', '-out', 'clinic-ec.pem', '-days', '30', '-subj', '/CN=clinic ec', '-addext', 'keyUsage=critical,keyAgreement']);
  const cases: Array<[string, string, string | RegExp]> = [
    ['clinic-rsa', 'RSAES-OAEP-SHA256', 'AES-256-GCM'],
    ['clinic-ec', 'ECDH-SHA256KDF-AES256WRAP', 'AES-256-GCM'],
  ];
  for (const [name, kek, cek] of cases) {
    const pem = readFileSync(join(work, `${name}.pem`), 'utf8');
    // The certificate as PEM, and as base64 DER.
    for (const recipientCertificate of [pem, b64(openssl(['x509', '-in', `${name}.pem`, '-outform', 'DER']))]) {
      const r = await post('his', '/envelopes/seal', { content: b64(CONTENT), recipientCertificate });
      t.equal(r.status, 200, `${name}: sealed ${r.status !== 200 ? r.body : ''}`);
      t.match(r.json, { form: 'rfc5083', contentEncryption: cek, keyEncryption: kek }, `${name}: ${kek}`);
      writeFileSync(join(work, `${name}.env`), Buffer.from(r.json.envelope, 'base64'));
      const out = openssl(['cms', '-decrypt', '-binary', '-inform', 'DER', '-in', `${name}.env`, '-recip', `${name}.pem`, '-inkey', `${name}.key`]);
      t.same(out, CONTENT, `${name}: openssl cms -decrypt recovers the content`);
    }
  }
});

t.test('seal to held encryption keys (SM2, RSA, P-256) and open them through /envelopes/open', async (t) => {
  const expected: Record<string, { form: string; cek: string; kek: RegExp }> = {
    'records-sm2': { form: 'gmt0010', cek: 'SM4-CBC', kek: /SM2/ },
    'records-rsa': { form: 'rfc5083', cek: 'AES-256-GCM', kek: /^RSAES-OAEP-SHA256$/ },
    'records-ec': { form: 'rfc5083', cek: 'AES-256-GCM', kek: /^ECDH-SHA256KDF-AES256WRAP$/ },
  };
  for (const [label, e] of Object.entries(expected)) {
    const accessCode = label === 'records-rsa' ? { accessCode: ACCESS_CODE } : {};
    // By label: anyone may encrypt to a held key (here the app that is not granted it).
    const byKey = await post('lis', '/envelopes/seal', { content: b64(CONTENT), recipientKey: label });
    t.equal(byKey.status, 200, `${label}: sealed by recipientKey ${byKey.status !== 200 ? byKey.body : ''}`);
    t.match(byKey.json, { form: e.form, contentEncryption: e.cek, keyEncryption: e.kek }, `${label}: ${e.form} ${e.cek}`);
    // To the certificate the API hands out.
    const cert = await call('his', 'GET', `/signing-keys/${label}/certificate`);
    t.equal(cert.status, 200, `${label}: certificate`);
    writeFileSync(join(work, `${label}.pem`), cert.body);
    const byCert = await post('his', '/envelopes/seal', { content: b64(CONTENT), recipientCertificate: cert.body });
    t.equal(byCert.status, 200, `${label}: sealed by certificate`);

    for (const env of [byKey.json.envelope, byCert.json.envelope]) {
      const opened = await post('his', '/envelopes/open', { envelope: env, key: label, ...accessCode });
      t.equal(opened.status, 200, `${label}: opened ${opened.status !== 200 ? opened.body : ''}`);
      t.same(Buffer.from(opened.json?.content ?? '', 'base64'), CONTENT, `${label}: the content`);
      t.match(opened.json, { form: e.form, contentEncryption: e.cek, keyEncryption: e.kek });
    }
    problem(t, await post('lis', '/envelopes/open', { envelope: byKey.json.envelope, key: label, ...accessCode }), 403, 'KEY_NOT_GRANTED', `${label}: another app`);
    // By id as well as label.
    const id = (await call('his', 'GET', `/signing-keys/${label}`)).json.id as string;
    const byId = await post('his', '/envelopes/open', { envelope: byKey.json.envelope, key: id, ...accessCode });
    t.equal(byId.status, 200, `${label}: opened by key id`);
  }
});

t.test('the access code of a held encryption key', async (t) => {
  const sealed = await post('his', '/envelopes/seal', { content: b64(CONTENT), recipientKey: 'records-rsa' });
  problem(t, await post('his', '/envelopes/open', { envelope: sealed.json.envelope, key: 'records-rsa' }), 403, 'ACCESS_CODE_REQUIRED', 'no access code');
  problem(t, await post('his', '/envelopes/open', { envelope: sealed.json.envelope, key: 'records-rsa', accessCode: 'wrong-code-1' }), 403, 'ACCESS_CODE_INVALID', 'a wrong access code');
  problem(t, await post('his', '/envelopes/open', { envelope: sealed.json.envelope, key: 'records-rsa', accessCode: 42 }), 400, 'BAD_REQUEST', 'an access code that is not a string');
  const ok = await post('his', '/envelopes/open', { envelope: sealed.json.envelope, key: 'records-rsa', accessCode: ACCESS_CODE });
  t.equal(ok.status, 200, 'the right code opens it');
  t.same(Buffer.from(ok.json.content, 'base64'), CONTENT);
});

t.test('what openssl cms -encrypt makes for the held RSA and EC keys opens through the API', async (t) => {
  const oaep256 = ['-keyopt', 'rsa_padding_mode:oaep', '-keyopt', 'rsa_oaep_md:sha256', '-keyopt', 'rsa_mgf1_md:sha256'];
  const cases: Array<[string, string[], string[], string, string]> = [
    ['records-rsa', ['-aes-256-gcm'], oaep256, 'AES-256-GCM', 'RSAES-OAEP-SHA256'],
    ['records-rsa', ['-aes-256-cbc'], [], 'AES-256-CBC', 'RSAES-PKCS1-v1_5'],
    ['records-ec', ['-aes-256-gcm'], [], 'AES-256-GCM', 'ECDH-SHA1KDF-AES256WRAP'],
  ];
  for (const [label, cipher, keyOpts, cek, kek] of cases) {
    const env = openssl(['cms', '-encrypt', '-binary', ...cipher, '-in', 'lab.txt', '-outform', 'DER', '-recip', `${label}.pem`, ...keyOpts]);
    const r = await post('his', '/envelopes/open', { envelope: b64(env), key: label, ...(label === 'records-rsa' ? { accessCode: ACCESS_CODE } : {}) });
    t.equal(r.status, 200, `${label} ${cek} ${kek}: opened ${r.status !== 200 ? r.body : ''}`);
    t.same(Buffer.from(r.json?.content ?? '', 'base64'), CONTENT, `${label} ${cek}: content`);
    t.match(r.json, { form: /^rfc5(083|652)$/, contentEncryption: cek, keyEncryption: kek });
  }
  // PEM ("-----BEGIN CMS-----") is accepted as well as base64 DER.
  const pem = openssl(['cms', '-encrypt', '-binary', '-aes-256-gcm', '-in', 'lab.txt', '-outform', 'PEM', '-recip', 'records-ec.pem']).toString();
  const r = await post('his', '/envelopes/open', { envelope: pem, key: 'records-ec' });
  t.equal(r.status, 200, 'PEM envelope');
  // OpenSSL's default for an EC recipient wraps the key with 3DES (RFC 3217): refused by name.
  const des = openssl(['cms', '-encrypt', '-binary', '-in', 'lab.txt', '-outform', 'DER', 'records-ec.pem']);
  problem(t, await post('his', '/envelopes/open', { envelope: b64(des), key: 'records-ec' }), 400, 'UNSUPPORTED_ALGORITHM', '3DES key wrap for EC');
});

t.test('bad inputs get their own codes over HTTP, and the service keeps serving', async (t) => {
  const forClinic = b64(readFileSync(join(work, 'clinic-rsa.env')));
  const forRecords = (await post('his', '/envelopes/seal', { content: b64(CONTENT), recipientKey: 'records-ec' })).json.envelope as string;

  // seal
  problem(t, await post('his', '/envelopes/seal', { recipientKey: 'records-ec' }), 400, 'BAD_REQUEST', 'no content');
  problem(t, await post('his', '/envelopes/seal', { content: 'not base64!', recipientKey: 'records-ec' }), 400, 'BAD_REQUEST', 'content not base64');
  problem(t, await post('his', '/envelopes/seal', { content: b64(CONTENT) }), 400, 'BAD_REQUEST', 'no recipient');
  problem(t, await post('his', '/envelopes/seal', { content: b64(CONTENT), recipientKey: 'records-ec', recipientCertificate: readFileSync(join(work, 'clinic-ec.pem'), 'utf8') }), 400, 'BAD_REQUEST', 'both recipients');
  problem(t, await post('his', '/envelopes/seal', { content: b64(CONTENT), recipientKey: 'no-such-key' }), 404, 'KEY_NOT_FOUND', 'unknown recipient key');
  problem(t, await post('his', '/envelopes/seal', { content: b64(CONTENT), recipientCertificate: b64(randomBytes(200)) }), 400, 'BAD_REQUEST', 'garbage certificate');
  problem(t, await post('his', '/envelopes/seal', { content: b64(CONTENT), recipientCertificate: '-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n' }), 400, 'BAD_REQUEST', 'broken PEM');
  openssl(['req', '-x509', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'signer.key', '-out', 'signer.pem', '-days', '30', '-subj', '/CN=signing only', '-addext', 'keyUsage=critical,digitalSignature']);
  problem(t, await post('his', '/envelopes/seal', { content: b64(CONTENT), recipientCertificate: readFileSync(join(work, 'signer.pem'), 'utf8') }), 400, 'ENVELOPE_RECIPIENT_UNSUITABLE', 'keyUsage digitalSignature only');
  // An expired certificate: `openssl ca -selfsign` is the OpenSSL 3.0 tool that takes explicit dates.
  writeFileSync(join(work, 'old.cnf'), '[ca]\ndefault_ca = d\n[d]\ndatabase = old-index.txt\nnew_certs_dir = .\nserial = old-serial.txt\ndefault_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n');
  writeFileSync(join(work, 'old-index.txt'), '');
  writeFileSync(join(work, 'old-serial.txt'), '01\n');
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'old.key', '-subj', '/CN=expired', '-out', 'old.csr']);
  openssl(['ca', '-batch', '-config', 'old.cnf', '-selfsign', '-keyfile', 'old.key', '-in', 'old.csr', '-startdate', '20200101000000Z', '-enddate', '20210101000000Z', '-notext', '-out', 'old.pem']);
  problem(t, await post('his', '/envelopes/seal', { content: b64(CONTENT), recipientCertificate: readFileSync(join(work, 'old.pem'), 'utf8') }), 400, 'ENVELOPE_RECIPIENT_UNSUITABLE', 'expired certificate');
  openssl(['req', '-x509', '-new', '-newkey', 'ed25519', '-nodes', '-keyout', 'ed.key', '-out', 'ed.pem', '-days', '30', '-subj', '/CN=ed25519']);
  problem(t, await post('his', '/envelopes/seal', { content: b64(CONTENT), recipientCertificate: readFileSync(join(work, 'ed.pem'), 'utf8') }), 400, 'UNSUPPORTED_ALGORITHM', 'an Ed25519 recipient');

  // open
  problem(t, await post('his', '/envelopes/open', { envelope: forRecords }), 400, 'BAD_REQUEST', 'no key');
  problem(t, await post('his', '/envelopes/open', { key: 'records-ec' }), 400, 'BAD_REQUEST', 'no envelope');
  problem(t, await post('his', '/envelopes/open', { envelope: b64(randomBytes(300)), key: 'records-ec' }), 400, 'ENVELOPE_MALFORMED', 'garbage envelope');
  problem(t, await post('his', '/envelopes/open', { envelope: b64(Buffer.from(forRecords, 'base64').subarray(0, 60)), key: 'records-ec' }), 400, 'ENVELOPE_MALFORMED', 'truncated envelope');
  problem(t, await post('his', '/envelopes/open', { envelope: forClinic, key: 'records-ec' }), 400, 'ENVELOPE_NOT_FOR_KEY', 'an envelope for another certificate');
  const tampered = Buffer.from(forRecords, 'base64');
  tampered[tampered.length - 1] ^= 1; // the GCM tag is the last field
  problem(t, await post('his', '/envelopes/open', { envelope: b64(tampered), key: 'records-ec' }), 400, 'DECRYPTION_FAILED', 'GCM tag tampered');
  problem(t, await post('his', '/envelopes/open', { envelope: forRecords, key: 'org-sign' }), 403, 'KEY_USAGE_MISMATCH', 'a signing key');
  problem(t, await post('his', '/envelopes/open', { envelope: forRecords, key: 'no-such-key' }), 404, 'KEY_NOT_FOUND', 'an unknown key');
  problem(t, await post('his', '/envelopes/open', {}, '{"envelope":'), 400, 'INVALID_JSON', 'broken JSON');
  problem(t, await post('his', '/envelopes/open', [1, 2]), 400, 'BAD_REQUEST', 'not an object');

  // Signing keys do not decrypt, encryption keys do not sign.
  problem(t, await post('his', '/sign/raw', { key: 'records-ec', data: b64(CONTENT) }), 403, 'KEY_USAGE_MISMATCH', 'signing with an encryption key');

  // Still serving.
  const again = await post('his', '/envelopes/open', { envelope: forRecords, key: 'records-ec' });
  t.equal(again.status, 200, 'the appliance still opens envelopes');
  t.same(Buffer.from(again.json.content, 'base64'), CONTENT);
  t.equal(server!.proc.exitCode, null, 'the process is alive');
});
