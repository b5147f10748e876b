// The Merkle hash tree of the evidence log (issue 6 item 3), exactly as RFC 9162 §2.1 defines
// it, with a pluggable hash: SM3 for the appliance's tree (GB/T 32905), SHA-256 for the RFC's
// own examples and the RFC 6962 test vectors of Certificate Transparency.
//
// Pure: no store, no keys, no appliance state — the offline verifier (ops/verify-evidence,
// issue 6 item 4) imports this file as it is. Only node:crypto and the error type.
//
// Trees are described by their perfect subtrees: node (level, index) is MTH of the leaves
// [index·2^level, (index+1)·2^level). Those nodes never change once the tree has grown past
// them (append-only), so a store can keep exactly them and answer any root or proof from
// O(log n) of them (store/merkle-repository.ts).
//
// Sizes and indices are JS numbers and all arithmetic is / and %, never the 32-bit bitwise
// operators: a log of 2,000 records/s passes 2^32 leaves in 68 years, 2^53 never.
import { createHash } from 'node:crypto';
import { YiqianError } from '../errors.js';

/** Stable error codes of the Merkle log (bad arguments; a bad proof is `false`, not an error). */
export const MerkleCodes = {
  /** Leaf index ≥ tree size (400). */
  MERKLE_INDEX_OUT_OF_RANGE: 'MERKLE_INDEX_OUT_OF_RANGE',
  /** A tree size or index that is not a non-negative safe integer, or is beyond the tree (400). */
  MERKLE_SIZE_INVALID: 'MERKLE_SIZE_INVALID',
  /** Consistency asked from a larger tree to a smaller one (400). */
  MERKLE_RANGE_INVALID: 'MERKLE_RANGE_INVALID',
  /** A stored node the tree structure says must exist is missing or malformed (500). */
  MERKLE_NODE_MISSING: 'MERKLE_NODE_MISSING',
} as const;

export type MerkleHashName = 'sm3' | 'sha256';

/** RFC 9162 §2.1.1 hashing with domain separation of leaves and interior nodes. */
export interface MerkleHasher {
  readonly name: MerkleHashName;
  /** Output length in bytes (32 for both). */
  readonly size: number;
  /** MTH({}) = HASH() — the root of the empty tree. */
  empty(): Buffer;
  /** MTH({d}) = HASH(0x00 ‖ d). */
  leaf(data: Uint8Array): Buffer;
  /** HASH(0x01 ‖ left ‖ right). */
  node(left: Uint8Array, right: Uint8Array): Buffer;
}

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

function makeHasher(name: MerkleHashName): MerkleHasher {
  const size = 32;
  const empty = createHash(name).digest();
  return {
    name,
    size,
    empty: () => Buffer.from(empty),
    leaf: (data) => createHash(name).update(LEAF_PREFIX).update(data).digest(),
    node: (left, right) => createHash(name).update(NODE_PREFIX).update(left).update(right).digest(),
  };
}

const HASHERS: Record<MerkleHashName, MerkleHasher> = { sm3: makeHasher('sm3'), sha256: makeHasher('sha256') };

/** The hasher for `name`; the appliance's tree uses SM3 (the default). */
export function merkleHasher(name: MerkleHashName = 'sm3'): MerkleHasher {
  const h = Object.hasOwn(HASHERS, name) ? HASHERS[name] : undefined;
  if (h === undefined) throw new YiqianError('UNSUPPORTED_ALGORITHM', 400, { zh: `默克尔树不支持杂凑算法 ${String(name)}`, en: `unsupported Merkle tree hash ${String(name)}` });
  return h;
}

/** Hashes of the perfect subtrees of one tree, read from wherever they are kept. */
export interface NodeSource {
  /** MTH(D[index·2^level : (index+1)·2^level]); only asked for nodes inside the tree. */
  perfect(level: number, index: number): Buffer;
}

