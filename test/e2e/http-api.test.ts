// The HTTPS API as a hospital system sees it: a koa app from createApiApp on 127.0.0.1:0,
// backed by the real LMDB store, apps made by the real app service, requests signed with the
// app's private key exactly as a client would (YQ1). Plain HTTP here: TLS is exercised by
// http-yq1-script.test.ts; nothing below depends on it.
import t from 'tap';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Router from '@koa/router';
import { pino } from 'pino';
import { createApiApp, type ApiDeps } from '../../appliance/src/http/create-api-app.js';
import { jsonRoute } from '../../appliance/src/http/json-body.js';
import { signRequest } from '../../appliance/src/http/yq1-scheme.js';
import type { HttpState } from '../../appliance/src/http/state.js';
import { createMetrics, type Metrics } from '../../appliance/src/metrics.js';
import { openStore, type Store } from '../../appliance/src/store/open-store.js';
import { createAppService } from '../../appliance/src/identity/app-service.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';

// ---- fixtures ----------------------------------------------------------------------------

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

interface TestApp {
  id: string;
  name: string;
  project: string;
  signer: Signer;
}

interface Res {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: any;
}

const dir = mkdtempSync(join(tmpdir(), 'yq-http-'));
let store: Store;
let sm2: TestApp;
let ecdsa: TestApp;
let otherSm2: TestApp;
let frozen: TestApp;

t.before(async () => {
  store = await openStore(dir);
  const service = createAppService(store);
  const make = async (name: string, algorithm: 'sm2' | 'ecdsa-p256'): Promise<TestApp> => {
    const { app, privateKeyPem } = await service.create({ name, project: 'his', algorithm, actor: 'test' });
    return { id: app.id, name: app.name, project: app.project, signer: createSoftwareSigner(privateKeyPem) };
  };
  sm2 = await make('emr-sm2', 'sm2');
  ecdsa = await make('lis-ecdsa', 'ecdsa-p256');
  otherSm2 = await make('pacs-sm2', 'sm2');
  frozen = await make('old-his', 'sm2');
  await service.freeze(frozen.id, 'test');
});

