// Evidence files over HTTP (issue 6 items 1–2):
//
//   POST /api/v1/evidence/files?documentType=…&businessSerial=…&departmentId=…&patientId=…&system=…&fileName=…&mediaType=…
//        body: the file, Content-Type application/octet-stream, STREAMED to disk (never held in memory)
//        or multipart/form-data with a part "file" and an optional part "signature" (a detached CMS,
//        DER or base64) — one request, one record, checked before it is kept.
//        Metadata travels in the query because YQ1 signs the path-with-query but no header: a
//        proxy cannot change it. The body is bound through X-YQ1-Body-Hash (app-auth.ts).
//        → 201 { record, deduplicated }
//   GET  /api/v1/evidence/records/:id/download-url → { url, path, expiresAt }   (own project only)
//   GET  /evidence/download/:id?exp=…&sig=…   on the HTTPS listener WITHOUT app auth (browsers,
//        court experts): the original, with Content-Disposition and X-Content-SM3.
//
// Why multipart for the signature: a CMS with its chain and a CAdES-T token is several KiB, too
// much for a header or query (Node refuses over 16 KiB of header), and a second call would leave
// a stored record without its signature or an unverified file in between. multipart/form-data is
// what every HTTP client sends (curl -F), and its bytes are hashed by YQ1 like any body.
import Koa from 'koa';
import Router from '@koa/router';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { Codes, YiqianError } from '../errors.js';
import { log as rootLog, type Logger } from '../log.js';
import { metrics as defaultMetrics, type Metrics } from '../metrics.js';
import type { FsBlobStore } from '../evidence/blob-store.js';
import { FileIngestCodes, MAX_SIGNATURE_BYTES, fileUploadFields, type FileIngest, type FileUpload } from '../evidence/file-ingest.js';
import { DOWNLOAD_PATH_PREFIX, type DownloadUrlSigner } from '../evidence/signed-url.js';
import type { EvidenceRecord } from '../evidence/types.js';
import { logKoaErrors, resolveLimits, API_PREFIX, type HttpLimits } from './create-api-app.js';
import { httpMetrics } from './http-metrics.js';
import { multipartEvents, multipartBoundary, type MultipartEvent } from './multipart-stream.js';
import { httpError, problems } from './problem.js';
import { requestId } from './request-id.js';
import { routeFallback } from './route-fallback.js';
import type { HttpState } from './state.js';
import { timeout } from './timeout.js';
import { overload } from './overload.js';

export const EVIDENCE_UPLOAD_PATH = `${API_PREFIX}/evidence/files`;

/** For createApiApp's streamedBody: the one route whose body is streamed, not read into memory. */
export function isEvidenceUploadRequest(method: string, path: string): boolean {
  return method === 'POST' && path === EVIDENCE_UPLOAD_PATH;
}

export function isEvidenceDownloadPath(url: string | undefined): boolean {
  return (url ?? '').startsWith(DOWNLOAD_PATH_PREFIX);
}

export interface RecordLookup {
  get(id: string): Promise<EvidenceRecord | undefined>;
}

export interface EvidenceFileRouteDeps {
  files: FileIngest;
  records: RecordLookup;
  urls: DownloadUrlSigner;
  /** An upload whose body sends nothing for this long is ended (UPLOAD_STALLED); default 30 s. */
  uploadIdleMs?: number;
}

function clientAborted(): Error {
  return Object.assign(new Error('client aborted the request body'), { code: 'CLIENT_ABORTED' });
}

/**
 * The request body as an async iterable that, unlike the stream's own iterator, does not destroy
 * the socket when the consumer stops early (oversize): it pauses, so the 413 can still be sent
 * (with Connection: close). A connection that closes before the end is CLIENT_ABORTED.
 */
