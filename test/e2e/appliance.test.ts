// The appliance as a new user meets it: `yiqian init`, `serve`, `app create`, a signed
// whoami over HTTPS, the plain-HTTP listener, `keys list`, clean stop — and the bad inputs
// at start (wrong PIN, missing token, unwritable dir, broken config).
import t from 'tap';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { cpSync, readFileSync, rmSync, statSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { dirname, join } from 'node:path';
import { cli, fetchRaw, serve, tempDataDir, type Served } from '../helpers/appliance.js';
import { signRequest } from '../../appliance/src/http/yq1-scheme.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';

const data = tempDataDir();
let server: Served | undefined;

t.teardown(async () => {
  if (server && server.proc.exitCode === null) await server.stop('SIGKILL');
  rmSync(dirname(data), { recursive: true, force: true });
});

async function whoami(s: Served, appId: string, keyPem: string): Promise<{ status: number; json: any }> {
  const signer = createSoftwareSigner(keyPem);
  const auth = await signRequest(signer, appId, 'GET', '/api/v1/whoami');
  const r = await fetchRaw(`${s.httpsUrl}/api/v1/whoami`, { headers: { Authorization: auth } });
  return { status: r.status, json: JSON.parse(r.body) };
}

t.test('init creates the appliance once; a second init changes nothing', async (t) => {
  const first = cli(['init', '--data', data, '--json']);
  t.equal(first.code, 0, first.stderr);
  const result = JSON.parse(first.stdout);
  t.equal(result.created, true);
  t.same(result.keys.map((k: any) => [k.label, k.algorithm, k.mode]), [['device-tls', 'ecdsa-p256', 'hsm'], ['device-identity-sm2', 'sm2', 'wrapped']]);
  t.same(result.cas.map((c: any) => c.id), ['sm2-root', 'sm2-issuing', 'ecdsa-root', 'ecdsa-issuing'], 'both CA hierarchies made at init');
  t.equal(statSync(join(data, 'secrets/hsm.pin')).mode & 0o777, 0o600, 'PIN file is 0600');
  const before = readFileSync(join(data, 'config.json'), 'utf8');
  const tokenFiles = readdirSync(join(data, 'hsm/tokens'), { recursive: true }).sort();
  const again = cli(['init', '--data', data]);
  t.equal(again.code, 0);
  t.match(again.stdout, /already initialised; nothing changed/);
  t.equal(readFileSync(join(data, 'config.json'), 'utf8'), before);
  t.same(readdirSync(join(data, 'hsm/tokens'), { recursive: true }).sort(), tokenFiles);
  const check = cli(['config', 'check', '--data', data, '--json']);
  t.equal(check.code, 0, check.stderr);
  t.equal(JSON.parse(check.stdout).ok, true);
});

t.test('keys list shows the device keys with their custody', async (t) => {
  const r = cli(['keys', 'list', '--data', data, '--json']);
  t.equal(r.code, 0, r.stderr);
  const keys = JSON.parse(r.stdout);
  const tls = keys.find((k: any) => k.label === 'device-tls');
  const id = keys.find((k: any) => k.label === 'device-identity-sm2');
  t.equal(tls.mode, 'hsm');
  t.equal(tls.algorithm, 'ecdsa-p256');
  t.match(tls.uri, /^pkcs11:.*object=device-tls/);
  t.equal(id.mode, 'wrapped');
  t.equal(id.algorithm, 'sm2');
  t.ok(id.kekUri, 'wrapped key names its KEK');
  t.notOk('wrappedKey' in id, 'the inventory does not print key ciphertext');
  const text = cli(['keys', 'list', '--data', data]);
  t.match(text.stdout, /device-tls\s+ecdsa-p256\s+hsm/);
});

t.test('serve: HTTPS with the HSM key, signed whoami, public HTTP, clean stop', async (t) => {
  server = await serve(data);
  const s = server;
  // serve() resolves on the URL lines; the lines after them may come in a later pipe chunk.
  for (let i = 0; i < 50 && !/npx yiqian app create/.test(s.output()); i++) await new Promise((r) => setTimeout(r, 100));
  t.match(s.output(), /npx yiqian app create --data .* --name/, 'prints the app-credential command');

  // The TLS handshake is signed by the token key: the served certificate is the device
  // certificate and its public key is the HSM key's.
  const health = await fetchRaw(`${s.httpsUrl}/healthz`);
  t.equal(health.status, 200);
  const served = new X509Certificate(health.peerCertificateDer!);
  const onDisk = new X509Certificate(readFileSync(join(data, 'tls/device.pem')));
  t.equal(served.fingerprint256, onDisk.fingerprint256);
  // Issued by the ECDSA issuing CA made at init (no longer self-signed); test/e2e/pki-issue-api.test.ts
  // checks the whole handshake chain against /pki/roots.
  const issuingCa = new X509Certificate(readFileSync(join(data, 'tls/chain.pem')));
  t.ok(served.checkIssued(issuingCa) && served.verify(issuingCa.publicKey), 'the TLS certificate is issued by the ECDSA issuing CA');
  t.notOk(served.checkIssued(served), 'not self-signed');
  const inventory = JSON.parse(cli(['keys', 'list', '--data', data, '--json']).stdout);
  const tlsKey = inventory.find((k: any) => k.label === 'device-tls');
  t.equal(served.publicKey.export({ format: 'der', type: 'spki' }).toString('base64'), createPublicKey({ key: Buffer.from(tlsKey.publicKeyInfo, 'base64'), format: 'der', type: 'spki' }).export({ format: 'der', type: 'spki' }).toString('base64'));

  for (const v of ['TLSv1.2', 'TLSv1.3'] as const) {
    const port = Number(new URL(s.httpsUrl).port);
    const ok = await new Promise<boolean>((res) => {
      const sock = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, minVersion: v, maxVersion: v }, () => { res(sock.getProtocol() === v); sock.end(); });
      sock.on('error', () => res(false));
    });
    t.ok(ok, `${v} handshake with the HSM-held key`);
  }

  const ready = await fetchRaw(`${s.httpsUrl}/readyz`);
  t.equal(ready.status, 200, ready.body);
  const readyJson = JSON.parse(ready.body);
  t.equal(readyJson.checks.hsm.ok, true);
  t.equal(readyJson.checks.store.ok, true);
  t.match(JSON.stringify(readyJson.checks.clock), /system-trusted/);

  // An app created by the CLI while the server runs can call the API at once.
  const keyFile = join(dirname(data), 'his.key');
  t.equal(cli(['evidence', 'project', 'create', 'outpatient', '--data', data, '--name', '门诊']).code, 0, 'an app goes into an existing project');
  const created = cli(['app', 'create', '--data', data, '--name', 'HIS 门诊', '--project', 'outpatient', '--key-out', keyFile]);
  t.equal(created.code, 0, created.stderr);
  const appId = created.stdout.trim();
  t.equal(statSync(keyFile).mode & 0o777, 0o600);
  const keyPem = readFileSync(keyFile, 'utf8');
  const me = await whoami(s, appId, keyPem);
  t.equal(me.status, 200, JSON.stringify(me.json));
  t.same(me.json, { appId, name: 'HIS 门诊', project: 'outpatient' });

  const ecKey = join(dirname(data), 'lis.key');
  const ec = cli(['app', 'create', '--data', data, '--name', 'LIS', '--alg', 'ecdsa-p256', '--key-out', ecKey, '--json']);
  t.equal(ec.code, 0, ec.stderr);
  const ecApp = JSON.parse(ec.stdout);
  t.equal((await whoami(s, ecApp.id, readFileSync(ecKey, 'utf8'))).status, 200);

  // Freezing through the CLI takes effect on the running server.
  t.equal(cli(['app', 'freeze', appId, '--data', data]).code, 0);
  const frozen = await whoami(s, appId, keyPem);
  t.equal(frozen.status, 403);
  t.equal(frozen.json.code, 'APP_FROZEN');
  t.equal(cli(['app', 'unfreeze', appId, '--data', data]).code, 0);
  t.equal((await whoami(s, appId, keyPem)).status, 200);
  const list = JSON.parse(cli(['app', 'list', '--data', data, '--json']).stdout);
  t.equal(list.length, 2);

  // Plain HTTP serves public objects only.
  const pem = await fetchRaw(`${s.httpUrl}/pki/device.pem`);
  t.equal(pem.status, 200);
  t.equal(new X509Certificate(pem.body).fingerprint256, onDisk.fingerprint256);
  const plainApi = await fetchRaw(`${s.httpUrl}/api/v1/whoami`);
  t.equal(plainApi.status, 403);
  t.equal(JSON.parse(plainApi.body).code, 'HTTPS_REQUIRED');

  // Metrics count HSM operations and requests by route.
  const metrics = await fetchRaw(`${s.httpsUrl}/metrics`);
  t.match(metrics.body, /yiqian_http_requests_total\{[^}]*route="\/api\/v1\/whoami"/);

  // SIGTERM while a request is in flight: the request still gets its answer.
  const auth = await signRequest(createSoftwareSigner(keyPem), appId, 'GET', '/api/v1/whoami', 'x'.repeat(10));
  const port = Number(new URL(s.httpsUrl).port);
  const inFlight = new Promise<string>((res, rej) => {
    const sock = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      sock.write(`GET /api/v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\nContent-Length: 10\r\nConnection: close\r\n\r\nxxxxx`);
      setTimeout(() => {
        void s.stop('SIGTERM');
        setTimeout(() => sock.write('xxxxx'), 300);
      }, 200);
    });
    let got = '';
    sock.on('data', (d) => { got += d.toString(); });
    sock.on('end', () => res(got));
    sock.on('error', rej);
  });
  const answer = await inFlight;
  t.match(answer, /^HTTP\/1\.1 200/, 'in-flight request finished after SIGTERM');
  const code = await new Promise<number | null>((res) => (s.proc.exitCode !== null ? res(s.proc.exitCode) : s.proc.once('exit', res)));
  t.equal(code, 0, 'exits 0 after SIGTERM');
  t.match(s.output(), /stopped\./);
  // The store was closed cleanly: the CLI opens it and the audit trail has the stop.
  t.equal(cli(['app', 'list', '--data', data]).code, 0);
});

