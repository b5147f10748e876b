// Load shedding: past `maxInFlight` requests being worked on, answer 503 OVERLOADED at once
// with Retry-After instead of queueing — a queue in front of a saturated HSM only turns a
// burst into timeouts for everybody. The count covers the work below this middleware until it
// really ends, so a request cut by the timeout still holds its slot while its handler runs.
import type { Middleware } from 'koa';
import { Codes } from '../errors.js';
import { expectsBody } from './body-reader.js';
import { httpError } from './problem.js';
import type { HttpState } from './state.js';

export interface OverloadOptions {
  maxInFlight: number;
  /** Seconds for Retry-After; default 1. */
  retryAfterSeconds?: number;
  /** Requests that bypass the gate (liveness and metrics must answer under load). */
  exempt?: (path: string) => boolean;
}

export function overload(opts: OverloadOptions): Middleware<HttpState> {
  const retryAfter = String(opts.retryAfterSeconds ?? 1);
  let inFlight = 0;
  return async (ctx, next) => {
    if (opts.exempt?.(ctx.path)) return next();
    if (inFlight >= opts.maxInFlight) {
      // An unread body would otherwise be drained by Node to keep the connection: close it instead.
      const headers: Record<string, string> = expectsBody(ctx.req) ? { 'Retry-After': retryAfter, Connection: 'close' } : { 'Retry-After': retryAfter };
      throw httpError(Codes.OVERLOADED, 503, '服务繁忙，请稍后重试', 'server overloaded, retry later', {
        detail: { retryAfterSeconds: Number(retryAfter) },
        headers,
      });
    }
    inFlight++;
    try {
      await next();
    } finally {
      inFlight--;
    }
  };
}
