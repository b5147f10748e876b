// A small scheduler for the appliance's background jobs (evidence checkpoints, hot→cold
// migration …; ARCHITECTURE.md §2 jobs/). Each job has a name, an interval, an enabled flag, and
// remembers its last run (start, end, result or error code) and whether it is running now.
//
//   start(name)  enable: the job runs after one interval, then every interval (kept across restarts)
//   stop(name)   disable: no further runs; a run in progress is asked to stop (AbortSignal) and
//                finishes its current step — jobs stop between batches, never inside a transaction
//   run(name)    one run now, enabled or not, and its outcome; JOB_ALREADY_RUNNING (409) when a run
//                is in progress (runs of one job never overlap)
//
// Runs are chained with setTimeout from the end of the previous run (not setInterval): a slow run
// delays the next one instead of piling up. Timers are unref'd: they never keep the process alive.
// The enabled flags the operator sets are kept in meta ('jobs.enabled'), so a job stopped over the
// API stays stopped after a restart; a job never touched follows its configured default.
import { YiqianError, isYiqianError } from '../errors.js';
import { log as rootLog, type Logger } from '../log.js';
import type { MetaRepository } from '../store/meta-repository.js';

export const JobCodes = {
  /** No job of that name (404). */
  JOB_NOT_FOUND: 'JOB_NOT_FOUND',
  /** run asked while a run of the job is in progress (409). */
  JOB_ALREADY_RUNNING: 'JOB_ALREADY_RUNNING',
} as const;

export interface JobContext {
  /** Aborted when the job is stopped or the scheduler shuts down: stop at the next safe point. */
  signal: AbortSignal;
}

export interface JobDefinition {
  /** Lower-case a-z 0-9 and '-', e.g. evidence-checkpoint. */
  name: string;
  description: string;
  intervalMs: number;
  /** Default when the operator never started or stopped it. */
  enabled: boolean;
  /** One run; resolves with a JSON summary shown as lastResult. A throw is the run's error. */
  run(ctx: JobContext): Promise<Record<string, unknown> | void>;
}

export interface JobRun {
  startedAt: string;
  finishedAt: string;
  ok: boolean;
  /** The job's summary (ok) or the error's code and English text. */
  result?: Record<string, unknown>;
  error?: { code: string; message: string };
}

export interface JobStatus {
  name: string;
  description: string;
  intervalSeconds: number;
  enabled: boolean;
  running: boolean;
  /** When the current run started. */
  runningSince?: string;
  /** Next scheduled run (enabled jobs, when the scheduler is started). */
  nextRunAt?: string;
  lastRun?: JobRun;
  runs: number;
  failures: number;
}

interface Job {
  def: JobDefinition;
  enabled: boolean;
  timer?: NodeJS.Timeout;
  nextRunAt?: number;
  running?: { since: number; abort: AbortController; done: Promise<JobRun> };
  lastRun?: JobRun;
  runs: number;
  failures: number;
}

const NAME = /^[a-z][a-z0-9-]{0,63}$/;
const META_KEY = 'jobs.enabled';

export interface JobSchedulerOptions {
  /** Where operator start/stop choices are kept; without it they last until the process ends. */
  meta?: MetaRepository;
  log?: Logger;
  clock?: () => number;
}

export class JobScheduler {
  private readonly jobs = new Map<string, Job>();
  private readonly log: Logger;
  private readonly clock: () => number;
  private started = false;

  constructor(private readonly opts: JobSchedulerOptions = {}) {
    this.log = (opts.log ?? rootLog).child({ component: 'jobs' });
    this.clock = opts.clock ?? Date.now;
  }

  register(def: JobDefinition): void {
    if (!NAME.test(def.name)) throw new RangeError(`bad job name ${def.name}`);
    if (this.jobs.has(def.name)) throw new RangeError(`job ${def.name} is registered twice`);
    if (!Number.isFinite(def.intervalMs) || def.intervalMs < 100) throw new RangeError(`job ${def.name}: interval must be ≥ 100 ms`);
    this.jobs.set(def.name, { def, enabled: def.enabled, runs: 0, failures: 0 });
    if (this.started && def.enabled) this.schedule(this.jobs.get(def.name)!);
  }

  /** Loads the operator's choices and schedules every enabled job. */
  async startAll(): Promise<void> {
    if (this.started) return;
    const saved = await this.loadChoices();
    this.started = true;
    for (const job of this.jobs.values()) {
      if (saved[job.def.name] !== undefined) job.enabled = saved[job.def.name];
      if (job.enabled) this.schedule(job);
    }
  }

