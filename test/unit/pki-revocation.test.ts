// RevocationService + CrlPublisher + OcspResponder on a real LMDB store, with certificates made
// by OpenSSL and CA / responder keys in process (the HSM path: test/e2e, test/interop).
import t from 'tap';
import { certificateIdentity, parseCrl } from '../../appliance/src/asn1/crl.js';
import { buildOcspRequest, parseOcspResponse } from '../../appliance/src/asn1/ocsp.js';
import { verifySignature } from '../../appliance/src/crypto/verify.js';
import { CrlPublisher } from '../../appliance/src/pki/crl-publisher.js';
import { OcspResponder } from '../../appliance/src/pki/ocsp-responder.js';
import { RevocationService } from '../../appliance/src/pki/revocation.js';
import type { KeyCustody } from '../../appliance/src/crypto/interfaces.js';
import type { Store } from '../../appliance/src/store/open-store.js';
import { inProcessKeys, makeTestHierarchy, type TestHierarchy } from '../helpers/openssl-pki.js';
import { freshStore, rejection } from '../helpers/store-fixture.js';

const ecdsa = makeTestHierarchy('ecdsa');
const sm2 = makeTestHierarchy('sm2');
t.teardown(() => {
  ecdsa.remove();
  sm2.remove();
});

async function seed(store: Store, h: TestHierarchy, leaves: string[]) {
  for (const ca of h.caRecords()) await store.cas.put(ca);
  await store.certs.insert(h.record(h.ocsp, { profile: 'ocsp', keyOrigin: 'appliance', keyRef: h.ocsp.keyFile }));
  const out = leaves.map((s) => h.leaf(s));
  for (const c of out) await store.certs.insert(h.record(c));
  return out;
}

function services(store: Store, custody: Pick<KeyCustody, 'signer'>, clock?: () => Date) {
  const crls = new CrlPublisher({ cas: store.cas, certs: store.certs, meta: store.meta, custody, audit: store.audit, validityHours: 24, clock });
  const ocsp = new OcspResponder({ cas: store.cas, certs: store.certs, custody, validityHours: 4, clock });
  const revocation = new RevocationService({ certs: store.certs, crls, ocsp, clock });
  return { crls, ocsp, revocation };
}

async function ocspStatus(ocsp: OcspResponder, h: TestHierarchy, serial: string, nonce?: Buffer) {
  const answer = await ocsp.respond(buildOcspRequest([{ issuerCertificate: h.issuing.der, serial }], nonce));
  const parsed = parseOcspResponse(answer.der);
  return { answer, parsed, single: parsed.basic?.responses[0] };
}

t.test('revoke: durable, audited, on the re-signed CRL and in the very next OCSP response', async (t) => {
  const { store } = await freshStore(t, 'yq-revoke-');
  const [a, b] = await seed(store, ecdsa, ['a001', 'b002']);
  const { crls, ocsp, revocation } = services(store, inProcessKeys(ecdsa));

  const before = await ocspStatus(ocsp, ecdsa, a.serial);
  t.equal(before.single?.status, 'good');
  t.equal(before.answer.fromCache, true, 'no nonce: the pre-signed path');

  const result = await revocation.revoke(a.serial.toUpperCase(), 'keyCompromise', 'app:test');
  t.equal(result.certificate.status, 'revoked');
  t.equal(result.certificate.revocation?.reason, 'keyCompromise');
  t.equal(result.certificate.revocation?.by, 'app:test');
  t.same(result.crl, { caId: 'ecdsa-issuing', published: true, crlNumber: '1' });
  t.equal((await store.certs.get(a.serial))?.status, 'revoked', 'stored');
  const audit = await store.audit.list({ action: 'cert.revoke' });
  t.equal(audit.length, 1);
  t.match(audit[0], { actor: 'app:test', target: a.serial, outcome: 'ok', detail: { reason: 'keyCompromise', reasonCode: 1 } });

  const crl = await crls.current('ecdsa-issuing');
  const parsed = parseCrl(crl!.der);
  t.equal(parsed.crlNumber, 1n);
  t.same(parsed.entries.map((e) => [e.serial, e.reasonCode]), [[a.serial, 1]]);
  t.ok(await verifySignature('ecdsa-p256', certificateIdentity(ecdsa.issuing.der).spki, parsed.tbs, parsed.signature, { hash: 'sha256' }), 'CRL signed by the issuing CA key');

  const after = await ocspStatus(ocsp, ecdsa, a.serial);
  t.equal(after.single?.status, 'revoked', 'the next response says revoked');
  t.equal(after.single?.reasonCode, 1);
  t.equal(after.single?.revocationTime?.toISOString(), new Date(Math.floor(Date.parse(result.certificate.revocation!.time) / 1000) * 1000).toISOString());
  const basic = after.parsed.basic!;
  t.same(basic.certs, [ecdsa.ocsp.der], 'the delegated responder certificate is included');
  t.ok(await verifySignature('ecdsa-p256', certificateIdentity(ecdsa.ocsp.der).spki, basic.tbs, basic.signature, { hash: 'sha256' }), 'signed by the delegated responder key');
  t.equal((await ocspStatus(ocsp, ecdsa, b.serial)).single?.status, 'good', 'others unaffected');
});

