// Field rules of the staff directory: 居民身份证号 per GB 11643-1999 (the standard's own
// example numbers and numbers made with its power-of-two formulation), mobiles, masks.
import t from 'tap';
import { checkEmployeeId, checkMobile, checkName, checkNationalId, nationalIdCheckChar } from '../../appliance/src/staff/staff-fields.js';
import { maskMobile, maskNationalId } from '../../appliance/src/staff/pii.js';
import { nationalId, nationalIdCheck, withBadCheck } from '../helpers/staff-data.js';

function code(c: { ok: boolean; problem?: { code: string } }): string | undefined {
  return c.ok ? undefined : c.problem!.code;
}

t.test('national id: the examples printed in GB 11643-1999', async (t) => {
  t.same(checkNationalId('11010519491231002X'), { ok: true, value: '11010519491231002X' });
  t.same(checkNationalId('11010519491231002x'), { ok: true, value: '11010519491231002X' }, 'lower-case x is normalised');
  t.same(checkNationalId(' 440524188001010014 '), { ok: true, value: '440524188001010014' }, 'trimmed');
  t.equal(nationalIdCheckChar('11010519491231002'), 'X');
});

t.test('national id: the weight table agrees with the 2^(i-1) mod 11 formulation on many numbers', async (t) => {
  let n = 0;
  for (let seq = 1; seq < 1000; seq += 7) {
    for (const birth of ['19491001', '19800229', '20001231', '19650615']) {
      const id = nationalId(birth, seq, seq % 2 ? '440305' : '650102');
      t.equal(nationalIdCheckChar(id.slice(0, 17)), nationalIdCheck(id.slice(0, 17)));
      t.ok(checkNationalId(id).ok, id);
      n += 1;
    }
  }
  t.ok(n > 500);
});

t.test('national id: every kind of bad number has its own reason', async (t) => {
  const good = nationalId('19800101', 1);
  t.equal(code(checkNationalId(withBadCheck(good))), 'NATIONAL_ID_CHECKSUM', 'wrong check character');
  // A single mistyped digit is always caught by MOD 11-2.
  for (let pos = 0; pos < 17; pos += 1) {
    const d = Number(good[pos]);
    const typo = good.slice(0, pos) + String((d + 1) % 10) + good.slice(pos + 1);
    t.not(checkNationalId(typo).ok, true, `typo at position ${pos} is refused`);
  }
  t.equal(code(checkNationalId('110105800101001')), 'NATIONAL_ID_LEGACY', '15-digit first-generation number');
  t.equal(code(checkNationalId('1.10105E+17')), 'NATIONAL_ID_INVALID', 'spreadsheet scientific notation');
  t.match((checkNationalId('1.10105E+17') as { problem: { en: string } }).problem.en, /scientific notation/);
  t.equal(code(checkNationalId('11010519800101001')), 'NATIONAL_ID_INVALID', '17 characters');
  t.equal(code(checkNationalId('1101051980010100111')), 'NATIONAL_ID_INVALID', '19 characters');
  t.equal(code(checkNationalId('11010519800101001Y')), 'NATIONAL_ID_INVALID', 'a check character other than X');
  const region99 = '99' + good.slice(2, 17);
  t.equal(code(checkNationalId(region99.slice(0, 17) + nationalIdCheck(region99.slice(0, 17)))), undefined, 'prefix 9: foreign permanent-resident card accepted');
  const region00 = '00' + good.slice(2, 17);
  t.equal(code(checkNationalId(region00 + nationalIdCheck(region00))), 'NATIONAL_ID_INVALID', 'address code 00');
  t.equal(code(checkNationalId(nationalId('19800230', 1))), 'NATIONAL_ID_INVALID', '30 February');
  t.equal(code(checkNationalId(nationalId('17991231', 1))), 'NATIONAL_ID_INVALID', 'born before 1800 (the standard itself has an 1880 example)');
  t.equal(code(checkNationalId(nationalId('20990101', 1))), 'NATIONAL_ID_INVALID', 'born in the future');
  t.equal(code(checkNationalId(nationalId('19810229', 1))), 'NATIONAL_ID_INVALID', '29 February of a common year');
  t.equal(code(checkNationalId(nationalId('20000229', 1))), undefined, '29 February 2000 (leap year)');
  t.equal(code(checkNationalId('')), 'MISSING_FIELD');
  t.equal(code(checkNationalId(110105198001010)), 'FIELD_INVALID', 'a JSON number is not accepted (an 18-digit one loses precision)');
});

t.test('mobile: normalised to 11 digits', async (t) => {
  t.same(checkMobile('13812345678'), { ok: true, value: '13812345678' });
  t.same(checkMobile('+86 138-1234-5678'), { ok: true, value: '13812345678' });
  t.same(checkMobile('008613812345678'), { ok: true, value: '13812345678' });
  for (const bad of ['1381234567', '23812345678', '12812345678', '138123456789', '010-12345678', 'abc']) {
    t.equal(code(checkMobile(bad)), 'MOBILE_INVALID', bad);
  }
});

t.test('names and employee ids', async (t) => {
  t.same(checkName(' 买买提·艾力 '), { ok: true, value: '买买提·艾力' });
  t.equal(code(checkName('张\u202e三')), 'FIELD_INVALID', 'bidi override');
  t.equal(code(checkName('x'.repeat(65))), 'FIELD_INVALID');
  t.same(checkEmployeeId('ZY-0231'), { ok: true, value: 'ZY-0231' });
  t.equal(code(checkEmployeeId('张三')), 'EMPLOYEE_ID_INVALID');
  t.equal(code(checkEmployeeId('a b')), 'EMPLOYEE_ID_INVALID');
  t.equal(code(checkEmployeeId('  ')), 'MISSING_FIELD');
});

t.test('masks: first 3 and last 4', async (t) => {
  t.equal(maskNationalId('110105198001010011'), '110***********0011');
  t.equal(maskNationalId('11010519491231002X'), '110***********002X');
  t.equal(maskMobile('13812345678'), '138****5678');
  t.equal(maskNationalId('123'), '***', 'a short value is masked whole');
});
