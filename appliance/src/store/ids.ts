// Record ids: ULIDs from one monotonic factory per process, so ids made in the same
// millisecond still sort in creation order and LMDB inserts land at the right end of the
// B-tree (ARCHITECTURE.md §3 "Repositories").
import { randomFillSync } from 'node:crypto';
import { monotonicFactory } from 'ulid';

// ulid's default PRNG asks the OS-backed CSPRNG once per character (16 calls per id); this one
// draws from a pooled block of the same CSPRNG: the same randomness, one fill per 1,024 numbers.
const pool = new Uint32Array(1024);
let at = pool.length;
function pooledRandom(): number {
  if (at === pool.length) {
    randomFillSync(pool);
    at = 0;
  }
  return pool[at++] / 0x1_0000_0000; // [0, 1), as ulid's PRNG contract wants
}

const next = monotonicFactory(pooledRandom);

/** A new time-ordered id: 26 characters of Crockford base32, e.g. "01J9Z3V4Q7K8M2N5P6R7S8T9VW". */
export function newId(): string {
  return next();
}

/** Now as ISO 8601 UTC with milliseconds, the one time format the store keeps. */
export function nowIso(): string {
  return new Date().toISOString();
}
