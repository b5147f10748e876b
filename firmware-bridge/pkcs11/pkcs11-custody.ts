// KeyCustody over a PKCS#11 token (ARCHITECTURE.md §3), modelled on step-ca's kms/pkcs11.
//
// Two custody modes:
//  - hsm: the private key is a token object (CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, never
//    extractable); C_Sign does the work. ECDSA P-256/P-384, RSA 2048/3072/4096, and SM2 when
//    the token has vendor SM2 mechanisms (VendorSm2Profile from config). ECDSA and RSA run
//    C_SignInit + C_Sign as one libuv-pool job (sign-async.ts), off Node's main thread.
//  - wrapped: SM2 on a token without SM2 (SoftHSM2). The scalar is made in process, wrapped
//    under the token's AES-256 KEK, and only the ciphertext is stored (registry); it is
//    unwrapped into memory once, when a signer is first asked for.
//
// SecretWrapper (wrapSecret/unwrapSecret): short secrets such as data-encryption keys are
// wrapped under the same KEK; the caller stores the ciphertext (e.g. the PII data key).
//
// Every key has a KeyRecord in the registry (the inventory). Key references are the record's
// RFC 7512 URI or its id. For a wrapped key the URI names the key in this custody's namespace
// (resolved through the registry, not a token object); its kekUri names the token object.
//
// list() returns every registry record. A record whose token object (or KEK) is missing is still
// returned — KeyInfo has no field for it — and reported with log.warn; checkInventory() returns
// those problems to callers that want them (inspection report, /readyz).
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { monotonicFactory } from 'ulid';
import type {
  CustodyHealth,
  CustodyMode,
  Decrypter,
  KeyAlgorithm,
  KeyCustody,
  KeyInfo,
  KeyRecord,
  KeyRegistry,
  KeySpec,
  SecretWrapper,
  Signer,
  SignOptions,
} from '../../appliance/src/crypto/interfaces.js';
import { YiqianError, Codes } from '../../appliance/src/errors.js';
import { log } from '../../appliance/src/log.js';
import { ck, findObjects, isLoggedIn, pkcs11Error, readAttribute, type Mechanism, type Pkcs11Module, type Template } from './pkcs11-module.js';
import { Pkcs11SessionPool, type HsmObserver, type PooledSession } from './session-pool.js';
import { badRequest, isCkr, keyExists, keyNotFound, mechanismUnsupported, recoveryFor, unwrapFailed } from './pkcs11-errors.js';
import { formatPkcs11Uri, parsePkcs11Uri, pkcs11UriMatches } from './pkcs11-uri.js';
import { EC_CURVES, RSA_BITS, ecPointFromAttribute, ecSpki, rsaSpki } from './public-key-info.js';
import { ecdsaSignStep, rsaSignStep, type HsmSignStep } from './sign-mechanisms.js';
import { WRAP_MECHANISMS, createKek, findKek, unwrapScalar, wrapScalar, type WrapMechanismName } from './key-wrap.js';
import {
  DECRYPT_MECHANISMS,
  EC_DECRYPT_PRIVATE,
  EC_DECRYPT_PUBLIC,
  RSA_DECRYPT_PRIVATE,
  RSA_DECRYPT_PUBLIC,
  decryptCalls,
  decryptionFailed,
  ecdhDerive,
  rsaDecryptStep,
  usageMismatch,
  usageOfMechanism,
  type RsaDecryptAlg,
} from './decrypt.js';
import { SM2_DEFAULT_ID, checkSm2Profile, profileMechanismText, sm2ProfileSignStep, type VendorSm2Profile } from './vendor-sm2-profile.js';
import { loadNativeSign, type NativeSign, type PssParams } from './sign-async.js';

export type { VendorSm2Profile } from './vendor-sm2-profile.js';
export type { HsmObserver, HsmOperationEvent } from './session-pool.js';

const clog = log.child({ component: 'pkcs11-custody' });

/**
 * SM2 done in process, injected (the lead wires it from appliance/src/crypto/sm2.ts) so that
 * firmware-bridge does not depend on the crypto suite.
 */
export interface SoftwareSm2 {
  /** New key pair: 32-byte scalar d, 65-byte public point 04‖X‖Y. */
  generate(): { privateKey: Buffer; publicKey: Buffer };
  /** Signer over a scalar (DER signatures, SM3 with Z_A; honours SignOptions.sm2Id / prehashed). */
  signer(d: Buffer): Signer;
  /** SPKI DER for a 65-byte public point. */
  spki(publicKey: Buffer): Buffer;
  /**
   * e = SM3(Z_A ‖ M) (GB/T 32918.2 §6.1 A1–A4) for a public point; default ID when `id` is
   * absent. Required only with a VendorSm2Profile whose signInput is 'digest-e'.
   */
  digest?(publicKey: Buffer, message: Buffer, id?: Buffer): Buffer | Promise<Buffer>;
  /**
   * SM2 decryption (GB/T 32918.4 §7) of a DER (GM/T 0009) ciphertext with scalar d; any failure
   * DECRYPTION_FAILED. Required only to open envelopes with wrapped SM2 'decrypt' keys.
   */
  decrypt?(d: Buffer, ciphertext: Buffer): Promise<Buffer>;
}

export interface Pkcs11Options {
  /** PKCS#11 library path. */
  module: string;
  tokenLabel: string;
  pin: string;
  /** Sessions in the pool (default 4). */
  poolSize?: number;
  /** Label of the AES-256 key-encryption key for wrapped keys (default 'yiqian-kek'). */
  kekLabel?: string;
  /** Vendor SM2 mechanisms; without it SM2 keys are wrapped. */
  sm2Profile?: VendorSm2Profile;
  softwareSm2: SoftwareSm2;
  observer?: HsmObserver;
  /** Injection point for a test double; default loads the library with pkcs11js. */
  loadModule?: (path: string) => Pkcs11Module;
  /** Key-wrap mechanism for new wrapped keys (default CKM_AES_KEY_WRAP_PAD; existing records keep theirs). */
  wrapMechanism?: WrapMechanismName;
  /** After a failed re-initialisation, fail fast for this long before trying again (default 1000 ms). */
  reconnectIntervalMs?: number;
  /** Called after the module was re-initialised (wire the TLS engine's invalidateSessions here). */
  onReinitialize?: () => void;
  /**
   * hsm-mode ECDSA / RSA signatures run C_SignInit + C_Sign as one libuv-pool job in the
   * yiqian_pkcs11_sign addon (sign-async.ts) instead of pkcs11js's C_SignInit on the main thread
   * (default true; without the addon the custody logs once and uses pkcs11js).
   */
  nativeSign?: boolean;
  /**
   * How often (ms) the token object behind a signing copy is looked up again (signingHandle);
   * default 1000. 0 looks it up before every signature.
   */
  signingCopyRecheckMs?: number;
}

