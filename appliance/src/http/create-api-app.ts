// The HTTPS application: system probes plus the app-authenticated API under /api/v1.
//
// Middleware, outermost first (one concern each):
//   request-id → dev-notice → metrics → problem+json → timeout → overload → body reader
//   → app auth (/api/ only, not /api/openapi.json) → JSON parsing → routes → 404/405 fallback
// Metrics sit outside the error handler so they count the status actually sent; the timeout
// sits outside the overload gate so a timed-out request keeps its slot until its handler
// really finishes (the gate measures work, not open responses).
import Koa from 'koa';
import Router from '@koa/router';
import { DEFAULT_UPLOAD_TIMEOUT_MS } from '../config/config.js';
import { log as rootLog, type Logger } from '../log.js';
import { metrics as defaultMetrics, type Metrics } from '../metrics.js';
import { appAuth, type AppDirectory, type NonceCache } from './app-auth.js';
import { DEFAULT_BODY_LIMIT, bodyReader } from './body-reader.js';
import { devNotice } from './dev-notice.js';
import { httpMetrics } from './http-metrics.js';
import { parseJsonBody } from './json-body.js';
import { overload } from './overload.js';
import { problems } from './problem.js';
import { openApiRouter } from './openapi-route.js';
import { requestId } from './request-id.js';
import { routeFallback } from './route-fallback.js';
import type { HttpState } from './state.js';
import { systemRouter, type Readiness } from './system-routes.js';
import { timeout } from './timeout.js';
import { whoamiRouter } from './whoami-route.js';

export type { Readiness } from './system-routes.js';
export type { AppDirectory, AppEntry, NonceCache } from './app-auth.js';

export interface HttpLimits {
  /** Largest request body held in memory; default 1 MiB. */
  bodyBytes?: number;
  /** Per-request deadline; default 30 s. */
  timeoutMs?: number;
  /** Requests worked on at once before 503 OVERLOADED; default 256. */
  maxInFlight?: number;
  /** Deadline of a streamed-body request (ApiDeps.streamedBody) instead of timeoutMs; default 1 h. */
  uploadTimeoutMs?: number;
}

export const DEFAULT_LIMITS: Required<HttpLimits> = { bodyBytes: DEFAULT_BODY_LIMIT, timeoutMs: 30_000, maxInFlight: 256, uploadTimeoutMs: DEFAULT_UPLOAD_TIMEOUT_MS };

export interface ApiDeps {
  apps: AppDirectory;
  nonces: NonceCache;
  readiness: () => Promise<Readiness>;
  limits?: HttpLimits;
  /** Milliseconds since the epoch; the clock YQ1 timestamps are checked against. */
  clock?: () => number;
  /** Capability routers, mounted under /api/v1 behind app authentication. */
  routers?: Router<any>[];
  /** Routes whose request body is streamed by the route instead of read into memory (evidence file uploads; body-reader.ts). */
  streamedBody?: (method: string, path: string) => boolean;
  /** Shown on every response (X-Yiqian-Notice) and in /healthz, /readyz; e.g. "development appliance". */
  devNotice?: string;
  /** Defaults to the process-wide registry of metrics.ts. */
  metrics?: Metrics;
  log?: Logger;
}

export const API_PREFIX = '/api/v1';

/** Liveness and scraping must answer while the API sheds load. */
const UNGATED = new Set(['/healthz', '/metrics']);

export function resolveLimits(limits: HttpLimits = {}): Required<HttpLimits> {
  return {
    bodyBytes: limits.bodyBytes ?? DEFAULT_LIMITS.bodyBytes,
    timeoutMs: limits.timeoutMs ?? DEFAULT_LIMITS.timeoutMs,
    maxInFlight: limits.maxInFlight ?? DEFAULT_LIMITS.maxInFlight,
    uploadTimeoutMs: limits.uploadTimeoutMs ?? DEFAULT_LIMITS.uploadTimeoutMs,
  };
}

/** koa reports errors it could not hand to a middleware (e.g. a stream failing mid-response). */
export function logKoaErrors(app: Koa<HttpState>, log: Logger): void {
  app.silent = true;
  app.on('error', (err: unknown, ctx?: Koa.ParameterizedContext<HttpState>) => {
    (ctx?.state.log ?? log).warn({ err }, 'error after the response started');
  });
}

export function createApiApp(deps: ApiDeps): Koa<HttpState> {
  const m = deps.metrics ?? defaultMetrics;
  const log = deps.log ?? rootLog;
  const limits = resolveLimits(deps.limits);
  const app = new Koa<HttpState>();
  logKoaErrors(app, log);

  app.use(requestId(log));
  if (deps.devNotice) app.use(devNotice(deps.devNotice));
  app.use(httpMetrics(m));
  app.use(problems(m));
  // A streamed upload may take longer than an API call; it is ended when its body stalls instead
  // (requestChunks in evidence-file-routes.ts).
  const streamed = deps.streamedBody;
  app.use(timeout(limits.timeoutMs, streamed ? (ctx) => (streamed(ctx.method, ctx.path) ? limits.uploadTimeoutMs : undefined) : undefined));
  app.use(overload({ maxInFlight: limits.maxInFlight, exempt: (path) => UNGATED.has(path) }));
  app.use(bodyReader(limits.bodyBytes, deps.streamedBody));
  app.use(appAuth({ apps: deps.apps, nonces: deps.nonces, metrics: m, clock: deps.clock }));
  app.use(parseJsonBody());

  const api = new Router<HttpState>({ prefix: API_PREFIX, sensitive: true });
  api.use(whoamiRouter().routes());
  for (const r of deps.routers ?? []) api.use(r.routes());

  const system = systemRouter({ readiness: deps.readiness, registry: m.registry, notice: deps.devNotice });
  app.use(system.routes());
  app.use(openApiRouter().routes());
  app.use(api.routes());
  app.use(routeFallback());
  return app;
}
