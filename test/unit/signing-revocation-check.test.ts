// The revocation checker on a real LMDB store: our CA's certificates revoked through the real
// RevocationService (CA keys in process), an external CA made by OpenSSL with CRLs made by
// `openssl ca -gencrl`; the judging time before and after the revocation time.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CrlPublisher } from '../../appliance/src/pki/crl-publisher.js';
import { OcspResponder } from '../../appliance/src/pki/ocsp-responder.js';
import { RevocationService } from '../../appliance/src/pki/revocation.js';
import { createOcspClient } from '../../appliance/src/signing/ocsp-client.js';
import { createRevocationChecker } from '../../appliance/src/signing/revocation-check.js';
import { createTrustStore } from '../../appliance/src/signing/trust-store.js';
import { inProcessKeys, makeTestHierarchy, type TestHierarchy } from '../helpers/openssl-pki.js';
import { freshStore } from '../helpers/store-fixture.js';

const ours = makeTestHierarchy('ecdsa');
const ext = makeTestHierarchy('sm2');
const stranger = makeTestHierarchy('ecdsa');
t.teardown(() => {
  ours.remove();
  ext.remove();
  stranger.remove();
});

const utc = (d: Date): string => d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';

/** A CRL of h's issuing CA made by `openssl ca -gencrl`. */
function opensslCrl(h: TestHierarchy, revoked: { serial: string; at: Date; reason?: string }[], crlNumber: number): Buffer {
  const dir = h.dir;
  const far = utc(new Date(Date.now() + 86_400_000 * 30));
  writeFileSync(join(dir, 'index.txt'), revoked.map((r) => `R\t${far}\t${utc(r.at)}${r.reason ? `,${r.reason}` : ''}\t${r.serial.toUpperCase()}\tunknown\t/CN=${r.serial}\n`).join(''));
  writeFileSync(join(dir, 'crlnumber'), `${crlNumber.toString(16).padStart(2, '0')}\n`);
  writeFileSync(join(dir, 'ca.cnf'), '[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\ncrlnumber=crlnumber\ndefault_md=sha256\nunique_subject=no\n');
  const md = h.kind === 'sm2' ? ['-md', 'sm3', '-sigopt', 'distid:1234567812345678'] : ['-md', 'sha256'];
  execFileSync('openssl', ['ca', '-config', 'ca.cnf', '-gencrl', '-keyfile', h.issuing.keyFile, '-cert', h.issuing.pemFile, '-crlhours', '24', ...md, '-out', 'gen.crl'], { cwd: dir, stdio: 'pipe' });
  return execFileSync('openssl', ['crl', '-in', 'gen.crl', '-outform', 'DER'], { cwd: dir });
}

async function setup(t: Parameters<typeof freshStore>[0], clock?: () => Date) {
  const { store } = await freshStore(t, 'yq-revcheck-');
  for (const ca of ours.caRecords()) await store.cas.put(ca);
  const trust = createTrustStore({ trust: store.trustCas, cas: store.cas });
  const checker = createRevocationChecker({ trust, certs: store.certs, ocsp: createOcspClient(), clock });
  return { store, trust, checker };
}

const HOUR = 3_600_000;

