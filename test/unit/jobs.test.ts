// The job scheduler (jobs/scheduler.ts): enabled jobs run every interval and never overlap;
// stop disables, aborts a run in progress at its next safe point and waits for it; start
// re-enables; run runs now (enabled or not) and answers the run, a failure as ok:false with its
// code; JOB_ALREADY_RUNNING and JOB_NOT_FOUND; operator choices kept in the store's meta across
// a new scheduler; stopAll waits for runs. And the hot→cold loop (evidence/tier-migration.ts):
// batches until a short one, the cutoff from afterDays, stops on the signal and on its time budget.
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { JobCodes, JobScheduler, type JobContext } from '../../appliance/src/jobs/scheduler.js';
import { migrateToCold, type ColdMover } from '../../appliance/src/evidence/tier-migration.js';
import { YiqianError } from '../../appliance/src/errors.js';
import { freshStore, rejection } from '../helpers/store-fixture.js';

/** A job body that counts its runs and can be held open until released or aborted. */
function counter() {
  const c = {
    runs: 0,
    concurrent: 0,
    maxConcurrent: 0,
    aborted: 0,
    hold: false,
    async run(ctx: JobContext) {
      c.runs++;
      c.concurrent++;
      c.maxConcurrent = Math.max(c.maxConcurrent, c.concurrent);
      try {
        while (c.hold && !ctx.signal.aborted) await sleep(5);
        if (ctx.signal.aborted) c.aborted++;
        return { run: c.runs };
      } finally {
        c.concurrent--;
      }
    },
  };
  return c;
}

t.test('scheduler: intervals, start, stop, run now', async (t) => {
  const { store } = await freshStore(t, 'yq-jobs-');
  const s = new JobScheduler({ meta: store.meta });
  t.teardown(() => s.stopAll());
  const a = counter();
  const b = counter();
  s.register({ name: 'ticker', description: 'runs often', intervalMs: 100, enabled: true, run: (ctx) => a.run(ctx) });
  s.register({ name: 'idle', description: 'disabled by default', intervalMs: 100, enabled: false, run: (ctx) => b.run(ctx) });
  let fails = 0;
  s.register({
    name: 'failing',
    description: 'always fails',
    intervalMs: 60_000,
    enabled: false,
    run: async () => {
      fails++;
      throw new YiqianError('CHECKPOINT_TIMESTAMP_REFUSED', 503, { zh: '拒绝', en: 'refused by the TSA' });
    },
  });
  t.throws(() => s.register({ name: 'ticker', description: 'x', intervalMs: 100, enabled: true, run: async () => undefined }), /twice/);
  t.throws(() => s.register({ name: 'Bad Name', description: 'x', intervalMs: 100, enabled: true, run: async () => undefined }), /bad job name/);

  await s.startAll();
  t.ok(s.get('ticker').nextRunAt, 'an enabled job has its next run');
  t.equal(s.get('idle').nextRunAt, undefined, 'a disabled one has none');
  await sleep(450);
  t.ok(a.runs >= 3, `ticker ran ${a.runs} times in 450 ms at 100 ms`);
  t.equal(b.runs, 0, 'the disabled job never ran');
  const st = s.get('ticker');
  t.equal(st.lastRun?.ok, true);
  t.same(st.lastRun?.result, { run: st.runs });
  t.ok(Date.parse(st.lastRun!.finishedAt) >= Date.parse(st.lastRun!.startedAt));

  await t.test('stop: no further runs, a run in progress is aborted and waited for', async (t) => {
    a.hold = true;
    await sleep(150); // a run is now held open
    t.equal(s.get('ticker').running, true, 'running');
    const stopped = await s.stop('ticker');
    t.equal(stopped.running, false, 'stop waited for the run');
    t.equal(stopped.enabled, false);
    t.equal(a.aborted, 1, 'the run saw its abort signal');
    a.hold = false;
    const n = a.runs;
    await sleep(300);
    t.equal(a.runs, n, 'no runs after stop');
    t.equal(s.get('ticker').nextRunAt, undefined);
  });

  await t.test('start: runs again', async (t) => {
    const n = a.runs;
    const started = await s.start('ticker');
    t.equal(started.enabled, true);
    await sleep(350);
    t.ok(a.runs >= n + 2, `ran again (${a.runs - n} runs)`);
    t.equal(a.maxConcurrent, 1, 'runs of one job never overlapped');
  });

  await t.test('run now: disabled jobs too, the outcome answered', async (t) => {
    const r = await s.run('idle');
    t.equal(r.ok, true);
    t.same(r.result, { run: 1 });
    t.equal(b.runs, 1);
    t.equal(s.get('idle').enabled, false, 'still disabled');
    await sleep(250);
    t.equal(b.runs, 1, 'run-now does not enable it');
    const f = await s.run('failing');
    t.equal(f.ok, false);
    t.same(f.error, { code: 'CHECKPOINT_TIMESTAMP_REFUSED', message: 'refused by the TSA' });
    t.equal(s.get('failing').failures, 1);
    t.equal(fails, 1);
    b.hold = true;
    const held = s.run('idle');
    await sleep(20);
    const e = await rejection(s.run('idle'));
    t.equal(e.code, JobCodes.JOB_ALREADY_RUNNING);
    t.equal(e.status, 409);
    b.hold = false;
    t.equal((await held).ok, true);
    for (const op of [() => s.run('nope'), () => s.start('nope'), () => s.stop('nope')]) {
      const nf = await rejection(op());
      t.equal(nf.code, JobCodes.JOB_NOT_FOUND);
      t.equal(nf.status, 404);
    }
    t.throws(() => s.get('nope'), { code: JobCodes.JOB_NOT_FOUND });
    t.same(s.list().map((j) => j.name), ['ticker', 'idle', 'failing']);
  });

  await t.test('operator choices survive a new scheduler (meta)', async (t) => {
    await s.stop('ticker');
    await s.start('idle');
    await s.stopAll();
    const s2 = new JobScheduler({ meta: store.meta });
    const c2 = counter();
    const d2 = counter();
    s2.register({ name: 'ticker', description: 'runs often', intervalMs: 100, enabled: true, run: (ctx) => c2.run(ctx) });
    s2.register({ name: 'idle', description: 'disabled by default', intervalMs: 100, enabled: false, run: (ctx) => d2.run(ctx) });
    await s2.startAll();
    t.equal(s2.get('ticker').enabled, false, 'stopped stays stopped');
    t.equal(s2.get('idle').enabled, true, 'started stays started');
    await sleep(250);
    t.equal(c2.runs, 0);
    t.ok(d2.runs >= 1);
    d2.hold = true;
    await sleep(150);
    await s2.stopAll();
    t.equal(s2.get('idle').running, false, 'stopAll waited for the held run');
    t.equal(d2.aborted, 1);
  });
});

