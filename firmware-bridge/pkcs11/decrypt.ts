// Private-key operations for digital envelopes (Decrypter, appliance/src/crypto/interfaces.ts):
// what a 'decrypt' key looks like on the token, and the PKCS#11 steps that open an envelope's
// key. Used by pkcs11-custody.ts; nothing else calls PKCS#11 for decryption.
//
// Key separation (KeySpec.usage): a 'decrypt' RSA key has CKA_DECRYPT true and CKA_SIGN false,
// a 'decrypt' EC key CKA_DERIVE true and CKA_SIGN false; 'sign' keys keep the templates they
// always had (CKA_DECRYPT false for RSA, no CKA_DERIVE for EC, whose PKCS#11 default is false).
// The usage is recorded in the inventory through the mechanism text (DECRYPT_MECHANISMS), so a
// sign-only key is refused with KEY_USAGE_MISMATCH before the token is asked.
//
// RSA-OAEP: SoftHSM2 2.6 accepts CKM_RSA_PKCS_OAEP only with hashAlg CKM_SHA_1 and
// CKG_MGF1_SHA1 (SHA-256 → CKR_ARGUMENTS_BAD, measured here). OAEP with SHA-256 is therefore
// done as the raw RSA private-key operation in the token (CKM_RSA_X_509, RSADP of RFC 8017
// §5.1.2) and the EME-OAEP decoding of RFC 8017 §7.1.2 step 3 on the host, with one error
// for every failure so the caller learns nothing about where decoding failed (Manger).
// OAEP with SHA-1 uses the token's own CKM_RSA_PKCS_OAEP.
import { createHash, timingSafeEqual } from 'node:crypto';
import { YiqianError, Codes } from '../../appliance/src/errors.js';
import { ck, readAttribute, type Mechanism, type Pkcs11Module, type Template } from './pkcs11-module.js';
import { mechanismUnsupported } from './pkcs11-errors.js';

export const DecryptCodes = {
  /** A sign-only key asked to decrypt (or a decrypt key asked to sign). */
  KEY_USAGE_MISMATCH: 'KEY_USAGE_MISMATCH',
} as const;

export type KeyUsage = 'sign' | 'decrypt';

/** Inventory mechanism texts of 'decrypt' keys (KeyRecord.mechanism). */
export const DECRYPT_MECHANISMS = {
  rsa: 'CKM_RSA_PKCS_OAEP (SHA-1) / CKM_RSA_X_509 + host OAEP-SHA-256 / CKM_RSA_PKCS (decrypt)',
  ec: 'CKM_ECDH1_DERIVE, CKD_NULL (decrypt)',
  /** Must keep ending in "under <wrap mechanism>": the custody reads the wrap mechanism from it. */
  sm2Wrapped: (wrapName: string): string => `in-process SM2 decryption (decrypt) under ${wrapName}`,
} as const;

/** The usage a record was generated for: sign unless its mechanism text says decrypt. */
export function usageOfMechanism(mechanism: string): KeyUsage {
  return /\(decrypt\)/.test(mechanism) ? 'decrypt' : 'sign';
}

export function usageMismatch(label: string, has: KeyUsage, wanted: KeyUsage): YiqianError {
  const zh = wanted === 'decrypt' ? `密钥 "${label}" 是签名密钥，不能用于解密` : `密钥 "${label}" 是加密（解密）密钥，不能用于签名`;
  return new YiqianError(DecryptCodes.KEY_USAGE_MISMATCH, 403, { zh, en: `key "${label}" is a ${has} key and cannot be used to ${wanted}` }, { label, usage: has });
}

export function decryptionFailed(en: string, cause?: unknown): YiqianError {
  return new YiqianError(Codes.DECRYPTION_FAILED, 400, { zh: '解密失败', en: `decryption failed: ${en}` }, undefined, { cause });
}

/** The PKCS#11 calls decryption needs beyond Pkcs11Module (pkcs11js's PKCS11 has them all). */
export interface Pkcs11DecryptCalls {
  C_DecryptInit(session: Buffer, mechanism: Mechanism, key: Buffer): void;
  C_DecryptAsync(session: Buffer, inData: Buffer, outData: Buffer): Promise<Buffer>;
  C_DeriveKeyAsync(session: Buffer, mechanism: Mechanism, key: Buffer, template: Template): Promise<Buffer>;
}

