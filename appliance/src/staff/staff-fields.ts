// Field rules of the staff directory, shared by the JSON API and the CSV import: each check
// returns the normalised value or a problem (code + zh/en text) — never throws — so an import
// can collect every problem of a row, and the API turns the first one into a 400.
//
// 居民身份证号 (GB 11643-1999): 18 characters — 6-digit address code, 8-digit birth date,
// 3-digit sequence, check character from ISO 7064 MOD 11-2 (0–9 or X). 15-digit
// first-generation numbers are refused (NATIONAL_ID_LEGACY): they stopped being valid on
// 2013-01-01 and have no check digit, so a typo cannot be caught; the hospital converts them
// (every holder has an 18-digit number today). Accepted address prefixes: the mainland
// province-level codes, 71/81/82/83 (港澳台居民居住证 use 81/82/83), and 9 (the 2023 foreign
// permanent-resident ID card, same length and check digit).
import { YiqianError } from '../errors.js';
import { StaffCodes, type StaffCode } from './staff-errors.js';
import type { StaffStatus } from './types.js';

export interface FieldProblem {
  code: StaffCode;
  field: string;
  zh: string;
  en: string;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; problem: FieldProblem };

const ok = <T>(value: T): Checked<T> => ({ ok: true, value });
const bad = (code: StaffCode, field: string, zh: string, en: string): Checked<never> => ({ ok: false, problem: { code, field, zh, en } });

/** The problem as an API error (400). */
export function problemError(p: FieldProblem): YiqianError {
  return new YiqianError(p.code, 400, { zh: p.zh, en: p.en }, { field: p.field });
}

// Control, format (bidi overrides, zero-width) and separator characters other than the space.
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

function text(field: string, zhName: string, raw: unknown, max: number): Checked<string> {
  if (raw === undefined || raw === null || (typeof raw === 'string' && raw.trim() === '')) {
    return bad(StaffCodes.MISSING_FIELD, field, `缺少${zhName}`, `${field} is missing`);
  }
  if (typeof raw !== 'string') return bad(StaffCodes.FIELD_INVALID, field, `${zhName}必须是字符串`, `${field} must be a string`);
  const v = raw.trim().normalize('NFC');
  if ([...v].length > max) return bad(StaffCodes.FIELD_INVALID, field, `${zhName}最长 ${max} 个字符`, `${field} is longer than ${max} characters`);
  if (UNPRINTABLE.test(v)) return bad(StaffCodes.FIELD_INVALID, field, `${zhName}含有不可打印字符`, `${field} contains control or invisible characters`);
  return ok(v);
}

/** 姓名: 1–64 characters (·, spaces and Latin letters allowed for minority and foreign names). */
export function checkName(raw: unknown): Checked<string> {
  return text('name', '姓名', raw, 64);
}

const ID_CHARS = /^[A-Za-z0-9._-]{1,32}$/;

/** 工号: 1–32 of [A-Za-z0-9._-], compared exactly (case-sensitive). */
export function checkEmployeeId(raw: unknown): Checked<string> {
  const t = text('employeeId', '工号', raw, 32);
  if (!t.ok) return t;
  if (!ID_CHARS.test(t.value)) return bad(StaffCodes.EMPLOYEE_ID_INVALID, 'employeeId', '工号只能包含字母、数字和 . _ -（最长 32 个字符）', 'employee id must be 1–32 of A–Z a–z 0–9 . _ -');
  return t;
}

const DEPT_CHARS = /^[A-Za-z0-9._-]{1,64}$/;

/** 科室ID as the hospital's systems spell it: 1–64 of [A-Za-z0-9._-]. */
export function checkDepartmentId(raw: unknown, field = 'departmentId'): Checked<string> {
  const t = text(field, '科室ID', raw, 64);
  if (!t.ok) return t;
  if (!DEPT_CHARS.test(t.value)) return bad(StaffCodes.DEPARTMENT_ID_INVALID, field, '科室ID只能包含字母、数字和 . _ -（最长 64 个字符）', `${field} must be 1–64 of A–Z a–z 0–9 . _ -`);
  return t;
}

export function checkDepartmentName(raw: unknown): Checked<string> {
  return text('name', '科室名称', raw, 64);
}

export function checkDepartmentCode(raw: unknown): Checked<string> {
  return text('code', '科室编码', raw, 32);
}

/** 职称级别: free text, 1–32 characters (hospitals name levels differently: 正高级, 副主任医师 …). */
export function checkTitleLevel(raw: unknown): Checked<string> {
  return text('titleLevel', '职称级别', raw, 32);
}

