// Reading a staff CSV file (issue 3, item 6): bytes → text → RFC 4180 records → header →
// checked rows with a per-row verdict. Pure: no store, no keys. staff-service.ts adds the
// checks that need the directory (department exists, employee id free) and commits.
//
// Encoding: a UTF-8 BOM → UTF-8; else bytes that are valid UTF-8 → UTF-8; else GBK (which
// WHATWG decodes as GB18030, a superset); anything else → IMPORT_BAD_FILE. A `charset` given
// by the caller (Content-Type parameter, CLI --charset) wins over detection. UTF-16 (what
// Excel calls "Unicode text") is recognised by its BOM and refused with a hint.
//
// Rows: `row` is the record number with the header as row 1, so it matches the row number a
// spreadsheet shows; `line` is the physical line where the record starts (they differ only
// when a quoted field spans lines). Fields are trimmed; blank records are skipped.
import { createHash } from 'node:crypto';
import { Codes, YiqianError } from '../errors.js';
import { StaffCodes, type StaffCode } from './staff-errors.js';
import { checkDepartmentId, checkEmployeeId, checkMobile, checkName, checkNationalId, checkTitleLevel, optional, type Checked, type FieldProblem } from './staff-fields.js';

export interface ImportLimits {
  /** Largest file accepted, bytes. */
  maxBytes: number;
  /** Most data rows (records after the header, blank ones not counted). */
  maxRows: number;
}

export const DEFAULT_IMPORT_LIMITS: ImportLimits = { maxBytes: 1024 * 1024, maxRows: 10_000 };

export type CsvEncoding = 'utf-8' | 'gbk';

export type StaffColumn = 'name' | 'employeeId' | 'departmentId' | 'titleLevel' | 'mobile' | 'nationalId';

/** Header names per column, compared after trimming, lower-casing and dropping spaces, '_' and '-'. */
export const COLUMN_NAMES: Record<StaffColumn, readonly string[]> = {
  name: ['姓名', '员工姓名', 'name'],
  employeeId: ['工号', '员工工号', '职工号', '员工号', 'employeeid'],
  departmentId: ['科室id', '科室编号', 'departmentid', 'hisdeptid'],
  titleLevel: ['职称级别', '职称', 'titlelevel'],
  mobile: ['手机号', '手机号码', '手机', 'mobile'],
  nationalId: ['身份证号', '身份证号码', '居民身份证号', 'nationalid'],
};

const REQUIRED: readonly StaffColumn[] = ['name', 'employeeId', 'departmentId', 'nationalId'];

/** A row whose fields all passed their checks. */
export interface StaffRowInput {
  name: string;
  employeeId: string;
  departmentId: string;
  titleLevel?: string;
  mobile?: string;
  nationalId: string;
}

export interface RowReason {
  code: StaffCode;
  field?: string;
  message: { 'zh-CN': string; en: string };
}

export interface RowResult {
  row: number;
  line: number;
  /** As given in the file (trimmed, at most 64 characters), when there was one. */
  employeeId?: string;
  status: 'accepted' | 'rejected';
  reasons?: RowReason[];
}

export interface FileFacts {
  encoding: CsvEncoding;
  bom: boolean;
  bytes: number;
  /** SM3 of the file as received, hex (identifies the file in the audit log). */
  sm3: string;
  /** Columns found, in file order. */
  columns: StaffColumn[];
}

export interface ReadRow {
  result: RowResult;
  /** Present when every field passed (the result is then 'accepted' so far). */
  input?: StaffRowInput;
}

export interface ReadFile {
  file: FileFacts;
  rows: ReadRow[];
}

const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);
const utf8Fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
const gbkFatal = new TextDecoder('gbk', { fatal: true });
const CHARSETS: Record<string, CsvEncoding> = { 'utf-8': 'utf-8', utf8: 'utf-8', gbk: 'gbk', gb2312: 'gbk', gb18030: 'gbk', 'x-gbk': 'gbk', cp936: 'gbk' };

export function badFile(zh: string, en: string, detail?: Record<string, unknown>): YiqianError {
  return new YiqianError(StaffCodes.IMPORT_BAD_FILE, 400, { zh: `导入文件无效：${zh}`, en: `import file rejected: ${en}` }, detail);
}

