// OcspResponder: the pre-signed cache, nonces, unknown / unauthorized / malformed, roots,
// responder selection and the race between a signing in flight and a status change.
import t from 'tap';
import { certificateIdentity } from '../../appliance/src/asn1/crl.js';
import { buildOcspRequest, encodeCertId, encodeCertIdFields, issuerHashes, parseOcspResponse, CERT_ID_HASH_OIDS } from '../../appliance/src/asn1/ocsp.js';
import { oid, octets, seq, tlv } from '../../appliance/src/crypto/der.js';
import { verifySignature } from '../../appliance/src/crypto/verify.js';
import { OcspResponder } from '../../appliance/src/pki/ocsp-responder.js';
import type { CertificateRecord } from '../../appliance/src/pki/types.js';
import type { KeyCustody } from '../../appliance/src/crypto/interfaces.js';
import type { Store } from '../../appliance/src/store/open-store.js';
import { inProcessKeys, makeTestHierarchy, type TestHierarchy } from '../helpers/openssl-pki.js';
import { freshStore } from '../helpers/store-fixture.js';

const ecdsa = makeTestHierarchy('ecdsa');
const sm2 = makeTestHierarchy('sm2');
t.teardown(() => {
  ecdsa.remove();
  sm2.remove();
});

async function seed(store: Store, h: TestHierarchy, leaves: string[], withResponder = true) {
  for (const ca of h.caRecords()) await store.cas.put(ca);
  if (withResponder) await store.certs.insert(h.record(h.ocsp, { profile: 'ocsp', keyOrigin: 'appliance', keyRef: h.ocsp.keyFile }));
  const out = leaves.map((s) => h.leaf(s));
  for (const c of out) await store.certs.insert(h.record(c));
  return out;
}

function req(h: TestHierarchy, serial: string, nonce?: Buffer): Buffer {
  return buildOcspRequest([{ issuerCertificate: h.issuing.der, serial }], nonce);
}

async function revokeRecord(store: Store, serial: string): Promise<CertificateRecord> {
  const now = new Date().toISOString();
  return store.certs.update(serial, (c) => ({ ...c!, status: 'revoked', revocation: { time: now, reason: 'keyCompromise', by: 'test' }, updatedAt: now }));
}

t.test('no nonce: one signature, then lookups; a nonce: signed fresh and echoed', async (t) => {
  const { store } = await freshStore(t, 'yq-ocsp-cache-');
  const [a] = await seed(store, ecdsa, ['a1']);
  const ocsp = new OcspResponder({ cas: store.cas, certs: store.certs, custody: inProcessKeys(ecdsa), validityHours: 4 });
  const first = await ocsp.respond(req(ecdsa, a.serial));
  const second = await ocsp.respond(req(ecdsa, a.serial));
  t.same(second.der, first.der, 'the same pre-signed bytes');
  t.equal(ocsp.cachedResponses, 1);
  t.equal(first.nonce, false);
  t.ok(first.nextUpdate && first.thisUpdate && first.nextUpdate.getTime() - first.thisUpdate.getTime() === 4 * 3_600_000);

  const n1 = Buffer.alloc(32, 1);
  const n2 = Buffer.alloc(32, 2);
  const w1 = await ocsp.respond(req(ecdsa, a.serial, n1));
  const w2 = await ocsp.respond(req(ecdsa, a.serial, n2));
  t.equal(w1.nonce, true);
  t.notSame(w1.der, w2.der);
  t.same(parseOcspResponse(w1.der).basic?.nonce, octets(n1), 'nonce echoed (extnValue as sent)');
  t.same(parseOcspResponse(w2.der).basic?.nonce, octets(n2));
  t.equal(ocsp.cachedResponses, 1, 'nonce responses are not cached');
  t.equal((await ocsp.respond(req(ecdsa, a.serial, Buffer.alloc(128, 3)))).status, 'successful', '128 octets accepted (RFC 9654)');
  t.equal((await ocsp.respond(req(ecdsa, a.serial, Buffer.alloc(129, 3)))).status, 'malformedRequest', '129 octets refused');
  t.equal((await ocsp.respond(req(ecdsa, a.serial, Buffer.alloc(0)))).status, 'malformedRequest', 'empty nonce refused');

  // SHA-256 CertIDs and CertIDs without hash parameters are echoed exactly as sent.
  const sha256 = encodeCertId({ issuerCertificate: ecdsa.issuing.der, serial: a.serial, hash: 'sha256' });
  const h1 = issuerHashes(ecdsa.issuing.der, 'sha1');
  const absent = encodeCertIdFields(CERT_ID_HASH_OIDS.sha1, h1.nameHash, h1.keyHash, a.serial, 'absent');
  for (const certId of [sha256, absent]) {
    const r = await ocsp.respond(seq(seq(seq(seq(certId)))));
    const single = parseOcspResponse(r.der).basic!.responses[0];
    t.same(single.certId, certId);
    t.equal(single.status, 'good');
  }
  t.equal(ocsp.cachedResponses, 3, 'one entry per CertID form');
});

