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
  /**
   * Set by body-reader.ts on a streamed-body route (ApiDeps.streamedBody): the body is NOT in
   * rawBody but still unread on ctx.req, for the route to stream (evidence file uploads).
   */
  bodyStreamed?: boolean;
  /**
   * Set by app-auth.ts on a streamed-body request: the body hash the YQ1 signature was verified
   * with, as the client declared it in X-YQ1-Body-Hash. The route MUST hash the bytes it reads
   * and refuse (401 BAD_SIGNATURE, keeping nothing) when they differ (docs/api-auth.md §2.1).
   */
  declaredBodyHash?: { algorithm: 'sm3' | 'sha256'; hex: string };
}

declare module 'koa' {
  interface Request {
    /** JSON-parsed body (json-body.ts) when the request's Content-Type is JSON; else undefined. */
    body?: unknown;
  }
}
