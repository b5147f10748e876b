// Public SM2 API of the appliance (GB/T 32918-2016, GM/T 0009-2012).
//
// Backend: the N-API addon over Node's own OpenSSL (appliance/native/sm2.c, built to
// build/Release/yiqian_sm2.node) when it loads — OpenSSL does the private-key arithmetic and
// the addon's own arithmetic for the SM2 curve verifies (sm2p256-verify.c, ≈ 2× OpenSSL's
// generic EC code), off the main thread on the libuv pool; else the pure-TypeScript path (sm2-pure.ts), which is
// slower, runs on the main thread and is not constant-time. Environment:
//   YIQIAN_SM2_BACKEND=pure-js   force the fallback
//   YIQIAN_SM2_BACKEND=addon     require the addon (fail instead of falling back)
//   YIQIAN_SM2_ADDON=/path.node  load the addon from this file instead of searching build/Release
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Codes, YiqianError, fail } from '../errors.js';
import { log } from '../log.js';
import { findNativeAddon } from '../native-addon.js';
import { DerError, fromPem, toPem } from './der.js';
import { SM2P256V1, fromBytes, toBytes } from './ec-curve.js';
import type { SignOptions, Signer } from './interfaces.js';
import {
  decodeSm2Pkcs8,
  decodeSm2Sec1,
  decodeSm2Signature,
  decodeSm2Spki,
  encodeSm2Pkcs8,
  encodeSm2Signature,
  encodeSm2Spki,
  sm2CiphertextDerToRaw,
  sm2CiphertextRawToDer,
  type DecodedPrivateKey,
} from './sm2-der.js';
import * as pure from './sm2-pure.js';

/** Default distinguishing ID "1234567812345678" (GM/T 0009-2012 §10, GB/T 35276-2017 §5.4). */
export const SM2_DEFAULT_ID: Buffer = Buffer.from(pure.DEFAULT_ID);

export type Sm2CiphertextFormat = 'der' | 'c1c3c2';

export interface Sm2SignOptions {
  /** Distinguishing ID; default SM2_DEFAULT_ID. An empty Buffer means the empty ID (ENTL = 0). */
  id?: Buffer;
  /** `msg` is e = SM3(Z_A ‖ M) (32 bytes) rather than the message. */
  prehashed?: boolean;
}

// ---------- backend ----------

/** Opaque key handle of the addon (an N-API external holding an EVP_PKEY). */
type AddonKey = { readonly __sm2AddonKey: never };

interface Sm2Addon {
  keyFromPrivate(d: Buffer): AddonKey;
  keyFromPublic(point: Buffer): AddonKey;
  publicKey(key: AddonKey): Buffer;
  sign(key: AddonKey, msg: Buffer, id: Buffer): Promise<Buffer>;
  signDigest(key: AddonKey, e: Buffer): Promise<Buffer>;
  verify(key: AddonKey, msg: Buffer, sig: Buffer, id: Buffer): Promise<boolean>;
  verifyDigest(key: AddonKey, e: Buffer, sig: Buffer): Promise<boolean>;
  /** The same two through OpenSSL's generic EC code: the reference for tests and bench/. */
  verifyOpenssl(key: AddonKey, msg: Buffer, sig: Buffer, id: Buffer): Promise<boolean>;
  verifyDigestOpenssl(key: AddonKey, e: Buffer, sig: Buffer): Promise<boolean>;
  /** Verifications that used a key's fixed-base table, and tables built (sm2p256-verify.c). */
  verifyTableStats(): { uses: number; built: number };
  verifyTableReset(): void;
  encrypt(key: AddonKey, plaintext: Buffer): Promise<Buffer>;
  decrypt(key: AddonKey, der: Buffer): Promise<Buffer>;
  readonly openssl: string;
}

let backend: { kind: 'addon'; addon: Sm2Addon } | { kind: 'pure-js' } | undefined;

const ADDON_FILE = 'yiqian_sm2.node';

function findAddon(): string {
  const explicit = process.env.YIQIAN_SM2_ADDON;
  if (explicit) return resolve(explicit);
  const found = findNativeAddon(ADDON_FILE, import.meta.url);
  if (!found) throw new Error(`build/Release/${ADDON_FILE} not found above ${dirname(fileURLToPath(import.meta.url))}`);
  return found;
}

