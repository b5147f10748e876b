// Downloads the CRLs of imported CAs from their crlUrl (RFC 5280 §4.2.1.13 distribution point,
// configured at import) every crlFetchHours. A CA is due when it was never tried, when its last
// attempt is older than its interval, or when the last attempt failed and is older than
// RETRY_MS (a failing server is retried sooner than a whole interval). A download is an HTTP(S)
// GET with a 10 s timeout and a 16 MiB limit; the body may be DER or PEM. What it brings goes
// through TrustStoreService.importCrl (issuer, signature, critical extensions, newer-than), so a
// fetched CRL is held only when an uploaded one would be. The same CRL again (same bytes) is
// not an error. Failures are recorded on the CA (lastFetchError), logged and audited, and never
// stop the timer or the process.
import { YiqianError, isYiqianError } from '../errors.js';
import { log as rootLog, type Logger } from '../log.js';
import { readBodyLimited } from './ocsp-client.js';
import { trustError, type TrustStoreService, type TrustedCaDetail, type TrustedCaRecord } from './trust-store.js';

export const CRL_FETCH_TIMEOUT_MS = 10_000;
export const CRL_MAX_BYTES = 16 * 1024 * 1024;
const RETRY_MS = 15 * 60_000;
const SYSTEM = 'system';

export interface CrlFetcher {
  /** Downloads the CRL of one imported CA now; rejects with the failure (also recorded). */
  fetchNow(id: string, actor: string): Promise<TrustedCaDetail>;
  /** Downloads every due CRL; never rejects. */
  refreshDue(): Promise<{ id: string; ok: boolean; code?: string }[]>;
  start(intervalMs?: number): void;
  stop(): Promise<void>;
}

export interface CrlFetcherDeps {
  trust: TrustStoreService;
  timeoutMs?: number;
  maxBytes?: number;
  clock?: () => Date;
  log?: Logger;
}

function fetchFailed(url: string, why: string): YiqianError {
  return trustError('CRL_FETCH_FAILED', 502, `无法从 ${url} 下载 CRL：${why}`, `cannot download the CRL from ${url}: ${why}`, { url, reason: why });
}

export function createCrlFetcher(deps: CrlFetcherDeps): CrlFetcher {
  const timeoutMs = deps.timeoutMs ?? CRL_FETCH_TIMEOUT_MS;
  const maxBytes = deps.maxBytes ?? CRL_MAX_BYTES;
  const clock = deps.clock ?? (() => new Date());
  const log = deps.log ?? rootLog;
  const running = new Map<string, Promise<TrustedCaDetail>>();
  let timer: NodeJS.Timeout | undefined;
  let ticking: Promise<unknown> | undefined;

  async function download(url: string): Promise<Buffer> {
    let res: Response;
    try {
      res = await fetch(url, { redirect: 'follow', signal: AbortSignal.timeout(timeoutMs), headers: { accept: 'application/pkix-crl, application/x-pkcs7-crl, */*' } });
    } catch (e) {
      const err = e as Error & { cause?: { code?: string; message?: string } };
      throw fetchFailed(url, err.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (err.cause?.code ?? err.cause?.message ?? err.message));
    }
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => undefined);
      throw fetchFailed(url, `HTTP ${res.status}`);
    }
    try {
      return await readBodyLimited(res, maxBytes);
    } catch (e) {
      const err = e as Error;
      throw fetchFailed(url, err.name === 'TimeoutError' ? `no complete answer within ${timeoutMs} ms` : err.message);
    }
  }

  async function run(rec: TrustedCaRecord, actor: string): Promise<TrustedCaDetail> {
    const url = rec.crlUrl as string;
    try {
      const body = await download(url);
      if (rec.crl && Buffer.from(rec.crl.der, 'base64').equals(body)) {
        // Unchanged since the last download: nothing to import, the attempt counts.
        await deps.trust.noteFetch(rec.id, undefined, actor);
        return deps.trust.get(rec.id);
      }
      const view = await deps.trust.importCrl(rec.id, body, 'fetch', actor);
      log.info({ id: rec.id, url, crlNumber: view.crl?.number }, 'CRL downloaded');
      return view;
    } catch (e) {
      const code = isYiqianError(e) ? e.code : 'CRL_FETCH_FAILED';
      const message = isYiqianError(e) ? e.text.en : (e as Error).message;
      log.warn({ id: rec.id, url, code, reason: message }, 'CRL download failed');
      await deps.trust.noteFetch(rec.id, { code, message }, actor).catch((err: unknown) => log.error({ err, id: rec.id }, 'recording the CRL download failure failed'));
      throw e;
    }
  }

  /** One download per CA at a time. */
  function once(rec: TrustedCaRecord, actor: string): Promise<TrustedCaDetail> {
    let p = running.get(rec.id);
    if (!p) {
      p = run(rec, actor).finally(() => running.delete(rec.id));
      running.set(rec.id, p);
    }
    return p;
  }

  function due(rec: TrustedCaRecord, now: number): boolean {
    if (!rec.crlUrl) return false;
    if (!rec.lastFetchAt) return true;
    const since = now - Date.parse(rec.lastFetchAt);
    const interval = (rec.crlFetchHours ?? 24) * 3_600_000;
    return since >= interval || (rec.lastFetchError !== undefined && since >= Math.min(RETRY_MS, interval));
  }

  const fetcher: CrlFetcher = {
    async fetchNow(id, actor) {
      await deps.trust.get(id); // TRUST_CA_NOT_FOUND / TRUST_CA_BUILTIN cases first
      const rec = (await deps.trust.imported()).find((r) => r.id === id);
      if (!rec) throw trustError('TRUST_CA_BUILTIN', 409, '本设备自己的 CA 不下载 CRL', "the appliance's own CAs have no CRL to download", { id });
      if (!rec.crlUrl) throw trustError('CRL_URL_NOT_SET', 409, '该 CA 未配置 CRL 下载地址（crlUrl）', 'this CA has no crlUrl to download from', { id });
      return once(rec, actor);
    },

    async refreshDue() {
      const out: { id: string; ok: boolean; code?: string }[] = [];
      let list: TrustedCaRecord[];
      try {
        list = await deps.trust.imported();
      } catch (e) {
        log.error({ err: e }, 'CRL schedule: cannot list the trust store');
        return out;
      }
      const now = clock().getTime();
      for (const rec of list) {
        if (!due(rec, now)) continue;
        try {
          await once(rec, SYSTEM);
          out.push({ id: rec.id, ok: true });
        } catch (e) {
          out.push({ id: rec.id, ok: false, code: isYiqianError(e) ? e.code : 'CRL_FETCH_FAILED' });
        }
      }
      return out;
    },

    start(intervalMs = 60_000) {
      if (timer) return;
      const tick = (): void => {
        if (ticking) return;
        ticking = fetcher
          .refreshDue()
          .catch((e: unknown) => log.error({ err: e }, 'CRL download schedule failed'))
          .finally(() => (ticking = undefined));
      };
      tick(); // due at start: never fetched, or older than the interval
      timer = setInterval(tick, intervalMs);
      timer.unref();
    },

    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await ticking;
      await Promise.allSettled([...running.values()]);
    },
  };
  return fetcher;
}
