// Held keys (issue 4 item 1) on a real CA: a SoftHSM2 token, LMDB, both hierarchies as `yiqian
// init` makes them (makePkiFixture). Creates SM2 / ECDSA / RSA keys with certificates, uses them
// (signatures checked against the certificate), and walks every refusal: not found, not granted,
// wrong usage, access code required / wrong / locked (also under concurrent guessing), revoked
// and suspended certificates (the real revocation service), expired certificates, and a failed
// issuance that must leave no key behind.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { verifySignature } from '../../appliance/src/crypto/verify.js';
import { toPem } from '../../appliance/src/crypto/der.js';
import { createAppService } from '../../appliance/src/identity/app-service.js';
import { CrlPublisher } from '../../appliance/src/pki/crl-publisher.js';
import { OcspResponder } from '../../appliance/src/pki/ocsp-responder.js';
import { RevocationService } from '../../appliance/src/pki/revocation.js';
import { createHeldKeys, type HeldKeyAdmin } from '../../appliance/src/signing/held-keys.js';
import { makePkiFixture, type PkiFixture } from '../helpers/pki-hierarchy.js';
import { rejection } from '../helpers/store-fixture.js';

const ADMIN = 'cli:test-admin';
let f: PkiFixture;
let held: HeldKeyAdmin;
let revocation: RevocationService;
let offsetMs = 0;
const clock = (): number => Date.now() + offsetMs;
let his: string; // granted app
let lis: string; // not granted

function service(opts: { iterations?: number } = {}): HeldKeyAdmin {
  return createHeldKeys({
    keys: f.store.heldKeys,
    apps: f.store.apps,
    certs: f.store.certs,
    certificates: f.pki.certificates,
    authorities: f.pki.authorities,
    custody: f.custody,
    audit: f.store.audit,
    clock,
    accessCodeIterations: opts.iterations ?? 1000,
  });
}

t.before(async () => {
  f = await makePkiFixture();
  held = service();
  const apps = createAppService(f.store);
  his = (await apps.create({ name: 'HIS', actor: ADMIN })).app.id;
  lis = (await apps.create({ name: 'LIS', actor: ADMIN })).app.id;
  const crls = new CrlPublisher({ cas: f.store.cas, certs: f.store.certs, meta: f.store.meta, custody: f.custody, audit: f.store.audit, validityHours: 24 });
  const ocsp = new OcspResponder({ cas: f.store.cas, certs: f.store.certs, custody: f.custody, validityHours: 4 });
  revocation = new RevocationService({ certs: f.store.certs, crls, ocsp });
});
t.teardown(async () => {
  await f?.close();
});
t.afterEach(() => {
  offsetMs = 0;
});

function keyUsageText(der: Buffer): string {
  const text = execFileSync('openssl', ['x509', '-noout', '-ext', 'keyUsage'], { input: toPem('CERTIFICATE', der) }).toString();
  return text.split('\n').slice(1).join(' ').trim();
}

