// Department and staff repositories on the real LMDB store: keys, cross-checks inside one
// transaction (department exists / in use), pagination and filters, the department index,
// all-or-nothing batches, and audit entries committed with the change — or not at all.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { nowIso } from '../../appliance/src/store/ids.js';
import { openStore } from '../../appliance/src/store/open-store.js';
import { withRawDatabase } from '../../appliance/src/store/raw-access.js';
import type { Department, StaffRecord } from '../../appliance/src/staff/types.js';
import { freshStore, rejection } from '../helpers/store-fixture.js';

function dept(hisDeptId: string, extra: Partial<Department> = {}): Department {
  const now = nowIso();
  return { hisDeptId, name: `科室${hisDeptId}`, createdAt: now, updatedAt: now, ...extra };
}

/** Opaque sealed-looking values: the repository stores what the PII layer gives it. */
function member(employeeId: string, departmentId: string, extra: Partial<StaffRecord> = {}): StaffRecord {
  const now = nowIso();
  return {
    employeeId,
    name: `员工${employeeId}`,
    departmentId,
    status: 'active',
    nationalIdSealed: randomBytes(80).toString('base64'),
    nationalIdIndex: randomBytes(32).toString('hex'),
    piiKeyId: '01JABCDEFGHJKMNPQRSTVWXYZ0',
    createdAt: now,
    updatedAt: now,
    ...extra,
  };
}

const audit = (action: string, target?: string) => ({ audit: { actor: 'test', action, outcome: 'ok' as const, ...(target ? { target } : {}) } });

t.test('departments: create, get, list, parent must exist, no duplicates, no cycles', async (t) => {
  const { store } = await freshStore(t, 'yq-staff-');
  await store.departments.create(dept('03', { name: '内科' }));
  await store.departments.create(dept('0301', { name: '心内科', parentId: '03', code: 'A03.01' }));
  t.same((await store.departments.get('0301'))?.parentId, '03');
  t.same((await store.departments.list()).map((d) => d.hisDeptId), ['03', '0301']);
  t.equal((await rejection(store.departments.create(dept('0301')))).code, 'DEPARTMENT_EXISTS');
  const noParent = await rejection(store.departments.create(dept('0401', { parentId: '04' })));
  t.equal(noParent.code, 'DEPARTMENT_NOT_FOUND');
  t.equal(noParent.status, 422);
  t.equal(await store.departments.get('0401'), undefined, 'nothing written');

  const cycle = await rejection(store.departments.update('03', (d) => ({ ...d, parentId: '0301' })));
  t.equal(cycle.code, 'DEPARTMENT_CYCLE', '03 → 0301 → 03');
  t.equal((await store.departments.get('03'))?.parentId, undefined);
  t.equal((await rejection(store.departments.update('03', (d) => ({ ...d, hisDeptId: '99' })))).code, 'BAD_REQUEST', 'the key cannot change');
  t.equal((await rejection(store.departments.update('nope', (d) => d))).code, 'DEPARTMENT_NOT_FOUND');
  const renamed = await store.departments.update('0301', (d) => ({ ...d, name: '心血管内科' }));
  t.equal(renamed.name, '心血管内科');
  t.equal(await store.departments.get('x'.repeat(5000)), undefined, 'absurd ids are simply not found');
});

t.test('staff: department must exist, employee id unique, both checked in the write transaction', async (t) => {
  const { store } = await freshStore(t, 'yq-staff-');
  await store.departments.create(dept('0301'));
  const a = await store.staff.create(member('1001', '0301'));
  t.same(await store.staff.get('1001'), a);
  const dup = await rejection(store.staff.create(member('1001', '0301')));
  t.equal(dup.code, 'STAFF_EXISTS');
  t.equal(dup.status, 409);
  const nodept = await rejection(store.staff.create(member('1002', '9999')));
  t.equal(nodept.code, 'DEPARTMENT_NOT_FOUND');
  t.equal(await store.staff.get('1002'), undefined);

  // Concurrent: one department delete and one staff create in the same event turn — never a member without a department.
  await store.departments.create(dept('0302'));
  const [del, add] = await Promise.allSettled([store.departments.delete('0302'), store.staff.create(member('1003', '0302'))]);
  const deptGone = (await store.departments.get('0302')) === undefined;
  const member1003 = await store.staff.get('1003');
  t.ok(deptGone ? member1003 === undefined : member1003 !== undefined, `consistent outcome (delete ${del.status}, create ${add.status})`);
});

