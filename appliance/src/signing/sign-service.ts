// The signing use-cases (issue 4 item 2): raw signatures over data or a digest, and CMS
// SignedData, with keys the appliance holds for the calling app (HeldKeys.forUse decides grant,
// access code and usage). GB/T 38629 signData / signMessage map onto these two calls.
//
//   raw, SM2     SM2-SM3: data with the default ID 1234567812345678 or a given one (GB/T 35276
//                §5.4), or the digest e = SM3(Z_A ‖ M) (32 bytes; GB/T 32918.2 §6.1 A1–A2)
//   raw, ECDSA   ECDSA-SHA256/384/512 (hash by curve unless given; a digest's length says its hash)
//   raw, RSA     RSA-PKCS1-SHA… (RFC 8017 §8.2) or RSA-PSS-SHA… (§8.1, MGF1 same hash, salt = hash length)
//   CMS          cms-sign.ts: SM2 in the GB/T 35275 form by default (RFC 5652 on request),
//                ECDSA/RSA in RFC 5652; optional CAdES-T signature time-stamp (cades-t.ts)
//
// Hot path (the bench: raw SM2 through HTTPS ≥ 75 % of the engine rate): the held key's Signer
// is cached by HeldKeys; what this service derives from the certificate (validity, CMS signer
// identity) is cached per key id and certificate serial, so a call parses nothing.
import { readCertificate } from '../asn1/certificate.js';
import { hashLength } from '../crypto/hash.js';
import type { KeyAlgorithm, SignOptions } from '../crypto/interfaces.js';
import { Codes, YiqianError } from '../errors.js';
import { CadesCodes, timestampSignature, timestampUnavailable, type SignatureStamper, type SignatureTimestamp } from './cades-t.js';
import { cmsSignerIdentity, signCms, type CmsSignerIdentity } from './cms-sign.js';
import type { CmsForm, CmsSignResult, HeldKeyForUse, HeldKeys, RawSignRequest, RawSignResult, SigningService } from './types.js';

export type { SignatureStamper } from './cades-t.js';

export const SigningCodes = {
  /** Not exactly one of data / digest, a field of the wrong type, sm2Id with a digest or of bad length, an unknown form. */
  SIGN_INPUT_INVALID: 'SIGN_INPUT_INVALID',
  /** A digest whose length does not fit the algorithm (SM2 32, SHA-256 32, SHA-384 48, SHA-512 64). */
  DIGEST_LENGTH_INVALID: 'DIGEST_LENGTH_INVALID',
  /** A hash, padding, ID or form the key cannot do. */
  UNSUPPORTED_ALGORITHM: Codes.UNSUPPORTED_ALGORITHM,
  /** The held key's certificate is not within its validity at the signing time (the code held-keys.ts uses too). */
  HELD_KEY_CERT_EXPIRED: 'HELD_KEY_CERT_EXPIRED',
  TIMESTAMP_UNAVAILABLE: CadesCodes.TIMESTAMP_UNAVAILABLE,
  /** Batch (http/sign-routes.ts): more than MAX_BATCH_ITEMS (413), or none (400). */
  BATCH_TOO_LARGE: 'BATCH_TOO_LARGE',
  BATCH_EMPTY: 'BATCH_EMPTY',
} as const;

export const MAX_BATCH_ITEMS = 1000;
/** GB/T 32918.2 ENTL is 16 bits of bit length; 1 KiB is plenty for any real ID. */
export const MAX_SM2_ID_BYTES = 1024;

const HASHES = ['sha256', 'sha384', 'sha512'] as const;
type ShaHash = (typeof HASHES)[number];
const FORMS: readonly CmsForm[] = ['gbt35275', 'rfc5652'];

function invalid(zh: string, en: string, detail?: Record<string, unknown>): YiqianError {
  return new YiqianError(SigningCodes.SIGN_INPUT_INVALID, 400, { zh, en }, detail);
}

