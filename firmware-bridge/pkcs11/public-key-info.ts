// SubjectPublicKeyInfo (RFC 5280 §4.1.2.7) from the attributes a token returns for a public
// key: CKA_EC_POINT (PKCS#11 v2.40 §2.3.3: DER OCTET STRING around the X9.62 point) or
// CKA_MODULUS + CKA_PUBLIC_EXPONENT. node:crypto builds and validates the DER.
import { createPublicKey } from 'node:crypto';
import type { KeyAlgorithm } from '../../appliance/src/crypto/interfaces.js';
import { YiqianError, Codes } from '../../appliance/src/errors.js';

export interface EcCurve {
  /** CKA_EC_PARAMS: DER OBJECT IDENTIFIER of the named curve. */
  params: Buffer;
  jwkCrv: 'P-256' | 'P-384';
  /** Field size in bytes (each of r, s, X, Y). */
  size: number;
}

export const EC_CURVES: Partial<Record<KeyAlgorithm, EcCurve>> = {
  // 1.2.840.10045.3.1.7 prime256v1
  'ecdsa-p256': { params: Buffer.from('06082a8648ce3d030107', 'hex'), jwkCrv: 'P-256', size: 32 },
  // 1.3.132.0.34 secp384r1
  'ecdsa-p384': { params: Buffer.from('06052b81040022', 'hex'), jwkCrv: 'P-384', size: 48 },
};

/** 1.2.156.10197.1.301 sm2p256v1 (GB/T 35276 / GM/T 0006). */
export const SM2_EC_PARAMS = Buffer.from('06082a811ccf5501822d', 'hex');

export const RSA_BITS: Partial<Record<KeyAlgorithm, number>> = { 'rsa-2048': 2048, 'rsa-3072': 3072, 'rsa-4096': 4096 };

function badKey(en: string, zh: string): never {
  throw new YiqianError(Codes.INVALID_KEY, 500, { zh, en });
}

/**
 * The uncompressed point 04‖X‖Y from a CKA_EC_POINT value. Accepts the DER OCTET STRING the
 * standard prescribes and, for tokens that deviate, the bare point.
 */
export function ecPointFromAttribute(value: Buffer, size: number): Buffer {
  const pointLen = 2 * size + 1;
  if (value.length === pointLen && value[0] === 0x04) return Buffer.from(value);
  // DER OCTET STRING: 04 len point (len < 128) or 04 81 len point.
  let off = -1;
  if (value[0] === 0x04 && value[1] === pointLen && value.length === 2 + pointLen) off = 2;
  else if (value[0] === 0x04 && value[1] === 0x81 && value[2] === pointLen && value.length === 3 + pointLen) off = 3;
  if (off < 0 || value[off] !== 0x04) badKey(`CKA_EC_POINT is not an uncompressed ${size * 8}-bit point`, `CKA_EC_POINT 不是未压缩的 ${size * 8} 位点`);
  return Buffer.from(value.subarray(off));
}

/** SPKI DER for an ECDSA P-256/P-384 public point 04‖X‖Y. */
export function ecSpki(curve: EcCurve, point: Buffer): Buffer {
  const x = point.subarray(1, 1 + curve.size);
  const y = point.subarray(1 + curve.size);
  const key = createPublicKey({ key: { kty: 'EC', crv: curve.jwkCrv, x: x.toString('base64url'), y: y.toString('base64url') }, format: 'jwk' });
  return key.export({ type: 'spki', format: 'der' });
}

/** SPKI DER for an RSA public key (rsaEncryption, RFC 8017 A.1.1). */
export function rsaSpki(modulus: Buffer, publicExponent: Buffer): Buffer {
  const strip = (b: Buffer): Buffer => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    return b.subarray(i);
  };
  const key = createPublicKey({ key: { kty: 'RSA', n: strip(modulus).toString('base64url'), e: strip(publicExponent).toString('base64url') }, format: 'jwk' });
  return key.export({ type: 'spki', format: 'der' });
}
