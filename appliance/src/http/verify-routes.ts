// Verification over HTTP (issue 4 item 3), mounted under /api/v1 behind app authentication.
// Thin: check the JSON shape, decode base64 / PEM, call the VerificationService, answer its report.
//
//   POST /verify/raw          {certificate? (PEM or base64 DER) | certSerial? (hex), data? | digest? (base64),
//                              signature (base64), sm2Id? (UTF-8), hash? (sha256|sha384|sha512),
//                              rsaPadding? (pkcs1|pss), level? (0|1|2, default 2), at? (ISO 8601)}
//   POST /verify/cms          {cms (base64 DER or PEM), content? (base64, the original of a detached CMS), level?, at? (ISO 8601: a time the caller vouches for; used when there is no time-stamp)}
//   POST /verify/certificate  {certificate, level?, at?}
//   POST /verify/batch        {items: [{type: 'raw'|'cms'|'certificate', …the fields above}]}, 1–1000 items
//
// A signature or certificate that fails is still 200: the verdict is the report (valid, code,
// gbtCode, checks). 4xx problem+json only for a malformed request. In a batch every item is
// answered on its own — {index, report} or {index, error: {code, status, title, message}} — and
// one bad item never fails the others; the batch itself is refused only when it is not a list,
// empty (BATCH_EMPTY 400) or longer than MAX_BATCH (BATCH_TOO_LARGE 413).
import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import { fromPem } from '../crypto/der.js';
import { YiqianError, isYiqianError } from '../errors.js';
import { VerifyRequestCodes } from '../signing/report-codes.js';
import type { RawVerifyRequest, VerificationReport, VerificationService, VerifyLevel } from '../signing/types.js';
import { jsonRoute } from './json-body.js';
import { httpError } from './problem.js';
import type { HttpState } from './state.js';
import { decodeBase64 } from './base64-input.js';

type Ctx = ParameterizedContext<HttpState>;

/** Most items in one batch (issue 4: "up to 1,000 items in one call"). */
export const MAX_BATCH = 1000;
/** Items of one batch verified at the same time (SM2 verifies run on the libuv pool). */
const BATCH_CONCURRENCY = 16;

export interface VerifyRouteDeps {
  verification: VerificationService;
  /** Default MAX_BATCH. */
  maxBatch?: number;
}

type Body = Record<string, unknown>;

function invalid(field: string, zh: string, en: string): never {
  throw httpError(VerifyRequestCodes.VERIFY_REQUEST_INVALID, 400, zh, en, { detail: { field } });
}

function object(b: unknown, what = '请求体'): Body {
  if (typeof b !== 'object' || b === null || Array.isArray(b)) {
    throw httpError(VerifyRequestCodes.VERIFY_REQUEST_INVALID, 400, `${what}必须是 JSON 对象`, 'the request must be a JSON object');
  }
  return b as Body;
}

/** Strict base64 (standard, or URL-safe without padding); whitespace ignored. */
function base64(field: string, v: unknown): Buffer {
  if (typeof v !== 'string') invalid(field, `${field} 必须是 base64 字符串`, `${field} must be a base64 string`);
  return decodeBase64(v, { whitespace: true, urlSafe: true }) ?? invalid(field, `${field} 不是有效的 base64`, `${field} is not valid base64`);
}

function optionalBytes(b: Body, field: string): Buffer | undefined {
  return b[field] === undefined ? undefined : base64(field, b[field]);
}

/** PEM (first block, any of `labels`) or base64 DER. */
function pemOrBase64(field: string, v: unknown, labels: string[]): Buffer {
  if (typeof v === 'string' && v.includes('-----BEGIN')) {
    let blocks: { label: string; der: Buffer }[];
    try {
      blocks = fromPem(v);
    } catch {
      blocks = [];
    }
    const block = blocks.find((x) => labels.includes(x.label));
    if (!block) invalid(field, `${field} 不是有效的 PEM（${labels.join(' / ')}）`, `${field} is not a PEM ${labels.join(' / ')}`);
    return block.der;
  }
  return base64(field, v);
}

function level(b: Body): VerifyLevel | undefined {
  const v = b.level;
  if (v === undefined) return undefined;
  if (v !== 0 && v !== 1 && v !== 2) invalid('level', 'level 必须是 0、1 或 2', 'level must be 0, 1 or 2');
  return v;
}

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/;

function at(b: Body): Date | undefined {
  const v = b.at;
  if (v === undefined) return undefined;
  const d = typeof v === 'string' && ISO.test(v) ? new Date(v) : undefined;
  if (!d || Number.isNaN(d.getTime())) invalid('at', 'at 必须是 ISO 8601 时间（带时区）', 'at must be an ISO 8601 time with a zone, e.g. 2026-11-23T08:00:00+08:00');
  return d;
}

function oneOf<T extends string>(b: Body, field: string, allowed: readonly T[]): T | undefined {
  const v = b[field];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !allowed.includes(v as T)) invalid(field, `${field} 必须是 ${allowed.join('、')} 之一`, `${field} must be one of ${allowed.join(', ')}`);
  return v as T;
}

const CERT_LABELS = ['CERTIFICATE', 'X509 CERTIFICATE'];
const CMS_LABELS = ['CMS', 'PKCS7', 'PKCS #7 SIGNED DATA'];

