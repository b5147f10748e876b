// OpenSSL against the RUNNING appliance (ECDSA hierarchy): `openssl crl -verify` on the CRL it
// serves, `openssl ocsp -url` for good / revoked / unknown certificates with and without a
// nonce, the GET form of OCSP, suspend/resume, and CRL numbers across a restart.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startCa, type Issued, type RunningCa } from '../helpers/revocation-client.js';

let ca: RunningCa;
let issuing: string;
let root: string;
let good: Issued;
let revoked: Issued;
let held: Issued;

function openssl(args: string[]): { out: string; err: string; code: number | null } {
  const r = spawnSync('openssl', args, { encoding: 'utf8', timeout: 30_000 });
  return { out: r.stdout, err: r.stderr, code: r.status };
}

/** `openssl ocsp` asking the running responder over POST. */
function ask(cert: Issued | { serial: string }, extra: string[] = []): { out: string; err: string; code: number | null } {
  const which = 'file' in cert ? ['-cert', cert.file] : ['-serial', `0x${cert.serial}`];
  return openssl(['ocsp', '-issuer', issuing, ...which, '-url', `${ca.server.httpUrl}/ocsp`, '-CAfile', root, '-verify_other', issuing, ...extra]);
}

async function crlText(): Promise<{ text: string; verify: string; number: number; der: Buffer }> {
  const r = await ca.publicCall('/pki/crl/ecdsa-issuing.crl');
  if (r.status !== 200) throw new Error(`CRL: ${r.status}`);
  const file = join(ca.work, `crl-${Date.now()}.der`);
  writeFileSync(file, r.body);
  const v = openssl(['crl', '-inform', 'DER', '-in', file, '-CAfile', issuing, '-verify', '-noout']);
  const text = openssl(['crl', '-inform', 'DER', '-in', file, '-noout', '-text']).out;
  const number = Number(/X509v3 CRL Number:\s*\n\s*(\d+)/.exec(text)?.[1]);
  return { text, verify: v.err + v.out, number, der: r.body };
}

t.before(async () => {
  ca = await startCa(t);
  issuing = (await ca.ca('ecdsa-issuing')).file;
  root = (await ca.ca('ecdsa-root')).file;
  good = await ca.issue('ecdsa-p256', 'good-doctor');
  revoked = await ca.issue('ecdsa-p256', 'lost-laptop');
  held = await ca.issue('ecdsa-p256', 'lost-ukey');
});

t.test('revoke → openssl crl -verify; the CRL lists serial, reason and number', async (t) => {
  const before = await crlText();
  t.match(before.verify, /verify OK/);
  const r = await ca.api('POST', `/certs/${revoked.serial}/revoke`, { reason: 'keyCompromise' });
  t.equal(r.status, 200, JSON.stringify(r.json));
  t.equal(r.json.status, 'revoked');
  t.equal(r.json.crl.published, true);
  const after = await crlText();
  t.match(after.verify, /verify OK/, 'openssl crl -verify -CAfile issuing.pem');
  t.ok(after.number > before.number, `CRL number ${before.number} → ${after.number}`);
  t.equal(String(after.number), r.json.crl.crlNumber);
  t.match(after.text, new RegExp(`Serial Number: ${revoked.serial.toUpperCase()}\\s*\\n\\s*Revocation Date: .*\\n\\s*CRL entry extensions:\\s*\\n\\s*X509v3 CRL Reason Code:\\s*\\n\\s*Key Compromise`));
  t.notMatch(after.text, new RegExp(good.serial.toUpperCase()));
});

t.test('openssl ocsp against the running responder: good, revoked (time, reason), unknown; with and without nonce', async (t) => {
  for (const nonce of [[], ['-no_nonce']]) {
    const label = nonce.length ? 'no nonce' : 'nonce';
    const g = ask(good, nonce);
    t.equal(g.code, 0, g.err);
    t.match(g.err, /Response verify OK/, `${label}: verified against the root`);
    t.match(g.out, new RegExp(`${good.file.replace(/[/.]/g, '\\$&')}: good`), `${label}: good`);
    if (!nonce.length) t.notMatch(g.err + g.out, /WARNING: no nonce in response/, 'nonce echoed');

    const r = ask(revoked, nonce);
    t.match(r.err, /Response verify OK/);
    t.match(r.out, /: revoked\s*\n\s*This Update: .*\n\s*Next Update: .*\n\s*Reason: keyCompromise\s*\n\s*Revocation Time: \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} GMT/, `${label}: revoked with reason and time`);

    const u = ask({ serial: '0123456789abcdef' }, nonce);
    t.match(u.err, /Response verify OK/);
    t.match(u.out, /0x0123456789abcdef: unknown/i, `${label}: never-issued serial is unknown`);
  }
  // Two certificates in one request.
  const both = openssl(['ocsp', '-issuer', issuing, '-cert', good.file, '-cert', revoked.file, '-url', `${ca.server.httpUrl}/ocsp`, '-CAfile', root, '-verify_other', issuing]);
  t.match(both.err, /Response verify OK/);
  t.match(both.out, /: good[\s\S]*: revoked/);
});

