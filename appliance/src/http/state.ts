// What the HTTP middlewares put on ctx.state, in the order they run. Capability routers
// read `ctx.state.app` (who is calling) and `ctx.request.body` (parsed JSON).
import type { Logger } from '../log.js';

/** The app a request was authenticated as (see app-auth.ts). */
export interface AuthenticatedApp {
  id: string;
  name: string;
  project: string;
  algorithm: 'sm2' | 'ecdsa-p256';
}

export interface HttpState {
  /** Set by request-id.ts; echoed in X-Request-Id and used as the problem `instance`. */
  requestId: string;
  /** pino child logger carrying the request id. */
  log: Logger;
  /** Set by body-reader.ts: the body bytes exactly as received (empty if none). */
  rawBody: Buffer;
  /** Set by app-auth.ts on /api/ requests. */
  app?: AuthenticatedApp;
}

declare module 'koa' {
  interface Request {
    /** JSON-parsed body (json-body.ts) when the request's Content-Type is JSON; else undefined. */
    body?: unknown;
  }
}
