// Signing keys the appliance holds for others (issue 4 item 1): organisation, department and
// seal keys, and staff keys held in custody. Each is a key in the HSM custody (KeyCustody) with a
// certificate from our CA (CertificateService.issueForAppliance), granted to named apps, with an
// optional private-key access code (GB/T 38629 "私钥访问控制码").
//
// forUse() is on the hot path of every signature (hundreds per second), so it costs two LMDB
// reads (the key and its certificate's status — read on every call, so a revocation or a grant
// change made by another process counts at once) plus, with an access code, one HMAC:
//   - the Signer of each key is kept (custody.signer unwraps / opens a session; the SM2 signer
//     keeps a native handle), dropped when the key is disabled;
//   - access codes are stored only as a slow verifier, PBKDF2-HMAC-SM3 (RFC 8018 §5.2 with
//     HMAC-SM3 as the PRF) — chosen over scrypt because SM3/HMAC-SM3 are the approved national
//     algorithms the 密评 inventory expects (scrypt's SHA-256 and Salsa20/8 are not), while the
//     lockout below bounds online guessing. After the first success the service keeps, per key,
//     HMAC-SM3(k, salt ‖ code) under a per-process random k, so later calls cost one HMAC; the
//     salt in the entry ties it to the verifier, so a new code (set here or by the CLI in another
//     process) invalidates it.
//   - wrong codes are recorded on the key (durable, with an audit record each — GB/T 38629 asks
//     for failed-authentication logging); 5 within 15 minutes lock the key (ACCESS_CODE_LOCKED
//     423) until the window passes. Checks that may record a failure run one at a time per key,
//     so concurrent guesses cannot slip past the count.
// Access codes are never logged, audited or returned.
import { createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import type { AuditEntry, AuditLog } from '../audit/audit-log.js';
import type { KeyAlgorithm, KeyCustody, KeyInfo, Signer } from '../crypto/interfaces.js';
import { Codes, YiqianError, fail, isYiqianError } from '../errors.js';
import { log } from '../log.js';
import type { Authorities } from '../pki/authorities.js';
import type { CertificateService } from '../pki/certificate-service.js';
import type { CaId, CertificateRecord, CertificateRepository, Hierarchy } from '../pki/types.js';
import type { AppRepository } from '../store/app-repository.js';
import { HELD_KEY_EXISTS, type AccessCodeVerifier, type HeldKeyRecord, type HeldKeyRepository } from '../store/held-key-repository.js';
import { newId, nowIso } from '../store/ids.js';
import type { HeldKeyForUse, HeldKeyKind, HeldKeyUsage, HeldKeys, HeldKeyView } from './types.js';

export const HeldKeyCodes = {
  KEY_NOT_FOUND: Codes.KEY_NOT_FOUND,
  KEY_NOT_GRANTED: 'KEY_NOT_GRANTED',
  ACCESS_CODE_REQUIRED: 'ACCESS_CODE_REQUIRED',
  ACCESS_CODE_INVALID: 'ACCESS_CODE_INVALID',
  /** 5 wrong codes for the key within 15 minutes (423 until the window passes). */
  ACCESS_CODE_LOCKED: 'ACCESS_CODE_LOCKED',
  /** A new access code that is not 6–64 characters without control characters. */
  ACCESS_CODE_FORMAT: 'ACCESS_CODE_FORMAT',
  KEY_USAGE_MISMATCH: 'KEY_USAGE_MISMATCH',
  /** The key's certificate is revoked or suspended (挂失). */
  HELD_KEY_CERT_REVOKED: 'HELD_KEY_CERT_REVOKED',
  /** Now is outside the key's certificate validity. */
  HELD_KEY_CERT_EXPIRED: 'HELD_KEY_CERT_EXPIRED',
  HELD_KEY_EXISTS,
  /** An admin operation on a disabled key. */
  HELD_KEY_DISABLED: 'HELD_KEY_DISABLED',
  /** A create request field (label, kind, usage, algorithm, grants) is malformed. */
  HELD_KEY_FIELD_INVALID: 'HELD_KEY_FIELD_INVALID',
  APP_NOT_FOUND: Codes.APP_NOT_FOUND,
} as const;

export const HELD_KEY_ALGORITHMS: readonly KeyAlgorithm[] = ['sm2', 'ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072'];
export const HELD_KEY_KINDS: readonly HeldKeyKind[] = ['organisation', 'department', 'seal', 'staff'];
export const HELD_KEY_USAGES: readonly HeldKeyUsage[] = ['sign', 'encrypt'];

/** Lower case so that a label never looks like an id (ULIDs are upper-case Crockford base32). */
const LABEL = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const ACCESS_CODE_MIN = 6;
const ACCESS_CODE_MAX = 64;
/** ≈ 125 ms per verification on this 2-core machine (node's OpenSSL SM3 has no assembly). */
export const DEFAULT_ACCESS_CODE_ITERATIONS = 100_000;
export const DEFAULT_LOCKOUT = { maxFailures: 5, windowMs: 15 * 60_000 };

export interface CreateHeldKeyInput {
  label: string;
  kind: HeldKeyKind;
  /** Default 'sign'. */
  usage?: HeldKeyUsage;
  /** Default 'sm2' (SM2 hierarchy); the others are certified by the ECDSA hierarchy. */
  algorithm?: KeyAlgorithm;
  commonName: string;
  organisation?: string;
  /** Subject OU; `department` is the same field. */
  ou?: string;
  department?: string;
  /** Staff keys: required (the certificate's serialNumber, 工号). */
  employeeId?: string;
  /** The hospital systems' department id; kept on the key (and the certificate record where the profile takes it). */
  departmentId?: string;
  titleLevel?: string;
  email?: string;
  validityDays?: number;
  /** App ids allowed to use the key; each must exist. */
  grants?: string[];
  accessCode?: string;
}

/** What admins see: the app view plus the disabled flag. */
export interface HeldKeyAdminView extends HeldKeyView {
  disabled: boolean;
  disabledAt?: string;
}

export interface HeldKeyAdmin extends HeldKeys {
  create(input: CreateHeldKeyInput, actor: string): Promise<HeldKeyAdminView>;
  /** APP_NOT_FOUND when the app does not exist; granting twice changes nothing (but is audited). */
  grant(ref: string, appId: string, actor: string): Promise<HeldKeyAdminView>;
  ungrant(ref: string, appId: string, actor: string): Promise<HeldKeyAdminView>;
  /** null removes the access code. */
  setAccessCode(ref: string, code: string | null, actor: string): Promise<HeldKeyAdminView>;
  /** Refused for use from now on; the key and its certificate stay for the record (revoke the certificate separately). */
  disable(ref: string, actor: string): Promise<HeldKeyAdminView>;
  list(appId?: string): Promise<HeldKeyAdminView[]>;
  get(ref: string): Promise<HeldKeyAdminView>;
  findByCertSerial(serial: string): Promise<HeldKeyAdminView | undefined>;
  /** DER of the key's certificate and of its issuing CA(s) up to, not including, the root (any status). */
  certificateChain(ref: string): Promise<{ certificate: Buffer; chain: Buffer[] }>;
}

export interface HeldKeysDeps {
  keys: HeldKeyRepository;
  apps: Pick<AppRepository, 'get'>;
  certs: Pick<CertificateRepository, 'get'>;
  certificates: Pick<CertificateService, 'issueForAppliance'>;
  authorities: Pick<Authorities, 'get'>;
  custody: Pick<KeyCustody, 'generate' | 'signer' | 'destroy'>;
  audit: AuditLog;
  clock?: () => number;
  /** PBKDF2 iterations for new access codes (tests lower it). */
  accessCodeIterations?: number;
  lockout?: { maxFailures: number; windowMs: number };
}

const pbkdf2Async = promisify(pbkdf2);

function err(code: keyof typeof HeldKeyCodes, status: number, zh: string, en: string, detail?: Record<string, unknown>): YiqianError {
  return new YiqianError(HeldKeyCodes[code], status, { zh, en }, detail);
}

function fieldInvalid(field: string, zh: string, en: string): never {
  throw err('HELD_KEY_FIELD_INVALID', 400, `${field} 无效：${zh}`, `${field} is invalid: ${en}`, { field });
}

function validActor(actor: unknown): actor is string {
  return typeof actor === 'string' && actor.length > 0 && actor.length <= 128;
}

/** NFC, 6–64 characters, no control or format characters; ACCESS_CODE_FORMAT otherwise. */
export function checkAccessCode(code: unknown): string {
  const bad = (): never => {
    throw err('ACCESS_CODE_FORMAT', 400, `访问控制码须为 ${ACCESS_CODE_MIN}–${ACCESS_CODE_MAX} 个字符，不含控制字符`, `an access code is ${ACCESS_CODE_MIN}–${ACCESS_CODE_MAX} characters without control characters`);
  };
  if (typeof code !== 'string') return bad();
  const s = code.normalize('NFC');
  const n = [...s].length;
  if (n < ACCESS_CODE_MIN || n > ACCESS_CODE_MAX || /[\p{Cc}\p{Cf}]/u.test(s)) return bad();
  return s;
}

function profileFor(kind: HeldKeyKind, usage: HeldKeyUsage, algorithm: KeyAlgorithm): string {
  if (usage === 'encrypt') return algorithm.startsWith('ecdsa') ? 'key-agreement' : 'encryption';
  return kind === 'staff' ? 'personal' : kind === 'seal' ? 'seal' : 'organisation';
}

/** Profiles that take departmentId (the others keep it on the held key only). */
const TAKES_DEPARTMENT_ID = new Set(['personal', 'encryption', 'key-agreement']);

function view(rec: HeldKeyRecord): HeldKeyAdminView {
  return {
    id: rec.id,
    label: rec.label,
    kind: rec.kind,
    usage: rec.usage,
    algorithm: rec.algorithm,
    hierarchy: rec.hierarchy,
    keyId: rec.keyId,
    keyUri: rec.keyUri,
    certSerial: rec.certSerial,
    subject: rec.subject,
    grants: [...rec.grants],
    accessCodeRequired: rec.accessCode !== undefined,
    ...(rec.employeeId !== undefined ? { employeeId: rec.employeeId } : {}),
    ...(rec.departmentId !== undefined ? { departmentId: rec.departmentId } : {}),
    createdAt: rec.createdAt,
    disabled: rec.disabled,
    ...(rec.disabledAt !== undefined ? { disabledAt: rec.disabledAt } : {}),
  };
}

export function createHeldKeys(deps: HeldKeysDeps): HeldKeyAdmin {
  const clock = deps.clock ?? Date.now;
  const iterations = deps.accessCodeIterations ?? DEFAULT_ACCESS_CODE_ITERATIONS;
  const lockout = deps.lockout ?? DEFAULT_LOCKOUT;
  const signers = new Map<string, Promise<Signer>>();
  /** key id → {salt of the verifier it was accepted under, HMAC of the accepted code}. */
  const accepted = new Map<string, { salt: string; mac: Buffer }>();
  const processKey = randomBytes(32);
  /** key id → tail of the queue of code checks that may record a failure. */
  const checks = new Map<string, Promise<unknown>>();
  const certDer = new Map<string, Buffer>();
  const chains = new Map<CaId, Promise<Buffer[]>>();

  // ---- lookups ----

  async function find(ref: unknown): Promise<HeldKeyRecord | undefined> {
    if (typeof ref !== 'string' || ref.length === 0 || ref.length > 128) return undefined;
    return ULID.test(ref) ? deps.keys.get(ref) : deps.keys.getByLabel(ref);
  }

  function notFound(ref: unknown): YiqianError {
    const shown = String(ref).slice(0, 64);
    return err('KEY_NOT_FOUND', 404, `没有托管密钥 ${shown}`, `no held key ${shown}`, { key: shown });
  }

  /** Admin ops: the key, disabled or not. */
  async function resolve(ref: unknown): Promise<HeldKeyRecord> {
    const rec = await find(ref);
    if (!rec) throw notFound(ref);
    return rec;
  }

  // ---- auditing ----

  async function auditFailure(actor: string, action: string, target: string | undefined, e: unknown, outcome: 'error' | 'denied' = 'error'): Promise<void> {
    if (!isYiqianError(e) || !validActor(actor)) return;
    const entry: AuditEntry = { actor, action, ...(target !== undefined ? { target } : {}), outcome, detail: { code: e.code, reason: e.text.en } };
    await deps.audit.append(entry).catch((x: Error) => log.warn({ err: x.message, action }, 'could not audit a held-key operation'));
  }

  async function audited<T>(actor: string, action: string, target: string | undefined, work: () => Promise<T>): Promise<T> {
    try {
      if (!validActor(actor)) fail(Codes.INTERNAL, 500, '缺少操作者', 'held-key operation without an actor');
      return await work();
    } catch (e) {
      await auditFailure(actor, action, target, e);
      throw e;
    }
  }

  /** An admin change of one key: refused on a disabled key, durable with its audit record. */
  async function change(ref: string, actor: string, action: string, detail: Record<string, unknown>, edit: (cur: HeldKeyRecord) => HeldKeyRecord): Promise<HeldKeyAdminView> {
    const target = typeof ref === 'string' ? ref.slice(0, 64) : undefined;
    return audited(actor, action, target, async () => {
      const rec = await resolve(ref);
      const updated = await deps.keys.update(
        rec.id,
        (cur) => {
          if (cur.disabled) throw err('HELD_KEY_DISABLED', 409, `托管密钥 ${cur.label} 已停用`, `held key ${cur.label} is disabled`, { key: cur.label });
          return { ...edit(cur), updatedAt: nowIso() };
        },
        { audit: { actor, action, target: rec.id, outcome: 'ok', detail: { label: rec.label, ...detail } } },
      );
      if (!updated) throw notFound(ref);
      return view(updated);
    });
  }

  // ---- access codes ----

  async function makeVerifier(code: string): Promise<AccessCodeVerifier> {
    const salt = randomBytes(16);
    const hash = await pbkdf2Async(Buffer.from(code, 'utf8'), salt, iterations, 32, 'sm3');
    return { alg: 'pbkdf2-hmac-sm3', iterations, salt: salt.toString('base64'), hash: hash.toString('base64'), setAt: nowIso() };
  }

  async function verifySlow(v: AccessCodeVerifier, code: string): Promise<boolean> {
    if (v.alg !== 'pbkdf2-hmac-sm3') return false;
    const expected = Buffer.from(v.hash, 'base64');
    const got = await pbkdf2Async(Buffer.from(code, 'utf8'), Buffer.from(v.salt, 'base64'), v.iterations, expected.length, 'sm3');
    return timingSafeEqual(got, expected);
  }

  function codeMac(salt: string, code: string): Buffer {
    return createHmac('sm3', processKey).update(Buffer.from(salt, 'base64')).update(Buffer.from(code, 'utf8')).digest();
  }

  /** Failures still inside the window. */
  function recentFailures(rec: HeldKeyRecord, now: number): string[] {
    return (rec.accessFailures ?? []).filter((t) => now - Date.parse(t) < lockout.windowMs);
  }

  function lockedError(rec: HeldKeyRecord, failures: string[], now: number): YiqianError | undefined {
    if (failures.length < lockout.maxFailures) return undefined;
    // Locked until the failure that made the count drops out of the window.
    const until = Date.parse(failures[failures.length - lockout.maxFailures]) + lockout.windowMs;
    const retryAfterSeconds = Math.max(1, Math.ceil((until - now) / 1000));
    return err(
      'ACCESS_CODE_LOCKED',
      423,
      `托管密钥 ${rec.label} 的访问控制码错误次数过多，已锁定，请 ${retryAfterSeconds} 秒后再试`,
      `too many wrong access codes for held key ${rec.label}: locked for ${retryAfterSeconds} s`,
      { key: rec.label, retryAfterSeconds },
    );
  }

  async function deny(e: YiqianError, appId: string, rec: HeldKeyRecord | undefined): Promise<never> {
    await auditFailure(`app:${appId}`, 'held-key.use', rec?.id, e, 'denied');
    throw e;
  }

  /** One at a time per key: re-reads the key, so the lock count is exact across concurrent guesses. */
  function serialised<T>(id: string, work: () => Promise<T>): Promise<T> {
    const prev = checks.get(id) ?? Promise.resolve();
    const run = prev.then(work, work);
    const tail = run.catch(() => undefined);
    checks.set(id, tail);
    void tail.then(() => {
      if (checks.get(id) === tail) checks.delete(id);
    });
    return run;
  }

  async function checkCode(rec: HeldKeyRecord, appId: string, code: string | undefined): Promise<void> {
    const v = rec.accessCode;
    if (!v) return;
    if (code === undefined || code === '') {
      await deny(err('ACCESS_CODE_REQUIRED', 403, `托管密钥 ${rec.label} 需要访问控制码`, `held key ${rec.label} needs its access code`, { key: rec.label }), appId, rec);
    }
    const given = typeof code === 'string' ? code.normalize('NFC') : '';
    const now = clock();
    const locked = lockedError(rec, recentFailures(rec, now), now);
    if (locked) await deny(locked, appId, rec);
    // Fast path: the code accepted before under the same verifier. A mismatch is decided (and
    // recorded) in the queue below, never here.
    const hit = accepted.get(rec.id);
    if (hit && hit.salt === v.salt && timingSafeEqual(hit.mac, codeMac(v.salt, given))) return;

    await serialised(rec.id, async () => {
      const cur = await deps.keys.get(rec.id);
      if (!cur || cur.disabled) throw notFound(rec.label);
      const cv = cur.accessCode;
      if (!cv) return;
      const t = clock();
      const lock = lockedError(cur, recentFailures(cur, t), t);
      if (lock) await deny(lock, appId, cur);
      const mac = codeMac(cv.salt, given);
      const known = accepted.get(cur.id);
      const ok = known && known.salt === cv.salt ? timingSafeEqual(known.mac, mac) : await verifySlow(cv, given);
      if (ok) {
        accepted.set(cur.id, { salt: cv.salt, mac });
        return;
      }
      const e = err('ACCESS_CODE_INVALID', 403, `托管密钥 ${cur.label} 的访问控制码错误`, `wrong access code for held key ${cur.label}`, { key: cur.label });
      const at = new Date(t).toISOString();
      let failures = 0;
      await deps.keys.update(
        cur.id,
        (c) => {
          const list = [...recentFailures(c, t), at];
          failures = list.length;
          return { ...c, accessFailures: list };
        },
        { audit: { actor: `app:${appId}`, action: 'held-key.use', target: cur.id, outcome: 'denied', detail: { code: e.code, reason: e.text.en } } },
      );
      if (failures >= lockout.maxFailures) log.warn({ key: cur.label, appId }, 'held key locked after wrong access codes');
      throw e;
    });
  }

  // ---- what forUse hands out ----

  function signerFor(rec: HeldKeyRecord, cert: CertificateRecord): Promise<Signer> {
    let s = signers.get(rec.id);
    if (!s) {
      if (rec.usage === 'encrypt') {
        // Encryption keys never sign (their certificate says keyEncipherment / keyAgreement);
        // envelopes use the custody's Decrypter with key.keyUri.
        const refusing: Signer = {
          algorithm: rec.algorithm,
          publicKeyInfo: Buffer.from(cert.publicKeyInfo, 'base64'),
          sign: async () => {
            throw err('KEY_USAGE_MISMATCH', 403, `托管密钥 ${rec.label} 是加密密钥，不能签名`, `held key ${rec.label} is an encryption key: it does not sign`, { key: rec.label, usage: rec.usage });
          },
        };
        s = Promise.resolve(refusing);
      } else {
        s = deps.custody.signer(rec.keyId);
        s.catch(() => signers.delete(rec.id));
      }
      signers.set(rec.id, s);
    }
    return s;
  }

  function chainOf(caId: CaId): Promise<Buffer[]> {
    // A CA's certificate changes only with a new data directory (yiqian init --force): kept per process.
    let c = chains.get(caId);
    if (!c) {
      c = (async () => {
        const out: Buffer[] = [];
        for (let ca = await deps.authorities.get(caId); ca.record.role !== 'root'; ) {
          out.push(ca.der);
          if (!ca.record.parentId) break;
          ca = await deps.authorities.get(ca.record.parentId);
        }
        return out;
      })();
      c.catch(() => chains.delete(caId));
      chains.set(caId, c);
    }
    return c;
  }

  function certificateOf(cert: CertificateRecord): Buffer {
    let der = certDer.get(cert.serial);
    if (!der) {
      der = Buffer.from(cert.certificate, 'base64');
      certDer.set(cert.serial, der);
    }
    return der;
  }

  function dropCaches(id: string): void {
    signers.delete(id);
    accepted.delete(id);
  }

  async function listViews(appId?: string): Promise<HeldKeyAdminView[]> {
    const all = await deps.keys.list();
    if (appId === undefined) return all.map(view);
    return all.filter((r) => !r.disabled && r.grants.includes(appId)).map(view);
  }

  async function checkGrants(grants: unknown): Promise<string[]> {
    if (grants === undefined) return [];
    if (!Array.isArray(grants) || grants.length > 1000 || !grants.every((g) => typeof g === 'string')) fieldInvalid('grants', '必须是应用标识的数组', 'must be an array of app ids');
    const out = [...new Set(grants as string[])];
    for (const id of out) await appMustExist(id);
    return out;
  }

  async function appMustExist(id: unknown): Promise<string> {
    const app = typeof id === 'string' ? await deps.apps.get(id) : undefined;
    if (!app) {
      const shown = String(id).slice(0, 64);
      throw err('APP_NOT_FOUND', 404, `没有应用 ${shown}`, `no app ${shown}`, { appId: shown });
    }
    return app.id;
  }

  return {
    async forUse(ref, appId, opts = {}) {
      const rec = await find(ref);
      if (!rec || rec.disabled) throw notFound(ref);
      if (typeof appId !== 'string' || !rec.grants.includes(appId)) {
        await deny(err('KEY_NOT_GRANTED', 403, `应用无权使用托管密钥 ${rec.label}`, `the app is not granted held key ${rec.label}`, { key: rec.label }), String(appId).slice(0, 64), rec);
      }
      const usage = opts.usage ?? 'sign';
      if (usage !== rec.usage) {
        await deny(
          err('KEY_USAGE_MISMATCH', 403, `托管密钥 ${rec.label} 的用途是${rec.usage === 'sign' ? '签名' : '加密'}`, `held key ${rec.label} is for ${rec.usage}, not ${usage}`, { key: rec.label, usage: rec.usage, requested: usage }),
          appId,
          rec,
        );
      }
      await checkCode(rec, appId, opts.accessCode);
      const cert = await deps.certs.get(rec.certSerial);
      if (!cert) throw new YiqianError(Codes.INTERNAL, 500, { zh: '托管密钥的证书记录缺失', en: `the certificate ${rec.certSerial} of held key ${rec.label} is missing` });
      if (cert.status !== 'good') {
        await deny(
          err('HELD_KEY_CERT_REVOKED', 403, `托管密钥 ${rec.label} 的证书已${cert.status === 'suspended' ? '挂失' : '吊销'}`, `the certificate of held key ${rec.label} is ${cert.status}`, {
            key: rec.label,
            serial: cert.serial,
            status: cert.status,
            ...(cert.revocation ? { revokedAt: cert.revocation.time, reason: cert.revocation.reason } : {}),
          }),
          appId,
          rec,
        );
      }
      const now = clock();
      if (now < Date.parse(cert.notBefore) || now > Date.parse(cert.notAfter)) {
        await deny(
          err('HELD_KEY_CERT_EXPIRED', 403, `托管密钥 ${rec.label} 的证书不在有效期内`, `the certificate of held key ${rec.label} is outside its validity (${cert.notBefore} – ${cert.notAfter})`, {
            key: rec.label,
            serial: cert.serial,
            notBefore: cert.notBefore,
            notAfter: cert.notAfter,
          }),
          appId,
          rec,
        );
      }
      const [signer, chain] = await Promise.all([signerFor(rec, cert), chainOf(cert.caId)]);
      const result: HeldKeyForUse = { key: view(rec), signer, certificate: certificateOf(cert), chain };
      return result;
    },

    list: listViews,

    async get(ref) {
      return view(await resolve(ref));
    },

    async findByCertSerial(serial) {
      if (typeof serial !== 'string') return undefined;
      const s = serial.replace(/[:\s]/g, '').toLowerCase().replace(/^(00)+(?=..)/, '');
      const rec = await deps.keys.getByCertSerial(s);
      return rec ? view(rec) : undefined;
    },

    async certificateChain(ref) {
      const rec = await resolve(ref);
      const cert = await deps.certs.get(rec.certSerial);
      if (!cert) throw new YiqianError(Codes.INTERNAL, 500, { zh: '托管密钥的证书记录缺失', en: `the certificate ${rec.certSerial} of held key ${rec.label} is missing` });
      return { certificate: certificateOf(cert), chain: await chainOf(cert.caId) };
    },

    create(input, actor) {
      return audited(actor, 'held-key.create', typeof input?.label === 'string' ? input.label.slice(0, 64) : undefined, async () => {
        if (typeof input !== 'object' || input === null) fieldInvalid('request', '必须是对象', 'must be an object');
        const { label, kind } = input;
        if (typeof label !== 'string' || !LABEL.test(label)) fieldInvalid('label', '须为 1–64 个小写字母、数字或 ._-，以字母或数字开头', 'must be 1–64 of a-z 0-9 . _ - starting with a letter or digit');
        if (!HELD_KEY_KINDS.includes(kind)) fieldInvalid('kind', `须为 ${HELD_KEY_KINDS.join('、')}`, `must be one of ${HELD_KEY_KINDS.join(', ')}`);
        const usage = input.usage ?? 'sign';
        if (!HELD_KEY_USAGES.includes(usage)) fieldInvalid('usage', '须为 sign 或 encrypt', 'must be sign or encrypt');
        const algorithm = input.algorithm ?? 'sm2';
        if (!HELD_KEY_ALGORITHMS.includes(algorithm)) fieldInvalid('algorithm', `须为 ${HELD_KEY_ALGORITHMS.join('、')}`, `must be one of ${HELD_KEY_ALGORITHMS.join(', ')}`);
        if (input.ou !== undefined && input.department !== undefined && input.ou !== input.department) fieldInvalid('ou', 'ou 与 department 是同一字段，只能给出一个', 'ou and department are the same field: give one');
        if (kind === 'staff' && (typeof input.employeeId !== 'string' || input.employeeId.length === 0)) {
          fieldInvalid('employeeId', '员工密钥必须给出工号', 'a staff key needs the employee id');
        }
        const code = input.accessCode === undefined ? undefined : checkAccessCode(input.accessCode);
        const grants = await checkGrants(input.grants);
        if (await deps.keys.getByLabel(label)) {
          throw err('HELD_KEY_EXISTS', 409, `标签为「${label}」的托管密钥已存在`, `a held key labelled "${label}" already exists`, { label });
        }
        const hierarchy: Hierarchy = algorithm === 'sm2' ? 'sm2' : 'ecdsa';
        const profile = profileFor(kind, usage, algorithm);
        const verifier = code === undefined ? undefined : await makeVerifier(code);

        const key: KeyInfo = await deps.custody.generate({
          algorithm,
          label: `held-${label}`,
          purpose: `held ${kind} ${usage === 'sign' ? 'signing' : 'encryption'} key "${label}" for apps (${String(input.commonName).slice(0, 64)})`,
          usage: usage === 'encrypt' ? 'decrypt' : 'sign',
        });
        // Nothing half-made stays: a key without its certificate (or record) is destroyed.
        const destroyKey = async (why: unknown): Promise<void> => {
          await deps.custody.destroy(key.id).catch((x: Error) => log.error({ err: x.message, keyId: key.id }, 'could not destroy the key of a failed held-key creation'));
          log.warn({ label, keyId: key.id, err: (why as Error)?.message }, 'held-key creation failed after key generation; key destroyed');
        };
        let issuedSerial: string;
        let subject: string;
        try {
          const ou = input.ou ?? input.department;
          const issued = await deps.certificates.issueForAppliance(
            {
              profile,
              hierarchy,
              keyRef: key.id,
              publicKeyInfo: key.publicKeyInfo,
              keyAlgorithm: algorithm,
              commonName: input.commonName,
              ...(input.organisation !== undefined ? { organisation: input.organisation } : {}),
              ...(ou !== undefined ? { ou } : {}),
              ...(input.employeeId !== undefined ? { employeeId: input.employeeId } : {}),
              ...(input.departmentId !== undefined && TAKES_DEPARTMENT_ID.has(profile) ? { departmentId: input.departmentId } : {}),
              ...(input.titleLevel !== undefined ? { titleLevel: input.titleLevel } : {}),
              ...(input.email !== undefined ? { email: input.email } : {}),
              ...(input.validityDays !== undefined ? { validityDays: input.validityDays } : {}),
            },
            actor,
          );
          issuedSerial = issued.record.serial;
          subject = issued.record.subject;
        } catch (e) {
          await destroyKey(e);
          throw e;
        }
        const now = nowIso();
        const id = newId();
        const record: HeldKeyRecord = {
          id,
          label,
          kind,
          usage,
          algorithm,
          hierarchy,
          keyId: key.id,
          keyUri: key.uri,
          certSerial: issuedSerial,
          subject,
          grants,
          ...(input.employeeId !== undefined ? { employeeId: input.employeeId } : {}),
          ...(input.departmentId !== undefined ? { departmentId: input.departmentId } : {}),
          createdAt: now,
          ...(verifier ? { accessCode: verifier } : {}),
          disabled: false,
          updatedAt: now,
        };
        try {
          await deps.keys.create(record, {
            audit: { actor, action: 'held-key.create', target: id, outcome: 'ok', detail: { label, kind, usage, algorithm, keyId: key.id, certSerial: issuedSerial, grants, accessCode: verifier !== undefined } },
          });
        } catch (e) {
          // Lost a race for the label: the certificate stays issued to a key that no longer exists
          // (logged; revoke it with reason cessationOfOperation).
          log.error({ label, serial: issuedSerial }, 'held-key record not stored after its certificate was issued');
          await destroyKey(e);
          throw e;
        }
        return view(record);
      });
    },

    async grant(ref, appId, actor) {
      return audited(actor, 'held-key.grant', typeof ref === 'string' ? ref.slice(0, 64) : undefined, async () => {
        const id = await appMustExist(appId);
        return change(ref, actor, 'held-key.grant', { appId: id }, (cur) => (cur.grants.includes(id) ? cur : { ...cur, grants: [...cur.grants, id] }));
      });
    },

    ungrant(ref, appId, actor) {
      // No existence check: grants of a deleted app must be removable.
      return change(ref, actor, 'held-key.ungrant', { appId: String(appId).slice(0, 64) }, (cur) => ({ ...cur, grants: cur.grants.filter((g) => g !== appId) }));
    },

    async setAccessCode(ref, code, actor) {
      return audited(actor, 'held-key.access-code', typeof ref === 'string' ? ref.slice(0, 64) : undefined, async () => {
        const checked = code === null ? null : checkAccessCode(code);
        const verifier = checked === null ? undefined : await makeVerifier(checked);
        const v = await change(ref, actor, 'held-key.access-code', { set: verifier !== undefined }, (cur) => {
          const { accessCode: _old, accessFailures: _f, ...rest } = cur;
          return verifier ? { ...rest, accessCode: verifier } : rest;
        });
        accepted.delete(v.id);
        return v;
      });
    },

    async disable(ref, actor) {
      const v = await change(ref, actor, 'held-key.disable', {}, (cur) => ({ ...cur, disabled: true, disabledAt: nowIso() }));
      dropCaches(v.id);
      return v;
    },
  };
}
