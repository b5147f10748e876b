// Test data for the staff directory: national ID numbers made with GB 11643's own formulation
// of the check character (Σ aᵢ·Wᵢ ≡ 1 mod 11, Wᵢ = 2^(i−1) mod 11, i counted from the right),
// independent of the weight table the appliance uses; CSV bytes in GBK made by iconv(1).
import { execFileSync } from 'node:child_process';

export function nationalIdCheck(first17: string): string {
  let s = 0;
  for (let k = 0; k < 17; k += 1) s += Number(first17[k]) * (2 ** (17 - k) % 11);
  for (let a = 0; a <= 10; a += 1) if ((s + a) % 11 === 1) return a === 10 ? 'X' : String(a);
  throw new Error('unreachable');
}

/** A valid 18-character number: region 110105 (北京朝阳), the birth date, a 3-digit sequence. */
export function nationalId(birth = '19800101', seq = 1, region = '110105'): string {
  const first17 = `${region}${birth}${String(seq).padStart(3, '0')}`;
  return first17 + nationalIdCheck(first17);
}

/** The same number with a wrong check character. */
export function withBadCheck(id: string): string {
  const good = id[17];
  const bad = good === '0' ? '1' : '0';
  return id.slice(0, 17) + bad;
}

export function toGbk(text: string): Buffer {
  return execFileSync('iconv', ['-f', 'UTF-8', '-t', 'GBK'], { input: Buffer.from(text, 'utf8') });
}

export interface Person {
  name: string;
  employeeId: string;
  departmentId: string;
  titleLevel?: string;
  mobile?: string;
  nationalId: string;
}

/** CSV text with a Chinese header (CRLF, as Excel writes it). */
export function csvZh(people: Person[]): string {
  const rows = people.map((p) => [p.name, p.employeeId, p.departmentId, p.titleLevel ?? '', p.mobile ?? '', p.nationalId].join(','));
  return ['姓名,工号,科室ID,职称级别,手机号,身份证号', ...rows].join('\r\n') + '\r\n';
}

/** n people in the given departments, distinct ids, ID numbers and mobiles. */
export function people(n: number, departments: string[], prefix = 'E'): Person[] {
  const out: Person[] = [];
  for (let i = 0; i < n; i += 1) {
    out.push({
      name: `测试员${i}`,
      employeeId: `${prefix}${String(i + 1).padStart(4, '0')}`,
      departmentId: departments[i % departments.length],
      titleLevel: ['正高级', '副高级', '中级', '初级'][i % 4],
      mobile: `139${String(10000000 + i * 7919).slice(-8)}`,
      nationalId: nationalId(`1980${String((i % 12) + 1).padStart(2, '0')}15`, (i % 999) + 1),
    });
  }
  return out;
}