t.teardown(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A capability router standing in for the later issues: JSON echo, params, failures, slowness. */
function testRouter(hooks: { gate?: Promise<void>; entered?: () => void; lateMs?: number; lateDone?: () => void } = {}): Router<HttpState> {
  const r = new Router<HttpState>();
  r.post('/test/echo', jsonRoute(), (ctx) => {
    ctx.body = { body: ctx.request.body ?? null, rawLength: ctx.state.rawBody.length, app: ctx.state.app?.id };
  });
  r.get('/test/items/:id', (ctx) => {
    ctx.body = { id: ctx.params.id };
  });
  r.get('/test/boom', () => {
    throw new Error('secret internal detail: /var/lib/yiqian/db is on fire');
  });
  r.get('/test/slow', async (ctx) => {
    hooks.entered?.();
    await hooks.gate;
    ctx.body = { slow: 'done' };
  });
  r.get('/test/late', async (ctx) => {
    await sleep(hooks.lateMs ?? 0);
    ctx.body = { late: 'result' };
    hooks.lateDone?.();
  });
  return r;
}

interface Running {
  port: number;
  metrics: Metrics;
  logs: string[];
  close(): Promise<void>;
}

async function start(over: Partial<ApiDeps> = {}): Promise<Running> {
  const metrics = createMetrics();
  const logs: string[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void logs.push(s) });
  const app = createApiApp({
    apps: store.apps,
    nonces: store.nonces,
    readiness: async () => ({ ready: true, checks: { store: { ok: true } } }),
    routers: [testRouter()],
    metrics,
    log,
    ...over,
  });
  const server: Server = createServer(app.callback());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    metrics,
    logs,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function call(port: number, method: string, path: string, opts: { headers?: Record<string, string>; body?: Buffer | string } = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const body = opts.body === undefined ? undefined : Buffer.from(opts.body);
    const headers: Record<string, string> = { ...opts.headers };
    if (body) headers['Content-Length'] = String(body.length);
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: any;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

interface SignOpts {
  body?: string | Buffer;
  contentType?: string;
  /** Sign this path but send `path`. */
  signedPath?: string;
  /** Sign this body but send `body`. */
  signedBody?: string | Buffer;
  ts?: number;
  nonce?: string;
  headers?: Record<string, string>;
}

async function authHeader(app: TestApp, method: string, path: string, o: SignOpts = {}): Promise<string> {
  return signRequest(app.signer, app.id, method, o.signedPath ?? path, o.signedBody ?? o.body, o.ts ?? Date.now(), o.nonce);
}

async function signed(port: number, app: TestApp, method: string, path: string, o: SignOpts = {}): Promise<Res> {
  const headers: Record<string, string> = { Authorization: await authHeader(app, method, path, o), ...o.headers };
  if (o.body !== undefined) headers['Content-Type'] = o.contentType ?? 'application/json';
  return call(port, method, path, { headers, body: o.body });
}

function assertProblem(t: Test, res: Res, status: number, code: string): void {
  t.equal(res.status, status, `status ${status} (${res.text.slice(0, 200)})`);
  t.match(res.headers['content-type'], /^application\/problem\+json/, 'problem+json');
  t.equal(res.json?.code, code, `code ${code}`);
  t.equal(res.json?.status, status);
  t.equal(res.json?.type, `urn:yiqian:problem:${code.toLowerCase()}`);
  t.type(res.json?.title, 'string');
  t.type(res.json?.detail, 'string');
  t.equal(res.json?.message?.en, res.json?.title, 'title is the English text');
  t.equal(res.json?.message?.['zh-CN'], res.json?.detail, 'detail is the Chinese text');
  t.equal(res.json?.instance, res.headers['x-request-id'], 'instance is the request id');
}

function assert401(t: Test, res: Res, code: string): void {
  assertProblem(t, res, 401, code);
  t.equal(res.headers['www-authenticate'], 'YQ1-SM2-SM3, YQ1-ECDSA-SHA256');
}

// ---- the API, with default limits -------------------------------------------------------------

t.test('API over the real store and crypto', async (t) => {
  let ready = true;
  const srv = await start({
    readiness: async () => {
      await store.check();
      return { ready, checks: { store: { ok: true }, hsm: ready ? { ok: true } : { ok: false, detail: { reason: 'token not present' } } } };
    },
    devNotice: 'development appliance: SoftHSM2 token',
  });
  t.teardown(() => srv.close());
  const port = srv.port;

  t.test('whoami for an SM2 app and an ECDSA app', async (t) => {
    for (const app of [sm2, ecdsa]) {
      const res = await signed(port, app, 'GET', '/api/v1/whoami');
      t.equal(res.status, 200, res.text);
      t.same(res.json, { appId: app.id, name: app.name, project: 'his' });
      t.match(res.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'a request id was made');
      t.equal(res.headers['x-yiqian-notice'], 'development appliance: SoftHSM2 token');
    }
  });

  t.test('MISSING_AUTH, also for /api paths in other letter cases', async (t) => {
    assert401(t, await call(port, 'GET', '/api/v1/whoami'), 'MISSING_AUTH');
    assert401(t, await call(port, 'GET', '/API/V1/WHOAMI'), 'MISSING_AUTH');
    assert401(t, await call(port, 'GET', '/Api/v1/nothing-here'), 'MISSING_AUTH');
    const encoded = await call(port, 'GET', '/%61pi/v1/whoami');
    t.equal(encoded.status, 404, 'a percent-encoded /api is not routed to the API');
  });

  t.test('MALFORMED_AUTH carries the reason', async (t) => {
    const good = await authHeader(sm2, 'GET', '/api/v1/whoami');
    const cases: Array<[string, RegExp]> = [
      [good.replace('YQ1-SM2-SM3', 'YQ2-SM2-SM3'), /unknown scheme/],
      [good.replace(/,nonce=[0-9a-f]+/, ''), /missing parameter "nonce"/],
      [`${good},ts=1`, /duplicate parameter "ts"/],
      [good.replace(/nonce=[0-9a-f]+/, 'nonce=abc123'), /nonce must be 16–64 hexadecimal/],
      [good.replace(/ts=\d+/, 'ts=soon'), /ts must be a non-negative integer/],
      [good.replace(/sig=\S+/, 'sig=***'), /base64/],
    ];
    for (const [header, reason] of cases) {
      const res = await call(port, 'GET', '/api/v1/whoami', { headers: { Authorization: header } });
      assert401(t, res, 'MALFORMED_AUTH');
      t.match(res.json.reason, reason);
      t.match(res.json.message.en, reason);
    }
  });

  t.test('UNKNOWN_APP', async (t) => {
    const header = (await authHeader(sm2, 'GET', '/api/v1/whoami')).replace(`app=${sm2.id}`, 'app=01NOSUCHAPP0000000000000000');
    const res = await call(port, 'GET', '/api/v1/whoami', { headers: { Authorization: header } });
    assert401(t, res, 'UNKNOWN_APP');
  });

  t.test('BAD_SIGNATURE: another key, a scheme that does not fit the app, corrupted bytes', async (t) => {
    // Signed with another SM2 app's key but claiming to be `sm2`.
    const foreign = (await authHeader(otherSm2, 'GET', '/api/v1/whoami')).replace(`app=${otherSm2.id}`, `app=${sm2.id}`);
    assert401(t, await call(port, 'GET', '/api/v1/whoami', { headers: { Authorization: foreign } }), 'BAD_SIGNATURE');

    // The ECDSA app's own valid signature, presented under the SM2 scheme.
    const wrongScheme = (await authHeader(ecdsa, 'GET', '/api/v1/whoami')).replace('YQ1-ECDSA-SHA256', 'YQ1-SM2-SM3');
    const res = await call(port, 'GET', '/api/v1/whoami', { headers: { Authorization: wrongScheme } });
    assert401(t, res, 'BAD_SIGNATURE');
    t.match(res.json.reason, /scheme does not match/);

    // Flip a bit inside the DER signature; and a signature that is not DER at all.
    const good = await authHeader(ecdsa, 'GET', '/api/v1/whoami');
    const sig = Buffer.from(/sig=(\S+)$/.exec(good)![1]!, 'base64');
    sig[sig.length - 3]! ^= 0x01;
    const flipped = good.replace(/sig=\S+$/, `sig=${sig.toString('base64')}`);
    assert401(t, await call(port, 'GET', '/api/v1/whoami', { headers: { Authorization: flipped } }), 'BAD_SIGNATURE');
    const notDer = good.replace(/sig=\S+$/, `sig=${Buffer.alloc(64, 7).toString('base64')}`);
    assert401(t, await call(port, 'GET', '/api/v1/whoami', { headers: { Authorization: notDer } }), 'BAD_SIGNATURE');
  });

  t.test('CLOCK_SKEW both ways; inside the window is fine', async (t) => {
    for (const offset of [-301_000, 301_000]) {
      const res = await signed(port, sm2, 'GET', '/api/v1/whoami', { ts: Date.now() + offset });
      assert401(t, res, 'CLOCK_SKEW');
      t.equal(res.json.maxSkewMs, 300_000);
    }
    for (const offset of [-290_000, 290_000]) {
      t.equal((await signed(port, ecdsa, 'GET', '/api/v1/whoami', { ts: Date.now() + offset })).status, 200, `${offset} ms is accepted`);
    }
  });

  t.test('REPLAYED_NONCE; a forged request does not burn the nonce', async (t) => {
    const header = await authHeader(sm2, 'GET', '/api/v1/whoami');
    t.equal((await call(port, 'GET', '/api/v1/whoami', { headers: { Authorization: header } })).status, 200);
    assert401(t, await call(port, 'GET', '/api/v1/whoami', { headers: { Authorization: header } }), 'REPLAYED_NONCE');

    const nonce = 'feedface'.repeat(4);
    const forged = (await authHeader(otherSm2, 'GET', '/api/v1/whoami', { nonce })).replace(`app=${otherSm2.id}`, `app=${sm2.id}`);
    assert401(t, await call(port, 'GET', '/api/v1/whoami', { headers: { Authorization: forged } }), 'BAD_SIGNATURE');
    const genuine = await signed(port, sm2, 'GET', '/api/v1/whoami', { nonce });
    t.equal(genuine.status, 200, 'the real app can still use the nonce the forger tried');
    const sameNonceOtherApp = await signed(port, ecdsa, 'GET', '/api/v1/whoami', { nonce });
    t.equal(sameNonceOtherApp.status, 200, 'nonces are per app');
  });

  t.test('APP_FROZEN is 403 after a valid signature', async (t) => {
    const res = await signed(port, frozen, 'GET', '/api/v1/whoami');
    assertProblem(t, res, 403, 'APP_FROZEN');
    t.notOk(res.headers['www-authenticate'], 'no challenge on 403');
  });

  t.test('the body is signed: a body changed after signing is BAD_SIGNATURE', async (t) => {
    const body = JSON.stringify({ order: 42, patient: '张三' });
    const ok = await signed(port, sm2, 'POST', '/api/v1/test/echo', { body });
    t.equal(ok.status, 200, ok.text);
    t.same(ok.json, { body: { order: 42, patient: '张三' }, rawLength: Buffer.byteLength(body), app: sm2.id });
    for (const app of [sm2, ecdsa]) {
      const res = await signed(port, app, 'POST', '/api/v1/test/echo', { signedBody: body, body: body.replace('42', '43') });
      assert401(t, res, 'BAD_SIGNATURE');
    }
  });

  t.test('the query string is part of the signed path', async (t) => {
    t.equal((await signed(port, ecdsa, 'GET', '/api/v1/test/items/7?full=1&x=%2F')).status, 200);
    assert401(t, await signed(port, ecdsa, 'GET', '/api/v1/test/items/7?full=0', { signedPath: '/api/v1/test/items/7?full=1' }), 'BAD_SIGNATURE');
    assert401(t, await signed(port, ecdsa, 'GET', '/api/v1/test/items/7', { signedPath: '/api/v1/test/items/7?full=1' }), 'BAD_SIGNATURE');
    const signedForGet = await authHeader(sm2, 'GET', '/api/v1/whoami');
    assert401(t, await call(port, 'POST', '/api/v1/whoami', { headers: { Authorization: signedForGet } }), 'BAD_SIGNATURE');
  });

  t.test('invalid JSON → 400 INVALID_JSON; another content type on a JSON route → 415', async (t) => {
    const bad = await signed(port, sm2, 'POST', '/api/v1/test/echo', { body: '{"order": 42,' });
    assertProblem(t, bad, 400, 'INVALID_JSON');
    const latin1 = await signed(port, sm2, 'POST', '/api/v1/test/echo', { body: Buffer.from([0x7b, 0x22, 0xe9, 0x22, 0x3a, 0x31, 0x7d]) });
    assertProblem(t, latin1, 400, 'INVALID_JSON');
    const form = await signed(port, sm2, 'POST', '/api/v1/test/echo', { body: 'order=42', contentType: 'application/x-www-form-urlencoded' });
    assertProblem(t, form, 415, 'UNSUPPORTED_MEDIA_TYPE');
    const gz = await signed(port, sm2, 'POST', '/api/v1/test/echo', { body: '{}', headers: { 'Content-Encoding': 'gzip' } });
    assertProblem(t, gz, 415, 'UNSUPPORTED_MEDIA_TYPE');
    const unauthenticated = await call(port, 'POST', '/api/v1/test/echo', { body: '{oops', headers: { 'Content-Type': 'application/json' } });
    assert401(t, unauthenticated, 'MISSING_AUTH');
  });

  t.test('unknown route → 404 problem; known path with another method → 405 with Allow', async (t) => {
    assertProblem(t, await call(port, 'GET', '/no/such/thing'), 404, 'NOT_FOUND');
    assertProblem(t, await signed(port, sm2, 'GET', '/api/v1/no-such-capability'), 404, 'NOT_FOUND');
    const post = await call(port, 'POST', '/healthz', { body: '' });
    assertProblem(t, post, 405, 'METHOD_NOT_ALLOWED');
    t.equal(post.headers.allow, 'HEAD, GET');
    const del = await signed(port, ecdsa, 'DELETE', '/api/v1/whoami');
    assertProblem(t, del, 405, 'METHOD_NOT_ALLOWED');
    t.equal(del.headers.allow, 'HEAD, GET');
    const options = await signed(port, ecdsa, 'OPTIONS', '/api/v1/test/echo');
    t.equal(options.status, 204);
    t.equal(options.headers.allow, 'POST');
  });

  t.test('a plain Error → 500 INTERNAL without stack or message; logged with the request id', async (t) => {
    const res = await signed(port, sm2, 'GET', '/api/v1/test/boom', { headers: { 'X-Request-Id': 'his-trace-0001' } });
    assertProblem(t, res, 500, 'INTERNAL');
    t.equal(res.headers['x-request-id'], 'his-trace-0001');
    t.notMatch(res.text, /secret|on fire|\/var\/lib|at .*\.ts|Error:/, 'nothing internal leaks');
    const logged = srv.logs.map((l) => JSON.parse(l)).find((l) => l.requestId === 'his-trace-0001' && l.level === 50);
    t.ok(logged, 'the failure is logged at error level with the request id');
    t.match(logged?.err?.message, /on fire/, 'the log has the real message');
    t.match(logged?.err?.stack, /test\/boom|http-api\.test/, 'and the stack');
  });

  t.test('request id: a sane incoming one is echoed, anything else is replaced', async (t) => {
    const mine = await call(port, 'GET', '/healthz', { headers: { 'X-Request-Id': 'lb-7f3a9c:0042' } });
    t.equal(mine.headers['x-request-id'], 'lb-7f3a9c:0042');
    for (const insane of ['short', 'has space in it', 'x'.repeat(200), 'semi;colon-1234']) {
      const res = await call(port, 'GET', '/healthz', { headers: { 'X-Request-Id': insane } });
      t.match(res.headers['x-request-id'], /^[0-9a-f-]{36}$/, `"${insane.slice(0, 20)}" replaced`);
    }
  });

  t.test('healthz and readyz', async (t) => {
    const h = await call(port, 'GET', '/healthz');
    t.equal(h.status, 200);
    t.same(h.json, { status: 'alive', notice: 'development appliance: SoftHSM2 token' });
    const r = await call(port, 'GET', '/readyz');
    t.equal(r.status, 200);
    t.same(r.json.checks, { store: { ok: true }, hsm: { ok: true } });
    t.equal(r.json.ready, true);
    ready = false;
    const r2 = await call(port, 'GET', '/readyz');
    ready = true;
    t.equal(r2.status, 503);
    t.equal(r2.json.ready, false);
    t.equal(r2.json.status, 'not-ready');
    t.same(r2.json.checks.hsm, { ok: false, detail: { reason: 'token not present' } });
  });

  t.test('metrics: counters by route pattern, never the raw URL', async (t) => {
    await signed(port, ecdsa, 'GET', '/api/v1/test/items/123456?secret=1');
    await call(port, 'GET', '/random/path/98765');
    const res = await call(port, 'GET', '/metrics');
    t.equal(res.status, 200);
    t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    const lines = res.text.split('\n');
    const sample = (name: string, labels: Record<string, string>): number | undefined => {
      const line = lines.find((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
      return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
    };
    t.ok((sample('yiqian_http_requests_total', { method: 'GET', route: '/api/v1/whoami', status: '200' }) ?? 0) >= 2, 'whoami 200s counted');
    t.equal(sample('yiqian_http_requests_total', { route: '/api/v1/test/items/:id', status: '200' }), 2, 'by pattern');
    t.ok((sample('yiqian_http_requests_total', { route: 'unmatched', status: '404' }) ?? 0) >= 2, 'unmatched');
    t.notMatch(res.text, /123456|98765|secret=1/, 'no raw URLs as labels');
    t.ok((sample('yiqian_http_request_duration_seconds_count', { method: 'GET', route: '/api/v1/whoami' }) ?? 0) >= 2, 'durations');
    t.ok((sample('yiqian_auth_failures_total', { code: 'MISSING_AUTH' }) ?? 0) >= 3);
    t.ok((sample('yiqian_auth_failures_total', { code: 'BAD_SIGNATURE' }) ?? 0) >= 5);
    t.equal(sample('yiqian_auth_failures_total', { code: 'APP_FROZEN' }), 1);
    t.ok((sample('yiqian_errors_total', { code: 'NOT_FOUND' }) ?? 0) >= 3);
    t.equal(sample('yiqian_errors_total', { code: 'INTERNAL' }), 1);
    t.match(res.text, /^yiqian_http_in_flight 1$/m, 'this scrape is the one request in flight');
    t.match(res.text, /^process_cpu_user_seconds_total /m, 'default Node metrics');
    t.match(res.text, /# TYPE yiqian_hsm_operations_total counter/);
  });
});

// ---- limits ---------------------------------------------------------------------------------

/** Raw socket: what a client that keeps sending sees. */
function rawExchange(port: number, head: string, opts: { chunked?: boolean; maxMs: number }): Promise<{ response: string; closedAfterMs: number; sentBytes: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const sock = connect(port, '127.0.0.1');
    let response = '';
    let sentBytes = 0;
    let closed = false;
    const finish = (): void => {
      if (closed) return;
      closed = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ response, closedAfterMs: Date.now() - started, sentBytes });
    };
    const timer = setTimeout(finish, opts.maxMs);
    sock.on('data', (d: Buffer) => (response += d.toString('latin1')));
    sock.on('close', finish);
    sock.on('error', () => undefined);
    sock.on('connect', async () => {
      sock.write(head);
      const chunk = Buffer.alloc(16 * 1024, 0x61);
      // Keep sending as long as the server accepts bytes (bounded by maxMs).
      while (!closed && Date.now() - started < opts.maxMs) {
        const piece = opts.chunked ? Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]) : chunk;
        sentBytes += chunk.length;
        if (!sock.write(piece)) await new Promise((r) => setTimeout(r, 5));
        else await new Promise((r) => setImmediate(r));
      }
    });
  });
}

