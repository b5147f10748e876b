// App authentication for /api/: every request is signed with the app's own key under the YQ1
// scheme (yq1-scheme.ts, docs/api-auth.md). Checks run cheapest first, and the nonce is
// spent only AFTER the signature verified, so a stranger cannot burn an app's nonces.
import type { Middleware, ParameterizedContext } from 'koa';
import { verifySignature } from '../crypto/verify.js';
import { Codes, isYiqianError, type YiqianError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { httpError, internalError } from './problem.js';
import { bindLog } from './request-id.js';
import type { AuthenticatedApp, HttpState } from './state.js';
import { YQ1_MAX_SKEW_MS, YQ1_SCHEMES, bodyHashHex, canonicalString, parseAuthorization, schemeForAlgorithm } from './yq1-scheme.js';

/** The part of an app record authentication needs (store/ implements it). */
export interface AppEntry {
  id: string;
  name: string;
  project: string;
  algorithm: string;
  /** base64 DER SubjectPublicKeyInfo. */
  publicKeyInfo: string;
  status: string;
}

export interface AppDirectory {
  get(appId: string): Promise<AppEntry | undefined>;
}

export interface NonceCache {
  /** True the first time (appId, nonce) is seen before `expiresAtMs`; false for a replay. Durable when resolved. */
  remember(appId: string, nonce: string, expiresAtMs: number): Promise<boolean>;
}

export interface AppAuthOptions {
  apps: AppDirectory;
  nonces: NonceCache;
  metrics: Metrics;
  clock?: () => number;
  maxSkewMs?: number;
}

const AUTH_CODES = new Set<string>([
  Codes.MISSING_AUTH,
  Codes.MALFORMED_AUTH,
  Codes.BAD_SIGNATURE,
  Codes.CLOCK_SKEW,
  Codes.REPLAYED_NONCE,
  Codes.UNKNOWN_APP,
  Codes.APP_FROZEN,
]);

export const WWW_AUTHENTICATE = YQ1_SCHEMES.join(', ');

/** Paths under /api/ that are public documentation, answered without a signature (openapi-route.ts). */
export const PUBLIC_API_PATHS: ReadonlySet<string> = new Set(['/api/openapi.json']);

/** /api and everything under it, in any letter case (the router matches paths case-insensitively). */
export function isApiPath(path: string): boolean {
  const p = path.toLowerCase();
  return p === '/api' || p.startsWith('/api/');
}

function unauthorized(code: string, zh: string, en: string, detail?: Record<string, unknown>): YiqianError {
  return httpError(code, 401, zh, en, { detail, headers: { 'WWW-Authenticate': WWW_AUTHENTICATE } });
}

/** Header naming the body hash of a streamed upload, which the signature is checked against before the body is read. */
export const BODY_HASH_HEADER = 'X-YQ1-Body-Hash';

/**
 * A streamed body (body-reader.ts `streamed`) is not read before authentication, so the client
 * declares hex(HASH(body)) in X-YQ1-Body-Hash and the signature is verified over the usual
 * canonical string with that value: nobody without the key gets a byte written. The route hashes
 * the bytes as they arrive and refuses at the end when they differ (ctx.state.declaredBodyHash).
 */
function declaredBodyHash(ctx: Parameters<Middleware<HttpState>>[0], scheme: 'YQ1-SM2-SM3' | 'YQ1-ECDSA-SHA256'): string {
  const value = ctx.get(BODY_HASH_HEADER).trim();
  if (!/^[0-9a-f]{64}$/.test(value)) {
    const reason = `a streamed upload needs ${BODY_HASH_HEADER}: the 64 lower-case hex digits of the body's ${scheme === 'YQ1-SM2-SM3' ? 'SM3' : 'SHA-256'}`;
    throw unauthorized(Codes.MALFORMED_AUTH, `Authorization 格式错误：${reason}`, `malformed Authorization: ${reason}`, { reason });
  }
  ctx.state.declaredBodyHash = { algorithm: scheme === 'YQ1-SM2-SM3' ? 'sm3' : 'sha256', hex: value };
  return value;
}

export function appAuth(opts: AppAuthOptions): Middleware<HttpState> {
  const clock = opts.clock ?? Date.now;
  const maxSkewMs = opts.maxSkewMs ?? YQ1_MAX_SKEW_MS;

  async function authenticate(ctx: Parameters<Middleware<HttpState>>[0]): Promise<void> {
    const header = ctx.get('Authorization');
    if (!header) {
      throw unauthorized(Codes.MISSING_AUTH, '缺少 Authorization 请求头（YQ1 签名）', 'missing Authorization header (YQ1 signature)');
    }
    const parsed = parseAuthorization(header);
    if (!parsed.ok) {
      throw unauthorized(Codes.MALFORMED_AUTH, `Authorization 格式错误：${parsed.reason}`, `malformed Authorization: ${parsed.reason}`, {
        reason: parsed.reason,
      });
    }
    const auth = parsed.auth;
    const now = clock();
    if (Math.abs(now - auth.ts) > maxSkewMs) {
      throw unauthorized(
        Codes.CLOCK_SKEW,
        `请求时间戳与服务器时间相差超过 ${maxSkewMs / 1000} 秒`,
        `request timestamp differs from server time by more than ${maxSkewMs / 1000} s`,
        { serverTime: now, maxSkewMs },
      );
    }
    const app = await opts.apps.get(auth.appId);
    if (!app) throw unauthorized(Codes.UNKNOWN_APP, '应用不存在', 'unknown app', { appId: auth.appId });

    const badSignature = (zh: string, en: string): YiqianError =>
      unauthorized(Codes.BAD_SIGNATURE, `签名验证失败：${zh}`, `signature verification failed: ${en}`, { reason: en });
    const scheme = schemeForAlgorithm(app.algorithm);
    if (scheme !== auth.scheme) throw badSignature('签名方案与应用密钥算法不符', 'scheme does not match the app key algorithm');

    const tbs = canonicalString(ctx.method, ctx.originalUrl, auth.ts, auth.nonce, ctx.state.bodyStreamed ? declaredBodyHash(ctx, scheme) : bodyHashHex(scheme, ctx.state.rawBody));
    let ok: boolean;
    try {
      ok = await verifySignature(app.algorithm as 'sm2' | 'ecdsa-p256', Buffer.from(app.publicKeyInfo, 'base64'), Buffer.from(tbs, 'utf8'), auth.signature);
    } catch (e) {
      // Undecodable signature bytes are the client's fault; anything else (a broken key record,
      // a failing crypto engine) is ours: neither a 401 nor a 4xx about "the" key, but a 500.
      if (isYiqianError(e) && e.code === Codes.INVALID_SIGNATURE_ENCODING) ok = false;
      else throw internalError(e);
    }
    if (!ok) throw badSignature('签名与请求内容不符', 'signature does not match the request');

    if (app.status !== 'active') {
      throw httpError(Codes.APP_FROZEN, 403, '应用已冻结', 'app is frozen', { detail: { appId: app.id } });
    }
    // Remember the nonce as long as a request with this ts could still be accepted.
    const fresh = await opts.nonces.remember(app.id, auth.nonce.toLowerCase(), auth.ts + maxSkewMs);
    if (!fresh) throw unauthorized(Codes.REPLAYED_NONCE, '请求已被使用过（nonce 重复）', 'nonce already used (replayed request)');

    ctx.state.app = { id: app.id, name: app.name, project: app.project, algorithm: scheme === 'YQ1-SM2-SM3' ? 'sm2' : 'ecdsa-p256' };
  }

  return async (ctx, next) => {
    if (!isApiPath(ctx.path) || PUBLIC_API_PATHS.has(ctx.path)) return next();
    try {
      await authenticate(ctx);
    } catch (e) {
      if (isYiqianError(e) && AUTH_CODES.has(e.code)) opts.metrics.authFailures.inc({ code: e.code });
      throw e;
    }
    bindLog(ctx.state, { appId: ctx.state.app!.id });
    await next();
  };
}

/** The app a route under /api/ was called by; a route mounted without app authentication is a wiring bug (500). */
export function callingApp(ctx: ParameterizedContext<HttpState>): AuthenticatedApp {
  if (!ctx.state.app) throw internalError(new Error(`${ctx.path} is served without app authentication`));
  return ctx.state.app;
}
