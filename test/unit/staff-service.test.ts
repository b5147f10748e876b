// The staff service on the real store with real SoftHSM2 custody: PII sealed under a data key
// wrapped by the token's KEK, masked everywhere, revealed only with an audited reason, found
// through blind indexes; the key survives a restart; tampering is detected; CSV imports are
// all or nothing.
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestToken } from '../helpers/softhsm.js';
import { rejection } from '../helpers/store-fixture.js';
import { csvZh, nationalId, people, toGbk, withBadCheck } from '../helpers/staff-data.js';
import { openPkcs11Custody, type Pkcs11Custody } from '../../firmware-bridge/pkcs11/pkcs11-custody.js';
import { createSm2Signer, generateSm2KeyPair, sm2Digest, sm2SpkiFromPublicKey } from '../../appliance/src/crypto/sm2.js';
import { openStore, type Store } from '../../appliance/src/store/open-store.js';
import { withRawDatabase } from '../../appliance/src/store/raw-access.js';
import { createPiiProtector, PII_DATA_KEY, PII_DATA_KEYS_PREFIX, type PiiDataKeyRecord } from '../../appliance/src/staff/pii.js';
import { createStaffService, type ImportReport, type StaffService } from '../../appliance/src/staff/staff-service.js';
import { createDepartmentService } from '../../appliance/src/staff/department-service.js';
import type { StaffRecord } from '../../appliance/src/staff/types.js';

const token = makeTestToken();

interface Env {
  dataDir: string;
  store: Store;
  custody: Pkcs11Custody;
  staff: StaffService;
  close(): Promise<void>;
}

async function openEnv(dataDir: string): Promise<Env> {
  const store = await openStore(dataDir);
  const custody = await openPkcs11Custody(
    {
      module: token.module,
      tokenLabel: token.label,
      pin: token.pin,
      poolSize: 2,
      softwareSm2: { generate: generateSm2KeyPair, signer: (d) => createSm2Signer(d), spki: sm2SpkiFromPublicKey, digest: sm2Digest },
    },
    store.keys,
  );
  const pii = createPiiProtector({ meta: store.meta, wrapper: custody });
  const staff = createStaffService({ staff: store.staff, departments: store.departments, audit: store.audit, pii });
  let closed = false;
  return {
    dataDir,
    store,
    custody,
    staff,
    async close() {
      if (closed) return;
      closed = true;
      await custody.close();
      await store.close();
    },
  };
}

