// CK_RV → what to do about it (recover a session, re-initialise the module, or give up) and
// → the appliance's typed errors (appliance/src/errors.ts codes, with their HTTP status).
import { YiqianError, Codes, isYiqianError } from '../../appliance/src/errors.js';
import { ck, ckrOf } from './pkcs11-module.js';

/**
 * - `session`: the session or the login is gone → open a new session, log in, retry once.
 * - `device`: the module or the token is gone → C_Finalize + C_Initialize + find the token +
 *   log in, retry once.
 * - `none`: the operation itself failed; retrying would not help.
 */
export type Recovery = 'session' | 'device' | 'none';

const SESSION_RVS = new Set<number>([ck.CKR_SESSION_HANDLE_INVALID, ck.CKR_SESSION_CLOSED, ck.CKR_USER_NOT_LOGGED_IN]);
const DEVICE_RVS = new Set<number>([ck.CKR_DEVICE_ERROR, ck.CKR_DEVICE_REMOVED, ck.CKR_TOKEN_NOT_PRESENT, ck.CKR_CRYPTOKI_NOT_INITIALIZED]);
const PIN_RVS = new Set<number>([ck.CKR_PIN_INCORRECT, ck.CKR_PIN_LEN_RANGE, ck.CKR_PIN_INVALID, ck.CKR_PIN_LOCKED, ck.CKR_PIN_EXPIRED]);
const MECHANISM_RVS = new Set<number>([ck.CKR_MECHANISM_INVALID, ck.CKR_MECHANISM_PARAM_INVALID, ck.CKR_KEY_TYPE_INCONSISTENT, ck.CKR_DOMAIN_PARAMS_INVALID]);
/** The session handle itself is no longer valid: do not C_CloseSession it (a new session may reuse the number). */
const HANDLE_GONE_RVS = new Set<number>([ck.CKR_SESSION_HANDLE_INVALID, ck.CKR_SESSION_CLOSED, ...DEVICE_RVS]);

export function recoveryFor(e: unknown): Recovery {
  if (isYiqianError(e)) return 'none';
  const rv = ckrOf(e);
  if (!rv) return 'none';
  if (SESSION_RVS.has(rv.code)) return 'session';
  if (DEVICE_RVS.has(rv.code)) return 'device';
  return 'none';
}

export function sessionHandleGone(e: unknown): boolean {
  const rv = ckrOf(e);
  return rv !== undefined && HANDLE_GONE_RVS.has(rv.code);
}

export function isCkr(e: unknown, ...codes: number[]): boolean {
  const rv = ckrOf(e);
  return rv !== undefined && codes.includes(rv.code);
}

export function hsmUnavailable(token: string, reasonEn: string, cause?: unknown): YiqianError {
  return new YiqianError(
    Codes.HSM_UNAVAILABLE,
    503,
    { zh: `密码设备不可用（令牌 "${token}"）：${reasonEn}`, en: `HSM unavailable (token "${token}"): ${reasonEn}` },
    { token, reason: reasonEn },
    { cause },
  );
}

/** Maps any error from a PKCS#11 call to a YiqianError (YiqianErrors pass through unchanged). */
export function toYiqianError(e: unknown, ctx: { token: string; op: string }): YiqianError {
  if (isYiqianError(e)) return e;
  const rv = ckrOf(e);
  if (!rv) {
    const msg = e instanceof Error ? e.message : String(e);
    return new YiqianError(Codes.HSM_ERROR, 500, { zh: `密码设备错误（${ctx.op}）：${msg}`, en: `HSM error during ${ctx.op}: ${msg}` }, { token: ctx.token, op: ctx.op }, { cause: e });
  }
  const detail = { token: ctx.token, op: ctx.op, ckr: rv.name };
  if (PIN_RVS.has(rv.code)) {
    const why = rv.code === ck.CKR_PIN_LOCKED ? 'the user PIN is locked' : rv.code === ck.CKR_PIN_EXPIRED ? 'the user PIN has expired' : 'the token rejected the user PIN';
    const whyZh = rv.code === ck.CKR_PIN_LOCKED ? '用户PIN已锁定' : rv.code === ck.CKR_PIN_EXPIRED ? '用户PIN已过期' : '令牌拒绝了用户PIN';
    return new YiqianError(
      Codes.HSM_PIN_INCORRECT,
      500,
      { zh: `${whyZh}（令牌 "${ctx.token}"，${rv.name}）：请检查配置中的 HSM PIN`, en: `${why} (token "${ctx.token}", ${rv.name}): check the HSM PIN in the configuration` },
      detail,
      { cause: e },
    );
  }
  if (MECHANISM_RVS.has(rv.code)) {
    return new YiqianError(
      Codes.HSM_MECHANISM_UNSUPPORTED,
      501,
      { zh: `密码设备不支持该机制或参数（${ctx.op}，${rv.name}）`, en: `the HSM does not support this mechanism or its parameters (${ctx.op}, ${rv.name})` },
      detail,
      { cause: e },
    );
  }
  if (DEVICE_RVS.has(rv.code) || SESSION_RVS.has(rv.code)) return hsmUnavailable(ctx.token, `${ctx.op} failed with ${rv.name}`, e);
  return new YiqianError(Codes.HSM_ERROR, 500, { zh: `密码设备错误（${ctx.op}）：${rv.name}`, en: `HSM error during ${ctx.op}: ${rv.name}` }, detail, { cause: e });
}

export function keyNotFound(ref: string, why = 'no such key'): YiqianError {
  return new YiqianError(Codes.KEY_NOT_FOUND, 404, { zh: `密钥不存在：${ref}`, en: `key not found: ${ref} (${why})` }, { ref });
}

export function keyExists(label: string, where: string): YiqianError {
  return new YiqianError(Codes.KEY_EXISTS, 409, { zh: `标签为 "${label}" 的密钥已存在（${where}）`, en: `a key labelled "${label}" already exists (${where})` }, { label });
}

export function unwrapFailed(label: string, reasonEn: string, cause?: unknown): YiqianError {
  return new YiqianError(
    Codes.KEY_UNWRAP_FAILED,
    500,
    { zh: `无法解封密钥 "${label}"：${reasonEn}`, en: `cannot unwrap key "${label}": ${reasonEn}` },
    { label, reason: reasonEn },
    { cause },
  );
}

export function badRequest(en: string, zh: string, detail?: Record<string, unknown>): YiqianError {
  return new YiqianError(Codes.BAD_REQUEST, 400, { zh, en }, detail);
}

export function mechanismUnsupported(en: string, zh: string, detail?: Record<string, unknown>): YiqianError {
  return new YiqianError(Codes.HSM_MECHANISM_UNSUPPORTED, 501, { zh, en }, detail);
}
