// What goes into C_SignInit/C_Sign for each algorithm, and what comes out.
// Hashing happens here in JS (SoftHSM2 has no CKM_ECDSA_SHA256, and hashing a large document
// on the host is cheaper than streaming it to an HSM): the token only does the private-key step.
//  - ECDSA: CKM_ECDSA over the digest, returns raw r‖s (PKCS#11 v2.40 §2.3.6) → DER.
//  - RSA PKCS#1 v1.5: CKM_RSA_PKCS over DER DigestInfo (RFC 8017 §9.2 step 2).
//  - RSA-PSS: CKM_RSA_PKCS_PSS over the digest with {hashAlg, MGF1(hash), sLen = hash length}.
import { createHash } from 'node:crypto';
import type { HashAlgorithm, SignOptions } from '../../appliance/src/crypto/interfaces.js';
import { ecdsaRawToDer } from '../../appliance/src/asn1/ecdsa-signature.js';
import { YiqianError, Codes } from '../../appliance/src/errors.js';
import { ck, type Mechanism } from './pkcs11-module.js';
import type { EcCurve } from './public-key-info.js';

export interface HsmSignStep {
  mechanism: Mechanism;
  /** Bytes handed to C_Sign. */
  input: Buffer;
  /** Output buffer size for C_Sign. */
  outLen: number;
  /** C_Sign output → the Signer's signature encoding. */
  finish(raw: Buffer): Buffer;
}

type ShaHash = 'sha256' | 'sha384' | 'sha512';

const HASH_LEN: Record<ShaHash, number> = { sha256: 32, sha384: 48, sha512: 64 };

// DER DigestInfo prefixes: SEQUENCE { AlgorithmIdentifier { oid, NULL }, OCTET STRING (len) } (RFC 8017 §9.2 note 1).
const DIGEST_INFO_PREFIX: Record<ShaHash, Buffer> = {
  sha256: Buffer.from('3031300d060960864801650304020105000420', 'hex'),
  sha384: Buffer.from('3041300d060960864801650304020205000430', 'hex'),
  sha512: Buffer.from('3051300d060960864801650304020305000440', 'hex'),
};

const PSS_PARAMS: Record<ShaHash, { hashAlg: number; mgf: number }> = {
  sha256: { hashAlg: ck.CKM_SHA256, mgf: ck.CKG_MGF1_SHA256 },
  sha384: { hashAlg: ck.CKM_SHA384, mgf: ck.CKG_MGF1_SHA384 },
  sha512: { hashAlg: ck.CKM_SHA512, mgf: ck.CKG_MGF1_SHA512 },
};

function unsupportedHash(hash: HashAlgorithm, alg: string): never {
  throw new YiqianError(Codes.UNSUPPORTED_ALGORITHM, 400, { zh: `${alg} 不支持摘要算法 ${hash}`, en: `${alg} does not support hash ${hash}` }, { hash });
}

/** Picks the hash and produces the digest (or checks a caller's digest). */
function digestFor(data: Buffer, opts: SignOptions | undefined, fallback: ShaHash, alg: string): { hash: ShaHash; digest: Buffer } {
  const requested = opts?.hash;
  if (requested !== undefined && !(requested in HASH_LEN)) unsupportedHash(requested, alg);
  if (opts?.prehashed) {
    // Without an explicit hash the digest length says which one it is.
    const hash = (requested as ShaHash | undefined) ?? (Object.keys(HASH_LEN) as ShaHash[]).find((h) => HASH_LEN[h] === data.length);
    if (!hash || HASH_LEN[hash] !== data.length) {
      throw new YiqianError(Codes.BAD_REQUEST, 400, { zh: `预计算摘要长度 ${data.length} 与摘要算法不符`, en: `prehashed digest of ${data.length} bytes does not match ${requested ?? 'any SHA-2 hash'}` });
    }
    return { hash, digest: data };
  }
  const hash = (requested as ShaHash | undefined) ?? fallback;
  return { hash, digest: createHash(hash).update(data).digest() };
}

export function ecdsaSignStep(curve: EcCurve, data: Buffer, opts?: SignOptions): HsmSignStep {
  const { digest } = digestFor(data, opts, curve.size === 48 ? 'sha384' : 'sha256', `ECDSA ${curve.jwkCrv}`);
  if (opts?.rsaPadding === 'pss') throw new YiqianError(Codes.BAD_REQUEST, 400, { zh: 'ECDSA 不适用 RSA 填充选项', en: 'rsaPadding does not apply to ECDSA' });
  return {
    mechanism: { mechanism: ck.CKM_ECDSA },
    input: digest,
    outLen: 2 * curve.size,
    finish: (raw) => {
      if (raw.length !== 2 * curve.size) throw new YiqianError(Codes.HSM_ERROR, 500, { zh: 'CKM_ECDSA 返回的签名长度错误', en: `CKM_ECDSA returned ${raw.length} bytes, expected ${2 * curve.size}` });
      return ecdsaRawToDer(raw);
    },
  };
}

export function rsaSignStep(bits: number, data: Buffer, opts?: SignOptions): HsmSignStep {
  const { hash, digest } = digestFor(data, opts, 'sha256', 'RSA');
  const outLen = Math.ceil(bits / 8);
  const finish = (raw: Buffer): Buffer => {
    if (raw.length !== outLen) throw new YiqianError(Codes.HSM_ERROR, 500, { zh: 'RSA 签名长度错误', en: `RSA signature of ${raw.length} bytes, expected ${outLen}` });
    return Buffer.from(raw);
  };
  if (opts?.rsaPadding === 'pss') {
    return {
      mechanism: { mechanism: ck.CKM_RSA_PKCS_PSS, parameter: { type: ck.CK_PARAMS_RSA_PSS, ...PSS_PARAMS[hash], saltLen: HASH_LEN[hash] } as Mechanism['parameter'] },
      input: digest,
      outLen,
      finish,
    };
  }
  return { mechanism: { mechanism: ck.CKM_RSA_PKCS }, input: Buffer.concat([DIGEST_INFO_PREFIX[hash], digest]), outLen, finish };
}