function loadBackend(): NonNullable<typeof backend> {
  if (backend) return backend;
  const wanted = process.env.YIQIAN_SM2_BACKEND;
  if (wanted !== undefined && wanted !== '' && wanted !== 'addon' && wanted !== 'pure-js') {
    fail(Codes.CONFIG_INVALID, 500, `YIQIAN_SM2_BACKEND 取值无效: ${wanted}`, `YIQIAN_SM2_BACKEND must be "addon" or "pure-js", not "${wanted}"`);
  }
  if (wanted === 'pure-js') {
    log.warn({ sm2Backend: 'pure-js', reason: 'YIQIAN_SM2_BACKEND=pure-js' }, 'SM2: using the pure-JS fallback (slower, main thread, not constant-time)');
    backend = { kind: 'pure-js' };
    return backend;
  }
  try {
    const path = findAddon();
    const addon = createRequire(import.meta.url)(path) as Sm2Addon;
    if (typeof addon.sign !== 'function' || typeof addon.keyFromPrivate !== 'function') throw new Error(`${path} is not the yiqian_sm2 addon`);
    backend = { kind: 'addon', addon };
    log.debug({ sm2Backend: 'addon', path, openssl: addon.openssl }, 'SM2: addon loaded');
  } catch (e) {
    if (wanted === 'addon') {
      throw new YiqianError(Codes.INTERNAL, 500, { zh: 'SM2 加速模块无法加载', en: 'SM2 addon cannot be loaded (YIQIAN_SM2_BACKEND=addon)' }, undefined, { cause: e });
    }
    log.warn({ sm2Backend: 'pure-js', reason: (e as Error).message }, 'SM2: addon not loaded, using the pure-JS fallback (slower, main thread, not constant-time)');
    backend = { kind: 'pure-js' };
  }
  return backend;
}

/** Which implementation this process uses (decided once, on first use). */
export function sm2Backend(): 'addon' | 'pure-js' {
  return loadBackend().kind;
}

/** OpenSSL version of the addon, or undefined on the pure-JS path (for the crypto inventory). */
export function sm2AddonOpenSslVersion(): string | undefined {
  const b = loadBackend();
  return b.kind === 'addon' ? b.addon.openssl : undefined;
}

// ---------- input checks ----------

const N = SM2P256V1.n;

function invalidKey(en: string, cause?: unknown): never {
  throw new YiqianError(Codes.INVALID_KEY, 400, { zh: 'SM2 密钥无效', en }, undefined, { cause });
}

/** d as 32 bytes in [1, n−2] (GB/T 32918.1 §6.1) → bigint. */
function checkPrivate(d: Buffer): bigint {
  if (!Buffer.isBuffer(d) || d.length !== 32) invalidKey('SM2 private key must be 32 bytes');
  const v = fromBytes(d);
  if (v < 1n || v > N - 2n) invalidKey('SM2 private key out of range [1, n-2]');
  return v;
}

/** The longest distinguishing ID accepted (OpenSSL's limit; the standard's is 8191). */
export const SM2_MAX_ID_BYTES = 8190;

function checkId(id: Buffer | undefined): Buffer {
  const v = id ?? SM2_DEFAULT_ID;
  // ENTL_A is 16 bits of bit length (GB/T 32918.2 §5.5), so 8191 bytes would fit, but OpenSSL
  // signs only below UINT16_MAX / 8 bytes: one limit for every path, refused as the caller's.
  if (v.length > SM2_MAX_ID_BYTES) fail(Codes.BAD_REQUEST, 400, 'SM2 用户标识过长', `SM2 ID longer than ${SM2_MAX_ID_BYTES} bytes`);
  return v;
}

function checkE(e: Buffer): void {
  if (e.length !== 32) fail(Codes.BAD_REQUEST, 400, '预杂凑值必须为 32 字节', 'prehashed SM2 input e must be 32 bytes');
}

/** 65-byte point, compressed point or SPKI → validated 65-byte 04‖X‖Y. */
function normalizePublic(pub: Buffer): Buffer {
  if (!Buffer.isBuffer(pub) || pub.length === 0) invalidKey('SM2 public key missing');
  let point: Buffer = pub;
  if (pub[0] === 0x30) {
    try {
      point = decodeSm2Spki(pub);
    } catch (e) {
      invalidKey(`not an SM2 SubjectPublicKeyInfo: ${(e as Error).message}`, e);
    }
  }
  const P = SM2P256V1.decodePoint(point);
  if (!P) invalidKey('SM2 public key is not a valid point on sm2p256v1');
  return point.length === 65 ? point : SM2P256V1.encodePoint(P);
}

// ---------- addon key handles ----------

const PUBLIC_CACHE_MAX = 1024;
const publicHandles = new Map<string, AddonKey>();

