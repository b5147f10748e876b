// The certificate authority as a hospital system meets it: `yiqian init` and `serve` (the built
// CLI), the roots from the plain-HTTP listener and `yiqian ca export`, the TLS handshake
// checked by `openssl s_client` against those roots, then /api/v1/certs with requests made by
// OpenSSL (SM2, P-256, RSA) signed with an app key — results verified by `openssl verify` —,
// server-side key generation opened by `openssl pkcs8`, queries, renewal, and bad input with
// its codes, leaving nothing half-issued.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { get as httpGet } from 'node:http';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cli, fetchRaw, serve, tempDataDir, type Served } from '../helpers/appliance.js';
import { signRequest } from '../../appliance/src/http/yq1-scheme.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';
import { openssl, opensslCsr } from '../helpers/pki-hierarchy.js';

const data = tempDataDir();
const tmp = dirname(data);
let server: Served | undefined;
let app: { id: string; signer: Signer };

t.teardown(async () => {
  if (server && server.proc.exitCode === null) await server.stop('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

interface Res {
  status: number;
  json: any;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

async function api(method: string, path: string, body?: unknown): Promise<Res> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  const auth = await signRequest(app.signer, app.id, method, `/api/v1${path}`, text);
  const r = await fetchRaw(`${server!.httpsUrl}/api/v1${path}`, {
    method,
    headers: { Authorization: auth, ...(text !== undefined ? { 'Content-Type': 'application/json' } : {}) },
    ...(text !== undefined ? { body: text } : {}),
  });
  let json: any;
  try {
    json = JSON.parse(r.body);
  } catch {
    json = undefined;
  }
  return { status: r.status, json, body: r.body, headers: r.headers };
}

function write(name: string, content: string | Buffer): string {
  const f = join(tmp, name);
  writeFileSync(f, content);
  return f;
}

/** A GET whose body stays bytes (DER). */
function getBytes(url: string): Promise<{ status: number; type?: string; body: Buffer }> {
  return new Promise((resolve, reject) => {
    httpGet(url, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body: Buffer.concat(chunks) }));
    }).on('error', reject);
  });
}

async function allSerials(): Promise<string[]> {
  const out: string[] = [];
  let cursor: string | undefined;
  do {
    const r = await api('GET', `/certs?limit=500${cursor ? `&cursor=${cursor}` : ''}`);
    out.push(...r.json.items.map((i: any) => i.serial));
    cursor = r.json.next;
  } while (cursor);
  return out;
}

t.before(async () => {
  const init = cli(['init', '--data', data, '--json']);
  if (init.code !== 0) throw new Error(init.stderr);
  server = await serve(data);
  const keyFile = join(tmp, 'emr.key');
  const created = cli(['app', 'create', '--data', data, '--name', 'EMR 电子病历', '--key-out', keyFile, '--json']);
  if (created.code !== 0) throw new Error(created.stderr);
  app = { id: JSON.parse(created.stdout).id, signer: createSoftwareSigner(readFileSync(keyFile, 'utf8')) };
});

