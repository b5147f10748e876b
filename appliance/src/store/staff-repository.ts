// The staff directory on LMDB (issue 3, item 6):
//   'departments'          hisDeptId → Department
//   'staff'                employeeId → StaffRecord (national id and mobile only sealed, pii.ts)
//   'staff-by-department'  [departmentId, employeeId] → status, for listing a department,
//                          counting staff per department, and refusing to delete a department in use
//
// Natural keys, not ULIDs: staff are found by employee id and departments by the hospital's
// own id, and a hospital has thousands of staff, not millions, so B-tree locality does not
// matter here (ARCHITECTURE.md §3 asks for time-ordered ids where appends dominate).
//
// The two repositories check each other inside one write transaction (a member of staff
// needs an existing department; a department with staff cannot be deleted). openStore builds
// them separately (each with its own databases), so they find each other's databases through
// the Writer they share: one Writer = one LMDB environment = one transaction domain.
import type { Database } from 'lmdb';
import { sealer } from '../audit/chain.js';
import { Codes, YiqianError, fail } from '../errors.js';
import { departmentNotFound, staffExists, staffNotFound, StaffCodes } from '../staff/staff-errors.js';
import type {
  AuditedWrite,
  BatchConflict,
  Department,
  DepartmentRepository,
  DepartmentStaffCount,
  Page,
  StaffFilter,
  StaffRecord,
  StaffRepository,
  StaffStatus,
} from '../staff/types.js';
import type { LmdbAuditStorage } from './audit-storage.js';
import type { Writer } from './durable.js';

type DeptKey = [string, string];

interface Tables {
  departments?: Database<Department, string>;
  staff?: Database<StaffRecord, string>;
  byDepartment?: Database<StaffStatus, DeptKey>;
}

const linked = new WeakMap<Writer, Tables>();

function link(writer: Writer, part: Tables): Tables {
  const tables = linked.get(writer) ?? {};
  Object.assign(tables, part);
  linked.set(writer, tables);
  return tables;
}

function need<K extends keyof Tables>(tables: Tables, name: K): NonNullable<Tables[K]> {
  const db = tables[name];
  if (!db) throw new YiqianError(Codes.INTERNAL, 500, { zh: '员工目录存储未完整打开', en: `staff directory: the ${name} database was not opened on this store` });
  return db as NonNullable<Tables[K]>;
}

/** Longer strings cannot be keys we wrote (the services allow ≤ 64): answer "none". */
const MAX_LOOKUP = 128;
const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 500;
const MAX_PARENT_DEPTH = 64;
const SCAN_BATCH = 500;

function lookupable(s: unknown): s is string {
  return typeof s === 'string' && s.length > 0 && s.length <= MAX_LOOKUP;
}

function checkKey(value: unknown, what: string): string {
  if (!lookupable(value)) fail(Codes.BAD_REQUEST, 400, `${what} 无效`, `${what} must be a string of 1–${MAX_LOOKUP} characters`);
  return value;
}

// ---------------------------------------------------------------------------- departments

export function createDepartmentRepository(departments: Database<any, any>, audit: LmdbAuditStorage, writer: Writer): DepartmentRepository {
  return new LmdbDepartmentRepository(link(writer, { departments }), audit, writer);
}

class LmdbDepartmentRepository implements DepartmentRepository {
  constructor(
    private readonly tables: Tables,
    private readonly audit: LmdbAuditStorage,
    private readonly writer: Writer,
  ) {}

  private get db(): Database<Department, string> {
    return need(this.tables, 'departments');
  }

  async create(record: Department, opts: AuditedWrite = {}): Promise<Department> {
    const rec = copyDepartment(record);
    const seal = opts.audit && sealer(opts.audit);
    return this.writer.durable(() => {
      if (this.db.doesExist(rec.hisDeptId)) {
        throw new YiqianError(StaffCodes.DEPARTMENT_EXISTS, 409, { zh: `科室 ${rec.hisDeptId} 已存在`, en: `department ${rec.hisDeptId} already exists` }, { departmentId: rec.hisDeptId });
      }
      if (rec.parentId !== undefined && !this.db.doesExist(rec.parentId)) throw departmentNotFound(rec.parentId, 422, 'parent');
      void this.db.put(rec.hisDeptId, rec);
      if (seal) this.audit.appendInTransaction(seal);
      return rec;
    });
  }

