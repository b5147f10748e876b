// A look at data.mdb before LMDB maps it. LMDB trusts its file: a file that is not an LMDB
// environment, or one cut short, crashes the process (SIGSEGV / SIGBUS, measured with
// lmdb-js 3.5.6) instead of returning an error. These checks turn the common cases — wrong
// file, truncated copy, half-restored backup — into STORE_UNAVAILABLE. They cannot catch
// damage inside the tree (LMDB pages have no checksums): backups are the remedy for that.
import { closeSync, openSync, readSync, statSync } from 'node:fs';

const MAGIC = 0xbeefc0de;
const DATA_VERSION = 2;
// Offsets in lmdb-js 3.5's 64-bit meta page (mdb.c: 24-byte page header, then MDB_meta).
const META = 24;
const OFF_MAGIC = META + 0;
const OFF_VERSION = META + 4;
const OFF_PSIZE = META + 24; // mm_dbs[FREE_DBI].md_pad
const OFF_LAST_PG = META + 120;
const OFF_TXNID = META + 128;
const HEAD_BYTES = OFF_TXNID + 8;

/** undefined if `file` may be opened (including absent or empty: LMDB creates it), else why not. */
export function environmentFileProblem(file: string): string | undefined {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    return undefined; // absent: a new environment
  }
  if (size === 0) return undefined; // created but never initialised: LMDB initialises it
  const fd = openSync(file, 'r');
  try {
    const page0 = readAt(fd, 0, HEAD_BYTES);
    if (page0 === undefined || page0.readUInt32LE(OFF_MAGIC) !== MAGIC) return 'data.mdb is not an LMDB environment (bad magic)';
    if (page0.readUInt32LE(OFF_VERSION) !== DATA_VERSION) return `data.mdb has LMDB format version ${page0.readUInt32LE(OFF_VERSION)}, expected ${DATA_VERSION}`;
    const psize = page0.readUInt32LE(OFF_PSIZE);
    if (psize < 512 || psize > 65536 || (psize & (psize - 1)) !== 0) return `data.mdb names an impossible page size ${psize}`;
    const page1 = readAt(fd, psize, HEAD_BYTES);
    if (page1 === undefined || page1.readUInt32LE(OFF_MAGIC) !== MAGIC) return 'data.mdb is truncated or damaged (second meta page missing)';
    // The older of the two meta pages describes a tree that must lie entirely in the file.
    const older = page0.readBigUInt64LE(OFF_TXNID) <= page1.readBigUInt64LE(OFF_TXNID) ? page0 : page1;
    const needed = (older.readBigUInt64LE(OFF_LAST_PG) + 1n) * BigInt(psize);
    if (BigInt(size) < needed) return `data.mdb is truncated (${size} bytes, needs at least ${needed})`;
    return undefined;
  } finally {
    closeSync(fd);
  }
}

function readAt(fd: number, position: number, length: number): Buffer | undefined {
  const buf = Buffer.alloc(length);
  const n = readSync(fd, buf, 0, length, position);
  return n === length ? buf : undefined;
}
