// Reading staff CSV files: encodings (UTF-8, UTF-8 with BOM, GBK made by iconv, the caller's
// charset), RFC 4180 quoting, headers in Chinese or English, per-row verdicts, limits.
import t from 'tap';
import { decodeCsv, parseCsv, readStaffCsv } from '../../appliance/src/staff/csv-import.js';
import { isYiqianError, type YiqianError } from '../../appliance/src/errors.js';
import { csvZh, nationalId, people, toGbk, withBadCheck } from '../helpers/staff-data.js';

function thrown(fn: () => unknown): YiqianError {
  try {
    fn();
  } catch (e) {
    if (isYiqianError(e)) return e;
    throw e;
  }
  throw new Error('expected a YiqianError');
}

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);
const sample = people(3, ['0301', '0302']);

t.test('encodings: UTF-8, UTF-8 with BOM, GBK by detection, and the charset given', async (t) => {
  const text = csvZh(sample);
  const utf8 = readStaffCsv(Buffer.from(text, 'utf8'));
  t.equal(utf8.file.encoding, 'utf-8');
  t.equal(utf8.file.bom, false);
  t.same(utf8.rows.map((r) => r.input?.name), ['测试员0', '测试员1', '测试员2']);

  const bom = readStaffCsv(Buffer.concat([BOM, Buffer.from(text, 'utf8')]));
  t.equal(bom.file.encoding, 'utf-8');
  t.equal(bom.file.bom, true);
  t.same(bom.file.columns, ['name', 'employeeId', 'departmentId', 'titleLevel', 'mobile', 'nationalId'], 'the BOM is not part of the first column name');

  const gbkBytes = toGbk(text);
  t.not(gbkBytes.toString('hex'), Buffer.from(text, 'utf8').toString('hex'), 'iconv produced different bytes');
  const gbk = readStaffCsv(gbkBytes);
  t.equal(gbk.file.encoding, 'gbk');
  t.same(gbk.rows.map((r) => r.input), utf8.rows.map((r) => r.input), 'GBK decodes to the same rows');
  t.same(gbk.rows.map((r) => r.input?.titleLevel), ['正高级', '副高级', '中级']);

  t.equal(readStaffCsv(gbkBytes, { charset: 'GB2312' }).file.encoding, 'gbk', 'charset gb2312 → GBK decoder');
  const wrongCharset = thrown(() => readStaffCsv(gbkBytes, { charset: 'utf-8' }));
  t.equal(wrongCharset.code, 'IMPORT_BAD_FILE', 'the given charset wins over detection: GBK bytes declared UTF-8 are refused');
  t.equal(thrown(() => readStaffCsv(Buffer.from(text, 'utf8'), { charset: 'gbk' })).code, 'IMPORT_BAD_FILE', 'and UTF-8 bytes declared GBK are refused, not turned into mojibake');
  const p = sample[0];
  const ascii = readStaffCsv(Buffer.from(`name,employeeId,departmentId,nationalId\r\nZhang San,${p.employeeId},${p.departmentId},${p.nationalId}\r\n`), { charset: 'gbk' });
  t.equal(ascii.file.encoding, 'gbk', 'ASCII is valid in both: the declared charset is used');
  t.equal(thrown(() => readStaffCsv(Buffer.from(text), { charset: 'big5' })).code, 'UNSUPPORTED_MEDIA_TYPE');
});

