// Evidence statistics counters on LMDB (issue 6 item 6): kept at write time, inside the very
// transaction that stores a record or a rejection, so counts and records never disagree and
// statistics() never scans records. db 'evidence-counters', ordered array keys:
//
//   ['n', 'all', period]                    stored records, all projects
//   ['n', 'project', project, period]       stored records of a project
//   ['n', 'app', project, appId, period]    stored records of an app (within its project)
//   ['ap', appId, project]                  which projects an app has counts in (for app-only scopes)
//   ['r', 'all', 'total' | 'code', code | 'app', appId]                 rejections, all projects
//   ['r', 'project', project, 'total' | 'code', code | 'app', appId]    rejections of a project
//   ['r', 'app', project, appId, 'total' | 'code', code]                rejections of an app
//   ['h', project]                          latest retainUntil promised to any stored record
//
// period is 'total', 'YYYY', 'YYYY-MM' or 'YYYY-MM-DD' in the Asia/Shanghai calendar. China has
// kept UTC+8 all year since 1992 (no DST), so the calendar day is the UTC instant + 8 h; no tz
// database is consulted. A record costs 12 counter updates plus at most two small puts.
import type { Database } from 'lmdb';
import { Codes, fail } from '../errors.js';
import type { EvidenceCounters, EvidenceRecord, EvidenceRejection, EvidenceStatistics } from '../evidence/types.js';
import type { Writer } from './durable.js';

type Key = (string | number)[];
type StoredRecord = Pick<EvidenceRecord, 'project' | 'appId' | 'receivedAt'> & Partial<Pick<EvidenceRecord, 'retainUntil'>>;

const SHANGHAI_OFFSET_MS = 8 * 3600 * 1000;
const TOTAL = 'total';

/** The Asia/Shanghai calendar periods (year, month, day) an instant falls in. */
export function shanghaiPeriods(at: Date): { year: string; month: string; day: string } {
  const local = new Date(at.getTime() + SHANGHAI_OFFSET_MS).toISOString();
  return { year: local.slice(0, 4), month: local.slice(0, 7), day: local.slice(0, 10) };
}

/** `years` calendar years after `iso` (UTC; 29 Feb rolls to 1 Mar), as ISO 8601 with ms. */
export function addYears(iso: string, years: number): string {
  const d = new Date(iso);
  d.setUTCFullYear(d.getUTCFullYear() + years);
  return d.toISOString();
}

export interface CounterOptions {
  /**
   * The project's retention in years, read inside the write transaction: used for the
   * retention horizon when the caller passes a record without its retainUntil.
   */
  retentionYearsInTxn?: (project: string) => number | undefined;
}

export class LmdbEvidenceCounters implements EvidenceCounters {
  constructor(
    private readonly db: Database<any, any>,
    private readonly writer: Writer,
    private readonly opts: CounterOptions = {},
  ) {}

  recordStoredInTxn(r: StoredRecord): void {
    this.recordsStoredInTxn([r]);
  }

  /**
   * The counts of several records stored in one transaction: the increments are summed per key
   * first, so a batch of 100 records of one app and day costs 12 counter updates, not 1,200.
   */
  recordsStoredInTxn(rs: readonly StoredRecord[]): void {
    const deltas = new Map<string, { key: Key; by: number }>();
    const add = (key: Key): void => {
      const k = key.join('\u0000');
      const d = deltas.get(k);
      if (d) d.by++;
      else deltas.set(k, { key, by: 1 });
    };
    const apps = new Map<string, Key>();
    const horizons = new Map<string, string>();
    for (const r of rs) {
      checkName('project', r.project);
      checkName('appId', r.appId);
      const at = instant('receivedAt', r.receivedAt);
      const { year, month, day } = shanghaiPeriods(at);
      const prefixes: Key[] = [['n', 'all'], ['n', 'project', r.project], ['n', 'app', r.project, r.appId]];
      for (const prefix of prefixes) for (const period of [TOTAL, year, month, day]) add([...prefix, period]);
      apps.set(`${r.appId}\u0000${r.project}`, ['ap', r.appId, r.project]);
      // The retention horizon: what project deletion must wait for (retainUntil is fixed at ingestion).
      let retainUntil: string | undefined;
      if (typeof r.retainUntil === 'string' && !Number.isNaN(Date.parse(r.retainUntil))) retainUntil = new Date(r.retainUntil).toISOString();
      else {
        const years = this.opts.retentionYearsInTxn?.(r.project);
        if (years !== undefined) retainUntil = addYears(at.toISOString(), years);
      }
      const latest = horizons.get(r.project);
      if (retainUntil !== undefined && (latest === undefined || latest < retainUntil)) horizons.set(r.project, retainUntil);
    }
    for (const { key, by } of deltas.values()) this.bump(key, by);
    for (const key of apps.values()) if (!this.db.doesExist(key)) void this.db.put(key, 1);
    for (const [project, retainUntil] of horizons) {
      const current = this.db.get(['h', project]) as string | undefined;
      if (current === undefined || current < retainUntil) void this.db.put(['h', project], retainUntil);
    }
  }

