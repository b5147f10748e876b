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
    ctx.state.log = baseLog.child({ requestId: id });
    ctx.set(REQUEST_ID_HEADER, id);
    await next();
  };
}