export function decryptCalls(p11: Pkcs11Module): Pkcs11DecryptCalls {
  const c = p11 as Pkcs11Module & Partial<Pkcs11DecryptCalls>;
  if (typeof c.C_DecryptInit !== 'function' || typeof c.C_DecryptAsync !== 'function' || typeof c.C_DeriveKeyAsync !== 'function') {
    throw mechanismUnsupported('this PKCS#11 module binding has no C_Decrypt / C_DeriveKey', '该 PKCS#11 模块不提供 C_Decrypt / C_DeriveKey');
  }
  return c as Pkcs11DecryptCalls;
}

// ---------------------------------------------------------------- templates

/** Extra private-key attributes of an RSA 'decrypt' key (the 'sign' template is untouched). */
export const RSA_DECRYPT_PRIVATE: Template = [
  { type: ck.CKA_SIGN, value: false },
  { type: ck.CKA_DECRYPT, value: true },
];
export const RSA_DECRYPT_PUBLIC: Template = [
  { type: ck.CKA_VERIFY, value: false },
  { type: ck.CKA_ENCRYPT, value: true },
];
/** EC 'decrypt' key: ECDH only (RFC 5753 key agreement). SoftHSM2 defaults CKA_DECRYPT to true: say false. */
export const EC_DECRYPT_PRIVATE: Template = [
  { type: ck.CKA_SIGN, value: false },
  { type: ck.CKA_DECRYPT, value: false },
  { type: ck.CKA_DERIVE, value: true },
];
export const EC_DECRYPT_PUBLIC: Template = [{ type: ck.CKA_VERIFY, value: false }];

// ---------------------------------------------------------------- RSA

export type RsaDecryptAlg = { kind: 'rsa-oaep'; hash: 'sha1' | 'sha256' } | { kind: 'rsa-pkcs1' };

export interface RsaDecryptStep {
  mechanism: Mechanism;
  /** Turns the token's output into the message. */
  finish(out: Buffer): Buffer;
}

const CKZ_DATA_SPECIFIED = 1; // PKCS#11 v2.40 §2.1.8, not exported by pkcs11js

export function rsaDecryptStep(bits: number, alg: RsaDecryptAlg, ciphertext: Buffer): RsaDecryptStep {
  const k = bits / 8;
  // RFC 8017 §7.1.2 step 1b / §7.2.2 step 1: the ciphertext is exactly k octets.
  if (ciphertext.length !== k) throw decryptionFailed(`an RSA-${bits} ciphertext is ${k} bytes, got ${ciphertext.length}`);
  if (alg.kind === 'rsa-pkcs1') return { mechanism: { mechanism: ck.CKM_RSA_PKCS }, finish: (out) => Buffer.from(out) };
  if (alg.kind !== 'rsa-oaep' || (alg.hash !== 'sha1' && alg.hash !== 'sha256')) {
    throw new YiqianError(Codes.UNSUPPORTED_ALGORITHM, 400, { zh: '不支持的 RSA 解密算法', en: `unsupported RSA decryption ${JSON.stringify(alg)}` });
  }
  if (alg.hash === 'sha1') {
    return {
      mechanism: { mechanism: ck.CKM_RSA_PKCS_OAEP, parameter: { type: ck.CK_PARAMS_RSA_OAEP, hashAlg: ck.CKM_SHA_1, mgf: ck.CKG_MGF1_SHA1, source: CKZ_DATA_SPECIFIED } as Mechanism['parameter'] },
      finish: (out) => Buffer.from(out),
    };
  }
  return {
    mechanism: { mechanism: ck.CKM_RSA_X_509 },
    finish: (out) => {
      // CKM_RSA_X_509 output may drop leading zero octets: left-pad to k (I2OSP, RFC 8017 §4.1).
      const em = Buffer.alloc(k);
      out.copy(em, k - Math.min(out.length, k), Math.max(0, out.length - k));
      try {
        return oaepDecode(em, 'sha256');
      } finally {
        em.fill(0);
      }
    },
  };
}