t.test('an SM2 department key: created in custody, certified by the SM2 hierarchy, signs for the granted app', async (t) => {
  const k = await held.create({ label: 'dept-cardiology-sign', kind: 'department', commonName: '心内科', ou: '心血管内科', departmentId: '0302', grants: [his] }, ADMIN);
  t.match(k, { label: 'dept-cardiology-sign', kind: 'department', usage: 'sign', algorithm: 'sm2', hierarchy: 'sm2', grants: [his], accessCodeRequired: false, departmentId: '0302', disabled: false });
  t.match(k.keyUri, /^pkcs11:/);
  t.match(k.subject, /CN=心内科/);
  const inventory = await f.store.keys.get(k.keyId);
  t.equal(inventory?.label, 'held-dept-cardiology-sign', 'custody label held-<label>');
  const cert = await f.store.certs.get(k.certSerial);
  t.match(cert, { profile: 'organisation', keyOrigin: 'appliance', keyRef: k.keyId, caId: 'sm2-issuing', status: 'good' });
  t.equal(keyUsageText(Buffer.from(cert!.certificate, 'base64')), 'Digital Signature, Non Repudiation');

  const use = await held.forUse('dept-cardiology-sign', his);
  t.equal(use.key.id, k.id);
  t.same(use.certificate, Buffer.from(cert!.certificate, 'base64'), 'certificate DER');
  t.equal(use.chain.length, 1, 'issuing CA only, not the root');
  t.ok(new X509Certificate(use.certificate).checkIssued(new X509Certificate(use.chain[0])), 'chain[0] issued the certificate');
  const data = Buffer.from('医嘱 #20260501-0001');
  const sig = await use.signer.sign(data);
  t.ok(await verifySignature('sm2', Buffer.from(cert!.publicKeyInfo, 'base64'), data, sig), 'SM2 signature verifies with the certificate key');
  t.equal(await held.forUse(k.id, his).then((u) => u.signer), use.signer, 'by id too; the Signer is kept per key');

  t.same((await held.list(his)).map((x) => x.id), [k.id], 'listed for the granted app');
  t.same(await held.list(lis), [], 'not for the other');
  t.equal((await held.findByCertSerial(k.certSerial.toUpperCase()))?.id, k.id, 'found by certificate serial');
  t.equal(await held.findByCertSerial('abcdef'), undefined);

  const audit = await f.store.audit.list({ action: 'held-key.create' });
  t.match(audit.at(-1), { actor: ADMIN, target: k.id, outcome: 'ok', detail: { label: k.label, certSerial: k.certSerial, accessCode: false } });
});

t.test('ECDSA and RSA organisation / seal / staff keys come from the ECDSA hierarchy with their profiles', async (t) => {
  const seal = await held.create({ label: 'seal-contract', kind: 'seal', algorithm: 'ecdsa-p256', commonName: '合同专用章', grants: [his] }, ADMIN);
  const staff = await held.create({ label: 'staff-e1001', kind: 'staff', algorithm: 'rsa-2048', commonName: '张三', employeeId: 'E1001', departmentId: '0302', grants: [his] }, ADMIN);
  t.equal(seal.hierarchy, 'ecdsa');
  t.equal((await f.store.certs.get(seal.certSerial))?.profile, 'seal');
  const staffCert = await f.store.certs.get(staff.certSerial);
  t.match(staffCert, { profile: 'personal', employeeId: 'E1001', departmentId: '0302', caId: 'ecdsa-issuing' });
  for (const [k, alg] of [[seal, 'ecdsa-p256'], [staff, 'rsa-2048']] as const) {
    const use = await held.forUse(k.label, his);
    const data = Buffer.from(`signed by ${k.label}`);
    t.ok(await verifySignature(alg, use.signer.publicKeyInfo, data, await use.signer.sign(data)), `${alg} signature verifies`);
    t.same(use.signer.publicKeyInfo, Buffer.from((await f.store.certs.get(k.certSerial))!.publicKeyInfo, 'base64'), 'signer key is the certified key');
  }
});

t.test('encryption keys get encryption certificates and refuse to sign', async (t) => {
  const sm2 = await held.create({ label: 'env-sm2', kind: 'organisation', usage: 'encrypt', commonName: '医院信息中心（加密）', grants: [his] }, ADMIN);
  const ec = await held.create({ label: 'env-p256', kind: 'organisation', usage: 'encrypt', algorithm: 'ecdsa-p256', commonName: 'Hospital envelope key', grants: [his] }, ADMIN);
  const sm2Cert = await f.store.certs.get(sm2.certSerial);
  const ecCert = await f.store.certs.get(ec.certSerial);
  t.equal(sm2Cert?.profile, 'encryption');
  t.equal(keyUsageText(Buffer.from(sm2Cert!.certificate, 'base64')), 'Key Encipherment, Data Encipherment');
  t.equal(ecCert?.profile, 'key-agreement');
  t.equal(keyUsageText(Buffer.from(ecCert!.certificate, 'base64')), 'Key Agreement', 'RFC 5480: keyAgreement only for EC');

  const e = await rejection(held.forUse('env-sm2', his));
  t.match(e, { code: 'KEY_USAGE_MISMATCH', status: 403 }, 'default usage is sign');
  const use = await held.forUse('env-sm2', his, { usage: 'encrypt' });
  t.equal(use.key.usage, 'encrypt');
  t.match(await rejection(use.signer.sign(Buffer.from('x'))), { code: 'KEY_USAGE_MISMATCH' }, 'its signer never signs');
  const s = await held.create({ label: 'sign-only', kind: 'organisation', commonName: 'Signing', grants: [his] }, ADMIN);
  t.match(await rejection(held.forUse(s.label, his, { usage: 'encrypt' })), { code: 'KEY_USAGE_MISMATCH', status: 403 });
});

