// Records and repository interfaces of the staff directory (issue 3, item 6): departments
// keyed by the hospital systems' own department ids, and staff keyed by employee id (工号).
// store/staff-repository.ts implements them on LMDB; services see only these interfaces.
import type { AuditEntry } from '../audit/audit-log.js';

/** A department (科室), identified by the id the hospital's own systems (HIS) give it. */
export interface Department {
  /** The hospital system's department id (科室ID), e.g. "0301" or "NK-01"; the key. */
  hisDeptId: string;
  /** 科室名称, e.g. 心内科. */
  name: string;
  /** Optional further code, e.g. the 诊疗科目代码 of the national classification. */
  code?: string;
  /** hisDeptId of the parent department (e.g. 内科 above 心内科). */
  parentId?: string;
  /** ISO 8601 UTC with milliseconds. */
  createdAt: string;
  updatedAt: string;
}

export type StaffStatus = 'active' | 'left';

/** Personal data that is stored only sealed (SM4 encrypt-then-MAC, pii.ts). */
export type PiiField = 'nationalId' | 'mobile';

/**
 * A member of staff as stored. National id and mobile exist only as sealed values (base64 of
 * sealSm4 output, bound to employee id and field) plus HMAC-SM3 blind indexes for lookup.
 */
export interface StaffRecord {
  /** 工号, unique; the key. */
  employeeId: string;
  name: string;
  /** hisDeptId of an existing department. */
  departmentId: string;
  /** 职称级别, e.g. 正高级, 副高级, 中级, 初级. */
  titleLevel?: string;
  status: StaffStatus;
  /** base64 sealed 居民身份证号 (18 characters when opened). */
  nationalIdSealed: string;
  /** hex HMAC-SM3 blind index of the national id under the key `piiKeyId` (pii.ts). */
  nationalIdIndex: string;
  mobileSealed?: string;
  mobileIndex?: string;
  /** Id of the PII data key that sealed the fields above and keys their blind indexes. */
  piiKeyId: string;
  createdAt: string;
  updatedAt: string;
  /** When the status became 'left'. */
  leftAt?: string;
}

export interface StaffFilter {
  departmentId?: string;
  status?: StaffStatus;
}

export interface Page<T> {
  items: T[];
  /** Opaque cursor for the next page; absent on the last page. */
  next?: string;
}

export interface AuditedWrite {
  audit?: AuditEntry;
}

/** Staff counts of one department, by status. */
export interface DepartmentStaffCount {
  departmentId: string;
  active: number;
  left: number;
}

/** Why a batch insert was refused (nothing of it was written). */
export interface BatchConflict {
  /** Index into the batch. */
  index: number;
  employeeId: string;
  code: 'STAFF_EXISTS' | 'DEPARTMENT_NOT_FOUND' | 'DUPLICATE_IN_BATCH';
}

export interface DepartmentRepository {
  /** DEPARTMENT_EXISTS (409); DEPARTMENT_NOT_FOUND (422) for an unknown parent. Durable with its audit entry. */
  create(record: Department, opts?: AuditedWrite): Promise<Department>;
  get(hisDeptId: string): Promise<Department | undefined>;
  /** In hisDeptId order. */
  list(): Promise<Department[]>;
  /**
   * Atomic read-modify-write: `change` sees the current record and returns the new one (same
   * hisDeptId), or throws a YiqianError to refuse. DEPARTMENT_NOT_FOUND (404) when there is
   * none; a new parent must exist and must not make a cycle (DEPARTMENT_CYCLE, 422).
   */
  update(hisDeptId: string, change: (current: Department) => Department, opts?: AuditedWrite): Promise<Department>;
  /**
   * Removes it; DEPARTMENT_IN_USE (409) while a member of staff (active or left) or a child
   * department references it — checked in the same transaction. The deleted record, or
   * undefined when there was none (then nothing is written).
   */
  delete(hisDeptId: string, opts?: AuditedWrite): Promise<Department | undefined>;
}

export interface StaffRepository {
  /** STAFF_EXISTS (409), DEPARTMENT_NOT_FOUND (422). Durable with its audit entry. */
  create(record: StaffRecord, opts?: AuditedWrite): Promise<StaffRecord>;
  /**
   * All or nothing, in one durable transaction with one audit entry: either every record is
   * written, or none and the conflicts found inside the transaction are returned.
   */
  createMany(records: StaffRecord[], opts?: AuditedWrite): Promise<{ ok: true } | { ok: false; conflicts: BatchConflict[] }>;
  get(employeeId: string): Promise<StaffRecord | undefined>;
  /** In employeeId order; limit default 50, max 500. */
  list(filter?: StaffFilter, page?: { limit?: number; cursor?: string }): Promise<Page<StaffRecord>>;
  /**
   * Atomic read-modify-write (same employeeId); `change` may throw a YiqianError to refuse.
   * STAFF_NOT_FOUND (404) when there is none; DEPARTMENT_NOT_FOUND (422) for a new department
   * that does not exist.
   */
  update(employeeId: string, change: (current: StaffRecord) => StaffRecord, opts?: AuditedWrite): Promise<StaffRecord>;
  /** Staff counts per department (from the department index; departments without staff are absent). */
  countByDepartment(): Promise<DepartmentStaffCount[]>;
  /** Streams every record in employeeId order (blind-index lookups, exports); read-only. */
  all(): AsyncIterable<StaffRecord>;
}