export interface InventoryProblem {
  id: string;
  label: string;
  problem: 'token-object-missing' | 'kek-missing' | 'other-token';
  detail: string;
}

export interface Pkcs11Custody extends KeyCustody, SecretWrapper, Decrypter {
  readonly tokenLabel: string;
  /** Registry records whose key material is not where the record says (never throws for missing keys). */
  checkInventory(): Promise<InventoryProblem[]>;
}

/** Wrapped secrets: 0x01 ‖ mechanism (1 = CKM_AES_KEY_WRAP_PAD, 2 = CKM_AES_KEY_WRAP) ‖ L ‖ KEK label (L bytes) ‖ C_WrapKey output. */
const SECRET_FORMAT = 0x01;
const SECRET_MECHANISMS: readonly WrapMechanismName[] = ['CKM_AES_KEY_WRAP_PAD', 'CKM_AES_KEY_WRAP'];
const SECRET_MIN = 16;
const SECRET_MAX = 1024;
const SECRET_LABEL = 'wrapped secret';

const ALGORITHMS: readonly KeyAlgorithm[] = ['sm2', 'ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096'];
const PRIVATE = ck.CKO_PRIVATE_KEY;
const PUBLIC = ck.CKO_PUBLIC_KEY;

export async function openPkcs11Custody(opts: Pkcs11Options, registry: KeyRegistry): Promise<Pkcs11Custody> {
  if (!opts.softwareSm2) throw new YiqianError(Codes.CONFIG_INVALID, 500, { zh: '缺少软件 SM2 实现', en: 'softwareSm2 is required' });
  const profile = opts.sm2Profile ? checkSm2Profile(opts.sm2Profile) : undefined;
  if (profile?.signInput === 'digest-e' && !opts.softwareSm2.digest) {
    throw new YiqianError(Codes.CONFIG_INVALID, 500, {
      zh: `SM2 厂商配置 "${profile.name}" 需要在主机上计算 e，但软件 SM2 未提供 digest()`,
      en: `vendor SM2 profile "${profile.name}" takes e = SM3(Z‖M), but softwareSm2.digest is not provided`,
    });
  }
  const wrapName = opts.wrapMechanism ?? 'CKM_AES_KEY_WRAP_PAD';
  if (!(wrapName in WRAP_MECHANISMS)) throw new YiqianError(Codes.CONFIG_INVALID, 500, { zh: '未知的密钥封装机制', en: `unknown wrap mechanism ${String(wrapName)}` });
  const pool = await Pkcs11SessionPool.open({
    module: opts.module,
    tokenLabel: opts.tokenLabel,
    pin: opts.pin,
    poolSize: opts.poolSize,
    observer: opts.observer,
    loadModule: opts.loadModule,
    reconnectIntervalMs: opts.reconnectIntervalMs,
    onReinitialize: opts.onReinitialize,
  });
  // After open: the addon dlopen()s the library pkcs11js has loaded and initialised (same instance).
  const nativeSign = opts.nativeSign === false ? undefined : loadNativeSign(opts.module);
  return new Pkcs11KeyCustody(pool, registry, opts, profile, wrapName, nativeSign);
}

interface CachedHandle {
  handle: Buffer;
  epoch: number;
}

/** A session-object copy of a token private key, used for signing (signingHandle). */
interface SigningCopy {
  handle: Buffer;
  epoch: number;
  /** The token object it was copied from, and when that was last seen on the token. */
  source: Buffer;
  seenAt: number;
}

/** How often a signing copy's token object is looked up again by default (a key destroyed elsewhere stops signing within this). */
const COPY_RECHECK_MS = 1000;
/** Inputs per signMany job (the addon allows 256): 16 × ~0.1 ms bounds the wait a batch adds. */
const SIGN_BATCH_MAX = 16;

interface QueuedSign {
  st: HsmSignStep;
  resolve: (signature: Buffer) => void;
  reject: (e: unknown) => void;
}

class Pkcs11KeyCustody implements Pkcs11Custody {
  readonly tokenLabel: string;
  private readonly kekLabel: string;
  private readonly nextId = monotonicFactory();
  private readonly handles = new Map<string, CachedHandle>();
  /** Per key label: its signing copy, or 'token' where the module refused C_CopyObject (sign with the token object). */
  private readonly signingCopies = new Map<string, SigningCopy | 'token'>();
  /** Signatures waiting for this iteration's signMany job, by key id / mechanism / output size. */
  private readonly signQueues = new Map<string, QueuedSign[]>();
  private readonly signers = new Map<string, Promise<Signer>>();
  private readonly generating = new Set<string>();
  private kekReady: Promise<void> | undefined;

  constructor(
    private readonly pool: Pkcs11SessionPool,
    private readonly registry: KeyRegistry,
    private readonly opts: Pkcs11Options,
    private readonly profile: Required<VendorSm2Profile> | undefined,
    private readonly wrapName: WrapMechanismName,
    private readonly nativeSign: NativeSign | undefined,
  ) {
    this.tokenLabel = opts.tokenLabel;
    this.kekLabel = opts.kekLabel ?? 'yiqian-kek';
  }

  // ---------------------------------------------------------------- generate

  async generate(spec: KeySpec): Promise<KeyInfo> {
    this.checkSpec(spec);
    // Vendor SM2 profiles name sign mechanisms only: SM2 decryption keys are wrapped by default.
    const mode: CustodyMode = spec.mode ?? (spec.algorithm === 'sm2' && (!this.profile || spec.usage === 'decrypt') ? 'wrapped' : 'hsm');
    if (mode === 'wrapped' && spec.algorithm !== 'sm2') {
      throw new YiqianError(Codes.UNSUPPORTED_ALGORITHM, 400, {
        zh: `${spec.algorithm} 密钥在密码设备内生成和使用（hsm 模式），不支持封装模式`,
        en: `${spec.algorithm} keys live in the HSM (hsm mode); wrapped mode is for SM2 on tokens without SM2`,
      });
    }
    if (mode === 'hsm' && spec.algorithm === 'sm2' && !this.profile) {
      throw mechanismUnsupported(
        `token "${this.tokenLabel}" has no SM2 profile configured: SM2 keys can only be wrapped`,
        `令牌 "${this.tokenLabel}" 未配置 SM2 厂商机制：SM2 密钥只能使用封装模式`,
      );
    }
    if (mode === 'hsm' && spec.algorithm === 'sm2' && spec.usage === 'decrypt') {
      throw mechanismUnsupported(`the SM2 profile "${this.profile?.name ?? ''}" has no decryption mechanism: SM2 decryption keys are wrapped`, 'SM2 厂商配置没有解密机制：SM2 解密密钥只能使用封装模式');
    }
    if (spec.label === this.kekLabel) throw keyExists(spec.label, 'it is the label of the key-encryption key');
    if (this.generating.has(spec.label)) throw keyExists(spec.label, 'being generated right now');
    this.generating.add(spec.label);
    try {
      if (await this.registry.getByLabel(spec.label)) throw keyExists(spec.label, 'key inventory');
      // A key object with the label made outside the custody (a key ceremony with pkcs11-tool)
      // also blocks it; a certificate or data object sharing the label is fine.
      await this.pool.run('find', async (p11, s) => {
        for (const cls of [PRIVATE, PUBLIC, ck.CKO_SECRET_KEY]) {
          if (findObjects(p11, s.handle, [{ type: ck.CKA_CLASS, value: cls }, { type: ck.CKA_LABEL, value: spec.label }], 1).length > 0) {
            throw keyExists(spec.label, `a key object on token "${this.tokenLabel}"`);
          }
        }
      });
      const record = mode === 'wrapped' ? await this.generateWrapped(spec) : await this.generateInToken(spec);
      return toKeyInfo(record);
    } finally {
      this.generating.delete(spec.label);
    }
  }

