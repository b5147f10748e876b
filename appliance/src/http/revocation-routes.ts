// Revocation over HTTP.
//
// Authenticated (mounted under /api/v1 by createApiApp):
//   POST /certs/:serial/revoke   {"reason": "<RFC 5280 CRLReason name>"}   (not certificateHold: use suspend)
//   POST /certs/:serial/suspend                                             (certificateHold, 挂失)
//   POST /certs/:serial/resume
//
// Public (no authentication, plain HTTP and HTTPS alike — RFC 5280 §4.2.1.13 / §4.2.2.1):
//   GET  /pki/crl/<caId>.crl     application/pkix-crl, DER (RFC 5280 §5); conditional GET by ETag
//   POST /ocsp                   application/ocsp-request → application/ocsp-response (RFC 6960 A.1)
//   GET  /ocsp/<base64 request>  URL-encoded base64 of the DER request (RFC 6960 A.1); cacheable
//                                until nextUpdate when no nonce was sent (RFC 5019 §6)
//
// The public endpoints are their own small koa app (createRevocationPublicApp) which main.ts
// puts in front of both listeners for these paths (isRevocationPublicPath). Why not a router in
// createPublicApp: an OCSP client expects an OCSPResponse for EVERY failure — a body over the
// size limit, a wrong method, overload, a timeout — never problem+json, and the shared body
// reader of the public app answers an oversize body with problem+json before any router runs.
// Here the OCSP route reads its own body with its own (smaller) limit, and an envelope turns
// every failure on /ocsp into an OCSPResponse (malformedRequest / tryLater / internalError) with
// the fitting HTTP status. The CRL path keeps problem+json errors (404 for an unknown CA).
import { createHash } from 'node:crypto';
import Koa, { type Middleware, type ParameterizedContext } from 'koa';
import Router from '@koa/router';
import { ocspErrorResponse } from '../asn1/ocsp.js';
import { Codes, isYiqianError } from '../errors.js';
import { log as rootLog, type Logger } from '../log.js';
import { metrics as defaultMetrics, type Metrics } from '../metrics.js';
import type { CrlPublisher } from '../pki/crl-publisher.js';
import type { OcspAnswer, OcspResponder } from '../pki/ocsp-responder.js';
import type { RevocationResult, RevocationService } from '../pki/revocation.js';
import type { CaId } from '../pki/types.js';
import { readLimited } from './body-reader.js';
import { type HttpLimits } from './create-api-app.js';
import { createSignedObjectApp } from './signed-object-app.js';
import { jsonRoute } from './json-body.js';
import { httpError } from './problem.js';
import { callingApp } from './app-auth.js';
import { jsonObject } from './json-body.js';
import type { HttpState } from './state.js';

export const OCSP_REQUEST_TYPE = 'application/ocsp-request';
export const OCSP_RESPONSE_TYPE = 'application/ocsp-response';
export const CRL_TYPE = 'application/pkix-crl';
/** Largest OCSP request accepted (POST body or decoded GET path); a 16-certificate request is under 2 KiB. */
export const DEFAULT_OCSP_MAX_REQUEST_BYTES = 16 * 1024;

const CA_IDS: ReadonlySet<string> = new Set<CaId>(['sm2-root', 'sm2-issuing', 'ecdsa-root', 'ecdsa-issuing']);

// ---------- authenticated API ----------

function view(r: RevocationResult) {
  const c = r.certificate;
  return { serial: c.serial, caId: c.caId, status: c.status, ...(c.revocation ? { revocation: c.revocation } : {}), crl: r.crl };
}

const actorOf = (ctx: ParameterizedContext<HttpState>): string => `app:${callingApp(ctx).id}`;

const bodyObject = jsonObject;

/** Lifecycle routes, mounted under /api/v1 behind app authentication. */
export function revocationApiRouter(service: Pick<RevocationService, 'revoke' | 'suspend' | 'resume'>): Router<HttpState> {
  const router = new Router<HttpState>({ sensitive: true });
  router.post('/certs/:serial/revoke', jsonRoute(), async (ctx) => {
    const { reason } = bodyObject(ctx);
    ctx.body = view(await service.revoke(ctx.params.serial, reason, actorOf(ctx)));
  });
  router.post('/certs/:serial/suspend', jsonRoute(), async (ctx) => {
    bodyObject(ctx);
    ctx.body = view(await service.suspend(ctx.params.serial, actorOf(ctx)));
  });
  router.post('/certs/:serial/resume', jsonRoute(), async (ctx) => {
    bodyObject(ctx);
    ctx.body = view(await service.resume(ctx.params.serial, actorOf(ctx)));
  });
  return router;
}