t.test('grants: only named, existing apps; grant and ungrant are audited and take effect at once', async (t) => {
  const k = await held.create({ label: 'org-main', kind: 'organisation', commonName: '某某市人民医院' }, ADMIN);
  t.same(k.grants, []);
  t.match(await rejection(held.forUse('org-main', his)), { code: 'KEY_NOT_GRANTED', status: 403 });
  t.match(await rejection(held.grant('org-main', '01ARZ3NDEKTSV4RRFFQ69G5FAV', ADMIN)), { code: 'APP_NOT_FOUND', status: 404 });
  t.match(await rejection(held.create({ label: 'org-x', kind: 'organisation', commonName: 'X', grants: [his, 'nope'] }, ADMIN)), { code: 'APP_NOT_FOUND' });
  t.equal(await f.store.keys.getByLabel('held-org-x'), undefined, 'no key made for a refused request');

  t.same((await held.grant('org-main', his, ADMIN)).grants, [his]);
  t.same((await held.grant('org-main', his, ADMIN)).grants, [his], 'granting twice changes nothing');
  t.ok(await held.forUse('org-main', his));
  t.match(await rejection(held.forUse('org-main', lis)), { code: 'KEY_NOT_GRANTED' });
  t.same((await held.ungrant('org-main', his, ADMIN)).grants, []);
  t.match(await rejection(held.forUse('org-main', his)), { code: 'KEY_NOT_GRANTED' }, 'ungranted at once');

  const actions = (await f.store.audit.list({ action: 'held-key.' })).filter((r) => r.target === k.id).map((r) => `${r.action}:${r.outcome}`);
  t.same(actions, ['held-key.create:ok', 'held-key.use:denied', 'held-key.grant:ok', 'held-key.grant:ok', 'held-key.use:denied', 'held-key.ungrant:ok', 'held-key.use:denied']);
  const denied = (await f.store.audit.list({ action: 'held-key.use' })).at(-1);
  t.match(denied, { actor: `app:${his}`, outcome: 'denied', detail: { code: 'KEY_NOT_GRANTED' } });
});