export function checkStatus(raw: unknown): Checked<StaffStatus> {
  return raw === 'active' || raw === 'left' ? ok(raw) : bad(StaffCodes.FIELD_INVALID, 'status', '状态必须是 active 或 left', 'status must be active or left');
}

const PROVINCES = new Set([
  '11', '12', '13', '14', '15', '21', '22', '23', '31', '32', '33', '34', '35', '36', '37',
  '41', '42', '43', '44', '45', '46', '50', '51', '52', '53', '54', '61', '62', '63', '64', '65',
  '71', '81', '82', '83',
]);
const WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK_CHARS = '10X98765432';

/** ISO 7064 MOD 11-2 check character of the first 17 digits (GB 11643-1999 §5.2). */
export function nationalIdCheckChar(first17: string): string {
  let sum = 0;
  for (let i = 0; i < 17; i += 1) sum += Number(first17[i]) * WEIGHTS[i];
  return CHECK_CHARS[sum % 11];
}

/** 居民身份证号: 18 characters, valid address prefix, real birth date, correct check character; 'x' → 'X'. */
export function checkNationalId(raw: unknown, today: Date = new Date()): Checked<string> {
  const t = text('nationalId', '身份证号', raw, 64);
  if (!t.ok) return t;
  const v = t.value.replace(/\s+/g, '').toUpperCase();
  const field = 'nationalId';
  if (/^\d{15}$/.test(v)) {
    return bad(StaffCodes.NATIONAL_ID_LEGACY, field, '不接受 15 位旧身份证号，请提供 18 位号码', '15-digit first-generation ID numbers are not accepted; give the 18-digit number');
  }
  if (/^\d(\.\d+)?E\+\d+$/.test(v)) {
    return bad(StaffCodes.NATIONAL_ID_INVALID, field, '身份证号被表格软件转成了科学计数法，请把该列设为文本后重新导出', 'the ID number was turned into scientific notation by a spreadsheet; format the column as text and export again');
  }
  if (!/^\d{17}[\dX]$/.test(v)) return bad(StaffCodes.NATIONAL_ID_INVALID, field, '身份证号必须是 17 位数字加 1 位校验码（数字或 X）', 'a national ID number is 17 digits and a check character (digit or X)');
  if (!PROVINCES.has(v.slice(0, 2)) && v[0] !== '9') return bad(StaffCodes.NATIONAL_ID_INVALID, field, '身份证号的地址码无效', 'the address code of the ID number is not valid');
  const y = Number(v.slice(6, 10));
  const m = Number(v.slice(10, 12));
  const d = Number(v.slice(12, 14));
  const birth = new Date(Date.UTC(y, m - 1, d));
  if (y < 1800 || birth.getUTCFullYear() !== y || birth.getUTCMonth() !== m - 1 || birth.getUTCDate() !== d || birth.getTime() > today.getTime()) {
    return bad(StaffCodes.NATIONAL_ID_INVALID, field, '身份证号中的出生日期无效', 'the birth date in the ID number is not a valid date');
  }
  if (nationalIdCheckChar(v) !== v[17]) return bad(StaffCodes.NATIONAL_ID_CHECKSUM, field, '身份证号校验码错误（可能有输错的数字）', 'the check character of the ID number is wrong (a digit is probably mistyped)');
  return ok(v);
}

/** 手机号: mainland mobile, 11 digits 1[3-9]…; spaces, hyphens and a +86/0086/86 prefix are dropped. */
export function checkMobile(raw: unknown): Checked<string> {
  const t = text('mobile', '手机号', raw, 32);
  if (!t.ok) return t;
  let v = t.value.replace(/[\s-]/g, '');
  const m = /^(?:\+86|0086|86)(1\d{10})$/.exec(v);
  if (m) v = m[1];
  if (!/^1[3-9]\d{9}$/.test(v)) return bad(StaffCodes.MOBILE_INVALID, 'mobile', '手机号必须是 11 位中国大陆手机号码', 'mobile must be an 11-digit mainland China mobile number');
  return ok(v);
}

/** Absent (undefined, null, '') → undefined; else the check. */
export function optional<T>(raw: unknown, check: (raw: unknown) => Checked<T>): Checked<T | undefined> {
  if (raw === undefined || raw === null || (typeof raw === 'string' && raw.trim() === '')) return ok(undefined);
  return check(raw);
}
