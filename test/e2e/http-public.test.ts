// The plain-HTTP listener: public signed objects and /healthz only; everything else is
// 403 HTTPS_REQUIRED naming the HTTPS URL — including the API, which must never be served in clear.
import t from 'tap';
import { createServer, request, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import { createPublicApp } from '../../appliance/src/http/create-public-app.js';
import type { HttpState } from '../../appliance/src/http/state.js';
import { createMetrics } from '../../appliance/src/metrics.js';

interface Res {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: any;
}

function call(port: number, method: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const h = { ...headers, ...(body ? { 'Content-Length': String(body.length) } : {}) };
    const req = request({ host: '127.0.0.1', port, method, path, headers: h, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: any;
        try {
          json = JSON.parse(text);
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

t.test('public HTTP listener', async (t) => {
  // Stand-ins for the CA/OCSP routers of later issues: a static object and a POST that reads its DER body.
  const pki = new Router<HttpState>();
  pki.get('/ca/root.crt', (ctx) => {
    ctx.type = 'application/pkix-cert';
    ctx.body = Buffer.from([0x30, 0x03, 0x02, 0x01, 0x05]);
  });
  pki.post('/ocsp', (ctx) => {
    ctx.type = 'application/ocsp-response';
    ctx.body = { received: ctx.state.rawBody.length };
  });
  const metrics = createMetrics({ defaultMetrics: false });
  const app = createPublicApp({ routers: [pki], httpsBase: 'https://yiqian.hospital.example:8443/', limits: { bodyBytes: 1024 }, metrics });
  const server = createServer(app.callback());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as AddressInfo).port;

  const health = await call(port, 'GET', '/healthz');
  t.equal(health.status, 200);
  t.same(health.json, { status: 'alive' });
  t.ok(health.headers['x-request-id']);

  const cert = await call(port, 'GET', '/ca/root.crt');
  t.equal(cert.status, 200);
  t.equal(cert.headers['content-type'], 'application/pkix-cert');

  const ocsp = await call(port, 'POST', '/ocsp', Buffer.alloc(100, 1), { 'Content-Type': 'application/ocsp-request' });
  t.same(ocsp.json, { received: 100 });

  for (const path of ['/api/v1/whoami?x=1', '/readyz', '/metrics', '/', '/anything']) {
    const res = await call(port, 'GET', path);
    t.equal(res.status, 403, `${path} is refused`);
    t.match(res.headers['content-type'], /^application\/problem\+json/);
    t.equal(res.json.code, 'HTTPS_REQUIRED');
    t.equal(res.json.httpsUrl, `https://yiqian.hospital.example:8443${path}`, 'names the HTTPS URL');
    t.match(res.json.message.en, /https:\/\/yiqian\.hospital\.example:8443/);
    t.equal(res.json.instance, res.headers['x-request-id']);
  }
  const signedLooking = await call(port, 'POST', '/api/v1/whoami', Buffer.from('{}'), { Authorization: 'YQ1-SM2-SM3 app=a,ts=1,nonce=00,sig=AA==' });
  t.equal(signedLooking.json.code, 'HTTPS_REQUIRED', 'the API is not served in clear even with credentials');

  const wrongMethod = await call(port, 'DELETE', '/ca/root.crt');
  t.equal(wrongMethod.status, 405);
  t.equal(wrongMethod.json.code, 'METHOD_NOT_ALLOWED');
  t.equal(wrongMethod.headers.allow, 'HEAD, GET');

  const big = await call(port, 'POST', '/ocsp', Buffer.alloc(2048, 1), { 'Content-Type': 'application/ocsp-request' });
  t.equal(big.status, 413);
  t.equal(big.json.code, 'PAYLOAD_TOO_LARGE');

  const text = await metrics.registry.metrics();
  t.match(text, /yiqian_http_requests_total\{[^}]*route="\/ca\/root\.crt"[^}]*status="200"/);
  t.match(text, /yiqian_http_requests_total\{[^}]*route="unmatched"[^}]*status="403"/);
  t.match(text, /yiqian_errors_total\{code="HTTPS_REQUIRED"\} 6/);
});