/** Bytes → text, by BOM, by validity, or by the caller's charset. */
export function decodeCsv(bytes: Buffer, charset?: string): { text: string; encoding: CsvEncoding; bom: boolean } {
  if (bytes.length >= 2 && ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff))) {
    throw badFile('文件是 UTF-16 编码，请另存为“CSV UTF-8”或 GBK 编码的 CSV', 'the file is UTF-16; save it as "CSV UTF-8" or as GBK CSV', { encoding: 'utf-16' });
  }
  const bom = bytes.subarray(0, 3).equals(UTF8_BOM);
  let encoding: CsvEncoding;
  if (charset !== undefined && charset !== '') {
    const named = CHARSETS[charset.trim().toLowerCase()];
    if (!named) {
      throw new YiqianError(Codes.UNSUPPORTED_MEDIA_TYPE, 415, { zh: `不支持的字符集 ${charset.slice(0, 40)}（支持 UTF-8、GBK）`, en: `unsupported charset ${charset.slice(0, 40)} (UTF-8 and GBK are)` }, { charset: charset.slice(0, 40), accepted: ['utf-8', 'gbk'] });
    }
    encoding = named;
  } else if (bom) {
    encoding = 'utf-8';
  } else {
    encoding = decodes(utf8Fatal, bytes) ? 'utf-8' : 'gbk';
  }
  let text: string;
  try {
    // 0xFF never occurs in GBK/GB18030, but this decoder drops it silently instead of failing.
    if (encoding === 'gbk' && bytes.includes(0xff)) throw new Error('0xFF byte');
    text = (encoding === 'utf-8' ? utf8Fatal : gbkFatal).decode(bytes);
  } catch {
    throw charset
      ? badFile(`文件不是有效的 ${encoding.toUpperCase()} 编码（按 Content-Type 的 charset 解码）`, `the file is not valid ${encoding.toUpperCase()} (the charset given with it)`, { encoding })
      : badFile('文件既不是 UTF-8 也不是 GBK 编码', 'the file is neither UTF-8 nor GBK', { encoding: 'unknown' });
  }
  if (encoding === 'gbk' && text.startsWith('\ufeff')) text = text.slice(1);
  if (hasControlCharacters(text)) {
    throw badFile('文件含有控制字符，不是文本文件（是否上传了 Excel 的 .xlsx 文件？请另存为 CSV）', 'the file contains control characters and is not text (an .xlsx workbook? save it as CSV)', { encoding });
  }
  return { text, encoding, bom };
}

/** C0 controls other than TAB, LF, CR, and DEL: text files do not have them, binary files do. */
function hasControlCharacters(text: string): boolean {
  for (let i = 0; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) || c === 0x7f) return true;
  }
  return false;
}

function decodes(d: TextDecoder, bytes: Buffer): boolean {
  try {
    d.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

export interface CsvRecord {
  row: number;
  line: number;
  fields: string[];
  /** Why the record breaks RFC 4180 (first problem only). */
  malformed?: string;
}

/**
 * RFC 4180 records: comma-separated, CRLF (LF and CR alone accepted too), fields with commas,
 * quotes or line breaks enclosed in double quotes, a quote inside doubled. A stray quote in an
 * unquoted field, or text after a closing quote, marks that record malformed and parsing goes
 * on at the next record; a quote left open at the end of the file is a bad file.
 */
export function parseCsv(text: string): CsvRecord[] {
  const out: CsvRecord[] = [];
  let fields: string[] = [];
  let field = '';
  let state: 'start' | 'unquoted' | 'quoted' | 'afterQuote' = 'start';
  let row = 1;
  let line = 1;
  let recordLine = 1;
  let malformed: string | undefined;
  let openedAt = { row: 1, line: 1 };

  const endField = (): void => {
    fields.push(field);
    field = '';
    state = 'start';
  };
  const endRecord = (): void => {
    endField();
    out.push(malformed === undefined ? { row, line: recordLine, fields } : { row, line: recordLine, fields, malformed });
    fields = [];
    malformed = undefined;
    row += 1;
    recordLine = line;
  };

  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    const newline = c === '\n' || c === '\r';
    if (newline) {
      if (c === '\r' && text[i + 1] === '\n') {
        if (state === 'quoted') field += '\r';
        i += 1;
      }
      line += 1;
    }
    if (state === 'quoted') {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 1;
        } else {
          state = 'afterQuote';
        }
      } else {
        field += newline ? text[i] : c;
      }
      continue;
    }
    if (newline) {
      endRecord();
      continue;
    }
    if (c === ',') {
      endField();
      continue;
    }
    if (state === 'start' && c === '"') {
      state = 'quoted';
      openedAt = { row, line };
      continue;
    }
    if (state === 'afterQuote') {
      malformed ??= 'text after the closing quote of a field';
    } else {
      state = 'unquoted';
      if (c === '"') malformed ??= 'a double quote inside an unquoted field';
    }
    field += c;
  }
  if (state === 'quoted') {
    throw badFile(`第 ${openedAt.row} 行（文本第 ${openedAt.line} 行）的引号没有闭合`, `a quoted field opened in row ${openedAt.row} (line ${openedAt.line}) is never closed`, { row: openedAt.row, line: openedAt.line });
  }
  if (state !== 'start' || fields.length > 0 || field !== '') endRecord();
  return out;
}

