// The certificate service on a real CA (SoftHSM2 token, LMDB store, both hierarchies as
// `yiqian init` makes them): issue from OpenSSL requests and with server-side keys, the records
// and audit entries that result, renewal with the same and a new key, the renewal reminder,
// queries with pagination — and every refusal with its code, leaving nothing behind.
import t from 'tap';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCertificate } from '../../appliance/src/asn1/certificate.js';
import { decryptPrivateKeyInfo } from '../../appliance/src/asn1/pkcs8-encrypted.js';
import { nameToString } from '../../appliance/src/asn1/name.js';
import { verifySignature } from '../../appliance/src/crypto/verify.js';
import { hierarchyKeyLabels, applianceCertificate } from '../../appliance/src/pki/hierarchy.js';
import type { CertificateRecord } from '../../appliance/src/pki/types.js';
import { makePkiFixture, opensslBytes, opensslCsr, type PkiFixture } from '../helpers/pki-hierarchy.js';
import { rejection } from '../helpers/store-fixture.js';

let f: PkiFixture;
const tmp = mkdtempSync(join(tmpdir(), 'yq-pki-csr-'));
const ACTOR = 'app:01TESTAPP0000000000000000A';

// 2.999: the ITU-T example arc (X.660) — a hospital configures OIDs from its own arc.
const LICENCE_OID = '2.999.1.1';
const POLICY_OID = '2.999.2.1';

t.before(async () => {
  f = await makePkiFixture({
    profiles: {
      personal: {
        policies: [{ oid: POLICY_OID, cps: 'http://127.0.0.1:8080/cps' }],
        namedExtensions: [{ name: 'practisingLicence', oid: LICENCE_OID, type: 'utf8String', description: '执业证书号' }],
      },
      'staff-licensed': { base: 'personal', namedExtensions: [{ name: 'practisingLicence', oid: LICENCE_OID, type: 'utf8String', required: true }] },
    },
  });
});
t.teardown(async () => {
  await f?.close();
  rmSync(tmp, { recursive: true, force: true });
});

async function count(): Promise<number> {
  let n = 0;
  for await (const _ of f.store.certs.all()) n++;
  return n;
}

/** The issuer's signature over the certificate verifies with the CA's key (SM2 with the default ID). */
async function signedByIssuer(der: Buffer, caId: CertificateRecord['caId']): Promise<boolean> {
  const cert = readCertificate(der);
  const ca = await f.pki.authorities.get(caId);
  const hash = ca.record.algorithm === 'sm2' ? 'sm3' : 'sha256';
  return verifySignature(ca.record.algorithm, ca.info.publicKeyInfo, cert.tbs, cert.signature, { hash });
}

t.test('init made both hierarchies, their OCSP and TSA certificates and the TLS certificate', async (t) => {
  const cas = await f.pki.authorities.list();
  t.same(cas.map((c) => [c.id, c.role, c.algorithm, c.parentId ?? null]), [
    ['sm2-root', 'root', 'sm2', null],
    ['sm2-issuing', 'issuing', 'sm2', 'sm2-root'],
    ['ecdsa-root', 'root', 'ecdsa-p256', null],
    ['ecdsa-issuing', 'issuing', 'ecdsa-p256', 'ecdsa-root'],
  ]);
  const keys = await f.custody.list();
  const mode = (label: string): string | undefined => keys.find((k) => k.label === label)?.mode;
  t.equal(mode(hierarchyKeyLabels('sm2').root), 'wrapped', 'SM2 CA keys in wrapped custody on SoftHSM2');
  t.equal(mode(hierarchyKeyLabels('ecdsa').issuing), 'hsm', 'ECDSA CA keys in the token');
  for (const h of ['sm2', 'ecdsa'] as const) {
    for (const profile of ['ocsp', 'tsa'] as const) {
      const rec = await applianceCertificate(f.store.certs, h, profile);
      t.ok(rec, `${h} ${profile} certificate`);
      t.equal(rec!.keyOrigin, 'appliance');
      const key = keys.find((k) => k.id === rec!.keyRef);
      t.equal(key?.label, profile === 'ocsp' ? `${h}-ocsp-signer` : `${h}-tsa`, 'keyRef is the inventory id of the kept key');
      t.equal(Buffer.from(rec!.publicKeyInfo, 'base64').toString('hex'), key!.publicKeyInfo.toString('hex'));
      t.ok(await signedByIssuer(Buffer.from(rec!.certificate, 'base64'), `${h}-issuing`), 'signed by the issuing CA');
    }
  }
  const tls = f.created.deviceTls.record;
  t.equal(tls.caId, 'ecdsa-issuing');
  t.equal(tls.profile, 'device');
  t.equal(await f.pki.authorities.chainPem('ecdsa-issuing'), f.created.deviceTls.chainPem, 'chain = the issuing CA');
  const audit = await f.store.audit.list({ action: 'ca.create' });
  t.equal(audit.length, 4, 'each CA creation audited');
});