  private checkSpec(spec: KeySpec): void {
    if (!spec || !ALGORITHMS.includes(spec.algorithm)) {
      throw new YiqianError(Codes.UNSUPPORTED_ALGORITHM, 400, { zh: `不支持的密钥算法 ${String(spec?.algorithm)}`, en: `unsupported key algorithm ${String(spec?.algorithm)}` });
    }
    if (typeof spec.label !== 'string' || spec.label.length === 0 || Buffer.byteLength(spec.label) > 128 || /[\p{Cc}]/u.test(spec.label) || spec.label.trim() !== spec.label) {
      throw badRequest('label must be 1–128 bytes of UTF-8 without control characters or surrounding blanks', '标签必须为1至128字节的UTF-8文本，不含控制字符和首尾空白', { label: spec.label });
    }
    if (typeof spec.purpose !== 'string' || spec.purpose.trim() === '') throw badRequest('purpose is required (key inventory)', '必须说明密钥用途（密钥清单）');
    if (spec.mode !== undefined && spec.mode !== 'hsm' && spec.mode !== 'wrapped') throw badRequest(`unknown custody mode ${String(spec.mode)}`, `未知的密钥保管模式 ${String(spec.mode)}`);
    if (spec.usage !== undefined && spec.usage !== 'sign' && spec.usage !== 'decrypt') throw badRequest(`unknown key usage ${String(spec.usage)}`, `未知的密钥用途 ${String(spec.usage)}`);
  }

  private keyUri(label: string, id?: Buffer): string {
    return formatPkcs11Uri({ token: this.tokenLabel, object: label, type: 'private', id });
  }

  private kekUri(label = this.kekLabel): string {
    return formatPkcs11Uri({ token: this.tokenLabel, object: label, type: 'secret-key' });
  }

  private async generateInToken(spec: KeySpec): Promise<KeyRecord> {
    const ckaId = randomBytes(16);
    const common = (cls: number): Template => [
      { type: ck.CKA_CLASS, value: cls },
      { type: ck.CKA_TOKEN, value: true },
      { type: ck.CKA_LABEL, value: spec.label },
      { type: ck.CKA_ID, value: ckaId },
    ];
    const privateTemplate: Template = [
      ...common(PRIVATE),
      { type: ck.CKA_PRIVATE, value: true },
      { type: ck.CKA_SENSITIVE, value: true },
      { type: ck.CKA_EXTRACTABLE, value: false },
      { type: ck.CKA_SIGN, value: true },
    ];
    const publicTemplate: Template = [...common(PUBLIC), { type: ck.CKA_PRIVATE, value: false }, { type: ck.CKA_VERIFY, value: true }];
    const decrypt = spec.usage === 'decrypt';
    let mechanism: number;
    let mechanismText: string;
    let readSpki: (p11: Pkcs11Module, s: Buffer, pub: Buffer) => Buffer;
    const curve = EC_CURVES[spec.algorithm];
    const bits = RSA_BITS[spec.algorithm];
    if (curve) {
      mechanism = ck.CKM_EC_KEY_PAIR_GEN;
      mechanismText = 'CKM_ECDSA';
      publicTemplate.push({ type: ck.CKA_KEY_TYPE, value: ck.CKK_EC }, { type: ck.CKA_EC_PARAMS, value: curve.params });
      privateTemplate.push({ type: ck.CKA_KEY_TYPE, value: ck.CKK_EC });
      readSpki = (p11, s, pub) => ecSpki(curve, ecPointFromAttribute(mustRead(p11, s, pub, ck.CKA_EC_POINT, 'CKA_EC_POINT'), curve.size));
      if (decrypt) {
        mechanismText = DECRYPT_MECHANISMS.ec;
        withUsage(privateTemplate, EC_DECRYPT_PRIVATE);
        withUsage(publicTemplate, EC_DECRYPT_PUBLIC);
      }
    } else if (bits) {
      mechanism = ck.CKM_RSA_PKCS_KEY_PAIR_GEN;
      mechanismText = 'CKM_RSA_PKCS / CKM_RSA_PKCS_PSS';
      publicTemplate.push(
        { type: ck.CKA_KEY_TYPE, value: ck.CKK_RSA },
        { type: ck.CKA_MODULUS_BITS, value: bits },
        { type: ck.CKA_PUBLIC_EXPONENT, value: Buffer.from([0x01, 0x00, 0x01]) },
        { type: ck.CKA_ENCRYPT, value: false },
      );
      privateTemplate.push({ type: ck.CKA_KEY_TYPE, value: ck.CKK_RSA }, { type: ck.CKA_DECRYPT, value: false });
      readSpki = (p11, s, pub) => rsaSpki(mustRead(p11, s, pub, ck.CKA_MODULUS, 'CKA_MODULUS'), mustRead(p11, s, pub, ck.CKA_PUBLIC_EXPONENT, 'CKA_PUBLIC_EXPONENT'));
      if (decrypt) {
        mechanismText = DECRYPT_MECHANISMS.rsa;
        withUsage(privateTemplate, RSA_DECRYPT_PRIVATE);
        withUsage(publicTemplate, RSA_DECRYPT_PUBLIC);
      }
    } else {
      const p = this.profile as Required<VendorSm2Profile>;
      mechanism = p.keyGenMechanism;
      mechanismText = profileMechanismText(p);
      publicTemplate.push({ type: ck.CKA_KEY_TYPE, value: p.keyType }, { type: ck.CKA_EC_PARAMS, value: p.ecParams });
      privateTemplate.push({ type: ck.CKA_KEY_TYPE, value: p.keyType });
      readSpki = (p11, s, pub) => this.opts.softwareSm2.spki(ecPointFromAttribute(mustRead(p11, s, pub, ck.CKA_EC_POINT, 'CKA_EC_POINT'), 32));
    }

    const { spki, priv } = await this.pool.run('generate', async (p11, s) => {
      const pair = await p11.C_GenerateKeyPairAsync(s.handle, { mechanism }, publicTemplate, privateTemplate);
      try {
        return { spki: readSpki(p11, s.handle, pair.publicKey), priv: pair.privateKey };
      } catch (e) {
        destroyQuietly(p11, s.handle, [pair.privateKey, pair.publicKey]);
        throw e;
      }
    });
    const record: KeyRecord = {
      id: this.nextId(),
      uri: this.keyUri(spec.label, ckaId),
      label: spec.label,
      algorithm: spec.algorithm,
      mode: 'hsm',
      token: this.tokenLabel,
      mechanism: mechanismText,
      createdAt: new Date().toISOString(),
      purpose: spec.purpose,
      publicKeyInfo: spki.toString('base64'),
    };
    try {
      await this.registry.put(record);
    } catch (e) {
      // Nothing half-written stays behind: a key without an inventory record is removed.
      await this.destroyTokenObjects(record).catch((err) => clog.error({ err, label: spec.label }, 'could not remove token objects after the registry write failed'));
      throw e;
    }
    this.handles.set(record.label, { handle: priv, epoch: this.pool.epoch });
    clog.info({ id: record.id, label: record.label, algorithm: record.algorithm, mode: record.mode }, 'key generated in the token');
    return record;
  }