t.test('bad input: specific codes, nothing written', async (t) => {
  const { store } = await freshStore(t, 'yq-revoke-bad-');
  const [a, b] = await seed(store, ecdsa, ['c001', 'c002']);
  const { crls, revocation } = services(store, inProcessKeys(ecdsa));
  await revocation.revoke(a.serial, 'superseded', 'app:test');
  const auditBefore = (await store.audit.list({ limit: 1000 })).length;
  const numberBefore = (await store.cas.get('ecdsa-issuing'))?.crlNumber;

  const cases: [string, () => Promise<unknown>, string, number][] = [
    ['already revoked', () => revocation.revoke(a.serial, 'keyCompromise', 'app:test'), 'CERT_ALREADY_REVOKED', 409],
    ['unknown serial', () => revocation.revoke('0badbeef', 'keyCompromise', 'app:test'), 'CERT_NOT_FOUND', 404],
    ['certificateHold via revoke', () => revocation.revoke(b.serial, 'certificateHold', 'app:test'), 'INVALID_REVOCATION_REASON', 400],
    ['removeFromCRL via revoke', () => revocation.revoke(b.serial, 'removeFromCRL', 'app:test'), 'INVALID_REVOCATION_REASON', 400],
    ['bad reason name', () => revocation.revoke(b.serial, 'lostIt', 'app:test'), 'INVALID_REVOCATION_REASON', 400],
    ['missing reason', () => revocation.revoke(b.serial, undefined, 'app:test'), 'INVALID_REVOCATION_REASON', 400],
    ['bad serial', () => revocation.revoke('not-hex', 'keyCompromise', 'app:test'), 'SERIAL_INVALID', 400],
    ['serial over 20 bytes', () => revocation.revoke('01'.repeat(21), 'keyCompromise', 'app:test'), 'SERIAL_INVALID', 400],
    ['resume a good certificate', () => revocation.resume(b.serial, 'app:test'), 'CERT_NOT_SUSPENDED', 409],
    ['resume a revoked certificate', () => revocation.resume(a.serial, 'app:test'), 'CERT_NOT_SUSPENDED', 409],
    ['resume unknown', () => revocation.resume('0badbeef', 'app:test'), 'CERT_NOT_FOUND', 404],
    ['suspend a revoked certificate', () => revocation.suspend(a.serial, 'app:test'), 'CERT_ALREADY_REVOKED', 409],
    ['suspend unknown', () => revocation.suspend('0badbeef', 'app:test'), 'CERT_NOT_FOUND', 404],
  ];
  for (const [what, p, code, status] of cases) {
    const e = await rejection(p());
    t.equal(e.code, code, what);
    t.equal(e.status, status, what);
    t.ok(e.text.zh && e.text.en, `${what}: zh and en message`);
  }
  t.equal((await store.audit.list({ limit: 1000 })).length, auditBefore, 'no audit records for refused changes');
  t.equal((await store.cas.get('ecdsa-issuing'))?.crlNumber, numberBefore, 'no CRL signed for refused changes');
  t.equal((await store.certs.get(b.serial))?.status, 'good');
  t.equal(parseCrl((await crls.current('ecdsa-issuing'))!.der).entries.length, 1);
});

