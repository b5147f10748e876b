// The public RFC 3161 paths (§3.4, time-stamp protocol via HTTP) as one plain node:http handler,
// not a koa app: at thousands of tokens per second the koa stack (request id, metrics, problem,
// envelope, timeout, overload, router, respond) was over a third of a token's main-thread time
// (issue 5). It keeps what that stack did, in this order:
//
//   X-Request-Id (echo a sane one, else make one) → metrics → overload (limits.maxInFlight)
//   → deadline (limits.timeoutMs) → path / method → tsa.allow → Content-Type, Content-Encoding,
//   size (declared and streamed) → TsaService.respond
//
// and EVERY failure is a TimeStampResp `rejection` (application/timestamp-reply), never
// problem+json: RFC 3161 has no other error body. Status and failInfo per failure:
//   404 / 405 (Allow: POST) / 403 TSA_NOT_ALLOWED → badRequest
//   413 / 415 → badDataFormat, Connection: close (the body is not read to its end)
//   503 overload / timeout → systemFailure, Retry-After: 1 (+ Connection: close if the body is unread)
//   anything unexpected → 500 systemFailure, logged with the request id
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { timeStampRejection, type FailureInfoName } from '../asn1/tsp.js';
import { Codes, YiqianError, isYiqianError } from '../errors.js';
import { log as rootLog, type Logger } from '../log.js';
import { metrics as defaultMetrics, type Metrics } from '../metrics.js';
import type { TsaService } from '../tsa/tsa-service.js';
import type { TsaIdentity } from '../tsa/types.js';
import { readLimited } from './body-reader.js';
import { resolveLimits, type HttpLimits } from './create-api-app.js';
import { methodLabel } from './http-metrics.js';
import { TSA_NOT_ALLOWED, TSQ_TYPE, TSR_TYPE, addressFilter } from './tsa-routes.js';

export interface TsaPublicDeps {
  tsa: Pick<TsaService, 'respond'>;
  defaultIdentity: TsaIdentity;
  /** CIDRs allowed to call; empty → everyone. */
  allow: string[];
  maxRequestBytes: number;
  limits?: HttpLimits;
  metrics?: Metrics;
  log?: Logger;
}

export type TsaRequestHandler = ((req: IncomingMessage, res: ServerResponse) => void) & {
  /**
   * Resolves once no request's work is running. A client that hangs up does not stop its token
   * being made and recorded, so shutdown waits for this before it closes the store.
   */
  settled(): Promise<void>;
};

/** The public paths (docs/openapi.json lists each as POST; test/unit/openapi.test.ts checks). */
export const TSA_PUBLIC_PATHS = ['/tsa', '/tsa/sm2', '/tsa/ecdsa'] as const;

/** Same rule as request-id.ts: printable, header- and log-safe, bounded. */
const SANE_ID = /^[A-Za-z0-9._:-]{8,128}$/;
/** Own ids: a random per-process prefix and a counter — unique in this run, no CSPRNG call per request. */
const ID_PREFIX = `tsa-${randomBytes(6).toString('hex')}-`;
let idCounter = 0;
function newRequestId(): string {
  return ID_PREFIX + (++idCounter).toString(36);
}

/** Status label of a request whose client left before the answer (nginx's 499). */
const CLIENT_GONE_STATUS = '499';

const err = (code: string, status: number, zh: string, en: string): YiqianError => new YiqianError(code, status, { zh, en });

function clientAborted(e: unknown): boolean {
  return (e as { code?: unknown } | null)?.code === 'CLIENT_ABORTED';
}

/** The failure's HTTP status, failInfo and extra headers (the table at the top of this file). */
function rejectionOf(e: YiqianError, req: IncomingMessage): { status: number; fail: FailureInfoName; headers: OutgoingHttpHeaders } {
  switch (e.code) {
    case Codes.PAYLOAD_TOO_LARGE:
    case Codes.UNSUPPORTED_MEDIA_TYPE:
      return { status: e.status, fail: 'badDataFormat', headers: { Connection: 'close' } };
    case Codes.METHOD_NOT_ALLOWED:
      return { status: 405, fail: 'badRequest', headers: { Allow: 'POST' } };
    case Codes.NOT_FOUND:
    case TSA_NOT_ALLOWED:
      return { status: e.status, fail: 'badRequest', headers: {} };
    case Codes.OVERLOADED:
    case Codes.REQUEST_TIMEOUT:
      // A body still arriving would be drained by Node to keep the connection: close it instead.
      return { status: 503, fail: 'systemFailure', headers: req.complete ? { 'Retry-After': '1' } : { 'Retry-After': '1', Connection: 'close' } };
    default:
      return { status: e.status >= 400 ? e.status : 500, fail: 'systemFailure', headers: {} };
  }
}

async function readQuery(req: IncomingMessage, res: ServerResponse, limit: number): Promise<Buffer> {
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== TSQ_TYPE) throw err(Codes.UNSUPPORTED_MEDIA_TYPE, 415, `内容类型必须是 ${TSQ_TYPE}`, `Content-Type must be ${TSQ_TYPE}`);
  const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (encoding !== 'identity') throw err(Codes.UNSUPPORTED_MEDIA_TYPE, 415, '不支持的内容编码', 'unsupported Content-Encoding');
  const tooLarge = () => err(Codes.PAYLOAD_TOO_LARGE, 413, `时间戳请求超过 ${limit} 字节上限`, `time-stamp request exceeds ${limit} bytes`);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge();
  try {
    return await readLimited(req, limit, res);
  } catch (e) {
    if (isYiqianError(e) && e.code === Codes.PAYLOAD_TOO_LARGE) throw tooLarge();
    throw e;
  }
}