  private async ensureKek(): Promise<void> {
    this.kekReady ??= this.pool
      .run('kek', async (p11, s) => {
        if (findKek(p11, s.handle, this.kekLabel)) return;
        await createKek(p11, s.handle, this.kekLabel);
        clog.info({ token: this.tokenLabel, kek: this.kekLabel }, 'key-encryption key created in the token');
      })
      .catch((e) => {
        this.kekReady = undefined;
        throw e;
      });
    return this.kekReady;
  }

  private async generateWrapped(spec: KeySpec): Promise<KeyRecord> {
    await this.ensureKek();
    const mechanism = WRAP_MECHANISMS[this.wrapName];
    const { privateKey: d, publicKey } = this.opts.softwareSm2.generate();
    let wrapped: Buffer;
    let spki: Buffer;
    try {
      if (d.length !== 32 || publicKey.length !== 65) throw new YiqianError(Codes.INTERNAL, 500, { zh: 'SM2 密钥长度错误', en: 'softwareSm2.generate returned a malformed key' });
      spki = this.opts.softwareSm2.spki(publicKey);
      wrapped = await this.pool.run('wrap', async (p11, s) => {
        const kek = findKek(p11, s.handle, this.kekLabel);
        if (!kek) {
          this.kekReady = undefined;
          this.pool.probeToken();
          throw unwrapFailed(spec.label, `the key-encryption key "${this.kekLabel}" disappeared from the token`);
        }
        const ct = await wrapScalar(p11, s.handle, kek, mechanism, d);
        // Never store a ciphertext that does not unwrap to the key (e.g. a token whose padded wrap is broken).
        const back = await unwrapScalar(p11, s.handle, kek, mechanism, ct);
        try {
          if (back.length !== d.length || !timingSafeEqual(back, d)) throw unwrapFailed(spec.label, `${this.wrapName} round trip did not return the key`);
        } finally {
          back.fill(0);
        }
        return ct;
      });
    } finally {
      d.fill(0);
    }
    const record: KeyRecord = {
      id: this.nextId(),
      uri: this.keyUri(spec.label),
      label: spec.label,
      algorithm: 'sm2',
      mode: 'wrapped',
      token: this.tokenLabel,
      kekUri: this.kekUri(),
      mechanism: spec.usage === 'decrypt' ? DECRYPT_MECHANISMS.sm2Wrapped(this.wrapName) : `in-process SM2 under ${this.wrapName}`,
      createdAt: new Date().toISOString(),
      purpose: spec.purpose,
      publicKeyInfo: spki.toString('base64'),
      wrappedKey: wrapped.toString('base64'),
    };
    await this.registry.put(record);
    clog.info({ id: record.id, label: record.label, kek: record.kekUri }, 'SM2 key generated in process and stored wrapped');
    return record;
  }

  // ---------------------------------------------------------------- secrets (SecretWrapper)

  async wrapSecret(plain: Buffer): Promise<Buffer> {
    if (!Buffer.isBuffer(plain) || plain.length < SECRET_MIN || plain.length > SECRET_MAX || plain.length % 8 !== 0) {
      throw badRequest(
        `a secret to wrap must be ${SECRET_MIN}–${SECRET_MAX} bytes and a multiple of 8 (got ${Buffer.isBuffer(plain) ? plain.length : typeof plain})`,
        `待封装的秘密长度必须为 ${SECRET_MIN}–${SECRET_MAX} 字节且为 8 的倍数`,
      );
    }
    await this.ensureKek();
    const mechanism = WRAP_MECHANISMS[this.wrapName];
    const ct = await this.pool.run('wrap', async (p11, s) => {
      const kek = findKek(p11, s.handle, this.kekLabel);
      if (!kek) {
        this.kekReady = undefined;
        this.pool.probeToken();
        throw unwrapFailed(SECRET_LABEL, `the key-encryption key "${this.kekLabel}" disappeared from the token`);
      }
      const wrapped = await wrapScalar(p11, s.handle, kek, mechanism, plain);
      // Never hand out a ciphertext that does not unwrap to the secret.
      const back = await unwrapScalar(p11, s.handle, kek, mechanism, wrapped);
      try {
        if (back.length !== plain.length || !timingSafeEqual(back, plain)) throw unwrapFailed(SECRET_LABEL, `${this.wrapName} round trip did not return the secret`);
      } finally {
        back.fill(0);
      }
      return wrapped;
    });
    const label = Buffer.from(this.kekLabel, 'utf8');
    if (label.length === 0 || label.length > 255) throw badRequest('the KEK label must be 1–255 bytes', 'KEK 标签长度必须为 1–255 字节');
    return Buffer.concat([Buffer.from([SECRET_FORMAT, SECRET_MECHANISMS.indexOf(this.wrapName) + 1, label.length]), label, ct]);
  }

