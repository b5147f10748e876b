// Staff (医护人员) of the hospital: create, read masked, update, mark left, reveal with an
// audited reason, look up by national id or mobile through blind indexes, and import CSV
// files all or nothing. National id and mobile leave this service in plaintext only from
// reveal(), after its audit record is durable.
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { AuditLog } from '../audit/audit-log.js';
import { Codes, YiqianError, fail } from '../errors.js';
import { nowIso } from '../store/ids.js';
import { readStaffCsv, reason, rejectRow, type FileFacts, type ImportLimits, type RowResult } from './csv-import.js';
import { objectWith } from './department-service.js';
import { maskMobile, maskNationalId, type PiiProtector } from './pii.js';
import { StaffCodes, staffNotFound } from './staff-errors.js';
import { checkDepartmentId, checkEmployeeId, checkMobile, checkName, checkNationalId, checkStatus, checkTitleLevel, optional, problemError, type Checked } from './staff-fields.js';
import type { DepartmentRepository, Page, PiiField, StaffFilter, StaffRecord, StaffRepository, StaffStatus } from './types.js';

/** A member of staff as every API and CLI shows them: national id and mobile masked. */
export interface StaffView {
  employeeId: string;
  name: string;
  departmentId: string;
  titleLevel?: string;
  status: StaffStatus;
  /** e.g. 110***********1234 */
  nationalId: string;
  /** e.g. 138****5678 */
  mobile?: string;
  createdAt: string;
  updatedAt: string;
  leftAt?: string;
}

export interface Revealed {
  employeeId: string;
  nationalId?: string;
  mobile?: string;
}

export interface ImportReport {
  file: Omit<FileFacts, 'columns'> & { columns: string[] };
  /** Data rows in the file (blank rows not counted). */
  rows: number;
  accepted: number;
  rejected: number;
  /** All rows or none (all or nothing per file). */
  imported: number;
  results: RowResult[];
}

export interface StaffService {
  create(input: unknown, actor: string): Promise<StaffView>;
  /** STAFF_NOT_FOUND (404). */
  get(employeeId: string): Promise<StaffView>;
  list(filter?: StaffFilter, page?: { limit?: number; cursor?: string }): Promise<Page<StaffView>>;
  update(employeeId: string, patch: unknown, actor: string): Promise<StaffView>;
  /** Marks a member of staff as having left (离职); their record and department link stay. */
  leave(employeeId: string, actor: string): Promise<StaffView>;
  reinstate(employeeId: string, actor: string): Promise<StaffView>;
  /** Plaintext national id / mobile; `reason` 2–200 characters; audited (actor, reason, fields) before it returns. */
  reveal(employeeId: string, request: unknown, actor: string): Promise<Revealed>;
  /** Staff with this national id or mobile (exactly one of them), via blind index. */
  lookup(query: unknown, actor: string): Promise<StaffView[]>;
  /** 200 with the report, or IMPORT_REJECTED (422) carrying it in `detail.report`; nothing is imported then. */
  importCsv(bytes: Buffer, opts: { charset?: string; actor: string }): Promise<ImportReport>;
}

export interface StaffDeps {
  staff: StaffRepository;
  departments: DepartmentRepository;
  audit: AuditLog;
  pii: PiiProtector;
  importLimits?: Partial<ImportLimits>;
}

const PII_FIELDS: readonly PiiField[] = ['nationalId', 'mobile'];
const YIELD_EVERY = 500;