function mgf1(hash: string, seed: Buffer, len: number): Buffer {
  const hLen = createHash(hash).digest().length;
  const out = Buffer.alloc(Math.ceil(len / hLen) * hLen);
  const c = Buffer.alloc(4);
  for (let i = 0; i * hLen < len; i++) {
    c.writeUInt32BE(i);
    createHash(hash).update(seed).update(c).digest().copy(out, i * hLen);
  }
  return out.subarray(0, len);
}

/**
 * EME-OAEP decoding with an empty label (RFC 8017 §7.1.2 step 3). Every failure is the same
 * DECRYPTION_FAILED, decided after the whole block was examined.
 */
export function oaepDecode(em: Buffer, hash: 'sha1' | 'sha256'): Buffer {
  const lHash = createHash(hash).digest();
  const hLen = lHash.length;
  const k = em.length;
  if (k < 2 * hLen + 2) throw decryptionFailed('OAEP block too short');
  const y = em[0];
  const maskedSeed = em.subarray(1, 1 + hLen);
  const maskedDb = em.subarray(1 + hLen);
  const seed = Buffer.from(maskedSeed);
  const seedMask = mgf1(hash, maskedDb, hLen);
  for (let i = 0; i < hLen; i++) seed[i] ^= seedMask[i];
  const db = Buffer.from(maskedDb);
  const dbMask = mgf1(hash, seed, db.length);
  for (let i = 0; i < db.length; i++) db[i] ^= dbMask[i];
  let bad = y | (timingSafeEqual(db.subarray(0, hLen), lHash) ? 0 : 1);
  // Find the 0x01 separator after the zero padding without branching on secret bytes.
  let index = 0;
  let found = 0;
  for (let i = hLen; i < db.length; i++) {
    const isOne = db[i] === 1 ? 1 : 0;
    const isZero = db[i] === 0 ? 1 : 0;
    const first = isOne & (found ^ 1);
    index = first ? i : index;
    found |= isOne;
    bad |= (found ^ 1) & (isZero ^ 1) & (isOne ^ 1);
  }
  bad |= found ^ 1;
  seed.fill(0);
  if (bad !== 0) {
    db.fill(0);
    throw decryptionFailed('OAEP decoding error');
  }
  const m = Buffer.from(db.subarray(index + 1));
  db.fill(0);
  return m;
}

// ---------------------------------------------------------------- ECDH

/**
 * ECDH (PKCS#11 CKM_ECDH1_DERIVE, CKD_NULL): the shared secret Z = x-coordinate of d·Q, as a
 * session-only CKK_GENERIC_SECRET that is read and destroyed at once (RFC 5753 §3.1.1 Z, the
 * input of the X9.63 KDF done by the caller).
 */
export async function ecdhDerive(p11: Pkcs11Module, session: Buffer, privateKey: Buffer, peerPoint: Buffer, fieldSize: number): Promise<Buffer> {
  const calls = decryptCalls(p11);
  const secret = await calls.C_DeriveKeyAsync(
    session,
    { mechanism: ck.CKM_ECDH1_DERIVE, parameter: { type: ck.CK_PARAMS_EC_DH, kdf: ck.CKD_NULL, publicData: peerPoint } as Mechanism['parameter'] },
    privateKey,
    [
      { type: ck.CKA_CLASS, value: ck.CKO_SECRET_KEY },
      { type: ck.CKA_KEY_TYPE, value: ck.CKK_GENERIC_SECRET },
      { type: ck.CKA_TOKEN, value: false },
      { type: ck.CKA_PRIVATE, value: true },
      { type: ck.CKA_SENSITIVE, value: false },
      { type: ck.CKA_EXTRACTABLE, value: true },
      { type: ck.CKA_VALUE_LEN, value: fieldSize },
    ],
  );
  try {
    const z = readAttribute(p11, session, secret, ck.CKA_VALUE);
    if (!z || z.length !== fieldSize) throw decryptionFailed(`the token derived ${z?.length ?? 0} bytes, expected ${fieldSize}`);
    return Buffer.from(z);
  } finally {
    p11.C_DestroyObject(session, secret);
  }
}