  async unwrapSecret(wrapped: Buffer): Promise<Buffer> {
    if (!Buffer.isBuffer(wrapped) || wrapped.length < 4 || wrapped[0] !== SECRET_FORMAT) throw unwrapFailed(SECRET_LABEL, 'not a wrapped secret of this format');
    const mechName = SECRET_MECHANISMS[wrapped[1] - 1];
    const labelEnd = 3 + wrapped[2];
    const ct = wrapped.subarray(labelEnd);
    if (mechName === undefined || wrapped[2] === 0 || ct.length < 24 || ct.length % 8 !== 0) throw unwrapFailed(SECRET_LABEL, 'the wrapped secret has a bad layout');
    const kekLabel = wrapped.subarray(3, labelEnd).toString('utf8');
    const plain = await this.pool.run('unwrap', async (p11, s) => {
      const kek = findKek(p11, s.handle, kekLabel);
      if (!kek) {
        this.pool.probeToken();
        throw unwrapFailed(SECRET_LABEL, `the key-encryption key "${kekLabel}" is not on token "${this.tokenLabel}"`);
      }
      try {
        return await unwrapScalar(p11, s.handle, kek, WRAP_MECHANISMS[mechName], ct);
      } catch (e) {
        if (recoveryFor(e) !== 'none') throw e;
        throw unwrapFailed(SECRET_LABEL, `C_UnwrapKey failed (${e instanceof Error ? e.message : String(e)})`, e);
      }
    });
    if (plain.length < SECRET_MIN || plain.length % 8 !== 0) {
      plain.fill(0);
      throw unwrapFailed(SECRET_LABEL, `unwrapped ${plain.length} bytes, not a secret wrapped by wrapSecret`);
    }
    return plain;
  }

  // ---------------------------------------------------------------- use

  async signer(ref: string): Promise<Signer> {
    const record = await this.resolve(ref);
    if (usageOfMechanism(record.mechanism) !== 'sign') throw usageMismatch(record.label, 'decrypt', 'sign');
    let p = this.signers.get(record.id);
    if (!p) {
      p = record.mode === 'wrapped' ? this.unwrapSigner(record) : this.tokenSigner(record);
      this.signers.set(record.id, p);
      p.catch(() => this.signers.delete(record.id));
    }
    return p;
  }

  async publicKey(ref: string): Promise<Buffer> {
    const record = await this.resolve(ref);
    return Buffer.from(record.publicKeyInfo, 'base64');
  }

  private async tokenSigner(record: KeyRecord): Promise<Signer> {
    // Fail early if the key is not on the token (also warms the handle cache).
    await this.pool.run('find', async (p11, s) => {
      this.privateHandle(p11, s, record);
    });
    const spki = Buffer.from(record.publicKeyInfo, 'base64');
    const curve = EC_CURVES[record.algorithm];
    const bits = RSA_BITS[record.algorithm];
    let step: (data: Buffer, opts?: SignOptions) => Promise<HsmSignStep>;
    if (curve) step = async (data, opts) => ecdsaSignStep(curve, data, opts);
    else if (bits) step = async (data, opts) => rsaSignStep(bits, data, opts);
    else if (record.algorithm === 'sm2' && this.profile) {
      const profile = this.profile;
      const point = spki.subarray(spki.length - 65);
      const digest = this.opts.softwareSm2.digest?.bind(this.opts.softwareSm2);
      step = (data, opts) =>
        sm2ProfileSignStep(profile, data, opts, async (m, id) => {
          if (!digest) throw mechanismUnsupported('softwareSm2.digest is missing', '缺少 softwareSm2.digest');
          return Buffer.from(await digest(point, m, id.equals(SM2_DEFAULT_ID) ? undefined : id));
        });
    } else {
      throw mechanismUnsupported(`key "${record.label}" needs a vendor SM2 profile, and none is configured`, `密钥 "${record.label}" 需要 SM2 厂商配置，但未配置`);
    }
    return {
      algorithm: record.algorithm,
      publicKeyInfo: spki,
      sign: async (data: Buffer, opts?: SignOptions) => {
        if (!Buffer.isBuffer(data)) throw badRequest('data to sign must be bytes', '待签名数据必须是字节');
        const st = await step(data, opts);
        const job = this.nativeSign && (curve || bits) ? nativeJob(st.mechanism) : undefined;
        return job && job.param === null ? this.signBatched(record, job.type, st) : this.signOne(record, st, job);
      },
    };
  }

  /** One signature on a pooled session (with the pool's recovery and one retry). */
  private signOne(record: KeyRecord, st: HsmSignStep, job: { type: number; param: PssParams | null } | undefined): Promise<Buffer> {
    const native = this.nativeSign;
    // Either way a failure leaves no signing operation active: a failed C_SignInit starts none,
    // and a C_Sign that fails (other than CKR_BUFFER_TOO_SMALL) ends it (PKCS#11 v2.40 §5.12).
    const signOnce = async (p11: Pkcs11Module, s: PooledSession, handle: Buffer): Promise<Buffer> => {
      if (native && job) return native.sign(s.handle, job.type, job.param, handle, st.input, st.outLen);
      p11.C_SignInit(s.handle, st.mechanism, handle);
      return p11.C_SignAsync(s.handle, st.input, Buffer.alloc(st.outLen));
    };
    return this.pool.run('sign', async (p11, s) => {
      let raw: Buffer;
      try {
        raw = await signOnce(p11, s, this.signingHandle(p11, s, record));
      } catch (e) {
        if (!isCkr(e, ck.CKR_OBJECT_HANDLE_INVALID, ck.CKR_KEY_HANDLE_INVALID)) throw e;
        // Handles change when the token logs out or the module is re-initialised, and a
        // signing copy ends with the session that made it: look both up again.
        this.handles.delete(record.label);
        if (this.signingCopies.get(record.label) !== 'token') this.signingCopies.delete(record.label);
        raw = await signOnce(p11, s, this.signingHandle(p11, s, record));
      }
      return st.finish(raw);
    });
  }

  /**
   * Signatures by one key with a parameterless mechanism (ECDSA, RSA PKCS#1 v1.5) asked for in the
   * same event-loop iteration go to the HSM as ONE native job (signMany: C_SignInit + C_Sign per
   * input, in turn, on one session). Each job costs a wake-up of a pool thread and a hand-back to
   * the event loop; at thousands of tokens a second those hand-overs were a tenth of the main
   * thread's time (bench/tsa.ts). A lone request is signed alone, and if a batch fails for any
   * reason its inputs are signed one by one through signOne, with its recovery and retry.
   */
  private signBatched(record: KeyRecord, type: number, st: HsmSignStep): Promise<Buffer> {
    const key = `${record.id}/${type}/${st.outLen}`;
    return new Promise<Buffer>((resolve, reject) => {
      let queue = this.signQueues.get(key);
      if (!queue) {
        queue = [];
        this.signQueues.set(key, queue);
        setImmediate(() => this.flushSignQueue(record, type, key));
      }
      queue.push({ st, resolve, reject });
    });
  }