  async get(hisDeptId: string): Promise<Department | undefined> {
    if (!lookupable(hisDeptId)) return undefined;
    return this.writer.read(() => this.db.get(hisDeptId));
  }

  async list(): Promise<Department[]> {
    return this.writer.read(() => [...this.db.getRange().map(({ value }) => value)]);
  }

  async update(hisDeptId: string, change: (current: Department) => Department, opts: AuditedWrite = {}): Promise<Department> {
    if (!lookupable(hisDeptId)) throw departmentNotFound(String(hisDeptId).slice(0, 64), 404);
    const seal = opts.audit && sealer(opts.audit);
    return this.writer.durable(() => {
      const current = this.db.get(hisDeptId);
      if (current === undefined) throw departmentNotFound(hisDeptId, 404);
      const next = copyDepartment(change(structuredClone(current)));
      if (next.hisDeptId !== hisDeptId) fail(Codes.BAD_REQUEST, 400, '不能修改科室ID', 'a department id cannot be changed');
      if (next.parentId !== undefined && next.parentId !== current.parentId) this.checkParent(hisDeptId, next.parentId);
      void this.db.put(hisDeptId, next);
      if (seal) this.audit.appendInTransaction(seal);
      return next;
    });
  }

  /** Inside a write transaction: the parent exists and is not the department or one of its descendants. */
  private checkParent(hisDeptId: string, parentId: string): void {
    let at: string | undefined = parentId;
    for (let depth = 0; at !== undefined; depth += 1) {
      if (at === hisDeptId || depth > MAX_PARENT_DEPTH) {
        throw new YiqianError(
          StaffCodes.DEPARTMENT_CYCLE,
          422,
          { zh: `科室 ${parentId} 不能作为 ${hisDeptId} 的上级（会形成循环）`, en: `department ${parentId} cannot be the parent of ${hisDeptId}: that would make a cycle` },
          { departmentId: hisDeptId, parentId },
        );
      }
      const d = this.db.get(at);
      if (d === undefined) throw departmentNotFound(at, 422, 'parent');
      at = d.parentId;
    }
  }

  async delete(hisDeptId: string, opts: AuditedWrite = {}): Promise<Department | undefined> {
    if (!lookupable(hisDeptId)) return undefined;
    const byDepartment = need(this.tables, 'byDepartment');
    const seal = opts.audit && sealer(opts.audit);
    return this.writer.durable(() => {
      const current = this.db.get(hisDeptId);
      if (current === undefined) return undefined;
      let staff = 0;
      for (const { key } of byDepartment.getRange({ start: [hisDeptId] })) {
        if (key[0] !== hisDeptId) break;
        staff += 1;
      }
      const children = [...this.db.getRange().filter(({ value }) => value.parentId === hisDeptId).map(({ key }) => key)];
      if (staff > 0 || children.length > 0) {
        const why = staff > 0 ? { zh: `仍有 ${staff} 名员工`, en: `${staff} staff member(s) still belong to it` } : { zh: `仍有 ${children.length} 个下级科室`, en: `${children.length} child department(s) still name it as parent` };
        throw new YiqianError(
          StaffCodes.DEPARTMENT_IN_USE,
          409,
          { zh: `科室 ${hisDeptId} 正在使用，不能删除：${why.zh}`, en: `department ${hisDeptId} is in use and cannot be deleted: ${why.en}` },
          { departmentId: hisDeptId, staff, children: children.slice(0, 20) },
        );
      }
      void this.db.remove(hisDeptId);
      if (seal) this.audit.appendInTransaction(seal);
      return current;
    });
  }
}

