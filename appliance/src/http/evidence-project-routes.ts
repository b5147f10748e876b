// Evidence projects over HTTP (issue 6 item 5), mounted under /api/v1 behind app authentication.
// Managing projects is for apps holding the `evidence-admin` permission (`yiqian app permit APP_ID
// evidence-admin`); any other app may only read its own project. Forced deletion (inside the
// retention period) is not offered here: it is an admin act on the box (`yiqian evidence project
// delete --force`).
//
//   POST   /evidence/projects                {id, name, description?, retentionYears?}  201 project
//   GET    /evidence/projects                {items: [project]}
//   GET    /evidence/projects/:id            project            (own project: any app)
//   PATCH  /evidence/projects/:id            {name?, description? (null clears), retentionYears?}
//   DELETE /evidence/projects/:id            {id, records, blobs, forced, retainUntil?}
//   POST   /evidence/projects/:id/freeze     project
//   POST   /evidence/projects/:id/unfreeze   project
import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import { YiqianError } from '../errors.js';
import type { ProjectAdmin } from '../evidence/projects.js';
import { jsonRoute } from './json-body.js';
import { internalError } from './problem.js';
import type { AuthenticatedApp, HttpState } from './state.js';

type Ctx = ParameterizedContext<HttpState>;

export const EVIDENCE_ADMIN = 'evidence-admin';

export const EvidenceAccessCodes = {
  /** The app lacks the evidence-admin permission for what it asked. */
  EVIDENCE_ADMIN_REQUIRED: 'EVIDENCE_ADMIN_REQUIRED',
  /** `force` was asked over HTTP: forced deletion is CLI only. */
  PROJECT_FORCE_CLI_ONLY: 'PROJECT_FORCE_CLI_ONLY',
} as const;

/** Whether an app holds a permission: read afresh on every request, so `app unpermit` takes effect at once. */
export type PermissionCheck = (appId: string, permission: string) => Promise<boolean>;

export interface EvidenceProjectRouteDeps {
  projects: ProjectAdmin;
  hasPermission: PermissionCheck;
}

export function callerOf(ctx: Ctx, what: string): AuthenticatedApp {
  const app = ctx.state.app;
  if (!app) throw internalError(new Error(`${what} routes mounted without app authentication`));
  return app;
}

export function adminRequired(what: { zh: string; en: string }): YiqianError {
  return new YiqianError(
    EvidenceAccessCodes.EVIDENCE_ADMIN_REQUIRED,
    403,
    { zh: `${what.zh}需要 evidence-admin 权限（yiqian app permit）`, en: `${what.en} needs the evidence-admin permission (yiqian app permit)` },
    { permission: EVIDENCE_ADMIN },
  );
}

export function evidenceProjectRouter(deps: EvidenceProjectRouteDeps): Router<HttpState> {
  const r = new Router<HttpState>({ sensitive: true });

  async function requireAdmin(ctx: Ctx, what: { zh: string; en: string }): Promise<string> {
    const app = callerOf(ctx, 'evidence project');
    if (!(await deps.hasPermission(app.id, EVIDENCE_ADMIN))) throw adminRequired(what);
    return `app:${app.id}`;
  }

  r.post('/evidence/projects', jsonRoute(), async (ctx) => {
    const actor = await requireAdmin(ctx, { zh: '创建项目', en: 'creating a project' });
    const project = await deps.projects.create(ctx.request.body as never, actor);
    ctx.status = 201;
    ctx.set('Location', `/api/v1/evidence/projects/${project.id}`);
    ctx.body = project;
  });

  r.get('/evidence/projects', async (ctx) => {
    await requireAdmin(ctx, { zh: '列出所有项目', en: 'listing all projects' });
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { items: await deps.projects.list() };
  });

  r.get('/evidence/projects/:id', async (ctx) => {
    const app = callerOf(ctx, 'evidence project');
    if (ctx.params.id !== app.project) await requireAdmin(ctx, { zh: '查看其他项目', en: 'reading another project' });
    ctx.set('Cache-Control', 'no-store');
    ctx.body = await deps.projects.show(ctx.params.id);
  });

  r.patch('/evidence/projects/:id', jsonRoute(), async (ctx) => {
    const actor = await requireAdmin(ctx, { zh: '修改项目', en: 'updating a project' });
    ctx.body = await deps.projects.update(ctx.params.id, ctx.request.body as never, actor);
  });

  r.delete('/evidence/projects/:id', async (ctx) => {
    const actor = await requireAdmin(ctx, { zh: '删除项目', en: 'deleting a project' });
    if (ctx.query.force !== undefined) {
      throw new YiqianError(EvidenceAccessCodes.PROJECT_FORCE_CLI_ONLY, 403, {
        zh: '保存期内强制删除只能由管理员在设备上执行（yiqian evidence project delete --force）',
        en: 'forced deletion within the retention period is only possible on the appliance (yiqian evidence project delete --force)',
      });
    }
    ctx.body = await deps.projects.delete(ctx.params.id, actor);
  });

  for (const verb of ['freeze', 'unfreeze'] as const) {
    r.post(`/evidence/projects/:id/${verb}`, jsonRoute(), async (ctx) => {
      const actor = await requireAdmin(ctx, verb === 'freeze' ? { zh: '冻结项目', en: 'freezing a project' } : { zh: '解冻项目', en: 'unfreezing a project' });
      ctx.body = await deps.projects[verb](ctx.params.id, actor);
    });
  }

  return r;
}