function rawRequest(b: Body): RawVerifyRequest {
  if (b.signature === undefined) throw httpError(VerifyRequestCodes.SIGNATURE_REQUIRED, 400, '缺少 signature（签名值）', 'signature is required', { detail: { field: 'signature' } });
  if (b.certSerial !== undefined && typeof b.certSerial !== 'string') invalid('certSerial', 'certSerial 必须是字符串', 'certSerial must be a string');
  if (b.sm2Id !== undefined && typeof b.sm2Id !== 'string') invalid('sm2Id', 'sm2Id 必须是字符串（UTF-8）', 'sm2Id must be a (UTF-8) string');
  const req: RawVerifyRequest = { signature: base64('signature', b.signature) };
  if (b.certificate !== undefined) req.certificate = pemOrBase64('certificate', b.certificate, CERT_LABELS);
  if (b.certSerial !== undefined) req.certSerial = b.certSerial as string;
  const data = optionalBytes(b, 'data');
  const digest = optionalBytes(b, 'digest');
  if (data) req.data = data;
  if (digest) req.digest = digest;
  if (b.sm2Id !== undefined) req.sm2Id = Buffer.from(b.sm2Id as string, 'utf8');
  const hash = oneOf(b, 'hash', ['sha256', 'sha384', 'sha512'] as const);
  if (hash) req.hash = hash;
  const padding = oneOf(b, 'rsaPadding', ['pkcs1', 'pss'] as const);
  if (padding) req.rsaPadding = padding;
  const l = level(b);
  if (l !== undefined) req.level = l;
  const when = at(b);
  if (when) req.at = when;
  return req;
}

function verifyCms(svc: VerificationService, b: Body): Promise<VerificationReport> {
  if (b.cms === undefined) throw httpError(VerifyRequestCodes.SIGNATURE_REQUIRED, 400, '缺少 cms（签名消息）', 'cms is required', { detail: { field: 'cms' } });
  const content = optionalBytes(b, 'content');
  const l = level(b);
  const when = at(b);
  return svc.verifyCms({ cms: pemOrBase64('cms', b.cms, CMS_LABELS), ...(content ? { content } : {}), ...(l !== undefined ? { level: l } : {}), ...(when ? { at: when } : {}) });
}

function validateCertificate(svc: VerificationService, b: Body): Promise<VerificationReport> {
  if (b.certificate === undefined) throw httpError(VerifyRequestCodes.CERTIFICATE_REQUIRED, 400, '缺少 certificate', 'certificate is required', { detail: { field: 'certificate' } });
  const l = level(b);
  const when = at(b);
  return svc.validateCertificate({ certificate: pemOrBase64('certificate', b.certificate, CERT_LABELS), ...(l !== undefined ? { level: l } : {}), ...(when ? { at: when } : {}) });
}

type BatchAnswer = { index: number; report: VerificationReport } | { index: number; error: { code: string; status: number; title: string; message: { 'zh-CN': string; en: string } } };

async function batchItem(svc: VerificationService, item: unknown, index: number, ctx: Ctx): Promise<BatchAnswer> {
  try {
    const b = object(item, `第 ${index} 项`);
    let report: VerificationReport;
    if (b.type === 'raw') report = await svc.verifyRaw(rawRequest(b));
    else if (b.type === 'cms') report = await verifyCms(svc, b);
    else if (b.type === 'certificate') report = await validateCertificate(svc, b);
    else invalid('type', "type 必须是 'raw'、'cms' 或 'certificate'", "type must be 'raw', 'cms' or 'certificate'");
    return { index, report };
  } catch (e) {
    const err: YiqianError = isYiqianError(e) ? e : new YiqianError('INTERNAL', 500, { zh: '服务内部错误', en: 'internal error' });
    if (!isYiqianError(e)) ctx.state.log.error({ err: e, index }, 'batch verify item failed');
    return { index, error: { code: err.code, status: err.status, title: err.text.en, message: { 'zh-CN': err.text.zh, en: err.text.en } } };
  }
}

/** The verification routes. */
export function verifyRouter(deps: VerifyRouteDeps): Router<HttpState> {
  const svc = deps.verification;
  const maxBatch = deps.maxBatch ?? MAX_BATCH;
  const router = new Router<HttpState>({ sensitive: true });

  router.post('/verify/raw', jsonRoute(), async (ctx) => {
    ctx.body = await svc.verifyRaw(rawRequest(object(ctx.request.body)));
  });
  router.post('/verify/cms', jsonRoute(), async (ctx) => {
    ctx.body = await verifyCms(svc, object(ctx.request.body));
  });
  router.post('/verify/certificate', jsonRoute(), async (ctx) => {
    ctx.body = await validateCertificate(svc, object(ctx.request.body));
  });
  router.post('/verify/batch', jsonRoute(), async (ctx) => {
    const items = object(ctx.request.body).items;
    if (!Array.isArray(items)) invalid('items', 'items 必须是数组', 'items must be an array');
    if (items.length === 0) throw httpError(VerifyRequestCodes.BATCH_EMPTY, 400, '批量请求不能为空', 'the batch has no items');
    if (items.length > maxBatch) {
      throw httpError(VerifyRequestCodes.BATCH_TOO_LARGE, 413, `批量请求最多 ${maxBatch} 项，收到 ${items.length} 项`, `a batch has at most ${maxBatch} items, got ${items.length}`, {
        detail: { max: maxBatch, got: items.length },
      });
    }
    const results: BatchAnswer[] = new Array(items.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < items.length; i = next++) results[i] = await batchItem(svc, items[i], i, ctx);
    };
    await Promise.all(Array.from({ length: Math.min(BATCH_CONCURRENCY, items.length) }, worker));
    const valid = results.filter((r) => 'report' in r && r.report.valid).length;
    const errors = results.filter((r) => 'error' in r).length;
    ctx.body = { count: items.length, valid, invalid: items.length - valid - errors, errors, results };
  });
  return router;
}
