// Public CA objects, unauthenticated, on the plain-HTTP listener and under /pki/ on HTTPS:
//   GET /pki/roots            both root certificates, PEM bundle (application/x-pem-file)
//   GET /pki/ca/<caId>.crt    one CA certificate, DER (application/pkix-cert, RFC 2585 §4.1) —
//                             what the AIA caIssuers pointer of issued certificates names.
import Router from '@koa/router';
import type { Authorities } from '../pki/authorities.js';
import type { CaId } from '../pki/types.js';
import { notFoundError } from './problem.js';
import type { HttpState } from './state.js';

const CA_FILE = /^(sm2|ecdsa)-(root|issuing)\.crt$/;

export function pkiPublicRouter(deps: { authorities: Authorities }): Router<HttpState> {
  const r = new Router<HttpState>({ sensitive: true });

  r.get('/pki/roots', async (ctx) => {
    ctx.body = await deps.authorities.rootsPem();
    ctx.type = 'application/x-pem-file';
    ctx.set('Cache-Control', 'public, max-age=3600');
  });

  r.get('/pki/ca/:file', async (ctx) => {
    if (!CA_FILE.test(ctx.params.file)) throw notFoundError();
    const ca = await deps.authorities.get(ctx.params.file.slice(0, -4) as CaId);
    ctx.body = ca.der;
    ctx.type = 'application/pkix-cert';
    ctx.set('Cache-Control', 'public, max-age=3600');
  });

  return r;
}
