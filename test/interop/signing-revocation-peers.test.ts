// Revocation checking against real peers:
//   - CRLs made by `openssl ca -gencrl` (ECDSA and RSA external CAs) downloaded from a local HTTP
//     server by the CRL fetcher, and the fetcher's failures (404, garbage, oversize, timeout);
//   - a real `openssl ocsp -index … -port` responder for an external CA: good, revoked (judged
//     before and after the revocation time), unknown, a wrong signer, an unreachable responder;
//   - our own CA (SoftHSM2 token, hierarchies as `yiqian init` makes them) with a certificate
//     revoked through the RevocationService.
import t from 'tap';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromPem } from '../../appliance/src/crypto/der.js';
import { CrlPublisher } from '../../appliance/src/pki/crl-publisher.js';
import { OcspResponder } from '../../appliance/src/pki/ocsp-responder.js';
import { RevocationService } from '../../appliance/src/pki/revocation.js';
import { createCrlFetcher } from '../../appliance/src/signing/crl-fetch.js';
import { createOcspClient } from '../../appliance/src/signing/ocsp-client.js';
import { createRevocationChecker } from '../../appliance/src/signing/revocation-check.js';
import { createTrustStore } from '../../appliance/src/signing/trust-store.js';
import { makeTestHierarchy, type TestCert, type TestHierarchy } from '../helpers/openssl-pki.js';
import { makePkiFixture, opensslCsr } from '../helpers/pki-hierarchy.js';
import { freshStore, rejection } from '../helpers/store-fixture.js';

const ext = makeTestHierarchy('ecdsa');
const other = makeTestHierarchy('ecdsa');
t.teardown(() => {
  ext.remove();
  other.remove();
});

type TestT = Parameters<typeof freshStore>[0];
const HOUR = 3_600_000;
const utc = (d: Date): string => d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';
const far = utc(new Date(Date.now() + 30 * 86_400_000));

function openssl(args: string[], cwd: string): Buffer {
  return execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** index.txt as `openssl ca` keeps it: V (valid) and R (revoked, time[,reason]) lines. */
function writeIndex(dir: string, entries: { serial: string; revoked?: { at: Date; reason?: string } }[]): string {
  const file = join(dir, 'index.txt');
  writeFileSync(
    file,
    entries.map((e) => `${e.revoked ? 'R' : 'V'}\t${far}\t${e.revoked ? `${utc(e.revoked.at)}${e.revoked.reason ? `,${e.revoked.reason}` : ''}` : ''}\t${e.serial.toUpperCase()}\tunknown\t/CN=${e.serial}\n`).join(''),
  );
  writeFileSync(`${file}.attr`, 'unique_subject = no\n');
  return file;
}

/** `openssl ca -gencrl` over the current index.txt of `dir`, signed by cert/key. */
function gencrl(dir: string, cert: { pemFile: string; keyFile: string }, crlNumber: number): Buffer {
  writeFileSync(join(dir, 'crlnumber'), `${crlNumber.toString(16).padStart(2, '0')}\n`);
  writeFileSync(join(dir, 'ca.cnf'), '[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\ncrlnumber=crlnumber\ndefault_md=sha256\nunique_subject=no\ncrl_extensions=e\n[e]\nauthorityKeyIdentifier=keyid\n');
  openssl(['ca', '-config', 'ca.cnf', '-gencrl', '-keyfile', cert.keyFile, '-cert', cert.pemFile, '-crlhours', '24', '-md', 'sha256', '-out', 'gen.crl'], dir);
  return openssl(['crl', '-in', 'gen.crl', '-outform', 'DER'], dir);
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createNetServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once `openssl ocsp` says it listens (a bare connect-and-close probe would wedge its single-threaded server). */
async function waitForListening(child: ChildProcess): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let text = '';
    const onData = (d: Buffer): void => {
      text += d.toString();
      if (/ACCEPT|waiting for OCSP client connections/.test(text)) resolve();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`openssl ocsp exited with ${code}: ${text}`)));
    setTimeout(() => reject(new Error(`openssl ocsp did not start: ${text}`)), 10_000).unref();
  });
}