t.test('OCSP over GET (RFC 6960 A.1): the response openssl verifies, with RFC 5019 caching headers', async (t) => {
  const reqFile = join(ca.work, 'get-req.der');
  t.equal(openssl(['ocsp', '-issuer', issuing, '-cert', revoked.file, '-no_nonce', '-reqout', reqFile]).code, 0);
  const b64 = (await import('node:fs')).readFileSync(reqFile).toString('base64');
  const res = await ca.publicCall(`/ocsp/${encodeURIComponent(b64)}`);
  t.equal(res.status, 200);
  t.equal(res.headers['content-type'], 'application/ocsp-response');
  t.match(String(res.headers['cache-control']), /max-age=\d+/);
  t.ok(res.headers.etag && res.headers['last-modified'] && res.headers.expires);
  const respFile = join(ca.work, 'get-resp.der');
  writeFileSync(respFile, res.body);
  const v = openssl(['ocsp', '-respin', respFile, '-issuer', issuing, '-cert', revoked.file, '-CAfile', root, '-verify_other', issuing, '-no_nonce']);
  t.match(v.err, /Response verify OK/);
  t.match(v.out, /: revoked[\s\S]*Reason: keyCompromise/);
  // Unencoded '/' and '+' in the path work too.
  const raw = await ca.publicCall(`/ocsp/${b64}`);
  t.same(raw.body, res.body, 'the same pre-signed response');
  // And over HTTPS.
  const tls = await ca.publicCall(`/ocsp/${encodeURIComponent(b64)}`, { https: true });
  t.same(tls.body, res.body);
});

t.test('suspend → revoked/certificateHold on OCSP and CRL; resume → good and gone from the next CRL', async (t) => {
  t.equal((await ca.api('POST', `/certs/${held.serial}/suspend`)).status, 200);
  const s = ask(held, ['-no_nonce']);
  t.match(s.err, /Response verify OK/);
  t.match(s.out, /: revoked[\s\S]*Reason: certificateHold/);
  const crl1 = await crlText();
  t.match(crl1.verify, /verify OK/);
  t.match(crl1.text, new RegExp(`Serial Number: ${held.serial.toUpperCase()}\\s*\\n\\s*Revocation Date: .*\\n\\s*CRL entry extensions:\\s*\\n\\s*X509v3 CRL Reason Code:\\s*\\n\\s*Certificate Hold`));

  const resumed = await ca.api('POST', `/certs/${held.serial}/resume`);
  t.equal(resumed.status, 200);
  t.equal(resumed.json.status, 'good');
  t.match(ask(held, ['-no_nonce']).out, /: good/, 'OCSP good again');
  const crl2 = await crlText();
  t.ok(crl2.number > crl1.number);
  t.notMatch(crl2.text, new RegExp(held.serial.toUpperCase()), 'not on the next CRL');
  t.match(crl2.text, new RegExp(revoked.serial.toUpperCase()), 'the real revocation stays');
});

t.test('after a restart: the same CRL is served, and the next number is higher', async (t) => {
  const before = await crlText();
  await ca.restart();
  const same = await crlText();
  t.same(same.der, before.der, 'the stored CRL, not a new one');
  t.match(ask(revoked, ['-no_nonce']).out, /: revoked/);
  const another = await ca.issue('ecdsa-p256', 'after-restart');
  const r = await ca.api('POST', `/certs/${another.serial}/revoke`, { reason: 'superseded' });
  t.equal(r.status, 200);
  const after = await crlText();
  t.match(after.verify, /verify OK/);
  t.ok(after.number > same.number, `CRL number strictly increases across the restart (${same.number} → ${after.number})`);
  t.match(after.text, /Superseded/);
});