async function fresh(t: Test, depts = ['0301', '0302']): Promise<Env> {
  const dataDir = mkdtempSync(join(tmpdir(), 'yq-staffsvc-'));
  const env = await openEnv(dataDir);
  const departments = createDepartmentService(env.store.departments);
  for (const d of depts) await departments.create({ hisDeptId: d, name: `科室${d}` }, 'test');
  t.teardown(async () => {
    await env.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return env;
}

const zhang = { name: '张三', employeeId: 'Z001', departmentId: '0301', titleLevel: '主任医师', mobile: '13812345678', nationalId: nationalId('19750312', 17) };
const li = { name: '李四', employeeId: 'L002', departmentId: '0302', mobile: '13987654321', nationalId: nationalId('19880808', 21, '440305') };

t.test('create and read: masked everywhere, the data key made on first use and kept wrapped', async (t) => {
  const env = await fresh(t);
  t.equal(await env.store.meta.get(PII_DATA_KEY), undefined, 'no data key before the first use');
  const created = await env.staff.create(zhang, 'app:test');
  t.same(created, {
    employeeId: 'Z001',
    name: '张三',
    departmentId: '0301',
    titleLevel: '主任医师',
    status: 'active',
    nationalId: `${zhang.nationalId.slice(0, 3)}***********${zhang.nationalId.slice(-4)}`,
    mobile: '138****5678',
    createdAt: created.createdAt,
    updatedAt: created.updatedAt,
  });
  await env.staff.create(li, 'app:test');
  const shown = JSON.stringify([await env.staff.get('Z001'), await env.staff.list(), await env.staff.list({ departmentId: '0302' })]);
  for (const secret of [zhang.nationalId, zhang.mobile, li.nationalId, li.mobile]) t.notOk(shown.includes(secret), 'no plaintext in get/list');
  t.match(shown, /138\*\*\*\*5678/);

  const ptr = (await env.store.meta.get<PiiDataKeyRecord>(PII_DATA_KEY))!;
  t.match(ptr, { alg: 'sealed-sm4-v1', wrappedBy: 'hsm-kek' });
  t.same(await env.store.meta.get(PII_DATA_KEYS_PREFIX + ptr.keyId), ptr, 'archived under its id');
  const key = await env.custody.unwrapSecret(Buffer.from(ptr.wrapped, 'base64'));
  t.equal(key.length, 32, 'the HSM unwraps it to a 32-byte key');
  t.equal(Buffer.from(ptr.wrapped, 'base64').indexOf(key), -1, 'the wrapped form does not contain the key');
  const rec = (await env.store.staff.get('Z001'))!;
  t.equal(rec.piiKeyId, ptr.keyId);

  // The stored bytes (read past every repository) hold neither plaintext nor the key.
  await env.close();
  const dump = async (db: 'staff' | 'meta' | 'audit' | 'staff-by-department'): Promise<string> =>
    withRawDatabase(env.dataDir, db, (raw) => JSON.stringify(raw.keys().map((k) => [k, raw.get(k)])));
  const everything = (await Promise.all((['staff', 'meta', 'audit', 'staff-by-department'] as const).map(dump))).join('\n');
  t.match(everything, /Z001/, 'the dump is real');
  for (const secret of [zhang.nationalId, zhang.mobile, li.nationalId, li.mobile, key.toString('base64'), key.toString('hex')]) {
    t.notOk(everything.includes(secret), 'not in the stored bytes');
  }
});

t.test('the data key survives a restart of store and custody; a second key is never made', async (t) => {
  const env = await fresh(t);
  await env.staff.create(zhang, 'app:test');
  const keyId = (await env.store.meta.get<PiiDataKeyRecord>(PII_DATA_KEY))!.keyId;
  await env.close();
  const again = await openEnv(env.dataDir);
  try {
    t.equal((await again.staff.get('Z001')).mobile, '138****5678', 'opens after the restart');
    t.equal((await again.staff.reveal('Z001', { reason: '核对身份' }, 'app:test')).nationalId, zhang.nationalId);
    await again.staff.create(li, 'app:test');
    t.equal((await again.store.staff.get('L002'))!.piiKeyId, keyId, 'the same key seals new records');
    t.equal((await again.store.meta.get<PiiDataKeyRecord>(PII_DATA_KEY))!.keyId, keyId);
  } finally {
    await again.close();
  }
});

t.test('reveal: reason required, audited with actor, reason and fields, never the plaintext', async (t) => {
  const env = await fresh(t);
  await env.staff.create(zhang, 'app:test');
  await env.staff.create({ ...li, mobile: undefined }, 'app:test');
  for (const bad of [{}, { reason: '' }, { reason: 'x' }, { reason: 'y'.repeat(201) }, { reason: '查看\u0000' }]) {
    const e = await rejection(env.staff.reveal('Z001', bad, 'app:a'));
    t.match(e.code, /MISSING_FIELD|FIELD_INVALID/, JSON.stringify(bad).slice(0, 40));
  }
  t.equal((await rejection(env.staff.reveal('Z001', { reason: '核对', fields: ['name'] }, 'app:a'))).code, 'FIELD_INVALID');
  t.equal((await rejection(env.staff.reveal('NOBODY', { reason: '核对身份' }, 'app:a'))).code, 'STAFF_NOT_FOUND');
  t.same((await env.store.audit.list({ action: 'staff.reveal' })).length, 0, 'refused reveals show nothing and record no reveal');

  t.same(await env.staff.reveal('Z001', { reason: '医务科核对执业注册信息' }, 'app:01HIS'), { employeeId: 'Z001', nationalId: zhang.nationalId, mobile: zhang.mobile });
  t.same(await env.staff.reveal('L002', { reason: '核对手机号', fields: ['mobile', 'nationalId'] }, 'app:01HIS'), { employeeId: 'L002', nationalId: li.nationalId });
  t.same(await env.staff.reveal('Z001', { reason: '只看手机', fields: ['mobile'] }, 'app:01LIS'), { employeeId: 'Z001', mobile: zhang.mobile });
  const entries = await env.store.audit.list({ action: 'staff.reveal' });
  t.same(
    entries.map((e) => [e.actor, e.target, e.detail]),
    [
      ['app:01HIS', 'Z001', { reason: '医务科核对执业注册信息', fields: ['nationalId', 'mobile'] }],
      ['app:01HIS', 'L002', { reason: '核对手机号', fields: ['nationalId'] }],
      ['app:01LIS', 'Z001', { reason: '只看手机', fields: ['mobile'] }],
    ],
  );
  const all = JSON.stringify(await env.store.audit.list({ limit: 1000 }));
  for (const secret of [zhang.nationalId, zhang.mobile, li.nationalId]) t.notOk(all.includes(secret), 'no plaintext anywhere in the audit log');
});

t.test('lookup by national id or mobile goes through the blind index', async (t) => {
  const env = await fresh(t);
  await env.staff.create(zhang, 'app:test');
  await env.staff.create(li, 'app:test');
  t.same((await env.staff.lookup({ nationalId: zhang.nationalId.toLowerCase() }, 'app:x')).map((s) => s.employeeId), ['Z001'], 'normalised (x/X) before indexing');
  t.same((await env.staff.lookup({ mobile: '+86 139-8765-4321' }, 'app:x')).map((s) => s.employeeId), ['L002']);
  t.same(await env.staff.lookup({ mobile: '13700000000' }, 'app:x'), []);
  t.equal((await rejection(env.staff.lookup({ mobile: '1', nationalId: '2' }, 'app:x'))).code, 'BAD_REQUEST');
  t.equal((await rejection(env.staff.lookup({ nationalId: withBadCheck(zhang.nationalId) }, 'app:x'))).code, 'NATIONAL_ID_CHECKSUM');
  const rec = (await env.store.staff.get('Z001'))!;
  t.notOk(JSON.stringify(rec).includes(zhang.nationalId), 'the record holds an index, not the number');
  t.not(rec.nationalIdIndex, rec.mobileIndex);
  t.same((await env.store.audit.list({ action: 'staff.lookup' })).map((e) => e.detail), [
    { field: 'nationalId', matches: 1 },
    { field: 'mobile', matches: 1 },
    { field: 'mobile', matches: 0 },
  ]);
});

t.test('update, leave, reinstate: PII re-sealed, indexes follow, department checked', async (t) => {
  const env = await fresh(t);
  await env.staff.create(zhang, 'app:test');
  const before = (await env.store.staff.get('Z001'))!;
  const newId = nationalId('19750312', 18);
  const updated = await env.staff.update('Z001', { nationalId: newId, departmentId: '0302', titleLevel: null }, 'app:test');
  t.equal(updated.departmentId, '0302');
  t.equal(updated.titleLevel, undefined);
  t.equal(updated.mobile, '138****5678', 'mobile kept');
  const after = (await env.store.staff.get('Z001'))!;
  t.not(after.nationalIdSealed, before.nationalIdSealed);
  t.not(after.nationalIdIndex, before.nationalIdIndex);
  t.same((await env.staff.lookup({ nationalId: newId }, 'x')).map((s) => s.employeeId), ['Z001']);
  t.same(await env.staff.lookup({ nationalId: zhang.nationalId }, 'x'), [], 'the old number no longer finds them');
  const noMobile = await env.staff.update('Z001', { mobile: null }, 'app:test');
  t.equal(noMobile.mobile, undefined);
  t.equal((await env.store.staff.get('Z001'))!.mobileIndex, undefined);
  t.equal((await rejection(env.staff.update('Z001', { departmentId: '9999' }, 'app:test'))).code, 'DEPARTMENT_NOT_FOUND');
  t.equal((await rejection(env.staff.update('Z001', { nationalId: null }, 'app:test'))).code, 'MISSING_FIELD');
  t.equal((await rejection(env.staff.update('Z001', { employeeId: 'X' }, 'app:test'))).code, 'BAD_REQUEST', 'unknown or immutable fields are refused');
  t.equal((await rejection(env.staff.update('Z001', {}, 'app:test'))).code, 'BAD_REQUEST');
  const left = await env.staff.leave('Z001', 'app:test');
  t.equal(left.status, 'left');
  t.ok(left.leftAt);
  t.same((await env.staff.list({ status: 'left' })).items.map((s) => s.employeeId), ['Z001']);
  const back = await env.staff.reinstate('Z001', 'app:test');
  t.equal(back.status, 'active');
  t.equal(back.leftAt, undefined);
  t.same((await env.store.audit.list({ action: 'staff.' })).map((e) => e.action), ['staff.create', 'staff.update', 'staff.lookup', 'staff.lookup', 'staff.update', 'staff.leave', 'staff.reinstate']);
});

t.test('a sealed value altered on disk, or moved to another record, → INTEGRITY_CHECK_FAILED', async (t) => {
  const env = await fresh(t);
  await env.staff.create(zhang, 'app:test');
  await env.staff.create(li, 'app:test');
  await env.close();
  await withRawDatabase(env.dataDir, 'staff', (db) => {
    const z = db.get('Z001') as StaffRecord;
    const l = db.get('L002') as StaffRecord;
    const sealed = Buffer.from(z.mobileSealed!, 'base64');
    sealed[sealed.length - 40] ^= 0x01; // a ciphertext bit
    db.put('Z001', { ...z, mobileSealed: sealed.toString('base64') });
    db.put('L002', { ...l, nationalIdSealed: z.nationalIdSealed }); // Z001's sealed id moved into L002's record
  });
  const again = await openEnv(env.dataDir);
  try {
    const e1 = await rejection(again.staff.get('Z001'));
    t.equal(e1.code, 'INTEGRITY_CHECK_FAILED');
    t.equal(e1.status, 500, 'stored data, not the client, is at fault');
    t.same(e1.detail, { employeeId: 'Z001', field: 'mobile' });
    const e2 = await rejection(again.staff.reveal('L002', { reason: '核对身份' }, 'app:test'));
    t.equal(e2.code, 'INTEGRITY_CHECK_FAILED', 'a sealed value is bound to its record');
    t.same(e2.detail, { employeeId: 'L002', field: 'nationalId' });
    t.same(await again.store.audit.list({ action: 'staff.reveal' }), [], 'a failed reveal shows and records nothing');
  } finally {
    await again.close();
  }
});

t.test('without a SecretWrapper personal data cannot be stored', async (t) => {
  const env = await fresh(t);
  const pii = createPiiProtector({ meta: env.store.meta, wrapper: undefined });
  const svc = createStaffService({ staff: env.store.staff, departments: env.store.departments, audit: env.store.audit, pii });
  const e = await rejection(svc.create(zhang, 'app:test'));
  t.equal(e.code, 'PII_KEY_UNAVAILABLE');
  t.equal(e.status, 503);
  t.equal(await env.store.staff.get('Z001'), undefined);
});

t.test('CSV import: UTF-8, UTF-8 with BOM and GBK commit everything in one transaction', async (t) => {
  const env = await fresh(t);
  const utf8 = people(40, ['0301', '0302'], 'U');
  const bom = people(10, ['0301'], 'B');
  const gbk = people(25, ['0302'], 'G');
  const r1 = await env.staff.importCsv(Buffer.from(csvZh(utf8)), { actor: 'app:his' });
  t.match(r1, { rows: 40, accepted: 40, rejected: 0, imported: 40, file: { encoding: 'utf-8', bom: false } });
  const r2 = await env.staff.importCsv(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(csvZh(bom))]), { actor: 'app:his' });
  t.match(r2, { imported: 10, file: { encoding: 'utf-8', bom: true } });
  const r3 = await env.staff.importCsv(toGbk(csvZh(gbk)), { actor: 'app:his' });
  t.match(r3, { imported: 25, file: { encoding: 'gbk' } });
  t.equal((await env.staff.get('G0003')).name, '测试员2', 'the GBK name decoded');
  t.equal((await env.staff.reveal('G0003', { reason: '核对导入' }, 'app:his')).nationalId, gbk[2].nationalId);
  t.equal((await env.staff.get('G0003')).titleLevel, '中级');
  t.same((await env.store.staff.countByDepartment()).map((c) => [c.departmentId, c.active]), [['0301', 30], ['0302', 45]]);
  const imports = await env.store.audit.list({ action: 'staff.import' });
  t.same(imports.map((e) => [e.outcome, e.detail?.rows, e.detail?.encoding]), [['ok', 40, 'utf-8'], ['ok', 10, 'utf-8'], ['ok', 25, 'gbk']], 'one audit entry per file');
  t.notOk(JSON.stringify(r3).includes(gbk[0].nationalId), 'the report holds no national id');
});

