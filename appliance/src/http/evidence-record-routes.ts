// Evidence records over HTTP (issue 6 items 1–2, docs/evidence.md), mounted under /api/v1 behind
// app authentication; an app reads and writes only its own project (AuthenticatedApp.project).
// Thin: check the JSON shape, decode base64 / PEM, call the ingest and records services.
//
//   POST /evidence/signatures   {original? | digest? {algorithm, value}, mediaType?,
//                                signature {format: cms|raw, value, algorithm?, certificate?, chain?,
//                                           timestampToken?, signingTime?, statedSigner?},
//                                metadata? {system, departmentId, patientId, businessSerial, documentType}}   201
//   POST /evidence/signatures/batch {items: [the body above] (1–100)}  200 {items: [{index, ok, …}], stored, failed}
//                               each item answered as alone; the stored and the rejections in one durable commit
//   POST /evidence/digests      {digest {algorithm, value}, metadata?}                                 201
//   GET  /evidence/records?appId&departmentId&patientId&businessSerial&documentType&kind&from&to&limit&cursor
//   GET  /evidence/records/:id
//   POST /evidence/records/:id/verify                         stored verdict + a fresh one
//   GET  /evidence/rejections?limit&cursor
// Binaries are base64 (the CMS, certificates and token also PEM). A signature that fails
// verification is 422 with the verdict's code (SIGNATURE_INVALID, CERT_REVOKED …) and its rejection id.
import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import { fromPem } from '../crypto/der.js';
import { YiqianError } from '../errors.js';
import { EvidenceCodes, MAX_EVIDENCE_BATCH, type EvidenceIngest, type IngestCaller, type SignatureEvidenceInput, type SignatureInput } from '../evidence/ingest.js';
import type { EvidenceRecords } from '../evidence/records.js';
import type { EvidenceDigestAlgorithm, EvidenceKind } from '../evidence/types.js';
import { jsonRoute } from './json-body.js';
import { internalError, toClientError } from './problem.js';
import type { HttpState } from './state.js';
import { decodeBase64 } from './base64-input.js';

type Ctx = ParameterizedContext<HttpState>;
type Body = Record<string, unknown>;

export interface EvidenceRecordRouteDeps {
  ingest: EvidenceIngest;
  records: EvidenceRecords;
}

function invalid(field: string, zh: string, en: string): never {
  throw new YiqianError(EvidenceCodes.EVIDENCE_REQUEST_INVALID, 400, { zh, en }, { field });
}

function callerOf(ctx: Ctx): IngestCaller {
  const app = ctx.state.app;
  if (!app) throw internalError(new Error('evidence routes mounted without app authentication'));
  return { appId: app.id, project: app.project };
}

function object(v: unknown, field: string): Body {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) invalid(field, `${field} 必须是 JSON 对象`, `${field} must be a JSON object`);
  return v as Body;
}

/** Strict base64 (standard, or URL-safe without padding); whitespace ignored. */
function base64(field: string, v: unknown): Buffer {
  if (typeof v !== 'string') invalid(field, `${field} 必须是 base64 字符串`, `${field} must be a base64 string`);
  return decodeBase64(v, { whitespace: true, urlSafe: true }) ?? invalid(field, `${field} 不是有效的 base64`, `${field} is not valid base64`);
}

/** PEM (the first block of one of `labels`) or base64 DER. */
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

function onlyFields(b: Body, allowed: string[], where: string): void {
  for (const k of Object.keys(b)) if (!allowed.includes(k)) invalid(where ? `${where}.${k}` : k, `不接受字段 ${where ? `${where}.` : ''}${k}`, `${where || 'the request'} takes ${allowed.join(', ')}, not ${k}`);
}

function digestOf(v: unknown): { algorithm: EvidenceDigestAlgorithm; value: Buffer } {
  const d = object(v, 'digest');
  onlyFields(d, ['algorithm', 'value'], 'digest');
  if (typeof d.algorithm !== 'string') invalid('digest.algorithm', '缺少 digest.algorithm', 'digest.algorithm is required (sm3, sha256, sha384, sha512)');
  return { algorithm: d.algorithm.toLowerCase() as EvidenceDigestAlgorithm, value: base64('digest.value', d.value) };
}