t.test('roots: plain HTTP, HTTPS and `yiqian ca export` agree; CA certificates for AIA', async (t) => {
  const roots = await fetchRaw(`${server!.httpUrl}/pki/roots`);
  t.equal(roots.status, 200);
  t.match(String(roots.headers['content-type']), /^application\/x-pem-file/);
  const certs = roots.body.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/g) ?? [];
  t.equal(certs.length, 2, 'two roots');
  t.match(new X509Certificate(certs[0]!).subject, /SM2 Root CA/);
  t.match(new X509Certificate(certs[1]!).subject, /ECDSA Root CA/);
  t.equal((await fetchRaw(`${server!.httpsUrl}/pki/roots`)).body, roots.body, 'also over HTTPS, without app authentication');
  const exported = cli(['ca', 'export', '--data', data]);
  t.equal(exported.code, 0, exported.stderr);
  t.equal(exported.stdout, roots.body, '`yiqian ca export` prints the same bundle');
  const json = JSON.parse(cli(['ca', 'export', '--data', data, '--out', join(tmp, 'roots.pem'), '--json']).stdout);
  t.same(json.roots.map((r: any) => r.id), ['sm2-root', 'ecdsa-root']);
  t.equal(readFileSync(join(tmp, 'roots.pem'), 'utf8'), roots.body);
  const list = JSON.parse(cli(['ca', 'list', '--data', data, '--json']).stdout);
  t.same(list.map((c: any) => [c.id, c.role]), [['sm2-root', 'root'], ['sm2-issuing', 'issuing'], ['ecdsa-root', 'root'], ['ecdsa-issuing', 'issuing']]);

  const ca = await getBytes(`${server!.httpUrl}/pki/ca/ecdsa-issuing.crt`);
  t.equal(ca.status, 200);
  t.equal(ca.type, 'application/pkix-cert');
  const caDer = ca.body;
  t.equal(new X509Certificate(caDer).fingerprint256, new X509Certificate(readFileSync(join(data, 'tls/chain.pem'))).fingerprint256, 'the issuing CA of the TLS chain');
  t.match(openssl(['x509', '-inform', 'DER', '-noout', '-subject'], caDer), /ECDSA Issuing CA/);
  t.equal((await fetchRaw(`${server!.httpUrl}/pki/ca/nope.crt`)).status, 404);
});

t.test('TLS: the handshake presents leaf + issuing CA (not the root), and it verifies against /pki/roots', async (t) => {
  const { port } = new URL(server!.httpsUrl);
  const run = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-showcerts', '-CAfile', join(tmp, 'roots.pem'), '-verify_return_error', '-servername', 'localhost'], { input: '', encoding: 'utf8' });
  const sent = run.stdout.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  t.equal(sent.length, 2, 'two certificates in the handshake');
  t.match(new X509Certificate(sent[0]!).subject, /CN=yiqian /, 'the leaf');
  t.match(new X509Certificate(sent[1]!).subject, /ECDSA Issuing CA/, 'then the issuing CA');
  t.notMatch(run.stdout, /s:.*Root CA/, 'no root sent');
  t.match(run.stdout, /Verify return code: 0 \(ok\)/, 'verifies against the roots from /pki/roots');
  t.equal(new X509Certificate(sent[0]!).fingerprint256, new X509Certificate(readFileSync(join(data, 'tls/device.pem'))).fingerprint256);
  t.equal(new X509Certificate(sent[1]!).fingerprint256, new X509Certificate(readFileSync(join(data, 'tls/chain.pem'))).fingerprint256);
});