t.test('bad input at start gives one-line reasons and non-zero exits', async (t) => {
  const wrongPin = cli(['serve', '--data', data, '--listen', '127.0.0.1:0', '--listen-http', '127.0.0.1:0'], { YIQIAN_HSM_PIN: '00000000' });
  t.equal(wrongPin.code, 1);
  t.match(wrongPin.stderr, /^yiqian: HSM_PIN_INCORRECT: /);
  t.equal(wrongPin.stderr.trim().split('\n').length, 1, 'one line');

  const noToken = join(dirname(data), 'no-token');
  cpSync(data, noToken, { recursive: true });
  rmSync(join(noToken, 'hsm/tokens'), { recursive: true });
  writeFileSync(join(noToken, 'hsm/softhsm2.conf'), `directories.tokendir = ${join(noToken, 'hsm/empty')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  const missing = cli(['serve', '--data', noToken, '--listen', '127.0.0.1:0', '--listen-http', '127.0.0.1:0']);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /^yiqian: (HSM_TOKEN_NOT_FOUND|HSM_UNAVAILABLE): /);

  const file = join(dirname(data), 'a-file');
  writeFileSync(file, 'x');
  const unwritable = cli(['init', '--data', join(file, 'data')]);
  t.equal(unwritable.code, 1);
  t.match(unwritable.stderr, /^yiqian: DATA_DIR_UNWRITABLE: /);

  const notInit = cli(['serve', '--data', join(dirname(data), 'nothing-here')]);
  t.equal(notInit.code, 1);
  t.match(notInit.stderr, /NOT_INITIALISED/);

  const broken = join(dirname(data), 'broken');
  cpSync(data, broken, { recursive: true });
  writeFileSync(join(broken, 'config.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(data, 'config.json'), 'utf8')), listen: 'nonsense', http: { bodyLimitBytes: -1 } }));
  const bad = cli(['config', 'check', '--data', broken]);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /CONFIG_INVALID: .*listen must be HOST:PORT/);

  const noName = cli(['app', 'create', '--data', data, '--key-out', join(dirname(data), 'k.pem')]);
  t.equal(noName.code, 2);
  t.match(noName.stderr, /^yiqian: --name is required\n$/);
  t.notOk(existsSync(join(dirname(data), 'k.pem')), 'no key file left behind');
  const badAlg = cli(['app', 'create', '--data', data, '--name', 'x', '--alg', 'rsa', '--key-out', join(dirname(data), 'k.pem')]);
  t.equal(badAlg.code, 2);
  const unknown = cli(['app', 'create', '--bogus']);
  t.equal(unknown.code, 2);
  t.match(unknown.stderr, /Unknown option '--bogus'/);
  const help = cli(['app', 'create', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /--key-out/);
  const overall = cli(['--help']);
  t.match(overall.stdout, /keys list/);
});