t.test('issue from OpenSSL requests: SM2, P-256, RSA', async (t) => {
  for (const kind of ['sm2', 'ecdsa-p256', 'rsa-2048'] as const) {
    const { csrPem } = opensslCsr(tmp, kind, '/CN=ignored/O=Ignored Org', `issue-${kind}`);
    const before = await count();
    const issued = await f.pki.certificates.issueFromCsr(
      {
        profile: 'personal',
        csr: csrPem,
        commonName: '张三',
        employeeId: 'E1001',
        departmentId: 'D-CARDIO',
        ou: '心内科',
        titleLevel: '主任医师',
        extensions: [{ name: 'practisingLicence', value: '110110199001011234' }, { oid: '1.2.3.4.5', type: 'integer', value: -129 }],
      },
      ACTOR,
    );
    t.equal(await count(), before + 1);
    const r = issued.record;
    t.equal(r.hierarchy, kind === 'sm2' ? 'sm2' : 'ecdsa', `${kind} → ${r.hierarchy}`);
    t.equal(r.keyOrigin, 'csr');
    t.match(r.serial, /^[0-9a-f]{32}$/);
    t.equal(r.status, 'good');
    t.equal(r.issuedBy, ACTOR);
    t.same([r.employeeId, r.departmentId, r.titleLevel, r.commonName], ['E1001', 'D-CARDIO', '主任医师', '张三']);
    t.equal(r.subject, 'serialNumber=E1001,CN=张三,title=主任医师,OU=心内科,O=医签 yiqian,C=CN', 'request fields win; O is the configured organisation, not the CSR\'s');
    const der = Buffer.from(r.certificate, 'base64');
    t.ok(await signedByIssuer(der, r.caId), 'signature verifies with the issuing CA key');
    const info = readCertificate(der);
    t.equal(info.serial, r.serial);
    t.equal(nameToString(info.subjectDer), r.subject);
    const days = (info.notAfter.getTime() - Date.now()) / 86_400_000;
    t.ok(days > 729.9 && days <= 730, `default validity 730 days (${days.toFixed(2)})`);
    t.equal(info.publicKeyInfo.toString('base64'), r.publicKeyInfo);
    const licence = info.extensions.find((e) => e.oid === LICENCE_OID);
    t.same(licence && { critical: licence.critical, value: licence.value.toString('hex') }, { critical: false, value: '0c12' + Buffer.from('110110199001011234').toString('hex') }, '执业证书号 as UTF8String under its OID');
    t.equal(info.extensions.find((e) => e.oid === '1.2.3.4.5')?.value.toString('hex'), '0202ff7f', 'INTEGER -129');
    t.ok(info.extensions.find((e) => e.oid === '2.5.29.32')?.value.includes(Buffer.from('http://127.0.0.1:8080/cps')), 'configured policy with its CPS URI');
    if (kind !== 'sm2') t.ok(new X509Certificate(der).checkIssued(new X509Certificate((await f.pki.authorities.get('ecdsa-issuing')).der)), 'node: issued by ecdsa-issuing');
    const [entry] = await f.store.audit.list({ action: 'cert.issue', fromSeq: 1, limit: 1000 }).then((l) => l.filter((a) => a.target === r.serial));
    t.equal(entry.actor, ACTOR);
    t.equal(entry.detail?.profile, 'personal');
    if (kind === 'sm2') {
      const cnFromCsr = await f.pki.certificates.issueFromCsr({ profile: 'device', csr: csrPem, dnsNames: ['emr.example'] }, ACTOR);
      t.equal(cnFromCsr.record.commonName, 'ignored', 'without a commonName in the request, the CSR\'s CN is used');
    }
    t.equal(await f.pki.certificates.get(r.serial.toUpperCase().replace(/(..)(?!$)/g, '$1:')).then((x) => x.serial), r.serial, 'get accepts 0A:1B… serial spelling');
  }
});