t.test('issue from OpenSSL requests over the API; the results verify', async (t) => {
  const roots = join(tmp, 'roots.pem');
  const cases = [
    { kind: 'sm2' as const, body: { profile: 'personal', commonName: '张三', employeeId: 'E1001', department: '心内科', departmentId: 'D-CARD', titleLevel: '主任医师' } },
    { kind: 'ecdsa-p256' as const, body: { profile: 'device', commonName: 'lis.hospital.example', dnsNames: ['lis.hospital.example'] } },
    { kind: 'rsa-2048' as const, body: { profile: 'device', commonName: 'pacs.hospital.example', dnsNames: ['pacs.hospital.example'], ipAddresses: ['10.2.3.4'] } },
  ];
  for (const { kind, body } of cases) {
    const { csrPem } = opensslCsr(tmp, kind, '/CN=from-csr', `api-${kind}`);
    const r = await api('POST', '/certs', { ...body, csr: csrPem });
    t.equal(r.status, 201, `${kind}: ${r.body.slice(0, 300)}`);
    t.equal(r.headers.location, `/api/v1/certs/${r.json.serial}`);
    t.match(r.json.certificate, /^-----BEGIN CERTIFICATE-----/);
    t.match(new X509Certificate(r.json.chain).subject, kind === 'sm2' ? /SM2 Issuing CA/ : /ECDSA Issuing CA/, 'chain = the issuing CA');
    const leaf = write(`api-${kind}.pem`, r.json.certificate);
    const chain = write(`api-${kind}-chain.pem`, r.json.chain);
    if (kind === 'sm2') {
      t.match(openssl(['verify', '-vfyopt', 'distid:1234567812345678', '-partial_chain', '-CAfile', chain, leaf]), /: OK/, 'SM2 leaf ← issuing');
      const sm2Root = write('sm2-root.pem', readFileSync(roots, 'utf8').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/)![0]);
      t.match(openssl(['verify', '-vfyopt', 'distid:1234567812345678', '-partial_chain', '-CAfile', sm2Root, chain]), /: OK/, 'SM2 issuing ← root');
    } else {
      t.match(openssl(['verify', '-purpose', 'sslserver', '-CAfile', roots, '-untrusted', chain, leaf]), /: OK/, `${kind}: chain to the ECDSA root`);
    }
    t.equal(r.json.record.keyOrigin, 'csr');
    const got = await api('GET', `/certs/${r.json.serial}`);
    t.equal(got.status, 200);
    t.equal(got.json.certificate, r.json.certificate);
    t.equal(got.json.issuedBy, `app:${app.id}`);
  }
  const byEmployee = await api('GET', '/certs?employeeId=E1001');
  t.equal(byEmployee.json.items.length, 1);
  t.equal(byEmployee.json.items[0].departmentId, 'D-CARD');
  t.equal(byEmployee.json.items[0].subject, 'serialNumber=E1001,CN=张三,title=主任医师,OU=心内科,O=医签 yiqian,C=CN');
  t.equal((await api('GET', `/certs?subject=${encodeURIComponent('pacs.hospital')}`)).json.items.length, 1);
  t.equal((await api('GET', '/certs?profile=tsa')).json.items.length, 2, 'the two TSA certificates made at init');
});

t.test('server-side key generation: encrypted PKCS#8 that openssl pkcs8 opens', async (t) => {
  for (const algorithm of ['sm2', 'ecdsa-p256', 'rsa-2048']) {
    const r = await api('POST', '/certs/keygen', { profile: 'organisation', commonName: '某某市人民医院', algorithm, password: 'hospital secret 1' });
    t.equal(r.status, 201, r.body.slice(0, 300));
    t.equal(r.headers['cache-control'], 'no-store');
    const p8 = write(`kg-${algorithm}.p8`, r.json.encryptedPrivateKey);
    const key = execFileSync('openssl', ['pkcs8', '-in', p8, '-passin', 'pass:hospital secret 1']).toString();
    const pub = execFileSync('openssl', ['pkey', '-pubout'], { input: key }).toString();
    const certPub = execFileSync('openssl', ['x509', '-noout', '-pubkey'], { input: r.json.certificate }).toString();
    t.equal(pub, certPub, `${algorithm}: the key in the PKCS#8 is the certified one`);
    t.equal(r.json.record.keyOrigin, 'server');
  }
  const weak = await api('POST', '/certs/keygen', { profile: 'organisation', commonName: 'x', algorithm: 'sm2', password: 'short' });
  t.equal(weak.json.code, 'PASSWORD_INVALID');
});

t.test('renewal and the expiry reminder over the API', async (t) => {
  const { csrPem } = opensslCsr(tmp, 'sm2', '/CN=x', 'api-renew');
  const short = await api('POST', '/certs', { profile: 'personal', commonName: '李四', employeeId: 'E2002', csr: csrPem, validityDays: 10 });
  t.equal(short.status, 201);
  const due = await api('GET', '/certs/expiring?days=30');
  t.equal(due.status, 200);
  t.equal(due.json.days, 30);
  t.ok(due.json.items.some((i: any) => i.serial === short.json.serial), 'a 10-day certificate is due within 30 days');
  const renewed = await api('POST', `/certs/${short.json.serial}/renew`, {});
  t.equal(renewed.status, 201, renewed.body.slice(0, 300));
  t.equal(renewed.json.record.renewedFrom, short.json.serial);
  t.equal((await api('GET', `/certs/${short.json.serial}`)).json.renewedBy, renewed.json.serial);
  t.notOk((await api('GET', '/certs/expiring?days=30')).json.items.some((i: any) => i.serial === short.json.serial), 'renewed: no longer reminded');
  const again = await api('POST', `/certs/${short.json.serial}/renew`, {});
  t.equal(again.status, 409);
  t.equal(again.json.code, 'CERT_NOT_RENEWABLE');
  const newKey = await api('POST', `/certs/${renewed.json.serial}/renew`, { keygen: { algorithm: 'sm2', password: 'renewal secret' } });
  t.equal(newKey.status, 201);
  t.match(newKey.json.encryptedPrivateKey, /ENCRYPTED PRIVATE KEY/);
});

