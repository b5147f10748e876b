// The staff directory over HTTP (docs/staff-directory.md), mounted under /api/v1 behind app
// authentication. Thin: parse the request, call the service, shape the answer. National id
// and mobile are masked in every answer except POST /staff/:employeeId/reveal.
//
//   POST   /departments                     create                       201
//   GET    /departments                     list
//   GET    /departments/:hisDeptId          get
//   PATCH  /departments/:hisDeptId          update name / code / parentId
//   DELETE /departments/:hisDeptId          delete (409 DEPARTMENT_IN_USE)  204
//   POST   /staff                           create                       201
//   GET    /staff?departmentId&status&limit&cursor
//   GET    /staff/:employeeId
//   PATCH  /staff/:employeeId               update
//   POST   /staff/:employeeId/leave         mark left (离职)
//   POST   /staff/:employeeId/reinstate     mark active again
//   POST   /staff/:employeeId/reveal        plaintext, audited {reason, fields?}
//   POST   /staff/lookup                    by national id or mobile (blind index) {nationalId} | {mobile}
//   POST   /staff/import                    CSV file (text/csv), all or nothing: 200 | 422 IMPORT_REJECTED
import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import { Codes } from '../errors.js';
import type { DepartmentService } from '../staff/department-service.js';
import type { StaffService } from '../staff/staff-service.js';
import type { StaffFilter } from '../staff/types.js';
import { jsonRoute } from './json-body.js';
import { httpError, internalError } from './problem.js';
import type { HttpState } from './state.js';

export interface StaffRouteDeps {
  departments: DepartmentService;
  staff: StaffService;
}

type Ctx = ParameterizedContext<HttpState>;

const CSV_TYPES = ['text/csv', 'application/csv'];

/** Who acts, for the audit log. */
export function actorOf(ctx: Ctx): string {
  const app = ctx.state.app;
  if (!app) throw internalError(new Error('staff routes mounted without app authentication'));
  return `app:${app.id}`;
}

function queryString(ctx: Ctx, name: string): string | undefined {
  const v = ctx.query[name];
  if (v === undefined) return undefined;
  if (Array.isArray(v)) throw httpError(Codes.BAD_REQUEST, 400, `查询参数 ${name} 只能出现一次`, `query parameter ${name} may appear only once`);
  return v;
}

function queryLimit(ctx: Ctx): number | undefined {
  const v = queryString(ctx, 'limit');
  if (v === undefined) return undefined;
  if (!/^\d{1,4}$/.test(v)) throw httpError(Codes.BAD_REQUEST, 400, 'limit 必须是正整数', 'limit must be a positive integer');
  return Number(v);
}

export function staffRouter(deps: StaffRouteDeps): Router<HttpState> {
  const r = new Router<HttpState>({ sensitive: true });

  // ---- departments
  r.post('/departments', jsonRoute(), async (ctx) => {
    const d = await deps.departments.create(ctx.request.body, actorOf(ctx));
    ctx.status = 201;
    ctx.set('Location', `/api/v1/departments/${encodeURIComponent(d.hisDeptId)}`);
    ctx.body = d;
  });
  r.get('/departments', async (ctx) => {
    ctx.body = { items: await deps.departments.list() };
  });
  r.get('/departments/:hisDeptId', async (ctx) => {
    ctx.body = await deps.departments.get(ctx.params.hisDeptId);
  });
  r.patch('/departments/:hisDeptId', jsonRoute(), async (ctx) => {
    ctx.body = await deps.departments.update(ctx.params.hisDeptId, ctx.request.body, actorOf(ctx));
  });
  r.delete('/departments/:hisDeptId', async (ctx) => {
    await deps.departments.delete(ctx.params.hisDeptId, actorOf(ctx));
    ctx.status = 204;
  });

  // ---- staff (fixed paths before /staff/:employeeId)
  r.post('/staff/import', async (ctx) => {
    const type = ctx.request.type;
    if (!CSV_TYPES.includes(type)) {
      throw httpError(Codes.UNSUPPORTED_MEDIA_TYPE, 415, `导入接口只接受 text/csv，收到 ${(type || '(none)').slice(0, 80)}`, `the import accepts text/csv only, got ${(type || '(none)').slice(0, 80)}`, {
        detail: { contentType: (type || '(none)').slice(0, 80), accepted: CSV_TYPES },
      });
    }
    ctx.body = await deps.staff.importCsv(ctx.state.rawBody, { charset: ctx.request.charset || undefined, actor: actorOf(ctx) });
  });
  r.post('/staff/lookup', jsonRoute(), async (ctx) => {
    ctx.body = { items: await deps.staff.lookup(ctx.request.body, actorOf(ctx)) };
  });
  r.post('/staff', jsonRoute(), async (ctx) => {
    const s = await deps.staff.create(ctx.request.body, actorOf(ctx));
    ctx.status = 201;
    ctx.set('Location', `/api/v1/staff/${encodeURIComponent(s.employeeId)}`);
    ctx.body = s;
  });
  r.get('/staff', async (ctx) => {
    const filter: StaffFilter = {};
    const departmentId = queryString(ctx, 'departmentId');
    const status = queryString(ctx, 'status');
    if (departmentId !== undefined) filter.departmentId = departmentId;
    if (status !== undefined) filter.status = status as StaffFilter['status'];
    ctx.body = await deps.staff.list(filter, { limit: queryLimit(ctx), cursor: queryString(ctx, 'cursor') });
  });
  r.get('/staff/:employeeId', async (ctx) => {
    ctx.body = await deps.staff.get(ctx.params.employeeId);
  });
  r.patch('/staff/:employeeId', jsonRoute(), async (ctx) => {
    ctx.body = await deps.staff.update(ctx.params.employeeId, ctx.request.body, actorOf(ctx));
  });
  r.post('/staff/:employeeId/leave', async (ctx) => {
    ctx.body = await deps.staff.leave(ctx.params.employeeId, actorOf(ctx));
  });
  r.post('/staff/:employeeId/reinstate', async (ctx) => {
    ctx.body = await deps.staff.reinstate(ctx.params.employeeId, actorOf(ctx));
  });
  r.post('/staff/:employeeId/reveal', jsonRoute(), async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = await deps.staff.reveal(ctx.params.employeeId, ctx.request.body ?? {}, actorOf(ctx));
  });
  return r;
}
