// Scheduled jobs over HTTP (issue 6 item 7: "scheduled jobs can be listed, started and stopped
// over the API"), mounted under /api/v1 behind app authentication. Listing is open to every app;
// start, stop and run need the evidence-admin permission (`yiqian app permit APP_ID evidence-admin`)
// and are audited.
//
//   GET  /jobs                  every job: interval, enabled, running, last run and its result
//   GET  /jobs/:name
//   POST /jobs/:name/start      enable (kept across restarts); 200 with the job
//   POST /jobs/:name/stop       disable; a run in progress stops at its next safe point, then 200
//   POST /jobs/:name/run        run now and answer with the run (200 even when the run failed:
//                               the run's own error is in `run.error`); 409 JOB_ALREADY_RUNNING
import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import type { AuditLog } from '../audit/audit-log.js';
import type { JobScheduler } from '../jobs/scheduler.js';
import { log } from '../log.js';
import { jsonRoute } from './json-body.js';
import { httpError, internalError } from './problem.js';
import { callingApp } from './app-auth.js';
import type { HttpState } from './state.js';

type Ctx = ParameterizedContext<HttpState>;

export const JOB_ADMIN_PERMISSION = 'evidence-admin';

export const JobRouteCodes = {
  /** The app lacks the evidence-admin permission (403); the same code the evidence project routes use. */
  EVIDENCE_ADMIN_REQUIRED: 'EVIDENCE_ADMIN_REQUIRED',
} as const;

export interface JobRouteDeps {
  jobs: Pick<JobScheduler, 'list' | 'get' | 'start' | 'stop' | 'run'>;
  /** Whether the app holds a permission, read afresh on every request. */
  hasPermission(appId: string, permission: string): Promise<boolean>;
  audit?: Pick<AuditLog, 'append'>;
}

const actorOf = (ctx: Ctx): string => `app:${callingApp(ctx).id}`;

export function jobRouter(deps: JobRouteDeps): Router<HttpState> {
  const r = new Router<HttpState>({ sensitive: true });
  const audited = async (ctx: Ctx, action: string, outcome: 'ok' | 'error', detail?: Record<string, unknown>): Promise<void> => {
    await deps.audit
      ?.append({ actor: actorOf(ctx), action, target: ctx.params.name, outcome, ...(detail ? { detail } : {}) })
      .catch((e: Error) => log.warn({ err: e.message, action }, 'job action not audited'));
  };

  r.get('/jobs', (ctx) => {
    ctx.body = { items: deps.jobs.list() };
  });

  r.get('/jobs/:name', (ctx) => {
    ctx.body = deps.jobs.get(ctx.params.name);
  });

  /** JOB_NOT_FOUND first (so a name is never confirmed by the 403), then the permission. */
  const admit = async (ctx: Ctx, what: { zh: string; en: string }): Promise<void> => {
    deps.jobs.get(ctx.params.name);
    const app = ctx.state.app;
    if (!app) throw internalError(new Error('job routes mounted without app authentication'));
    if (!(await deps.hasPermission(app.id, JOB_ADMIN_PERMISSION))) {
      throw httpError(JobRouteCodes.EVIDENCE_ADMIN_REQUIRED, 403, `${what.zh}需要 evidence-admin 权限（yiqian app permit）`, `${what.en} needs the evidence-admin permission (yiqian app permit)`, {
        detail: { permission: JOB_ADMIN_PERMISSION },
      });
    }
  };

  r.post('/jobs/:name/start', jsonRoute(), async (ctx) => {
    await admit(ctx, { zh: '启动任务', en: 'starting a job' });
    const job = await deps.jobs.start(ctx.params.name);
    await audited(ctx, 'job.start', 'ok');
    ctx.body = job;
  });

  r.post('/jobs/:name/stop', jsonRoute(), async (ctx) => {
    await admit(ctx, { zh: '停止任务', en: 'stopping a job' });
    const job = await deps.jobs.stop(ctx.params.name);
    await audited(ctx, 'job.stop', 'ok');
    ctx.body = job;
  });

  r.post('/jobs/:name/run', jsonRoute(), async (ctx) => {
    await admit(ctx, { zh: '立即运行任务', en: 'running a job' });
    const run = await deps.jobs.run(ctx.params.name);
    await audited(ctx, 'job.run', run.ok ? 'ok' : 'error', run.error ? { code: run.error.code } : undefined);
    ctx.body = { run, job: deps.jobs.get(ctx.params.name) };
  });

  return r;
}
