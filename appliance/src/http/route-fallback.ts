// The end of the chain, reached when no route answered: a path some route knows but not with
// this method → 405 with Allow (OPTIONS → 204 with Allow); anything else → `notFound()`
// (404 on the API listener, 403 HTTPS_REQUIRED on the plain-HTTP one).
import type { Middleware } from 'koa';
import { Codes, type YiqianError } from '../errors.js';
import { httpError, notFoundError } from './problem.js';
import type { HttpState } from './state.js';

export function routeFallback(notFound: (ctx: Parameters<Middleware<HttpState>>[0]) => YiqianError = notFoundError): Middleware<HttpState> {
  return async (ctx) => {
    if (ctx.body != null || ctx.status !== 404) return;
    // koa-router leaves every layer whose PATH matched in ctx.matched; routes have methods,
    // router.use() middleware layers have none.
    const matched = (ctx as { matched?: Array<{ methods: string[] }> }).matched ?? [];
    const allowed = [...new Set(matched.flatMap((layer) => layer.methods))];
    if (allowed.length === 0) throw notFound(ctx);
    const allow = allowed.join(', ');
    if (ctx.method === 'OPTIONS') {
      ctx.status = 204;
      ctx.set('Allow', allow);
      return;
    }
    throw httpError(Codes.METHOD_NOT_ALLOWED, 405, `此路径不支持 ${ctx.method} 方法`, `method ${ctx.method} is not allowed here`, {
      detail: { allow: allowed },
      headers: { Allow: allow },
    });
  };
}