function unsupported(zh: string, en: string, detail?: Record<string, unknown>): YiqianError {
  return new YiqianError(SigningCodes.UNSUPPORTED_ALGORITHM, 400, { zh, en }, detail);
}

function digestLength(got: number, want: number, alg: string): YiqianError {
  return new YiqianError(
    SigningCodes.DIGEST_LENGTH_INVALID,
    400,
    { zh: `摘要长度 ${got} 字节与 ${alg} 不符（应为 ${want} 字节）`, en: `a ${alg} digest is ${want} bytes, got ${got}` },
    { length: got, expected: want, algorithm: alg },
  );
}

function isRsa(a: KeyAlgorithm): boolean {
  return a.startsWith('rsa-');
}

/** The request's own consistency, before any key is looked up. */
function checkRawShape(req: RawSignRequest): void {
  if (typeof req !== 'object' || req === null) throw invalid('请求必须是对象', 'the request must be an object');
  if (typeof req.key !== 'string' || req.key.length === 0) throw invalid('缺少 key（签名密钥的 id 或标签）', 'key (id or label of the signing key) is required', { field: 'key' });
  if (req.accessCode !== undefined && typeof req.accessCode !== 'string') throw invalid('accessCode 必须是字符串', 'accessCode must be a string', { field: 'accessCode' });
  const hasData = req.data !== undefined;
  const hasDigest = req.digest !== undefined;
  if (hasData === hasDigest) throw invalid('data 与 digest 必须且只能给出一个', 'give exactly one of data and digest');
  if (hasData && !Buffer.isBuffer(req.data)) throw invalid('data 必须是字节串', 'data must be bytes', { field: 'data' });
  if (hasDigest && !Buffer.isBuffer(req.digest)) throw invalid('digest 必须是字节串', 'digest must be bytes', { field: 'digest' });
  if (req.sm2Id !== undefined) {
    if (!Buffer.isBuffer(req.sm2Id)) throw invalid('sm2Id 必须是字节串', 'sm2Id must be bytes', { field: 'sm2Id' });
    if (req.sm2Id.length < 1 || req.sm2Id.length > MAX_SM2_ID_BYTES) throw invalid(`sm2Id 长度须为 1–${MAX_SM2_ID_BYTES} 字节`, `sm2Id must be 1–${MAX_SM2_ID_BYTES} bytes`, { field: 'sm2Id' });
    // e = SM3(Z_A ‖ M) already contains the ID: a digest cannot take another one.
    if (hasDigest) throw invalid('sm2Id 只能与 data 一起使用：摘要 e 已包含 Z_A', 'sm2Id goes with data only: the digest e = SM3(Z_A‖M) already includes the ID', { field: 'sm2Id' });
  }
  if (req.hash !== undefined && !HASHES.includes(req.hash)) throw unsupported(`不支持的摘要算法 ${String(req.hash).slice(0, 20)}`, `unsupported hash ${String(req.hash).slice(0, 20)} (sha256, sha384, sha512)`, { field: 'hash' });
  if (req.rsaPadding !== undefined && req.rsaPadding !== 'pkcs1' && req.rsaPadding !== 'pss') {
    throw unsupported(`不支持的 RSA 填充 ${String(req.rsaPadding).slice(0, 20)}`, `unsupported rsaPadding ${String(req.rsaPadding).slice(0, 20)} (pkcs1, pss)`, { field: 'rsaPadding' });
  }
}

interface RawPlan {
  input: Buffer;
  opts: SignOptions;
  algorithm: string;
}

const BY_LENGTH: Record<number, ShaHash> = { 32: 'sha256', 48: 'sha384', 64: 'sha512' };

