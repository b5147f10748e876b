// Body reader: the request body as raw bytes in ctx.state.rawBody (the YQ1 signature covers
// their hash, so nothing may touch them before app-auth). At most `limit` bytes are held: a
// declared Content-Length over the limit is refused before reading a byte, a chunked body is
// read only until it passes the limit. Either way the answer is 413 with Connection: close,
// so Node drops the socket once the response is out instead of draining whatever the client
// still sends.
import type { Middleware } from 'koa';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Codes } from '../errors.js';
import { httpError } from './problem.js';
import type { HttpState } from './state.js';

export const DEFAULT_BODY_LIMIT = 1024 * 1024;

function tooLarge(limit: number) {
  return httpError(Codes.PAYLOAD_TOO_LARGE, 413, `请求体超过 ${limit} 字节上限`, `request body exceeds the limit of ${limit} bytes`, {
    detail: { limitBytes: limit },
    headers: { Connection: 'close' },
  });
}

function clientAborted(): Error {
  return Object.assign(new Error('client aborted the request body'), { code: 'CLIENT_ABORTED' });
}

/**
 * Reads at most `limit` bytes; rejects as soon as more arrive (and stops reading). Also rejects
 * when `res` closes first: once a response (e.g. a timeout's 503) is out, Node detaches the
 * request from its socket and would never end or abort it, leaving this read pending forever.
 */
export function readLimited(req: IncomingMessage, limit: number, res?: ServerResponse): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      res?.off('close', onClose);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        chunks.length = 0;
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const onClose = (): void => {
      // 'close' before 'end': the connection went away mid-body, or the response is already out.
      cleanup();
      reject(clientAborted());
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
    res?.on('close', onClose);
  });
}

/** Whether the request announces a body (chunked, or a non-zero Content-Length). */
export function expectsBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
}

/**
 * `streamed(method, path)`: routes whose body is left unread on ctx.req for the route to stream
 * (ctx.state.bodyStreamed); app-auth then binds it through the declared X-YQ1-Body-Hash.
 */
export function bodyReader(limit: number = DEFAULT_BODY_LIMIT, streamed?: (method: string, path: string) => boolean): Middleware<HttpState> {
  return async (ctx, next) => {
    const req = ctx.req;
    if (streamed?.(ctx.method, ctx.path)) {
      const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase().slice(0, 40);
      if (encoding !== 'identity') {
        throw httpError(Codes.UNSUPPORTED_MEDIA_TYPE, 415, `不支持的内容编码：${encoding}`, `unsupported Content-Encoding: ${encoding}`, {
          detail: { contentEncoding: encoding },
          headers: { Connection: 'close' },
        });
      }
      ctx.state.rawBody = Buffer.alloc(0);
      ctx.state.bodyStreamed = true;
      return next();
    }
    if (!expectsBody(req)) {
      ctx.state.rawBody = Buffer.alloc(0);
      return next();
    }
    const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase().slice(0, 40);
    if (encoding !== 'identity') {
      // The signed hash is over the bytes as sent; we do not inflate bodies (zip bombs, ambiguity).
      throw httpError(Codes.UNSUPPORTED_MEDIA_TYPE, 415, `不支持的内容编码：${encoding}`, `unsupported Content-Encoding: ${encoding}`, {
        detail: { contentEncoding: encoding },
        headers: { Connection: 'close' },
      });
    }
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
    ctx.state.rawBody = await readLimited(req, limit, ctx.res);
    await next();
  };
}
