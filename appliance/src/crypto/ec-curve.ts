// Short-Weierstrass curves y² = x³ + ax + b over F_p on BigInt, parametric in (p, a, b, G, n)
// so that the GB/T 32918.2 Annex A test curve runs on the same code as sm2p256v1, P-256, P-384.
//
// Jacobian coordinates (X, Y, Z) ↔ (X/Z², Y/Z³); formulas from the Explicit-Formulas Database
// (dbl-2007-bl, dbl-2001-b for a = −3, madd-2007-bl, add-2007-bl). Fixed-base multiplication
// by G uses a 4-bit comb of precomputed affine multiples; variable-base a 4-bit window.
//
// NOT constant-time: BigInt arithmetic and table indexing leak timing. This is the fallback and
// the cross-check; production private-key operations run in OpenSSL through the addon.

export interface CurveParams {
  name: string;
  p: bigint;
  a: bigint;
  b: bigint;
  gx: bigint;
  gy: bigint;
  n: bigint;
}

export interface Affine {
  x: bigint;
  y: bigint;
}

/** Jacobian point; Z = 0 is the point at infinity. */
type Jac = [bigint, bigint, bigint];

const INF: Jac = [1n, 1n, 0n];

export class Curve implements CurveParams {
  readonly name: string;
  readonly p: bigint;
  readonly a: bigint;
  readonly b: bigint;
  readonly gx: bigint;
  readonly gy: bigint;
  readonly n: bigint;
  /** Byte length of field elements (and of n for the curves here). */
  readonly size: number;
  private readonly aIsMinus3: boolean;
  private readonly windows: number;
  private combTable?: Affine[][];

  constructor(params: CurveParams) {
    this.name = params.name;
    this.p = params.p;
    this.a = mod(params.a, params.p);
    this.b = mod(params.b, params.p);
    this.gx = params.gx;
    this.gy = params.gy;
    this.n = params.n;
    this.size = Math.ceil(params.p.toString(16).length / 2);
    this.aIsMinus3 = this.a === params.p - 3n;
    this.windows = Math.ceil(params.n.toString(2).length / 4);
    if (!this.isOnCurve({ x: params.gx, y: params.gy })) throw new Error(`${params.name}: G is not on the curve`);
  }

  get G(): Affine {
    return { x: this.gx, y: this.gy };
  }

  // ---------- field ----------

  private m(a: bigint): bigint {
    const r = a % this.p;
    return r < 0n ? r + this.p : r;
  }

  isOnCurve(P: Affine): boolean {
    const { p } = this;
    if (P.x < 0n || P.x >= p || P.y < 0n || P.y >= p) return false;
    return this.m(P.y * P.y - (P.x * P.x * P.x + this.a * P.x + this.b)) === 0n;
  }

  /** y from x and the parity bit (for compressed points); undefined when x is not on the curve. */
  decompress(x: bigint, odd: boolean): Affine | undefined {
    const { p } = this;
    if (x < 0n || x >= p) return undefined;
    const rhs = this.m(x * x * x + this.a * x + this.b);
    let y: bigint;
    if (p % 4n === 3n) y = modPow(rhs, (p + 1n) / 4n, p);
    else y = tonelliShanks(rhs, p) ?? -1n;
    if (y < 0n || this.m(y * y) !== rhs) return undefined;
    if ((y & 1n) !== (odd ? 1n : 0n)) y = y === 0n ? 0n : p - y;
    return { x, y };
  }

  // ---------- Jacobian arithmetic ----------

  private dbl(P: Jac): Jac {
    const [X1, Y1, Z1] = P;
    if (Z1 === 0n || Y1 === 0n) return INF;
    const YY = this.m(Y1 * Y1);
    const ZZ = this.m(Z1 * Z1);
    let M: bigint;
    if (this.aIsMinus3) {
      // dbl-2001-b: M = 3(X1 − ZZ)(X1 + ZZ)
      M = this.m(3n * (X1 - ZZ) * (X1 + ZZ));
    } else {
      M = this.m(3n * X1 * X1 + this.a * ZZ * ZZ);
    }
    const S = this.m(4n * X1 * YY);
    const X3 = this.m(M * M - 2n * S);
    const Y3 = this.m(M * (S - X3) - 8n * YY * YY);
    const Z3 = this.m(2n * Y1 * Z1);
    return [X3, Y3, Z3];
  }

  /** P (Jacobian) + Q (affine), madd-2007-bl. */
  private madd(P: Jac, Q: Affine): Jac {
    const [X1, Y1, Z1] = P;
    if (Z1 === 0n) return [Q.x, Q.y, 1n];
    const Z1Z1 = this.m(Z1 * Z1);
    const U2 = this.m(Q.x * Z1Z1);
    const S2 = this.m(Q.y * Z1 * Z1Z1);
    const H = this.m(U2 - X1);
    const r = this.m(2n * (S2 - Y1));
    if (H === 0n) return r === 0n ? this.dbl(P) : INF;
    const HH = this.m(H * H);
    const I = 4n * HH;
    const J = this.m(H * I);
    const V = this.m(X1 * I);
    const X3 = this.m(r * r - J - 2n * V);
    const Y3 = this.m(r * (V - X3) - 2n * Y1 * J);
    const Z3 = this.m((Z1 + H) * (Z1 + H) - Z1Z1 - HH);
    return [X3, Y3, Z3];
  }

