// The certificate and CA repositories on a real LMDB store: unique serials, atomic audited
// updates that can refuse, filters and cursor pagination in issuance order, revokedBy, the
// atomic renewal write, and CRL numbers that strictly increase across a reopen.
import t from 'tap';
import { YiqianError } from '../../appliance/src/errors.js';
import { newId, nowIso } from '../../appliance/src/store/ids.js';
import { openStore } from '../../appliance/src/store/open-store.js';
import type { CaRecord, CertificateRecord } from '../../appliance/src/pki/types.js';
import { freshStore, rejection } from '../helpers/store-fixture.js';

let n = 0;
function cert(extra: Partial<CertificateRecord> = {}): CertificateRecord {
  n++;
  const now = nowIso();
  return {
    serial: (0x1000 + n).toString(16) + 'ab'.repeat(14),
    id: newId(),
    caId: 'sm2-issuing',
    hierarchy: 'sm2',
    profile: 'personal',
    subject: `serialNumber=E${n},CN=医生${n},O=某医院,C=CN`,
    commonName: `医生${n}`,
    employeeId: `E${n}`,
    departmentId: n % 2 ? 'D-ODD' : 'D-EVEN',
    keyAlgorithm: 'sm2',
    keyOrigin: 'csr',
    publicKeyInfo: 'AA==',
    notBefore: now,
    notAfter: new Date(Date.now() + n * 86_400_000).toISOString(),
    status: 'good',
    certificate: 'AA==',
    issuedAt: now,
    issuedBy: 'app:test',
    updatedAt: now,
    ...extra,
  };
}

t.test('insert, get, CERT_EXISTS, audit in the same transaction', async (t) => {
  const { store } = await freshStore(t, 'yq-certs-');
  const a = cert();
  await store.certs.insert(a, { audit: { actor: 'app:test', action: 'cert.issue', target: a.serial, outcome: 'ok' } });
  t.same(await store.certs.get(a.serial), a);
  t.equal(await store.certs.get('ff'), undefined);
  t.equal(await store.certs.get('not-hex'), undefined);
  const dup = await rejection(store.certs.insert({ ...cert(), serial: a.serial }, { audit: { actor: 'app:test', action: 'cert.issue', outcome: 'ok' } }));
  t.equal(dup.code, 'CERT_EXISTS');
  t.equal(dup.status, 409);
  t.equal((await store.audit.list({ action: 'cert.issue' })).length, 1, 'the refused insert wrote no audit record');
  t.equal((await rejection(store.certs.insert({ ...cert(), serial: 'XYZ' }))).code, 'BAD_REQUEST');
});

t.test('update: atomic read-modify-write; a refusal writes nothing', async (t) => {
  const { store, dataDir } = await freshStore(t, 'yq-certs-');
  const a = await store.certs.insert(cert());
  const revoked = await store.certs.update(
    a.serial,
    (cur) => ({ ...cur!, status: 'revoked', revocation: { time: nowIso(), reason: 'keyCompromise', by: 'app:test' } }),
    { audit: { actor: 'app:test', action: 'cert.revoke', target: a.serial, outcome: 'ok' } },
  );
  t.equal(revoked.status, 'revoked');
  const refusal = new YiqianError('CERT_ALREADY_REVOKED', 409, { zh: '已吊销', en: 'already revoked' });
  const e = await rejection(
    store.certs.update(a.serial, (cur) => {
      if (cur?.status === 'revoked') throw refusal;
      return cur!;
    }, { audit: { actor: 'app:test', action: 'cert.revoke', target: a.serial, outcome: 'ok' } }),
  );
  t.equal(e, refusal, 'the change function’s error comes back as is');
  t.equal((await store.audit.list({ action: 'cert.revoke' })).length, 1, 'no audit record for the refusal');
  t.equal((await rejection(store.certs.update(a.serial, (cur) => ({ ...cur!, serial: 'ff' })))).code, 'INTERNAL', 'the serial cannot change');
  // Concurrent updates do not lose each other's changes.
  const b = await store.certs.insert(cert());
  await Promise.all(Array.from({ length: 20 }, (_, i) => store.certs.update(b.serial, (cur) => ({ ...cur!, commonName: `${cur!.commonName}|${i}` }))));
  t.equal((await store.certs.get(b.serial))!.commonName.split('|').length, 21, 'twenty read-modify-writes, none lost');
  await store.close();
  const again = await openStore(dataDir);
  t.equal((await again.certs.get(a.serial))!.status, 'revoked', 'durable across reopen');
  await again.close();
});

