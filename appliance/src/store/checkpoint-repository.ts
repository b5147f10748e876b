// Signed, time-stamped checkpoints of the evidence Merkle log (issue 6 item 3) on LMDB:
// db 'evidence-checkpoints', key = treeSize (a number: ordered-binary keys sort numerically, so
// "the first checkpoint with treeSize > i" is one range read) → StoredCheckpoint (JSON).
// A checkpoint is written once, with its RFC 3161 token, in one durable transaction; it is never
// rewritten (the insert refuses an existing size), so a proof answered against it stays valid.
import type { Database } from 'lmdb';
import type { Page, StoredCheckpoint } from '../evidence/types.js';
import type { Writer } from './durable.js';

export interface CheckpointRepository {
  /** Durable when resolved; false (nothing written) if a checkpoint of that size exists. */
  insert(cp: StoredCheckpoint): Promise<boolean>;
  get(treeSize: number): Promise<StoredCheckpoint | undefined>;
  latest(): Promise<StoredCheckpoint | undefined>;
  /** The first checkpoint whose treeSize is > leafIndex. */
  firstAbove(leafIndex: number): Promise<StoredCheckpoint | undefined>;
  /** Newest first; `cursor` is the treeSize to continue below (exclusive). */
  list(limit: number, below?: number): Promise<Page<StoredCheckpoint>>;
  count(): Promise<number>;
}

const isSize = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;

export function createCheckpointRepository(db: Database<any, any>, writer: Writer): CheckpointRepository {
  const cps = db as Database<StoredCheckpoint, number>;
  return {
    async insert(cp) {
      if (!isSize(cp.treeSize) || cp.treeSize === 0) throw new RangeError(`bad checkpoint tree size ${String(cp.treeSize)}`);
      if (typeof cp.timestampToken !== 'string' || cp.timestampToken.length === 0) throw new RangeError('a checkpoint is stored only with its time-stamp token');
      const rec = JSON.parse(JSON.stringify(cp)) as StoredCheckpoint;
      return writer.durable(() => {
        if (cps.doesExist(rec.treeSize)) return false;
        void cps.put(rec.treeSize, rec);
        return true;
      });
    },
    async get(treeSize) {
      if (!isSize(treeSize)) return undefined;
      return writer.read(() => cps.get(treeSize));
    },
    async latest() {
      return writer.read(() => {
        for (const { value } of cps.getRange({ reverse: true, limit: 1 })) return value;
        return undefined;
      });
    },
    async firstAbove(leafIndex) {
      if (!isSize(leafIndex)) return undefined;
      return writer.read(() => {
        for (const { value } of cps.getRange({ start: leafIndex + 1, limit: 1 })) return value;
        return undefined;
      });
    },
    async list(limit, below) {
      return writer.read(() => {
        const items: StoredCheckpoint[] = [];
        const range = cps.getRange({ reverse: true, limit: limit + 1, ...(below !== undefined ? { start: below - 1 } : {}) });
        for (const { value } of range) items.push(value);
        const more = items.length > limit;
        if (more) items.length = limit;
        return { items, ...(more ? { next: String(items[items.length - 1].treeSize) } : {}) };
      });
    },
    async count() {
      return writer.read(() => cps.getCount());
    },
  };
}
