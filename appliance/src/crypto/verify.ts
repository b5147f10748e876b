// The Verifier (ARCHITECTURE.md §3): a pure function of (algorithm, SPKI, data, signature).
// SM2 through the SM2 engine (GB/T 32918.2, with the distinguishing ID), ECDSA P-256/P-384 with
// DER signatures (RFC 3279 §2.2.3) and RSA PKCS#1 v1.5 / PSS (RFC 8017) through node:crypto.
import { constants, createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { Codes, YiqianError, fail } from '../errors.js';
import { DerError, Tag, children, expectTag, readBitStringBytes, readOid, readUnsigned, readWhole } from './der.js';
import { P256, P384 } from './ec-curve.js';
import { hashLength } from './hash.js';
import type { HashAlgorithm, KeyAlgorithm, SignOptions } from './interfaces.js';
import { OID } from './oids.js';
import { ecdsaVerifyDigest, rsaVerifyDigest } from './prehashed.js';
import { sm2Verify } from './sm2.js';

const verifyAsync = promisify(nodeVerify) as (
  alg: string | null,
  data: Buffer,
  key: KeyObject | { key: KeyObject; dsaEncoding?: 'der'; padding?: number; saltLength?: number },
  sig: Buffer,
) => Promise<boolean>;

/** Entries of the SPKI cache below; cleared when full. */
const KEY_CACHE_MAX = 1024;

function badKey(en: string, cause?: unknown): never {
  throw new YiqianError(Codes.INVALID_KEY, 400, { zh: '公钥无效', en }, undefined, { cause });
}

interface SpkiInfo {
  algorithm: KeyAlgorithm;
  /** The BIT STRING contents (EC point, or RSAPublicKey DER). */
  key: Buffer;
}

/** A parsed SPKI and, once node:crypto verified with it, its KeyObject. */
interface CachedKey extends SpkiInfo {
  object?: KeyObject;
}

/**
 * Public keys by SPKI bytes, parsed once: every verification needs the key (the YQ1 app key on
 * each request, the signer key of each CMS), and parsing — createPublicKey as much as the
 * verification itself, RSA's modulus in binary for its size — cost more than the lookup. Bounded,
 * cleared when full; only keys that parsed are kept.
 */
const keyCache = new Map<string, CachedKey>();

function parseSpki(spki: Buffer): CachedKey {
  const id = spki.toString('latin1');
  let cached = keyCache.get(id);
  if (!cached) {
    const parsed = parseSpkiBytes(spki);
    // Its own copy of the key bytes: the caller's buffer may be reused once this returns.
    cached = { algorithm: parsed.algorithm, key: Buffer.from(parsed.key) };
    if (keyCache.size >= KEY_CACHE_MAX) keyCache.clear();
    keyCache.set(id, cached);
  }
  return cached;
}

/** node:crypto's KeyObject of a cached key, made on first use. */
function publicKeyObject(cached: CachedKey, spki: Buffer): KeyObject {
  cached.object ??= createPublicKey({ key: spki, format: 'der', type: 'spki' });
  return cached.object;
}

function parseSpkiBytes(spki: Buffer): SpkiInfo {
  let algOid: string;
  let params: ReturnType<typeof children>[number] | undefined;
  let key: Buffer;
  try {
    const items = children(readWhole(spki, Tag.SEQUENCE).value);
    if (items.length !== 2) throw new DerError('SubjectPublicKeyInfo must have 2 elements');
    const alg = children(expectTag(items[0], Tag.SEQUENCE, 'algorithm').value);
    algOid = readOid(alg[0]);
    params = alg[1];
    key = readBitStringBytes(items[1]);
  } catch (e) {
    return badKey(`malformed SubjectPublicKeyInfo: ${(e as Error).message}`, e);
  }
  const unsupported = (what: string): never =>
    fail(Codes.UNSUPPORTED_ALGORITHM, 400, `不支持的公钥算法 ${what}`, `unsupported public key algorithm ${what}`);
  if (algOid === OID.sm2) return { algorithm: 'sm2', key };
  if (algOid === OID.idEcPublicKey) {
    let curve: string;
    try {
      curve = readOid(params);
    } catch (e) {
      return badKey('EC key without a named curve', e);
    }
    if (curve === OID.sm2p256v1) return { algorithm: 'sm2', key };
    if (curve === OID.secp256r1) return { algorithm: 'ecdsa-p256', key };
    if (curve === OID.secp384r1) return { algorithm: 'ecdsa-p384', key };
    return unsupported(`EC curve ${curve}`);
  }
  if (algOid === OID.rsaEncryption || algOid === OID.rsassaPss) {
    let bits: number;
    try {
      // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER } (RFC 8017 §A.1.1)
      const n = readUnsigned(children(readWhole(key, Tag.SEQUENCE).value)[0]);
      bits = n.toString(2).length;
    } catch (e) {
      return badKey('malformed RSAPublicKey', e);
    }
    if (bits === 2048) return { algorithm: 'rsa-2048', key };
    if (bits === 3072) return { algorithm: 'rsa-3072', key };
    if (bits === 4096) return { algorithm: 'rsa-4096', key };
    return unsupported(`RSA-${bits}`);
  }
  return unsupported(algOid);
}

/** Which key algorithm an SPKI holds: SM2 (either OID form), P-256, P-384, RSA 2048/3072/4096. */
export function keyAlgorithmOfSpki(spki: Buffer): KeyAlgorithm {
  return parseSpki(spki).algorithm;
}

/** Default hash per algorithm (interfaces.ts SignOptions). */
export function defaultHash(algorithm: KeyAlgorithm): HashAlgorithm {
  return algorithm === 'sm2' ? 'sm3' : algorithm === 'ecdsa-p384' ? 'sha384' : 'sha256';
}

/** The hash to use with a non-SM2 key; SM3 is only for SM2. */
export function pickHash(algorithm: KeyAlgorithm, opts: SignOptions): HashAlgorithm {
  const hash = opts.hash ?? defaultHash(algorithm);
  if (algorithm === 'sm2' ? hash !== 'sm3' : hash === 'sm3') {
    fail(Codes.UNSUPPORTED_ALGORITHM, 400, `${algorithm} 不能与 ${hash} 一起使用`, `${algorithm} cannot be used with ${hash}`);
  }
  hashLength(hash);
  return hash;
}

function checkDigestLength(hash: HashAlgorithm, data: Buffer): void {
  if (data.length !== hashLength(hash)) {
    fail(Codes.BAD_REQUEST, 400, '预杂凑值长度错误', `prehashed input must be ${hashLength(hash)} bytes for ${hash}`);
  }
}

/**
 * Verifies `signature` over `data` with the key in `spki`. Resolves false for a wrong or
 * malformed signature; rejects (INVALID_KEY / UNSUPPORTED_ALGORITHM / BAD_REQUEST) when the key
 * is unusable, is not of `algorithm`, or the options do not fit the algorithm.
 */
export async function verifySignature(algorithm: KeyAlgorithm, spki: Buffer, data: Buffer, signature: Buffer, opts: SignOptions = {}): Promise<boolean> {
  const info = parseSpki(spki);
  if (info.algorithm !== algorithm) badKey(`key is ${info.algorithm}, not ${algorithm}`);
  const hash = pickHash(algorithm, opts);
  if (algorithm === 'sm2') return sm2Verify(spki, data, signature, { id: opts.sm2Id, prehashed: opts.prehashed });
  if (opts.prehashed) checkDigestLength(hash, data);

  if (algorithm === 'ecdsa-p256' || algorithm === 'ecdsa-p384') {
    const curve = algorithm === 'ecdsa-p256' ? P256 : P384;
    if (opts.prehashed) return ecdsaVerifyDigest(curve, info.key, data, signature);
    let key: KeyObject;
    try {
      key = publicKeyObject(info, spki);
    } catch (e) {
      return badKey('EC public key rejected', e);
    }
    try {
      // DER signatures are node's default for EC keys (dsaEncoding 'der'); the bare KeyObject
      // skips an options object per call (≈ 2 µs of the YQ1 check on every request).
      return await verifyAsync(hash, data, key, signature);
    } catch {
      return false;
    }
  }

  let key: KeyObject;
  try {
    key = publicKeyObject(info, spki);
  } catch (e) {
    return badKey('RSA public key rejected', e);
  }
  const padding = opts.rsaPadding ?? 'pkcs1';
  if (padding !== 'pkcs1' && padding !== 'pss') fail(Codes.BAD_REQUEST, 400, 'RSA 填充方式无效', `unknown RSA padding ${String(padding)}`);
  if (opts.prehashed) return rsaVerifyDigest(key, hash, data, signature, padding);
  try {
    return await verifyAsync(
      hash,
      data,
      padding === 'pss'
        ? { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: hashLength(hash) }
        : { key, padding: constants.RSA_PKCS1_PADDING },
      signature,
    );
  } catch {
    return false;
  }
}
