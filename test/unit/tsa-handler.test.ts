// The plain node:http TSA handler (http/tsa-handler.ts) on a real listener, in front of the real
// TsaService over a real store and SoftHSM2 custody (makePkiFixture): the edge cases the
// interop test does not reach — X-Request-Id, overload, timeout with a late result and a late
// failure, client aborts mid-body and mid-signing, the allow-list, metrics labels — each an
// RFC 3161 TimeStampResp, never problem+json, and the server keeps serving.
import t from 'tap';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { buildTimeStampReq, parseTimeStampResp } from '../../appliance/src/asn1/tsp.js';
import { createTsaHandler, type TsaPublicDeps } from '../../appliance/src/http/tsa-handler.js';
import { createMetrics, type Metrics } from '../../appliance/src/metrics.js';
import { TsaService } from '../../appliance/src/tsa/tsa-service.js';
import type { ClockGateResult } from '../../firmware-bridge/timesource/clock-gate.js';
import { makePkiFixture } from '../helpers/pki-hierarchy.js';

const gate = { check: (): ClockGateResult => ({ ok: true, time: new Date(), accuracyMicros: 1000, state: 'SYNCED', source: 'test', development: false, notice: null }) };
const TSQ = 'application/timestamp-query';
const query = (): Buffer => buildTimeStampReq({ hash: 'sha256', hashedMessage: randomBytes(32), certReq: true });

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** One request on its own connection; `body` undefined → none; `hold` → headers only, body never ends. */
function call(port: number, path: string, o: { method?: string; body?: Buffer; headers?: Record<string, string | number> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: o.method ?? 'POST', agent: false, headers: { ...(o.body ? { 'Content-Type': TSQ, 'Content-Length': o.body.length } : {}), ...o.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

async function listen(deps: TsaPublicDeps): Promise<{ port: number; server: Server }> {
  const server = createServer(createTsaHandler(deps));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as AddressInfo).port, server };
}

const close = (s: Server): Promise<void> =>
  new Promise((r) => {
    s.closeAllConnections();
    s.close(() => r());
  });

/** A sample's value; `name` may be a histogram's `<name>_count`. */
async function metricValue(m: Metrics, name: string, labels: Record<string, string> = {}): Promise<number> {
  const all = await m.registry.getMetricsAsJSON();
  const metric = all.find((x) => x.name === name || `${x.name}_count` === name) as { values: { value: number; metricName?: string; labels: Record<string, string | number> }[] } | undefined;
  const v = metric?.values.find((x) => (x.metricName ?? name) === name && Object.entries(labels).every(([k, l]) => String(x.labels[k]) === l));
  return v?.value ?? 0;
}

const until = async (what: () => Promise<boolean> | boolean, ms = 3000): Promise<boolean> => {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (await what()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
};

/** A gate in front of the real respond(): calls wait until open() (or fail()). */
function heldService(real: TsaService) {
  let waiting: { resolve: () => void; reject: (e: Error) => void }[] = [];
  let started = 0;
  return {
    get started() {
      return started;
    },
    open() {
      for (const w of waiting) w.resolve();
      waiting = [];
    },
    fail(e: Error) {
      for (const w of waiting) w.reject(e);
      waiting = [];
    },
    async respond(...args: Parameters<TsaService['respond']>) {
      started++;
      await new Promise<void>((resolve, reject) => waiting.push({ resolve, reject }));
      return real.respond(...args);
    },
  };
}

/** Sends a whole query and hangs up once respond() has started (the token is being made). */
function hangUpWhileSigning(port: number, held: { started: number }): Promise<void> {
  const q = query();
  return new Promise<void>((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/tsa', method: 'POST', agent: false, headers: { 'Content-Type': TSQ, 'Content-Length': q.length } });
    req.on('error', () => resolve());
    req.end(q);
    void until(() => held.started === 1).then(() => req.destroy());
  });
}

t.test('TSA handler', async (t) => {
  const fx = await makePkiFixture();
  t.teardown(() => fx.close());
  const tsa = new TsaService({ certs: fx.store.certs, custody: fx.custody, tokens: fx.store.tsaTokens, gate, policies: { policies: [{ oid: '1.2.3.4.5' }] } });
  await tsa.warmUp();
  const logged: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (s: string) => void logged.push(JSON.parse(s)) }) as unknown as TsaPublicDeps['log'];

  await t.test('tokens, request ids, paths and methods, content checks, metrics', async (t) => {
    const metrics = createMetrics({ defaultMetrics: false });
    const { port, server } = await listen({ tsa, defaultIdentity: 'sm2', allow: [], maxRequestBytes: 1024, metrics, log });
    t.teardown(() => close(server));
    const ids = new Set<string>();
    for (const path of ['/tsa/ecdsa', '/tsa/sm2', '/tsa', '/tsa?x=1']) {
      const r = await call(port, path, { body: query() });
      t.equal(r.status, 200, `${path}: 200`);
      t.equal(r.headers['content-type'], 'application/timestamp-reply');
      t.equal(r.headers['cache-control'], 'no-store');
      t.equal(r.headers['content-length'], String(r.body.length));
      t.match(r.headers['x-request-id'], /^[A-Za-z0-9._:-]{8,128}$/, 'a sane request id is made');
      ids.add(String(r.headers['x-request-id']));
      const p = parseTimeStampResp(r.body);
      t.equal(p.status, 0, `${path}: granted`);
      t.equal(p.signer!.signatureAlgorithm, path === '/tsa/ecdsa' ? '1.2.840.10045.4.3.2' : '1.2.156.10197.1.301.1', `${path}: its identity signs (default sm2 here)`);
    }
    t.equal(ids.size, 4, 'a fresh id per request');
    const echoed = await call(port, '/tsa/ecdsa', { body: query(), headers: { 'X-Request-Id': 'lb-1234.abcd:ef_9' } });
    t.equal(echoed.headers['x-request-id'], 'lb-1234.abcd:ef_9', 'a sane incoming id is echoed');
    const replaced = await call(port, '/tsa/ecdsa', { body: query(), headers: { 'X-Request-Id': 'bad id <script>' } });
    t.not(replaced.headers['x-request-id'], 'bad id <script>', 'an insane one is replaced');

    const rejection = (r: Reply, status: number, failInfo: string, what: string): void => {
      t.equal(r.status, status, `${what}: ${status}`);
      t.equal(r.headers['content-type'], 'application/timestamp-reply', `${what}: a TimeStampResp, not problem+json`);
      const p = parseTimeStampResp(r.body);
      t.equal(p.status, 2, `${what}: rejection`);
      t.equal(p.failInfo, failInfo, `${what}: ${failInfo}`);
      t.ok(r.headers['x-request-id'], `${what}: request id`);
    };
    const get = await call(port, '/tsa/sm2', { method: 'GET' });
    rejection(get, 405, 'badRequest', 'GET');
    t.equal(get.headers.allow, 'POST');
    rejection(await call(port, '/tsa', { method: 'PUT', body: query() }), 405, 'badRequest', 'PUT');
    rejection(await call(port, '/tsa/rsa', { body: query() }), 404, 'badRequest', 'unknown identity');
    rejection(await call(port, '/tsa/', { body: query() }), 404, 'badRequest', 'trailing slash');
    const wrongType = await call(port, '/tsa/ecdsa', { body: query(), headers: { 'Content-Type': 'application/octet-stream' } });
    rejection(wrongType, 415, 'badDataFormat', 'wrong Content-Type');
    t.equal(wrongType.headers.connection, 'close');
    const gzip = await call(port, '/tsa/ecdsa', { body: query(), headers: { 'Content-Encoding': 'gzip' } });
    rejection(gzip, 415, 'badDataFormat', 'Content-Encoding gzip');
    const declared = await call(port, '/tsa/ecdsa', { body: Buffer.alloc(2000, 0x30) });
    rejection(declared, 413, 'badDataFormat', 'declared oversize');
    t.equal(declared.headers.connection, 'close');
    // Chunked: no declared length, the read stops past the limit.
    const streamed = await new Promise<Reply>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/tsa/ecdsa', method: 'POST', agent: false, headers: { 'Content-Type': TSQ, 'Transfer-Encoding': 'chunked' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.write(Buffer.alloc(700, 0x30));
      req.write(Buffer.alloc(700, 0x30));
      // never ended: the answer must come anyway
    });
    rejection(streamed, 413, 'badDataFormat', 'streamed oversize');
    t.equal(streamed.headers.connection, 'close');
    const garbage = await call(port, '/tsa/ecdsa', { body: Buffer.from('not a request') });
    t.equal(garbage.status, 200, 'a bad query is a 200 rejection from the service');
    t.equal(parseTimeStampResp(garbage.body).failInfo, 'badDataFormat');
    t.ok(logged.some((l) => l.msg === 'time-stamp refused' && typeof l.requestId === 'string'), 'a refusal is logged with the request id');

    t.equal(await metricValue(metrics, 'yiqian_http_requests_total', { method: 'POST', route: '/tsa/ecdsa', status: '200' }), 4, 'granted ecdsa (plain, id echoed, id replaced, bad query) counted on its route');
    t.equal(await metricValue(metrics, 'yiqian_http_requests_total', { method: 'POST', route: '/tsa', status: '200' }), 2, '/tsa and /tsa?x=1 on route /tsa');
    t.equal(await metricValue(metrics, 'yiqian_http_requests_total', { method: 'GET', route: '/tsa/sm2', status: '405' }), 1);
    t.equal(await metricValue(metrics, 'yiqian_http_requests_total', { method: 'POST', route: 'unmatched', status: '404' }), 2, 'unknown paths: route "unmatched", never the raw URL');
    t.equal(await metricValue(metrics, 'yiqian_http_requests_total', { route: '/tsa/rsa' }), 0);
    t.equal(await metricValue(metrics, 'yiqian_errors_total', { code: 'PAYLOAD_TOO_LARGE' }), 2);
    t.equal(await metricValue(metrics, 'yiqian_errors_total', { code: 'UNSUPPORTED_MEDIA_TYPE' }), 2);
    t.equal(await metricValue(metrics, 'yiqian_errors_total', { code: 'METHOD_NOT_ALLOWED' }), 2);
    t.ok((await metricValue(metrics, 'yiqian_http_request_duration_seconds_count', { method: 'POST', route: '/tsa/ecdsa' })) >= 4, 'durations observed');
    t.equal(await metricValue(metrics, 'yiqian_http_in_flight'), 0, 'nothing left in flight');
  });

  await t.test('allow-list → 403 rejection', async (t) => {
    const { port, server } = await listen({ tsa, defaultIdentity: 'ecdsa', allow: ['10.0.0.0/8'], maxRequestBytes: 1024, metrics: createMetrics({ defaultMetrics: false }), log });
    t.teardown(() => close(server));
    const r = await call(port, '/tsa', { body: query() });
    t.equal(r.status, 403);
    t.equal(parseTimeStampResp(r.body).failInfo, 'badRequest');
    t.match(parseTimeStampResp(r.body).statusString[0], /^TSA_NOT_ALLOWED: /);
    const open = await listen({ tsa, defaultIdentity: 'ecdsa', allow: ['127.0.0.0/8'], maxRequestBytes: 1024, metrics: createMetrics({ defaultMetrics: false }), log });
    t.teardown(() => close(open.server));
    t.equal((await call(open.port, '/tsa', { body: query() })).status, 200, 'an allowed network is served');
  });

  await t.test('overload: 503 + Retry-After past maxInFlight; the slot comes back', async (t) => {
    const held = heldService(tsa);
    const metrics = createMetrics({ defaultMetrics: false });
    const { port, server } = await listen({ tsa: held, defaultIdentity: 'ecdsa', allow: [], maxRequestBytes: 1024, limits: { maxInFlight: 2, timeoutMs: 10_000 }, metrics, log });
    t.teardown(() => close(server));
    const first = [call(port, '/tsa', { body: query() }), call(port, '/tsa', { body: query() })];
    t.ok(await until(() => held.started === 2), 'two requests being worked on');
    const over = await call(port, '/tsa', { body: query() });
    t.equal(over.status, 503);
    t.equal(over.headers['retry-after'], '1');
    t.equal(parseTimeStampResp(over.body).failInfo, 'systemFailure');
    t.match(parseTimeStampResp(over.body).statusString[0], /^OVERLOADED: /);
    // A body that has not arrived yet is not drained: the connection closes.
    const unread = await new Promise<Reply>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/tsa', method: 'POST', agent: false, headers: { 'Content-Type': TSQ, 'Content-Length': 100 } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.flushHeaders();
    });
    t.equal(unread.status, 503);
    t.equal(unread.headers.connection, 'close', 'Connection: close when the body is unread');
    held.open();
    for (const r of await Promise.all(first)) t.equal(parseTimeStampResp(r.body).status, 0, 'the admitted requests are granted');
    const again = call(port, '/tsa', { body: query() });
    t.ok(await until(() => held.started === 3));
    held.open();
    t.equal((await again).status, 200, 'slots are released');
    t.equal(await metricValue(metrics, 'yiqian_errors_total', { code: 'OVERLOADED' }), 2);
    t.equal(await metricValue(metrics, 'yiqian_http_requests_total', { route: '/tsa', status: '503' }), 2);
  });

  await t.test('timeout: 503 rejection; the late token is dropped, a late failure logged; the slot is held until the work ends', async (t) => {
    const held = heldService(tsa);
    const metrics = createMetrics({ defaultMetrics: false });
    const { port, server } = await listen({ tsa: held, defaultIdentity: 'ecdsa', allow: [], maxRequestBytes: 1024, limits: { maxInFlight: 1, timeoutMs: 150 }, metrics, log });
    t.teardown(() => close(server));
    const late = await call(port, '/tsa', { body: query() });
    t.equal(late.status, 503);
    t.equal(late.headers['retry-after'], '1');
    t.match(parseTimeStampResp(late.body).statusString[0], /^REQUEST_TIMEOUT: /);
    t.equal(await metricValue(metrics, 'yiqian_http_in_flight'), 0, 'the request is answered');
    const meanwhile = await call(port, '/tsa', { body: query() });
    t.match(parseTimeStampResp(meanwhile.body).statusString[0], /^OVERLOADED: /, 'the timed-out work still holds its slot');
    const before = await fx.store.tsaTokens.count();
    held.open();
    t.ok(await until(async () => (await fx.store.tsaTokens.count()) === before + 1), 'the late token is still recorded (it exists)');
    await new Promise((r) => setTimeout(r, 50)); // the slot is released just after the record
    const next = call(port, '/tsa', { body: query() });
    t.ok(await until(() => held.started === 2), 'the slot came back');
    t.equal((await next).status, 503, 'this one times out too');
    const lines = logged.length;
    held.fail(new Error('HSM gone'));
    t.ok(await until(() => logged.slice(lines).some((l) => l.msg === 'request failed after its timeout' && typeof l.requestId === 'string')), 'a failure after the timeout is logged with the request id');
  });

  await t.test('client aborts mid-body and mid-signing: no crash, nothing left in flight', async (t) => {
    const held = heldService(tsa);
    const metrics = createMetrics({ defaultMetrics: false });
    const { port, server } = await listen({ tsa: held, defaultIdentity: 'ecdsa', allow: [], maxRequestBytes: 1024, limits: { maxInFlight: 1, timeoutMs: 10_000 }, metrics, log });
    t.teardown(() => close(server));
    const abortAfter = (write: Buffer, when: () => Promise<boolean>): Promise<void> =>
      new Promise((resolve) => {
        const req = request({ host: '127.0.0.1', port, path: '/tsa', method: 'POST', agent: false, headers: { 'Content-Type': TSQ, 'Content-Length': 200 } });
        req.on('error', () => resolve());
        req.write(write);
        void when().then(() => req.destroy());
      });
    // Mid-body: 20 of 200 octets, then gone.
    await abortAfter(Buffer.alloc(20, 0x30), async () => until(async () => (await metricValue(metrics, 'yiqian_http_in_flight')) === 1));
    t.ok(await until(async () => (await metricValue(metrics, 'yiqian_http_in_flight')) === 0), 'mid-body abort: released');
    t.equal(await metricValue(metrics, 'yiqian_http_requests_total', { route: '/tsa', status: '499' }), 1, 'counted as client gone');
    // Mid-signing: a whole query (the declared length matches), gone while respond() runs.
    await hangUpWhileSigning(port, held);
    held.open();
    t.ok(await until(async () => (await metricValue(metrics, 'yiqian_http_requests_total', { route: '/tsa', status: '499' })) === 2), 'mid-signing abort: counted when the work ends');
    const after = call(port, '/tsa', { body: query() });
    t.ok(await until(() => held.started === 2), 'the one slot is free again');
    held.open();
    t.equal((await after).status, 200, 'still serving');
  });

  await t.test('settled(): waits for a token whose client hung up (shutdown closes the store after it)', async (t) => {
    const held = heldService(tsa);
    const handler = createTsaHandler({ tsa: held, defaultIdentity: 'ecdsa', allow: [], maxRequestBytes: 1024, metrics: createMetrics({ defaultMetrics: false }), log });
    const server = createServer(handler);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    t.resolves(handler.settled(), 'nothing running: settled at once');
    const before = await fx.store.tsaTokens.count();
    await hangUpWhileSigning(port, held);
    await close(server); // as at shutdown: no connection left
    let settled = false;
    const waiting = handler.settled().then(() => (settled = true));
    await new Promise((r) => setTimeout(r, 50));
    t.notOk(settled, 'not settled while the token is being made');
    held.open();
    await waiting;
    t.equal(await fx.store.tsaTokens.count(), before + 1, 'settled once the token was recorded');
  });

  await t.test('an unexpected failure: 500 systemFailure, logged with the request id', async (t) => {
    const metrics = createMetrics({ defaultMetrics: false });
    const broken = { respond: async () => Promise.reject(new Error('store exploded')) };
    const { port, server } = await listen({ tsa: broken, defaultIdentity: 'ecdsa', allow: [], maxRequestBytes: 1024, metrics, log });
    t.teardown(() => close(server));
    const r = await call(port, '/tsa', { body: query(), headers: { 'X-Request-Id': 'req-500-abcdef' } });
    t.equal(r.status, 500);
    const p = parseTimeStampResp(r.body);
    t.equal(p.failInfo, 'systemFailure');
    t.same(p.statusString, ['internal error'], 'no internals in the reply');
    t.ok(logged.some((l) => l.msg === 'time-stamp request failed' && l.requestId === 'req-500-abcdef'), 'logged with the request id');
    t.equal(await metricValue(metrics, 'yiqian_errors_total', { code: 'INTERNAL' }), 1);
  });
});
