// Evidence statistics over HTTP (issue 6 item 6), mounted under /api/v1 behind app authentication.
// Answered from the counters kept at write time (store/evidence-counters.ts), never by scanning.
//
//   GET /evidence/stats                          the calling app's project
//   GET /evidence/stats?scope=app                the calling app itself (within its project)
//   GET /evidence/stats?scope=project&project=P  another project     (evidence-admin)
//   GET /evidence/stats?scope=app&app=APP_ID     another app         (evidence-admin)
//   GET /evidence/stats?scope=all                every project       (evidence-admin)
//
// Periods are Asia/Shanghai calendar days, months and years; last3Months is the sum of the
// current calendar month and the two before it.
import Router from '@koa/router';
import { YiqianError } from '../errors.js';
import type { EvidenceCounters } from '../evidence/types.js';
import { EVIDENCE_ADMIN, adminRequired, callerOf, type PermissionCheck } from './evidence-project-routes.js';
import type { HttpState } from './state.js';

export const StatsCodes = {
  STATS_QUERY_INVALID: 'STATS_QUERY_INVALID',
} as const;

export interface EvidenceStatsRouteDeps {
  counters: Pick<EvidenceCounters, 'statistics'>;
  hasPermission: PermissionCheck;
}

const PARAMS = ['scope', 'project', 'app'];
const PROJECT = /^[a-z0-9_-]{1,64}$/;
const APP = /^[0-9A-HJKMNP-TV-Z]{26}$/;

function invalid(zh: string, en: string, detail?: Record<string, unknown>): YiqianError {
  return new YiqianError(StatsCodes.STATS_QUERY_INVALID, 400, { zh, en }, detail);
}

export function evidenceStatsRouter(deps: EvidenceStatsRouteDeps): Router<HttpState> {
  const r = new Router<HttpState>({ sensitive: true });

  r.get('/evidence/stats', async (ctx) => {
    const me = callerOf(ctx, 'evidence stats');
    const q: Record<string, string> = {};
    for (const [k, v] of Object.entries(ctx.query)) {
      if (!PARAMS.includes(k)) throw invalid(`未知的查询参数 ${k.slice(0, 40)}`, `unknown query parameter ${k.slice(0, 40)}`, { allowed: PARAMS });
      if (typeof v !== 'string') throw invalid(`查询参数 ${k} 只能出现一次`, `query parameter ${k} may appear once`);
      q[k] = v;
    }
    const scope = q.scope ?? 'project';
    if (scope !== 'project' && scope !== 'app' && scope !== 'all') {
      throw invalid('scope 须为 project、app 或 all', 'scope must be project, app or all', { scope: scope.slice(0, 40) });
    }
    if (q.project !== undefined && (scope !== 'project' || !PROJECT.test(q.project))) {
      throw invalid('project 参数须为项目标识，且只用于 scope=project', 'project must be a project id and goes with scope=project only');
    }
    const appId = q.app?.toUpperCase();
    if (appId !== undefined && (scope !== 'app' || !APP.test(appId))) {
      throw invalid('app 参数须为应用标识，且只用于 scope=app', 'app must be an app id and goes with scope=app only');
    }
    const admin = (): Promise<boolean> => deps.hasPermission(me.id, EVIDENCE_ADMIN);
    let target: { project?: string; appId?: string };
    if (scope === 'all') {
      if (!(await admin())) throw adminRequired({ zh: '查看全部项目的统计', en: 'statistics of all projects' });
      target = {};
    } else if (scope === 'project') {
      const project = q.project ?? me.project;
      if (project !== me.project && !(await admin())) throw adminRequired({ zh: '查看其他项目的统计', en: 'statistics of another project' });
      target = { project };
    } else if (appId === undefined || appId === me.id) {
      target = { project: me.project, appId: me.id };
    } else {
      if (!(await admin())) throw adminRequired({ zh: '查看其他应用的统计', en: 'statistics of another app' });
      target = { appId };
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.body = await deps.counters.statistics(target);
  });

  return r;
}
