// Evidence statistics counters (store/evidence-counters.ts) against a brute-force count over
// generated records spanning years, months, days and the Asia/Shanghai midnight boundary. The
// brute force takes its calendar from Intl (the tz database), the counters from UTC+8
// arithmetic, so the two are independent.
import t from 'tap';
import { freshStore } from '../helpers/store-fixture.js';
import { shanghaiPeriods } from '../../appliance/src/store/evidence-counters.js';
import type { EvidenceRejection, EvidenceStatistics } from '../../appliance/src/evidence/types.js';

const fmt = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Shanghai', year: 'numeric', month: '2-digit', day: '2-digit' });
function tzDay(d: Date): string {
  return fmt.format(d); // en-CA: YYYY-MM-DD
}

interface Rec {
  project: string;
  appId: string;
  receivedAt: string;
  retainUntil: string;
}

// A deterministic generator (xorshift) so a failure is reproducible.
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

const NOW = new Date('2026-03-01T02:30:00.000Z'); // 2026-03-01 10:30 in Shanghai
const PROJECTS = ['emr', 'lis', 'his-2'];
const APPS: Record<string, string[]> = { emr: ['01AAAAAAAAAAAAAAAAAAAAAAAA', '01AAAAAAAAAAAAAAAAAAAAAAAB'], lis: ['01BBBBBBBBBBBBBBBBBBBBBBBB'], 'his-2': ['01CCCCCCCCCCCCCCCCCCCCCCCC'] };

function generate(n: number): Rec[] {
  const r = rng(20260301);
  const from = Date.parse('2023-01-01T00:00:00Z');
  const to = NOW.getTime();
  const out: Rec[] = [];
  for (let i = 0; i < n; i++) {
    const project = PROJECTS[Math.floor(r() * PROJECTS.length)];
    const apps = APPS[project];
    // Half of them in the last 40 days so that per-day counts are dense.
    const at = r() < 0.5 ? to - Math.floor(r() * 40 * 86_400_000) : from + Math.floor(r() * (to - from));
    out.push({ project, appId: apps[Math.floor(r() * apps.length)], receivedAt: new Date(at).toISOString(), retainUntil: new Date(at + 30 * 365 * 86_400_000).toISOString() });
  }
  // The Shanghai midnight boundary: 15:59:59.999Z is still the day before, 16:00:00.000Z the next day (and year).
  for (const at of ['2025-12-31T15:59:59.999Z', '2025-12-31T16:00:00.000Z', '2026-02-28T15:59:59.999Z', '2026-02-28T16:00:00.000Z', '2026-03-01T02:29:59.999Z', '2024-02-29T16:00:00.000Z']) {
    out.push({ project: 'emr', appId: APPS.emr[0], receivedAt: at, retainUntil: new Date(Date.parse(at) + 86_400_000).toISOString() });
  }
  return out;
}

function brute(records: Rec[], rejections: EvidenceRejection[], scope: { project?: string; appId?: string }, now: Date): Omit<EvidenceStatistics, 'scope'> {
  const inScope = <T extends { project: string; appId: string }>(x: T): boolean =>
    (scope.project === undefined || x.project === scope.project) && (scope.appId === undefined || x.appId === scope.appId);
  const days = records.filter(inScope).map((x) => tzDay(new Date(x.receivedAt)));
  const today = tzDay(now);
  const count = (prefix: string): number => days.filter((d) => d.startsWith(prefix)).length;
  // Periods listed by walking back from today in the tz calendar (Date arithmetic at local noon).
  const [y, m] = today.split('-').map(Number);
  const perYear = [y - 2, y - 1, y].map((yy) => ({ period: String(yy), count: count(String(yy)) }));
  const perMonth: { period: string; count: number }[] = [];
  for (let i = 11; i >= 0; i--) {
    const d = new Date(Date.UTC(y, m - 1 - i, 15));
    const p = d.toISOString().slice(0, 7);
    perMonth.push({ period: p, count: count(p) });
  }
  const perDay: { period: string; count: number }[] = [];
  for (let i = 29; i >= 0; i--) {
    const p = tzDay(new Date(now.getTime() - i * 86_400_000));
    perDay.push({ period: p, count: count(p) });
  }
  const rej = rejections.filter(inScope);
  const byCode: Record<string, number> = {};
  const byApp: Record<string, number> = {};
  for (const x of rej) {
    byCode[x.code] = (byCode[x.code] ?? 0) + 1;
    byApp[x.appId] = (byApp[x.appId] ?? 0) + 1;
  }
  return {
    total: days.length,
    last3Months: perMonth.slice(-3).reduce((s, p) => s + p.count, 0),
    today: count(today),
    perYear,
    perMonth,
    perDay,
    rejections: { total: rej.length, byCode, byApp },
  };
}