/** What Signer.sign gets for this key, or the refusal of what the key cannot do. */
function rawPlan(algorithm: KeyAlgorithm, req: RawSignRequest): RawPlan {
  if (algorithm === 'sm2') {
    if (req.hash !== undefined) throw unsupported('SM2 只与 SM3 一起使用，hash 仅用于 ECDSA/RSA', 'SM2 signs with SM3: hash is for ECDSA and RSA keys only', { field: 'hash' });
    if (req.rsaPadding !== undefined) throw unsupported('rsaPadding 仅用于 RSA 密钥', 'rsaPadding is for RSA keys only', { field: 'rsaPadding' });
    if (req.digest) {
      if (req.digest.length !== 32) throw digestLength(req.digest.length, 32, 'SM2 (e = SM3(Z_A‖M))');
      return { input: req.digest, opts: { prehashed: true }, algorithm: 'SM2-SM3' };
    }
    return { input: req.data!, opts: req.sm2Id ? { sm2Id: req.sm2Id } : {}, algorithm: 'SM2-SM3' };
  }
  if (req.sm2Id !== undefined) throw unsupported('sm2Id 仅用于 SM2 密钥', 'sm2Id is for SM2 keys only', { field: 'sm2Id' });
  const rsa = isRsa(algorithm);
  if (!rsa && req.rsaPadding !== undefined) throw unsupported('rsaPadding 仅用于 RSA 密钥', 'rsaPadding is for RSA keys only', { field: 'rsaPadding' });
  let hash: ShaHash;
  if (req.digest) {
    const inferred = BY_LENGTH[req.digest.length];
    hash = req.hash ?? inferred ?? (algorithm === 'ecdsa-p384' ? 'sha384' : 'sha256');
    if (req.digest.length !== hashLength(hash)) throw digestLength(req.digest.length, hashLength(hash), hash.toUpperCase());
  } else {
    hash = req.hash ?? (algorithm === 'ecdsa-p384' ? 'sha384' : 'sha256');
  }
  const H = hash.toUpperCase();
  const opts: SignOptions = { hash, ...(req.digest ? { prehashed: true } : {}) };
  if (!rsa) return { input: req.digest ?? req.data!, opts, algorithm: `ECDSA-${H}` };
  const padding = req.rsaPadding ?? 'pkcs1';
  return { input: req.digest ?? req.data!, opts: { ...opts, rsaPadding: padding }, algorithm: `RSA-${padding === 'pss' ? 'PSS' : 'PKCS1'}-${H}` };
}

/** Derived once per certificate: validity bounds and the CMS signer identity. */
interface Prepared {
  notBefore: number;
  notAfter: number;
  identity?: CmsSignerIdentity;
}

const PREPARED_LIMIT = 4096;

export interface SigningServiceDeps {
  heldKeys: HeldKeys;
  /** The appliance's TSA in process (TsaService); without it CAdES-T requests fail with TIMESTAMP_UNAVAILABLE. */
  stamper?: SignatureStamper;
  /** Milliseconds since the epoch: the signing time. */
  clock?: () => number;
}