  rejectionInTxn(r: EvidenceRejection): void {
    checkName('project', r.project);
    checkName('appId', r.appId);
    checkName('code', r.code);
    for (const prefix of [['r', 'all'], ['r', 'project', r.project]] as Key[]) {
      this.bump([...prefix, TOTAL], 1);
      this.bump([...prefix, 'code', r.code], 1);
      this.bump([...prefix, 'app', r.appId], 1);
    }
    this.bump(['r', 'app', r.project, r.appId, TOTAL], 1);
    this.bump(['r', 'app', r.project, r.appId, 'code', r.code], 1);
    if (!this.db.doesExist(['ap', r.appId, r.project])) void this.db.put(['ap', r.appId, r.project], 1);
  }

  projectRemovedInTxn(project: string): void {
    checkName('project', project);
    // The project's own keys are few (periods × apps): collected first, then changed, so no
    // cursor walks over keys being removed. 'all' loses exactly what the project had added.
    for (const { key, value } of this.prefixed(['n', 'project', project])) {
      this.bump(['n', 'all', key[3]], -value);
      void this.db.remove(key);
    }
    for (const { key, value } of this.prefixed(['r', 'project', project])) {
      this.bump(['r', 'all', ...key.slice(3)], -value);
      void this.db.remove(key);
    }
    const apps = new Set<string>();
    for (const prefix of [['n', 'app', project], ['r', 'app', project]] as Key[]) {
      for (const { key } of this.prefixed(prefix)) {
        apps.add(String(key[3]));
        void this.db.remove(key);
      }
    }
    for (const appId of apps) void this.db.remove(['ap', appId, project]);
    void this.db.remove(['h', project]);
  }

  /**
   * Runs counter updates in a durable transaction of their own. Records and rejections are
   * counted by the evidence repository inside ITS transaction; this is for rebuilding counters
   * from stored records (repair) and for tests.
   */
  async updateDurably(fn: (c: Pick<EvidenceCounters, 'recordStoredInTxn' | 'recordsStoredInTxn' | 'rejectionInTxn' | 'projectRemovedInTxn'>) => void): Promise<void> {
    await this.writer.durable(() => fn(this));
  }

  /** The latest retainUntil promised to a stored record of the project (undefined: none stored). */
  async retentionHorizon(project: string): Promise<string | undefined> {
    return this.writer.read(() => this.db.get(['h', project]) as string | undefined);
  }