/**
 * Verification keys are parsed and validated once and kept (LRU), keyed by the bytes the caller
 * gave (SPKI or point): parsing and the on-curve check per call cost more than half a verify's
 * main-thread time.
 */
function publicHandleOf(addon: Sm2Addon, pub: Buffer): AddonKey {
  if (!Buffer.isBuffer(pub)) invalidKey('SM2 public key missing');
  const k = pub.toString('latin1');
  let h = publicHandles.get(k);
  if (h) {
    publicHandles.delete(k);
  } else {
    const point = normalizePublic(pub);
    try {
      h = addon.keyFromPublic(point);
    } catch (e) {
      invalidKey('SM2 public key rejected by OpenSSL', e);
    }
    if (publicHandles.size >= PUBLIC_CACHE_MAX) publicHandles.delete(publicHandles.keys().next().value as string);
  }
  publicHandles.set(k, h);
  return h;
}

function privateHandle(addon: Sm2Addon, d: Buffer): AddonKey {
  try {
    return addon.keyFromPrivate(d);
  } catch (e) {
    return invalidKey('SM2 private key rejected by OpenSSL', e);
  }
}

function internal(en: string, cause: unknown): never {
  throw new YiqianError(Codes.INTERNAL, 500, { zh: 'SM2 运算失败', en }, undefined, { cause });
}

// ---------- keys ----------

export function generateSm2KeyPair(): { privateKey: Buffer; publicKey: Buffer } {
  const privateKey = toBytes(pure.generatePrivate(SM2P256V1), 32);
  return { privateKey, publicKey: sm2PublicKeyFromPrivate(privateKey) };
}

export function sm2PublicKeyFromPrivate(d: Buffer): Buffer {
  const v = checkPrivate(d);
  const b = loadBackend();
  if (b.kind === 'addon') return b.addon.publicKey(privateHandle(b.addon, d));
  return pure.publicKeyFromPrivate(v, SM2P256V1);
}

export function sm2SpkiFromPublicKey(pub: Buffer): Buffer {
  return encodeSm2Spki(normalizePublic(pub));
}

export function sm2PublicKeyFromSpki(spki: Buffer): Buffer {
  if (!Buffer.isBuffer(spki) || spki[0] !== 0x30) invalidKey('not an SM2 SubjectPublicKeyInfo');
  return normalizePublic(spki);
}

/** PKCS#8 "PRIVATE KEY" PEM that `openssl pkey` reads as an SM2 key. */
export function sm2PrivateKeyToPem(d: Buffer): string {
  checkPrivate(d);
  return toPem('PRIVATE KEY', encodeSm2Pkcs8(d, sm2PublicKeyFromPrivate(d)));
}

/** The 32-byte d from a PKCS#8 "PRIVATE KEY" or SEC1 "EC PRIVATE KEY" / "SM2 PRIVATE KEY" PEM of an SM2 key. */
export function sm2PrivateKeyFromPem(pem: string): Buffer {
  let decoded: DecodedPrivateKey | undefined;
  try {
    for (const block of fromPem(pem)) {
      if (block.label === 'PRIVATE KEY') decoded = decodeSm2Pkcs8(block.der);
      // OpenSSL 3.0 `openssl ec` writes SEC1 SM2 keys under the label "SM2 PRIVATE KEY".
      else if (block.label === 'EC PRIVATE KEY' || block.label === 'SM2 PRIVATE KEY') decoded = decodeSm2Sec1(block.der);
      else if (block.label === 'ENCRYPTED PRIVATE KEY') throw new DerError('encrypted PKCS#8 is not supported here: decrypt it first');
      else continue;
      break;
    }
  } catch (e) {
    invalidKey(`not an SM2 private key PEM: ${(e as Error).message}`, e);
  }
  if (!decoded) invalidKey('no PRIVATE KEY or EC PRIVATE KEY block in PEM');
  checkPrivate(decoded.d);
  if (decoded.point) {
    const stored = normalizePublic(decoded.point);
    if (!stored.equals(sm2PublicKeyFromPrivate(decoded.d))) invalidKey('public key stored in the PEM does not match the private key');
  }
  return decoded.d;
}

// ---------- Z_A and e ----------

/** Z_A (GB/T 32918.2 §5.5) of a public key (point or SPKI). */
export function sm2Za(pub: Buffer, id?: Buffer): Buffer {
  return pure.za(normalizePublic(pub), checkId(id), SM2P256V1);
}

/** e = SM3(Z_A ‖ M) (GB/T 32918.2 §6.1 A1–A2): what a prehashed sign/verify takes. */
export function sm2Digest(pub: Buffer, msg: Buffer, id?: Buffer): Buffer {
  return createHash('sm3').update(sm2Za(pub, id)).update(msg).digest();
}