t.test('files that are neither UTF-8 nor GBK, or not text at all', async (t) => {
  const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(csvZh(sample), 'utf16le')]);
  const e16 = thrown(() => readStaffCsv(utf16));
  t.equal(e16.code, 'IMPORT_BAD_FILE');
  t.match(e16.text.en, /UTF-16/);
  t.equal(thrown(() => decodeCsv(Buffer.from([0x61, 0x2c, 0x81, 0x0a]))).code, 'IMPORT_BAD_FILE', 'a lone GBK lead byte');
  t.equal(thrown(() => decodeCsv(Buffer.from([0x61, 0xff, 0xfe, 0x0a]))).code, 'IMPORT_BAD_FILE', '0xFF is in neither encoding');
  const zip = Buffer.from('504b0304140006000800000021006f0d', 'hex'); // the start of an .xlsx
  const ez = thrown(() => readStaffCsv(zip));
  t.equal(ez.code, 'IMPORT_BAD_FILE');
  t.match(ez.text.en, /xlsx|control/);
  t.equal(thrown(() => readStaffCsv(Buffer.alloc(0))).code, 'IMPORT_BAD_FILE', 'empty');
  t.equal(thrown(() => readStaffCsv(Buffer.from('\r\n,,,\r\n'))).code, 'IMPORT_BAD_FILE', 'only blank rows');
});

t.test('RFC 4180: quotes, doubled quotes, commas and line breaks inside fields', async (t) => {
  const recs = parseCsv('a,"b,c","say ""hi""","two\r\nlines"\r\nx,,"",z\ntail,1,2,3');
  t.same(recs.map((r) => r.fields), [
    ['a', 'b,c', 'say "hi"', 'two\r\nlines'],
    ['x', '', '', 'z'],
    ['tail', '1', '2', '3'],
  ]);
  t.same(recs.map((r) => [r.row, r.line]), [[1, 1], [2, 3], [3, 4]], 'row = record number, line = where it starts');
  t.same(parseCsv('a,b\r\n').map((r) => r.fields), [['a', 'b']], 'a trailing CRLF makes no empty record');
  t.same(parseCsv('a,b,').map((r) => r.fields), [['a', 'b', '']], 'a trailing comma is an empty last field');
  const bad = parseCsv('a,b"c,d\r\n"e"f,g\r\nok,ok');
  t.match(bad[0].malformed, /quote inside an unquoted field/);
  t.match(bad[1].malformed, /after the closing quote/);
  t.equal(bad[2].malformed, undefined, 'parsing goes on after a malformed record');
  const open = thrown(() => parseCsv('a,b\r\nc,"never closed\r\nmore'));
  t.equal(open.code, 'IMPORT_BAD_FILE');
  t.same(open.detail, { row: 2, line: 2 });
});

t.test('headers: Chinese or English names, any order, optional columns; unknown, missing, duplicate or no header', async (t) => {
  const p = sample[0];
  const en = readStaffCsv(Buffer.from(`nationalId,Name,employee_id,DepartmentID\n${p.nationalId},${p.name},${p.employeeId},${p.departmentId}\n`));
  t.same(en.rows[0].input, { name: p.name, employeeId: p.employeeId, departmentId: p.departmentId, nationalId: p.nationalId }, 'optional columns may be left out');
  const mixed = readStaffCsv(Buffer.from(`工号,姓名,科室ID,身份证号码,手机号码\n${p.employeeId},${p.name},${p.departmentId},${p.nationalId},${p.mobile}\n`));
  t.equal(mixed.rows[0].input?.mobile, p.mobile);

  const noHeader = thrown(() => readStaffCsv(Buffer.from(`${p.name},${p.employeeId},${p.departmentId},,,${p.nationalId}\n`)));
  t.equal(noHeader.code, 'IMPORT_BAD_FILE');
  t.match(noHeader.text.en, /header/);
  const unknown = thrown(() => readStaffCsv(Buffer.from(`姓名,工号,科室ID,身份证号,备注\n`)));
  t.equal(unknown.code, 'IMPORT_BAD_FILE');
  t.same(unknown.detail?.unknownColumns, ['备注']);
  const missing = thrown(() => readStaffCsv(Buffer.from(`姓名,工号,科室ID\n张三,1,0301\n`)));
  t.same(missing.detail?.missingColumns, ['nationalId']);
  const dup = thrown(() => readStaffCsv(Buffer.from(`姓名,工号,科室ID,身份证号,name\n`)));
  t.same(dup.detail?.duplicateColumns, ['name']);
  t.equal(thrown(() => readStaffCsv(Buffer.from('姓名,工号,科室ID,身份证号\r\n'))).code, 'IMPORT_BAD_FILE', 'header only');
});