  /** P + Q, both Jacobian, add-2007-bl. */
  private add(P: Jac, Q: Jac): Jac {
    const [X1, Y1, Z1] = P;
    const [X2, Y2, Z2] = Q;
    if (Z1 === 0n) return Q;
    if (Z2 === 0n) return P;
    const Z1Z1 = this.m(Z1 * Z1);
    const Z2Z2 = this.m(Z2 * Z2);
    const U1 = this.m(X1 * Z2Z2);
    const U2 = this.m(X2 * Z1Z1);
    const S1 = this.m(Y1 * Z2 * Z2Z2);
    const S2 = this.m(Y2 * Z1 * Z1Z1);
    const H = this.m(U2 - U1);
    const r = this.m(2n * (S2 - S1));
    if (H === 0n) return r === 0n ? this.dbl(P) : INF;
    const I = this.m(4n * H * H);
    const J = this.m(H * I);
    const V = this.m(U1 * I);
    const X3 = this.m(r * r - J - 2n * V);
    const Y3 = this.m(r * (V - X3) - 2n * S1 * J);
    const Z3 = this.m(((Z1 + Z2) * (Z1 + Z2) - Z1Z1 - Z2Z2) * H);
    return [X3, Y3, Z3];
  }

  private toAffine(P: Jac): Affine | undefined {
    const [X, Y, Z] = P;
    if (Z === 0n) return undefined;
    const zi = modInv(Z, this.p);
    const zi2 = this.m(zi * zi);
    return { x: this.m(X * zi2), y: this.m(Y * zi2 * zi) };
  }

  /** Normalises many points with one inversion (Montgomery's trick). Infinity is not allowed. */
  private batchAffine(points: Jac[]): Affine[] {
    const { p } = this;
    const prefix: bigint[] = new Array(points.length);
    let acc = 1n;
    for (let i = 0; i < points.length; i++) {
      if (points[i][2] === 0n) throw new Error('batchAffine: point at infinity');
      prefix[i] = acc;
      acc = (acc * points[i][2]) % p;
    }
    let inv = modInv(acc, p);
    const out: Affine[] = new Array(points.length);
    for (let i = points.length - 1; i >= 0; i--) {
      const [X, Y, Z] = points[i];
      const zi = (inv * prefix[i]) % p;
      inv = (inv * Z) % p;
      const zi2 = (zi * zi) % p;
      out[i] = { x: (X * zi2) % p, y: (((Y * zi2) % p) * zi) % p };
    }
    return out;
  }

  /** comb[i][j − 1] = j·16^i·G, j = 1..15. Built on first use (~1 ms per window row). */
  private comb(): Affine[][] {
    if (this.combTable) return this.combTable;
    const rows: Affine[][] = [];
    let base: Jac = [this.gx, this.gy, 1n];
    for (let i = 0; i < this.windows; i++) {
      const row: Jac[] = [base];
      for (let j = 2; j <= 15; j++) row.push(this.add(row[j - 2], base));
      const affine = this.batchAffine(row);
      rows.push(affine);
      // next base = 16 · base
      let next: Jac = [affine[0].x, affine[0].y, 1n];
      for (let d = 0; d < 4; d++) next = this.dbl(next);
      base = next;
    }
    this.combTable = rows;
    return rows;
  }

  /** k·G for 0 < k < n. */
  mulG(k: bigint): Affine | undefined {
    const table = this.comb();
    const hex = k.toString(16).padStart(this.windows, '0');
    let R: Jac = INF;
    for (let i = 0; i < this.windows; i++) {
      const digit = parseInt(hex[hex.length - 1 - i], 16);
      if (digit) R = this.madd(R, table[i][digit - 1]);
    }
    return this.toAffine(R);
  }

  private mulJac(k: bigint, P: Affine): Jac {
    // 4-bit fixed window: table of 1..15 · P in affine form.
    const multiples: Jac[] = [[P.x, P.y, 1n]];
    for (let j = 2; j <= 15; j++) multiples.push(j % 2 === 0 ? this.dbl(multiples[j / 2 - 1]) : this.madd(multiples[j - 2], P));
    // A multiple can only be infinity when the order of P is ≤ 15 (not on prime-order curves).
    const table = this.batchAffine(multiples);
    const hex = k.toString(16);
    let R: Jac = INF;
    for (let i = 0; i < hex.length; i++) {
      if (i > 0) R = this.dbl(this.dbl(this.dbl(this.dbl(R))));
      const digit = parseInt(hex[i], 16);
      if (digit) R = this.madd(R, table[digit - 1]);
    }
    return R;
  }

  /** k·P; P must be a valid point. */
  mul(k: bigint, P: Affine): Affine | undefined {
    if (k === 0n) return undefined;
    return this.toAffine(this.mulJac(k, P));
  }

