// Probes and metrics, reachable without app authentication:
//   GET /healthz  the process is alive (no store, no HSM: a hung HSM must not get us killed)
//   GET /readyz   deps.readiness(): 200 when every check is ok, else 503 with the failing ones
//   GET /metrics  Prometheus text format
import Router from '@koa/router';
import type { Registry } from 'prom-client';
import type { HttpState } from './state.js';

export interface Readiness {
  ready: boolean;
  checks: Record<string, { ok: boolean; detail?: unknown }>;
}

export interface SystemRoutesOptions {
  /** Registers /readyz when given. */
  readiness?: () => Promise<Readiness>;
  /** Registers /metrics when given. */
  registry?: Registry;
  notice?: string;
}

export function systemRouter(opts: SystemRoutesOptions = {}): Router<HttpState> {
  const router = new Router<HttpState>({ sensitive: true });
  const notice = opts.notice ? { notice: opts.notice } : {};

  router.get('/healthz', (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'alive', ...notice };
  });

  const readiness = opts.readiness;
  if (readiness) {
    router.get('/readyz', async (ctx) => {
      let r: Readiness;
      try {
        r = await readiness();
      } catch (err) {
        ctx.state.log.error({ err }, 'readiness probe failed');
        r = { ready: false, checks: { readiness: { ok: false, detail: 'readiness probe failed' } } };
      }
      const ready = r.ready && Object.values(r.checks).every((c) => c.ok);
      ctx.status = ready ? 200 : 503;
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { status: ready ? 'ready' : 'not-ready', ready, checks: r.checks, ...notice };
    });
  }

  const registry = opts.registry;
  if (registry) {
    router.get('/metrics', async (ctx) => {
      ctx.set('Cache-Control', 'no-store');
      ctx.type = registry.contentType;
      ctx.body = await registry.metrics();
    });
  }
  return router;
}