t.test('suspend (certificateHold) → resume → revoke for good; CRL numbers strictly increase', async (t) => {
  const { store } = await freshStore(t, 'yq-hold-');
  const [a] = await seed(store, sm2, ['d001']);
  const { crls, ocsp, revocation } = services(store, inProcessKeys(sm2));
  const issuerSpki = certificateIdentity(sm2.issuing.der).spki;
  const responderSpki = certificateIdentity(sm2.ocsp.der).spki;

  const s = await revocation.suspend(a.serial, 'app:ward-3');
  t.equal(s.certificate.status, 'suspended');
  t.equal(s.certificate.revocation?.reason, 'certificateHold');
  let crl = parseCrl((await crls.current('sm2-issuing'))!.der);
  t.same(crl.entries.map((e) => [e.serial, e.reasonCode]), [[a.serial, 6]], 'CRL lists it with certificateHold');
  t.ok(await verifySignature('sm2', issuerSpki, crl.tbs, crl.signature), 'SM2 CRL signature');
  const held = await ocspStatus(ocsp, sm2, a.serial);
  t.equal(held.single?.status, 'revoked');
  t.equal(held.single?.reasonCode, 6, 'OCSP: revoked / certificateHold');
  t.ok(await verifySignature('sm2', responderSpki, held.parsed.basic!.tbs, held.parsed.basic!.signature), 'SM2 OCSP signature by the delegated responder');
  t.equal((await rejection(revocation.suspend(a.serial, 'app:ward-3'))).code, 'CERT_SUSPENDED');

  const r = await revocation.resume(a.serial, 'app:ward-3');
  t.equal(r.certificate.status, 'good');
  t.equal(r.certificate.revocation, undefined);
  crl = parseCrl((await crls.current('sm2-issuing'))!.der);
  t.equal(crl.entries.length, 0, 'gone from the next CRL');
  t.equal((await ocspStatus(ocsp, sm2, a.serial)).single?.status, 'good', 'OCSP good again');

  await revocation.suspend(a.serial, 'app:ward-3');
  const final = await revocation.revoke(a.serial, 'affiliationChanged', 'app:hr');
  t.equal(final.certificate.status, 'revoked');
  t.equal(final.certificate.revocation?.reason, 'affiliationChanged', 'a suspended certificate may be revoked for good');
  crl = parseCrl((await crls.current('sm2-issuing'))!.der);
  t.same(crl.entries.map((e) => e.reasonCode), [3]);
  t.equal((await ocspStatus(ocsp, sm2, a.serial)).single?.reasonCode, 3);
  t.equal(crl.crlNumber, 4n, 'one CRL per change: 1, 2, 3, 4');
  t.same((await store.audit.list({ action: 'cert.', limit: 100 })).map((x) => x.action), ['cert.suspend', 'cert.resume', 'cert.suspend', 'cert.revoke']);
});