// ---------- sign / verify ----------

async function signWith(d: Buffer, dv: bigint, handle: AddonKey | undefined, pub: () => Buffer, msg: Buffer, opts: Sm2SignOptions): Promise<Buffer> {
  const id = checkId(opts.id);
  if (opts.prehashed) checkE(msg);
  const b = loadBackend();
  if (b.kind === 'addon') {
    const h = handle ?? privateHandle(b.addon, d);
    try {
      return await (opts.prehashed ? b.addon.signDigest(h, msg) : b.addon.sign(h, msg, id));
    } catch (e) {
      return internal('SM2 signing failed in OpenSSL', e);
    }
  }
  const e = opts.prehashed ? msg : pure.digestE(pub(), msg, id, SM2P256V1);
  const { r, s } = pure.signDigest(dv, e, { curve: SM2P256V1 });
  return encodeSm2Signature(r, s);
}

/** SM2 signature (DER SEQUENCE { r, s }) with SM3 and the distinguishing ID (GB/T 32918.2 §6.1). */
export async function sm2Sign(d: Buffer, msg: Buffer, opts: Sm2SignOptions = {}): Promise<Buffer> {
  const dv = checkPrivate(d);
  return signWith(d, dv, undefined, () => pure.publicKeyFromPrivate(dv, SM2P256V1), msg, opts);
}

/**
 * Verifies an SM2 signature (GB/T 32918.2 §7.1). Resolves false — never rejects — for a wrong
 * signature, ID or message, and for malformed, non-canonical or trailing DER and r, s outside
 * [1, n−1]. Rejects (INVALID_KEY) only for an unusable public key and (BAD_REQUEST) for a
 * prehashed input that is not 32 bytes.
 */
export async function sm2Verify(pub: Buffer, msg: Buffer, sig: Buffer, opts: Sm2SignOptions = {}): Promise<boolean> {
  const id = checkId(opts.id);
  if (opts.prehashed) checkE(msg);
  const b = loadBackend();
  if (b.kind === 'addon') {
    // The addon refuses non-canonical or trailing DER (it re-encodes and compares, as OpenSSL
    // does) and r, s outside [1, n−1] (GB/T 32918.2 §7.1 B1, B2), so the signature is not
    // decoded here; the key is validated once per distinct input (publicHandleOf), not per call.
    const h = publicHandleOf(b.addon, pub);
    try {
      return await (opts.prehashed ? b.addon.verifyDigest(h, msg, sig) : b.addon.verify(h, msg, sig, id));
    } catch (e) {
      return internal('SM2 verification could not run in OpenSSL', e);
    }
  }
  const point = normalizePublic(pub);
  let rs: { r: bigint; s: bigint };
  try {
    rs = decodeSm2Signature(sig);
  } catch {
    return false;
  }
  const e = opts.prehashed ? msg : pure.digestE(point, msg, id, SM2P256V1);
  return pure.verifyDigest(point, e, rs.r, rs.s, SM2P256V1);
}

/**
 * sm2Verify through OpenSSL's generic EC code instead of the addon's curve-specific arithmetic
 * (appliance/native/sm2p256-verify.c): the independent reference that tests compare with and
 * bench/ measures against. Needs the addon.
 */
export async function sm2VerifyWithOpenssl(pub: Buffer, msg: Buffer, sig: Buffer, opts: Sm2SignOptions = {}): Promise<boolean> {
  const id = checkId(opts.id);
  if (opts.prehashed) checkE(msg);
  const b = loadBackend();
  if (b.kind !== 'addon') return internal('SM2 verification through OpenSSL needs the addon', new Error(`backend is ${b.kind}`));
  const h = publicHandleOf(b.addon, pub);
  return opts.prehashed ? b.addon.verifyDigestOpenssl(h, msg, sig) : b.addon.verifyOpenssl(h, msg, sig, id);
}

/**
 * How often the addon's verification used a returning key's fixed-base table, and how many such
 * tables it built (appliance/native/sm2p256-verify.c); undefined without the addon.
 */
export function sm2VerifyTableStats(): { uses: number; built: number } | undefined {
  const b = loadBackend();
  return b.kind === 'addon' ? b.addon.verifyTableStats() : undefined;
}

/** Empties that cache of fixed-base tables (tests start from a known state); nothing without the addon. */
export function sm2VerifyTableReset(): void {
  const b = loadBackend();
  if (b.kind === 'addon') b.addon.verifyTableReset();
}

// ---------- encrypt / decrypt ----------