  private flushSignQueue(record: KeyRecord, type: number, key: string): void {
    const queue = this.signQueues.get(key) ?? [];
    this.signQueues.delete(key);
    const alone = (w: QueuedSign) => this.signOne(record, w.st, { type, param: null }).then(w.resolve, w.reject);
    for (let at = 0; at < queue.length; at += SIGN_BATCH_MAX) {
      const batch = queue.slice(at, at + SIGN_BATCH_MAX);
      if (batch.length === 1) {
        void alone(batch[0]);
        continue;
      }
      const native = this.nativeSign!;
      this.pool
        .run('sign-batch', (p11, s) => native.signMany(s.handle, type, null, this.signingHandle(p11, s, record), batch.map((w) => w.st.input), batch[0].st.outLen))
        .then(
          (raws) =>
            batch.forEach((w, i) => {
              try {
                w.resolve(w.st.finish(raws[i]));
              } catch (e) {
                w.reject(e);
              }
            }),
          () => batch.forEach((w) => void alone(w)),
        );
    }
  }

  /**
   * The handle to sign with: a copy of the token's private key as a session object (C_CopyObject
   * with CKA_TOKEN false; PKCS#11 v2.40 §5.7 lets the copy change CKA_TOKEN). The key stays in the
   * HSM with its attributes (sensitive, not extractable); SoftHSM2 re-reads a token object from
   * its store and decrypts it at every C_SignInit, which a session object skips (measured: 137 →
   * 88 µs per P-256 signature). The copy lives until its session closes or the pool's epoch
   * changes (then it is made again); its token object is looked up again every COPY_RECHECK_MS
   * (signingCopyRecheckMs), so a key destroyed on the token (by another process too), or a token
   * whose sessions outlive it, stops signing within a second.
   * Modules that refuse the copy sign with the token object.
   */
  private signingHandle(p11: Pkcs11Module, s: PooledSession, record: KeyRecord): Buffer {
    const token = this.privateHandle(p11, s, record);
    const c = this.signingCopies.get(record.label);
    if (c === 'token') return token;
    const now = Date.now();
    if (c && c.epoch === s.epoch && c.source.equals(token)) {
      if (now - c.seenAt < (this.opts.signingCopyRecheckMs ?? COPY_RECHECK_MS)) return c.handle;
      if (findObjects(p11, s.handle, this.objectTemplate(record, PRIVATE), 1).length > 0) {
        c.seenAt = now;
        return c.handle;
      }
      this.dropSigningCopy(p11, s, record.label);
      this.handles.delete(record.label);
      return this.privateHandle(p11, s, record); // throws: the key is gone
    }
    if (c) this.dropSigningCopy(p11, s, record.label);
    let handle: Buffer;
    try {
      handle = p11.C_CopyObject(s.handle, token, [{ type: ck.CKA_TOKEN, value: false }]);
    } catch (e) {
      if (recoveryFor(e) !== 'none' || isCkr(e, ck.CKR_OBJECT_HANDLE_INVALID, ck.CKR_KEY_HANDLE_INVALID)) throw e;
      clog.info({ label: record.label, err: e instanceof Error ? e.message : String(e) }, 'the token refuses C_CopyObject: signing with the token object');
      this.signingCopies.set(record.label, 'token');
      return token;
    }
    this.signingCopies.set(record.label, { handle, epoch: s.epoch, source: token, seenAt: now });
    return handle;
  }

  /** Destroys a key's signing copy (if its session still holds it) and forgets it. */
  private dropSigningCopy(p11: Pkcs11Module, s: PooledSession, label: string): void {
    const c = this.signingCopies.get(label);
    this.signingCopies.delete(label);
    if (!c || c === 'token' || c.epoch !== s.epoch) return;
    try {
      p11.C_DestroyObject(s.handle, c.handle);
    } catch (e) {
      clog.debug({ label, err: e instanceof Error ? e.message : String(e) }, 'signing copy already gone');
    }
  }

  /** Private key handle for a record: cached per pool epoch, else found by label and CKA_ID. */
  private privateHandle(p11: Pkcs11Module, s: PooledSession, record: KeyRecord): Buffer {
    const cached = this.handles.get(record.label);
    if (cached && cached.epoch === s.epoch) return cached.handle;
    const found = findObjects(p11, s.handle, this.objectTemplate(record, PRIVATE), 2);
    if (found.length === 0) {
      this.pool.probeToken(); // a token that stopped answering is HSM_UNAVAILABLE, not a missing key
      // Private objects are invisible when the token is logged out: recover the login, not "missing key".
      if (!isLoggedIn(p11, s.handle)) throw pkcs11Error(ck.CKR_USER_NOT_LOGGED_IN, 'C_FindObjects');
      throw keyNotFound(record.uri, `the private key is not on token "${this.tokenLabel}"`);
    }
    if (found.length > 1) clog.warn({ label: record.label }, 'more than one private key matches the label and CKA_ID; using the first');
    this.handles.set(record.label, { handle: found[0], epoch: s.epoch });
    return found[0];
  }

  /** The token objects of a key (CKA_TOKEN true: never a signing copy, which is a session object). */
  private objectTemplate(record: KeyRecord, cls: number): Template {
    const t: Template = [
      { type: ck.CKA_CLASS, value: cls },
      { type: ck.CKA_TOKEN, value: true },
      { type: ck.CKA_LABEL, value: record.label },
    ];
    const id = parsePkcs11Uri(record.uri).id;
    if (id) t.push({ type: ck.CKA_ID, value: id });
    return t;
  }

  private async unwrapSigner(record: KeyRecord): Promise<Signer> {
    const d = await this.unwrapRecordScalar(record);
    try {
      if (d.length !== 32) throw unwrapFailed(record.label, `unwrapped ${d.length} bytes, expected a 32-byte scalar`);
      let signer: Signer;
      try {
        signer = this.opts.softwareSm2.signer(Buffer.from(d));
      } catch (e) {
        throw unwrapFailed(record.label, 'the unwrapped value is not a valid SM2 private key', e);
      }
      if (!signer.publicKeyInfo.equals(Buffer.from(record.publicKeyInfo, 'base64'))) {
        throw unwrapFailed(record.label, 'the unwrapped key does not match the recorded public key');
      }
      clog.info({ id: record.id, label: record.label }, 'wrapped SM2 key unwrapped into memory');
      return signer;
    } finally {
      d.fill(0);
    }
  }

