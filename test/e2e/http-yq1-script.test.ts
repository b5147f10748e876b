// docs/examples/yq1-request.sh — the openssl + curl walk-through of docs/api-auth.md — run for
// real against an HTTPS server built from createApiApp (throwaway self-signed P-256 certificate
// made by openssl), with SM2 and ECDSA apps created by the real app service.
import t from 'tap';
import { execFile, execFileSync } from 'node:child_process';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Router from '@koa/router';
import { createApiApp } from '../../appliance/src/http/create-api-app.js';
import { jsonRoute } from '../../appliance/src/http/json-body.js';
import type { HttpState } from '../../appliance/src/http/state.js';
import { createMetrics } from '../../appliance/src/metrics.js';
import { openStore, type Store } from '../../appliance/src/store/open-store.js';
import { createAppService } from '../../appliance/src/identity/app-service.js';

const SCRIPT = resolve(import.meta.dirname, '../../docs/examples/yq1-request.sh');
const dir = mkdtempSync(join(tmpdir(), 'yq-script-'));
let store: Store;
let server: Server;
let base: string;
const apps: Record<'sm2' | 'ecdsa-p256', { id: string; keyFile: string }> = {} as never;

t.before(async () => {
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'tls.key'), '-out', join(dir, 'tls.pem'),
      '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'],
    { stdio: 'ignore' },
  );
  store = await openStore(join(dir, 'data'));
  const service = createAppService(store);
  for (const algorithm of ['sm2', 'ecdsa-p256'] as const) {
    const { app, privateKeyPem } = await service.create({ name: `script-${algorithm}`, project: 'his', algorithm, actor: 'test' });
    const keyFile = join(dir, `${algorithm}.key`);
    writeFileSync(keyFile, privateKeyPem, { mode: 0o600 });
    apps[algorithm] = { id: app.id, keyFile };
  }
  const echo = new Router<HttpState>();
  echo.post('/test/echo', jsonRoute(), (ctx) => {
    ctx.body = { got: ctx.request.body, app: ctx.state.app?.id };
  });
  const app = createApiApp({
    apps: store.apps,
    nonces: store.nonces,
    readiness: async () => ({ ready: true, checks: {} }),
    routers: [echo],
    metrics: createMetrics({ defaultMetrics: false }),
  });
  server = createServer({ key: readFileSync(join(dir, 'tls.key')), cert: readFileSync(join(dir, 'tls.pem')) }, app.callback());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

t.teardown(async () => {
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

function runScript(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile('bash', [SCRIPT, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      done({ code, stdout, stderr });
    });
  });
}

for (const algorithm of ['sm2', 'ecdsa-p256'] as const) {
  t.test(`yq1-request.sh with an ${algorithm} app key`, async (t) => {
    const { id, keyFile } = apps[algorithm];

    const who = await runScript(['--cacert', join(dir, 'tls.pem'), base, id, keyFile, 'GET', '/api/v1/whoami']);
    t.equal(who.code, 0, who.stderr);
    t.match(who.stderr, /HTTP 200/);
    t.same(JSON.parse(who.stdout), { appId: id, name: `script-${algorithm}`, project: 'his' });

    const bodyFile = join(dir, `body-${algorithm}.json`);
    writeFileSync(bodyFile, JSON.stringify({ 患者: '李四', items: [1, 2, 3] }));
    const post = await runScript(['-k', base, id, keyFile, 'POST', '/api/v1/test/echo?trace=1', bodyFile]);
    t.equal(post.code, 0, post.stderr);
    t.same(JSON.parse(post.stdout), { got: { 患者: '李四', items: [1, 2, 3] }, app: id });

    // The server really checks what the script signed: another app id with this key fails.
    const other = algorithm === 'sm2' ? apps['ecdsa-p256'].id : apps.sm2.id;
    const wrong = await runScript(['-k', base, other, keyFile, 'GET', '/api/v1/whoami']);
    t.equal(wrong.code, 22, 'curl --fail-with-body exit code');
    t.match(wrong.stderr, /HTTP 401/);
    t.equal(JSON.parse(wrong.stdout).code, 'BAD_SIGNATURE');
  });
}

t.test('the worked example of docs/api-auth.md §5, run as written', async (t) => {
  const doc = readFileSync(resolve(import.meta.dirname, '../../docs/api-auth.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## 5.'));
  const block = /```sh\n([^]*?)```/.exec(section)?.[1];
  t.ok(block, 'the section has a shell block');
  if (!block) return;
  t.match(block, /^BASE=.*$/m);
  t.match(block, /^APP=.*$/m);
  const work = mkdtempSync(join(dir, 'doc-'));
  writeFileSync(join(work, 'app.key'), readFileSync(apps.sm2.keyFile), { mode: 0o600 });
  writeFileSync(join(work, 'appliance-ca.pem'), readFileSync(join(dir, 'tls.pem')));
  // Only the two placeholders change: where the appliance is and which app calls.
  const script = block.replace(/^BASE=.*$/m, `BASE=${base}`).replace(/^APP=.*$/m, `APP=${apps.sm2.id}`);
  const res = await new Promise<{ code: number; stdout: string; stderr: string }>((done) =>
    execFile('bash', ['-euo', 'pipefail', '-c', script], { cwd: work, timeout: 30_000 }, (err, stdout, stderr) =>
      done({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    ),
  );
  t.equal(res.code, 0, res.stderr);
  t.same(JSON.parse(res.stdout), { appId: apps.sm2.id, name: 'script-sm2', project: 'his' });
});

t.test('yq1-request.sh refuses an untrusted certificate unless told', async (t) => {
  const res = await runScript([base, apps.sm2.id, apps.sm2.keyFile, 'GET', '/api/v1/whoami']);
  t.not(res.code, 0);
  t.match(res.stderr, /certificate/i);
});
