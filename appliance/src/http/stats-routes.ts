// Statistics over HTTP, mounted under /api/v1 behind app authentication.
//
//   GET /stats/certificates   certificates by department (with staff counts), profile, status
//                             and month of issuance (Asia/Shanghai) — staff/cert-statistics.ts
import Router from '@koa/router';
import type { CertificateStatistics } from '../staff/cert-statistics.js';
import type { HttpState } from './state.js';

export interface StatsRouteDeps {
  certificates: () => Promise<CertificateStatistics>;
}

export function statsRouter(deps: StatsRouteDeps): Router<HttpState> {
  const r = new Router<HttpState>({ sensitive: true });
  r.get('/stats/certificates', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = await deps.certificates();
  });
  return r;
}
