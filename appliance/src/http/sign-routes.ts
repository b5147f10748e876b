// Signing over HTTP (issue 4 item 2), mounted under /api/v1 behind app authentication. Thin:
// check the JSON shape, decode base64, call the signing service with the calling app, shape the
// answer. The keys an app may use are those granted to it (HeldKeys.forUse).
//
//   POST /sign/raw    {key, accessCode?, data? | digest? (base64), sm2Id? (UTF-8), hash?, rsaPadding?}
//                     → {signature (base64), algorithm, keyId, certSerial, certificate (PEM)}
//   POST /sign/cms    {key, accessCode?, content (base64), detached? = false, form?, timestamp?, includeChain? = true}
//                     → {cms (base64), form, signingTime, timestamp?: {genTime, serial}, keyId, certSerial}
//   POST /sign/batch  {items: [{type: 'raw' | 'cms', …the fields above}]}, 1–1,000 items
//                     → {items: [{index, ok: true, type, …} | {index, ok: false, error: {code, status, title, detail}}], succeeded, failed}
//                     Items are signed concurrently (at most BATCH_CONCURRENCY at once); one
//                     failing item never fails the others. 413 BATCH_TOO_LARGE, 400 BATCH_EMPTY.
import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import { toPem } from '../crypto/der.js';
import { Codes, YiqianError } from '../errors.js';
import { MAX_BATCH_ITEMS, SigningCodes } from '../signing/sign-service.js';
import type { CmsSignRequest, CmsSignResult, RawSignRequest, RawSignResult, SigningService } from '../signing/types.js';
import { jsonRoute } from './json-body.js';
import { toClientError } from './problem.js';
import { callingApp } from './app-auth.js';
import type { HttpState } from './state.js';
import { decodeBase64 } from './base64-input.js';

type Ctx = ParameterizedContext<HttpState>;

export interface SignRouteDeps {
  signing: SigningService;
}

/** Items of one batch worked on at once: enough to keep the libuv pool and the HSM sessions busy. */
export const BATCH_CONCURRENCY = 16;

const appIdOf = (ctx: Ctx): string => callingApp(ctx).id;

function invalid(zh: string, en: string, field?: string): YiqianError {
  return new YiqianError(SigningCodes.SIGN_INPUT_INVALID, 400, { zh, en }, field ? { field } : undefined);
}

function objectBody(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalid(`${what}必须是 JSON 对象`, `${what === '请求体' ? 'the request body' : 'each batch item'} must be a JSON object`);
  return v as Record<string, unknown>;
}

/** Strict base64 (RFC 4648 §4, padded, no whitespace): a typo never silently signs other bytes. */
function bytes(b: Record<string, unknown>, field: string): Buffer | undefined {
  const v = b[field];
  if (v === undefined) return undefined;
  const decoded = typeof v === 'string' ? decodeBase64(v) : undefined;
  if (decoded === undefined) throw invalid(`${field} 必须是 base64 字符串`, `${field} must be a base64 string (RFC 4648, padded)`, field);
  return decoded;
}

function str(b: Record<string, unknown>, field: string): string | undefined {
  const v = b[field];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw invalid(`${field} 必须是字符串`, `${field} must be a string`, field);
  return v;
}

function bool(b: Record<string, unknown>, field: string): boolean | undefined {
  const v = b[field];
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw invalid(`${field} 必须是布尔值`, `${field} must be true or false`, field);
  return v;
}

function onlyFields(b: Record<string, unknown>, allowed: ReadonlySet<string>): void {
  for (const k of Object.keys(b)) if (!allowed.has(k)) throw invalid(`未知字段 ${k.slice(0, 40)}`, `unknown field ${k.slice(0, 40)}`, k.slice(0, 40));
}

const RAW_FIELDS = new Set(['key', 'accessCode', 'data', 'digest', 'sm2Id', 'hash', 'rsaPadding']);
const CMS_FIELDS = new Set(['key', 'accessCode', 'content', 'detached', 'form', 'timestamp', 'includeChain']);

function required(b: Record<string, unknown>, field: string): string {
  const v = str(b, field);
  if (v === undefined || v.length === 0) throw invalid(`缺少 ${field}`, `${field} is required`, field);
  return v;
}

export function rawRequest(b: Record<string, unknown>, extra?: string): RawSignRequest {
  onlyFields(b, extra ? new Set([...RAW_FIELDS, extra]) : RAW_FIELDS);
  const key = required(b, 'key');
  const accessCode = str(b, 'accessCode');
  const data = bytes(b, 'data');
  const digest = bytes(b, 'digest');
  const sm2Id = str(b, 'sm2Id');
  const hash = str(b, 'hash');
  const rsaPadding = str(b, 'rsaPadding');
  return {
    key,
    ...(accessCode !== undefined ? { accessCode } : {}),
    ...(data ? { data } : {}),
    ...(digest ? { digest } : {}),
    ...(sm2Id !== undefined ? { sm2Id: Buffer.from(sm2Id, 'utf8') } : {}),
    // Values are the service's to judge (UNSUPPORTED_ALGORITHM names what is allowed).
    ...(hash !== undefined ? { hash: hash as RawSignRequest['hash'] } : {}),
    ...(rsaPadding !== undefined ? { rsaPadding: rsaPadding as RawSignRequest['rsaPadding'] } : {}),
  };
}