t.test('server-side key generation: encrypted PKCS#8 that matches the certificate, key not kept', async (t) => {
  for (const algorithm of ['sm2', 'ecdsa-p256', 'rsa-2048'] as const) {
    const issued = await f.pki.certificates.issueWithKeygen({ profile: 'organisation', commonName: '某某市人民医院', algorithm, password: 'correct horse battery' }, ACTOR);
    t.equal(issued.record.keyOrigin, 'server');
    t.notOk(issued.record.keyRef, 'no key reference: the appliance keeps nothing');
    t.match(issued.encryptedPrivateKeyPem, /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    const pkcs8 = await decryptPrivateKeyInfo(issued.encryptedPrivateKeyPem, 'correct horse battery');
    // OpenSSL derives the public key from the decrypted private key: it must be the certified one.
    const spki = opensslBytes(['pkey', '-inform', 'DER', '-pubout', '-outform', 'DER'], pkcs8);
    t.equal(spki.toString('hex'), Buffer.from(issued.record.publicKeyInfo, 'base64').toString('hex'), `${algorithm}: certified key = the generated key`);
    await t.rejects(decryptPrivateKeyInfo(issued.encryptedPrivateKeyPem, 'wrong password!'), { code: 'DECRYPTION_FAILED' });
  }
  const keys = (await f.custody.list()).map((k) => k.label);
  t.notOk(keys.some((l) => /organisation|server/.test(l)), 'no subject key entered the inventory');
});

t.test('bad requests: a specific code each, nothing issued', async (t) => {
  const sm2 = opensslCsr(tmp, 'sm2', '/CN=bad', 'bad-sm2');
  const p256 = opensslCsr(tmp, 'ecdsa-p256', '/CN=bad', 'bad-p256');
  const before = await count();
  const cases: [string, () => Promise<unknown>, string][] = [
    ['garbage CSR', () => f.pki.certificates.issueFromCsr({ profile: 'personal', csr: 'not a csr at all', commonName: 'x', employeeId: 'E1' }, ACTOR), 'CSR_MALFORMED'],
    ['truncated CSR', () => f.pki.certificates.issueFromCsr({ profile: 'personal', csr: readDer(p256.csrPem).subarray(0, 60), commonName: 'x', employeeId: 'E1' }, ACTOR), 'CSR_MALFORMED'],
    ['byte flipped in the subject', () => f.pki.certificates.issueFromCsr({ profile: 'personal', csr: flipInSubject(p256.csrPem, 'bad'), commonName: 'x', employeeId: 'E1' }, ACTOR), 'CSR_SIGNATURE_INVALID'],
    ['SM2 byte flipped', () => f.pki.certificates.issueFromCsr({ profile: 'personal', csr: flipInSubject(sm2.csrPem, 'bad'), commonName: 'x', employeeId: 'E1' }, ACTOR), 'CSR_SIGNATURE_INVALID'],
    ['unknown profile', () => f.pki.certificates.issueFromCsr({ profile: 'wizard', csr: p256.csrPem, commonName: 'x' }, ACTOR), 'PROFILE_UNKNOWN'],
    ['TSA profile over the API', () => f.pki.certificates.issueFromCsr({ profile: 'tsa', csr: p256.csrPem, commonName: 'x' }, ACTOR), 'PROFILE_NOT_ALLOWED'],
    ['SM2 key in the ECDSA hierarchy', () => f.pki.certificates.issueFromCsr({ profile: 'personal', csr: sm2.csrPem, hierarchy: 'ecdsa', commonName: 'x', employeeId: 'E1' }, ACTOR), 'KEY_ALGORITHM_MISMATCH'],
    ['P-256 key in the SM2 hierarchy', () => f.pki.certificates.issueFromCsr({ profile: 'personal', csr: p256.csrPem, hierarchy: 'sm2', commonName: 'x', employeeId: 'E1' }, ACTOR), 'KEY_ALGORITHM_MISMATCH'],
    ['required named extension missing', () => f.pki.certificates.issueFromCsr({ profile: 'staff-licensed', csr: p256.csrPem, commonName: 'x', employeeId: 'E1' }, ACTOR), 'PROFILE_FIELD_MISSING'],
    ['unknown named extension', () => f.pki.certificates.issueFromCsr({ profile: 'personal', csr: p256.csrPem, commonName: 'x', employeeId: 'E1', extensions: [{ name: 'nickname', value: 'x' }] }, ACTOR), 'EXTENSION_NOT_ALLOWED'],
    ['missing employee id', () => f.pki.certificates.issueFromCsr({ profile: 'personal', csr: p256.csrPem, commonName: 'x' }, ACTOR), 'PROFILE_FIELD_MISSING'],
    ['device without SAN', () => f.pki.certificates.issueFromCsr({ profile: 'device', csr: p256.csrPem, commonName: 'his.example' }, ACTOR), 'PROFILE_FIELD_MISSING'],
    ['employee id on a seal', () => f.pki.certificates.issueFromCsr({ profile: 'seal', csr: p256.csrPem, commonName: '合同专用章', employeeId: 'E1' }, ACTOR), 'SUBJECT_FIELD_NOT_ALLOWED'],
    ['non-printable employee id', () => f.pki.certificates.issueFromCsr({ profile: 'personal', csr: p256.csrPem, commonName: 'x', employeeId: '工号1' }, ACTOR), 'SUBJECT_FIELD_INVALID'],
    ['bad DNS name', () => f.pki.certificates.issueFromCsr({ profile: 'device', csr: p256.csrPem, commonName: 'x', dnsNames: ['bad_name.example'] }, ACTOR), 'SUBJECT_FIELD_INVALID'],
    ['validity beyond the profile', () => f.pki.certificates.issueFromCsr({ profile: 'personal', csr: p256.csrPem, commonName: 'x', employeeId: 'E1', validityDays: 5000 }, ACTOR), 'VALIDITY_INVALID'],
    ['extension the CA writes', () => f.pki.certificates.issueFromCsr({ profile: 'personal', csr: p256.csrPem, commonName: 'x', employeeId: 'E1', extensions: [{ oid: '2.5.29.19', type: 'der-hex', value: '3000' }] }, ACTOR), 'EXTENSION_NOT_ALLOWED'],
    ['critical custom extension', () => f.pki.certificates.issueFromCsr({ profile: 'personal', csr: p256.csrPem, commonName: 'x', employeeId: 'E1', extensions: [{ oid: '1.2.3.4', type: 'utf8String', value: 'v', critical: true }] }, ACTOR), 'EXTENSION_NOT_ALLOWED'],
    ['value not of its type', () => f.pki.certificates.issueFromCsr({ profile: 'personal', csr: p256.csrPem, commonName: 'x', employeeId: 'E1', extensions: [{ oid: '1.2.3.4', type: 'printableString', value: '中文' }] }, ACTOR), 'EXTENSION_INVALID'],
    ['custom extension on a device', () => f.pki.certificates.issueFromCsr({ profile: 'device', csr: p256.csrPem, commonName: 'x', dnsNames: ['a.example'], extensions: [{ oid: '1.2.3.4', type: 'boolean', value: true }] }, ACTOR), 'EXTENSION_NOT_ALLOWED'],
    ['keygen with a short password', () => f.pki.certificates.issueWithKeygen({ profile: 'organisation', commonName: 'x', algorithm: 'ecdsa-p256', password: 'short' }, ACTOR), 'PASSWORD_INVALID'],
    ['keygen of an unknown algorithm', () => f.pki.certificates.issueWithKeygen({ profile: 'organisation', commonName: 'x', algorithm: 'dsa-1024' as never, password: 'long enough password' }, ACTOR), 'KEY_UNSUPPORTED'],
    ['unknown serial', () => f.pki.certificates.get('0badc0ffee'), 'CERT_NOT_FOUND'],
    ['serial that is not hex', () => f.pki.certificates.get('xyz'), 'SERIAL_INVALID'],
  ];
  for (const [what, p, code] of cases) {
    const e = await rejection(p());
    t.equal(e.code, code, `${what} → ${code} (${e.text.en})`);
    t.ok(e.text.zh.length > 0 && e.status >= 400 && e.status < 500, 'zh message, 4xx');
  }
  t.equal(await count(), before, 'nothing was issued');
  const refusals = await f.store.audit.list({ action: 'cert.issue', limit: 1000 });
  t.ok(refusals.filter((a) => a.outcome === 'error').length >= cases.length - 2, 'refusals are audited');
});

function readDer(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

function flipInSubject(pem: string, cn: string): Buffer {
  const der = readDer(pem);
  const at = der.indexOf(Buffer.from(cn));
  der[at] ^= 0x01; // 'b' → 'c': still a valid request, no longer the signed one
  return der;
}

t.test('renewal: same key, new key by CSR, new key generated; links both ways', async (t) => {
  const { csrPem } = opensslCsr(tmp, 'sm2', '/CN=renew', 'renew-sm2');
  const first = await f.pki.certificates.issueFromCsr(
    { profile: 'personal', csr: csrPem, commonName: '李四', employeeId: 'E2002', extensions: [{ name: 'practisingLicence', value: 'P-2002' }], validityDays: 30 },
    ACTOR,
  );
  const same = await f.pki.certificates.renew(first.record.serial, {}, ACTOR);
  t.equal(same.record.renewedFrom, first.record.serial);
  t.equal(same.record.publicKeyInfo, first.record.publicKeyInfo, 'same key');
  t.equal(same.record.subject, first.record.subject, 'same subject');
  const oldInfo = readCertificate(Buffer.from(first.record.certificate, 'base64'));
  const newInfo = readCertificate(Buffer.from(same.record.certificate, 'base64'));
  t.same(newInfo.subjectDer, oldInfo.subjectDer, 'subject DER unchanged');
  const licence = (i: typeof oldInfo): string | undefined => i.extensions.find((e) => e.oid === LICENCE_OID)?.value.toString('hex');
  t.equal(licence(newInfo), licence(oldInfo), 'custom extension carried over');
  t.ok((newInfo.notAfter.getTime() - Date.now()) / 86_400_000 > 700, 'renewed with the profile validity');
  t.equal((await f.pki.certificates.get(first.record.serial)).renewedBy, same.record.serial, 'old record points to the new one');
  t.equal((await rejection(f.pki.certificates.renew(first.record.serial, {}, ACTOR))).code, 'CERT_NOT_RENEWABLE', 'a renewed certificate is not renewed twice');

  const next = opensslCsr(tmp, 'sm2', '/CN=renew2', 'renew-sm2-b');
  const byCsr = await f.pki.certificates.renew(same.record.serial, { csr: next.csrPem }, ACTOR);
  t.not(byCsr.record.publicKeyInfo, same.record.publicKeyInfo, 'new key');
  t.equal(byCsr.record.keyOrigin, 'csr');
  t.equal(byCsr.record.subject, first.record.subject, 'subject from the certificate, not the new CSR');
  const wrongFamily = opensslCsr(tmp, 'ecdsa-p256', '/CN=x', 'renew-p256');
  t.equal((await rejection(f.pki.certificates.renew(byCsr.record.serial, { csr: wrongFamily.csrPem }, ACTOR))).code, 'KEY_ALGORITHM_MISMATCH');
  const generated = await f.pki.certificates.renew(byCsr.record.serial, { keygen: { algorithm: 'sm2', password: 'renewal password' } }, ACTOR);
  t.equal(generated.record.keyOrigin, 'server');
  t.match(generated.encryptedPrivateKeyPem ?? '', /ENCRYPTED PRIVATE KEY/);

  // A revoked (or suspended) certificate is not renewed; the revocation itself is revocation.ts's
  // business, here the record is put in that state directly.
  const revoked = await f.pki.certificates.issueFromCsr({ profile: 'personal', csr: csrPem, commonName: '王五', employeeId: 'E3003' }, ACTOR);
  for (const status of ['revoked', 'suspended'] as const) {
    await f.store.certs.update(revoked.record.serial, (cur) => ({ ...cur!, status, revocation: { time: new Date().toISOString(), reason: status === 'revoked' ? 'keyCompromise' : 'certificateHold', by: 'test' } }));
    const before = await count();
    const e = await rejection(f.pki.certificates.renew(revoked.record.serial, {}, ACTOR));
    t.equal(e.code, 'CERT_NOT_RENEWABLE', `${status} → CERT_NOT_RENEWABLE`);
    t.equal(e.status, 409);
    t.equal(await count(), before, 'nothing issued');
    t.notOk((await f.pki.certificates.get(revoked.record.serial)).renewedBy);
  }
  t.equal((await rejection(f.pki.certificates.renew('00ff', {}, ACTOR))).code, 'CERT_NOT_FOUND');
});

t.test('a revocation that lands between the check and the write stops the renewal', async (t) => {
  const { csrPem } = opensslCsr(tmp, 'ecdsa-p256', '/CN=race', 'race');
  const issued = await f.pki.certificates.issueFromCsr({ profile: 'personal', csr: csrPem, commonName: '赵六', employeeId: 'E4004' }, ACTOR);
  const before = await count();
  // Revoke while the renewal is signing (the CA signer is async): the transaction re-checks.
  const renewal = f.pki.certificates.renew(issued.record.serial, {}, ACTOR);
  await f.store.certs.update(issued.record.serial, (cur) => ({ ...cur!, status: 'revoked', revocation: { time: new Date().toISOString(), reason: 'keyCompromise', by: 'test' } }));
  const e = await rejection(renewal);
  t.equal(e.code, 'CERT_NOT_RENEWABLE');
  t.equal(await count(), before, 'the signed renewal was not stored');
});

t.test('queries, pagination and the renewal reminder', async (t) => {
  const { csrPem } = opensslCsr(tmp, 'ecdsa-p256', '/CN=q', 'query');
  const made: string[] = [];
  for (let i = 0; i < 5; i++) {
    const r = await f.pki.certificates.issueFromCsr({ profile: 'personal', csr: csrPem, commonName: `护士${i}`, employeeId: `N${i}`, departmentId: 'D-ICU', validityDays: i < 2 ? 10 : 400 }, ACTOR);
    made.push(r.record.serial);
  }
  const page1 = await f.pki.certificates.query({ departmentId: 'D-ICU' }, { limit: 2 });
  t.equal(page1.items.length, 2);
  t.ok(page1.next);
  const page2 = await f.pki.certificates.query({ departmentId: 'D-ICU' }, { limit: 2, cursor: page1.next });
  const page3 = await f.pki.certificates.query({ departmentId: 'D-ICU' }, { limit: 2, cursor: page2.next });
  t.notOk(page3.next, 'last page has no cursor');
  t.same([...page1.items, ...page2.items, ...page3.items].map((r) => r.serial), made, 'all, in issuance order, each once');
  t.same((await f.pki.certificates.query({ employeeId: 'N3' })).items.map((r) => r.serial), [made[3]]);
  t.same((await f.pki.certificates.query({ subject: '护士4' })).items.map((r) => r.serial), [made[4]], 'subject substring');
  t.same((await f.pki.certificates.query({ serial: made[2] })).items.map((r) => r.serial), [made[2]]);
  t.ok((await f.pki.certificates.query({ profile: 'tsa' })).items.every((r) => r.profile === 'tsa'));
  const soon = await f.pki.certificates.query({ departmentId: 'D-ICU', expiresBefore: new Date(Date.now() + 20 * 86_400_000).toISOString() });
  t.same(soon.items.map((r) => r.serial), made.slice(0, 2));
  const expiring = await f.pki.certificates.expiring(30);
  const expSerials = expiring.items.map((r) => r.serial);
  t.ok(made.slice(0, 2).every((s) => expSerials.includes(s)), 'the 10-day certificates are due');
  t.notOk(made.slice(2).some((s) => expSerials.includes(s)), 'the 400-day ones are not');
  await f.pki.certificates.renew(made[0], {}, ACTOR);
  t.notOk((await f.pki.certificates.expiring(30)).items.some((r) => r.serial === made[0]), 'a renewed certificate leaves the reminder');
  t.equal((await rejection(f.pki.certificates.expiring(0))).code, 'BAD_REQUEST');
  t.equal((await rejection(f.pki.certificates.query({ status: 'lost' as never }))).code, 'BAD_REQUEST');
  t.equal((await rejection(f.pki.certificates.query({}, { cursor: 'bogus' }))).code, 'BAD_REQUEST');
});
