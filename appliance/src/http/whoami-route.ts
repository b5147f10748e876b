// GET /api/v1/whoami: which app the request authenticated as — the first call an integrator
// makes to check their signing code.
import Router from '@koa/router';
import { internalError } from './problem.js';
import type { HttpState } from './state.js';

export function whoamiRouter(): Router<HttpState> {
  const router = new Router<HttpState>({ sensitive: true });
  router.get('/whoami', (ctx) => {
    const app = ctx.state.app;
    if (!app) throw internalError(new Error('whoami mounted without app authentication'));
    ctx.body = { appId: app.id, name: app.name, project: app.project };
  });
  return router;
}