export function requestChunks(req: IncomingMessage, res: ServerResponse, idleMs = 30_000): AsyncIterable<Buffer> {
  return {
    [Symbol.asyncIterator]() {
      const queue: Buffer[] = [];
      let ended = false;
      let failure: Error | undefined;
      let wake: (() => void) | undefined;
      // Counts only while we wait for the client (not while the disk takes the last chunk).
      let idle: NodeJS.Timeout | undefined;
      const notify = (): void => {
        clearTimeout(idle);
        idle = undefined;
        const w = wake;
        wake = undefined;
        w?.();
      };
      const onData = (c: Buffer): void => {
        queue.push(c);
        req.pause(); // one chunk at a time: the disk sets the pace
        notify();
      };
      const onEnd = (): void => {
        ended = true;
        notify();
      };
      const onError = (e: Error): void => {
        failure ??= e;
        notify();
      };
      const onClose = (): void => {
        if (!ended) failure ??= clientAborted();
        notify();
      };
      const detach = (): void => {
        clearTimeout(idle);
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('error', onError);
        req.off('close', onClose);
        res.off('close', onClose);
      };
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('error', onError);
      req.on('close', onClose);
      res.on('close', onClose);
      return {
        async next(): Promise<IteratorResult<Buffer>> {
          for (;;) {
            if (queue.length > 0) return { value: queue.shift()!, done: false };
            if (failure) {
              detach();
              throw failure;
            }
            if (ended) {
              detach();
              return { value: undefined, done: true };
            }
            req.resume();
            idle = setTimeout(() => {
              failure ??= new YiqianError(FileIngestCodes.UPLOAD_STALLED, 408, { zh: `上传中断：${idleMs} 毫秒内未收到数据`, en: `upload stalled: no data for ${idleMs} ms` }, { idleMs });
              notify();
            }, idleMs);
            await new Promise<void>((r) => (wake = r));
          }
        },
        async return(): Promise<IteratorResult<Buffer>> {
          detach();
          req.pause();
          return { value: undefined, done: true };
        },
      };
    },
  };
}

/** Refusals before or while the body is read close the connection: Node must not drain 200 MiB. */
function closing(e: unknown, ctx: Koa.ParameterizedContext<HttpState>): never {
  if (!ctx.req.complete) ctx.set('Connection', 'close');
  throw e;
}

function formError(en: string, zh: string): YiqianError {
  return new YiqianError(FileIngestCodes.FILE_FORM_INVALID, 400, { zh: `表单无效：${zh}`, en: `invalid form: ${en}` });
}

function signatureBytes(raw: Buffer): Buffer {
  // DER SEQUENCE, or base64 of one (what curl -F signature=<file.b64 sends).
  if (raw[0] === 0x30) return raw;
  const text = raw.toString('latin1').replace(/\s+/g, '');
  if (/^[A-Za-z0-9+/]+={0,2}$/.test(text)) {
    const der = Buffer.from(text, 'base64');
    if (der[0] === 0x30) return der;
  }
  throw new YiqianError(FileIngestCodes.FILE_SIGNATURE_INVALID, 400, { zh: '签名部分必须是 DER 或 Base64 编码的 CMS', en: 'the signature part must be a CMS SignedData, DER or base64' });
}

/**
 * The request body as it arrives, hashed for YQ1 on the way: the signature binds the whole body
 * (docs/api-auth.md §2), which for multipart is the form, not the file part the blob store hashes.
 */
function yq1Hashed(source: AsyncIterable<Buffer>, algorithm: 'sm3' | 'sha256'): { source: AsyncIterable<Buffer>; hex(): string } {
  const h = createHash(algorithm);
  return {
    source: (async function* () {
      for await (const c of source) {
        h.update(c);
        yield c;
      }
    })(),
    hex: () => h.digest('hex'),
  };
}

