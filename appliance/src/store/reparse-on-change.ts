// Reads of JSON values that are parsed again only when their stored bytes changed. Every evidence
// push reads the same few records — the signer certificate's record (its revocation status) and
// its held key (the signer's identity) — and decoding and parsing them cost more than reading
// their bytes. The bytes are read from the current snapshot on every call, so an answer is never
// older than the store (a revocation by another process is seen at once); only the parse is
// skipped when they equal the last ones read for that key. Callers share the value: it is frozen.
import type { Database } from 'lmdb';

/** Entries kept; the cache is emptied when full (the keys are those of a hospital's few signers). */
const DEFAULT_MAX = 1024;

function deepFreeze<T>(v: T): T {
  if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

/**
 * A reader for `db` (encoding 'json', string keys): what `db.get(key)` answers, frozen. Call it
 * where `db.get` would be called (inside the same read or write transaction, if any).
 */
export function reparseOnChange<V>(db: Database<any, any>, max = DEFAULT_MAX): (key: string) => V | undefined {
  const last = new Map<string, { bytes: Buffer; value: V }>();
  return (key) => {
    const bytes = db.getBinary(key) as Buffer | undefined;
    if (bytes === undefined) {
      last.delete(key);
      return undefined;
    }
    const hit = last.get(key);
    if (hit && hit.bytes.equals(bytes)) return hit.value;
    const value = deepFreeze(JSON.parse(bytes.toString('utf8')) as V);
    if (last.size >= max) last.clear();
    last.set(key, { bytes, value });
    return value;
  };
}