function rejectionsFor(n: number): EvidenceRejection[] {
  const r = rng(7);
  const codes = ['SIGNATURE_INVALID', 'CERT_REVOKED', 'DIGEST_LENGTH_INVALID'];
  return Array.from({ length: n }, (_, i) => {
    const project = PROJECTS[Math.floor(r() * PROJECTS.length)];
    const apps = APPS[project];
    return { id: `rej-${i}`, at: NOW.toISOString(), project, appId: apps[Math.floor(r() * apps.length)], kind: 'signature' as const, code: codes[Math.floor(r() * codes.length)], reason: 'x' };
  });
}

t.test('shanghaiPeriods agrees with the tz database across midnight and year ends', async (t) => {
  const r = rng(99);
  for (let i = 0; i < 2000; i++) {
    const d = new Date(Date.parse('2000-01-01T00:00:00Z') + Math.floor(r() * 40 * 365 * 86_400_000));
    t.equal(shanghaiPeriods(d).day, tzDay(d), d.toISOString());
  }
  t.same(shanghaiPeriods(new Date('2025-12-31T15:59:59.999Z')), { year: '2025', month: '2025-12', day: '2025-12-31' });
  t.same(shanghaiPeriods(new Date('2025-12-31T16:00:00.000Z')), { year: '2026', month: '2026-01', day: '2026-01-01' });
});