t.test('CSV import: any broken row → 422 IMPORT_REJECTED with the full report, and nothing imported', async (t) => {
  const env = await fresh(t);
  await env.staff.create({ ...zhang, employeeId: 'EXIST1' }, 'app:test');
  const ok = people(5, ['0301'], 'K');
  const rows = [
    ...ok,
    { ...ok[0], employeeId: 'K0099', name: '' }, // missing field
    { ...ok[0], employeeId: 'K0100', nationalId: withBadCheck(nationalId('19900101', 3)) }, // bad checksum
    { ...ok[0], employeeId: 'K0101', departmentId: '7777', nationalId: nationalId('19900101', 4) }, // unknown department
    { ...ok[0], employeeId: 'K0001', nationalId: nationalId('19900101', 5) }, // duplicate in file (K0001 is ok[0])
    { ...ok[0], employeeId: 'EXIST1', nationalId: nationalId('19900101', 6) }, // exists already
  ];
  const e = await rejection(env.staff.importCsv(Buffer.from(csvZh(rows)), { actor: 'app:his' }));
  t.equal(e.code, 'IMPORT_REJECTED');
  t.equal(e.status, 422);
  const report = e.detail?.report as ImportReport;
  t.match(report, { rows: 10, accepted: 4, rejected: 6, imported: 0 });
  const verdicts = report.results.map((r) => [r.row, r.employeeId, r.status, (r.reasons ?? []).map((x) => x.code).join('+')]);
  t.same(verdicts, [
    [2, 'K0001', 'rejected', 'DUPLICATE_IN_FILE'],
    [3, 'K0002', 'accepted', ''],
    [4, 'K0003', 'accepted', ''],
    [5, 'K0004', 'accepted', ''],
    [6, 'K0005', 'accepted', ''],
    [7, 'K0099', 'rejected', 'MISSING_FIELD'],
    [8, 'K0100', 'rejected', 'NATIONAL_ID_CHECKSUM'],
    [9, 'K0101', 'rejected', 'DEPARTMENT_NOT_FOUND'],
    [10, 'K0001', 'rejected', 'DUPLICATE_IN_FILE'],
    [11, 'EXIST1', 'rejected', 'STAFF_EXISTS'],
  ]);
  for (const id of ['K0001', 'K0002', 'K0005']) t.equal(await env.store.staff.get(id), undefined, `${id} not imported`);
  t.same((await env.store.staff.countByDepartment()).map((c) => c.active), [1], 'only the member created before');
  const audit = await env.store.audit.list({ action: 'staff.import' });
  t.same(audit.map((a) => [a.outcome, a.detail?.rows, a.detail?.rejected]), [['denied', 10, 6]], 'the refused import is audited as denied');

  const bad = await rejection(env.staff.importCsv(Buffer.from([0x61, 0xff, 0x0a]), { actor: 'app:his' }));
  t.equal(bad.code, 'IMPORT_BAD_FILE');
  const header = await rejection(env.staff.importCsv(Buffer.from('foo,bar\n1,2\n'), { actor: 'app:his' }));
  t.equal(header.code, 'IMPORT_BAD_FILE');
});

t.test('CSV import limits are configurable and enforced before anything else', async (t) => {
  const env = await fresh(t);
  const pii = createPiiProtector({ meta: env.store.meta, wrapper: env.custody });
  const svc = createStaffService({ staff: env.store.staff, departments: env.store.departments, audit: env.store.audit, pii, importLimits: { maxRows: 3 } });
  const e = await rejection(svc.importCsv(Buffer.from(csvZh(people(4, ['0301']))), { actor: 'app:his' }));
  t.equal(e.code, 'IMPORT_TOO_LARGE');
  t.equal(await env.store.meta.get(PII_DATA_KEY), undefined, 'not even the data key was made');
});
