// Revocation over HTTP against the running appliance: the lifecycle API's answers and refusals
// (problem+json with stable codes), and the public CRL / OCSP endpoints' answers to bad input —
// always an OCSPResponse on /ocsp, never problem+json — plus their caching headers.
import t, { type Test } from 'tap';
import { request } from 'node:http';
import { buildOcspRequest, parseOcspResponse } from '../../appliance/src/asn1/ocsp.js';
import { parseCrl } from '../../appliance/src/asn1/crl.js';
import { startCa, type Issued, type RunningCa } from '../helpers/revocation-client.js';

let ca: RunningCa;
let issuingDer: Buffer;
let a: Issued;
let b: Issued;

const MALFORMED = Buffer.from('30030a0101', 'hex');
const UNAUTHORIZED = Buffer.from('30030a0106', 'hex');

t.before(async () => {
  ca = await startCa(t);
  issuingDer = (await ca.ca('ecdsa-issuing')).der;
  a = await ca.issue('ecdsa-p256', 'http-a');
  b = await ca.issue('sm2', 'http-b');
});

function problem(t: Test, r: { status: number; json: any; headers: Record<string, unknown> }, status: number, code: string): void {
  t.equal(r.status, status, `${code}: HTTP ${status}`);
  t.match(String(r.headers['content-type']), /^application\/problem\+json/);
  t.equal(r.json.code, code);
  t.ok(r.json.message?.['zh-CN'] && r.json.message?.en, 'zh-CN and en message');
}

t.test('lifecycle API: revoke, suspend, resume and their refusals', async (t) => {
  const rv = await ca.api('POST', `/certs/${a.serial}/revoke`, { reason: 'privilegeWithdrawn' });
  t.equal(rv.status, 200);
  t.match(rv.json, { serial: a.serial, caId: 'ecdsa-issuing', status: 'revoked', revocation: { reason: 'privilegeWithdrawn' }, crl: { caId: 'ecdsa-issuing', published: true } });
  t.match(rv.json.revocation.by, /^app:/);
  const shown = await ca.api('GET', `/certs/${a.serial}`);
  t.equal(shown.json.status, 'revoked', 'the certificate API shows it');
  t.equal(shown.json.revocation.reason, 'privilegeWithdrawn');

  problem(t, await ca.api('POST', `/certs/${a.serial}/revoke`, { reason: 'keyCompromise' }), 409, 'CERT_ALREADY_REVOKED');
  problem(t, await ca.api('POST', '/certs/0123456789abcdef01/revoke', { reason: 'keyCompromise' }), 404, 'CERT_NOT_FOUND');
  problem(t, await ca.api('POST', `/certs/${b.serial}/revoke`, { reason: 'stolen' }), 400, 'INVALID_REVOCATION_REASON');
  problem(t, await ca.api('POST', `/certs/${b.serial}/revoke`, { reason: 'certificateHold' }), 400, 'INVALID_REVOCATION_REASON');
  problem(t, await ca.api('POST', `/certs/${b.serial}/revoke`, {}), 400, 'INVALID_REVOCATION_REASON');
  problem(t, await ca.api('POST', `/certs/${b.serial}/revoke`, ['keyCompromise']), 400, 'BAD_REQUEST');
  problem(t, await ca.api('POST', '/certs/not-a-serial/revoke', { reason: 'keyCompromise' }), 400, 'SERIAL_INVALID');
  problem(t, await ca.api('POST', `/certs/${b.serial}/resume`), 409, 'CERT_NOT_SUSPENDED');
  problem(t, await ca.api('POST', `/certs/${a.serial}/suspend`), 409, 'CERT_ALREADY_REVOKED');

  const s = await ca.api('POST', `/certs/${b.serial}/suspend`);
  t.equal(s.status, 200);
  t.match(s.json, { status: 'suspended', caId: 'sm2-issuing', revocation: { reason: 'certificateHold' } });
  problem(t, await ca.api('POST', `/certs/${b.serial}/suspend`), 409, 'CERT_SUSPENDED');
  const r = await ca.api('POST', `/certs/${b.serial}/resume`);
  t.equal(r.status, 200);
  t.equal(r.json.status, 'good');
  t.equal(r.json.revocation, undefined);

  // Unauthenticated: the API refuses before anything happens.
  const anon = await ca.publicCall(`/api/v1/certs/${b.serial}/revoke`, { method: 'POST', https: true, body: Buffer.from('{"reason":"keyCompromise"}'), headers: { 'Content-Type': 'application/json' } });
  t.equal(anon.status, 401);
  t.equal((await ca.api('GET', `/certs/${b.serial}`)).json.status, 'good', 'still good');
});