export function createStaffService(deps: StaffDeps): StaffService {
  const { staff, pii } = deps;

  async function view(r: StaffRecord): Promise<StaffView> {
    const nationalId = await pii.open(r, 'nationalId');
    const mobile = await pii.open(r, 'mobile');
    const v: StaffView = {
      employeeId: r.employeeId,
      name: r.name,
      departmentId: r.departmentId,
      status: r.status,
      nationalId: maskNationalId(nationalId ?? ''),
      createdAt: r.createdAt,
      updatedAt: r.updatedAt,
    };
    if (r.titleLevel !== undefined) v.titleLevel = r.titleLevel;
    if (mobile !== undefined) v.mobile = maskMobile(mobile);
    if (r.leftAt !== undefined) v.leftAt = r.leftAt;
    return v;
  }

  async function mustGet(employeeId: string): Promise<StaffRecord> {
    const r = await staff.get(employeeId);
    if (!r) throw staffNotFound(String(employeeId).slice(0, 64));
    return r;
  }

  async function setStatus(employeeId: string, status: StaffStatus, actor: string): Promise<StaffView> {
    const action = status === 'left' ? 'staff.leave' : 'staff.reinstate';
    const r = await staff.update(
      employeeId,
      (cur) => {
        if (cur.status === status) return cur;
        const next: StaffRecord = { ...cur, status, updatedAt: nowIso() };
        if (status === 'left') next.leftAt = next.updatedAt;
        else delete next.leftAt;
        return next;
      },
      { audit: { actor, action, target: String(employeeId).slice(0, 64), outcome: 'ok', detail: { status } } },
    );
    return view(r);
  }

  return {
    async create(input, actor) {
      const body = objectWith(input, ['name', 'employeeId', 'departmentId', 'titleLevel', 'mobile', 'nationalId']);
      const employeeId = must(checkEmployeeId(body.employeeId));
      const name = must(checkName(body.name));
      const departmentId = must(checkDepartmentId(body.departmentId));
      const titleLevel = must(optional(body.titleLevel, checkTitleLevel));
      const mobile = must(optional(body.mobile, checkMobile));
      const nationalId = must(checkNationalId(body.nationalId));
      const now = nowIso();
      const rec: StaffRecord = { employeeId, name, departmentId, status: 'active', ...(await pii.seal(employeeId, { nationalId, mobile })), createdAt: now, updatedAt: now };
      if (titleLevel !== undefined) rec.titleLevel = titleLevel;
      const saved = await staff.create(rec, { audit: { actor, action: 'staff.create', target: employeeId, outcome: 'ok', detail: { departmentId } } });
      return view(saved);
    },

    async get(employeeId) {
      return view(await mustGet(employeeId));
    },

    async list(filter = {}, page = {}) {
      const f: StaffFilter = {};
      if (filter.departmentId !== undefined) f.departmentId = must(checkDepartmentId(filter.departmentId));
      if (filter.status !== undefined) f.status = must(checkStatus(filter.status));
      const p = await staff.list(f, page);
      const items: StaffView[] = [];
      for (const r of p.items) items.push(await view(r));
      return p.next === undefined ? { items } : { items, next: p.next };
    },

    async update(employeeId, patch, actor) {
      const body = objectWith(patch, ['name', 'departmentId', 'titleLevel', 'mobile', 'nationalId']);
      const changed = Object.keys(body).filter((k) => body[k] !== undefined);
      if (changed.length === 0) fail(Codes.BAD_REQUEST, 400, '没有要修改的字段', 'nothing to change (name, departmentId, titleLevel, mobile, nationalId)');
      const name = body.name === undefined ? undefined : must(checkName(body.name));
      const departmentId = body.departmentId === undefined ? undefined : must(checkDepartmentId(body.departmentId));
      const titleLevel = body.titleLevel === undefined || body.titleLevel === null ? body.titleLevel : must(checkTitleLevel(body.titleLevel));
      const mobile = body.mobile === undefined || body.mobile === null ? body.mobile : must(checkMobile(body.mobile));
      if (body.nationalId === null) fail(StaffCodes.MISSING_FIELD, 400, '身份证号不能删除', 'nationalId cannot be removed');
      const nationalId = body.nationalId === undefined ? undefined : must(checkNationalId(body.nationalId));

      // PII changes re-seal both fields under the current data key (one key per record keeps
      // its blind indexes consistent). The plaintext is read outside the write transaction; the
      // update refuses if the sealed values changed meanwhile, so a concurrent edit is not lost.
      let sealed: Awaited<ReturnType<PiiProtector['seal']>> | undefined;
      let basis: Pick<StaffRecord, 'nationalIdSealed' | 'mobileSealed'> | undefined;
      if (mobile !== undefined || nationalId !== undefined) {
        const cur = await mustGet(employeeId);
        basis = { nationalIdSealed: cur.nationalIdSealed, mobileSealed: cur.mobileSealed };
        const nid = nationalId ?? (await pii.open(cur, 'nationalId'))!;
        const mob = mobile === null ? undefined : (mobile ?? (await pii.open(cur, 'mobile')));
        sealed = await pii.seal(cur.employeeId, { nationalId: nid, mobile: mob });
      }
      const r = await staff.update(
        employeeId,
        (cur) => {
          if (basis && (cur.nationalIdSealed !== basis.nationalIdSealed || cur.mobileSealed !== basis.mobileSealed)) {
            fail(StaffCodes.STAFF_UPDATE_CONFLICT, 409, '该员工的信息刚被修改，请重试', 'the record changed while this update was prepared; retry', { employeeId });
          }
          const next: StaffRecord = { ...cur, updatedAt: nowIso() };
          if (name !== undefined) next.name = name;
          if (departmentId !== undefined) next.departmentId = departmentId;
          if (titleLevel === null) delete next.titleLevel;
          else if (titleLevel !== undefined) next.titleLevel = titleLevel;
          if (sealed) {
            delete next.mobileSealed;
            delete next.mobileIndex;
            Object.assign(next, sealed);
          }
          return next;
        },
        { audit: { actor, action: 'staff.update', target: String(employeeId).slice(0, 64), outcome: 'ok', detail: { fields: changed } } },
      );
      return view(r);
    },

    leave: (employeeId, actor) => setStatus(employeeId, 'left', actor),
    reinstate: (employeeId, actor) => setStatus(employeeId, 'active', actor),

    async reveal(employeeId, request, actor) {
      const body = objectWith(request, ['reason', 'fields']);
      const why = revealReason(body.reason);
      const fields = revealFields(body.fields);
      const r = await mustGet(employeeId);
      const out: Revealed = { employeeId: r.employeeId };
      const shown: PiiField[] = [];
      for (const f of fields) {
        const v = await pii.open(r, f);
        if (v !== undefined) {
          out[f] = v;
          shown.push(f);
        }
      }
      // Durable before a single plaintext character leaves: no audit record, no reveal.
      await deps.audit.append({ actor, action: 'staff.reveal', target: r.employeeId, outcome: 'ok', detail: { reason: why, fields: shown } });
      return out;
    },

    async lookup(query, actor) {
      const body = objectWith(query, ['nationalId', 'mobile']);
      const given = PII_FIELDS.filter((f) => body[f] !== undefined && body[f] !== null);
      if (given.length !== 1) fail(Codes.BAD_REQUEST, 400, '请只给出 nationalId 或 mobile 之一', 'give exactly one of nationalId or mobile');
      const field = given[0];
      const value = must(field === 'nationalId' ? checkNationalId(body.nationalId) : checkMobile(body.mobile));
      const indexes = new Map<string, string>();
      const found: StaffView[] = [];
      // A scan: at hospital scale (thousands of staff) this is milliseconds; indexes under each data key in use.
      for await (const r of staff.all()) {
        let idx = indexes.get(r.piiKeyId);
        if (idx === undefined) {
          idx = (await pii.blindIndexes(field, value, [r.piiKeyId])).get(r.piiKeyId)!;
          indexes.set(r.piiKeyId, idx);
        }
        if ((field === 'nationalId' ? r.nationalIdIndex : r.mobileIndex) === idx) found.push(await view(r));
      }
      await deps.audit.append({ actor, action: 'staff.lookup', outcome: 'ok', detail: { field, matches: found.length } });
      return found;
    },

    async importCsv(bytes, opts) {
      const read = readStaffCsv(bytes, { charset: opts.charset, limits: deps.importLimits });
      const known = new Set((await deps.departments.list()).map((d) => d.hisDeptId));
      for (const [i, row] of read.rows.entries()) {
        if (i % YIELD_EVERY === YIELD_EVERY - 1) await nextTurn(); // a 10,000-row file must not hold the event loop
        const input = row.input;
        if (!input) continue;
        if (!known.has(input.departmentId)) {
          rejectRow(row, reason(StaffCodes.DEPARTMENT_NOT_FOUND, 'departmentId', `科室 ${input.departmentId} 不存在（请先创建科室）`, `department ${input.departmentId} does not exist (create it first)`));
        } else if (await staff.get(input.employeeId)) {
          rejectRow(row, reason(StaffCodes.STAFF_EXISTS, 'employeeId', `工号 ${input.employeeId} 已存在`, `employee id ${input.employeeId} already exists`));
        }
      }
      const report = (imported: boolean): ImportReport => {
        const accepted = read.rows.filter((r) => r.result.status === 'accepted').length;
        return {
          file: { ...read.file },
          rows: read.rows.length,
          accepted,
          rejected: read.rows.length - accepted,
          imported: imported ? read.rows.length : 0,
          results: read.rows.map((r) => r.result),
        };
      };
      const facts = { rows: read.rows.length, encoding: read.file.encoding, bytes: read.file.bytes, sm3: read.file.sm3 };
      const refuse = async (): Promise<never> => {
        const rep = report(false);
        await deps.audit.append({ actor: opts.actor, action: 'staff.import', outcome: 'denied', detail: { ...facts, rejected: rep.rejected } });
        throw new YiqianError(
          StaffCodes.IMPORT_REJECTED,
          422,
          { zh: `导入被拒绝：${rep.rejected} 行有错误，未导入任何数据（请修正后重新导入整个文件）`, en: `import rejected: ${rep.rejected} row(s) have errors; nothing was imported (fix them and import the whole file again)` },
          { report: rep },
        );
      };
      if (read.rows.some((r) => !r.input)) return refuse();

      const now = nowIso();
      const records: StaffRecord[] = [];
      for (const [i, { input }] of read.rows.entries()) {
        if (i % YIELD_EVERY === YIELD_EVERY - 1) await nextTurn();
        const r = input!;
        const rec: StaffRecord = { employeeId: r.employeeId, name: r.name, departmentId: r.departmentId, status: 'active', ...(await pii.seal(r.employeeId, { nationalId: r.nationalId, mobile: r.mobile })), createdAt: now, updatedAt: now };
        if (r.titleLevel !== undefined) rec.titleLevel = r.titleLevel;
        records.push(rec);
      }
      const outcome = await staff.createMany(records, { audit: { actor: opts.actor, action: 'staff.import', outcome: 'ok', detail: facts } });
      if (!outcome.ok) {
        // Something changed between the checks above and the transaction (a concurrent create or delete).
        for (const c of outcome.conflicts) {
          const row = read.rows[c.index];
          const dept = records[c.index].departmentId;
          if (c.code === 'DEPARTMENT_NOT_FOUND') rejectRow(row, reason(StaffCodes.DEPARTMENT_NOT_FOUND, 'departmentId', `科室 ${dept} 已不存在`, `department ${dept} no longer exists`));
          else rejectRow(row, reason(StaffCodes.STAFF_EXISTS, 'employeeId', `工号 ${c.employeeId} 已存在`, `employee id ${c.employeeId} already exists`));
        }
        return refuse();
      }
      return report(true);
    },
  };
}

function must<T>(c: Checked<T>): T {
  if (!c.ok) throw problemError(c.problem);
  return c.value;
}

const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

function revealReason(raw: unknown): string {
  const v = typeof raw === 'string' ? raw.trim() : '';
  const n = [...v].length;
  if (n < 2 || n > 200 || UNPRINTABLE.test(v)) {
    const code = raw === undefined || raw === null || v === '' ? StaffCodes.MISSING_FIELD : StaffCodes.FIELD_INVALID;
    fail(code, 400, '查看明文必须填写原因（2–200 个字符）', 'a reveal needs a reason of 2–200 printable characters', { field: 'reason' });
  }
  return v;
}

function revealFields(raw: unknown): PiiField[] {
  if (raw === undefined || raw === null) return [...PII_FIELDS];
  if (!Array.isArray(raw) || raw.length === 0 || raw.some((f) => !PII_FIELDS.includes(f as PiiField))) {
    fail(StaffCodes.FIELD_INVALID, 400, 'fields 必须是 nationalId、mobile 组成的非空数组', 'fields must be a non-empty array of nationalId, mobile', { field: 'fields' });
  }
  return [...new Set(raw as PiiField[])];
}
