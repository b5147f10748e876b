// Replay protection: which (app, nonce) pairs were seen and until when. db 'nonces' keyed
// [appId, nonce] → expiresAtMs; db 'nonces-by-expiry' keyed [expiresAtMs, appId, nonce] so
// purging walks only what has expired.
//
// Its own small LMDB environment (<data>/nonces, NONCE_ENV_DIR), written with synchronous
// transactions and no fsync. Every authenticated API call records a nonce: in the main
// environment that write queued behind whatever durable commit was in flight (an evidence batch,
// a certificate), so at a million evidence records a GET waited ~100 ms for somebody else's
// fsync. Here remember() takes the environment's own write lock, checks, writes and commits in
// place (tens of µs), and is answered in the same event-loop iteration (the calls of one
// iteration share that transaction). LMDB's lock still makes the check-and-write atomic
// across processes; a crash of the process loses nothing (the pages are in the OS cache), a power
// loss may forget the last nonces — the accepted, bounded window: a nonce is only worth keeping
// for its few minutes of validity, and the request signatures still bind the timestamp.
import type { Database, RootDatabase } from 'lmdb';
import { Codes, YiqianError, fail } from '../errors.js';
import { turnBatch } from './turn-batch.js';

/** Directory of the nonce environment under the data directory. */
export const NONCE_ENV_DIR = 'nonces';

type NonceKey = [string, string];
type ExpiryKey = [number, string, string];

export interface NonceRepository {
  /**
   * true the first time (appId, nonce) is seen, or when its earlier use has expired;
   * false while it is held. Atomic: of two concurrent calls with the same pair, one wins.
   */
  remember(appId: string, nonce: string, expiresAtMs: number): Promise<boolean>;
  /** Drops every nonce whose expiry is ≤ nowMs; returns how many. */
  purgeExpired(nowMs: number): Promise<number>;
}

const MAX_APP_ID = 64;
const MAX_NONCE = 128;
/** Removals per transaction while purging, so the write lock (and this thread) is never held for long. */
const PURGE_BATCH = 1000;

function unavailable(e: unknown): YiqianError {
  return new YiqianError(Codes.STORE_UNAVAILABLE, 503, { zh: '防重放记录不可用', en: `the nonce store is unavailable: ${(e as Error)?.message ?? String(e)}` }, undefined, { cause: e });
}

interface PendingNonce {
  appId: string;
  nonce: string;
  expiresAtMs: number;
  resolve: (fresh: boolean) => void;
  reject: (e: unknown) => void;
}

export class LmdbNonceRepository implements NonceRepository {
  /** The calls of one event-loop iteration, handed to flush() together (store/turn-batch.ts). */
  private readonly queue = turnBatch<PendingNonce>((group) => this.flush(group));

  constructor(
    private readonly nonces: Database<number, NonceKey>,
    private readonly byExpiry: Database<number, ExpiryKey>,
    /** The nonce environment (its own write lock), or undefined when the store is open read-only. */
    private readonly env: RootDatabase | undefined,
    private readonly clock: () => number = Date.now,
  ) {}

  private write<T>(action: () => T): T {
    if (!this.env) fail(Codes.STORE_UNAVAILABLE, 503, '存储以只读方式打开，不能写入', 'the store is open read-only; writes are refused');
    try {
      return this.env.transactionSync(action);
    } catch (e) {
      if (e instanceof YiqianError) throw e;
      throw unavailable(e);
    }
  }

  async remember(appId: string, nonce: string, expiresAtMs: number): Promise<boolean> {
    if (typeof appId !== 'string' || appId.length === 0 || appId.length > MAX_APP_ID) {
      fail(Codes.BAD_REQUEST, 400, '应用标识无效', `app id must be 1–${MAX_APP_ID} characters`);
    }
    if (typeof nonce !== 'string' || nonce.length === 0 || nonce.length > MAX_NONCE) {
      fail(Codes.BAD_REQUEST, 400, `nonce 长度必须为 1 到 ${MAX_NONCE} 个字符`, `nonce must be 1–${MAX_NONCE} characters`);
    }
    if (!Number.isSafeInteger(expiresAtMs) || expiresAtMs < 0) {
      fail(Codes.BAD_REQUEST, 400, '过期时间无效', 'expiresAtMs must be a non-negative integer (ms since the epoch)');
    }
    return new Promise<boolean>((resolve, reject) => {
      this.queue({ appId, nonce, expiresAtMs, resolve, reject });
    });
  }

  /**
   * The calls of one event-loop iteration share one transaction (one commit instead of one per
   * request: in process, 13 → 4 µs of CPU per call with 32 callers). Within it each pair is checked and
   * written in call order, so a second call with the same pair — in this group, or in another
   * process under the environment's write lock — sees the first one's write.
   */
  private flush(group: PendingNonce[]): void {
    let fresh: boolean[];
    try {
      fresh = this.write(() => group.map((p) => this.rememberInTxn(p.appId, p.nonce, p.expiresAtMs)));
    } catch (e) {
      for (const p of group) p.reject(e);
      return;
    }
    group.forEach((p, i) => p.resolve(fresh[i]));
  }

  private rememberInTxn(appId: string, nonce: string, expiresAtMs: number): boolean {
    const key: NonceKey = [appId, nonce];
    const held = this.nonces.get(key);
    if (held !== undefined) {
      if (held > this.clock()) return false;
      this.byExpiry.removeSync([held, appId, nonce]);
    }
    this.nonces.putSync(key, expiresAtMs);
    this.byExpiry.putSync([expiresAtMs, appId, nonce], 1);
    return true;
  }

  async purgeExpired(nowMs: number): Promise<number> {
    let total = 0;
    for (;;) {
      const removed = this.write(() => {
        let n = 0;
        for (const { key } of this.byExpiry.getRange({ start: [0], limit: PURGE_BATCH })) {
          const [expiresAt, appId, nonce] = key;
          if (expiresAt > nowMs) break;
          this.byExpiry.removeSync(key);
          if (this.nonces.get([appId, nonce]) === expiresAt) this.nonces.removeSync([appId, nonce]);
          n += 1;
        }
        return n;
      });
      total += removed;
      if (removed < PURGE_BATCH) return total;
      await new Promise((r) => setImmediate(r)); // let requests in between batches
    }
  }
}
