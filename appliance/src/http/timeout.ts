// Request deadline: when the work below has not finished in `timeoutMs`, answer 503
// REQUEST_TIMEOUT now. The handler keeps running (JavaScript cannot cancel it) but whatever
// it produces later is dropped: by then koa has sent the problem response, and a late
// failure is logged instead of becoming an unhandled rejection.
import type { Middleware, ParameterizedContext } from 'koa';
import { Codes } from '../errors.js';
import { httpError } from './problem.js';
import type { HttpState } from './state.js';

/** `deadlineFor` may give a request another deadline (a streamed upload); undefined → timeoutMs. */
export function timeout(defaultMs: number, deadlineFor?: (ctx: ParameterizedContext<HttpState>) => number | undefined): Middleware<HttpState> {
  return async (ctx, next) => {
    const timeoutMs = deadlineFor?.(ctx) ?? defaultMs;
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    const work = next();
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        // If the request body is still arriving, the connection cannot be reused.
        const headers: Record<string, string> = ctx.req.complete ? {} : { Connection: 'close' };
        reject(
          httpError(Codes.REQUEST_TIMEOUT, 503, `请求处理超时（${timeoutMs} 毫秒）`, `request timed out after ${timeoutMs} ms`, {
            detail: { timeoutMs },
            headers,
          }),
        );
      }, timeoutMs);
    });
    work.catch((err: unknown) => {
      // After the deadline a body read ends with the connection we closed: nothing to report.
      const clientGone = (err as { code?: unknown } | null)?.code === 'CLIENT_ABORTED';
      if (timedOut && !clientGone) ctx.state.log.warn({ err }, 'request failed after its timeout');
    });
    try {
      await Promise.race([work, deadline]);
    } finally {
      clearTimeout(timer);
    }
  };
}