function signatureOf(v: unknown): SignatureInput {
  const s = object(v, 'signature');
  onlyFields(s, ['format', 'value', 'algorithm', 'certificate', 'chain', 'timestampToken', 'signingTime', 'statedSigner'], 'signature');
  if (s.format !== 'cms' && s.format !== 'raw') invalid('signature.format', 'signature.format 必须是 cms 或 raw', 'signature.format must be cms or raw');
  if (s.algorithm !== undefined && typeof s.algorithm !== 'string') invalid('signature.algorithm', 'signature.algorithm 必须是字符串', 'signature.algorithm must be a string');
  if (s.signingTime !== undefined && typeof s.signingTime !== 'string') invalid('signature.signingTime', 'signingTime 必须是 ISO 8601 时间', 'signature.signingTime must be an ISO 8601 time');
  if (s.chain !== undefined && (!Array.isArray(s.chain) || s.chain.length > 8)) invalid('signature.chain', 'chain 必须是至多 8 个证书的数组', 'signature.chain must be an array of at most 8 certificates');
  return {
    format: s.format,
    value: s.format === 'cms' ? pemOrBase64('signature.value', s.value, ['CMS', 'PKCS7']) : base64('signature.value', s.value),
    ...(s.algorithm !== undefined ? { algorithm: (s.algorithm as string).toUpperCase() } : {}),
    ...(s.certificate !== undefined ? { certificate: pemOrBase64('signature.certificate', s.certificate, ['CERTIFICATE']) } : {}),
    ...(s.chain !== undefined ? { chain: (s.chain as unknown[]).map((c, i) => pemOrBase64(`signature.chain[${i}]`, c, ['CERTIFICATE'])) } : {}),
    ...(s.timestampToken !== undefined ? { timestampToken: pemOrBase64('signature.timestampToken', s.timestampToken, ['CMS', 'PKCS7']) } : {}),
    ...(s.signingTime !== undefined ? { signingTime: s.signingTime as string } : {}),
    ...(s.statedSigner !== undefined ? { statedSigner: object(s.statedSigner, 'signature.statedSigner') as Record<string, string> } : {}),
  };
}

/** The body of POST /evidence/signatures (or one item of a batch), decoded. */
function signaturePush(v: unknown, what: string): SignatureEvidenceInput {
  const b = object(v, what);
  onlyFields(b, ['original', 'mediaType', 'digest', 'signature', 'metadata'], '');
  if (b.signature === undefined) invalid('signature', '缺少 signature', 'signature is required');
  return {
    ...(b.original !== undefined ? { original: base64('original', b.original) } : {}),
    ...(b.mediaType !== undefined ? { mediaType: b.mediaType as string } : {}),
    ...(b.digest !== undefined ? { digest: digestOf(b.digest) } : {}),
    signature: signatureOf(b.signature),
    ...(b.metadata !== undefined ? { metadata: b.metadata as never } : {}),
  };
}

function queryString(ctx: Ctx, name: string): string | undefined {
  const v = ctx.query[name];
  if (v === undefined) return undefined;
  if (Array.isArray(v)) throw new YiqianError('EVIDENCE_QUERY_INVALID', 400, { zh: `查询参数 ${name} 只能出现一次`, en: `query parameter ${name} may appear only once` }, { field: name });
  return v;
}

function page(ctx: Ctx): { limit?: number; cursor?: string } {
  const l = queryString(ctx, 'limit');
  if (l !== undefined && !/^\d{1,6}$/.test(l)) throw new YiqianError('EVIDENCE_QUERY_INVALID', 400, { zh: 'limit 必须是正整数', en: 'limit must be a positive integer' }, { field: 'limit' });
  const cursor = queryString(ctx, 'cursor');
  return { ...(l !== undefined ? { limit: Number(l) } : {}), ...(cursor !== undefined ? { cursor } : {}) };
}

const QUERY_FIELDS = ['appId', 'departmentId', 'patientId', 'businessSerial', 'documentType', 'kind', 'from', 'to'] as const;