// ---------- public CRL and OCSP ----------

export interface RevocationPublicDeps {
  crls: Pick<CrlPublisher, 'current'>;
  ocsp: Pick<OcspResponder, 'respond'>;
  /** Default 16 KiB. */
  maxOcspRequestBytes?: number;
  limits?: HttpLimits;
  metrics?: Metrics;
  log?: Logger;
  clock?: () => Date;
}

/** The paths createRevocationPublicApp answers (main.ts routes them to it on both listeners). */
export function isRevocationPublicPath(url: string | undefined): boolean {
  const path = (url ?? '').split('?')[0];
  return path === '/ocsp' || path.startsWith('/ocsp/') || path.startsWith('/pki/crl/');
}

const isOcspPath = (path: string): boolean => path === '/ocsp' || path.startsWith('/ocsp/');

type Ctx = ParameterizedContext<HttpState>;

function sendOcsp(ctx: Ctx, der: Buffer, httpStatus = 200): void {
  ctx.status = httpStatus;
  ctx.type = OCSP_RESPONSE_TYPE;
  ctx.body = der;
}

/**
 * Inside problems(): a failure on an /ocsp path becomes an OCSPResponse instead of problem+json
 * (oversize → 413 malformedRequest, wrong method → 405 malformedRequest, overload or timeout →
 * 503 tryLater, anything else → 500 internalError). Other paths pass through.
 */
function ocspEnvelope(m: Metrics): Middleware<HttpState> {
  return async (ctx, next) => {
    if (!isOcspPath(ctx.path)) return next();
    try {
      await next();
      if (ctx.body == null && ctx.status === 404) throw httpError(Codes.NOT_FOUND, 404, '资源不存在', 'not found');
    } catch (err) {
      if (ctx.headerSent || !ctx.writable) return;
      const code = isYiqianError(err) ? err.code : Codes.INTERNAL;
      for (const name of ctx.res.getHeaderNames()) if (name !== 'x-request-id') ctx.res.removeHeader(name);
      let status = 500;
      let ocsp: Parameters<typeof ocspErrorResponse>[0] = 'internalError';
      if (code === Codes.PAYLOAD_TOO_LARGE || code === Codes.UNSUPPORTED_MEDIA_TYPE) {
        status = code === Codes.PAYLOAD_TOO_LARGE ? 413 : 415;
        ocsp = 'malformedRequest';
        ctx.set('Connection', 'close');
      } else if (code === Codes.METHOD_NOT_ALLOWED || code === Codes.NOT_FOUND) {
        status = code === Codes.METHOD_NOT_ALLOWED ? 405 : 404;
        ocsp = 'malformedRequest';
        if (status === 405) ctx.set('Allow', ctx.path === '/ocsp' ? 'POST' : 'GET, HEAD');
      } else if (code === Codes.OVERLOADED || code === Codes.REQUEST_TIMEOUT) {
        status = 503;
        ocsp = 'tryLater';
        ctx.set('Retry-After', '1');
        if (!ctx.req.complete) ctx.set('Connection', 'close');
      } else if ((err as { code?: unknown } | null)?.code === 'CLIENT_ABORTED') {
        return;
      } else {
        ctx.state.log.error({ err }, 'OCSP request failed');
      }
      m.errors.inc({ code });
      ctx.set('Cache-Control', 'no-store');
      sendOcsp(ctx, ocspErrorResponse(ocsp), status);
    }
  };
}

function tooLarge(limit: number) {
  return httpError(Codes.PAYLOAD_TOO_LARGE, 413, `OCSP 请求超过 ${limit} 字节上限`, `OCSP request exceeds ${limit} bytes`);
}

