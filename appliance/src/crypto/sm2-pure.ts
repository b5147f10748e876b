// SM2 in TypeScript on BigInt (GB/T 32918.1–.4-2016), parametric in the curve so that the
// Annex A test curve of GB/T 32918.2 runs on the same code as sm2p256v1. It is the fallback
// when the addon does not load and an independent cross-check of it. Not constant-time (see
// ec-curve.ts); SM3 comes from node:crypto.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Curve, SM2P256V1, fromBytes, modInv, toBytes, type Affine } from './ec-curve.js';

export { Curve, SM2P256V1, type Affine, type CurveParams } from './ec-curve.js';

/** Default distinguishing ID (GB/T 35276-2017 §5.4 / GM/T 0009-2012 §10). */
export const DEFAULT_ID = Buffer.from('1234567812345678', 'ascii');

export class Sm2PureError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Sm2PureError';
  }
}

export interface PureOptions {
  curve?: Curve;
  /** TEST ONLY: fixed ephemeral k, to reproduce the worked examples of GB/T 32918 Annex A. */
  k?: bigint;
}

function sm3(...parts: Uint8Array[]): Buffer {
  const h = createHash('sm3');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Uniform integer in [1, max] by rejection sampling. */
export function randomScalar(max: bigint): bigint {
  const bytes = Math.ceil(max.toString(16).length / 2);
  const bits = max.toString(2).length;
  const excess = BigInt(bytes * 8 - bits);
  for (;;) {
    const v = fromBytes(randomBytes(bytes)) >> excess;
    if (v >= 1n && v <= max) return v;
  }
}

/** Private key d must lie in [1, n − 2] (GB/T 32918.1-2016 §6.1). */
export function checkPrivate(d: bigint, curve: Curve = SM2P256V1): void {
  if (d < 1n || d > curve.n - 2n) throw new Sm2PureError('SM2 private key out of range [1, n-2]');
}

export function generatePrivate(curve: Curve = SM2P256V1): bigint {
  return randomScalar(curve.n - 2n);
}

export function publicKeyFromPrivate(d: bigint, curve: Curve = SM2P256V1): Buffer {
  checkPrivate(d, curve);
  const P = curve.mulG(d);
  if (!P) throw new Sm2PureError('public key at infinity');
  return curve.encodePoint(P);
}

/** Validated public point (GB/T 32918.1 §6.2: on the curve, not infinity). */
export function decodePublic(pub: Uint8Array, curve: Curve = SM2P256V1): Affine {
  const P = curve.decodePoint(pub);
  if (!P) throw new Sm2PureError('SM2 public key is not a point on the curve');
  return P;
}

/** Z_A = SM3(ENTL_A ‖ ID_A ‖ a ‖ b ‖ x_G ‖ y_G ‖ x_A ‖ y_A) — GB/T 32918.2-2016 §5.5. */
export function za(pub: Uint8Array, id: Uint8Array = DEFAULT_ID, curve: Curve = SM2P256V1): Buffer {
  const P = decodePublic(pub, curve);
  // ENTL_A: two bytes holding the bit length of ID_A.
  if (id.length > 8191) throw new Sm2PureError('SM2 ID longer than 8191 bytes');
  const entl = Buffer.alloc(2);
  entl.writeUInt16BE(id.length * 8);
  const s = curve.size;
  return sm3(entl, id, toBytes(curve.a, s), toBytes(curve.b, s), toBytes(curve.gx, s), toBytes(curve.gy, s), toBytes(P.x, s), toBytes(P.y, s));
}

/** e = SM3(Z_A ‖ M) — GB/T 32918.2 §6.1 A1–A2. */
export function digestE(pub: Uint8Array, msg: Uint8Array, id: Uint8Array = DEFAULT_ID, curve: Curve = SM2P256V1): Buffer {
  return sm3(za(pub, id, curve), msg);
}

/** Signature (r, s) over a given e — GB/T 32918.2 §6.1 A3–A7. */
export function signDigest(d: bigint, e: Uint8Array, opts: PureOptions = {}): { r: bigint; s: bigint } {
  const curve = opts.curve ?? SM2P256V1;
  const { n } = curve;
  checkPrivate(d, curve);
  const ev = fromBytes(e);
  const dInv = modInv(1n + d, n);
  for (;;) {
    // A3: k ∈ [1, n−1]
    const k = opts.k ?? randomScalar(n - 1n);
    // A4: (x1, y1) = [k]G
    const P1 = curve.mulG(k);
    if (!P1) throw new Sm2PureError('kG at infinity');
    // A5: r = (e + x1) mod n; back to A3 if r = 0 or r + k = n
    const r = (ev + P1.x) % n;
    if (r !== 0n && r + k !== n) {
      // A6: s = ((1 + d)⁻¹ · (k − r·d)) mod n; back to A3 if s = 0
      let s = (dInv * (k - r * d)) % n;
      if (s < 0n) s += n;
      if (s !== 0n) return { r, s };
    }
    if (opts.k !== undefined) throw new Sm2PureError('the fixed k gives r = 0, r + k = n or s = 0');
  }
}

/** Verification over a given e — GB/T 32918.2 §7.1 B1–B7. */
export function verifyDigest(pub: Uint8Array | Affine, e: Uint8Array, r: bigint, s: bigint, curve: Curve = SM2P256V1): boolean {
  const { n } = curve;
  // B1, B2: r, s ∈ [1, n−1]
  if (r < 1n || r > n - 1n || s < 1n || s > n - 1n) return false;
  const P = pub instanceof Uint8Array ? curve.decodePoint(pub) : pub;
  if (!P) return false;
  // B5: t = (r + s) mod n, t ≠ 0
  const t = (r + s) % n;
  if (t === 0n) return false;
  // B6: (x1', y1') = [s]G + [t]P_A
  const X = curve.mulAdd(s, t, P);
  if (!X) return false;
  // B7: R = (e' + x1') mod n; accept iff R = r
  return (fromBytes(e) + X.x) % n === r;
}

export function sign(d: bigint, msg: Uint8Array, id: Uint8Array = DEFAULT_ID, opts: PureOptions = {}): { r: bigint; s: bigint } {
  const curve = opts.curve ?? SM2P256V1;
  const pub = publicKeyFromPrivate(d, curve);
  return signDigest(d, digestE(pub, msg, id, curve), opts);
}

export function verify(pub: Uint8Array, msg: Uint8Array, r: bigint, s: bigint, id: Uint8Array = DEFAULT_ID, curve: Curve = SM2P256V1): boolean {
  const P = curve.decodePoint(pub);
  if (!P) return false;
  return verifyDigest(P, digestE(pub, msg, id, curve), r, s, curve);
}

/** KDF(Z, klen) with SM3 — GB/T 32918.4-2016 §5.4.3. */
export function kdf(z: Uint8Array, klen: number): Buffer {
  const out = Buffer.alloc(klen);
  const ct = Buffer.alloc(4);
  for (let i = 0, counter = 1; i < klen; i += 32, counter++) {
    ct.writeUInt32BE(counter);
    sm3(z, ct).copy(out, i, 0, Math.min(32, klen - i));
  }
  return out;
}

function allZero(b: Uint8Array): boolean {
  let acc = 0;
  for (const x of b) acc |= x;
  return acc === 0;
}

/** C = C1 ‖ C3 ‖ C2 (raw, C1 = 04 ‖ x1 ‖ y1) — GB/T 32918.4-2016 §6.1 A1–A8. */
export function encrypt(pub: Uint8Array, msg: Uint8Array, opts: PureOptions = {}): Buffer {
  const curve = opts.curve ?? SM2P256V1;
  const P = decodePublic(pub, curve);
  if (msg.length === 0) throw new Sm2PureError('SM2 encryption of an empty message');
  const s = curve.size;
  for (;;) {
    const k = opts.k ?? randomScalar(curve.n - 1n); // A1
    const C1 = curve.mulG(k); // A2
    // A3: S = [h]P_B ≠ O (h = 1, and P was validated); A4: (x2, y2) = [k]P_B
    const Q = curve.mul(k, P);
    if (!C1 || !Q) throw new Sm2PureError('point at infinity');
    const x2 = toBytes(Q.x, s);
    const y2 = toBytes(Q.y, s);
    const t = kdf(Buffer.concat([x2, y2]), msg.length); // A5
    if (allZero(t)) {
      if (opts.k !== undefined) throw new Sm2PureError('the fixed k gives an all-zero KDF output');
      continue;
    }
    const C2 = Buffer.alloc(msg.length);
    for (let i = 0; i < msg.length; i++) C2[i] = msg[i] ^ t[i]; // A6
    const C3 = sm3(x2, msg, y2); // A7
    return Buffer.concat([curve.encodePoint(C1), C3, C2]); // A8 (C1 ‖ C3 ‖ C2)
  }
}

/** Inverse of encrypt — GB/T 32918.4-2016 §7.1 B1–B7. Throws Sm2PureError on any failure. */
export function decrypt(d: bigint, ct: Uint8Array, curve: Curve = SM2P256V1): Buffer {
  checkPrivate(d, curve);
  const s = curve.size;
  const c1Len = 2 * s + 1;
  if (ct.length <= c1Len + 32 || ct[0] !== 0x04) throw new Sm2PureError('SM2 ciphertext too short or C1 not uncompressed');
  // B1: C1 on the curve; B2: [h]C1 ≠ O
  const C1 = curve.decodePoint(ct.subarray(0, c1Len));
  if (!C1) throw new Sm2PureError('C1 is not on the curve');
  const C3 = ct.subarray(c1Len, c1Len + 32);
  const C2 = ct.subarray(c1Len + 32);
  // B3: (x2, y2) = [d_B]C1
  const Q = curve.mul(d, C1);
  if (!Q) throw new Sm2PureError('point at infinity');
  const x2 = toBytes(Q.x, s);
  const y2 = toBytes(Q.y, s);
  const t = kdf(Buffer.concat([x2, y2]), C2.length); // B4
  if (allZero(t)) throw new Sm2PureError('all-zero KDF output');
  const M = Buffer.alloc(C2.length);
  for (let i = 0; i < C2.length; i++) M[i] = C2[i] ^ t[i]; // B5
  // B6: u = SM3(x2 ‖ M' ‖ y2) must equal C3 (compared in constant time)
  const u = sm3(x2, M, y2);
  if (!timingSafeEqual(u, C3)) {
    M.fill(0);
    throw new Sm2PureError('C3 mismatch');
  }
  return M;
}