export function createSigningService(deps: SigningServiceDeps): SigningService {
  const clock = deps.clock ?? Date.now;
  const prepared = new Map<string, Prepared>();

  function prepare(h: HeldKeyForUse): Prepared {
    const k = `${h.key.id}/${h.key.certSerial}`;
    let p = prepared.get(k);
    if (!p) {
      const c = readCertificate(h.certificate);
      p = { notBefore: c.notBefore.getTime(), notAfter: c.notAfter.getTime() };
      if (prepared.size >= PREPARED_LIMIT) prepared.clear();
      prepared.set(k, p);
    }
    return p;
  }

  /** RFC 5280 §4.1.2.5: the certificate must be valid at the signing time, whatever the HSM would do. */
  function checkValidity(h: HeldKeyForUse, p: Prepared, at: number): void {
    if (at < p.notBefore || at > p.notAfter) {
      const when = new Date(at).toISOString();
      throw new YiqianError(
        SigningCodes.HELD_KEY_CERT_EXPIRED,
        403,
        { zh: `签名密钥 ${h.key.label} 的证书在签名时间 ${when} 不在有效期内`, en: `the certificate of signing key ${h.key.label} is not valid at the signing time ${when}` },
        { key: h.key.id, certSerial: h.key.certSerial, notBefore: new Date(p.notBefore).toISOString(), notAfter: new Date(p.notAfter).toISOString() },
      );
    }
  }

  return {
    async signRaw(appId, req) {
      checkRawShape(req);
      const held = await deps.heldKeys.forUse(req.key, appId, { ...(req.accessCode !== undefined ? { accessCode: req.accessCode } : {}), usage: 'sign' });
      const plan = rawPlan(held.key.algorithm, req);
      checkValidity(held, prepare(held), clock());
      const signature = await held.signer.sign(plan.input, plan.opts);
      const out: RawSignResult = { signature, algorithm: plan.algorithm, key: held.key, certificate: held.certificate };
      return out;
    },

    async signCms(appId, req) {
      if (typeof req !== 'object' || req === null) throw invalid('请求必须是对象', 'the request must be an object');
      if (typeof req.key !== 'string' || req.key.length === 0) throw invalid('缺少 key（签名密钥的 id 或标签）', 'key (id or label of the signing key) is required', { field: 'key' });
      if (req.accessCode !== undefined && typeof req.accessCode !== 'string') throw invalid('accessCode 必须是字符串', 'accessCode must be a string', { field: 'accessCode' });
      if (!Buffer.isBuffer(req.content)) throw invalid('缺少 content（待签原文）', 'content (the bytes to sign) is required', { field: 'content' });
      if (typeof req.detached !== 'boolean') throw invalid('detached 必须是布尔值', 'detached must be a boolean', { field: 'detached' });
      if (req.form !== undefined && !FORMS.includes(req.form)) throw invalid(`未知的 CMS 格式 ${String(req.form).slice(0, 20)}`, `unknown CMS form ${String(req.form).slice(0, 20)} (gbt35275, rfc5652)`, { field: 'form' });
      for (const f of ['timestamp', 'includeChain'] as const) {
        if (req[f] !== undefined && typeof req[f] !== 'boolean') throw invalid(`${f} 必须是布尔值`, `${f} must be a boolean`, { field: f });
      }
      if (req.timestamp && !deps.stamper) throw timestampUnavailable('this appliance has no time-stamp authority configured');
      const held = await deps.heldKeys.forUse(req.key, appId, { ...(req.accessCode !== undefined ? { accessCode: req.accessCode } : {}), usage: 'sign' });
      const algorithm = held.key.algorithm;
      // GB/T 35275 (GM/T 0010) defines SM2 only; ECDSA and RSA have the RFC 5652 form alone.
      if (algorithm !== 'sm2' && req.form === 'gbt35275') throw unsupported('GB/T 35275 格式仅用于 SM2 密钥', `the GB/T 35275 form is for SM2 keys only; ${algorithm} signs in the RFC 5652 form`, { field: 'form' });
      const form: CmsForm = algorithm === 'sm2' ? (req.form ?? 'gbt35275') : 'rfc5652';
      const p = prepare(held);
      // Whole seconds: the signingTime attribute is UTCTime (RFC 5652 §11.3), and the answer names the same instant.
      const signingTime = new Date(Math.floor(clock() / 1000) * 1000);
      checkValidity(held, p, signingTime.getTime());
      p.identity ??= cmsSignerIdentity(algorithm, held.certificate);
      let stamped: SignatureTimestamp | undefined;
      const cms = await signCms({
        signer: held.signer,
        certificate: held.certificate,
        chain: req.includeChain === false ? [] : held.chain,
        content: req.content,
        detached: req.detached,
        form,
        signingTime,
        identity: p.identity,
        ...(req.timestamp
          ? {
              unsignedAttributes: async (signature: Buffer) => {
                stamped = await timestampSignature(deps.stamper, algorithm, signature, appId);
                return [stamped.attribute];
              },
            }
          : {}),
      });
      const out: CmsSignResult = {
        cms,
        form,
        key: held.key,
        signingTime: signingTime.toISOString(),
        ...(stamped ? { timestamp: { genTime: stamped.genTime.toISOString(), serial: stamped.serial } } : {}),
      };
      return out;
    },
  };
}
