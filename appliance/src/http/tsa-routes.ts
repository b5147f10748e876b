// Time-stamping over HTTP (RFC 3161 §3.4).
//
// Public (no app authentication; optional network allow-list tsa.allow), both listeners:
//   POST /tsa          application/timestamp-query → application/timestamp-reply, default identity
//   POST /tsa/sm2      the SM2 TSA (GM/T 0033 profile)
//   POST /tsa/ecdsa    the ECDSA P-256 TSA (HSM key)
// Authenticated (under /api/v1):
//   GET  /tsa/tokens/:serial   the stored record of an issued token
//   GET  /time/status          the clock's status()
//
// Like OCSP (revocation-routes.ts), the public paths are their own small koa app in front of
// both listeners, and an envelope turns EVERY failure — wrong method, wrong content type,
// oversize body, address not allowed, overload, timeout — into a TimeStampResp `rejection`
// with a fitting HTTP status, never problem+json.
import Koa, { type Middleware, type ParameterizedContext } from 'koa';
import Router from '@koa/router';
import { timeStampRejection, type FailureInfoName } from '../asn1/tsp.js';
import { ipToBytes, parseCidr } from '../config/config.js';
import { Codes, isYiqianError } from '../errors.js';
import { log as rootLog, type Logger } from '../log.js';
import { metrics as defaultMetrics, type Metrics } from '../metrics.js';
import type { TsaService } from '../tsa/tsa-service.js';
import type { TsaIdentity, TsaTokenRepository } from '../tsa/types.js';
import { readLimited } from './body-reader.js';
import { type HttpLimits } from './create-api-app.js';
import { createSignedObjectApp } from './signed-object-app.js';
import { httpError } from './problem.js';
import type { HttpState } from './state.js';

export const TSQ_TYPE = 'application/timestamp-query';
export const TSR_TYPE = 'application/timestamp-reply';
/** The caller's address is not in tsa.allow. */
export const TSA_NOT_ALLOWED = 'TSA_NOT_ALLOWED';

export interface TsaPublicDeps {
  tsa: Pick<TsaService, 'respond'>;
  defaultIdentity: TsaIdentity;
  /** CIDRs allowed to call; empty → everyone. */
  allow: string[];
  maxRequestBytes: number;
  limits?: HttpLimits;
  metrics?: Metrics;
  log?: Logger;
}

/** The paths createTsaPublicApp answers (main.ts routes them to it on both listeners). */
export function isTsaPublicPath(url: string | undefined): boolean {
  const path = (url ?? '').split('?')[0];
  return path === '/tsa' || path.startsWith('/tsa/');
}

/** An allow-list test over parsed CIDRs; an empty list allows everyone. */
export function addressFilter(cidrs: string[]): (address: string | undefined) => boolean {
  const nets = cidrs.map((c) => parseCidr(c)!).filter(Boolean);
  if (nets.length === 0) return () => true;
  return (address) => {
    const ip = address ? ipToBytes(address) : undefined;
    if (!ip) return false;
    return nets.some((n) => {
      if (n.bytes.length !== ip.length) return false;
      const full = Math.floor(n.prefix / 8);
      if (!ip.subarray(0, full).equals(n.bytes.subarray(0, full))) return false;
      const rest = n.prefix % 8;
      if (rest === 0) return true;
      const mask = (0xff << (8 - rest)) & 0xff;
      return (ip[full] & mask) === (n.bytes[full] & mask);
    });
  };
}

type Ctx = ParameterizedContext<HttpState>;

function sendReply(ctx: Ctx, der: Buffer, status = 200): void {
  ctx.status = status;
  ctx.type = TSR_TYPE;
  ctx.set('Cache-Control', 'no-store');
  ctx.body = der;
}