t.test('not found, disabled, bad create input', async (t) => {
  t.match(await rejection(held.forUse('no-such-key', his)), { code: 'KEY_NOT_FOUND', status: 404 });
  t.match(await rejection(held.forUse('01ARZ3NDEKTSV4RRFFQ69G5FAV', his)), { code: 'KEY_NOT_FOUND' });
  t.match(await rejection(held.get('x'.repeat(500))), { code: 'KEY_NOT_FOUND' });

  const k = await held.create({ label: 'to-disable', kind: 'organisation', commonName: 'Old', grants: [his] }, ADMIN);
  await held.forUse(k.label, his);
  const d = await held.disable(k.label, ADMIN);
  t.equal(d.disabled, true);
  t.match(await rejection(held.forUse(k.label, his)), { code: 'KEY_NOT_FOUND', status: 404 }, 'disabled keys are not found for use');
  t.same(await held.list(his).then((l) => l.filter((x) => x.id === k.id)), [], 'nor listed for apps');
  t.equal((await held.get(k.id)).disabled, true, 'admins still see it');
  t.match(await rejection(held.disable(k.label, ADMIN)), { code: 'HELD_KEY_DISABLED', status: 409 });
  t.match(await rejection(held.grant(k.label, lis, ADMIN)), { code: 'HELD_KEY_DISABLED' });

  t.match(await rejection(held.create({ label: 'to-disable', kind: 'organisation', commonName: 'Again' }, ADMIN)), { code: 'HELD_KEY_EXISTS', status: 409 });
  const bad: [string, Record<string, unknown>, string][] = [
    ['upper-case label', { label: 'Dept', kind: 'organisation', commonName: 'X' }, 'HELD_KEY_FIELD_INVALID'],
    ['id-like label', { label: '01ARZ3NDEKTSV4RRFFQ69G5FAV', kind: 'organisation', commonName: 'X' }, 'HELD_KEY_FIELD_INVALID'],
    ['unknown kind', { label: 'k1', kind: 'robot', commonName: 'X' }, 'HELD_KEY_FIELD_INVALID'],
    ['unknown usage', { label: 'k1', kind: 'seal', usage: 'wrap', commonName: 'X' }, 'HELD_KEY_FIELD_INVALID'],
    ['unknown algorithm', { label: 'k1', kind: 'seal', algorithm: 'ed25519', commonName: 'X' }, 'HELD_KEY_FIELD_INVALID'],
    ['staff without employee id', { label: 'k1', kind: 'staff', commonName: '李四' }, 'HELD_KEY_FIELD_INVALID'],
    ['short access code', { label: 'k1', kind: 'seal', commonName: 'X', accessCode: '123' }, 'ACCESS_CODE_FORMAT'],
    ['grants not an array', { label: 'k1', kind: 'seal', commonName: 'X', grants: his }, 'HELD_KEY_FIELD_INVALID'],
  ];
  for (const [what, input, code] of bad) t.match(await rejection(held.create(input as never, ADMIN)), { code, status: 400 }, what);
  t.equal(await f.store.keys.getByLabel('held-k1'), undefined, 'nothing generated for refused input');
});

t.test('a failed issuance destroys the generated key: nothing half-made stays', async (t) => {
  const before = (await f.custody.list()).length;
  for (const [what, input, code] of [
    ['control character in the name', { label: 'broken-1', kind: 'organisation', commonName: 'bad\u0007name' }, 'SUBJECT_FIELD_INVALID'],
    ['validity beyond the profile', { label: 'broken-2', kind: 'seal', algorithm: 'ecdsa-p256', commonName: 'Seal', validityDays: 99999 }, 'VALIDITY_INVALID'],
    ['field the profile does not take', { label: 'broken-3', kind: 'seal', commonName: 'Seal', employeeId: 'E1' }, 'SUBJECT_FIELD_NOT_ALLOWED'],
  ] as const) {
    t.match(await rejection(held.create(input, ADMIN)), { code }, what);
    t.equal(await f.store.keys.getByLabel(`held-${input.label}`), undefined, `${what}: no key record`);
    t.equal(await f.store.heldKeys.getByLabel(input.label), undefined, `${what}: no held-key record`);
  }
  t.equal((await f.custody.list()).length, before, 'custody inventory unchanged (token objects destroyed)');
  const failures = (await f.store.audit.list({ action: 'held-key.create' })).filter((r) => r.outcome === 'error');
  t.ok(failures.length >= 3, 'failed creations are audited');
});