t.test('oversize bodies → 413, and the connection is dropped rather than drained', async (t) => {
  const srv = await start({ limits: { bodyBytes: 64 * 1024 } });
  t.teardown(() => srv.close());

  const declared = await call(srv.port, 'POST', '/api/v1/test/echo', { body: Buffer.alloc(64 * 1024 + 1, 0x20), headers: { 'Content-Type': 'application/json' } });
  assertProblem(t, declared, 413, 'PAYLOAD_TOO_LARGE');
  t.equal(declared.json.limitBytes, 65536);
  t.equal(declared.headers.connection, 'close');

  const atLimit = await signed(srv.port, sm2, 'POST', '/api/v1/test/echo', { body: JSON.stringify({ pad: 'x'.repeat(64 * 1024 - 10) }) });
  t.equal(atLimit.status, 200, 'exactly at the limit is fine');
  t.equal(atLimit.json.rawLength, 64 * 1024);

  const endless = await rawExchange(
    srv.port,
    'POST /api/v1/test/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n',
    { chunked: true, maxMs: 8000 },
  );
  t.match(endless.response, /^HTTP\/1\.1 413 /, 'a chunked body that never ends gets 413');
  t.match(endless.response, /PAYLOAD_TOO_LARGE/);
  t.ok(endless.closedAfterMs < 5000, `the server closed the connection (after ${endless.closedAfterMs} ms)`);

  const lying = await rawExchange(
    srv.port,
    `POST /api/v1/test/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${1024 * 1024 * 1024}\r\n\r\n`,
    { maxMs: 8000 },
  );
  t.match(lying.response, /^HTTP\/1\.1 413 /, 'a declared 1 GiB body is refused up front');
  t.ok(lying.closedAfterMs < 5000, `closed after ${lying.closedAfterMs} ms`);

  const after = await call(srv.port, 'GET', '/healthz');
  t.equal(after.status, 200, 'the server is fine afterwards');
});

