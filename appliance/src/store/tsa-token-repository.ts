// Issued time-stamp tokens on LMDB: db 'tsa-tokens' keyed by the serial (lower-case hex) →
// TsaTokenRecord (JSON). The insert checks and writes inside one durable transaction, so a serial
// is handed out at most once, across restarts and crashes (an fsynced record is never lost).
// No audit record per token: the token table is itself the record (4 000 tokens/s would flood
// the hash-chained audit log); clock state changes that stop the TSA are audited (clock.state).
import type { Database } from 'lmdb';
import type { TsaTokenRecord, TsaTokenRepository } from '../tsa/types.js';
import type { Writer } from './durable.js';

const SERIAL_RE = /^[0-9a-f]{1,80}$/;

export function createTsaTokenRepository(db: Database<any, any>, writer: Writer): TsaTokenRepository {
  const tokens = db as Database<TsaTokenRecord, string>;
  return {
    // Not async: the durable write's own promise is the answer (one promise less per token).
    insert(record) {
      if (!SERIAL_RE.test(record.serial)) return Promise.reject(new RangeError(`bad token serial ${record.serial}`));
      return writer.durable(() => {
        if (tokens.doesExist(record.serial)) return false;
        void tokens.put(record.serial, record);
        return true;
      });
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