  /** Cancels every timer, aborts runs in progress and waits for them to finish (before the store closes). */
  async stopAll(): Promise<void> {
    this.started = false;
    const pending: Promise<JobRun>[] = [];
    for (const job of this.jobs.values()) {
      this.unschedule(job);
      if (job.running) {
        job.running.abort.abort();
        pending.push(job.running.done);
      }
    }
    await Promise.all(pending);
  }

  list(): JobStatus[] {
    return [...this.jobs.values()].map((j) => this.status(j));
  }

  get(name: string): JobStatus {
    return this.status(this.job(name));
  }

  /** Enables the job (kept across restarts) and schedules it. */
  async start(name: string): Promise<JobStatus> {
    const job = this.job(name);
    job.enabled = true;
    await this.saveChoice(name, true);
    if (this.started && !job.timer && !job.running) this.schedule(job);
    return this.status(job);
  }

  /** Disables the job (kept across restarts); a run in progress is asked to stop and is waited for. */
  async stop(name: string): Promise<JobStatus> {
    const job = this.job(name);
    job.enabled = false;
    await this.saveChoice(name, false);
    this.unschedule(job);
    if (job.running) {
      job.running.abort.abort();
      await job.running.done;
    }
    return this.status(job);
  }

  /** Runs the job now and resolves with its run (a failed run resolves too, with ok false). */
  async run(name: string): Promise<JobRun> {
    const job = this.job(name);
    if (job.running) {
      throw new YiqianError(JobCodes.JOB_ALREADY_RUNNING, 409, { zh: `任务 ${name} 正在运行`, en: `job ${name} is already running` }, { job: name, runningSince: new Date(job.running.since).toISOString() });
    }
    this.unschedule(job);
    return this.execute(job);
  }

  private job(name: string): Job {
    const job = typeof name === 'string' ? this.jobs.get(name) : undefined;
    if (!job) {
      throw new YiqianError(JobCodes.JOB_NOT_FOUND, 404, { zh: `没有名为 ${String(name).slice(0, 64)} 的任务`, en: `no job named ${String(name).slice(0, 64)}` }, { job: String(name).slice(0, 64) });
    }
    return job;
  }

  private schedule(job: Job): void {
    this.unschedule(job);
    job.nextRunAt = this.clock() + job.def.intervalMs;
    job.timer = setTimeout(() => {
      job.timer = undefined;
      job.nextRunAt = undefined;
      if (!job.running) void this.execute(job);
    }, job.def.intervalMs);
    job.timer.unref();
  }

  private unschedule(job: Job): void {
    if (job.timer) clearTimeout(job.timer);
    job.timer = undefined;
    job.nextRunAt = undefined;
  }

  private execute(job: Job): Promise<JobRun> {
    const abort = new AbortController();
    const since = this.clock();
    const done = (async (): Promise<JobRun> => {
      let run: JobRun;
      try {
        const result = await job.def.run({ signal: abort.signal });
        run = { startedAt: new Date(since).toISOString(), finishedAt: new Date(this.clock()).toISOString(), ok: true, ...(result ? { result } : {}) };
      } catch (e) {
        const code = isYiqianError(e) ? e.code : 'INTERNAL';
        const message = isYiqianError(e) ? e.text.en : e instanceof Error ? e.message : String(e);
        run = { startedAt: new Date(since).toISOString(), finishedAt: new Date(this.clock()).toISOString(), ok: false, error: { code, message } };
        job.failures++;
        this.log.warn({ job: job.def.name, code, err: message }, 'job run failed');
      }
      job.runs++;
      job.lastRun = run;
      job.running = undefined;
      if (this.started && job.enabled) this.schedule(job);
      return run;
    })();
    job.running = { since, abort, done };
    return done;
  }

  private status(job: Job): JobStatus {
    return {
      name: job.def.name,
      description: job.def.description,
      intervalSeconds: job.def.intervalMs / 1000,
      enabled: job.enabled,
      running: job.running !== undefined,
      ...(job.running ? { runningSince: new Date(job.running.since).toISOString() } : {}),
      ...(job.nextRunAt !== undefined ? { nextRunAt: new Date(job.nextRunAt).toISOString() } : {}),
      ...(job.lastRun ? { lastRun: job.lastRun } : {}),
      runs: job.runs,
      failures: job.failures,
    };
  }

  private async loadChoices(): Promise<Record<string, boolean>> {
    if (!this.opts.meta) return {};
    try {
      const v = await this.opts.meta.get<Record<string, boolean>>(META_KEY);
      return v && typeof v === 'object' ? v : {};
    } catch (e) {
      this.log.warn({ err: (e as Error).message }, 'job choices unreadable; configured defaults apply');
      return {};
    }
  }

  private async saveChoice(name: string, enabled: boolean): Promise<void> {
    if (!this.opts.meta) return;
    const all = await this.loadChoices();
    await this.opts.meta.set(META_KEY, { ...all, [name]: enabled });
  }
}