/** Splits a multipart body: the "file" part streams into the blob store, "signature" is collected. */
async function ingestMultipart(files: FileIngest, u: FileUpload, raw: AsyncIterable<Buffer>, boundary: string) {
  // The reader drains the epilogue (multipart-stream.ts), so the hash covers every byte sent.
  const body = yq1Hashed(raw, u.bodyHash.algorithm);
  const source = body.source;
  const events = multipartEvents(source, boundary)[Symbol.asyncIterator]();
  let lookahead: MultipartEvent | undefined;
  const nextEvent = async (): Promise<MultipartEvent | undefined> => {
    if (lookahead) {
      const e = lookahead;
      lookahead = undefined;
      return e;
    }
    const r = await events.next();
    return r.done ? undefined : r.value;
  };
  async function* partData(): AsyncGenerator<Buffer> {
    for (;;) {
      const e = await nextEvent();
      if (!e) return;
      if (e.type !== 'data') {
        lookahead = e;
        return;
      }
      yield e.chunk;
    }
  }
  let staged: Awaited<ReturnType<FileIngest['stage']>> | undefined;
  let signature: Buffer | undefined;
  try {
    for (;;) {
      const e = await nextEvent();
      if (!e) break;
      if (e.type !== 'part') continue;
      if (e.name === 'file') {
        if (staged) throw formError('more than one "file" part', '"file" 部分出现多次');
        staged = await files.stage(u, partData());
      } else if (e.name === 'signature') {
        if (signature) throw formError('more than one "signature" part', '"signature" 部分出现多次');
        const parts: Buffer[] = [];
        let n = 0;
        for await (const c of partData()) {
          n += c.length;
          if (n > MAX_SIGNATURE_BYTES) throw new YiqianError(FileIngestCodes.FILE_SIGNATURE_INVALID, 400, { zh: '签名过大', en: `the signature part exceeds ${MAX_SIGNATURE_BYTES} bytes` });
          parts.push(c);
        }
        signature = signatureBytes(Buffer.concat(parts));
      } else {
        throw formError(`unknown part "${String(e.name).slice(0, 40)}" (expected "file" and optionally "signature"; metadata goes in the query)`, `未知部分 "${String(e.name).slice(0, 40)}"`);
      }
    }
    if (!staged) throw formError('no "file" part', '缺少 "file" 部分');
  } catch (err) {
    await staged?.staged.discard();
    throw err;
  }
  return files.complete(u, { ...staged, yq1Hex: body.hex() }, signature);
}

function publicRecord(r: EvidenceRecord): Omit<EvidenceRecord, 'patientIdSealed' | 'patientIdIndex'> {
  const { patientIdSealed: _s, patientIdIndex: _i, ...rest } = r;
  return rest;
}

export function evidenceFileRouter(deps: EvidenceFileRouteDeps): Router<HttpState> {
  const r = new Router<HttpState>();

  r.post('/evidence/files', async (ctx) => {
    const app = ctx.state.app!;
    const bodyHash = ctx.state.declaredBodyHash;
    if (!ctx.state.bodyStreamed || !bodyHash) {
      // Wiring error (createApiApp without streamedBody): refuse rather than accept an unbound body.
      throw new YiqianError(Codes.INTERNAL, 500, { zh: '服务内部错误', en: 'internal error' }, undefined, { cause: new Error('upload route not streamed') });
    }
    let u: FileUpload;
    let boundary: string | undefined;
    try {
      const type = ctx.request.type;
      if (type === 'multipart/form-data') {
        boundary = multipartBoundary(ctx.get('Content-Type'));
        if (!boundary) throw formError('multipart/form-data needs a boundary parameter', 'multipart/form-data 缺少 boundary 参数');
      } else if (type !== 'application/octet-stream') {
        throw httpError(
          Codes.UNSUPPORTED_MEDIA_TYPE,
          415,
          `此接口只接受 application/octet-stream 或 multipart/form-data，收到 ${(type || '(none)').slice(0, 80)}`,
          `this endpoint accepts application/octet-stream or multipart/form-data, got ${(type || '(none)').slice(0, 80)}`,
          { detail: { accepted: ['application/octet-stream', 'multipart/form-data'] } },
        );
      }
      const declared = ctx.get('Content-Length');
      u = {
        app: { id: app.id, project: app.project },
        ...fileUploadFields(ctx.query as Record<string, unknown>),
        ...(declared !== '' && !boundary ? { declaredBytes: Number(declared) } : {}),
        bodyHash,
      };
      await deps.files.precheck(u);
    } catch (e) {
      closing(e, ctx);
    }
    const source = requestChunks(ctx.req, ctx.res, deps.uploadIdleMs);
    let result;
    try {
      if (boundary) {
        result = await ingestMultipart(deps.files, u, source, boundary);
      } else {
        result = await deps.files.complete(u, await deps.files.stage(u, source));
      }
    } catch (e) {
      closing(e, ctx);
    }
    ctx.status = 201;
    ctx.set('Location', `${API_PREFIX}/evidence/records/${result.record.id}`);
    ctx.body = { record: publicRecord(result.record), deduplicated: result.deduplicated };
  });

  r.get('/evidence/records/:id/download-url', async (ctx) => {
    const app = ctx.state.app!;
    const id = ctx.params.id!;
    const rec = /^[0-9A-HJKMNP-TV-Z]{26}$/.test(id) ? await deps.records.get(id) : undefined;
    // Another project's record is answered as missing: ids of other projects reveal nothing.
    if (!rec || rec.project !== app.project) {
      throw new YiqianError(FileIngestCodes.RECORD_NOT_FOUND, 404, { zh: '存证记录不存在', en: 'evidence record not found' }, { id: id.slice(0, 40) });
    }
    if (!rec.original) {
      throw new YiqianError(FileIngestCodes.ORIGINAL_NOT_STORED, 404, { zh: '该记录未保存原文', en: 'this record has no stored original (digest only)' }, { id });
    }
    const url = await deps.urls.sign(rec.id);
    ctx.set('Cache-Control', 'no-store');
    // Not ctx.origin: in koa 3 that is the request's Origin header (null for non-browser clients).
    ctx.body = { url: `${ctx.protocol}://${ctx.host}${url.path}`, path: url.path, expiresAt: url.expiresAt };
  });

  return r;
}