export function evidenceRecordRouter(deps: EvidenceRecordRouteDeps): Router<HttpState> {
  const r = new Router<HttpState>({ sensitive: true });

  r.post('/evidence/signatures', jsonRoute(), async (ctx) => {
    const result = await deps.ingest.signature(callerOf(ctx), signaturePush(ctx.request.body, '请求体'));
    ctx.status = 201;
    ctx.set('Location', `/api/v1/evidence/records/${result.id}`);
    ctx.body = result;
  });

  r.post('/evidence/signatures/batch', jsonRoute(), async (ctx) => {
    const b = object(ctx.request.body, '请求体');
    onlyFields(b, ['items'], '');
    const items = b.items;
    if (!Array.isArray(items)) invalid('items', 'items 必须是数组', 'items must be an array');
    if (items.length === 0) throw new YiqianError(EvidenceCodes.EVIDENCE_BATCH_EMPTY, 400, { zh: '批量存证至少需要一项', en: 'a batch needs at least one item' });
    if (items.length > MAX_EVIDENCE_BATCH) {
      throw new YiqianError(EvidenceCodes.EVIDENCE_BATCH_TOO_LARGE, 413, { zh: `批量存证最多 ${MAX_EVIDENCE_BATCH} 项，收到 ${items.length} 项`, en: `a batch holds at most ${MAX_EVIDENCE_BATCH} items, got ${items.length}` }, { max: MAX_EVIDENCE_BATCH, got: items.length });
    }
    // An item that does not parse is answered with its 400 and stores nothing, like a push alone.
    const inputs = items.map((item): SignatureEvidenceInput | Error => {
      try {
        return signaturePush(item, 'items[]');
      } catch (e) {
        return e as Error;
      }
    });
    const results = (await deps.ingest.signatureBatch(callerOf(ctx), inputs)).map((x, index) => {
      if (x.ok) return { index, ok: true, ...x.result };
      const ce = toClientError(x.error);
      if (ce.status >= 500) ctx.state.log.error({ err: x.error, index }, 'batch evidence item failed');
      return { index, ok: false, error: { ...ce.detail, code: ce.code, status: ce.status, title: ce.text.en, detail: ce.text.zh } };
    });
    const stored = results.filter((x) => x.ok).length;
    ctx.body = { items: results, stored, failed: results.length - stored };
  });

  r.post('/evidence/digests', jsonRoute(), async (ctx) => {
    const b = object(ctx.request.body, '请求体');
    onlyFields(b, ['digest', 'metadata'], '');
    if (b.digest === undefined) invalid('digest', '缺少 digest', 'digest is required');
    const result = await deps.ingest.digest(callerOf(ctx), { digest: digestOf(b.digest), ...(b.metadata !== undefined ? { metadata: b.metadata as never } : {}) });
    ctx.status = 201;
    ctx.set('Location', `/api/v1/evidence/records/${result.id}`);
    ctx.body = result;
  });

  r.get('/evidence/records', async (ctx) => {
    for (const k of Object.keys(ctx.query)) {
      if (![...QUERY_FIELDS, 'limit', 'cursor'].includes(k)) throw new YiqianError('EVIDENCE_QUERY_INVALID', 400, { zh: `不支持的查询参数 ${k.slice(0, 40)}`, en: `unknown query parameter ${k.slice(0, 40)}` }, { field: k.slice(0, 40) });
    }
    const q: Record<string, string> = {};
    for (const f of QUERY_FIELDS) {
      const v = queryString(ctx, f);
      if (v !== undefined) q[f] = v;
    }
    ctx.body = await deps.records.query(callerOf(ctx), q as { kind?: EvidenceKind }, page(ctx));
  });

  r.get('/evidence/records/:id', async (ctx) => {
    ctx.body = await deps.records.detail(callerOf(ctx), ctx.params.id);
  });

  r.post('/evidence/records/:id/verify', jsonRoute(), async (ctx) => {
    ctx.body = await deps.records.reverify(callerOf(ctx), ctx.params.id);
  });

  r.get('/evidence/rejections', async (ctx) => {
    ctx.body = await deps.records.rejections(callerOf(ctx), page(ctx));
  });

  return r;
}
