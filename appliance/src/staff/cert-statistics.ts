// Certificate statistics (issue 3, item 7; tender: "根据科室等多维度进行证书发证、证书状态、证书使用
// 情况的统计分析"): counts by department, profile, status and month of issuance, plus the
// staff count of each department.
//
// One scan of CertificateRepository.all() per request. A hospital issues a few thousand
// certificates a year (the tender: 2,600 personal certificates per year), so a scan is
// milliseconds; if it ever is not, keep running counters updated in the certificate
// repository's write transactions instead — the answer's shape stays.
//
// Months are calendar months in Asia/Shanghai (the store keeps UTC; ARCHITECTURE.md §5): a
// certificate issued 2026-01-31T17:00Z counts in 2026-02.
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { CertificateRecord, CertificateStatus } from '../pki/types.js';
import type { DepartmentRepository, StaffRepository } from './types.js';

export const STATISTICS_TIME_ZONE = 'Asia/Shanghai';

export type StatusCounts = Record<CertificateStatus, number> & {
  /** Status good but past notAfter (also counted in good). */
  expired: number;
};

export interface DepartmentStatistics {
  /** The hospital's department id; null for certificates without one (devices, TSA, OCSP …). */
  departmentId: string | null;
  /** From the staff directory; absent when the id is not (or no longer) a known department. */
  name?: string;
  known: boolean;
  certificates: number;
  byStatus: StatusCounts;
  staff: { active: number; left: number };
}

export interface CertificateStatistics {
  generatedAt: string;
  timeZone: typeof STATISTICS_TIME_ZONE;
  total: number;
  byStatus: StatusCounts;
  /** Sorted by profile name. */
  byProfile: { profile: string; count: number }[];
  /** Sorted by month, YYYY-MM in Asia/Shanghai; only months with issuance. */
  byMonth: { month: string; count: number }[];
  /** Every known department (also without certificates) and every department id certificates name; sorted by id, null last. */
  byDepartment: DepartmentStatistics[];
}

export interface StatisticsDeps {
  certs: { all(): AsyncIterable<CertificateRecord> };
  staff: Pick<StaffRepository, 'countByDepartment'>;
  departments: Pick<DepartmentRepository, 'list'>;
  now?: () => Date;
}

const monthFormat = new Intl.DateTimeFormat('en-CA', { timeZone: STATISTICS_TIME_ZONE, year: 'numeric', month: '2-digit' });

/** YYYY-MM of an ISO instant in Asia/Shanghai; 'unknown' for an unreadable time. */
export function shanghaiMonth(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return 'unknown';
  const parts = monthFormat.formatToParts(d);
  const y = parts.find((p) => p.type === 'year')?.value;
  const m = parts.find((p) => p.type === 'month')?.value;
  return `${y}-${m}`;
}

function zero(): StatusCounts {
  return { good: 0, revoked: 0, suspended: 0, expired: 0 };
}

export async function certificateStatistics(deps: StatisticsDeps): Promise<CertificateStatistics> {
  const now = (deps.now ?? (() => new Date()))();
  const departments = await deps.departments.list();
  const staffCounts = await deps.staff.countByDepartment();

  const byDept = new Map<string | null, DepartmentStatistics>();
  const dept = (id: string | null): DepartmentStatistics => {
    let s = byDept.get(id);
    if (!s) {
      s = { departmentId: id, known: false, certificates: 0, byStatus: zero(), staff: { active: 0, left: 0 } };
      byDept.set(id, s);
    }
    return s;
  };
  for (const d of departments) Object.assign(dept(d.hisDeptId), { name: d.name, known: true });
  for (const c of staffCounts) dept(c.departmentId).staff = { active: c.active, left: c.left };

  const byStatus = zero();
  const byProfile = new Map<string, number>();
  const byMonth = new Map<string, number>();
  let total = 0;
  for await (const c of deps.certs.all()) {
    total += 1;
    const expired = c.status === 'good' && new Date(c.notAfter).getTime() < now.getTime();
    byStatus[c.status] += 1;
    if (expired) byStatus.expired += 1;
    byProfile.set(c.profile, (byProfile.get(c.profile) ?? 0) + 1);
    const month = shanghaiMonth(c.issuedAt);
    byMonth.set(month, (byMonth.get(month) ?? 0) + 1);
    const d = dept(c.departmentId ?? null);
    d.certificates += 1;
    d.byStatus[c.status] += 1;
    if (expired) d.byStatus.expired += 1;
    if (total % 5000 === 0) await nextTurn(); // a long scan must not hold the event loop
  }

  const order = (a: string | null, b: string | null): number => (a === b ? 0 : a === null ? 1 : b === null ? -1 : a < b ? -1 : 1);
  return {
    generatedAt: now.toISOString(),
    timeZone: STATISTICS_TIME_ZONE,
    total,
    byStatus,
    byProfile: [...byProfile].sort(([a], [b]) => order(a, b)).map(([profile, count]) => ({ profile, count })),
    byMonth: [...byMonth].sort(([a], [b]) => order(a, b)).map(([month, count]) => ({ month, count })),
    byDepartment: [...byDept.values()].sort((a, b) => order(a.departmentId, b.departmentId)),
  };
}