t.test('the CRL survives a restart, is re-signed past half its validity, numbers keep increasing', async (t) => {
  const { store } = await freshStore(t, 'yq-crl-restart-');
  const [a] = await seed(store, ecdsa, ['e001']);
  let now = new Date('2026-06-01T00:00:00Z');
  const clock = () => now;
  const first = services(store, inProcessKeys(ecdsa), clock);
  await first.revocation.revoke(a.serial, 'cessationOfOperation', 'app:test');
  const published = (await first.crls.current('ecdsa-issuing'))!;
  await first.crls.stop();

  // A new publisher (as after a restart) serves the stored CRL without signing.
  const second = services(store, inProcessKeys(ecdsa), clock);
  const served = (await second.crls.current('ecdsa-issuing'))!;
  t.same(served.der, published.der, 'same DER after a restart');
  t.equal(served.crlNumber, '1');
  t.same(await second.crls.refreshDue().then((x) => x.map((c) => c.caId)), ['ecdsa-root'], 'only the root (no CRL yet) is signed');

  now = new Date('2026-06-01T11:59:00Z');
  t.same(await second.crls.refreshDue(), [], 'more than half left: nothing to do');
  now = new Date('2026-06-01T12:01:00Z');
  const resigned = await second.crls.refreshDue();
  t.same(Object.fromEntries(resigned.map((c) => [c.caId, c.crlNumber])), { 'ecdsa-issuing': '2', 'ecdsa-root': '2' }, 'past half: both re-signed with their next number');
  const p = parseCrl(resigned.find((c) => c.caId === 'ecdsa-issuing')!.der);
  t.equal(p.thisUpdate.toISOString(), '2026-06-01T12:01:00.000Z');
  t.equal(p.nextUpdate?.toISOString(), '2026-06-02T12:01:00.000Z');
  t.same(p.entries.map((e) => e.serial), [a.serial], 'still lists the revocation');

  // The root's CRL (for the issuing CA certificate) is signed by the root key and empty.
  const root = parseCrl((await second.crls.current('ecdsa-root'))!.der);
  t.equal(root.entries.length, 0);
  t.ok(await verifySignature('ecdsa-p256', certificateIdentity(ecdsa.root.der).spki, root.tbs, root.signature, { hash: 'sha256' }));
  t.equal(await second.crls.current('sm2-issuing'), undefined, 'no such CA in this store');
});

t.test('HSM away during a revocation: the change stands, the CRL is retried by the timer', async (t) => {
  const { store } = await freshStore(t, 'yq-hsm-away-');
  const [a] = await seed(store, ecdsa, ['f001']);
  const keys = inProcessKeys(ecdsa);
  let away = false;
  // The real keys behind a switch that makes signer() fail as an unreachable token does.
  const custody: Pick<KeyCustody, 'signer'> = {
    signer: async (ref) => {
      if (away) throw Object.assign(new Error('token not present'), { code: 'HSM_UNAVAILABLE' });
      const s = await keys.signer(ref);
      return { algorithm: s.algorithm, publicKeyInfo: s.publicKeyInfo, sign: async (d, o) => { if (away) throw new Error('token not present'); return s.sign(d, o); } };
    },
  };
  const { crls, ocsp, revocation } = services(store, custody);
  await crls.refreshDue();
  away = true;
  const r = await revocation.revoke(a.serial, 'keyCompromise', 'app:test');
  t.equal(r.certificate.status, 'revoked', 'the revocation is recorded');
  t.same(r.crl, { caId: 'ecdsa-issuing', published: false });
  t.equal((await store.certs.get(a.serial))?.status, 'revoked');
  const o = await ocsp.respond(buildOcspRequest([{ issuerCertificate: ecdsa.issuing.der, serial: a.serial }]));
  t.equal(o.status, 'internalError', 'OCSP cannot sign: internalError, never a stale good');
  away = false;
  const retried = await crls.refreshDue();
  t.same(retried.map((c) => c.caId), ['ecdsa-issuing'], 'the dirty CA is re-signed on the next tick');
  t.same(parseCrl(retried[0].der).entries.map((e) => e.serial), [a.serial]);
  t.equal((await ocspStatus(ocsp, ecdsa, a.serial)).single?.status, 'revoked');
});

t.test('the timer starts, re-signs when due, and stops', async (t) => {
  const { store } = await freshStore(t, 'yq-crl-timer-');
  await seed(store, ecdsa, []);
  const { crls } = services(store, inProcessKeys(ecdsa));
  crls.start(20);
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && !(await store.meta.get('pki.crl.ecdsa-issuing'))) await new Promise((r) => setTimeout(r, 20));
  await crls.stop();
  t.ok(await store.meta.get('pki.crl.ecdsa-issuing'), 'the first tick published the missing CRLs');
  t.ok(await store.meta.get('pki.crl.ecdsa-root'));
  const n = (await store.cas.get('ecdsa-issuing'))?.crlNumber;
  await new Promise((r) => setTimeout(r, 100));
  t.equal((await store.cas.get('ecdsa-issuing'))?.crlNumber, n, 'nothing signed after stop');
});
