// The evidence Merkle log on LMDB (issue 6 item 3; hashing in evidence/merkle.ts, RFC 9162 §2.1,
// SM3). db 'merkle-nodes':
//   [level, index] → hex of node (level, index), the root of the perfect subtree over leaves
//                    [index·2^level, (index+1)·2^level) — level 0 are the leaf hashes;
//   'tree'         → { size } — the number of leaves.
// An append writes the leaf, the perfect subtrees it completes (the carry of size + 1: one write
// on average, log2 n at most) and the new size, all in ONE transaction: after a crash the tree is
// exactly as of some committed append — never a leaf without its size or a size without its
// leaf. Nodes are immutable once written, so reads need no snapshot beyond "size first": any
// root or proof for a size ≤ that size touches only nodes that will never change.
// root(size), inclusion(index, size) and consistency(m, n) read O(log n) nodes.
import type { Database } from 'lmdb';
import { Codes, YiqianError, fail } from '../errors.js';
import {
  MerkleCodes,
  consistencyProof,
  inclusionProof,
  merkleHasher,
  rootHash,
  type MerkleHasher,
  type NodeSource,
} from '../evidence/merkle.js';
import type { Writer } from './durable.js';

const TREE_KEY = 'tree';
const HEX = /^[0-9a-f]{64}$/;

interface TreeRecord {
  size: number;
}

export interface MerkleLeaf {
  /** Position of the leaf in the log (0-based). */
  index: number;
  /** HASH(0x00 ‖ leaf data), SM3. */
  leafHash: Buffer;
}

export interface MerkleRepository {
  /** The tree's hashing: SM3 (RFC 9162 §2.1 structure). */
  readonly hasher: MerkleHasher;
  /** Appends one leaf (its data is hashed here) durably; resolves with its index. */
  append(leafData: Buffer): Promise<MerkleLeaf>;
  /** Appends several leaves in one durable transaction, in order. */
  appendMany(leaves: readonly Buffer[]): Promise<MerkleLeaf[]>;
  /** Number of leaves. */
  size(): Promise<number>;
  /** HASH(0x00 ‖ leaf) of leaf `index`, or undefined beyond the tree. */
  leafHash(index: number): Promise<Buffer | undefined>;
  /** MTH of the first `size` leaves (default: the whole tree). */
  root(size?: number): Promise<Buffer>;
  /** PATH(index, D[size]) (RFC 9162 §2.1.3.1); size defaults to the whole tree. */
  inclusion(index: number, size?: number): Promise<Buffer[]>;
  /** PROOF(m, D[n]) (RFC 9162 §2.1.4.1); n defaults to the whole tree. */
  consistency(m: number, n?: number): Promise<Buffer[]>;
}

export class LmdbMerkleRepository implements MerkleRepository {
  readonly hasher = merkleHasher('sm3');

  constructor(
    private readonly db: Database<any, any>,
    private readonly writer: Writer,
  ) {}

  async append(leafData: Buffer): Promise<MerkleLeaf> {
    const data = leafBytes(leafData);
    return this.writer.durable(() => this.appendInTransaction(data));
  }

  async appendMany(leaves: readonly Buffer[]): Promise<MerkleLeaf[]> {
    if (!Array.isArray(leaves)) fail(Codes.BAD_REQUEST, 400, '叶子必须是数组', 'leaves must be an array');
    const data = leaves.map(leafBytes);
    return this.writer.durable(() => this.appendManyInTransaction(data));
  }

  /**
   * Appends inside the caller's write transaction, so that an evidence record and its leaf
   * commit (or roll back) together: call only from within the callback of Writer.durable /
   * Writer.committed, e.g. `writer.durable(() => { records.put(id, rec); return merkle.appendInTransaction(bytes); })`.
   * Synchronous: it reads and writes in that transaction; a throw rolls back the whole callback.
   */
  appendInTransaction(leafData: Uint8Array): MerkleLeaf {
    return this.appendManyInTransaction([leafData])[0];
  }