function decryptionFailed(cause?: unknown): never {
  throw new YiqianError(Codes.DECRYPTION_FAILED, 400, { zh: 'SM2 解密失败', en: 'SM2 decryption failed' }, undefined, { cause });
}

/**
 * SM2 public-key encryption with SM3 (GB/T 32918.4 §6.1). 'der' = GM/T 0009 §7.2 SM2Cipher
 * (what OpenSSL, BouncyCastle's CMS and GmSSL exchange); 'c1c3c2' = raw 04‖x‖y ‖ C3 ‖ C2.
 */
export async function sm2Encrypt(pub: Buffer, plaintext: Buffer, format: Sm2CiphertextFormat = 'der'): Promise<Buffer> {
  const point = normalizePublic(pub);
  if (format !== 'der' && format !== 'c1c3c2') fail(Codes.BAD_REQUEST, 400, '密文格式无效', `unknown SM2 ciphertext format ${String(format)}`);
  // klen = 0 makes the "t is all zeros" test of §6.1 A5 always true; OpenSSL refuses it too.
  if (plaintext.length === 0) fail(Codes.BAD_REQUEST, 400, 'SM2 加密的明文不能为空', 'SM2 cannot encrypt an empty message');
  const b = loadBackend();
  if (b.kind === 'addon') {
    let der: Buffer;
    try {
      der = await b.addon.encrypt(publicHandleOf(b.addon, point), plaintext);
    } catch (e) {
      return internal('SM2 encryption failed in OpenSSL', e);
    }
    return format === 'der' ? der : sm2CiphertextDerToRaw(der);
  }
  const raw = pure.encrypt(point, plaintext, { curve: SM2P256V1 });
  return format === 'c1c3c2' ? raw : sm2CiphertextRawToDer(raw);
}

/** Inverse of sm2Encrypt (GB/T 32918.4 §7.1). Any failure → DECRYPTION_FAILED (400). */
export async function sm2Decrypt(d: Buffer, ciphertext: Buffer, format: Sm2CiphertextFormat = 'der'): Promise<Buffer> {
  const dv = checkPrivate(d);
  if (format !== 'der' && format !== 'c1c3c2') fail(Codes.BAD_REQUEST, 400, '密文格式无效', `unknown SM2 ciphertext format ${String(format)}`);
  let raw: Buffer;
  let der: Buffer;
  try {
    if (format === 'der') {
      raw = sm2CiphertextDerToRaw(ciphertext);
      der = ciphertext;
    } else {
      raw = ciphertext;
      der = sm2CiphertextRawToDer(ciphertext);
    }
    // C1 must be a point of the curve (§7.1 B1), whatever the backend.
    if (!SM2P256V1.decodePoint(raw.subarray(0, 65))) throw new DerError('C1 is not on the curve');
  } catch (e) {
    return decryptionFailed(e);
  }
  const b = loadBackend();
  if (b.kind === 'addon') {
    try {
      return await b.addon.decrypt(privateHandle(b.addon, d), der);
    } catch (e) {
      return decryptionFailed(e);
    }
  }
  try {
    return pure.decrypt(dv, raw, SM2P256V1);
  } catch (e) {
    return decryptionFailed(e);
  }
}

// ---------- Signer ----------

/**
 * A Signer over an in-memory SM2 key (wrapped custody unwraps into this). The addon key handle
 * is built once and kept. Honours SignOptions.sm2Id (else opts.id, else the default ID) and
 * prehashed (data = e).
 */
export function createSm2Signer(d: Buffer, opts: { id?: Buffer } = {}): Signer {
  const dv = checkPrivate(d);
  const key = Buffer.from(d);
  const defaultId = checkId(opts.id);
  const b = loadBackend();
  const handle = b.kind === 'addon' ? privateHandle(b.addon, key) : undefined;
  const point = handle && b.kind === 'addon' ? b.addon.publicKey(handle) : pure.publicKeyFromPrivate(dv, SM2P256V1);
  const publicKeyInfo = encodeSm2Spki(point);
  return {
    algorithm: 'sm2',
    publicKeyInfo,
    async sign(data: Buffer, o: SignOptions = {}): Promise<Buffer> {
      if (o.hash !== undefined && o.hash !== 'sm3') {
        fail(Codes.UNSUPPORTED_ALGORITHM, 400, 'SM2 只与 SM3 一起使用', `SM2 signs with SM3 only, not ${o.hash}`);
      }
      return signWith(key, dv, handle, () => point, data, { id: o.sm2Id ?? defaultId, prehashed: o.prehashed });
    },
  };
}