/** A real `openssl ocsp` responder for h's issuing CA, signing with `signer`. */
async function ocspResponder(t: TestT, h: TestHierarchy, index: string, signer: { pemFile: string; keyFile: string }): Promise<string> {
  const port = await freePort();
  const child = spawn('openssl', ['ocsp', '-index', index, '-port', String(port), '-CA', h.issuing.pemFile, '-rsigner', signer.pemFile, '-rkey', signer.keyFile, '-nmin', '10', '-ignore_err'], { cwd: h.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    child.kill();
  });
  await waitForListening(child);
  return `http://127.0.0.1:${port}/`;
}

/** A local HTTP server with fixed answers per path; counts requests. */
async function crlServer(t: TestT, routes: Record<string, (res: import('node:http').ServerResponse) => void>): Promise<{ url: string; hits: Map<string, number> }> {
  const hits = new Map<string, number>();
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/';
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const route = routes[path];
    if (route) route(res);
    else {
      res.statusCode = 404;
      res.end('not here');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, hits };
}

t.test('CRL download: DER and PEM from a real server, then due only after the interval; failures recorded', async (t) => {
  const { store } = await freshStore(t, 'yq-crlfetch-');
  let now = new Date();
  const trust = createTrustStore({ trust: store.trustCas, cas: store.cas, clock: () => now });
  const revokedAt = new Date(Math.floor((Date.now() - HOUR) / 1000) * 1000);
  const leafGood = ext.leaf('0a11');
  const leafRevoked = ext.leaf('0a12');
  writeIndex(ext.dir, [{ serial: leafRevoked.serial, revoked: { at: revokedAt, reason: 'keyCompromise' } }]);
  let crl = gencrl(ext.dir, ext.issuing, 1);
  const crlPem = Buffer.from(`-----BEGIN X509 CRL-----\n${gencrl(ext.dir, ext.issuing, 2).toString('base64')}\n-----END X509 CRL-----\n`);
  const big = Buffer.alloc(70 * 1024, 0x30);
  const srv = await crlServer(t, {
    '/issuing.crl': (res) => res.end(crl),
    '/issuing.pem': (res) => res.end(crlPem),
    '/garbage.crl': (res) => res.end('<html>maintenance</html>'),
    '/big.crl': (res) => res.end(big),
    '/slow.crl': () => undefined,
  });
  const fetcher = createCrlFetcher({ trust, clock: () => now, maxBytes: 64 * 1024, timeoutMs: 800 });

  const ca = await trust.importCa(ext.issuing.pem, { crlUrl: `${srv.url}/issuing.crl`, crlFetchHours: 6 }, 'app:admin');
  await trust.importCa(ext.root.pem, {}, 'app:admin');
  t.same(await fetcher.refreshDue(), [{ id: ca.id, ok: true }], 'never fetched: due');
  t.match((await trust.get(ca.id)).crl, { number: '1', entries: 1, source: 'fetch' });
  t.same(await fetcher.refreshDue(), [], 'just fetched: not due');
  now = new Date(Date.now() + 5 * HOUR);
  t.same(await fetcher.refreshDue(), [], 'within 6 hours: not due');
  now = new Date(Date.now() + 6 * HOUR + 1000);
  t.same(await fetcher.refreshDue(), [{ id: ca.id, ok: true }], 'same CRL again is not an error');
  t.equal(srv.hits.get('/issuing.crl'), 2);
  now = new Date();

  const checker = createRevocationChecker({ trust, certs: store.certs, ocsp: createOcspClient() });
  const path = (c: TestCert) => [c.der, ext.issuing.der, ext.root.der];
  const r = await checker.check(path(leafRevoked), new Date());
  t.match(r.certificates[0], { status: 'revoked', source: 'crl', reason: 'keyCompromise', revokedAt: revokedAt.toISOString() });
  t.match((await checker.check(path(leafRevoked), new Date(revokedAt.getTime() - 60_000))).certificates[0], { status: 'good', revokedAt: revokedAt.toISOString() });
  t.match((await checker.check(path(leafGood), new Date())).certificates[0], { status: 'good', source: 'crl' });

  // failures: each recorded on the CA, audited, and the held CRL kept
  const cases: [string, string, RegExp][] = [
    ['/missing.crl', 'CRL_FETCH_FAILED', /HTTP 404/],
    ['/garbage.crl', 'CRL_DECODE_FAILED', /cannot read the CRL/],
    ['/big.crl', 'CRL_FETCH_FAILED', /exceeds the limit/],
    ['/slow.crl', 'CRL_FETCH_FAILED', /no answer within 800 ms/],
    // another CA with the same subject Name (the second OpenSSL hierarchy): the key decides
    ['/issuing.crl', 'CRL_SIGNATURE_INVALID', /does not verify with the CA's key/],
  ];
  for (const [p, code, why] of cases) {
    const target = p === '/issuing.crl' ? await trust.importCa(other.issuing.pem, { crlUrl: `${srv.url}${p}` }, 'a') : await trust.get(ca.id);
    if (p !== '/issuing.crl') await store.trustCas.update(ca.id, (cur) => ({ ...cur!, crlUrl: `${srv.url}${p}` }));
    const e = await rejection(fetcher.fetchNow(target.id, 'app:ops'));
    t.equal(e.code, code, p);
    t.match(e.text.en, why, p);
    const after = await trust.get(target.id);
    t.match(after.lastFetchError, { code }, `${p}: recorded`);
  }
  t.equal((await trust.get(ca.id)).crl?.number, '1', 'failures kept the CRL held');
  const audited = await store.audit.list({ action: 'trust.crl.fetch' });
  t.equal(audited.length, 5);
  t.ok(audited.every((a) => a.outcome === 'error'));

  // PEM body; the failed CA is retried after 15 minutes, not after the whole interval
  await store.trustCas.update(ca.id, (cur) => ({ ...cur!, crlUrl: `${srv.url}/issuing.pem` }));
  now = new Date(Date.now() + 16 * 60_000);
  const due = await fetcher.refreshDue();
  t.same(due.find((d) => d.id === ca.id), { id: ca.id, ok: true });
  t.match(due.find((d) => d.id !== ca.id), { ok: false, code: 'CRL_SIGNATURE_INVALID' }, 'the failed one retried after 15 minutes');
  const v = await trust.get(ca.id);
  t.match(v.crl, { number: '2', source: 'fetch' });
  t.notOk(v.lastFetchError, 'success clears the error');

  const noUrl = await trust.importCa(other.root.pem, {}, 'a');
  t.match(await rejection(fetcher.fetchNow(noUrl.id, 'a')), { code: 'CRL_URL_NOT_SET', status: 409 });
  t.match(await rejection(fetcher.fetchNow('0'.repeat(64), 'a')), { code: 'TRUST_CA_NOT_FOUND', status: 404 });

  // start()/stop(): the timer runs refreshDue at once and never throws
  crl = gencrl(ext.dir, ext.issuing, 3);
  await store.trustCas.update(ca.id, (cur) => ({ ...cur!, crlUrl: `${srv.url}/issuing.crl`, lastFetchAt: undefined }));
  const f2 = createCrlFetcher({ trust, timeoutMs: 800 });
  f2.start(60_000);
  await f2.stop();
  t.equal((await trust.get(ca.id)).crl?.number, '3', 'fetched at start');
});

t.test('RSA external CA: CRL by openssl ca, revoked and good', async (t) => {
  const { store } = await freshStore(t, 'yq-rsa-');
  const dir = ext.dir;
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'rsa-root.key'], dir);
  openssl(['req', '-new', '-x509', '-key', 'rsa-root.key', '-sha256', '-subj', '/C=CN/O=Ext/CN=RSA Root', '-days', '30', '-config', 'openssl.cnf', '-extensions', 'root', '-out', 'rsa-root.pem'], dir);
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'rsa-leaf.key'], dir);
  openssl(['req', '-new', '-key', 'rsa-leaf.key', '-sha256', '-subj', '/CN=rsa leaf', '-config', 'openssl.cnf', '-out', 'rsa-leaf.csr'], dir);
  const leaves = ['71', '72'].map((serial) => {
    openssl(['x509', '-req', '-in', 'rsa-leaf.csr', '-CA', 'rsa-root.pem', '-CAkey', 'rsa-root.key', '-sha256', '-extfile', 'openssl.cnf', '-extensions', 'leaf', '-set_serial', `0x${serial}`, '-days', '10', '-out', `rsa-${serial}.pem`], dir);
    return openssl(['x509', '-in', `rsa-${serial}.pem`, '-outform', 'DER'], dir);
  });
  const rootPem = openssl(['x509', '-in', 'rsa-root.pem'], dir).toString();
  const rootDer = fromPem(rootPem)[0].der;
  const trust = createTrustStore({ trust: store.trustCas, cas: store.cas });
  const ca = await trust.importCa(rootPem, {}, 'a');
  t.equal(ca.anchor, true);
  const at = new Date(Math.floor((Date.now() - HOUR) / 1000) * 1000);
  writeIndex(dir, [{ serial: '72', revoked: { at, reason: 'superseded' } }]);
  await trust.importCrl(ca.id, gencrl(dir, { pemFile: join(dir, 'rsa-root.pem'), keyFile: join(dir, 'rsa-root.key') }, 1), 'upload', 'a');
  const checker = createRevocationChecker({ trust, certs: store.certs, ocsp: createOcspClient() });
  t.same(await checker.check([leaves[0], rootDer], new Date()), { ok: true, certificates: [{ serial: '71', subject: 'CN=rsa leaf', status: 'good', source: 'crl' }] });
  t.match((await checker.check([leaves[1], rootDer], new Date())).certificates[0], { status: 'revoked', reason: 'superseded', revokedAt: at.toISOString() });
});

