// JSON bodies. `parseJsonBody` (app-wide, after authentication) parses ctx.state.rawBody into
// ctx.request.body when the Content-Type says JSON; `jsonRoute` (per route) refuses a body of
// any other type with 415, so a JSON route never guesses what it was sent.
import type { Middleware, ParameterizedContext } from 'koa';
import { Codes } from '../errors.js';
import { httpError } from './problem.js';
import type { HttpState } from './state.js';

/** application/json or application/<something>+json, parameters ignored. */
export function isJsonType(mime: string): boolean {
  const m = mime.toLowerCase();
  return m === 'application/json' || (m.startsWith('application/') && m.endsWith('+json'));
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

export function parseJsonBody(): Middleware<HttpState> {
  return async (ctx, next) => {
    const raw = ctx.state.rawBody;
    if (raw && raw.length > 0 && isJsonType(ctx.request.type)) {
      const charset = ctx.request.charset;
      if (charset && charset.toLowerCase() !== 'utf-8' && charset.toLowerCase() !== 'utf8') {
        throw httpError(Codes.UNSUPPORTED_MEDIA_TYPE, 415, 'JSON 请求体必须使用 UTF-8 编码', 'JSON bodies must be UTF-8', {
          detail: { charset: charset.slice(0, 40) },
        });
      }
      try {
        ctx.request.body = JSON.parse(utf8.decode(raw)) as unknown;
      } catch (e) {
        const reason = e instanceof Error ? e.message.slice(0, 200) : 'unparseable';
        throw httpError(Codes.INVALID_JSON, 400, `请求体不是有效的 JSON：${reason}`, `request body is not valid JSON: ${reason}`, {
          detail: { reason },
        });
      }
    }
    await next();
  };
}

/** Route middleware: a non-empty body must be JSON. */
export function jsonRoute(): Middleware<HttpState> {
  return async (ctx, next) => {
    const raw = ctx.state.rawBody;
    if (raw && raw.length > 0 && !isJsonType(ctx.request.type)) {
      const got = ctx.request.type || '(none)';
      throw httpError(
        Codes.UNSUPPORTED_MEDIA_TYPE,
        415,
        `此接口只接受 application/json，收到 ${got.slice(0, 80)}`,
        `this endpoint accepts application/json only, got ${got.slice(0, 80)}`,
        { detail: { contentType: got.slice(0, 80), accepted: ['application/json'] } },
      );
    }
    await next();
  };
}

/** The parsed JSON body as an object ({} when there is none); 400 BAD_REQUEST for an array or a scalar. */
export function jsonObject(ctx: ParameterizedContext<HttpState>): Record<string, unknown> {
  const b = ctx.request.body;
  if (b === undefined) return {};
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw httpError(Codes.BAD_REQUEST, 400, '请求体必须是 JSON 对象', 'the request body must be a JSON object');
  return b as Record<string, unknown>;
}
