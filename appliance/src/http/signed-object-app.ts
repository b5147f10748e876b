// A small koa app for a public signed-object protocol (OCSP, RFC 3161) served on both
// listeners in front of the API: its own envelope turns every failure into the protocol's
// own response (an OCSPResponse, a TimeStampResp), never problem+json.
import Koa, { type Middleware } from 'koa';
import type Router from '@koa/router';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { logKoaErrors, resolveLimits, type HttpLimits } from './create-api-app.js';
import { httpMetrics } from './http-metrics.js';
import { overload } from './overload.js';
import { problems } from './problem.js';
import { requestId } from './request-id.js';
import { routeFallback } from './route-fallback.js';
import type { HttpState } from './state.js';
import { timeout } from './timeout.js';

export interface SignedObjectAppOptions {
  metrics: Metrics;
  log: Logger;
  limits?: HttpLimits;
  /** Maps errors to the protocol's response; runs inside the problem middleware. */
  envelope: Middleware<HttpState>;
  router: Router<HttpState>;
  /** Answer unknown paths / methods with 404 / 405 (else the router's own handlers do). */
  fallback?: boolean;
}

export function createSignedObjectApp(o: SignedObjectAppOptions): Koa<HttpState> {
  const limits = resolveLimits(o.limits);
  const app = new Koa<HttpState>();
  logKoaErrors(app, o.log);
  app.use(requestId(o.log));
  app.use(httpMetrics(o.metrics));
  app.use(problems(o.metrics));
  app.use(o.envelope);
  app.use(timeout(limits.timeoutMs));
  app.use(overload({ maxInFlight: limits.maxInFlight }));
  // The protocol handlers read their own bodies with their own limits.
  app.use(async (ctx, next) => {
    ctx.state.rawBody = Buffer.alloc(0);
    await next();
  });
  app.use(o.router.routes());
  if (o.fallback) app.use(routeFallback());
  return app;
}