t.test('OCSP from a real openssl responder: good, revoked at/after the judging time, unknown, wrong signer, unreachable', async (t) => {
  const { store } = await freshStore(t, 'yq-ocsp-');
  const good = ext.leaf('0b01');
  const revoked = ext.leaf('0b02');
  const stranger = ext.leaf('0b03');
  const revokedAt = new Date(Math.floor((Date.now() - 2 * HOUR) / 1000) * 1000);
  const index = writeIndex(ext.dir, [{ serial: good.serial }, { serial: revoked.serial, revoked: { at: revokedAt, reason: 'keyCompromise' } }, { serial: ext.ocsp.serial }]);
  const delegated = await ocspResponder(t, ext, index, ext.ocsp);
  const byIssuer = await ocspResponder(t, ext, index, ext.issuing);
  const byLeaf = await ocspResponder(t, ext, index, good); // issued by the CA, but no id-kp-OCSPSigning
  const byOther = await ocspResponder(t, ext, index, other.ocsp); // OCSPSigning, but another CA's

  const trust = createTrustStore({ trust: store.trustCas, cas: store.cas });
  await trust.importCa(ext.root.pem, {}, 'a');
  const ca = await trust.importCa(ext.issuing.pem, { ocspUrl: delegated }, 'a');
  const ocsp = createOcspClient();
  const checker = createRevocationChecker({ trust, certs: store.certs, ocsp });
  const path = (c: TestCert) => [c.der, ext.issuing.der, ext.root.der];

  let r = await checker.check(path(good), new Date());
  t.match(r.certificates[0], { serial: good.serial, status: 'good', source: 'ocsp' });
  t.match(r.certificates[1], { status: 'unknown', source: 'crl', detail: /no CRL/ }, 'the root has neither OCSP nor a CRL');
  r = await checker.check(path(revoked), new Date());
  t.match(r.certificates[0], { status: 'revoked', source: 'ocsp', reason: 'keyCompromise', revokedAt: revokedAt.toISOString() });
  r = await checker.check(path(revoked), new Date(revokedAt.getTime() - HOUR));
  t.match(r.certificates[0], { status: 'good', source: 'ocsp', revokedAt: revokedAt.toISOString(), detail: /after the time judged at/ });
  r = await checker.check(path(stranger), new Date());
  t.match(r.certificates[0], { status: 'unknown', source: 'ocsp', detail: /does not know/ });

  const direct = await ocsp.query(good.der, ext.issuing.der, delegated);
  t.equal(direct.fromCache, true, 'cached until nextUpdate');
  t.match(direct.signer, /^responder /);
  const issuerSigned = await ocsp.query(good.der, ext.issuing.der, byIssuer);
  t.match(issuerSigned, { status: 'good', signer: 'issuer', fromCache: false });
  t.ok(issuerSigned.nextUpdate && issuerSigned.nextUpdate.getTime() > Date.now());

  for (const [url, why] of [
    [byLeaf, /lacks id-kp-OCSPSigning/],
    // another CA's responder certificate with the same issuer Name: the CA's key decides
    [byOther, /not signed by the CA/],
  ] as const) {
    const e = await ocsp.query(good.der, ext.issuing.der, url).then(
      () => undefined,
      (x: Error & { code?: string }) => x,
    );
    t.match(e, { code: 'OCSP_SIGNER_UNAUTHORISED', message: why }, url);
    await store.trustCas.update(ca.id, (cur) => ({ ...cur!, ocspUrl: url }));
    const w = await createRevocationChecker({ trust: createTrustStore({ trust: store.trustCas, cas: store.cas }), certs: store.certs, ocsp: createOcspClient() }).check(path(revoked), new Date());
    t.match(w.certificates[0], { status: 'unknown', source: 'ocsp', detail: why }, 'a wrong signer never yields revoked or good');
  }

  // unreachable: unknown; with a CRL held, the CRL answers and says why
  const dead = `http://127.0.0.1:${await freePort()}/`;
  await store.trustCas.update(ca.id, (cur) => ({ ...cur!, ocspUrl: dead }));
  const fresh = () => createRevocationChecker({ trust: createTrustStore({ trust: store.trustCas, cas: store.cas }), certs: store.certs, ocsp: createOcspClient({ timeoutMs: 1000 }) });
  t.match((await fresh().check(path(revoked), new Date())).certificates[0], { status: 'unknown', source: 'ocsp', detail: /OCSP_UNREACHABLE/ });
  await trust.importCrl(ca.id, gencrl(ext.dir, ext.issuing, 5), 'upload', 'a');
  t.match((await fresh().check(path(revoked), new Date())).certificates[0], { status: 'revoked', source: 'crl', detail: /OCSP failed .*answered from the CRL/ });
});

