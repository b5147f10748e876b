// Certificate statistics from records inserted through the real certificate repository:
// by department (with staff counts and department names), profile, status (and expired),
// and month of issuance in Asia/Shanghai — including the month boundary at 16:00 UTC.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { certificateStatistics, shanghaiMonth } from '../../appliance/src/staff/cert-statistics.js';
import type { CertificateRecord, CertificateStatus } from '../../appliance/src/pki/types.js';
import { newId, nowIso } from '../../appliance/src/store/ids.js';
import type { StaffRecord } from '../../appliance/src/staff/types.js';
import { freshStore } from '../helpers/store-fixture.js';

function cert(c: { profile: string; status: CertificateStatus; issuedAt: string; departmentId?: string; notAfter?: string }): CertificateRecord {
  const serial = randomBytes(16).toString('hex').replace(/^0+/, '');
  const rec: CertificateRecord = {
    serial,
    id: newId(),
    caId: 'sm2-issuing',
    hierarchy: 'sm2',
    profile: c.profile,
    subject: `CN=test ${serial}`,
    commonName: `test ${serial}`,
    keyAlgorithm: 'sm2',
    keyOrigin: 'csr',
    publicKeyInfo: randomBytes(91).toString('base64'),
    notBefore: c.issuedAt,
    notAfter: c.notAfter ?? '2099-01-01T00:00:00.000Z',
    status: c.status,
    certificate: randomBytes(300).toString('base64'),
    issuedAt: c.issuedAt,
    issuedBy: 'app:test',
    updatedAt: c.issuedAt,
  };
  if (c.departmentId !== undefined) rec.departmentId = c.departmentId;
  if (c.status !== 'good') rec.revocation = { time: c.issuedAt, reason: c.status === 'suspended' ? 'certificateHold' : 'keyCompromise', by: 'app:test' };
  return rec;
}

function member(employeeId: string, departmentId: string, status: 'active' | 'left'): StaffRecord {
  const now = nowIso();
  return { employeeId, name: employeeId, departmentId, status, nationalIdSealed: randomBytes(80).toString('base64'), nationalIdIndex: randomBytes(32).toString('hex'), piiKeyId: newId(), createdAt: now, updatedAt: now };
}

t.test('months are Asia/Shanghai calendar months', async (t) => {
  t.equal(shanghaiMonth('2026-01-31T15:59:59.999Z'), '2026-01', '23:59:59 in Beijing');
  t.equal(shanghaiMonth('2026-01-31T16:00:00.000Z'), '2026-02', 'midnight in Beijing is already February');
  t.equal(shanghaiMonth('2025-12-31T16:30:00.000Z'), '2026-01', 'and the next year');
  t.equal(shanghaiMonth('not a time'), 'unknown');
});

t.test('counts by department, profile, status and month; staff per department', async (t) => {
  const { store } = await freshStore(t, 'yq-stats-');
  const now = nowIso();
  for (const [id, name] of [['0301', '心内科'], ['0302', '神经内科'], ['0900', '药剂科']]) await store.departments.create({ hisDeptId: id, name, createdAt: now, updatedAt: now });
  await store.staff.create(member('A1', '0301', 'active'));
  await store.staff.create(member('A2', '0301', 'active'));
  await store.staff.create(member('A3', '0301', 'left'));
  await store.staff.create(member('B1', '0302', 'active'));

  const certs = [
    cert({ profile: 'personal', status: 'good', issuedAt: '2026-01-10T02:00:00.000Z', departmentId: '0301' }),
    cert({ profile: 'personal', status: 'good', issuedAt: '2026-01-31T16:00:00.000Z', departmentId: '0301' }), // Feb in Shanghai
    cert({ profile: 'personal', status: 'revoked', issuedAt: '2026-02-03T08:00:00.000Z', departmentId: '0301' }),
    cert({ profile: 'personal', status: 'suspended', issuedAt: '2026-02-20T08:00:00.000Z', departmentId: '0302' }),
    cert({ profile: 'personal', status: 'good', issuedAt: '2025-03-01T08:00:00.000Z', departmentId: '0302', notAfter: '2026-03-01T08:00:00.000Z' }), // expired
    cert({ profile: 'seal', status: 'good', issuedAt: '2026-03-05T08:00:00.000Z', departmentId: '0302' }),
    cert({ profile: 'personal', status: 'good', issuedAt: '2026-03-06T08:00:00.000Z', departmentId: 'GONE' }), // department not in the directory
    cert({ profile: 'device', status: 'good', issuedAt: '2026-03-07T08:00:00.000Z' }),
    cert({ profile: 'ocsp', status: 'good', issuedAt: '2026-03-07T09:00:00.000Z' }),
  ];
  for (const c of certs) await store.certs.insert(c);

  const stats = await certificateStatistics({ certs: store.certs, staff: store.staff, departments: store.departments, now: () => new Date('2026-06-01T00:00:00Z') });
  t.equal(stats.total, 9);
  t.equal(stats.timeZone, 'Asia/Shanghai');
  t.same(stats.byStatus, { good: 7, revoked: 1, suspended: 1, expired: 1 }, 'one good certificate is past notAfter');
  t.same(stats.byProfile, [
    { profile: 'device', count: 1 },
    { profile: 'ocsp', count: 1 },
    { profile: 'personal', count: 6 },
    { profile: 'seal', count: 1 },
  ]);
  t.same(stats.byMonth, [
    { month: '2025-03', count: 1 },
    { month: '2026-01', count: 1 },
    { month: '2026-02', count: 3 },
    { month: '2026-03', count: 4 },
  ]);
  t.same(
    stats.byDepartment.map((d) => [d.departmentId, d.name, d.known, d.certificates, d.byStatus, d.staff]),
    [
      ['0301', '心内科', true, 3, { good: 2, revoked: 1, suspended: 0, expired: 0 }, { active: 2, left: 1 }],
      ['0302', '神经内科', true, 3, { good: 2, revoked: 0, suspended: 1, expired: 1 }, { active: 1, left: 0 }],
      ['0900', '药剂科', true, 0, { good: 0, revoked: 0, suspended: 0, expired: 0 }, { active: 0, left: 0 }],
      ['GONE', undefined, false, 1, { good: 1, revoked: 0, suspended: 0, expired: 0 }, { active: 0, left: 0 }],
      [null, undefined, false, 2, { good: 2, revoked: 0, suspended: 0, expired: 0 }, { active: 0, left: 0 }],
    ],
  );

  // A revocation shows up in the next answer: statistics are computed, not cached.
  await store.certs.update(certs[0].serial, (cur) => ({ ...cur!, status: 'revoked', revocation: { time: nowIso(), reason: 'superseded', by: 'app:test' }, updatedAt: nowIso() }));
  const later = await certificateStatistics({ certs: store.certs, staff: store.staff, departments: store.departments });
  t.same(later.byStatus, { good: 6, revoked: 2, suspended: 1, expired: 1 });
});

t.test('an empty appliance answers zeros, not errors', async (t) => {
  const { store } = await freshStore(t, 'yq-stats-');
  const stats = await certificateStatistics({ certs: store.certs, staff: store.staff, departments: store.departments });
  t.same({ ...stats, generatedAt: 'x' }, { generatedAt: 'x', timeZone: 'Asia/Shanghai', total: 0, byStatus: { good: 0, revoked: 0, suspended: 0, expired: 0 }, byProfile: [], byMonth: [], byDepartment: [] });
});