t.test('hot → cold loop', async (t) => {
  /** A mover over a list of receivedAt instants (the repository's contract, in memory). */
  const mover = (times: number[]) => {
    const hot = [...times];
    const cold: number[] = [];
    const calls: { before: string; limit: number }[] = [];
    const m: ColdMover & { hot: number[]; cold: number[]; calls: typeof calls } = {
      hot,
      cold,
      calls,
      async moveBatchToCold(before, limit) {
        calls.push({ before, limit });
        const due = hot.filter((x) => x < Date.parse(before)).slice(0, limit);
        for (const x of due) {
          hot.splice(hot.indexOf(x), 1);
          cold.push(x);
        }
        return due.length;
      },
    };
    return m;
  };
  const now = Date.parse('2025-06-01T00:00:00.000Z');
  const day = 86_400_000;
  const times = [...Array.from({ length: 25 }, (_, i) => now - 40 * day + i), ...Array.from({ length: 5 }, (_, i) => now - day + i)];

  const m = mover(times);
  const r = await migrateToCold(m, { afterDays: 30, batchSize: 10 }, { clock: () => now });
  t.same(r, { cutoff: '2025-05-02T00:00:00.000Z', moved: 25, batches: 3, complete: true });
  t.equal(m.hot.length, 5, 'younger records stay hot');
  t.ok(m.calls.every((c) => c.limit === 10 && c.before === r.cutoff));

  const all = mover(times);
  t.same(await migrateToCold(all, { afterDays: 0, batchSize: 7 }, { clock: () => now }), { cutoff: new Date(now).toISOString(), moved: 30, batches: 5, complete: true }, 'afterDays 0: everything');

  const ac = new AbortController();
  const slow = mover(times);
  const orig = slow.moveBatchToCold.bind(slow);
  slow.moveBatchToCold = async (b, l) => {
    const n = await orig(b, l);
    if (slow.calls.length === 2) ac.abort();
    return n;
  };
  const stopped = await migrateToCold(slow, { afterDays: 0, batchSize: 5 }, { clock: () => now, signal: ac.signal });
  t.same(stopped, { cutoff: new Date(now).toISOString(), moved: 10, batches: 2, complete: false }, 'stops between batches on the signal');
  const rest = await migrateToCold(slow, { afterDays: 0, batchSize: 5 }, { clock: () => now });
  t.equal(rest.moved, 20, 'the next run carries on');
  t.equal(slow.cold.length, 30, 'nothing lost');
  t.equal(new Set(slow.cold).size, 30, 'nothing twice');

  let fake = now;
  const budget = mover(times);
  const r2 = await migrateToCold(budget, { afterDays: 0, batchSize: 4, maxRunMs: 1000 }, { clock: () => (fake += 400) });
  t.equal(r2.complete, false, 'a run ends at its time budget');
  t.ok(r2.batches >= 1 && r2.batches < 8, `${r2.batches} batches`);
});