async function readOcspBody(ctx: Ctx, limit: number): Promise<Buffer> {
  const req = ctx.req;
  const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (encoding !== 'identity') throw httpError(Codes.UNSUPPORTED_MEDIA_TYPE, 415, '不支持的内容编码', 'unsupported Content-Encoding');
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  try {
    return await readLimited(req, limit, ctx.res);
  } catch (e) {
    if (isYiqianError(e) && e.code === Codes.PAYLOAD_TOO_LARGE) throw tooLarge(limit);
    throw e;
  }
}

function answer(ctx: Ctx, a: OcspAnswer, now: Date, cacheable: boolean): void {
  if (cacheable && a.status === 'successful' && !a.nonce && a.definite && a.nextUpdate && a.thisUpdate) {
    // RFC 5019 §6.2: max-age no later than nextUpdate; validators for conditional requests.
    const maxAge = Math.max(0, Math.floor((a.nextUpdate.getTime() - now.getTime()) / 1000));
    ctx.set('Cache-Control', `public, max-age=${maxAge}, no-transform, must-revalidate`);
    ctx.set('Last-Modified', a.thisUpdate.toUTCString());
    ctx.set('Expires', a.nextUpdate.toUTCString());
    ctx.set('ETag', `"${createHash('sha1').update(a.der).digest('hex')}"`);
  } else {
    ctx.set('Cache-Control', 'no-cache, no-store, max-age=0');
  }
  sendOcsp(ctx, a.der);
  if (cacheable && ctx.fresh) {
    ctx.status = 304;
    ctx.body = null;
  }
}

/** The public routes (the body of /ocsp is read by the route itself; no body reader in front). */
export function revocationPublicRouter(deps: RevocationPublicDeps): Router<HttpState> {
  const limit = deps.maxOcspRequestBytes ?? DEFAULT_OCSP_MAX_REQUEST_BYTES;
  const clock = deps.clock ?? (() => new Date());
  const router = new Router<HttpState>({ sensitive: true, strict: true });

  router.get('/pki/crl/:file', async (ctx) => {
    const m = /^([a-z0-9-]+)\.crl$/.exec(ctx.params.file);
    const caId = m?.[1];
    const crl = caId && CA_IDS.has(caId) ? await deps.crls.current(caId as CaId) : undefined;
    if (!crl) throw httpError(Codes.NOT_FOUND, 404, '没有这个 CRL', `no CRL ${ctx.params.file.slice(0, 64)}`, { detail: { caIds: [...CA_IDS] } });
    // Always revalidate: a CRL is re-signed on every revocation, and a 304 costs nothing.
    ctx.set('Cache-Control', 'public, no-cache');
    ctx.set('Last-Modified', crl.thisUpdate.toUTCString());
    ctx.set('Expires', crl.nextUpdate.toUTCString());
    ctx.set('ETag', `"${crl.caId}-${crl.crlNumber}"`);
    ctx.type = CRL_TYPE;
    ctx.body = crl.der;
    if (ctx.fresh) {
      ctx.status = 304;
      ctx.body = null;
    }
  });

  router.post('/ocsp', async (ctx) => {
    const body = await readOcspBody(ctx, limit);
    answer(ctx, await deps.ocsp.respond(body), clock(), false);
  });

  router.get('/ocsp/*request', async (ctx) => {
    // The raw path, so that a '/' of the base64 alphabet left unencoded still works.
    let b64: string;
    try {
      b64 = decodeURIComponent(ctx.path.slice('/ocsp/'.length));
    } catch {
      b64 = '!';
    }
    const valid = /^[A-Za-z0-9+/_-]+={0,2}$/.test(b64) && b64.length <= Math.ceil((limit * 4) / 3) + 4;
    if (!valid && b64.length > Math.ceil((limit * 4) / 3) + 4) throw tooLarge(limit);
    const der = valid ? Buffer.from(b64, 'base64') : Buffer.alloc(0);
    answer(ctx, await deps.ocsp.respond(der), clock(), true);
  });
  return router;
}

/** The koa app that serves the public revocation paths on both listeners. */
export function createRevocationPublicApp(deps: RevocationPublicDeps): Koa<HttpState> {
  const m = deps.metrics ?? defaultMetrics;
  return createSignedObjectApp({ metrics: m, log: deps.log ?? rootLog, limits: deps.limits, envelope: ocspEnvelope(m), router: revocationPublicRouter(deps), fallback: true });
}
