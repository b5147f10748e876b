// The operation audit log: append-only, hash-chained (chain.ts), durable before append
// resolves. Separate from the pino service log (ARCHITECTURE.md §5).
//
// The records live in the store (store/audit-storage.ts implements AuditStorage on LMDB; a
// PostgreSQL deployment implements the same interface); the chaining and verification are
// here. Repositories that change state can append their audit record in the same
// transaction as the change (see AppRepository), using the same `sealer`.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Codes, fail } from '../errors.js';
import { GENESIS_HASH, recomputeHash, sealer } from './chain.js';

export type AuditOutcome = 'ok' | 'denied' | 'error';

export interface AuditEntry {
  /** Who: 'cli:root', 'user:<id>', 'app:<id>', 'system'. */
  actor: string;
  /** What, dotted lower case: 'app.create', 'app.freeze', 'key.generate'. */
  action: string;
  /** What it was done to, e.g. an app id. */
  target?: string;
  outcome: AuditOutcome;
  /** Client-safe facts; never secrets (no private keys, PINs, tokens). JSON values only. */
  detail?: Record<string, unknown>;
}

export interface AuditRecord extends AuditEntry {
  /** 1, 2, 3 … without gaps. */
  seq: number;
  /** ISO 8601 UTC with milliseconds, taken inside the write transaction. */
  time: string;
  /** How `hash` is made: 'sm3' (a keyed 'hmac-sm3' is the planned next step, see chain.ts). */
  alg: 'sm3';
  /** hex; 64 zeros for seq 1. */
  prevHash: string;
  /** hex SM3 over the canonical encoding of every other field (chain.ts). */
  hash: string;
}

/** The newest record's seq and hash, stored apart from the records. */
export interface AuditHead {
  seq: number;
  hash: string;
}

export interface AuditQuery {
  /** First seq to return (default 1). */
  fromSeq?: number;
  /** Default 100, at most 1000. */
  limit?: number;
  /** Exact action, e.g. 'app.create'; or a prefix ending in '.', e.g. 'app.'. */
  action?: string;
}

export interface ChainVerdict {
  ok: boolean;
  /** Records checked and found intact (all of them when ok). */
  count: number;
  /** First seq whose record is missing, altered or out of chain. */
  brokenAt?: number;
}

export interface AuditLog {
  /** Appends one record; resolves once it is flushed to disk. */
  append(entry: AuditEntry): Promise<AuditRecord>;
  list(query?: AuditQuery): Promise<AuditRecord[]>;
  /** Walks the whole chain from seq 1 and checks it against the stored head. */
  verifyChain(): Promise<ChainVerdict>;
}

/** What the audit log needs from storage. */
export interface AuditStorage {
  /**
   * In one write transaction: reads the newest record, calls `seal(newest)`, stores the
   * result and the new head. Resolves when durable. Refuses (INTEGRITY_CHECK_FAILED) when the
   * stored head does not match the newest record, so a truncated log is not papered over.
   */
  append(seal: (prev: AuditRecord | undefined) => AuditRecord): Promise<AuditRecord>;
  /** Records with seq ≥ fromSeq in seq order, at most `limit`, optionally filtered. */
  scan(fromSeq: number, limit: number, filter?: (r: AuditRecord) => boolean): Promise<AuditRecord[]>;
  head(): Promise<AuditHead | undefined>;
}

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;
const VERIFY_BATCH = 1000;

export function createAuditLog(storage: AuditStorage): AuditLog {
  return {
    async append(entry) {
      return storage.append(sealer(entry));
    },

    async list(query = {}) {
      const fromSeq = query.fromSeq ?? 1;
      const limit = query.limit ?? DEFAULT_LIMIT;
      if (!Number.isSafeInteger(fromSeq) || fromSeq < 1) {
        fail(Codes.BAD_REQUEST, 400, 'fromSeq 必须是正整数', 'fromSeq must be a positive integer');
      }
      if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
        fail(Codes.BAD_REQUEST, 400, `limit 必须在 1 到 ${MAX_LIMIT} 之间`, `limit must be 1–${MAX_LIMIT}`);
      }
      const action = query.action;
      const filter =
        action === undefined
          ? undefined
          : action.endsWith('.')
            ? (r: AuditRecord) => r.action.startsWith(action)
            : (r: AuditRecord) => r.action === action;
      return storage.scan(fromSeq, limit, filter);
    },

    async verifyChain() {
      // Take the head first: records appended while we walk come after it and are checked
      // as chain links too; the head check covers what existed when we started.
      const head = await storage.head();
      let expected = 1;
      let prevHash = GENESIS_HASH;
      let count = 0;
      let hashAtHead: string | undefined;
      for (;;) {
        const batch = await storage.scan(expected, VERIFY_BATCH);
        for (const r of batch) {
          if (r.seq !== expected) return { ok: false, count, brokenAt: expected };
          if (r.prevHash !== prevHash || r.alg !== 'sm3' || recomputeHash(r) !== r.hash) {
            return { ok: false, count, brokenAt: r.seq };
          }
          if (head && r.seq === head.seq) hashAtHead = r.hash;
          prevHash = r.hash;
          expected += 1;
          count += 1;
        }
        if (batch.length < VERIFY_BATCH) break;
        await nextTurn(); // a long log must not hold the event loop
      }
      if (head === undefined) {
        // Records without a head: the head was removed (or never written by this code).
        return count === 0 ? { ok: true, count } : { ok: false, count, brokenAt: count };
      }
      if (count < head.seq) return { ok: false, count, brokenAt: count + 1 }; // cut off at the end
      if (hashAtHead !== head.hash) return { ok: false, count, brokenAt: head.seq };
      return { ok: true, count };
    },
  };
}