// ---------------------------------------------------------------------------------------------
// Arguments

function badSize(what: string, value: unknown): never {
  throw new YiqianError(MerkleCodes.MERKLE_SIZE_INVALID, 400, { zh: `${what} 必须是非负整数`, en: `${what} must be a non-negative integer` }, { [what]: String(value).slice(0, 40) });
}

function checkCount(what: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) badSize(what, value);
  return value;
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** The largest power of two strictly less than n (n ≥ 2): RFC 9162 §2.1.1's k. */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPowerOfTwo(n: number): boolean {
  if (n < 1) return false;
  while (n % 2 === 0) n /= 2;
  return n === 1;
}

function log2(n: number): number {
  let l = 0;
  while (n > 1) {
    n /= 2;
    l++;
  }
  return l;
}

// ---------------------------------------------------------------------------------------------
// Generation (RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1) over a NodeSource

/**
 * MTH(D[start:end]) for a range that is a node of the tree: one read for a perfect subtree,
 * else split at k as §2.1.1 does (the left part is then perfect): O(log n) reads.
 */
export function rangeHash(h: MerkleHasher, src: NodeSource, start: number, end: number): Buffer {
  const len = end - start;
  if (len <= 0) return h.empty();
  if (isPowerOfTwo(len) && start % len === 0) return nodeOf(h, src, log2(len), start / len);
  const k = splitPoint(len);
  return h.node(rangeHash(h, src, start, start + k), rangeHash(h, src, start + k, end));
}

function nodeOf(h: MerkleHasher, src: NodeSource, level: number, index: number): Buffer {
  const v = src.perfect(level, index);
  if (!Buffer.isBuffer(v) || v.length !== h.size) {
    throw new YiqianError(MerkleCodes.MERKLE_NODE_MISSING, 500, { zh: '默克尔树节点缺失或损坏', en: `Merkle tree node (${level}, ${index}) is missing or malformed` }, { level, index });
  }
  return v;
}

/** MTH(D[0:size]) — the root of the tree of the first `size` leaves. */
export function rootHash(h: MerkleHasher, src: NodeSource, size: number): Buffer {
  return rangeHash(h, src, 0, checkCount('treeSize', size));
}

/**
 * The inclusion proof PATH(index, D[size]) of RFC 9162 §2.1.3.1, leaf end first. Throws
 * MERKLE_INDEX_OUT_OF_RANGE when index ≥ size.
 */
export function inclusionProof(h: MerkleHasher, src: NodeSource, index: number, size: number): Buffer[] {
  checkCount('leafIndex', index);
  checkCount('treeSize', size);
  if (index >= size) {
    throw new YiqianError(MerkleCodes.MERKLE_INDEX_OUT_OF_RANGE, 400, { zh: '叶子序号超出树的大小', en: `leaf index ${index} is not below tree size ${size}` }, { leafIndex: index, treeSize: size });
  }
  // Walk down from the root; collect siblings root end first, then reverse.
  const out: Buffer[] = [];
  let start = 0;
  let n = size;
  let m = index;
  while (n > 1) {
    const k = splitPoint(n);
    if (m < k) {
      out.push(rangeHash(h, src, start + k, start + n)); // MTH(D[k:n])
      n = k;
    } else {
      out.push(rangeHash(h, src, start, start + k)); // MTH(D[0:k])
      start += k;
      m -= k;
      n -= k;
    }
  }
  return out.reverse();
}

/**
 * The consistency proof PROOF(m, D[n]) = SUBPROOF(m, D[n], true) of RFC 9162 §2.1.4.1.
 * Empty for m = 0 and m = n (nothing to prove); MERKLE_RANGE_INVALID for m > n.
 */