function normaliseHeader(h: string): string {
  return h.replace(/^\ufeff/, '').trim().toLowerCase().replace(/[\s_-]/g, '');
}

const BY_NAME = new Map<string, StaffColumn>(
  (Object.entries(COLUMN_NAMES) as [StaffColumn, readonly string[]][]).flatMap(([col, names]) => names.map((n) => [n, col] as [string, StaffColumn])),
);

/** The column of each header field; IMPORT_BAD_FILE for no header, unknown, duplicate or missing columns. */
export function mapHeader(header: CsvRecord): StaffColumn[] {
  const names = header.fields.map(normaliseHeader);
  const cols = names.map((n) => BY_NAME.get(n));
  const accepted = Object.entries(COLUMN_NAMES).map(([col, ns]) => `${col} (${ns.filter((n) => /[^ -~]/.test(n)).join('/')})`);
  if (header.malformed !== undefined || cols.every((c) => c === undefined)) {
    throw badFile('第一行必须是表头（姓名、工号、科室ID、身份证号，可选职称级别、手机号）', 'the first row must be a header naming the columns (name, employeeId, departmentId, nationalId; optional titleLevel, mobile)', { columnsAccepted: accepted });
  }
  const unknown = header.fields.filter((_, i) => cols[i] === undefined).map((f) => f.trim().slice(0, 40));
  if (unknown.length > 0) {
    throw badFile(`表头中有未知的列：${unknown.join('、')}`, `unknown column(s) in the header: ${unknown.join(', ')}`, { unknownColumns: unknown.slice(0, 20), columnsAccepted: accepted });
  }
  const found = cols as StaffColumn[];
  const dup = found.filter((c, i) => found.indexOf(c) !== i);
  if (dup.length > 0) throw badFile(`表头中的列重复：${[...new Set(dup)].join('、')}`, `column(s) given twice: ${[...new Set(dup)].join(', ')}`, { duplicateColumns: [...new Set(dup)] });
  const missing = REQUIRED.filter((c) => !found.includes(c));
  if (missing.length > 0) throw badFile(`缺少必需的列：${missing.join('、')}`, `required column(s) missing: ${missing.join(', ')}`, { missingColumns: missing, columnsAccepted: accepted });
  return found;
}

export function reason(code: StaffCode, field: string | undefined, zh: string, en: string): RowReason {
  return field === undefined ? { code, message: { 'zh-CN': zh, en } } : { code, field, message: { 'zh-CN': zh, en } };
}

function fromProblem(p: FieldProblem): RowReason {
  return reason(p.code, p.field, p.zh, p.en);
}

/** Reads, parses and checks a staff CSV file; file-level problems throw IMPORT_BAD_FILE / IMPORT_TOO_LARGE. */
export function readStaffCsv(bytes: Buffer, opts: { charset?: string; limits?: Partial<ImportLimits> } = {}): ReadFile {
  const limits = { ...DEFAULT_IMPORT_LIMITS, ...opts.limits };
  if (bytes.length > limits.maxBytes) throw tooLarge(limits, { bytes: bytes.length });
  if (bytes.length === 0) throw badFile('文件为空', 'the file is empty');
  const { text, encoding, bom } = decodeCsv(bytes, opts.charset);
  const records = parseCsv(text).filter((r) => r.fields.some((f) => f.trim() !== ''));
  if (records.length === 0) throw badFile('文件为空', 'the file is empty');
  const [header, ...data] = records;
  const columns = mapHeader(header);
  if (data.length === 0) throw badFile('文件只有表头，没有数据行', 'the file has a header but no data rows');
  if (data.length > limits.maxRows) throw tooLarge(limits, { rows: data.length });

  const rows: ReadRow[] = data.map((rec) => checkRecord(rec, columns));
  markDuplicates(rows);
  return { file: { encoding, bom, bytes: bytes.length, sm3: createHash('sm3').update(bytes).digest('hex'), columns }, rows };
}