  /** u·G + v·P (signature verification). */
  mulAdd(u: bigint, v: bigint, P: Affine): Affine | undefined {
    const comb = this.comb();
    const hex = u.toString(16).padStart(this.windows, '0');
    let R: Jac = v === 0n ? INF : this.mulJac(v, P);
    for (let i = 0; i < this.windows; i++) {
      const digit = parseInt(hex[hex.length - 1 - i], 16);
      if (digit) R = this.madd(R, comb[i][digit - 1]);
    }
    return this.toAffine(R);
  }

  // ---------- encodings (GB/T 32918.1 §4.2.9 / SEC 1 §2.3.3) ----------

  encodePoint(P: Affine): Buffer {
    return Buffer.concat([Buffer.from([0x04]), toBytes(P.x, this.size), toBytes(P.y, this.size)]);
  }

  /** Uncompressed (04) or compressed (02/03) point → validated affine point; undefined if invalid. */
  decodePoint(b: Uint8Array): Affine | undefined {
    const s = this.size;
    if (b.length === 2 * s + 1 && b[0] === 0x04) {
      const P = { x: fromBytes(b.subarray(1, 1 + s)), y: fromBytes(b.subarray(1 + s)) };
      return this.isOnCurve(P) ? P : undefined;
    }
    if (b.length === s + 1 && (b[0] === 0x02 || b[0] === 0x03)) {
      return this.decompress(fromBytes(b.subarray(1)), b[0] === 0x03);
    }
    return undefined;
  }
}

// ---------- integers ----------

export function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

/** a⁻¹ mod m (m prime or gcd(a, m) = 1), extended Euclid. */
export function modInv(a: bigint, m: bigint): bigint {
  let r0 = mod(a, m);
  if (r0 === 0n) throw new RangeError('modInv: not invertible');
  let r1 = m;
  let s0 = 1n;
  let s1 = 0n;
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  if (r0 !== 1n) throw new RangeError('modInv: not invertible');
  return mod(s0, m);
}

export function modPow(base: bigint, exp: bigint, m: bigint): bigint {
  let result = 1n;
  let b = mod(base, m);
  for (let e = exp; e > 0n; e >>= 1n) {
    if (e & 1n) result = (result * b) % m;
    b = (b * b) % m;
  }
  return result;
}

function tonelliShanks(n: bigint, p: bigint): bigint | undefined {
  if (n === 0n) return 0n;
  if (modPow(n, (p - 1n) / 2n, p) !== 1n) return undefined;
  let q = p - 1n;
  let s = 0n;
  while ((q & 1n) === 0n) {
    q >>= 1n;
    s++;
  }
  let z = 2n;
  while (modPow(z, (p - 1n) / 2n, p) !== p - 1n) z++;
  let m = s;
  let c = modPow(z, q, p);
  let t = modPow(n, q, p);
  let r = modPow(n, (q + 1n) / 2n, p);
  while (t !== 1n) {
    let i = 0n;
    let t2 = t;
    while (t2 !== 1n) {
      t2 = (t2 * t2) % p;
      i++;
    }
    const b = modPow(c, 1n << (m - i - 1n), p);
    m = i;
    c = (b * b) % p;
    t = (t * c) % p;
    r = (r * b) % p;
  }
  return r;
}

export function fromBytes(b: Uint8Array): bigint {
  return b.length === 0 ? 0n : BigInt('0x' + Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex'));
}

export function toBytes(v: bigint, size: number): Buffer {
  if (v < 0n) throw new RangeError('toBytes: negative');
  const hex = v.toString(16).padStart(size * 2, '0');
  if (hex.length > size * 2) throw new RangeError('toBytes: value too large');
  return Buffer.from(hex, 'hex');
}

const h = (s: string): bigint => BigInt('0x' + s);

/** sm2p256v1, GB/T 32918.5-2017 (STANDARDS.md §1). */
export const SM2P256V1 = new Curve({
  name: 'sm2p256v1',
  p: h('FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF'),
  a: h('FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC'),
  b: h('28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93'),
  gx: h('32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7'),
  gy: h('BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0'),
  n: h('FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123'),
});

/** NIST P-256 (FIPS 186-4 §D.1.2.3). */
export const P256 = new Curve({
  name: 'P-256',
  p: h('FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF'),
  a: h('FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFC'),
  b: h('5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B'),
  gx: h('6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296'),
  gy: h('4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5'),
  n: h('FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551'),
});

/** NIST P-384 (FIPS 186-4 §D.1.2.4). */
export const P384 = new Curve({
  name: 'P-384',
  p: h('FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFFFF0000000000000000FFFFFFFF'),
  a: h('FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFFFF0000000000000000FFFFFFFC'),
  b: h('B3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE8141120314088F5013875AC656398D8A2ED19D2A85C8EDD3EC2AEF'),
  gx: h('AA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A385502F25DBF55296C3A545E3872760AB7'),
  gy: h('3617DE4A96262C6F5D9E98BF9292DC29F8F41DBD289A147CE9DA3113B5F0B8C00A60B1CE1D7E819D7A431D7C90EA0E5F'),
  n: h('FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973'),
});
