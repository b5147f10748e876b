// GET /api/openapi.json: the API reference (docs/openapi.json, OpenAPI 3.1), public like the
// documentation it is — no app authentication (app-auth.ts exempts PUBLIC_API_PATHS).
// The file is served byte for byte; a strong ETag over its SHA-256 lets clients revalidate
// with If-None-Match and get 304 (RFC 9110 §8.8.3, §13.1.2).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Router from '@koa/router';
import type { HttpState } from './state.js';

export const OPENAPI_PATH = '/api/openapi.json';
const DOC_FILE = join('docs', 'openapi.json');

/** docs/openapi.json, found upwards from this module (works from appliance/src and from dist/). */
export function findOpenApiFile(from = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const f = join(dir, DOC_FILE);
    if (existsSync(f)) return f;
    if (dirname(dir) === dir) throw new Error(`${DOC_FILE} not found above ${from}`);
  }
}

let cached: Buffer | undefined;

/** The document's bytes, read once per process. */
export function openApiDocument(): Buffer {
  cached ??= readFileSync(findOpenApiFile());
  return cached;
}

export function openApiRouter(document: Buffer = openApiDocument()): Router<HttpState> {
  const etag = `"${createHash('sha256').update(document).digest('base64url')}"`;
  const router = new Router<HttpState>({ sensitive: true, strict: true });
  router.get(OPENAPI_PATH, (ctx) => {
    // Revalidate every time: the document changes with an upgrade, and a 304 costs nothing.
    ctx.set('Cache-Control', 'public, no-cache');
    ctx.set('ETag', etag);
    ctx.type = 'application/json; charset=utf-8';
    ctx.body = document;
    if (ctx.fresh) {
      ctx.status = 304;
      ctx.body = null;
    }
  });
  return router;
}