t.test('only StaffRecord fields are stored, and the PII fields must be sealed values', async (t) => {
  const { store, dataDir } = await freshStore(t, 'yq-staff-');
  await store.departments.create(dept('0301'));
  await store.staff.create({ ...member('1001', '0301'), nationalId: '110105198001010011' } as StaffRecord);
  t.notOk('nationalId' in ((await store.staff.get('1001')) as object), 'a plaintext field tacked on is dropped');
  const plain = await rejection(store.staff.create(member('1002', '0301', { nationalIdSealed: '110105198001010011' })));
  t.equal(plain.code, 'INTERNAL', 'an unsealed value in a sealed field is refused');
  const badIdx = await rejection(store.staff.create(member('1003', '0301', { mobileSealed: randomBytes(80).toString('base64') })));
  t.equal(badIdx.code, 'INTERNAL', 'a sealed mobile without its blind index is refused');
  await store.close();
  const raw = await withRawDatabase(dataDir, 'staff', (db) => db.keys());
  t.same(raw, ['1001']);
});

t.test('list: pagination, filters by department and status, and the department index follows updates', async (t) => {
  const { store } = await freshStore(t, 'yq-staff-');
  for (const d of ['A', 'B']) await store.departments.create(dept(d));
  for (let i = 0; i < 25; i += 1) await store.staff.create(member(`E${String(i).padStart(3, '0')}`, i % 2 ? 'B' : 'A'));
  const seen: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const p = await store.staff.list({}, { limit: 10, cursor });
    seen.push(...p.items.map((r) => r.employeeId));
    cursor = p.next;
    pages += 1;
  } while (cursor);
  t.equal(pages, 3);
  t.same(seen, [...seen].sort(), 'employee id order');
  t.equal(new Set(seen).size, 25, 'every record exactly once');
  t.equal((await store.staff.list({}, { limit: 25 })).next, undefined, 'no cursor after the last page');

  const inB = await store.staff.list({ departmentId: 'B' }, { limit: 5 });
  t.equal(inB.items.length, 5);
  t.ok(inB.items.every((r) => r.departmentId === 'B'));
  const inB2 = await store.staff.list({ departmentId: 'B' }, { limit: 50, cursor: inB.next });
  t.equal(inB.items.length + inB2.items.length, 12);

  await store.staff.update('E001', (r) => ({ ...r, status: 'left', leftAt: nowIso() }));
  await store.staff.update('E003', (r) => ({ ...r, departmentId: 'A' }));
  t.same((await store.staff.list({ departmentId: 'B', status: 'left' })).items.map((r) => r.employeeId), ['E001']);
  t.notOk((await store.staff.list({ departmentId: 'B' }, { limit: 500 })).items.some((r) => r.employeeId === 'E003'), 'moved out of B');
  t.ok((await store.staff.list({ departmentId: 'A' }, { limit: 500 })).items.some((r) => r.employeeId === 'E003'), 'moved into A');
  t.same(await store.staff.countByDepartment(), [
    { departmentId: 'A', active: 14, left: 0 },
    { departmentId: 'B', active: 10, left: 1 },
  ]);
  t.equal((await rejection(store.staff.update('E002', (r) => ({ ...r, departmentId: 'Z' })))).code, 'DEPARTMENT_NOT_FOUND');
  t.equal((await rejection(store.staff.list({}, { cursor: 'garbage' }))).code, 'BAD_REQUEST');
  t.equal((await rejection(store.staff.list({}, { limit: 501 }))).code, 'BAD_REQUEST');
  const all: string[] = [];
  for await (const r of store.staff.all()) all.push(r.employeeId);
  t.equal(all.length, 25);
});

