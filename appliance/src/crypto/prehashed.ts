// Signing and verifying a precomputed digest with ECDSA and RSA (SignOptions.prehashed), which
// node:crypto cannot do: its sign/verify always hash. ECDSA runs on the parametric curve code
// (FIPS 186-4 §6.4, SEC 1 §4.1; not constant-time — for software keys only, HSM keys sign in the
// token); RSA uses raw RSA from node:crypto plus the RFC 8017 encodings.
import { constants, createHash, privateDecrypt, privateEncrypt, publicDecrypt, randomBytes, type KeyObject } from 'node:crypto';
import { DerError, Tag, children, integer, readUnsigned, readWhole, seq } from './der.js';
import { type Curve, fromBytes, modInv } from './ec-curve.js';
import type { HashAlgorithm } from './interfaces.js';
import { randomScalar } from './sm2-pure.js';

// ---------- ECDSA ----------

/** bits2int: the leftmost ⌈log2 n⌉ bits of the digest (FIPS 186-4 §6.4 / SEC 1 §4.1.3 step 5). */
function digestToInt(digest: Buffer, n: bigint): bigint {
  const nBits = n.toString(2).length;
  const e = fromBytes(digest);
  const extra = digest.length * 8 - nBits;
  return extra > 0 ? e >> BigInt(extra) : e;
}

/** ECDSA-Sig-Value DER (RFC 3279 §2.2.3) → r, s; strict DER, r, s in [1, n−1]. */
export function decodeEcdsaSignature(der: Buffer, n: bigint): { r: bigint; s: bigint } {
  const items = children(readWhole(der, Tag.SEQUENCE).value);
  if (items.length !== 2) throw new DerError('ECDSA signature must have r and s');
  const r = readUnsigned(items[0]);
  const s = readUnsigned(items[1]);
  if (r < 1n || r >= n || s < 1n || s >= n) throw new DerError('r or s out of range');
  return { r, s };
}

export function ecdsaSignDigest(curve: Curve, d: bigint, digest: Buffer): Buffer {
  const { n } = curve;
  const e = digestToInt(digest, n);
  for (;;) {
    const k = randomScalar(n - 1n);
    const R = curve.mulG(k);
    if (!R) continue;
    const r = R.x % n;
    if (r === 0n) continue;
    const s = (modInv(k, n) * (e + r * d)) % n;
    if (s === 0n) continue;
    return seq(integer(r), integer(s));
  }
}

/** false for any malformed or wrong signature. */
export function ecdsaVerifyDigest(curve: Curve, point: Buffer, digest: Buffer, signature: Buffer): boolean {
  const { n } = curve;
  let rs: { r: bigint; s: bigint };
  try {
    rs = decodeEcdsaSignature(signature, n);
  } catch {
    return false;
  }
  const Q = curve.decodePoint(point);
  if (!Q) return false;
  const w = modInv(rs.s, n);
  const e = digestToInt(digest, n);
  const X = curve.mulAdd((e * w) % n, (rs.r * w) % n, Q);
  return X !== undefined && X.x % n === rs.r;
}

// ---------- RSA (RFC 8017) ----------

/** DER of DigestInfo up to the digest octets (RFC 8017 §9.2 note 1). */
const DIGEST_INFO_PREFIX: Partial<Record<HashAlgorithm, Buffer>> = {
  sha256: Buffer.from('3031300d060960864801650304020105000420', 'hex'),
  sha384: Buffer.from('3041300d060960864801650304020205000430', 'hex'),
  sha512: Buffer.from('3051300d060960864801650304020305000440', 'hex'),
};

function digestInfo(hash: HashAlgorithm, digest: Buffer): Buffer {
  const prefix = DIGEST_INFO_PREFIX[hash];
  if (!prefix) throw new DerError(`no PKCS#1 DigestInfo for ${hash}`);
  return Buffer.concat([prefix, digest]);
}

function modulusBits(key: KeyObject): number {
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (!bits) throw new DerError('not an RSA key');
  return bits;
}

/** MGF1 (RFC 8017 §B.2.1). */
function mgf1(hash: HashAlgorithm, seed: Buffer, length: number): Buffer {
  const out: Buffer[] = [];
  const c = Buffer.alloc(4);
  for (let counter = 0, got = 0; got < length; counter++) {
    c.writeUInt32BE(counter);
    const block = createHash(hash).update(seed).update(c).digest();
    out.push(block);
    got += block.length;
  }
  return Buffer.concat(out).subarray(0, length);
}