t.test('access code: required, checked, never stored or shown in clear, changed and removed', async (t) => {
  const k = await held.create({ label: 'seal-finance', kind: 'seal', commonName: '财务专用章', grants: [his], accessCode: 's3cret-财务' }, ADMIN);
  t.equal(k.accessCodeRequired, true);
  const rec = await f.store.heldKeys.get(k.id);
  t.match(rec?.accessCode, { alg: 'pbkdf2-hmac-sm3', iterations: 1000 });
  t.notOk(JSON.stringify(rec).includes('s3cret'), 'stored only as a verifier');
  t.notOk(JSON.stringify(await f.store.audit.list({ action: 'held-key.' })).includes('s3cret'), 'never audited');

  t.match(await rejection(held.forUse(k.label, his)), { code: 'ACCESS_CODE_REQUIRED', status: 403 });
  t.match(await rejection(held.forUse(k.label, his, { accessCode: '' })), { code: 'ACCESS_CODE_REQUIRED' });
  t.match(await rejection(held.forUse(k.label, his, { accessCode: 'wrong-code' })), { code: 'ACCESS_CODE_INVALID', status: 403 });
  t.ok(await held.forUse(k.label, his, { accessCode: 's3cret-财务' }));
  t.ok(await held.forUse(k.label, his, { accessCode: 's3cret-财务'.normalize('NFD') }), 'NFC-normalised');
  t.match(await rejection(held.forUse(k.label, his, { accessCode: 'wrong-code' })), { code: 'ACCESS_CODE_INVALID' }, 'a wrong code after a cached success is still wrong');
  t.match(await rejection(held.forUse(k.label, lis, { accessCode: 's3cret-财务' })), { code: 'KEY_NOT_GRANTED' }, 'the code does not replace a grant');

  await held.setAccessCode(k.label, 'new-code-2026', ADMIN);
  t.match(await rejection(held.forUse(k.label, his, { accessCode: 's3cret-财务' })), { code: 'ACCESS_CODE_INVALID' }, 'the old code (cached before) no longer works');
  t.ok(await held.forUse(k.label, his, { accessCode: 'new-code-2026' }));
  t.match(await rejection(held.setAccessCode(k.label, 'ab\ncdefg', ADMIN)), { code: 'ACCESS_CODE_FORMAT', status: 400 });
  const cleared = await held.setAccessCode(k.label, null, ADMIN);
  t.equal(cleared.accessCodeRequired, false);
  t.ok(await held.forUse(k.label, his), 'no code needed any more');
  t.equal((await f.store.heldKeys.get(k.id))?.accessFailures, undefined, 'failures cleared with the code');

  const failedUses = (await f.store.audit.list({ action: 'held-key.use' })).filter((r) => r.target === k.id && r.outcome === 'denied');
  t.same(failedUses.map((r) => r.detail?.code), ['ACCESS_CODE_REQUIRED', 'ACCESS_CODE_REQUIRED', 'ACCESS_CODE_INVALID', 'ACCESS_CODE_INVALID', 'KEY_NOT_GRANTED', 'ACCESS_CODE_INVALID'], 'each failure audited (GB/T 38629)');
});

t.test('after the first success a correct code costs one HMAC, not PBKDF2', async (t) => {
  const slow = service({ iterations: 200_000 });
  await slow.create({ label: 'fast-path', kind: 'organisation', commonName: 'Fast', grants: [his], accessCode: 'fast-path-code' }, ADMIN);
  let start = performance.now();
  await slow.forUse('fast-path', his, { accessCode: 'fast-path-code' });
  const first = performance.now() - start;
  start = performance.now();
  for (let i = 0; i < 50; i++) await slow.forUse('fast-path', his, { accessCode: 'fast-path-code' });
  const fifty = performance.now() - start;
  t.ok(fifty < first, `50 later uses (${fifty.toFixed(1)} ms) cost less than the first verification (${first.toFixed(1)} ms)`);
});