t.test('per-row verdicts: every problem of a row, and duplicates in the file', async (t) => {
  const ok = people(2, ['0301']);
  const good = nationalId('19700101', 5);
  const text = [
    '姓名,工号,科室ID,职称级别,手机号,身份证号',
    `${ok[0].name},${ok[0].employeeId},0301,,${ok[0].mobile},${ok[0].nationalId}`,
    `,E9001,0301,,,${withBadCheck(good)}`, // missing name AND bad check digit
    `李四,E9002,0301,中级,12345,${good}`, // bad mobile
    `王五,E9003,0301`, // too few fields
    `赵六,E9004,"03"01,,,${good}`, // malformed quoting
    `,,,,,`, // blank: skipped
    `重复甲,D1,0301,,,${nationalId('19700101', 6)}`,
    `重复乙,D1,0302,,,${nationalId('19700101', 7)}`,
    `钱七,E9005,科室一,,,110105800101001`, // bad department id, 15-digit id
  ].join('\r\n');
  const read = readStaffCsv(Buffer.from(text));
  const byRow = new Map(read.rows.map((r) => [r.result.row, r.result]));
  t.equal(read.rows.length, 8, 'the blank record is not a data row');
  t.equal(byRow.get(2)?.status, 'accepted');
  t.same(byRow.get(3)?.reasons?.map((x) => [x.code, x.field]), [['MISSING_FIELD', 'name'], ['NATIONAL_ID_CHECKSUM', 'nationalId']]);
  t.equal(byRow.get(3)?.employeeId, 'E9001');
  t.same(byRow.get(4)?.reasons?.map((x) => x.code), ['MOBILE_INVALID']);
  t.same(byRow.get(5)?.reasons?.map((x) => x.code), ['ROW_MALFORMED']);
  t.same(byRow.get(6)?.reasons?.map((x) => x.code), ['ROW_MALFORMED']);
  t.same(byRow.get(8)?.reasons?.map((x) => x.code), ['DUPLICATE_IN_FILE'], 'both rows of a duplicated employee id are rejected');
  t.same(byRow.get(9)?.reasons?.map((x) => x.code), ['DUPLICATE_IN_FILE']);
  t.match(byRow.get(9)?.reasons?.[0].message.en, /also row 8/);
  t.same(byRow.get(10)?.reasons?.map((x) => x.code), ['DEPARTMENT_ID_INVALID', 'NATIONAL_ID_LEGACY']);
  for (const r of read.rows) {
    if (r.result.status === 'rejected') t.notOk(r.input, `row ${r.result.row}: a rejected row has no input`);
    for (const why of r.result.reasons ?? []) {
      t.ok(why.message['zh-CN'] && why.message.en, 'zh and en message');
      t.notMatch(JSON.stringify(why), /\d{17}[\dX]/, 'no national id in a reason');
    }
  }
});

t.test('limits: rows and bytes', async (t) => {
  const many = Buffer.from(csvZh(people(30, ['0301'])));
  const rows = thrown(() => readStaffCsv(many, { limits: { maxRows: 29 } }));
  t.equal(rows.code, 'IMPORT_TOO_LARGE');
  t.equal(rows.status, 413);
  t.match(rows.detail, { rows: 30, maxRows: 29 });
  t.equal(readStaffCsv(many, { limits: { maxRows: 30 } }).rows.length, 30, 'exactly at the limit is fine');
  const bytes = thrown(() => readStaffCsv(many, { limits: { maxBytes: many.length - 1 } }));
  t.equal(bytes.code, 'IMPORT_TOO_LARGE');
  t.match(bytes.detail, { bytes: many.length });
});