export function consistencyProof(h: MerkleHasher, src: NodeSource, m: number, n: number): Buffer[] {
  checkCount('firstSize', m);
  checkCount('secondSize', n);
  if (m > n) {
    throw new YiqianError(MerkleCodes.MERKLE_RANGE_INVALID, 400, { zh: '一致性证明的前一个树不能大于后一个树', en: `consistency from size ${m} to the smaller size ${n}` }, { firstSize: m, secondSize: n });
  }
  if (m === 0 || m === n) return [];
  const out: Buffer[] = [];
  let start = 0;
  let b = true;
  let mm = m;
  let nn = n;
  while (mm !== nn) {
    const k = splitPoint(nn);
    if (mm <= k) {
      out.push(rangeHash(h, src, start + k, start + nn)); // MTH(D[k:n])
      nn = k;
    } else {
      out.push(rangeHash(h, src, start, start + k)); // MTH(D[0:k])
      start += k;
      mm -= k;
      nn -= k;
      b = false;
    }
  }
  // SUBPROOF(m, D[m], false) = {MTH(D[m])}; with b still true it is {}.
  if (!b) out.push(rangeHash(h, src, start, start + nn));
  return out.reverse();
}

// ---------------------------------------------------------------------------------------------
// Verification (RFC 9162 §2.1.3.2, §2.1.4.2). Never throws: anything malformed is `false`.

function isHash(h: MerkleHasher, v: unknown): v is Uint8Array {
  return v instanceof Uint8Array && v.length === h.size;
}

