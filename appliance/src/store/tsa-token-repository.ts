// Issued time-stamp tokens on LMDB: db 'tsa-tokens' keyed by the serial (lower-case hex) →
// TsaTokenRecord (JSON). An insert is a conditional put (MDB_NOOVERWRITE) made durable, so a
// serial is handed out at most once, across restarts and crashes (an fsynced record is never
// lost). No audit record per token: the token table is itself the record (4 000 tokens/s would
// flood the hash-chained audit log); clock state changes that stop the TSA are audited.
//
// Group commit: while one group of inserts is being committed and fsynced, new inserts wait and
// then go together as the next group (one transaction, one fsync). A commit costs the same for
// one token or fifty — the leaf-to-root page path, the free list and an fdatasync — and per-turn
// commits were a quarter of a token's pool-thread time (bench/tsa.ts). An insert arriving when
// nothing is in flight is written at once, so a lone request waits for no one.
import type { Database } from 'lmdb';
import type { TsaTokenRecord, TsaTokenRepository } from '../tsa/types.js';
import type { Writer } from './durable.js';

const SERIAL_RE = /^[0-9a-f]{1,80}$/;
const NO_OVERWRITE = { noOverwrite: true } as const;

interface Pending {
  record: TsaTokenRecord;
  resolve: (stored: boolean) => void;
  reject: (e: unknown) => void;
}

export function createTsaTokenRepository(db: Database<any, any>, writer: Writer): TsaTokenRepository {
  const tokens = db as Database<TsaTokenRecord, string>;
  let waiting: Pending[] = [];
  let inFlight = false;

  const commitGroup = (): void => {
    const group = waiting;
    waiting = [];
    inFlight = true;
    // The puts of one synchronous loop share one lmdb-js transaction; each answers false when
    // its serial is taken (the condition is checked by the write thread, inside the transaction).
    writer
      .durableWrite(() => Promise.all(group.map((p) => tokens.put(p.record.serial, p.record, NO_OVERWRITE as never))))
      .then(
        (stored) => group.forEach((p, i) => p.resolve(stored[i])),
        (e) => group.forEach((p) => p.reject(e)),
      )
      .finally(() => {
        inFlight = false;
        if (waiting.length > 0) commitGroup();
      });
  };

  return {
    insert(record) {
      if (!SERIAL_RE.test(record.serial)) return Promise.reject(new RangeError(`bad token serial ${record.serial}`));
      return new Promise<boolean>((resolve, reject) => {
        waiting.push({ record, resolve, reject });
        if (!inFlight) commitGroup();
      });
    },
    async discard(serial) {
      if (!SERIAL_RE.test(serial)) throw new RangeError(`bad token serial ${serial}`);
      await writer.durableWrite(() => tokens.remove(serial));
    },
    async get(serial) {
      const s = serial.toLowerCase();
      if (!SERIAL_RE.test(s)) return undefined;
      return writer.read(() => tokens.get(s));
    },
    async has(serial) {
      return writer.read(() => tokens.doesExist(serial));
    },
    async count() {
      return writer.read(() => tokens.getCount());
    },
  };
}