/** Only the Department fields, so nothing a caller tacked on ends up on disk. */
function copyDepartment(r: Department): Department {
  const out: Department = {
    hisDeptId: checkKey(r.hisDeptId, 'hisDeptId'),
    name: checkKey(r.name, 'department name'),
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
  if (r.code !== undefined) out.code = checkKey(r.code, 'department code');
  if (r.parentId !== undefined) out.parentId = checkKey(r.parentId, 'parentId');
  return out;
}

// ---------------------------------------------------------------------------- staff

export function createStaffRepository(
  dbs: { staff: Database<any, any>; byDepartment: Database<any, any> },
  audit: LmdbAuditStorage,
  writer: Writer,
): StaffRepository {
  return new LmdbStaffRepository(link(writer, { staff: dbs.staff, byDepartment: dbs.byDepartment }), audit, writer);
}

class LmdbStaffRepository implements StaffRepository {
  constructor(
    private readonly tables: Tables,
    private readonly audit: LmdbAuditStorage,
    private readonly writer: Writer,
  ) {}

  private get staff(): Database<StaffRecord, string> {
    return need(this.tables, 'staff');
  }

  private get byDepartment(): Database<StaffStatus, DeptKey> {
    return need(this.tables, 'byDepartment');
  }

  async create(record: StaffRecord, opts: AuditedWrite = {}): Promise<StaffRecord> {
    const rec = copyStaff(record);
    const departments = need(this.tables, 'departments');
    const seal = opts.audit && sealer(opts.audit);
    return this.writer.durable(() => {
      if (this.staff.doesExist(rec.employeeId)) throw staffExists(rec.employeeId);
      if (!departments.doesExist(rec.departmentId)) throw departmentNotFound(rec.departmentId, 422);
      this.write(rec);
      if (seal) this.audit.appendInTransaction(seal);
      return rec;
    });
  }

  async createMany(records: StaffRecord[], opts: AuditedWrite = {}): Promise<{ ok: true } | { ok: false; conflicts: BatchConflict[] }> {
    const recs = records.map(copyStaff);
    const departments = need(this.tables, 'departments');
    const seal = opts.audit && sealer(opts.audit);
    return this.writer.durable(() => {
      const conflicts: BatchConflict[] = [];
      const seen = new Set<string>();
      recs.forEach((r, index) => {
        if (seen.has(r.employeeId)) conflicts.push({ index, employeeId: r.employeeId, code: 'DUPLICATE_IN_BATCH' });
        else if (this.staff.doesExist(r.employeeId)) conflicts.push({ index, employeeId: r.employeeId, code: 'STAFF_EXISTS' });
        else if (!departments.doesExist(r.departmentId)) conflicts.push({ index, employeeId: r.employeeId, code: 'DEPARTMENT_NOT_FOUND' });
        seen.add(r.employeeId);
      });
      if (conflicts.length > 0) return { ok: false as const, conflicts };
      for (const r of recs) this.write(r);
      if (seal) this.audit.appendInTransaction(seal);
      return { ok: true as const };
    });
  }

  async get(employeeId: string): Promise<StaffRecord | undefined> {
    if (!lookupable(employeeId)) return undefined;
    return this.writer.read(() => this.staff.get(employeeId));
  }

  async list(filter: StaffFilter = {}, page: { limit?: number; cursor?: string } = {}): Promise<Page<StaffRecord>> {
    const limit = page.limit ?? DEFAULT_LIMIT;
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIMIT) fail(Codes.BAD_REQUEST, 400, `limit 必须在 1 到 ${MAX_LIMIT} 之间`, `limit must be 1–${MAX_LIMIT}`);
    const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor);
    const wanted = (r: StaffRecord | undefined): r is StaffRecord => r !== undefined && (filter.status === undefined || r.status === filter.status);
    return this.writer.read(() => {
      const found: StaffRecord[] = [];
      if (filter.departmentId !== undefined) {
        const dept = filter.departmentId;
        if (!lookupable(dept)) return { items: [] };
        for (const { key, value } of this.byDepartment.getRange({ start: after === undefined ? [dept] : [dept, after] })) {
          if (key[0] !== dept) break;
          if (after !== undefined && key[1] <= after) continue;
          if (filter.status !== undefined && value !== filter.status) continue;
          const r = this.staff.get(key[1]);
          if (wanted(r)) found.push(r);
          if (found.length > limit) break;
        }
      } else {
        for (const { key, value } of this.staff.getRange(after === undefined ? {} : { start: after })) {
          if (after !== undefined && key <= after) continue;
          if (wanted(value)) found.push(value);
          if (found.length > limit) break;
        }
      }
      if (found.length <= limit) return { items: found };
      const items = found.slice(0, limit);
      return { items, next: encodeCursor(items[items.length - 1].employeeId) };
    });
  }

  async update(employeeId: string, change: (current: StaffRecord) => StaffRecord, opts: AuditedWrite = {}): Promise<StaffRecord> {
    if (!lookupable(employeeId)) throw staffNotFound(String(employeeId).slice(0, 64));
    const departments = need(this.tables, 'departments');
    const seal = opts.audit && sealer(opts.audit);
    return this.writer.durable(() => {
      const current = this.staff.get(employeeId);
      if (current === undefined) throw staffNotFound(employeeId);
      const next = copyStaff(change(structuredClone(current)));
      if (next.employeeId !== employeeId) fail(Codes.BAD_REQUEST, 400, '不能修改工号', 'an employee id cannot be changed');
      if (next.departmentId !== current.departmentId) {
        if (!departments.doesExist(next.departmentId)) throw departmentNotFound(next.departmentId, 422);
        void this.byDepartment.remove([current.departmentId, employeeId]);
      }
      this.write(next);
      if (seal) this.audit.appendInTransaction(seal);
      return next;
    });
  }

  async countByDepartment(): Promise<DepartmentStaffCount[]> {
    return this.writer.read(() => {
      const out: DepartmentStaffCount[] = [];
      for (const { key, value } of this.byDepartment.getRange()) {
        let last = out[out.length - 1];
        if (last === undefined || last.departmentId !== key[0]) {
          last = { departmentId: key[0], active: 0, left: 0 };
          out.push(last);
        }
        last[value === 'left' ? 'left' : 'active'] += 1;
      }
      return out;
    });
  }

  async *all(): AsyncIterable<StaffRecord> {
    let after: string | undefined;
    for (;;) {
      // Batches, so no read transaction stays open across the consumer's awaits.
      const batch = this.writer.read(() => {
        const out: StaffRecord[] = [];
        for (const { key, value } of this.staff.getRange(after === undefined ? {} : { start: after })) {
          if (after !== undefined && key <= after) continue;
          out.push(value);
          if (out.length >= SCAN_BATCH) break;
        }
        return out;
      });
      yield* batch;
      if (batch.length < SCAN_BATCH) return;
      after = batch[batch.length - 1].employeeId;
    }
  }

  /** Inside a write transaction: the record and its department index entry. */
  private write(r: StaffRecord): void {
    void this.staff.put(r.employeeId, r);
    void this.byDepartment.put([r.departmentId, r.employeeId], r.status);
  }
}