t.test('unknown serial, unknown issuer, malformed, mixed CAs, several certificates', async (t) => {
  const { store } = await freshStore(t, 'yq-ocsp-edge-');
  const [a, b] = await seed(store, ecdsa, ['b1', 'b2']);
  await seed(store, sm2, ['c1']);
  const ocsp = new OcspResponder({ cas: store.cas, certs: store.certs, custody: inProcessKeys(ecdsa, sm2), validityHours: 4 });

  const unknown = await ocsp.respond(req(ecdsa, 'abcdef'));
  t.equal(parseOcspResponse(unknown.der).basic?.responses[0].status, 'unknown');
  t.equal(unknown.definite, false);
  t.equal(ocsp.cachedResponses, 0, "'unknown' is not cached");
  const later = ecdsa.leaf('abcdef');
  await store.certs.insert(ecdsa.record(later));
  t.equal(parseOcspResponse((await ocsp.respond(req(ecdsa, 'abcdef'))).der).basic?.responses[0].status, 'good', 'issued a moment later: good at once');

  const stranger = makeTestHierarchy('ecdsa');
  t.teardown(() => stranger.remove());
  t.equal((await ocsp.respond(req(stranger, '01'))).status, 'unauthorized', 'an issuer that is not ours');
  t.same((await ocsp.respond(req(stranger, '01'))).der, Buffer.from('30030a0106', 'hex'));
  // Right name hash, wrong key hash (a CA of the same name with another key).
  const h = issuerHashes(ecdsa.issuing.der, 'sha1');
  const wrongKey = encodeCertIdFields(CERT_ID_HASH_OIDS.sha1, h.nameHash, Buffer.alloc(20), a.serial);
  t.equal((await ocsp.respond(seq(seq(seq(seq(wrongKey)))))).status, 'unauthorized');
  // An unsupported CertID hash (MD5) cannot name one of our CAs.
  const md5 = seq(seq(oid('1.2.840.113549.2.5'), Buffer.from([5, 0])), octets(Buffer.alloc(16)), octets(Buffer.alloc(16)), tlv(2, Buffer.from([1])));
  t.equal((await ocsp.respond(seq(seq(seq(seq(md5)))))).status, 'unauthorized');

  for (const bad of [Buffer.alloc(0), Buffer.from('garbage'), Buffer.concat([req(ecdsa, a.serial), Buffer.from([0])])]) {
    const r = await ocsp.respond(bad);
    t.equal(r.status, 'malformedRequest');
    t.same(r.der, Buffer.from('30030a0101', 'hex'));
  }

  const mixed = buildOcspRequest([{ issuerCertificate: ecdsa.issuing.der, serial: a.serial }, { issuerCertificate: sm2.issuing.der, serial: 'c1' }]);
  t.equal((await ocsp.respond(mixed)).status, 'unauthorized', 'one response cannot be signed by two responders');

  await revokeRecord(store, b.serial);
  const two = await ocsp.respond(buildOcspRequest([{ issuerCertificate: ecdsa.issuing.der, serial: a.serial }, { issuerCertificate: ecdsa.issuing.der, serial: b.serial }]));
  t.same(parseOcspResponse(two.der).basic?.responses.map((r) => [r.serial, r.status]), [[a.serial, 'good'], [b.serial, 'revoked']]);
  t.equal(two.fromCache, false);
});

t.test('roots answer for the issuing-CA certificate, signed with the root key', async (t) => {
  const { store } = await freshStore(t, 'yq-ocsp-root-');
  await seed(store, sm2, []);
  const ocsp = new OcspResponder({ cas: store.cas, certs: store.certs, custody: inProcessKeys(sm2), validityHours: 4 });
  const r = await ocsp.respond(buildOcspRequest([{ issuerCertificate: sm2.root.der, serial: sm2.issuing.serial }]));
  const basic = parseOcspResponse(r.der).basic!;
  t.equal(basic.responses[0].status, 'good');
  t.same(basic.certs, [], 'no delegated responder under a root');
  t.ok(await verifySignature('sm2', certificateIdentity(sm2.root.der).spki, basic.tbs, basic.signature), 'signed by the root key');
  const u = await ocsp.respond(buildOcspRequest([{ issuerCertificate: sm2.root.der, serial: '7777' }]));
  t.equal(parseOcspResponse(u.der).basic?.responses[0].status, 'unknown');
});