t.test('overload: past maxInFlight → 503 OVERLOADED at once, with Retry-After', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let entered = 0;
  const srv = await start({ limits: { maxInFlight: 2 }, routers: [testRouter({ gate, entered: () => entered++ })] });
  t.teardown(() => srv.close());

  const slow = [signed(srv.port, sm2, 'GET', '/api/v1/test/slow'), signed(srv.port, ecdsa, 'GET', '/api/v1/test/slow')];
  for (let i = 0; i < 200 && entered < 2; i++) await sleep(10);
  t.equal(entered, 2, 'two slow requests are being worked on');

  const before = Date.now();
  const shed = await signed(srv.port, sm2, 'GET', '/api/v1/whoami');
  const tookMs = Date.now() - before;
  assertProblem(t, shed, 503, 'OVERLOADED');
  t.equal(shed.headers['retry-after'], '1');
  t.ok(tookMs < 1000, `answered immediately (${tookMs} ms), not queued`);
  const shedPost = await signed(srv.port, sm2, 'POST', '/api/v1/test/echo', { body: '{"x":1}' });
  assertProblem(t, shedPost, 503, 'OVERLOADED');
  t.equal(shedPost.headers.connection, 'close', 'an unread body is not drained: the connection closes');
  t.equal((await call(srv.port, 'GET', '/healthz')).status, 200, 'liveness still answers');
  t.equal((await call(srv.port, 'GET', '/metrics')).status, 200, 'metrics still answer');

  release();
  const done = await Promise.all(slow);
  t.same(
    done.map((r) => r.status),
    [200, 200],
  );
  t.equal((await signed(srv.port, sm2, 'GET', '/api/v1/whoami')).status, 200, 'slots are free again');
});

