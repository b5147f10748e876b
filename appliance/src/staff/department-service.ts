// Departments (科室) keyed by the hospital systems' own department ids: the mapping the tender
// asks for ("创建、批量导入科室ID，匹配院内系统科室ID"). Staff, certificates and statistics all
// name a department by this id. Every change is durable with its audit entry.
import { Codes, fail } from '../errors.js';
import { nowIso } from '../store/ids.js';
import { StaffCodes, departmentNotFound } from './staff-errors.js';
import { checkDepartmentCode, checkDepartmentId, checkDepartmentName, optional, problemError, type Checked } from './staff-fields.js';
import type { Department, DepartmentRepository } from './types.js';

export interface DepartmentInput {
  hisDeptId: string;
  name: string;
  code?: string;
  parentId?: string;
}

/** Absent: unchanged; null: removed (code, parentId). */
export interface DepartmentPatch {
  name?: string;
  code?: string | null;
  parentId?: string | null;
}

export interface DepartmentService {
  create(input: unknown, actor: string): Promise<Department>;
  /** DEPARTMENT_NOT_FOUND (404). */
  get(hisDeptId: string): Promise<Department>;
  list(): Promise<Department[]>;
  update(hisDeptId: string, patch: unknown, actor: string): Promise<Department>;
  /** DEPARTMENT_IN_USE (409) while staff or child departments reference it. */
  delete(hisDeptId: string, actor: string): Promise<Department>;
}

export function createDepartmentService(repo: DepartmentRepository): DepartmentService {
  return {
    async create(input, actor) {
      const body = objectWith(input, ['hisDeptId', 'name', 'code', 'parentId']);
      const hisDeptId = must(checkDepartmentId(body.hisDeptId, 'hisDeptId'));
      const name = must(checkDepartmentName(body.name));
      const code = must(optional(body.code, checkDepartmentCode));
      const parentId = must(optional(body.parentId, (v) => checkDepartmentId(v, 'parentId')));
      if (parentId === hisDeptId) fail(StaffCodes.DEPARTMENT_CYCLE, 422, '科室不能是自己的上级', 'a department cannot be its own parent');
      const now = nowIso();
      const rec: Department = { hisDeptId, name, createdAt: now, updatedAt: now };
      if (code !== undefined) rec.code = code;
      if (parentId !== undefined) rec.parentId = parentId;
      return repo.create(rec, { audit: { actor, action: 'department.create', target: hisDeptId, outcome: 'ok', detail: { name, ...(parentId ? { parentId } : {}) } } });
    },

    async get(hisDeptId) {
      const d = await repo.get(hisDeptId);
      if (!d) throw departmentNotFound(String(hisDeptId).slice(0, 64), 404);
      return d;
    },

    async list() {
      return repo.list();
    },

    async update(hisDeptId, patch, actor) {
      const body = objectWith(patch, ['name', 'code', 'parentId']);
      const name = body.name === undefined ? undefined : must(checkDepartmentName(body.name));
      const code = body.code === undefined || body.code === null ? body.code : must(checkDepartmentCode(body.code));
      const parentId = body.parentId === undefined || body.parentId === null ? body.parentId : must(checkDepartmentId(body.parentId, 'parentId'));
      const changed = Object.keys(body).filter((k) => body[k] !== undefined);
      if (changed.length === 0) fail(Codes.BAD_REQUEST, 400, '没有要修改的字段（name、code、parentId）', 'nothing to change (name, code, parentId)');
      return repo.update(
        hisDeptId,
        (current) => {
          const next: Department = { ...current, updatedAt: nowIso() };
          if (name !== undefined) next.name = name;
          if (code === null) delete next.code;
          else if (code !== undefined) next.code = code;
          if (parentId === null) delete next.parentId;
          else if (parentId !== undefined) next.parentId = parentId;
          return next;
        },
        { audit: { actor, action: 'department.update', target: hisDeptId, outcome: 'ok', detail: { fields: changed } } },
      );
    },

    async delete(hisDeptId, actor) {
      const d = await repo.delete(hisDeptId, { audit: { actor, action: 'department.delete', target: String(hisDeptId).slice(0, 64), outcome: 'ok' } });
      if (!d) throw departmentNotFound(String(hisDeptId).slice(0, 64), 404);
      return d;
    },
  };
}

function must<T>(c: Checked<T>): T {
  if (!c.ok) throw problemError(c.problem);
  return c.value;
}

/** A JSON object with only the listed fields (a misspelt field is an error, not silently ignored). */
export function objectWith(input: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) fail(Codes.BAD_REQUEST, 400, '请求体必须是 JSON 对象', 'the request body must be a JSON object');
  const body = input as Record<string, unknown>;
  const unknown = Object.keys(body).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    fail(Codes.BAD_REQUEST, 400, `未知字段：${unknown.slice(0, 5).join('、')}`, `unknown field(s): ${unknown.slice(0, 5).join(', ')}`, { unknown: unknown.slice(0, 20).map((k) => k.slice(0, 64)), allowed });
  }
  return body;
}