function tooLarge(limits: ImportLimits, got: { bytes?: number; rows?: number }): YiqianError {
  const zh = got.rows !== undefined ? `数据行数 ${got.rows} 超过上限 ${limits.maxRows}` : `文件大小 ${got.bytes} 字节超过上限 ${limits.maxBytes} 字节`;
  const en = got.rows !== undefined ? `${got.rows} data rows exceed the limit of ${limits.maxRows}` : `${got.bytes} bytes exceed the limit of ${limits.maxBytes}`;
  return new YiqianError(StaffCodes.IMPORT_TOO_LARGE, 413, { zh: `导入文件过大：${zh}，请拆分后分批导入`, en: `import file too large: ${en}; split it into several files` }, { ...got, maxRows: limits.maxRows, maxBytes: limits.maxBytes });
}

function checkRecord(rec: CsvRecord, columns: StaffColumn[]): ReadRow {
  const raw: Partial<Record<StaffColumn, string>> = {};
  columns.forEach((c, i) => (raw[c] = rec.fields[i]));
  const given = raw.employeeId?.trim();
  const result: RowResult = given ? { row: rec.row, line: rec.line, employeeId: given.slice(0, 64), status: 'rejected' } : { row: rec.row, line: rec.line, status: 'rejected' };
  if (rec.malformed !== undefined) {
    result.reasons = [reason(StaffCodes.ROW_MALFORMED, undefined, '该行不符合 CSV 格式（引号使用错误）', `the row is not valid CSV: ${rec.malformed}`)];
    return { result };
  }
  if (rec.fields.length !== columns.length) {
    result.reasons = [reason(StaffCodes.ROW_MALFORMED, undefined, `该行有 ${rec.fields.length} 个字段，表头有 ${columns.length} 列`, `the row has ${rec.fields.length} fields, the header ${columns.length} columns`)];
    return { result };
  }
  const reasons: RowReason[] = [];
  const take = <T>(c: Checked<T>): T | undefined => {
    if (c.ok) return c.value;
    reasons.push(fromProblem(c.problem));
    return undefined;
  };
  const input = {
    name: take(checkName(raw.name)),
    employeeId: take(checkEmployeeId(raw.employeeId)),
    departmentId: take(checkDepartmentId(raw.departmentId)),
    titleLevel: take(optional(raw.titleLevel, checkTitleLevel)),
    mobile: take(optional(raw.mobile, checkMobile)),
    nationalId: take(checkNationalId(raw.nationalId)),
  };
  if (reasons.length > 0) {
    result.reasons = reasons;
    return { result };
  }
  result.status = 'accepted';
  const clean: StaffRowInput = { name: input.name!, employeeId: input.employeeId!, departmentId: input.departmentId!, nationalId: input.nationalId! };
  if (input.titleLevel !== undefined) clean.titleLevel = input.titleLevel;
  if (input.mobile !== undefined) clean.mobile = input.mobile;
  return { result, input: clean };
}

/** Every row of an employee id that occurs more than once is rejected: which one is right is the hospital's call. */
function markDuplicates(rows: ReadRow[]): void {
  const byId = new Map<string, ReadRow[]>();
  for (const r of rows) {
    if (!r.input) continue;
    const list = byId.get(r.input.employeeId) ?? [];
    list.push(r);
    byId.set(r.input.employeeId, list);
  }
  for (const [id, list] of byId) {
    if (list.length < 2) continue;
    const at = list.map((r) => r.result.row);
    for (const r of list) {
      const others = at.filter((n) => n !== r.result.row).join(', ');
      rejectRow(r, reason(StaffCodes.DUPLICATE_IN_FILE, 'employeeId', `工号 ${id} 在文件中重复（另见第 ${others} 行）`, `employee id ${id} occurs more than once in the file (also row ${others})`));
    }
  }
}

export function rejectRow(r: ReadRow, why: RowReason): void {
  r.result.status = 'rejected';
  r.result.reasons = [...(r.result.reasons ?? []), why];
  delete r.input;
}