t.test('timeout → 503 REQUEST_TIMEOUT; the late result is dropped and its slot held until it ends', async (t) => {
  let lateDone = false;
  const srv = await start({
    limits: { timeoutMs: 300, maxInFlight: 1 },
    routers: [testRouter({ lateMs: 1200, lateDone: () => (lateDone = true) })],
  });
  t.teardown(() => srv.close());

  const before = Date.now();
  const res = await signed(srv.port, sm2, 'GET', '/api/v1/test/late');
  const tookMs = Date.now() - before;
  assertProblem(t, res, 503, 'REQUEST_TIMEOUT');
  t.equal(res.json.timeoutMs, 300);
  t.ok(tookMs >= 290 && tookMs < 1100, `answered at the deadline (${tookMs} ms)`);
  t.notMatch(res.text, /late/);
  t.equal(lateDone, false, 'the handler was still running');

  const meanwhile = await signed(srv.port, ecdsa, 'GET', '/api/v1/whoami');
  assertProblem(t, meanwhile, 503, 'OVERLOADED');

  for (let i = 0; i < 300 && !lateDone; i++) await sleep(10);
  t.equal(lateDone, true, 'the handler finished later');
  await sleep(20);
  t.equal((await signed(srv.port, ecdsa, 'GET', '/api/v1/whoami')).status, 200, 'its slot is free once it ended');

  // A body that stops arriving (slowloris) is cut at the same deadline, and the connection closed.
  const stalled = await new Promise<{ response: string; closedAfterMs: number }>((resolve) => {
    const started = Date.now();
    const sock = connect(srv.port, '127.0.0.1');
    let response = '';
    const guard = setTimeout(() => sock.destroy(), 5000);
    sock.on('data', (d: Buffer) => (response += d.toString('latin1')));
    sock.on('error', () => undefined);
    sock.on('close', () => {
      clearTimeout(guard);
      resolve({ response, closedAfterMs: Date.now() - started });
    });
    sock.write('POST /api/v1/test/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":');
  });
  t.match(stalled.response, /^HTTP\/1\.1 503 [^]*REQUEST_TIMEOUT/, 'a stalled body gets REQUEST_TIMEOUT');
  t.match(stalled.response, /\r\nConnection: close\r\n/i);
  t.ok(stalled.closedAfterMs < 2000, `and the connection is closed (${stalled.closedAfterMs} ms)`);
  await sleep(20);

  const logged = srv.logs.map((l) => JSON.parse(l));
  t.same(logged.filter((l) => l.level >= 50), [], 'nothing logged as an error');
  t.same(
    logged.filter((l) => l.level === 40).map((l) => [l.code, l.path]),
    [
      ['REQUEST_TIMEOUT', '/api/v1/test/late'],
      ['REQUEST_TIMEOUT', '/api/v1/test/echo'],
    ],
    'one warning per timeout; the late result added nothing',
  );
  t.equal((await signed(srv.port, ecdsa, 'GET', '/api/v1/whoami')).status, 200, 'the stalled request released its slot');
});
