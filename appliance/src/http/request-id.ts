// Request id: take a sane incoming X-Request-Id (a load balancer's or the client's), else make
// one; echo it on the response, give the rest of the chain a logger that carries it.
import { randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';
import type { Logger } from '../log.js';
import type { HttpState } from './state.js';

export const REQUEST_ID_HEADER = 'X-Request-Id';

/** Printable, header- and log-safe, bounded: letters, digits and . _ : - only. */
const SANE_ID = /^[A-Za-z0-9._:-]{8,128}$/;

export function requestId(baseLog: Logger): Middleware<HttpState> {
  return async (ctx, next) => {
    const incoming = ctx.get(REQUEST_ID_HEADER);
    const id = SANE_ID.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = id;
    lazyLog(ctx.state, baseLog, { requestId: id });
    ctx.set(REQUEST_ID_HEADER, id);
    await next();
  };
}

interface LazyLog {
  base: Logger;
  bindings: Record<string, unknown>;
  made?: Logger;
}
const lazy = new WeakMap<object, LazyLog>();

/**
 * state.log as a child logger made on first use: most requests log nothing, and a pino child
 * per request (twice, with the app id) was a measurable share of a TSA token's main-thread time.
 */
function lazyLog(state: HttpState, base: Logger, bindings: Record<string, unknown>): void {
  const l: LazyLog = { base, bindings };
  lazy.set(state, l);
  Object.defineProperty(state, 'log', {
    configurable: true,
    enumerable: true,
    get: () => (l.made ??= l.base.child(l.bindings)),
    set: (v: Logger) => {
      l.made = v;
    },
  });
}

/** Adds bindings (e.g. the authenticated app) to state.log, without making the logger if nothing used it yet. */
export function bindLog(state: HttpState, bindings: Record<string, unknown>): void {
  const l = lazy.get(state);
  if (l && !l.made) Object.assign(l.bindings, bindings);
  else state.log = state.log.child(bindings);
}