  async statistics(scope: { project?: string; appId?: string }, now: Date = new Date()): Promise<EvidenceStatistics> {
    if (scope.project !== undefined) checkName('project', scope.project);
    if (scope.appId !== undefined) checkName('appId', scope.appId);
    return this.writer.read(() => {
      // Record counter prefixes (summed) and rejection prefixes for the scope.
      let records: Key[];
      let rejections: Key[];
      if (scope.appId !== undefined) {
        const projects = scope.project !== undefined ? [scope.project] : this.prefixed(['ap', scope.appId]).map(({ key }) => String(key[2]));
        records = projects.map((p) => ['n', 'app', p, scope.appId as string]);
        rejections = projects.map((p) => ['r', 'app', p, scope.appId as string]);
      } else if (scope.project !== undefined) {
        records = [['n', 'project', scope.project]];
        rejections = [['r', 'project', scope.project]];
      } else {
        records = [['n', 'all']];
        rejections = [['r', 'all']];
      }
      const count = (period: string): number => records.reduce((sum, p) => sum + this.value([...p, period]), 0);

      const today = shanghaiPeriods(now);
      const y = Number(today.year);
      const m = Number(today.month.slice(5, 7)) - 1;
      const perYear = [2, 1, 0].map((back) => String(y - back)).map((period) => ({ period, count: count(period) }));
      const perMonth = Array.from({ length: 12 }, (_, i) => monthKey(y, m - (11 - i))).map((period) => ({ period, count: count(period) }));
      // Days by calendar arithmetic on the Shanghai date (UTC fields of a shifted instant).
      const base = Date.UTC(y, m, Number(today.day.slice(8, 10)));
      const perDay = Array.from({ length: 30 }, (_, i) => new Date(base - (29 - i) * 86_400_000).toISOString().slice(0, 10)).map((period) => ({ period, count: count(period) }));

      const rej: EvidenceStatistics['rejections'] = { total: 0, byCode: {}, byApp: {} };
      for (const prefix of rejections) {
        const total = this.value([...prefix, TOTAL]);
        rej.total += total;
        for (const { key, value } of this.prefixed([...prefix, 'code'])) rej.byCode[String(key[prefix.length + 1])] = (rej.byCode[String(key[prefix.length + 1])] ?? 0) + value;
        if (prefix[1] === 'app') {
          if (total > 0) rej.byApp[String(prefix[3])] = (rej.byApp[String(prefix[3])] ?? 0) + total;
        } else {
          for (const { key, value } of this.prefixed([...prefix, 'app'])) rej.byApp[String(key[prefix.length + 1])] = value;
        }
      }

      return {
        scope: { ...(scope.project !== undefined ? { project: scope.project } : {}), ...(scope.appId !== undefined ? { appId: scope.appId } : {}) },
        total: count(TOTAL),
        // The last 3 calendar months including the current one (not a rolling 90 days).
        last3Months: perMonth.slice(-3).reduce((s, p) => s + p.count, 0),
        today: count(today.day),
        perYear,
        perMonth,
        perDay,
        rejections: rej,
      };
    });
  }

  private value(key: Key): number {
    const v = this.db.get(key) as unknown;
    return typeof v === 'number' && Number.isSafeInteger(v) && v > 0 ? v : 0;
  }

  private bump(key: Key, by: number): void {
    const next = this.value(key) + by;
    if (next > 0) void this.db.put(key, next);
    else void this.db.remove(key);
  }

  /** Entries whose key starts with `prefix` (element by element), collected. */
  private prefixed(prefix: Key): { key: Key; value: number }[] {
    const out: { key: Key; value: number }[] = [];
    for (const { key, value } of this.db.getRange({ start: prefix })) {
      const k = key as Key;
      if (!Array.isArray(k) || k.length < prefix.length || prefix.some((p, i) => k[i] !== p)) break;
      out.push({ key: k, value: typeof value === 'number' ? value : 0 });
    }
    return out;
  }
}

function monthKey(year: number, monthIndex: number): string {
  const d = new Date(Date.UTC(year, monthIndex, 1));
  return d.toISOString().slice(0, 7);
}

function checkName(field: string, v: unknown): void {
  if (typeof v !== 'string' || v.length === 0 || v.length > 128) {
    fail(Codes.BAD_REQUEST, 400, `计数的 ${field} 无效`, `counter ${field} must be a string of 1–128 characters`);
  }
}

function instant(field: string, v: unknown): Date {
  const ms = typeof v === 'string' ? Date.parse(v) : NaN;
  if (Number.isNaN(ms)) fail(Codes.BAD_REQUEST, 400, `计数的 ${field} 不是有效时间`, `counter ${field} must be an ISO 8601 time`);
  return new Date(ms);
}