t.test('our CA on a SoftHSM2 token: a certificate revoked through the RevocationService', async (t) => {
  const f = await makePkiFixture();
  t.teardown(() => f.close());
  const { keyFile: _k, csrPem } = opensslCsr(f.dir, 'ecdsa-p256', '/CN=Dr Wang');
  const issue = () => f.pki.certificates.issueFromCsr({ profile: 'personal', csr: csrPem, commonName: '王医生', employeeId: 'E7' }, 'test');
  const [kept, lost] = [await issue(), await issue()];
  const crls = new CrlPublisher({ cas: f.store.cas, certs: f.store.certs, meta: f.store.meta, custody: f.custody });
  const ocspResponderSvc = new OcspResponder({ cas: f.store.cas, certs: f.store.certs, custody: f.custody });
  const revocation = new RevocationService({ certs: f.store.certs, crls, ocsp: ocspResponderSvc });
  const before = new Date();
  await new Promise((r) => setTimeout(r, 1100));
  const result = await revocation.revoke(lost.record.serial, 'keyCompromise', 'app:test');
  t.equal(result.crl.published, true);

  const trust = createTrustStore({ trust: f.store.trustCas, cas: f.store.cas });
  const checker = createRevocationChecker({ trust, certs: f.store.certs, ocsp: createOcspClient() });
  const issuing = await f.pki.authorities.get('ecdsa-issuing');
  const root = await f.pki.authorities.get('ecdsa-root');
  const material = await trust.material();
  t.ok(material.anchors.some((a) => a.equals(root.der)) && material.intermediates.some((i) => i.equals(issuing.der)), 'our hierarchies are trusted');
  const path = (serialB64: string) => [Buffer.from(serialB64, 'base64'), issuing.der, root.der];

  const ok = await checker.check(path(kept.record.certificate), new Date());
  t.same(ok.certificates.map((c) => [c.status, c.source]), [['good', 'appliance-ca'], ['good', 'appliance-ca']]);
  const now = await checker.check(path(lost.record.certificate), new Date());
  t.equal(now.ok, false);
  t.match(now.certificates[0], { serial: lost.record.serial, status: 'revoked', source: 'appliance-ca', reason: 'keyCompromise', revokedAt: result.certificate.revocation?.time });
  const earlier = await checker.check(path(lost.record.certificate), before);
  t.equal(earlier.ok, true, 'signed (time-stamped) before the revocation: good at that time');
  t.match(earlier.certificates[0], { status: 'good', reason: 'keyCompromise' });
  await crls.stop();
});