  /** The 32-byte scalar of a wrapped record, in memory; the caller zero-fills it. */
  private async unwrapRecordScalar(record: KeyRecord): Promise<Buffer> {
    if (!record.wrappedKey || !record.kekUri) throw unwrapFailed(record.label, 'the record has no wrapped key or KEK URI');
    const kekLabel = parsePkcs11Uri(record.kekUri).object;
    const mechName = (Object.keys(WRAP_MECHANISMS) as WrapMechanismName[]).find((n) => record.mechanism.endsWith(`under ${n}`));
    if (!kekLabel || !mechName) throw unwrapFailed(record.label, `cannot tell the KEK or wrap mechanism from the record (${record.mechanism})`);
    if (parsePkcs11Uri(record.kekUri).token !== this.tokenLabel) throw unwrapFailed(record.label, `its KEK is on another token (${record.kekUri})`);
    const wrapped = Buffer.from(record.wrappedKey, 'base64');
    return this.pool.run('unwrap', async (p11, s) => {
      const kek = findKek(p11, s.handle, kekLabel);
      if (!kek) {
        this.pool.probeToken();
        throw unwrapFailed(record.label, `the key-encryption key "${kekLabel}" is not on token "${this.tokenLabel}"`);
      }
      try {
        return await unwrapScalar(p11, s.handle, kek, WRAP_MECHANISMS[mechName], wrapped);
      } catch (e) {
        if (recoveryFor(e) !== 'none') throw e;
        throw unwrapFailed(record.label, `C_UnwrapKey failed (${e instanceof Error ? e.message : String(e)})`, e);
      }
    });
  }

  // ---------------------------------------------------------------- decrypt (Decrypter)

  async decrypt(ref: string, alg: RsaDecryptAlg | { kind: 'sm2' }, ciphertext: Buffer): Promise<Buffer> {
    const record = await this.resolve(ref);
    if (usageOfMechanism(record.mechanism) !== 'decrypt') throw usageMismatch(record.label, 'sign', 'decrypt');
    if (!Buffer.isBuffer(ciphertext) || ciphertext.length === 0) throw decryptionFailed('empty ciphertext');
    const bits = RSA_BITS[record.algorithm];
    if (alg?.kind === 'sm2') {
      if (record.algorithm !== 'sm2') throw unsuitable(record, 'SM2 decryption');
      const sm2Decrypt = this.opts.softwareSm2.decrypt?.bind(this.opts.softwareSm2);
      if (!sm2Decrypt) throw mechanismUnsupported('softwareSm2.decrypt is not provided', '缺少 softwareSm2.decrypt');
      // GM/T 0009 decryption in process: the scalar is unwrapped for this one operation (ARCHITECTURE.md §3 wrapped mode).
      const d = await this.unwrapRecordScalar(record);
      try {
        if (d.length !== 32) throw unwrapFailed(record.label, `unwrapped ${d.length} bytes, expected a 32-byte scalar`);
        return await sm2Decrypt(d, ciphertext);
      } finally {
        d.fill(0);
      }
    }
    if (!bits) throw unsuitable(record, String(alg?.kind));
    const step = rsaDecryptStep(bits, alg, ciphertext);
    const out = await this.pool.run('decrypt', async (p11, s) => {
      const calls = decryptCalls(p11);
      let handle = this.privateHandle(p11, s, record);
      try {
        calls.C_DecryptInit(s.handle, step.mechanism, handle);
      } catch (e) {
        if (!isCkr(e, ck.CKR_OBJECT_HANDLE_INVALID, ck.CKR_KEY_HANDLE_INVALID)) throw e;
        this.handles.delete(record.label);
        handle = this.privateHandle(p11, s, record);
        calls.C_DecryptInit(s.handle, step.mechanism, handle);
      }
      try {
        return await calls.C_DecryptAsync(s.handle, ciphertext, Buffer.alloc(bits / 8));
      } catch (e) {
        // A ciphertext the token rejects is the client's problem, not the HSM's.
        if (isCkr(e, ck.CKR_ENCRYPTED_DATA_INVALID, ck.CKR_ENCRYPTED_DATA_LEN_RANGE, ck.CKR_DATA_INVALID, ck.CKR_DATA_LEN_RANGE, ck.CKR_GENERAL_ERROR)) throw decryptionFailed('the token rejected the ciphertext', e);
        throw e;
      }
    });
    try {
      return step.finish(out);
    } finally {
      out.fill(0);
    }
  }

  async deriveEcdh(ref: string, peerPublicPoint: Buffer): Promise<Buffer> {
    const record = await this.resolve(ref);
    if (usageOfMechanism(record.mechanism) !== 'decrypt') throw usageMismatch(record.label, 'sign', 'decrypt');
    const curve = EC_CURVES[record.algorithm];
    if (!curve) throw unsuitable(record, 'ECDH');
    // RFC 5753 §7.1.1: the originator key is an uncompressed point of the recipient's curve.
    if (!Buffer.isBuffer(peerPublicPoint) || peerPublicPoint.length !== 1 + 2 * curve.size || peerPublicPoint[0] !== 0x04) {
      throw decryptionFailed(`the peer key is not an uncompressed ${record.algorithm} point`);
    }
    return this.pool.run('derive', async (p11, s) => {
      const handle = this.privateHandle(p11, s, record);
      try {
        return await ecdhDerive(p11, s.handle, handle, peerPublicPoint, curve.size);
      } catch (e) {
        if (isCkr(e, ck.CKR_MECHANISM_PARAM_INVALID, ck.CKR_ARGUMENTS_BAD, ck.CKR_DOMAIN_PARAMS_INVALID, ck.CKR_GENERAL_ERROR, ck.CKR_FUNCTION_FAILED)) {
          throw decryptionFailed('the token refused the peer key (not on the curve?)', e);
        }
        throw e;
      }
    });
  }

  // ---------------------------------------------------------------- inventory

  async list(): Promise<KeyInfo[]> {
    const records = await this.registry.list();
    try {
      for (const p of await this.checkRecords(records)) clog.warn({ ...p, token: this.tokenLabel }, `key inventory: ${p.detail}`);
    } catch (e) {
      clog.warn({ err: e instanceof YiqianError ? e.text.en : String(e) }, 'key inventory: could not check the records against the token');
    }
    return records.map(toKeyInfo);
  }

  async checkInventory(): Promise<InventoryProblem[]> {
    return this.checkRecords(await this.registry.list());
  }

