// Stable codes of the staff directory (errors.ts: capability codes live with their code). The
// same codes name the reasons a CSV row is rejected, so an API client and an import report
// speak one language.
import { YiqianError } from '../errors.js';

export const StaffCodes = {
  DEPARTMENT_EXISTS: 'DEPARTMENT_EXISTS',
  DEPARTMENT_NOT_FOUND: 'DEPARTMENT_NOT_FOUND',
  DEPARTMENT_IN_USE: 'DEPARTMENT_IN_USE',
  DEPARTMENT_CYCLE: 'DEPARTMENT_CYCLE',
  STAFF_EXISTS: 'STAFF_EXISTS',
  STAFF_NOT_FOUND: 'STAFF_NOT_FOUND',
  STAFF_UPDATE_CONFLICT: 'STAFF_UPDATE_CONFLICT',
  // field validation (API 400, CSV row reasons)
  MISSING_FIELD: 'MISSING_FIELD',
  FIELD_INVALID: 'FIELD_INVALID',
  EMPLOYEE_ID_INVALID: 'EMPLOYEE_ID_INVALID',
  DEPARTMENT_ID_INVALID: 'DEPARTMENT_ID_INVALID',
  NATIONAL_ID_INVALID: 'NATIONAL_ID_INVALID',
  NATIONAL_ID_CHECKSUM: 'NATIONAL_ID_CHECKSUM',
  NATIONAL_ID_LEGACY: 'NATIONAL_ID_LEGACY',
  MOBILE_INVALID: 'MOBILE_INVALID',
  // CSV import
  DUPLICATE_IN_FILE: 'DUPLICATE_IN_FILE',
  ROW_MALFORMED: 'ROW_MALFORMED',
  IMPORT_REJECTED: 'IMPORT_REJECTED',
  IMPORT_BAD_FILE: 'IMPORT_BAD_FILE',
  IMPORT_TOO_LARGE: 'IMPORT_TOO_LARGE',
  // PII keys
  PII_KEY_UNAVAILABLE: 'PII_KEY_UNAVAILABLE',
} as const;

export type StaffCode = (typeof StaffCodes)[keyof typeof StaffCodes];

export function departmentNotFound(hisDeptId: string, status: 404 | 422, role: 'department' | 'parent' = 'department'): YiqianError {
  const zhRole = role === 'parent' ? '上级科室' : '科室';
  return new YiqianError(
    StaffCodes.DEPARTMENT_NOT_FOUND,
    status,
    { zh: `${zhRole} ${hisDeptId} 不存在`, en: `${role === 'parent' ? 'parent department' : 'department'} ${hisDeptId} does not exist` },
    { departmentId: hisDeptId },
  );
}

export function staffNotFound(employeeId: string): YiqianError {
  return new YiqianError(StaffCodes.STAFF_NOT_FOUND, 404, { zh: `工号 ${employeeId} 不存在`, en: `no staff member with employee id ${employeeId}` }, { employeeId });
}

export function staffExists(employeeId: string): YiqianError {
  return new YiqianError(StaffCodes.STAFF_EXISTS, 409, { zh: `工号 ${employeeId} 已存在`, en: `employee id ${employeeId} already exists` }, { employeeId });
}