/** EMSA-PSS-ENCODE (RFC 8017 §9.1.1), sLen = hLen. */
function pssEncode(hash: HashAlgorithm, mHash: Buffer, emBits: number): Buffer {
  const hLen = mHash.length;
  const sLen = hLen;
  const emLen = Math.ceil(emBits / 8);
  if (emLen < hLen + sLen + 2) throw new DerError('RSA key too small for PSS');
  const salt = randomBytes(sLen);
  const H = createHash(hash).update(Buffer.alloc(8)).update(mHash).update(salt).digest();
  const db = Buffer.concat([Buffer.alloc(emLen - sLen - hLen - 2), Buffer.from([1]), salt]);
  const mask = mgf1(hash, H, emLen - hLen - 1);
  for (let i = 0; i < db.length; i++) db[i] ^= mask[i];
  db[0] &= 0xff >> (8 * emLen - emBits);
  return Buffer.concat([db, H, Buffer.from([0xbc])]);
}

/** EMSA-PSS-VERIFY (RFC 8017 §9.1.2), sLen = hLen. */
function pssVerify(hash: HashAlgorithm, mHash: Buffer, em: Buffer, emBits: number): boolean {
  const hLen = mHash.length;
  const sLen = hLen;
  const emLen = Math.ceil(emBits / 8);
  if (em.length !== emLen || emLen < hLen + sLen + 2 || em[emLen - 1] !== 0xbc) return false;
  const maskedDb = em.subarray(0, emLen - hLen - 1);
  const H = em.subarray(emLen - hLen - 1, emLen - 1);
  const topMask = 0xff >> (8 * emLen - emBits);
  if ((maskedDb[0] & ~topMask) !== 0) return false;
  const mask = mgf1(hash, H, maskedDb.length);
  const db = Buffer.alloc(maskedDb.length);
  for (let i = 0; i < db.length; i++) db[i] = maskedDb[i] ^ mask[i];
  db[0] &= topMask;
  const psLen = emLen - hLen - sLen - 2;
  for (let i = 0; i < psLen; i++) if (db[i] !== 0) return false;
  if (db[psLen] !== 0x01) return false;
  const salt = db.subarray(db.length - sLen);
  const H2 = createHash(hash).update(Buffer.alloc(8)).update(mHash).update(salt).digest();
  return H2.equals(H);
}

export function rsaSignDigest(key: KeyObject, hash: HashAlgorithm, digest: Buffer, padding: 'pkcs1' | 'pss'): Buffer {
  if (padding === 'pkcs1') {
    // RSASSA-PKCS1-v1_5 (RFC 8017 §8.2.1): EM = 00 01 FF… 00 ‖ DigestInfo — privateEncrypt pads so.
    return privateEncrypt({ key, padding: constants.RSA_PKCS1_PADDING }, digestInfo(hash, digest));
  }
  const bits = modulusBits(key);
  const em = pssEncode(hash, digest, bits - 1);
  const k = Math.ceil(bits / 8);
  // RSASP1 (§5.2.1) is raw RSA: privateDecrypt without padding computes m^d mod n.
  return privateDecrypt({ key, padding: constants.RSA_NO_PADDING }, Buffer.concat([Buffer.alloc(k - em.length), em]));
}

export function rsaVerifyDigest(key: KeyObject, hash: HashAlgorithm, digest: Buffer, signature: Buffer, padding: 'pkcs1' | 'pss'): boolean {
  const bits = modulusBits(key);
  const k = Math.ceil(bits / 8);
  if (signature.length !== k) return false;
  try {
    if (padding === 'pkcs1') {
      const recovered = publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, signature);
      return recovered.equals(digestInfo(hash, digest));
    }
    // RSAVP1 (§5.2.2), then EMSA-PSS-VERIFY on the low emLen bytes.
    const m = publicDecrypt({ key, padding: constants.RSA_NO_PADDING }, signature);
    const emLen = Math.ceil((bits - 1) / 8);
    if (m.length > emLen && m.subarray(0, m.length - emLen).some((b) => b !== 0)) return false;
    return pssVerify(hash, digest, m.subarray(m.length - emLen), bits - 1);
  } catch {
    return false;
  }
}
