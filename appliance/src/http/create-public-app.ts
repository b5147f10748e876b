// The plain-HTTP application. HTTP is only for what must be fetchable without TLS and is
// signed in itself — CA certificates, CRLs, OCSP, RFC 3161 (RFC 5280 §4.2.1.13 / §4.2.2.1
// forbid HTTPS for CRL and AIA pointers) — plus /healthz. Everything else is 403
// HTTPS_REQUIRED naming the HTTPS URL; nothing here is authenticated.
import Koa from 'koa';
import Router from '@koa/router';
import { Codes } from '../errors.js';
import { log as rootLog, type Logger } from '../log.js';
import { metrics as defaultMetrics, type Metrics } from '../metrics.js';
import { bodyReader } from './body-reader.js';
import { logKoaErrors, resolveLimits, type HttpLimits } from './create-api-app.js';
import { httpMetrics } from './http-metrics.js';
import { overload } from './overload.js';
import { httpError, problems } from './problem.js';
import { requestId } from './request-id.js';
import { routeFallback } from './route-fallback.js';
import type { HttpState } from './state.js';
import { systemRouter } from './system-routes.js';
import { timeout } from './timeout.js';

export interface PublicDeps {
  /** Routers of public signed objects (paths as they should appear on this listener). */
  routers: Router<any>[];
  /** e.g. "https://yiqian.example-hospital.cn:8443", named in HTTPS_REQUIRED answers. */
  httpsBase: string;
  limits?: HttpLimits;
  metrics?: Metrics;
  log?: Logger;
}

export function createPublicApp(deps: PublicDeps): Koa<HttpState> {
  const m = deps.metrics ?? defaultMetrics;
  const log = deps.log ?? rootLog;
  const limits = resolveLimits(deps.limits);
  const httpsBase = deps.httpsBase.replace(/\/+$/, '');
  const app = new Koa<HttpState>();
  logKoaErrors(app, log);

  app.use(requestId(log));
  app.use(httpMetrics(m));
  app.use(problems(m));
  app.use(timeout(limits.timeoutMs));
  app.use(overload({ maxInFlight: limits.maxInFlight, exempt: (path) => path === '/healthz' }));
  app.use(bodyReader(limits.bodyBytes));

  const router = new Router<HttpState>();
  router.use(systemRouter().routes());
  for (const r of deps.routers) router.use(r.routes());
  app.use(router.routes());
  app.use(
    routeFallback((ctx) => {
      const httpsUrl = httpsBase + ctx.path + (ctx.querystring ? `?${ctx.querystring}` : '');
      return httpError(Codes.HTTPS_REQUIRED, 403, `此接口只能通过 HTTPS 访问：${httpsBase}`, `this endpoint is served over HTTPS only: ${httpsBase}`, {
        detail: { httpsUrl, httpsBase },
      });
    }),
  );
  return app;
}