t.test('query: filters, issuance order, cursor pagination; revokedBy; all()', async (t) => {
  const { store } = await freshStore(t, 'yq-certs-');
  const made: CertificateRecord[] = [];
  for (let i = 0; i < 7; i++) made.push(await store.certs.insert(cert(i === 6 ? { caId: 'ecdsa-issuing', hierarchy: 'ecdsa', profile: 'device' } : {})));
  await store.certs.update(made[1].serial, (c) => ({ ...c!, status: 'suspended', revocation: { time: nowIso(), reason: 'certificateHold', by: 'x' } }));
  await store.certs.update(made[2].serial, (c) => ({ ...c!, status: 'revoked', revocation: { time: nowIso(), reason: 'superseded', by: 'x' } }));
  await store.certs.update(made[3].serial, (c) => ({ ...c!, renewedBy: made[4].serial }));

  const pages: string[][] = [];
  let cursor: string | undefined;
  do {
    const p = await store.certs.query({}, { limit: 3, ...(cursor ? { cursor } : {}) });
    pages.push(p.items.map((r) => r.serial));
    cursor = p.next;
  } while (cursor);
  t.same(pages.map((p) => p.length), [3, 3, 1]);
  t.same(pages.flat(), made.map((r) => r.serial), 'issuance order, each once');
  const exact = await store.certs.query({}, { limit: 7 });
  t.equal(exact.next, undefined, 'no cursor when the page holds the rest exactly');

  const ids = async (q: Parameters<typeof store.certs.query>[0]): Promise<string[]> => (await store.certs.query(q)).items.map((r) => r.serial);
  t.same(await ids({ departmentId: made[0].departmentId }), made.filter((r) => r.departmentId === made[0].departmentId).map((r) => r.serial));
  t.same(await ids({ employeeId: made[5].employeeId }), [made[5].serial]);
  t.same(await ids({ subject: made[5].commonName.toUpperCase() }), [made[5].serial], 'subject substring, case-insensitive');
  t.same(await ids({ status: 'suspended' }), [made[1].serial]);
  t.same(await ids({ profile: 'device' }), [made[6].serial]);
  t.same(await ids({ caId: 'ecdsa-issuing' }), [made[6].serial]);
  t.same(await ids({ serial: made[4].serial.toUpperCase() }), [made[4].serial]);
  t.same(await ids({ renewed: true }), [made[3].serial]);
  t.same(await ids({ expiresBefore: made[2].notAfter }), made.slice(0, 3).map((r) => r.serial));
  t.same(await ids({ expiresAfter: made[5].notAfter }), made.slice(5).map((r) => r.serial));
  t.same((await store.certs.revokedBy('sm2-issuing')).map((r) => r.serial).sort(), [made[1].serial, made[2].serial].sort());
  t.same(await store.certs.revokedBy('ecdsa-issuing'), []);
  const all: string[] = [];
  for await (const r of store.certs.all()) all.push(r.serial);
  t.same(all, made.map((r) => r.serial));
  for (const bad of [{ limit: 0 }, { limit: 501 }, { cursor: '!!' }, { cursor: Buffer.from('not-an-id').toString('base64url') }]) {
    t.equal((await rejection(store.certs.query({}, bad))).code, 'BAD_REQUEST', JSON.stringify(bad));
  }
  t.equal((await rejection(store.certs.query({ expiresBefore: 'soon' }))).code, 'BAD_REQUEST');
});

t.test('insertRenewal: the new certificate and the old one’s link in one transaction', async (t) => {
  const { store } = await freshStore(t, 'yq-certs-');
  const old = await store.certs.insert(cert());
  const renewal = cert({ renewedFrom: old.serial });
  await store.certs.insertRenewal!(renewal, old.serial, (cur) => ({ ...cur!, renewedBy: renewal.serial }), { audit: { actor: 'app:t', action: 'cert.renew', target: renewal.serial, outcome: 'ok' } });
  t.equal((await store.certs.get(old.serial))!.renewedBy, renewal.serial);
  t.equal((await store.certs.get(renewal.serial))!.renewedFrom, old.serial);
  const refused = cert({ renewedFrom: old.serial });
  const e = await rejection(store.certs.insertRenewal!(refused, old.serial, () => { throw new YiqianError('CERT_NOT_RENEWABLE', 409, { zh: '不可更新', en: 'not renewable' }); }));
  t.equal(e.code, 'CERT_NOT_RENEWABLE');
  t.equal(await store.certs.get(refused.serial), undefined, 'the refused renewal left no certificate');
  const taken = await rejection(store.certs.insertRenewal!({ ...cert(), serial: renewal.serial }, old.serial, (cur) => ({ ...cur!, renewedBy: 'ff' })));
  t.equal(taken.code, 'CERT_EXISTS');
  t.equal((await store.certs.get(old.serial))!.renewedBy, renewal.serial, 'the old link is untouched');
  t.equal((await store.audit.list({ action: 'cert.renew' })).length, 1);
});

t.test('CA records and CRL numbers', async (t) => {
  const { store, dataDir } = await freshStore(t, 'yq-cas-');
  const ca: CaRecord = {
    id: 'sm2-issuing', hierarchy: 'sm2', role: 'issuing', keyId: newId(), keyUri: 'pkcs11:object=sm2-issuing-ca', algorithm: 'sm2', certificate: 'AA==',
    subject: 'CN=x', serial: '01', notBefore: nowIso(), notAfter: nowIso(), parentId: 'sm2-root', crlNumber: '0', createdAt: nowIso(),
  };
  await store.cas.put(ca, { audit: { actor: 'cli:init', action: 'ca.create', target: ca.id, outcome: 'ok' } });
  t.same(await store.cas.get('sm2-issuing'), ca);
  t.equal(await store.cas.get('nope' as never), undefined);
  t.same((await store.cas.list()).map((c) => c.id), ['sm2-issuing']);
  const numbers = await Promise.all(Array.from({ length: 10 }, () => store.cas.nextCrlNumber('sm2-issuing')));
  t.same(numbers.map(Number).sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'concurrent callers each get their own number');
  await store.close();
  const again = await openStore(dataDir);
  t.equal(await again.cas.nextCrlNumber('sm2-issuing'), '11', 'strictly increasing across a reopen');
  t.equal((await rejection(again.cas.nextCrlNumber('ecdsa-issuing'))).code, 'CA_NOT_FOUND');
  t.equal((await rejection(again.cas.put({ ...ca, id: 'x' as never }))).code, 'BAD_REQUEST');
  t.equal((await again.audit.list({ action: 'ca.create' })).length, 1);
  await again.close();
});