/** RFC 6266 §4.3: an ASCII fallback and the UTF-8 name (RFC 8187). */
export function contentDisposition(fileName: string | undefined, fallback: string): string {
  const name = fileName ?? fallback;
  const ascii = name.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_');
  const utf8 = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${utf8}`;
}

export interface DownloadAppDeps {
  urls: DownloadUrlSigner;
  records: RecordLookup;
  blobs: FsBlobStore;
  limits?: HttpLimits;
  metrics?: Metrics;
  log?: Logger;
}

/**
 * The public download app (HTTPS listener only, no app auth: the URL's HMAC is the authority).
 * GET and HEAD /evidence/download/:id?exp=…&sig=….
 */
export function createEvidenceDownloadApp(deps: DownloadAppDeps): Koa<HttpState> {
  const m = deps.metrics ?? defaultMetrics;
  const limits = resolveLimits(deps.limits);
  const app = new Koa<HttpState>();
  logKoaErrors(app, deps.log ?? rootLog);
  app.use(requestId(deps.log ?? rootLog));
  app.use(httpMetrics(m));
  app.use(problems(m));
  app.use(timeout(limits.timeoutMs));
  app.use(overload({ maxInFlight: limits.maxInFlight }));
  const r = new Router<HttpState>({ prefix: DOWNLOAD_PATH_PREFIX.replace(/\/$/, ''), sensitive: true });
  r.get('/:id', async (ctx) => {
    const id = await deps.urls.verify(ctx.params.id!, ctx.query);
    const rec = await deps.records.get(id);
    if (!rec?.original) throw new YiqianError(FileIngestCodes.RECORD_NOT_FOUND, 404, { zh: '存证记录不存在', en: 'evidence record not found' }, { id });
    const size = await deps.blobs.size(rec.original.blobId);
    if (size === undefined) throw new YiqianError(Codes.INTERNAL, 500, { zh: '服务内部错误', en: 'internal error' }, undefined, { cause: new Error(`blob ${rec.original.blobId} of ${id} missing`) });
    ctx.set('Content-Disposition', contentDisposition(rec.original.fileName, `${id}.bin`));
    ctx.set('X-Content-SM3', rec.original.blobId);
    ctx.set('X-Evidence-Record', id);
    ctx.set('Cache-Control', 'private, no-store');
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.type = rec.original.mediaType ?? 'application/octet-stream';
    ctx.length = size;
    // Readable.from opens the file on the first read: a HEAD (never piped) opens nothing.
    ctx.body = Readable.from(deps.blobs.read(rec.original.blobId), { objectMode: false });
  });
  app.use(r.routes());
  app.use(routeFallback());
  return app;
}