function isPath(h: MerkleHasher, proof: unknown): proof is Uint8Array[] {
  return Array.isArray(proof) && proof.length <= 64 && proof.every((p) => isHash(h, p));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/**
 * RFC 9162 §2.1.3.2: whether `proof` proves that `leafHash` (already HASH(0x00 ‖ leaf)) is the
 * leaf at `index` of the tree of `size` leaves whose root is `root`.
 */
export function verifyInclusion(h: MerkleHasher, leafHash: Uint8Array, index: number, size: number, proof: readonly Uint8Array[], root: Uint8Array): boolean {
  try {
    if (!isHash(h, root)) return false;
    const r = rootFromInclusion(h, leafHash, index, size, proof);
    // 5. sn = 0 (checked in rootFromInclusion) and r = root_hash.
    return r !== undefined && sameBytes(r, root);
  } catch {
    return false;
  }
}

/**
 * RFC 9162 §2.1.4.2: whether `proof` proves that the tree of `firstSize` leaves with root
 * `firstRoot` is a prefix of the tree of `secondSize` leaves with root `secondRoot`.
 * Edge cases (outside §2.1.4.2's 0 < first < second): equal sizes need an empty proof and equal
 * roots; first = 0 needs an empty proof and firstRoot = MTH({}) = HASH().
 */
export function verifyConsistency(
  h: MerkleHasher,
  firstSize: number,
  secondSize: number,
  firstRoot: Uint8Array,
  secondRoot: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  try {
    if (!isCount(firstSize) || !isCount(secondSize) || !isHash(h, firstRoot) || !isHash(h, secondRoot) || !isPath(h, proof)) return false;
    if (firstSize > secondSize) return false;
    if (firstSize === 0) return proof.length === 0 && sameBytes(firstRoot, h.empty());
    if (firstSize === secondSize) return proof.length === 0 && sameBytes(firstRoot, secondRoot);
    // 1. An empty consistency_path fails.
    if (proof.length === 0) return false;
    // 2. If first is an exact power of 2, prepend first_hash.
    const path: Uint8Array[] = isPowerOfTwo(firstSize) ? [firstRoot, ...proof] : [...proof];
    // 3.
    let fn = firstSize - 1;
    let sn = secondSize - 1;
    // 4.
    while (fn % 2 === 1) {
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    // 5.
    let fr: Uint8Array = path[0];
    let sr: Uint8Array = path[0];
    // 6.
    for (const c of path.slice(1)) {
      if (sn === 0) return false;
      if (fn % 2 === 1 || fn === sn) {
        fr = h.node(c, fr);
        sr = h.node(c, sr);
        // If LSB(fn) is not set, right-shift fn and sn until LSB(fn) is set or fn is 0.
        while (fn % 2 === 0 && fn !== 0) {
          fn /= 2;
          sn = Math.floor(sn / 2);
        }
      } else {
        sr = h.node(sr, c);
      }
      fn = Math.floor(fn / 2);
      sn = Math.floor(sn / 2);
    }
    // 7.
    return sameBytes(fr, firstRoot) && sameBytes(sr, secondRoot) && sn === 0;
  } catch {
    return false;
  }
}

/**
 * The root that an inclusion proof implies — steps 1–4 of RFC 9162 §2.1.3.2 and the sn = 0 test
 * of step 5 — or undefined when the proof cannot be one for (index, size). For reports: "this
 * leaf, this path → this root".
 */
export function rootFromInclusion(h: MerkleHasher, leafHash: Uint8Array, index: number, size: number, proof: readonly Uint8Array[]): Buffer | undefined {
  if (!isCount(index) || !isCount(size) || !isHash(h, leafHash) || !isPath(h, proof)) return undefined;
  // 1. leaf_index ≥ tree_size fails.
  if (index >= size) return undefined;
  // 2.–3.
  let fn = index;
  let sn = size - 1;
  let r: Buffer = Buffer.from(leafHash);
  // 4.
  for (const p of proof) {
    if (sn === 0) return undefined;
    if (fn % 2 === 1 || fn === sn) {
      r = h.node(p, r);
      // If LSB(fn) is not set, right-shift fn and sn until LSB(fn) is set or fn is 0.
      while (fn % 2 === 0 && fn !== 0) {
        fn /= 2;
        sn = Math.floor(sn / 2);
      }
    } else {
      r = h.node(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  // 5. (first half) sn must be 0.
  return sn === 0 ? r : undefined;
}

// ---------------------------------------------------------------------------------------------
// An in-memory tree: every perfect subtree kept, appends O(log n). For tools and tests, and the
// reference the LMDB repository is compared with.

export class MemoryTree implements NodeSource {
  /** levels[l][i] = node (l, i). */
  private readonly levels: Buffer[][] = [[]];

  constructor(readonly hasher: MerkleHasher = merkleHasher('sm3')) {}

  get size(): number {
    return this.levels[0].length;
  }

  /** Appends HASH(0x00 ‖ data); returns the leaf index. */
  append(data: Uint8Array): number {
    return this.appendLeafHash(this.hasher.leaf(data));
  }

  appendLeafHash(leafHash: Buffer): number {
    const index = this.levels[0].length;
    this.levels[0].push(leafHash);
    // Every completed pair completes its parent (the binary carry of index + 1).
    let level = 0;
    let i = index;
    let hash = leafHash;
    while (i % 2 === 1) {
      hash = this.hasher.node(this.levels[level][i - 1], hash);
      level++;
      i = (i - 1) / 2;
      (this.levels[level] ??= []).push(hash);
    }
    return index;
  }

  perfect(level: number, index: number): Buffer {
    return this.levels[level]?.[index] as Buffer;
  }

  root(size = this.size): Buffer {
    this.within(size);
    return rootHash(this.hasher, this, size);
  }

  inclusion(index: number, size = this.size): Buffer[] {
    this.within(size);
    return inclusionProof(this.hasher, this, index, size);
  }

  consistency(m: number, n = this.size): Buffer[] {
    this.within(n);
    return consistencyProof(this.hasher, this, m, n);
  }

  private within(size: number): void {
    if (checkCount('treeSize', size) > this.size) {
      throw new YiqianError(MerkleCodes.MERKLE_SIZE_INVALID, 400, { zh: '树的大小超出当前日志', en: `tree size ${size} is beyond the log (${this.size} leaves)` }, { treeSize: size, logSize: this.size });
    }
  }
}