/** Every failure on a /tsa path → TimeStampResp rejection (RFC 3161 has no HTTP error body). */
function tsaEnvelope(m: Metrics): Middleware<HttpState> {
  return async (ctx, next) => {
    try {
      await next();
      if (ctx.body == null && ctx.status === 404) throw httpError(Codes.NOT_FOUND, 404, '没有这个时间戳服务', 'no such time-stamp service (POST /tsa, /tsa/sm2, /tsa/ecdsa)');
    } catch (err) {
      if (ctx.headerSent || !ctx.writable) return;
      if ((err as { code?: unknown } | null)?.code === 'CLIENT_ABORTED') return;
      const code = isYiqianError(err) ? err.code : Codes.INTERNAL;
      for (const name of ctx.res.getHeaderNames()) if (name !== 'x-request-id') ctx.res.removeHeader(name);
      let status = 500;
      let fail: FailureInfoName = 'systemFailure';
      const text = isYiqianError(err) ? err.message : 'internal error';
      if (code === Codes.PAYLOAD_TOO_LARGE || code === Codes.UNSUPPORTED_MEDIA_TYPE) {
        status = code === Codes.PAYLOAD_TOO_LARGE ? 413 : 415;
        fail = 'badDataFormat';
        ctx.set('Connection', 'close');
      } else if (code === Codes.METHOD_NOT_ALLOWED || code === Codes.NOT_FOUND || code === TSA_NOT_ALLOWED) {
        status = code === Codes.METHOD_NOT_ALLOWED ? 405 : code === Codes.NOT_FOUND ? 404 : 403;
        fail = 'badRequest';
        if (status === 405) ctx.set('Allow', 'POST');
      } else if (code === Codes.OVERLOADED || code === Codes.REQUEST_TIMEOUT) {
        status = 503;
        ctx.set('Retry-After', '1');
        if (!ctx.req.complete) ctx.set('Connection', 'close');
      } else {
        ctx.state.log.error({ err }, 'time-stamp request failed');
      }
      m.errors.inc({ code });
      sendReply(ctx, timeStampRejection(fail, [text]), status);
    }
  };
}

async function readQuery(ctx: Ctx, limit: number): Promise<Buffer> {
  const type = (ctx.get('Content-Type') || '').split(';')[0].trim().toLowerCase();
  if (type !== TSQ_TYPE) throw httpError(Codes.UNSUPPORTED_MEDIA_TYPE, 415, `内容类型必须是 ${TSQ_TYPE}`, `Content-Type must be ${TSQ_TYPE}`);
  const encoding = (ctx.get('Content-Encoding') || 'identity').trim().toLowerCase();
  if (encoding !== 'identity') throw httpError(Codes.UNSUPPORTED_MEDIA_TYPE, 415, '不支持的内容编码', 'unsupported Content-Encoding');
  const tooLarge = () => httpError(Codes.PAYLOAD_TOO_LARGE, 413, `时间戳请求超过 ${limit} 字节上限`, `time-stamp request exceeds ${limit} bytes`);
  const declared = Number(ctx.req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge();
  try {
    return await readLimited(ctx.req, limit, ctx.res);
  } catch (e) {
    if (isYiqianError(e) && e.code === Codes.PAYLOAD_TOO_LARGE) throw tooLarge();
    throw e;
  }
}

export function tsaPublicRouter(deps: TsaPublicDeps): Router<HttpState> {
  const router = new Router<HttpState>({ sensitive: true, strict: true });
  const allowed = addressFilter(deps.allow);
  const handle = (identity: TsaIdentity): Middleware<HttpState> => async (ctx) => {
    const address = ctx.req.socket.remoteAddress;
    if (!allowed(address)) throw httpError(TSA_NOT_ALLOWED, 403, '此网络不得使用时间戳服务', `time-stamping is not open to ${address ?? 'this address'}`);
    const der = await readQuery(ctx, deps.maxRequestBytes);
    const a = await deps.tsa.respond(der, identity, { address: address ?? 'unknown' });
    if (!a.granted) ctx.state.log.info({ identity, failInfo: a.failInfo, reason: a.reason }, 'time-stamp refused');
    sendReply(ctx, a.der);
  };
  router.post('/tsa', handle(deps.defaultIdentity));
  router.post('/tsa/sm2', handle('sm2'));
  router.post('/tsa/ecdsa', handle('ecdsa'));
  router.all(['/tsa', '/tsa/sm2', '/tsa/ecdsa'], () => {
    throw httpError(Codes.METHOD_NOT_ALLOWED, 405, '只接受 POST', 'only POST is accepted');
  });
  return router;
}

/** The koa app that serves /tsa… on both listeners. */
export function createTsaPublicApp(deps: TsaPublicDeps): Koa<HttpState> {
  const m = deps.metrics ?? defaultMetrics;
  return createSignedObjectApp({ metrics: m, log: deps.log ?? rootLog, limits: deps.limits, envelope: tsaEnvelope(m), router: tsaPublicRouter(deps) });
}

/** Authenticated routes under /api/v1: token records and the clock status. */
export function tsaApiRouter(deps: { tokens: Pick<TsaTokenRepository, 'get'>; clockStatus: () => unknown }): Router<HttpState> {
  const router = new Router<HttpState>({ sensitive: true });
  router.get('/tsa/tokens/:serial', async (ctx) => {
    const serial = ctx.params.serial.toLowerCase().replace(/^0x/, '').replace(/^(00)+(?=.)/, '');
    const rec = await deps.tokens.get(serial);
    if (!rec) throw httpError(Codes.NOT_FOUND, 404, '没有这个时间戳', `no time-stamp token with serial ${serial.slice(0, 80)}`);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = rec;
  });
  router.get('/time/status', (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = deps.clockStatus();
  });
  return router;
}