t.test("our CA: status from the certificate records, judged at the signing time", async (t) => {
  let now = new Date(Date.now() - 2 * HOUR);
  const { store, checker } = await setup(t);
  const keys = inProcessKeys(ours);
  const clock = () => now;
  const crls = new CrlPublisher({ cas: store.cas, certs: store.certs, meta: store.meta, custody: keys, clock });
  const ocsp = new OcspResponder({ cas: store.cas, certs: store.certs, custody: keys, clock });
  const revocation = new RevocationService({ certs: store.certs, crls, ocsp, clock });
  const [good, revoked, held, unrecorded] = ['1001', '1002', '1003', '1004'].map((s) => ours.leaf(s));
  for (const c of [good, revoked, held]) await store.certs.insert(ours.record(c));
  const revokedAt = now;
  await revocation.revoke(revoked.serial, 'keyCompromise', 'app:test');
  await revocation.suspend(held.serial, 'app:test');
  now = new Date();

  const path = (leaf: typeof good) => [leaf.der, ours.issuing.der, ours.root.der];
  const ok = await checker.check(path(good), new Date());
  t.same(ok, {
    ok: true,
    certificates: [
      { serial: good.serial, subject: 'CN=leaf 1001,C=CN', status: 'good', source: 'appliance-ca' },
      { serial: ours.issuing.serial, subject: ok.certificates[1].subject, status: 'good', source: 'appliance-ca', detail: "one of the appliance's own CAs" },
    ],
  });

  const after = await checker.check(path(revoked), new Date());
  t.equal(after.ok, false);
  t.match(after.certificates[0], { status: 'revoked', source: 'appliance-ca', reason: 'keyCompromise', revokedAt: revokedAt.toISOString() });
  const before = await checker.check(path(revoked), new Date(revokedAt.getTime() - HOUR));
  t.equal(before.ok, true, 'signed an hour before the revocation: good at that time');
  t.match(before.certificates[0], { status: 'good', reason: 'keyCompromise', revokedAt: revokedAt.toISOString(), detail: /after the time judged at/ });
  t.match((await checker.check(path(revoked), revokedAt)).certificates[0], { status: 'revoked' }, 'at the revocation time itself: revoked');

  t.match((await checker.check(path(held), new Date())).certificates[0], { status: 'revoked', reason: 'certificateHold', detail: /suspended/ });
  await revocation.resume(held.serial, 'app:test');
  t.match((await checker.check(path(held), new Date())).certificates[0], { status: 'good' }, 'resumed');

  t.match((await checker.check(path(unrecorded), new Date())).certificates[0], { status: 'unknown', detail: /no record/ });
  t.same((await checker.check([ours.root.der], new Date())), { ok: true, certificates: [] }, 'the anchor alone: nothing to check');
});

t.test('imported CA: status from its CRL; no CRL or a stale one is unknown', async (t) => {
  let now = new Date();
  const { trust, checker } = await setup(t, () => now);
  const root = await trust.importCa(ext.root.der, {}, 'a');
  const issuing = await trust.importCa(ext.issuing.der, {}, 'a');
  const leafGood = ext.leaf('5a01');
  const leafRevoked = ext.leaf('5a02');
  const path = (leaf: typeof leafGood) => [leaf.der, ext.issuing.der, ext.root.der];

  let r = await checker.check(path(leafGood), now);
  t.equal(r.ok, false);
  t.match(r.certificates, [{ status: 'unknown', source: 'crl', detail: /no CRL is held/ }, { status: 'unknown', source: 'crl', detail: /no CRL is held/ }]);

  const revokedAt = new Date(Math.floor((Date.now() - 2 * HOUR) / 1000) * 1000);
  await trust.importCrl(issuing.id, opensslCrl(ext, [{ serial: leafRevoked.serial, at: revokedAt, reason: 'affiliationChanged' }], 1), 'upload', 'a');
  // The root's CRL, made the same way (root key, empty list).
  const h = { ...ext, issuing: ext.root } as TestHierarchy;
  await trust.importCrl(root.id, opensslCrl(h, [], 1), 'upload', 'a');

  r = await checker.check(path(leafGood), now);
  t.same(r, { ok: true, certificates: [{ serial: '5a01', subject: 'CN=leaf 5a01,C=CN', status: 'good', source: 'crl' }, { serial: ext.issuing.serial, subject: r.certificates[1].subject, status: 'good', source: 'crl' }] });
  r = await checker.check(path(leafRevoked), now);
  t.equal(r.ok, false);
  t.match(r.certificates[0], { status: 'revoked', source: 'crl', revokedAt: revokedAt.toISOString(), reason: 'affiliationChanged' });
  r = await checker.check(path(leafRevoked), new Date(revokedAt.getTime() - 1000));
  t.equal(r.ok, true, 'one second before the revocation: good');
  t.match(r.certificates[0], { status: 'good', revokedAt: revokedAt.toISOString(), reason: 'affiliationChanged' });

  now = new Date(Date.now() + 25 * HOUR);
  r = await checker.check(path(leafGood), new Date());
  t.match(r.certificates[0], { status: 'unknown', source: 'crl', detail: /expired .* \(nextUpdate\)/ });
  t.equal(r.ok, false);

  // an issuer the trust store does not hold
  const s = stranger.leaf('0777');
  t.match((await checker.check([s.der, stranger.issuing.der, stranger.root.der], new Date())).certificates, [{ status: 'unknown', detail: /not in the trust store/ }, { status: 'unknown' }]);
  t.match((await checker.check([Buffer.from('junk'), ext.issuing.der], new Date())).certificates[0], { status: 'unknown', detail: /not a certificate/ });
});
