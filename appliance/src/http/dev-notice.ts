// A development appliance says so on every response (X-Yiqian-Notice), so nobody mistakes a
// SoftHSM2 box with a trusted system clock for a production signer. Header values must be
// Latin-1: other text is percent-encoded UTF-8.
import type { Middleware } from 'koa';
import type { HttpState } from './state.js';

export const NOTICE_HEADER = 'X-Yiqian-Notice';

export function headerSafe(text: string): string {
  return /^[\x20-\x7e]*$/.test(text) ? text : encodeURIComponent(text);
}

export function devNotice(notice: string): Middleware<HttpState> {
  const value = headerSafe(notice);
  return async (ctx, next) => {
    ctx.set(NOTICE_HEADER, value);
    await next();
  };
}
