// Replay protection: which (app, nonce) pairs were seen and until when. db 'nonces' keyed
// [appId, nonce] → expiresAtMs; db 'nonces-by-expiry' keyed [expiresAtMs, appId, nonce] so
// purging walks only what has expired.
//
// Durability: remember() answers once its check-and-write ran under LMDB's write lock, before
// the commit is even synced. A nonce
// is only worth keeping for its few minutes of validity; a power loss may forget the last
// few milliseconds of nonces, which is an accepted, bounded window (the request signatures
// still bind the timestamp). Not fsyncing each one keeps nonce checks off the disk's sync
// latency on every API call.
import type { Database } from 'lmdb';
import { Codes, fail } from '../errors.js';
import type { Writer } from './durable.js';

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
/** Removals per transaction while purging, so the write lock is never held for long. */
const PURGE_BATCH = 5000;

export class LmdbNonceRepository implements NonceRepository {
  constructor(
    private readonly nonces: Database<number, NonceKey>,
    private readonly byExpiry: Database<number, ExpiryKey>,
    private readonly writer: Writer,
    private readonly clock: () => number = Date.now,
  ) {}

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
    // The check and the write are one transaction: LMDB has one writer at a time, so a
    // second call with the same pair sees the first one's write (also across processes).
    // The answer is given as soon as the transaction's callback has run under the write lock,
    // not when the commit's fsync completes (lmdb-js resolves a write only then): the API call
    // must not wait on the disk for a record whose loss is the accepted bound above.
    return new Promise<boolean>((resolve, reject) => {
      this.writer
        .committed(() => {
          const key: NonceKey = [appId, nonce];
          const held = this.nonces.get(key);
          if (held !== undefined) {
            if (held > this.clock()) {
              resolve(false);
              return false;
            }
            void this.byExpiry.remove([held, appId, nonce]);
          }
          void this.nonces.put(key, expiresAtMs);
          void this.byExpiry.put([expiresAtMs, appId, nonce], 1);
          resolve(true);
          return true;
        })
        // Before the callback ran (store closed or failing): the caller's 503. After it: no effect.
        .catch(reject);
    });
  }

  async purgeExpired(nowMs: number): Promise<number> {
    let total = 0;
    for (;;) {
      const removed = await this.writer.committed(() => {
        let n = 0;
        for (const { key } of this.byExpiry.getRange({ start: [0], limit: PURGE_BATCH })) {
          const [expiresAt, appId, nonce] = key;
          if (expiresAt > nowMs) break;
          void this.byExpiry.remove(key);
          if (this.nonces.get([appId, nonce]) === expiresAt) void this.nonces.remove([appId, nonce]);
          n += 1;
        }
        return n;
      });
      total += removed;
      if (removed < PURGE_BATCH) return total;
    }
  }
}