t.test('OCSP bad input gets OCSP answers, never problem+json', async (t) => {
  const ocspType = (r: { headers: Record<string, unknown> }) => t.equal(r.headers['content-type'], 'application/ocsp-response');

  const garbage = await ca.publicCall('/ocsp', { method: 'POST', body: Buffer.from('this is not DER'), headers: { 'Content-Type': 'application/ocsp-request' } });
  t.equal(garbage.status, 200);
  ocspType(garbage);
  t.same(garbage.body, MALFORMED, 'malformedRequest');

  const empty = await ca.publicCall('/ocsp', { method: 'POST', body: Buffer.alloc(0) });
  t.same(empty.body, MALFORMED);

  const big = await ca.publicCall('/ocsp', { method: 'POST', body: Buffer.alloc(20 * 1024, 0x30), headers: { 'Content-Type': 'application/ocsp-request' } });
  t.equal(big.status, 413, 'over the OCSP request limit');
  ocspType(big);
  t.same(big.body, MALFORMED);

  // Over the 1 MiB body limit of the other listeners: still an OCSP answer (the Content-Length
  // is refused before a byte of the body is read).
  const huge = await ca.publicCall('/ocsp', { method: 'POST', body: Buffer.alloc(2 * 1024 * 1024, 0x30) });
  t.equal(huge.status, 413, 'over the listener limit too');
  ocspType(huge);
  t.same(huge.body, MALFORMED);

  // A chunked body (no Content-Length) that grows past the limit.
  const chunked = await new Promise<{ status: number; type: string; body: Buffer }>((resolve, reject) => {
    const u = new URL(`${ca.server.httpUrl}/ocsp`);
    const req = request({ host: u.hostname, port: u.port, path: '/ocsp', method: 'POST', headers: { 'Content-Type': 'application/ocsp-request' }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    for (let i = 0; i < 40; i++) req.write(Buffer.alloc(1024, 0x30));
    req.end();
  });
  t.equal(chunked.status, 413);
  t.equal(chunked.type, 'application/ocsp-response');
  t.same(chunked.body, MALFORMED);

  const stranger = Buffer.from(issuingDer);
  // Same structure, another key: flip a byte inside the issuer's public key.
  const spkiAt = stranger.indexOf(Buffer.from('2a8648ce3d030107', 'hex'));
  stranger[spkiAt + 20] ^= 0xff;
  const unknownIssuer = await ca.publicCall('/ocsp', { method: 'POST', body: buildOcspRequest([{ issuerCertificate: stranger, serial: a.serial }]) });
  t.equal(unknownIssuer.status, 200);
  t.same(unknownIssuer.body, UNAUTHORIZED, 'unknown issuer → unauthorized');

  const put = await ca.publicCall('/ocsp', { method: 'PUT', body: buildOcspRequest([{ issuerCertificate: issuingDer, serial: a.serial }]) });
  t.equal(put.status, 405);
  ocspType(put);
  t.same(put.body, MALFORMED);
  t.equal(put.headers.allow, 'POST');

  for (const path of ['/ocsp/!!!notbase64', '/ocsp/' + Buffer.from('junk').toString('base64'), '/ocsp/%E0%A4%A']) {
    const g = await ca.publicCall(path);
    ocspType(g);
    t.same(g.body, MALFORMED, `GET ${path}`);
  }
  const longGet = await ca.publicCall('/ocsp/' + 'A'.repeat(14_000));
  t.equal(longGet.status, 200);
  ocspType(longGet);
  t.same(longGet.body, MALFORMED, 'a long GET decodes to no OCSP request');
  // Past Node's 16 KiB header limit the HTTP parser answers 431 before any application code.
  const tooLong = await ca.publicCall('/ocsp/' + 'A'.repeat(24_000));
  t.equal(tooLong.status, 431);
  t.notMatch(String(tooLong.headers['content-type']), /problem\+json/);
});

t.test('OCSP GET caching (RFC 5019) and a revocation visible in the very next response', async (t) => {
  const c = await ca.issue('ecdsa-p256', 'http-c');
  const path = `/ocsp/${encodeURIComponent(buildOcspRequest([{ issuerCertificate: issuingDer, serial: c.serial }]).toString('base64'))}`;
  const first = await ca.publicCall(path);
  t.equal(first.status, 200);
  const cc = String(first.headers['cache-control']);
  const maxAge = Number(/max-age=(\d+)/.exec(cc)?.[1]);
  const resp = parseOcspResponse(first.body).basic!.responses[0];
  t.equal(resp.status, 'good');
  t.ok(maxAge > 0 && maxAge <= (resp.nextUpdate!.getTime() - Date.now()) / 1000 + 2, `max-age ${maxAge} s is not past nextUpdate`);
  t.match(cc, /public/);
  t.equal(first.headers['last-modified'], resp.thisUpdate.toUTCString());
  t.equal(first.headers.expires, resp.nextUpdate!.toUTCString());
  const again = await ca.publicCall(path, { headers: { 'If-None-Match': String(first.headers.etag) } });
  t.equal(again.status, 304, 'conditional GET');

  t.equal((await ca.api('POST', `/certs/${c.serial}/revoke`, { reason: 'cessationOfOperation' })).status, 200);
  const next = await ca.publicCall(path);
  const after = parseOcspResponse(next.body).basic!.responses[0];
  t.equal(after.status, 'revoked', 'the very next response says revoked');
  t.equal(after.reasonCode, 5);
  t.not(next.headers.etag, first.headers.etag);

  const withNonce = await ca.publicCall(`/ocsp/${encodeURIComponent(buildOcspRequest([{ issuerCertificate: issuingDer, serial: c.serial }], Buffer.alloc(16, 7)).toString('base64'))}`);
  t.match(String(withNonce.headers['cache-control']), /no-store/, 'a response to a nonce is not cacheable');
  const unknown = await ca.publicCall(`/ocsp/${encodeURIComponent(buildOcspRequest([{ issuerCertificate: issuingDer, serial: '0abc' }]).toString('base64'))}`);
  t.match(String(unknown.headers['cache-control']), /no-store/, "'unknown' is not cacheable");
});

t.test('CRL endpoint: DER, conditional GET, both listeners, unknown CA', async (t) => {
  const r = await ca.publicCall('/pki/crl/ecdsa-issuing.crl');
  t.equal(r.status, 200);
  t.equal(r.headers['content-type'], 'application/pkix-crl');
  const crl = parseCrl(r.body);
  t.ok(crl.entries.some((e) => e.serial === a.serial));
  t.match(String(r.headers['cache-control']), /no-cache/);
  const cond = await ca.publicCall('/pki/crl/ecdsa-issuing.crl', { headers: { 'If-None-Match': String(r.headers.etag) } });
  t.equal(cond.status, 304);
  const overTls = await ca.publicCall('/pki/crl/ecdsa-issuing.crl', { https: true });
  t.same(overTls.body, r.body, 'served on HTTPS as well');
  for (const p of ['/pki/crl/nope.crl', '/pki/crl/ecdsa-issuing.pem', '/pki/crl/sm2-issuing']) {
    const nf = await ca.publicCall(p);
    t.equal(nf.status, 404, p);
    t.match(String(nf.headers['content-type']), /problem\+json/);
  }
  const sm2 = await ca.publicCall('/pki/crl/sm2-root.crl');
  t.equal(parseCrl(sm2.body).signatureAlgorithm, '1.2.156.10197.1.501');
});