t.test('responder selection: delegated, clamped to its validity, CA key when there is none or it is revoked', async (t) => {
  const { store } = await freshStore(t, 'yq-ocsp-responder-');
  const [a] = await seed(store, ecdsa, ['d1']);
  const ocsp = new OcspResponder({ cas: store.cas, certs: store.certs, custody: inProcessKeys(ecdsa), validityHours: 24 * 365 });
  const r = await ocsp.respond(req(ecdsa, a.serial, Buffer.alloc(16, 9)));
  const basic = parseOcspResponse(r.der).basic!;
  t.ok(await verifySignature('ecdsa-p256', certificateIdentity(ecdsa.ocsp.der).spki, basic.tbs, basic.signature, { hash: 'sha256' }));
  t.equal(basic.responses[0].nextUpdate?.getTime(), Math.floor(certificateIdentity(ecdsa.ocsp.der).notAfter.getTime() / 1000) * 1000, 'nextUpdate not past the responder certificate');

  // The responder certificate itself is revoked: its CA signs from then on.
  const revoked = await revokeRecord(store, ecdsa.ocsp.serial);
  await ocsp.statusChanged(revoked);
  const r2 = await ocsp.respond(req(ecdsa, a.serial, Buffer.alloc(16, 8)));
  const b2 = parseOcspResponse(r2.der).basic!;
  t.same(b2.certs, []);
  t.ok(await verifySignature('ecdsa-p256', certificateIdentity(ecdsa.issuing.der).spki, b2.tbs, b2.signature, { hash: 'sha256' }), 'signed by the issuing CA key');
});

t.test('pre-signed responses are re-signed past half their validity', async (t) => {
  const { store } = await freshStore(t, 'yq-ocsp-age-');
  const [a] = await seed(store, ecdsa, ['e1']);
  let now = new Date('2026-07-01T00:00:00Z');
  const ocsp = new OcspResponder({ cas: store.cas, certs: store.certs, custody: inProcessKeys(ecdsa), validityHours: 4, clock: () => now });
  const r1 = await ocsp.respond(req(ecdsa, a.serial));
  now = new Date('2026-07-01T01:59:59Z');
  t.same((await ocsp.respond(req(ecdsa, a.serial))).der, r1.der, 'within the first half: the same response');
  now = new Date('2026-07-01T02:00:01Z');
  const r3 = await ocsp.respond(req(ecdsa, a.serial));
  t.notSame(r3.der, r1.der);
  t.equal(r3.thisUpdate?.toISOString(), '2026-07-01T02:00:01.000Z');
  t.equal(r3.nextUpdate?.toISOString(), '2026-07-01T06:00:01.000Z');
});

t.test('a status change during a signing in flight is not lost', async (t) => {
  const { store } = await freshStore(t, 'yq-ocsp-race-');
  const [a] = await seed(store, ecdsa, ['f1']);
  const keys = inProcessKeys(ecdsa);
  let hold: Promise<void> | undefined;
  let release = (): void => undefined;
  // The real responder key; its first signature waits until the test lets it go.
  const custody: Pick<KeyCustody, 'signer'> = {
    async signer(ref) {
      const s = await keys.signer(ref);
      return {
        algorithm: s.algorithm,
        publicKeyInfo: s.publicKeyInfo,
        async sign(d, o) {
          if (hold) {
            const h = hold;
            hold = undefined;
            await h;
          }
          return s.sign(d, o);
        },
      };
    },
  };
  hold = new Promise<void>((r) => (release = r));
  const ocsp = new OcspResponder({ cas: store.cas, certs: store.certs, custody, validityHours: 4 });
  const inFlight = ocsp.respond(req(ecdsa, a.serial));
  await new Promise((r) => setTimeout(r, 50));
  const revoked = await revokeRecord(store, a.serial);
  await ocsp.statusChanged(revoked);
  release();
  const early = await inFlight;
  t.equal(parseOcspResponse(early.der).basic?.responses[0].status, 'good', 'the request that came first saw the old status');
  const next = await ocsp.respond(req(ecdsa, a.serial));
  t.equal(parseOcspResponse(next.der).basic?.responses[0].status, 'revoked', 'the next one sees the revocation');
});