  private async checkRecords(records: KeyRecord[]): Promise<InventoryProblem[]> {
    if (records.length === 0) return [];
    return this.pool.run('find', async (p11, s) => {
      const problems: InventoryProblem[] = [];
      const kekPresent = new Map<string, boolean>();
      for (const r of records) {
        if (r.token !== this.tokenLabel) {
          problems.push({ id: r.id, label: r.label, problem: 'other-token', detail: `key "${r.label}" belongs to token "${r.token}", not checked` });
        } else if (r.mode === 'hsm') {
          if (findObjects(p11, s.handle, this.objectTemplate(r, PRIVATE), 1).length === 0) {
            problems.push({ id: r.id, label: r.label, problem: 'token-object-missing', detail: `private key "${r.label}" is in the inventory but not on token "${this.tokenLabel}"` });
          }
        } else {
          const kek = r.kekUri ? parsePkcs11Uri(r.kekUri).object : undefined;
          if (kek === undefined) {
            problems.push({ id: r.id, label: r.label, problem: 'kek-missing', detail: `wrapped key "${r.label}" names no KEK` });
            continue;
          }
          if (!kekPresent.has(kek)) kekPresent.set(kek, findKek(p11, s.handle, kek) !== undefined);
          if (!kekPresent.get(kek)) problems.push({ id: r.id, label: r.label, problem: 'kek-missing', detail: `the KEK "${kek}" of wrapped key "${r.label}" is not on token "${this.tokenLabel}"` });
        }
      }
      if (problems.some((p) => p.problem !== 'other-token')) this.pool.probeToken();
      return problems;
    });
  }

  async destroy(ref: string): Promise<void> {
    const record = await this.resolve(ref);
    if (record.mode === 'hsm') {
      const n = await this.destroyTokenObjects(record);
      if (n === 0) clog.warn({ id: record.id, label: record.label }, 'destroy: the key had no objects left on the token; removing the record');
    }
    this.handles.delete(record.label);
    this.signingCopies.delete(record.label);
    this.signers.delete(record.id);
    await this.registry.delete(record.id);
    clog.info({ id: record.id, label: record.label, mode: record.mode }, 'key destroyed');
  }

  private async destroyTokenObjects(record: KeyRecord): Promise<number> {
    return this.pool.run('destroy', async (p11, s) => {
      this.dropSigningCopy(p11, s, record.label);
      const objs = [...findObjects(p11, s.handle, this.objectTemplate(record, PRIVATE), 4), ...findObjects(p11, s.handle, this.objectTemplate(record, PUBLIC), 4)];
      for (const o of objs) p11.C_DestroyObject(s.handle, o);
      return objs.length;
    });
  }

  /** A key reference: the record's RFC 7512 URI (any subset of its path attributes) or its id. */
  private async resolve(ref: string): Promise<KeyRecord> {
    if (typeof ref !== 'string' || ref.length === 0) throw keyNotFound(String(ref), 'empty key reference');
    if (!/^pkcs11:/i.test(ref)) {
      const r = await this.registry.get(ref);
      if (!r) throw keyNotFound(ref, 'no key with this id');
      return r;
    }
    const u = parsePkcs11Uri(ref);
    if (u.object === undefined && u.id === undefined) {
      throw new YiqianError(Codes.INVALID_KEY_URI, 400, { zh: '密钥URI必须包含 object 或 id', en: 'a key URI needs an object (label) or id attribute' }, { uri: ref });
    }
    if (u.token !== undefined && u.token !== this.tokenLabel) throw keyNotFound(ref, `token "${u.token}" is not this custody's token "${this.tokenLabel}"`);
    if (u.type !== undefined && u.type !== 'private' && u.type !== 'public') throw keyNotFound(ref, `type=${u.type} does not name a key pair`);
    const pattern = { ...u, type: undefined, query: undefined };
    const candidates = u.object !== undefined ? [await this.registry.getByLabel(u.object)] : await this.registry.list();
    const matches = candidates.filter((r): r is KeyRecord => r !== undefined && pkcs11UriMatches(pattern, parsePkcs11Uri(r.uri)));
    if (matches.length === 0) throw keyNotFound(ref, 'no key in the inventory matches');
    if (matches.length > 1) throw new YiqianError(Codes.INVALID_KEY_URI, 400, { zh: '密钥URI匹配多个密钥', en: 'the key URI matches more than one key' }, { uri: ref });
    return matches[0];
  }

  // ---------------------------------------------------------------- lifecycle

  async health(): Promise<CustodyHealth> {
    const h = await this.pool.health();
    return { ok: h.ok, token: this.tokenLabel, module: this.pool.moduleDescription, reason: h.reason };
  }

  async close(): Promise<void> {
    this.signers.clear();
    this.handles.clear();
    await this.pool.close();
  }
}

/** The addon's form of a sign step's mechanism, for the mechanisms it supports (else undefined: pkcs11js). */
function nativeJob(m: Mechanism): { type: number; param: PssParams | null } | undefined {
  if ((m.mechanism === ck.CKM_ECDSA || m.mechanism === ck.CKM_RSA_PKCS) && m.parameter === undefined) return { type: m.mechanism, param: null };
  if (m.mechanism === ck.CKM_RSA_PKCS_PSS) {
    const p = m.parameter as { hashAlg?: unknown; mgf?: unknown; saltLen?: unknown } | undefined;
    if (typeof p?.hashAlg === 'number' && typeof p.mgf === 'number' && typeof p.saltLen === 'number') return { type: m.mechanism, param: { hashAlg: p.hashAlg, mgf: p.mgf, sLen: p.saltLen } };
  }
  return undefined;
}

function mustRead(p11: Pkcs11Module, s: Buffer, obj: Buffer, type: number, name: string): Buffer {
  const v = readAttribute(p11, s, obj, type);
  if (!v) throw new YiqianError(Codes.HSM_ERROR, 500, { zh: `令牌未返回 ${name}`, en: `the token returned no ${name}` });
  return v;
}

/** Adds or overrides attributes of a template (the usage-specific ones of decrypt.ts). */
function withUsage(template: Template, extra: Template): void {
  for (const a of extra) {
    const i = template.findIndex((t) => t.type === a.type);
    if (i >= 0) template[i] = a;
    else template.push(a);
  }
}

function unsuitable(record: KeyRecord, what: string): YiqianError {
  return new YiqianError(Codes.UNSUPPORTED_ALGORITHM, 400, { zh: `密钥 "${record.label}"（${record.algorithm}）不支持该解密算法`, en: `key "${record.label}" (${record.algorithm}) cannot do ${what}` }, { label: record.label, algorithm: record.algorithm });
}

function destroyQuietly(p11: Pkcs11Module, s: Buffer, objs: Buffer[]): void {
  for (const o of objs) {
    try {
      p11.C_DestroyObject(s, o);
    } catch (e) {
      clog.error({ err: e }, 'could not destroy a half-made key object');
    }
  }
}

function toKeyInfo(r: KeyRecord): KeyInfo {
  const info: KeyInfo = {
    id: r.id,
    uri: r.uri,
    label: r.label,
    algorithm: r.algorithm,
    mode: r.mode,
    token: r.token,
    mechanism: r.mechanism,
    createdAt: r.createdAt,
    purpose: r.purpose,
    publicKeyInfo: Buffer.from(r.publicKeyInfo, 'base64'),
  };
  if (r.kekUri !== undefined) info.kekUri = r.kekUri;
  return info;
}