t.test('a department is in use while staff (also staff who left) or child departments name it', async (t) => {
  const { store } = await freshStore(t, 'yq-staff-');
  await store.departments.create(dept('03'));
  await store.departments.create(dept('0301', { parentId: '03' }));
  await store.staff.create(member('1001', '0301'));
  const inUse = await rejection(store.departments.delete('0301', audit('department.delete', '0301')));
  t.equal(inUse.code, 'DEPARTMENT_IN_USE');
  t.equal(inUse.status, 409);
  t.equal(inUse.detail?.staff, 1);
  await store.staff.update('1001', (r) => ({ ...r, status: 'left' }));
  t.equal((await rejection(store.departments.delete('0301'))).code, 'DEPARTMENT_IN_USE', 'a member who left still references it');
  const parent = await rejection(store.departments.delete('03'));
  t.equal(parent.code, 'DEPARTMENT_IN_USE');
  t.same(parent.detail?.children, ['0301']);
  await store.departments.create(dept('0302'));
  await store.staff.update('1001', (r) => ({ ...r, departmentId: '0302' }));
  t.equal((await store.departments.delete('0301'))?.hisDeptId, '0301', 'deletable once nobody references it');
  t.equal((await store.departments.delete('03'))?.hisDeptId, '03', 'and then its parent');
  t.equal(await store.departments.delete('03'), undefined, 'deleting what is not there answers undefined');
});

t.test('createMany: all or nothing, conflicts found inside the transaction, one audit entry', async (t) => {
  const { store } = await freshStore(t, 'yq-staff-');
  await store.departments.create(dept('A'));
  await store.staff.create(member('X1', 'A'));
  const before = (await store.audit.list({ limit: 1000 })).length;
  const refused = await store.staff.createMany([member('N1', 'A'), member('X1', 'A'), member('N2', 'B'), member('N1', 'A')], audit('staff.import'));
  t.same(refused, {
    ok: false,
    conflicts: [
      { index: 1, employeeId: 'X1', code: 'STAFF_EXISTS' },
      { index: 2, employeeId: 'N2', code: 'DEPARTMENT_NOT_FOUND' },
      { index: 3, employeeId: 'N1', code: 'DUPLICATE_IN_BATCH' },
    ],
  });
  t.equal(await store.staff.get('N1'), undefined, 'nothing of a refused batch is written');
  t.equal((await store.audit.list({ limit: 1000 })).length, before, 'and no audit entry');
  const batch = Array.from({ length: 300 }, (_, i) => member(`B${i}`, 'A'));
  t.same(await store.staff.createMany(batch, audit('staff.import')), { ok: true });
  const after = await store.audit.list({ limit: 1000 });
  t.equal(after.length, before + 1, 'one audit entry for the whole batch');
  t.equal(after[after.length - 1].action, 'staff.import');
  t.equal((await store.staff.list({ departmentId: 'A' }, { limit: 500 })).items.length, 301);
});

t.test('audit entries commit with the change; a refused change leaves no entry; data survives reopen', async (t) => {
  const { store, dataDir } = await freshStore(t, 'yq-staff-');
  await store.departments.create(dept('A'), audit('department.create', 'A'));
  await store.staff.create(member('1', 'A'), audit('staff.create', '1'));
  await rejection(store.staff.create(member('1', 'A'), audit('staff.create', '1')));
  await rejection(store.departments.delete('A', audit('department.delete', 'A')));
  await store.staff.update('1', (r) => ({ ...r, name: '新名字' }), audit('staff.update', '1'));
  t.same((await store.audit.list()).map((r) => r.action), ['department.create', 'staff.create', 'staff.update']);
  t.same(await store.audit.verifyChain(), { ok: true, count: 3 });
  await store.close();
  const again = await openStore(dataDir);
  t.equal((await again.staff.get('1'))?.name, '新名字');
  t.same(await again.staff.countByDepartment(), [{ departmentId: 'A', active: 1, left: 0 }]);
  await again.close();
});