  /**
   * appendInTransaction for several leaves, in order: the tree size is read and written once, and
   * a left sibling made by this call is taken from memory rather than read back.
   */
  appendManyInTransaction(leaves: readonly Uint8Array[]): MerkleLeaf[] {
    const start = this.storedSize();
    const made = new Map<string, Buffer>();
    const put = (level: number, index: number, hash: Buffer): void => {
      void this.db.put([level, index], hash.toString('hex'));
      made.set(`${level}/${index}`, hash);
    };
    const out = leaves.map((data, k) => {
      const index = start + k;
      const leafHash = this.hasher.leaf(data);
      put(0, index, leafHash);
      // The perfect subtrees this leaf completes: while the position is a right child, its
      // parent is now complete (the binary carry of index + 1).
      let level = 0;
      let i = index;
      let hash = leafHash;
      while (i % 2 === 1) {
        hash = this.hasher.node(made.get(`${level}/${i - 1}`) ?? this.node(level, i - 1), hash);
        level++;
        i = (i - 1) / 2;
        put(level, i, hash);
      }
      return { index, leafHash };
    });
    if (out.length > 0) void this.db.put(TREE_KEY, { size: start + out.length } satisfies TreeRecord);
    return out;
  }

  async size(): Promise<number> {
    return this.writer.read(() => this.storedSize());
  }

  async leafHash(index: number): Promise<Buffer | undefined> {
    if (!Number.isSafeInteger(index) || index < 0) return undefined;
    return this.writer.read(() => (index < this.storedSize() ? this.node(0, index) : undefined));
  }

  async root(size?: number): Promise<Buffer> {
    return this.writer.read(() => rootHash(this.hasher, this.source(), this.sizeWithin(size)));
  }

  async inclusion(index: number, size?: number): Promise<Buffer[]> {
    return this.writer.read(() => inclusionProof(this.hasher, this.source(), index, this.sizeWithin(size)));
  }

  async consistency(m: number, n?: number): Promise<Buffer[]> {
    return this.writer.read(() => consistencyProof(this.hasher, this.source(), m, this.sizeWithin(n)));
  }

  private source(): NodeSource {
    return { perfect: (level, index) => this.node(level, index) };
  }

  private storedSize(): number {
    const rec = this.db.get(TREE_KEY) as TreeRecord | undefined;
    if (rec === undefined) return 0;
    if (typeof rec !== 'object' || rec === null || !Number.isSafeInteger(rec.size) || rec.size < 0) {
      throw new YiqianError(Codes.INTEGRITY_CHECK_FAILED, 500, { zh: '默克尔树大小记录损坏', en: 'the Merkle tree size record is malformed' });
    }
    return rec.size;
  }

  /** The requested size, default the whole tree; MERKLE_SIZE_INVALID beyond it. */
  private sizeWithin(size: number | undefined): number {
    const current = this.storedSize();
    if (size === undefined) return current;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0 || size > current) {
      throw new YiqianError(
        MerkleCodes.MERKLE_SIZE_INVALID,
        400,
        { zh: `树的大小必须是 0 到 ${current} 之间的整数`, en: `tree size must be an integer from 0 to ${current}` },
        { treeSize: String(size).slice(0, 40), logSize: current },
      );
    }
    return size;
  }

  private node(level: number, index: number): Buffer {
    const v = this.db.get([level, index]) as unknown;
    if (typeof v !== 'string' || !HEX.test(v)) {
      throw new YiqianError(MerkleCodes.MERKLE_NODE_MISSING, 500, { zh: '默克尔树节点缺失或损坏', en: `Merkle tree node (${level}, ${index}) is missing or malformed` }, { level, index });
    }
    return Buffer.from(v, 'hex');
  }
}

function leafBytes(leaf: unknown): Buffer {
  if (!(leaf instanceof Uint8Array)) fail(Codes.BAD_REQUEST, 400, '叶子数据必须是字节串', 'leaf data must be bytes');
  return Buffer.from(leaf);
}