function encodeCursor(employeeId: string): string {
  return Buffer.from(JSON.stringify({ after: employeeId }), 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): string {
  try {
    if (typeof cursor !== 'string' || cursor.length > 400) throw new Error('too long');
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { after?: unknown };
    if (lookupable(v.after)) return v.after;
  } catch {
    // fall through
  }
  return fail(Codes.BAD_REQUEST, 400, '分页游标无效', 'invalid pagination cursor');
}

/** Only the StaffRecord fields, so nothing a caller tacked on (a plaintext id!) ends up on disk. */
function copyStaff(r: StaffRecord): StaffRecord {
  if (r.status !== 'active' && r.status !== 'left') fail(Codes.BAD_REQUEST, 400, '员工状态无效', `staff status must be active or left`);
  const out: StaffRecord = {
    employeeId: checkKey(r.employeeId, 'employeeId'),
    name: checkKey(r.name, 'staff name'),
    departmentId: checkKey(r.departmentId, 'departmentId'),
    status: r.status,
    nationalIdSealed: sealedField(r.nationalIdSealed, 'nationalIdSealed'),
    nationalIdIndex: indexField(r.nationalIdIndex, 'nationalIdIndex'),
    piiKeyId: checkKey(r.piiKeyId, 'piiKeyId'),
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
  if (r.titleLevel !== undefined) out.titleLevel = checkKey(r.titleLevel, 'titleLevel');
  if (r.mobileSealed !== undefined || r.mobileIndex !== undefined) {
    out.mobileSealed = sealedField(r.mobileSealed, 'mobileSealed');
    out.mobileIndex = indexField(r.mobileIndex, 'mobileIndex');
  }
  if (r.leftAt !== undefined) out.leftAt = r.leftAt;
  return out;
}

/** A sealed value is base64 of at least header + IV + one block + tag; never a bare 11/18-character string. */
function sealedField(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length < 80 || v.length > 4096 || !/^[A-Za-z0-9+/]+=*$/.test(v)) {
    fail(Codes.INTERNAL, 500, '个人信息字段未加密', `${what} is not a sealed value`);
  }
  return v;
}

function indexField(v: unknown, what: string): string {
  if (typeof v !== 'string' || !/^[0-9a-f]{64}$/.test(v)) fail(Codes.INTERNAL, 500, '盲索引格式错误', `${what} must be 64 hex digits`);
  return v;
}
