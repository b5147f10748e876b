// Request metrics: count, duration and in-flight gauge, labelled by the router's matched
// PATTERN (e.g. /api/v1/whoami, /api/v1/certs/:serial) — never the raw URL, whose values a
// client controls — and by a method from a closed list.
import type { Middleware } from 'koa';
import type { Metrics } from '../metrics.js';
import type { HttpState } from './state.js';

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export function methodLabel(method: string): string {
  return KNOWN_METHODS.has(method) ? method : 'OTHER';
}

/** koa-router records the matched layer's path (prefix included) on the context. */
export function routeLabel(ctx: { _matchedRoute?: unknown }): string {
  const r = ctx._matchedRoute;
  if (typeof r === 'string') return r;
  if (r instanceof RegExp) return r.source;
  return 'unmatched';
}

export function httpMetrics(m: Metrics): Middleware<HttpState> {
  return async (ctx, next) => {
    const started = process.hrtime.bigint();
    m.httpInFlight.inc();
    try {
      await next();
    } finally {
      m.httpInFlight.dec();
      const method = methodLabel(ctx.method);
      const route = routeLabel(ctx as { _matchedRoute?: unknown });
      m.httpRequests.inc({ method, route, status: String(ctx.status) });
      m.httpDuration.observe({ method, route }, Number(process.hrtime.bigint() - started) / 1e9);
    }
  };
}