t.test('statistics equal a brute-force count for every scope', async (t) => {
  const { store } = await freshStore(t, 'yq-evc-');
  const counters = store.evidenceCounters;
  const records = generate(1500);
  const rejections = rejectionsFor(120);
  // Several transactions, as the repository would make them (one record each would be slow here):
  // alternately record by record and as one batch (recordsStoredInTxn sums per counter first).
  for (let i = 0; i < records.length; i += 100) {
    const chunk = records.slice(i, i + 100);
    await counters.updateDurably((c) => ((i / 100) % 2 === 0 ? chunk.forEach((x) => c.recordStoredInTxn(x)) : c.recordsStoredInTxn(chunk)));
  }
  await counters.updateDurably((c) => rejections.forEach((x) => c.rejectionInTxn(x)));

  const scopes: { project?: string; appId?: string }[] = [
    {},
    ...PROJECTS.map((project) => ({ project })),
    ...Object.entries(APPS).flatMap(([project, apps]) => apps.map((appId) => ({ project, appId }))),
    { appId: APPS.emr[1] },
  ];
  for (const scope of scopes) {
    const got = await counters.statistics(scope, NOW);
    const { scope: s, ...rest } = got;
    t.same(s, scope, 'scope echoed');
    t.same(rest, brute(records, rejections, scope, NOW), `scope ${JSON.stringify(scope)}`);
  }
  const all = await counters.statistics({}, NOW);
  t.equal(all.perDay.length, 30);
  t.equal(all.perMonth.length, 12);
  t.equal(all.perYear.length, 3);
  t.ok(all.perDay.some((d) => d.count === 0) || all.perDay.every((d) => d.count > 0), 'zeros included');
  t.same(all.perDay.at(-1)?.period, '2026-03-01');
  t.same(all.perMonth.at(-1)?.period, '2026-03');
  t.same(all.perMonth[0].period, '2025-04');

  // Midnight boundary: the two records around 2026-02-28 16:00Z land on different days.
  const emr = await counters.statistics({ project: 'emr' }, new Date('2026-02-28T16:30:00Z'));
  t.equal(emr.today, brute(records, [], { project: 'emr' }, new Date('2026-02-28T16:30:00Z')).today, 'today after Shanghai midnight');

  t.test('an unknown scope is all zeros, with every period listed', async (t) => {
    const none = await counters.statistics({ project: 'nobody' }, NOW);
    t.equal(none.total, 0);
    t.equal(none.perDay.length, 30);
    t.ok(none.perDay.every((d) => d.count === 0));
    t.same(none.rejections, { total: 0, byCode: {}, byApp: {} });
  });

  t.test('the retention horizon is the latest retainUntil of the project', async (t) => {
    for (const p of PROJECTS) {
      const latest = records.filter((x) => x.project === p).map((x) => x.retainUntil).sort().at(-1);
      t.equal(await counters.retentionHorizon(p), latest, p);
    }
    t.equal(await counters.retentionHorizon('nobody'), undefined);
  });

  t.test('removing a project takes its counts (records and rejections) out of every scope', async (t) => {
    await counters.updateDurably((c) => c.projectRemovedInTxn('emr'));
    const left = records.filter((x) => x.project !== 'emr');
    const leftRej = rejections.filter((x) => x.project !== 'emr');
    for (const scope of [{}, { project: 'lis' }, { project: 'emr' }, { project: 'emr', appId: APPS.emr[0] }, { appId: APPS.emr[1] }, { project: 'his-2', appId: APPS['his-2'][0] }]) {
      const { scope: _s, ...rest } = await counters.statistics(scope, NOW);
      t.same(rest, brute(left, leftRej, scope, NOW), `after removal, scope ${JSON.stringify(scope)}`);
    }
    t.equal(await counters.retentionHorizon('emr'), undefined, 'horizon gone');
  });
});

t.test('a record without retainUntil gets the horizon from the project retention in the transaction', async (t) => {
  const { store } = await freshStore(t, 'yq-evc2-');
  const now = new Date().toISOString();
  await store.evidenceProjects.create({ id: 'p1', name: 'P1', retentionYears: 15, frozen: false, createdAt: now, updatedAt: now });
  await store.evidenceCounters.updateDurably((c) => c.recordStoredInTxn({ project: 'p1', appId: 'A', receivedAt: '2020-02-29T10:00:00.000Z' }));
  t.equal(await store.evidenceCounters.retentionHorizon('p1'), '2035-03-01T10:00:00.000Z', '15 calendar years on (29 Feb rolls to 1 Mar)');
});

t.test('bad input throws and rolls the whole transaction back', async (t) => {
  const { store } = await freshStore(t, 'yq-evc3-');
  const c = store.evidenceCounters;
  await t.rejects(
    c.updateDurably((x) => {
      x.recordStoredInTxn({ project: 'p', appId: 'A', receivedAt: '2026-01-01T00:00:00Z' });
      x.recordStoredInTxn({ project: 'p', appId: 'A', receivedAt: 'yesterday' });
    }),
    { code: 'BAD_REQUEST' },
  );
  t.equal((await c.statistics({})).total, 0, 'nothing counted');
  await t.rejects(c.updateDurably((x) => x.recordStoredInTxn({ project: '', appId: 'A', receivedAt: '2026-01-01T00:00:00Z' })), { code: 'BAD_REQUEST' });
  await t.rejects(c.statistics({ project: 'x'.repeat(200) }), { code: 'BAD_REQUEST' });
});
