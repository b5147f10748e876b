// Errors → RFC 9457 application/problem+json. Every error response of the appliance goes
// through here: a YiqianError keeps its code, status, zh/en text and client-safe detail
// fields; anything else is a 500 INTERNAL whose message and stack stay in the log.
import type { Middleware, ParameterizedContext } from 'koa';
import { Codes, YiqianError, isYiqianError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { HttpState } from './state.js';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';
export const PROBLEM_TYPE_PREFIX = 'urn:yiqian:problem:';

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  message: { 'zh-CN': string; en: string };
  instance: string;
  [field: string]: unknown;
}

/** Headers an error wants on its response (Allow, Retry-After, WWW-Authenticate, Connection). */
const errorHeaders = new WeakMap<YiqianError, Record<string, string>>();

/** A YiqianError that also carries response headers (the http layer's own errors use this). */
export function httpError(
  code: string,
  status: number,
  zh: string,
  en: string,
  opts: { detail?: Record<string, unknown>; headers?: Record<string, string>; cause?: unknown } = {},
): YiqianError {
  const err = new YiqianError(code, status, { zh, en }, opts.detail, { cause: opts.cause });
  if (opts.headers) errorHeaders.set(err, opts.headers);
  return err;
}

/** Problem fields a detail record may not override. */
const RESERVED = new Set(['type', 'title', 'status', 'code', 'detail', 'message', 'instance']);

export function problemBody(err: YiqianError, instance: string): ProblemBody {
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(err.detail ?? {})) if (!RESERVED.has(k)) extra[k] = v;
  return {
    ...extra,
    type: PROBLEM_TYPE_PREFIX + err.code.toLowerCase(),
    title: err.text.en,
    status: err.status,
    code: err.code,
    detail: err.text.zh,
    message: { 'zh-CN': err.text.zh, en: err.text.en },
    instance,
  };
}

// Koa's own HttpErrors (ctx.throw, ctx.assert, koa internals) that are meant for the client.
const BY_STATUS: Record<number, [code: string, zh: string, en: string]> = {
  400: [Codes.BAD_REQUEST, '请求无效', 'bad request'],
  404: [Codes.NOT_FOUND, '资源不存在', 'not found'],
  405: [Codes.METHOD_NOT_ALLOWED, '不支持该请求方法', 'method not allowed'],
  413: [Codes.PAYLOAD_TOO_LARGE, '请求体过大', 'payload too large'],
  415: [Codes.UNSUPPORTED_MEDIA_TYPE, '不支持的内容类型', 'unsupported media type'],
};

export function internalError(cause?: unknown): YiqianError {
  return new YiqianError(Codes.INTERNAL, 500, { zh: '服务内部错误', en: 'internal error' }, undefined, { cause });
}

export function notFoundError(): YiqianError {
  const [code, zh, en] = BY_STATUS[404]!;
  return new YiqianError(code, 404, { zh, en });
}

/** Turns anything thrown into the YiqianError the client may see. */
export function toClientError(err: unknown): YiqianError {
  if (isYiqianError(err)) return err;
  const e = err as { status?: unknown; expose?: unknown; message?: unknown } | null;
  if (e && typeof e.status === 'number' && e.status >= 400 && e.status < 500 && e.expose === true) {
    const [code, zh, en] = BY_STATUS[e.status] ?? BY_STATUS[400]!;
    const reason = typeof e.message === 'string' ? e.message.slice(0, 200) : undefined;
    return new YiqianError(code, e.status, { zh, en }, reason ? { reason } : undefined, { cause: err });
  }
  return internalError(err);
}

/** The client went away mid-request; nothing to answer and nothing wrong with the server. */
function isClientGone(err: unknown): boolean {
  const c = (err as { code?: unknown } | null)?.code;
  return c === 'ECONNRESET' || c === 'ECONNABORTED' || c === 'ERR_STREAM_PREMATURE_CLOSE' || c === 'CLIENT_ABORTED';
}

type Ctx = ParameterizedContext<HttpState>;

/** Expected refusals that metrics already count; logging each would let a flood fill the journal. */
const QUIET = new Set<string>([Codes.OVERLOADED]);

/**
 * Unexpected failures (500 INTERNAL) at error level with the stack of the real cause; other
 * server-side conditions (HSM down, timeout) at warn without a stack; client errors at debug.
 */
function logFailure(ctx: Ctx, err: unknown, clientErr: YiqianError): void {
  const log = ctx.state.log;
  const where = { method: ctx.method, path: ctx.path, code: clientErr.code, status: clientErr.status };
  if (clientErr.status < 500 || QUIET.has(clientErr.code)) {
    log.debug(where, 'request refused');
  } else if (isClientGone(err)) {
    log.info(where, 'client went away');
  } else if (clientErr.code === Codes.INTERNAL) {
    // The underlying failure, not the generic wrapper the client gets.
    const cause = isYiqianError(err) && err.cause !== undefined ? err.cause : err;
    log.error({ ...where, err: cause }, 'request failed');
  } else {
    log.warn({ ...where, reason: clientErr.text.en }, 'request failed');
  }
}

export function sendProblem(ctx: Ctx, err: YiqianError, m: Metrics): void {
  ctx.status = err.status;
  const headers = errorHeaders.get(err);
  if (headers) ctx.set(headers);
  ctx.body = problemBody(err, ctx.state.requestId);
  ctx.type = PROBLEM_CONTENT_TYPE;
  m.errors.inc({ code: err.code });
}

/**
 * The error middleware. Headers set before it ran (request id, notices) survive; headers set
 * further down by a handler that then failed are dropped, as koa's own error handler does.
 */
export function problems(m: Metrics): Middleware<HttpState> {
  return async (ctx, next) => {
    const outer = { ...ctx.response.headers };
    try {
      await next();
      if (ctx.status === 404 && ctx.body == null) throw notFoundError();
    } catch (err) {
      const clientErr = toClientError(err);
      logFailure(ctx, err, clientErr);
      if (ctx.headerSent || !ctx.writable) return; // nothing can be sent any more
      for (const name of ctx.res.getHeaderNames()) ctx.res.removeHeader(name);
      ctx.set(outer as Record<string, string>);
      sendProblem(ctx, clientErr, m);
    }
  };
}