/** The request listener main.ts dispatches /tsa… to on both listeners (isTsaPublicPath). */
export function createTsaHandler(deps: TsaPublicDeps): TsaRequestHandler {
  const m = deps.metrics ?? defaultMetrics;
  const log = deps.log ?? rootLog;
  const { timeoutMs, maxInFlight } = resolveLimits(deps.limits);
  const allowed = addressFilter(deps.allow);
  // '/tsa' → the configured default identity; '/tsa/<identity>' → that one.
  const identityOf = new Map<string, TsaIdentity>(TSA_PUBLIC_PATHS.map((p) => [p, p === '/tsa' ? deps.defaultIdentity : (p.slice(5) as TsaIdentity)]));
  /** Requests whose work has not ended (a timed-out one keeps its slot while respond() runs). */
  let inFlight = 0;
  let onSettled: (() => void)[] = [];

  async function work(req: IncomingMessage, res: ServerResponse, identity: TsaIdentity | undefined, requestId: string): Promise<Buffer> {
    if (!identity) throw err(Codes.NOT_FOUND, 404, '没有这个时间戳服务', 'no such time-stamp service (POST /tsa, /tsa/sm2, /tsa/ecdsa)');
    if (req.method !== 'POST') throw err(Codes.METHOD_NOT_ALLOWED, 405, '只接受 POST', 'only POST is accepted');
    const address = req.socket.remoteAddress;
    if (!allowed(address)) throw err(TSA_NOT_ALLOWED, 403, '此网络不得使用时间戳服务', `time-stamping is not open to ${address ?? 'this address'}`);
    const der = await readQuery(req, res, deps.maxRequestBytes);
    const a = await deps.tsa.respond(der, identity, { address: address ?? 'unknown' });
    if (!a.granted) log.info({ requestId, identity, failInfo: a.failInfo, reason: a.reason }, 'time-stamp refused');
    return a.der;
  }

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const started = process.hrtime.bigint();
    m.httpInFlight.inc();
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const identity = identityOf.get(path);
    // Metrics label: one of the three paths, never a client-chosen one.
    const route = identity ? path : 'unmatched';
    const method = methodLabel(req.method ?? '');
    const incoming = req.headers['x-request-id'];
    const requestId = typeof incoming === 'string' && SANE_ID.test(incoming) ? incoming : newRequestId();
    let answered = false;
    let timedOut = false;
    let timer: NodeJS.Timeout | undefined = undefined; // set once the request holds a slot

    /** The one answer of this request (later ones are dropped); counts it in the metrics. */
    const answer = (status: number, der: Buffer | undefined, headers?: OutgoingHttpHeaders): void => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      const gone = der === undefined || res.destroyed || res.writableEnded;
      m.httpInFlight.dec();
      m.httpRequests.inc({ method, route, status: gone ? CLIENT_GONE_STATUS : String(status) });
      m.httpDuration.observe({ method, route }, Number(process.hrtime.bigint() - started) / 1e9);
      if (gone || res.headersSent) return;
      res.writeHead(status, { 'X-Request-Id': requestId, 'Content-Type': TSR_TYPE, 'Cache-Control': 'no-store', 'Content-Length': der.length, ...headers });
      res.end(der);
    };

    const fail = (e: unknown): void => {
      if (answered) {
        // The deadline answered already; the work ended badly later (a closed body read is no news).
        if (timedOut && !clientAborted(e)) log.warn({ requestId, err: e }, 'request failed after its timeout');
        return;
      }
      if (clientAborted(e)) return answer(0, undefined);
      let code: string = Codes.INTERNAL;
      let r: ReturnType<typeof rejectionOf> = { status: 500, fail: 'systemFailure', headers: {} };
      let text = 'internal error';
      if (isYiqianError(e)) {
        code = e.code;
        r = rejectionOf(e, req);
        text = e.message;
      } else {
        log.error({ requestId, err: e }, 'time-stamp request failed');
      }
      m.errors.inc({ code });
      answer(r.status, timeStampRejection(r.fail, [text]), r.headers);
    };

    if (inFlight >= maxInFlight) {
      // Answered after this parser run, so req.complete tells whether the body already came in
      // whole (keep the connection) or is still arriving (close it).
      queueMicrotask(() => fail(err(Codes.OVERLOADED, 503, '服务繁忙，请稍后重试', 'server overloaded, retry later')));
      return;
    }
    inFlight++;
    timer = setTimeout(() => {
      timedOut = true;
      fail(err(Codes.REQUEST_TIMEOUT, 503, `请求处理超时（${timeoutMs} 毫秒）`, `request timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    work(req, res, identity, requestId)
      .then((der) => answer(200, der), fail)
      .finally(() => {
        if (--inFlight === 0 && onSettled.length > 0) {
          const waiting = onSettled;
          onSettled = [];
          waiting.forEach((resolve) => resolve());
        }
      })
      .catch((e: unknown) => log.error({ requestId, err: e }, 'time-stamp answer failed'));
  };
  const settled = (): Promise<void> => (inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => onSettled.push(resolve)));
  return Object.assign(handler, { settled });
}