t.test('bad input: specific codes with zh-CN and en messages; nothing half-issued', async (t) => {
  const before = await allSerials();
  const sm2 = opensslCsr(tmp, 'sm2', '/CN=bad', 'api-bad-sm2');
  const p256 = opensslCsr(tmp, 'ecdsa-p256', '/CN=bad', 'api-bad-p256');
  const flipped = Buffer.from(p256.csrPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  flipped[flipped.indexOf(Buffer.from('bad'))] ^= 0x01;
  const cases: [string, string, string, unknown, number, string][] = [
    ['malformed CSR', 'POST', '/certs', { profile: 'personal', commonName: 'x', employeeId: 'E9', csr: '-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n' }, 400, 'CSR_MALFORMED'],
    ['signature does not match', 'POST', '/certs', { profile: 'personal', commonName: 'x', employeeId: 'E9', csr: flipped.toString('base64') }, 400, 'CSR_SIGNATURE_INVALID'],
    ['unknown profile', 'POST', '/certs', { profile: 'doctor', commonName: 'x', csr: p256.csrPem }, 400, 'PROFILE_UNKNOWN'],
    ['SM2 CSR in the ECDSA hierarchy', 'POST', '/certs', { profile: 'personal', hierarchy: 'ecdsa', commonName: 'x', employeeId: 'E9', csr: sm2.csrPem }, 400, 'KEY_ALGORITHM_MISMATCH'],
    ['ECDSA CSR in the SM2 hierarchy', 'POST', '/certs', { profile: 'personal', hierarchy: 'sm2', commonName: 'x', employeeId: 'E9', csr: p256.csrPem }, 400, 'KEY_ALGORITHM_MISMATCH'],
    ['missing required field', 'POST', '/certs', { profile: 'personal', commonName: 'x', csr: p256.csrPem }, 400, 'PROFILE_FIELD_MISSING'],
    ['no CSR', 'POST', '/certs', { profile: 'personal', commonName: 'x', employeeId: 'E9' }, 400, 'BAD_REQUEST'],
    ['wrong JSON type', 'POST', '/certs', { profile: 'device', commonName: 'x', dnsNames: 'a.example', csr: p256.csrPem }, 400, 'BAD_REQUEST'],
    ['OCSP profile from the API', 'POST', '/certs', { profile: 'ocsp', commonName: 'x', csr: p256.csrPem }, 400, 'PROFILE_NOT_ALLOWED'],
    ['unknown serial', 'GET', '/certs/0123456789abcdef', undefined, 404, 'CERT_NOT_FOUND'],
    ['renew unknown serial', 'POST', '/certs/0123456789abcdef/renew', {}, 404, 'CERT_NOT_FOUND'],
    ['bad status filter', 'GET', '/certs?status=lost', undefined, 400, 'BAD_REQUEST'],
  ];
  for (const [what, method, path, body, status, code] of cases) {
    const r = await api(method, path, body);
    t.equal(r.status, status, `${what}: ${status}`);
    t.equal(r.json?.code, code, `${what}: ${code}`);
    t.ok(r.json?.message?.['zh-CN'] && r.json?.message?.en, `${what}: zh-CN and en messages`);
    t.match(String(r.headers['content-type']), /application\/problem\+json/);
  }
  const unauthenticated = await fetchRaw(`${server!.httpsUrl}/api/v1/certs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
  t.equal(unauthenticated.status, 401, 'the API needs an app signature');
  t.same(await allSerials(), before, 'nothing was issued by the refused requests');
});
