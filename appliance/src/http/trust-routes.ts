// The trust store over HTTP (docs/trust-store.md), mounted under /api/v1 behind app
// authentication. Thin: check the body's shape, call the trust store, shape the answer.
//
//   POST   /trust/cas               {certificate: PEM | base64 DER, crlUrl?, crlFetchHours?, ocspUrl?}  201
//   GET    /trust/cas               our CAs and the imported ones
//   GET    /trust/cas/:id           id = lower-case hex SHA-256 of the certificate DER
//   DELETE /trust/cas/:id           204 (our own CAs: 409 TRUST_CA_BUILTIN)
//   POST   /trust/cas/:id/crl       body application/pkix-crl (DER) or JSON {crl: PEM | base64 DER}
//   POST   /trust/cas/:id/crl/fetch download from the CA's crlUrl now
import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import { Codes } from '../errors.js';
import type { CrlFetcher } from '../signing/crl-fetch.js';
import type { TrustStoreService } from '../signing/trust-store.js';
import { isJsonType, jsonRoute } from './json-body.js';
import { httpError } from './problem.js';
import { callingApp } from './app-auth.js';
import { jsonObject } from './json-body.js';
import type { HttpState } from './state.js';

type Ctx = ParameterizedContext<HttpState>;

export const CRL_MEDIA_TYPE = 'application/pkix-crl';

export interface TrustRouteDeps {
  trust: TrustStoreService;
  fetcher: Pick<CrlFetcher, 'fetchNow'>;
}

const actorOf = (ctx: Ctx): string => `app:${callingApp(ctx).id}`;

function bad(zh: string, en: string, detail?: Record<string, unknown>): never {
  throw httpError(Codes.BAD_REQUEST, 400, zh, en, detail ? { detail } : {});
}

const body = jsonObject;

const IMPORT_FIELDS = ['certificate', 'crlUrl', 'crlFetchHours', 'ocspUrl'];

export function trustRouter(deps: TrustRouteDeps): Router<HttpState> {
  const r = new Router<HttpState>({ sensitive: true });
  const { trust } = deps;

  r.post('/trust/cas', jsonRoute(), async (ctx) => {
    const b = body(ctx);
    for (const k of Object.keys(b)) if (!IMPORT_FIELDS.includes(k)) bad(`不接受字段 ${k}`, `unknown field ${k} (accepted: ${IMPORT_FIELDS.join(', ')})`, { field: k });
    if (typeof b.certificate !== 'string' || b.certificate.length === 0) bad('缺少 certificate（PEM 或 base64 DER）', 'certificate is required (PEM or base64 DER)', { field: 'certificate' });
    for (const f of ['crlUrl', 'ocspUrl'] as const) if (b[f] !== undefined && typeof b[f] !== 'string') bad(`${f} 必须是字符串`, `${f} must be a string`, { field: f });
    if (b.crlFetchHours !== undefined && typeof b.crlFetchHours !== 'number') bad('crlFetchHours 必须是数字', 'crlFetchHours must be a number', { field: 'crlFetchHours' });
    const view = await trust.importCa(
      b.certificate as string,
      { crlUrl: b.crlUrl as string | undefined, crlFetchHours: b.crlFetchHours as number | undefined, ocspUrl: b.ocspUrl as string | undefined },
      actorOf(ctx),
    );
    ctx.status = 201;
    ctx.set('Location', `/api/v1/trust/cas/${view.id}`);
    ctx.body = view;
  });

  r.get('/trust/cas', async (ctx) => {
    ctx.body = { items: await trust.list() };
  });

  r.get('/trust/cas/:id', async (ctx) => {
    ctx.body = await trust.get(ctx.params.id);
  });

  r.delete('/trust/cas/:id', async (ctx) => {
    await trust.remove(ctx.params.id, actorOf(ctx));
    ctx.status = 204;
  });

  r.post('/trust/cas/:id/crl', async (ctx) => {
    const raw = ctx.state.rawBody ?? Buffer.alloc(0);
    const type = ctx.request.type;
    let crl: Buffer | string;
    if (type === CRL_MEDIA_TYPE) {
      if (raw.length === 0) bad('请求体为空：需要 DER 编码的 CRL', 'empty body: a DER CRL is required');
      crl = raw;
    } else if (isJsonType(type)) {
      const b = body(ctx);
      if (typeof b.crl !== 'string' || b.crl.length === 0) bad('缺少 crl（PEM 或 base64 DER）', 'crl is required (PEM or base64 DER)', { field: 'crl' });
      crl = b.crl as string;
    } else {
      const got = type || '(none)';
      throw httpError(Codes.UNSUPPORTED_MEDIA_TYPE, 415, `此接口只接受 ${CRL_MEDIA_TYPE} 或 application/json，收到 ${got.slice(0, 80)}`, `this endpoint accepts ${CRL_MEDIA_TYPE} or application/json, got ${got.slice(0, 80)}`, {
        detail: { contentType: got.slice(0, 80), accepted: [CRL_MEDIA_TYPE, 'application/json'] },
      });
    }
    ctx.body = await trust.importCrl(ctx.params.id, crl, 'upload', actorOf(ctx));
  });

  r.post('/trust/cas/:id/crl/fetch', jsonRoute(), async (ctx) => {
    body(ctx);
    ctx.body = await deps.fetcher.fetchNow(ctx.params.id, actorOf(ctx));
  });

  return r;
}