export function cmsRequest(b: Record<string, unknown>, extra?: string): CmsSignRequest {
  onlyFields(b, extra ? new Set([...CMS_FIELDS, extra]) : CMS_FIELDS);
  const key = required(b, 'key');
  const accessCode = str(b, 'accessCode');
  const content = bytes(b, 'content');
  if (!content) throw invalid('缺少 content（待签原文，base64）', 'content (the bytes to sign, base64) is required', 'content');
  const form = str(b, 'form');
  const timestamp = bool(b, 'timestamp');
  const includeChain = bool(b, 'includeChain');
  return {
    key,
    ...(accessCode !== undefined ? { accessCode } : {}),
    content,
    detached: bool(b, 'detached') ?? false,
    ...(form !== undefined ? { form: form as CmsSignRequest['form'] } : {}),
    ...(timestamp !== undefined ? { timestamp } : {}),
    ...(includeChain !== undefined ? { includeChain } : {}),
  };
}

/** PEM of a certificate, kept per DER buffer (held keys hand out the same buffer per key). */
const pemCache = new WeakMap<Buffer, string>();
function pemOf(der: Buffer): string {
  let pem = pemCache.get(der);
  if (pem === undefined) {
    pem = toPem('CERTIFICATE', der);
    pemCache.set(der, pem);
  }
  return pem;
}

export function rawView(r: RawSignResult): Record<string, unknown> {
  return { signature: r.signature.toString('base64'), algorithm: r.algorithm, keyId: r.key.id, certSerial: r.key.certSerial, certificate: pemOf(r.certificate) };
}

export function cmsView(r: CmsSignResult): Record<string, unknown> {
  return { cms: r.cms.toString('base64'), form: r.form, signingTime: r.signingTime, ...(r.timestamp ? { timestamp: r.timestamp } : {}), keyId: r.key.id, certSerial: r.key.certSerial };
}

/** Runs `fn` over `items` with at most `limit` at once, results in input order. */
async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export function signRouter(deps: SignRouteDeps): Router<HttpState> {
  const r = new Router<HttpState>({ sensitive: true });
  const svc = deps.signing;

  r.post('/sign/raw', jsonRoute(), async (ctx) => {
    const req = rawRequest(objectBody(ctx.request.body, '请求体'));
    ctx.set('Cache-Control', 'no-store');
    ctx.body = rawView(await svc.signRaw(appIdOf(ctx), req));
  });

  r.post('/sign/cms', jsonRoute(), async (ctx) => {
    const req = cmsRequest(objectBody(ctx.request.body, '请求体'));
    ctx.set('Cache-Control', 'no-store');
    ctx.body = cmsView(await svc.signCms(appIdOf(ctx), req));
  });

  r.post('/sign/batch', jsonRoute(), async (ctx) => {
    const b = objectBody(ctx.request.body, '请求体');
    onlyFields(b, new Set(['items']));
    const items = b.items;
    if (!Array.isArray(items)) throw invalid('items 必须是数组', 'items must be an array', 'items');
    if (items.length === 0) throw new YiqianError(SigningCodes.BATCH_EMPTY, 400, { zh: '批量签名至少需要一项', en: 'a batch needs at least one item' });
    if (items.length > MAX_BATCH_ITEMS) {
      throw new YiqianError(SigningCodes.BATCH_TOO_LARGE, 413, { zh: `批量签名最多 ${MAX_BATCH_ITEMS} 项，收到 ${items.length} 项`, en: `a batch holds at most ${MAX_BATCH_ITEMS} items, got ${items.length}` }, { max: MAX_BATCH_ITEMS, got: items.length });
    }
    const appId = appIdOf(ctx);
    const results = await mapBounded(items as unknown[], BATCH_CONCURRENCY, async (raw, index) => {
      try {
        const item = objectBody(raw, '每一项');
        if (item.type === 'raw') return { index, ok: true, type: 'raw', ...rawView(await svc.signRaw(appId, rawRequest(item, 'type'))) };
        if (item.type === 'cms') return { index, ok: true, type: 'cms', ...cmsView(await svc.signCms(appId, cmsRequest(item, 'type'))) };
        throw invalid('type 必须是 raw 或 cms', "type must be 'raw' or 'cms'", 'type');
      } catch (e) {
        const ce = toClientError(e);
        if (ce.code === Codes.INTERNAL) ctx.state.log.error({ err: e, index }, 'batch sign item failed');
        return { index, ok: false, error: { code: ce.code, status: ce.status, title: ce.text.en, detail: ce.text.zh } };
      }
    });
    const succeeded = results.filter((x) => x.ok).length;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { items: results, succeeded, failed: results.length - succeeded };
  });

  return r;
}