t.test('lockout: 5 wrong codes in 15 minutes lock the key (423) until the window passes', async (t) => {
  const k = await held.create({ label: 'staff-locked', kind: 'staff', commonName: '王五', employeeId: 'E2002', grants: [his], accessCode: 'right-code' }, ADMIN);
  for (let i = 0; i < 5; i++) t.match(await rejection(held.forUse(k.label, his, { accessCode: `guess-${i}` })), { code: 'ACCESS_CODE_INVALID' }, `guess ${i + 1}`);
  const locked = await rejection(held.forUse(k.label, his, { accessCode: 'right-code' }));
  t.match(locked, { code: 'ACCESS_CODE_LOCKED', status: 423 }, 'even the right code is refused while locked');
  t.ok((locked.detail?.retryAfterSeconds as number) > 800, 'says when to retry');
  offsetMs = 14 * 60_000;
  t.match(await rejection(held.forUse(k.label, his, { accessCode: 'right-code' })), { code: 'ACCESS_CODE_LOCKED' }, 'still locked after 14 minutes');
  offsetMs = 15 * 60_000 + 1000;
  t.ok(await held.forUse(k.label, his, { accessCode: 'right-code' }), 'open again once the window passed');
  const another = service();
  t.match(await rejection(another.forUse(k.label, his, { accessCode: 'wrong' })), { code: 'ACCESS_CODE_INVALID' }, 'failures are on the key, seen by every process');
  const codes = (await f.store.audit.list({ action: 'held-key.use' })).filter((r) => r.target === k.id).map((r) => r.detail?.code);
  t.same(codes, [...Array(5).fill('ACCESS_CODE_INVALID'), 'ACCESS_CODE_LOCKED', 'ACCESS_CODE_LOCKED', 'ACCESS_CODE_INVALID']);
});

t.test('lockout holds under concurrent guessing: exactly 5 guesses are judged', async (t) => {
  const k = await held.create({ label: 'org-guessed', kind: 'organisation', commonName: 'Guessed', grants: [his], accessCode: 'the-real-one' }, ADMIN);
  const fresh = service(); // nothing cached: every guess would need PBKDF2
  const results = await Promise.all(Array.from({ length: 12 }, (_, i) => rejection(fresh.forUse(k.label, his, { accessCode: `parallel-${i}` }))));
  const count = (c: string): number => results.filter((e) => e.code === c).length;
  t.equal(count('ACCESS_CODE_INVALID'), 5);
  t.equal(count('ACCESS_CODE_LOCKED'), 7);
});

t.test('revoked, suspended and expired certificates are refused, read on every call', async (t) => {
  const k = await held.create({ label: 'org-revoked', kind: 'organisation', algorithm: 'ecdsa-p256', commonName: 'Revoked Org', grants: [his] }, ADMIN);
  await held.forUse(k.label, his);
  await revocation.suspend(k.certSerial, ADMIN);
  t.match(await rejection(held.forUse(k.label, his)), { code: 'HELD_KEY_CERT_REVOKED', status: 403, detail: { status: 'suspended' } });
  await revocation.resume(k.certSerial, ADMIN);
  t.ok(await held.forUse(k.label, his), 'usable again after resume');
  await revocation.revoke(k.certSerial, 'keyCompromise', ADMIN);
  t.match(await rejection(held.forUse(k.label, his)), { code: 'HELD_KEY_CERT_REVOKED', detail: { status: 'revoked', reason: 'keyCompromise' } });

  const e = await held.create({ label: 'org-expiring', kind: 'organisation', commonName: 'Short', validityDays: 1, grants: [his] }, ADMIN);
  t.ok(await held.forUse(e.label, his));
  offsetMs = 2 * 86_400_000;
  t.match(await rejection(held.forUse(e.label, his)), { code: 'HELD_KEY_CERT_EXPIRED', status: 403 });
  offsetMs = -86_400_000;
  t.match(await rejection(held.forUse(e.label, his)), { code: 'HELD_KEY_CERT_EXPIRED' }, 'not yet valid');
});

t.test('certificateChain gives the certificate and its chain', async (t) => {
  const k = await held.get('dept-cardiology-sign');
  const { certificate, chain } = await held.certificateChain(k.id);
  t.equal(new X509Certificate(certificate).serialNumber.toLowerCase().replace(/^0+/, ''), k.certSerial.replace(/^0+/, ''));
  t.equal(chain.length, 1);
});
