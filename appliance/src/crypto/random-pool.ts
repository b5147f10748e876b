// CSPRNG octets from a pooled block of the OS-backed generator (as store/ids.ts does for ULIDs):
// the same randomness, one randomFillSync per 4 KB instead of one call per value. TSA serials
// used it first (3 % of a token's main-thread time); patient-id IVs (one per evidence push) too.
// Each octet is handed out once; the block is refilled only when used up.
import { randomFillSync } from 'node:crypto';

const pool = Buffer.alloc(4096);
let poolAt = pool.length;

/** `n` CSPRNG octets (a copy: the pool is overwritten later). */
export function pooledRandomOctets(n: number): Buffer {
  if (n > pool.length) throw new RangeError(`at most ${pool.length} pooled octets`);
  if (poolAt + n > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const out = Buffer.from(pool.subarray(poolAt, poolAt + n));
  poolAt += n;
  return out;
}
