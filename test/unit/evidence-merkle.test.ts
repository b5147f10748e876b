// The Merkle tree of the evidence log (evidence/merkle.ts) against:
//  - an independent, naive implementation written here straight from RFC 9162 §2.1.1 (MTH),
//    §2.1.3.1 (PATH) and §2.1.4.1 (PROOF / SUBPROOF), recursing on lists of leaf inputs;
//  - the RFC 6962 test vectors of Certificate Transparency as published in
//    github.com/transparency-dev/merkle: testonly/constants.go (LeafInputs, NodeHashes,
//    RootHashes) and proof/verify_test.go (inclusionProofs, consistencyProofs);
//  - tampering: every proof element flipped, elements added / removed, wrong indices and sizes.
import t from 'tap';
import { createHash } from 'node:crypto';
import {
  MemoryTree,
  MerkleCodes,
  consistencyProof,
  inclusionProof,
  merkleHasher,
  rootFromInclusion,
  verifyConsistency,
  verifyInclusion,
  type MerkleHashName,
  type NodeSource,
} from '../../appliance/src/evidence/merkle.js';
import { isYiqianError } from '../../appliance/src/errors.js';

// ---- The naive reference (RFC 9162 §2.1), on lists of leaf inputs --------------------------

function naive(alg: MerkleHashName) {
  const HASH = (...parts: Buffer[]) => {
    const h = createHash(alg);
    for (const p of parts) h.update(p);
    return h.digest();
  };
  // k: the largest power of two smaller than n.
  const kOf = (n: number) => {
    let k = 1;
    while (k * 2 < n) k *= 2;
    return k;
  };
  // Memoised only to keep 2 × 17,000 proofs fast: every D here is a run of distinct inputs, so
  // (first input, length) names it.
  const memo = new Map<string, Buffer>();
  const MTH = (D: Buffer[]): Buffer => {
    const n = D.length;
    if (n === 0) return HASH();
    if (n === 1) return HASH(Buffer.from([0]), D[0]);
    const key = `${D[0].toString('hex')}/${n}`;
    let v = memo.get(key);
    if (v === undefined) {
      const k = kOf(n);
      v = HASH(Buffer.from([1]), MTH(D.slice(0, k)), MTH(D.slice(k)));
      memo.set(key, v);
    }
    return v;
  };
  const PATH = (m: number, D: Buffer[]): Buffer[] => {
    const n = D.length;
    if (n === 1) return [];
    const k = kOf(n);
    return m < k ? [...PATH(m, D.slice(0, k)), MTH(D.slice(k))] : [...PATH(m - k, D.slice(k)), MTH(D.slice(0, k))];
  };
  const SUBPROOF = (m: number, D: Buffer[], b: boolean): Buffer[] => {
    const n = D.length;
    if (m === n) return b ? [] : [MTH(D)];
    const k = kOf(n);
    return m <= k ? [...SUBPROOF(m, D.slice(0, k), b), MTH(D.slice(k))] : [...SUBPROOF(m - k, D.slice(k), false), MTH(D.slice(0, k))];
  };
  const PROOF = (m: number, D: Buffer[]) => SUBPROOF(m, D, true);
  return { MTH, PATH, PROOF, leafHash: (d: Buffer) => HASH(Buffer.from([0]), d) };
}

const inputs = (n: number) => Array.from({ length: n }, (_, i) => Buffer.from(`leaf ${i} ${'x'.repeat(i % 7)}`));

function treeOf(alg: MerkleHashName, D: Buffer[]): MemoryTree {
  const tree = new MemoryTree(merkleHasher(alg));
  for (const d of D) tree.append(d);
  return tree;
}

const hex = (bs: Buffer[]) => bs.map((b) => b.toString('hex'));

function flipped(proof: Buffer[], i: number, bit: number): Buffer[] {
  return proof.map((p, j) => (j === i ? Buffer.from(p.map((x, k) => (k === 0 ? x ^ (1 << bit) : x))) : p));
}

// ---- RFC 6962 vectors ---------------------------------------------------------------------

const hd = (s: string) => Buffer.from(s, 'hex');
const CT_LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(hd);
// RootHashes()[1..8] (index = tree size).
const CT_ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
// NodeHashes(): [level][index].
const CT_NODES = [
  [
    '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
    '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
    '0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7',
    '07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7',
    'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    '4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658',
    'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
    '46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1',
  ],
  [
    'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
    'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
  ],
  ['d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'],
  ['5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328'],
];
// proof/verify_test.go: leaf is 1-based there; here 0-based.
const CT_INCLUSION: { index: number; size: number; proof: string[] }[] = [
  { index: 0, size: 8, proof: ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'] },
  { index: 5, size: 8, proof: ['bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7'] },
  { index: 2, size: 3, proof: ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125'] },
  { index: 1, size: 5, proof: ['6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b'] },
];
const CT_CONSISTENCY: { m: number; n: number; proof: string[] }[] = [
  { m: 1, n: 1, proof: [] },
  { m: 1, n: 8, proof: ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'] },
  { m: 6, n: 8, proof: ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7'] },
  { m: 2, n: 5, proof: ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b'] },
  { m: 6, n: 7, proof: ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7'] },
];

t.test('RFC 6962 vectors (transparency-dev/merkle): node hashes, roots, inclusion and consistency proofs', async (t) => {
  const h = merkleHasher('sha256');
  const tree = treeOf('sha256', CT_LEAVES);
  CT_NODES.forEach((row, level) => row.forEach((v, i) => t.equal(tree.perfect(level, i).toString('hex'), v, `node (${level}, ${i})`)));
  for (let n = 0; n <= 8; n++) t.equal(tree.root(n).toString('hex'), CT_ROOTS[n], `root of size ${n}`);
  for (const v of CT_INCLUSION) {
    const proof = tree.inclusion(v.index, v.size);
    t.same(hex(proof), v.proof, `PATH(${v.index}, D[${v.size}])`);
    t.ok(verifyInclusion(h, h.leaf(CT_LEAVES[v.index]), v.index, v.size, v.proof.map(hd), hd(CT_ROOTS[v.size])), `verifies (${v.index}, ${v.size})`);
  }
  for (const v of CT_CONSISTENCY) {
    t.same(hex(tree.consistency(v.m, v.n)), v.proof, `PROOF(${v.m}, D[${v.n}])`);
    t.ok(verifyConsistency(h, v.m, v.n, hd(CT_ROOTS[v.m]), hd(CT_ROOTS[v.n]), v.proof.map(hd)), `verifies ${v.m} → ${v.n}`);
  }
  // verify_test.go TestVerifyInclusionSingleEntry: one leaf, empty proof, root = leaf hash.
  const one = h.leaf(Buffer.from('data'));
  t.ok(verifyInclusion(h, one, 0, 1, [], one));
  t.notOk(verifyInclusion(h, Buffer.alloc(0), 0, 1, [], one));
  t.notOk(verifyInclusion(h, one, 0, 1, [], Buffer.alloc(0)));
});

for (const alg of ['sha256', 'sm3'] as const) {
  t.test(`${alg}: roots, PATH and PROOF equal the naive RFC 9162 definitions for every size 1..130`, async (t) => {
    const h = merkleHasher(alg);
    const ref = naive(alg);
    const D = inputs(130);
    const tree = treeOf(alg, D);
    let checked = 0;
    let mismatches: string[] = [];
    t.equal(tree.root(0).toString('hex'), ref.MTH([]).toString('hex'), 'empty tree: MTH({}) = HASH()');
    for (let n = 1; n <= 130; n++) {
      const Dn = D.slice(0, n);
      const root = ref.MTH(Dn);
      if (!tree.root(n).equals(root)) mismatches.push(`root ${n}`);
      for (let m = 0; m < n; m++) {
        const path = tree.inclusion(m, n);
        if (hex(path).join() !== hex(ref.PATH(m, Dn)).join()) mismatches.push(`PATH(${m}, ${n})`);
        if (!verifyInclusion(h, ref.leafHash(D[m]), m, n, path, root)) mismatches.push(`verify PATH(${m}, ${n})`);
        checked++;
      }
      for (let m = 1; m <= n; m++) {
        const proof = tree.consistency(m, n);
        const want = m === n ? [] : ref.PROOF(m, Dn);
        if (hex(proof).join() !== hex(want).join()) mismatches.push(`PROOF(${m}, ${n})`);
        if (!verifyConsistency(h, m, n, ref.MTH(D.slice(0, m)), root, proof)) mismatches.push(`verify PROOF(${m}, ${n})`);
        checked++;
      }
      if (mismatches.length > 20) break;
    }
    t.same(mismatches, [], `${checked} proofs equal the reference and verify`);
    mismatches = [];
  });
}

t.test('tampering and wrong parameters never verify (sizes 1..40, every index and pair)', async (t) => {
  for (const alg of ['sha256', 'sm3'] as const) {
    const h = merkleHasher(alg);
    const D = inputs(40);
    const tree = treeOf(alg, D);
    const other = h.leaf(Buffer.from('some other leaf'));
    const wrong: string[] = [];
    let probes = 0;
    for (let n = 1; n <= 40; n++) {
      const root = tree.root(n);
      for (let m = 0; m < n; m++) {
        const leaf = h.leaf(D[m]);
        const path = tree.inclusion(m, n);
        const bad: [string, boolean][] = [
          ['index-1', m > 0 && verifyInclusion(h, leaf, m - 1, n, path, root)],
          ['index+1', verifyInclusion(h, leaf, m + 1, n, path, root)],
          ['index=size', verifyInclusion(h, leaf, n, n, path, root)],
          // Not size ± 1: where the path has the same shape in both trees the RFC algorithm
          // accepts it, rightly — the size is never the prover's to choose, it comes signed with
          // the root in a checkpoint. Doubling always changes the shape (as in verify_test.go).
          ['size*2', verifyInclusion(h, leaf, m, n * 2, path, root)],
          ['other leaf', verifyInclusion(h, other, m, n, path, root)],
          ['leaf data not hashed', verifyInclusion(h, Buffer.concat([D[m], Buffer.alloc(32)]).subarray(0, 32), m, n, path, root)],
          ['empty root', verifyInclusion(h, leaf, m, n, path, h.empty())],
          ['trailing element', verifyInclusion(h, leaf, m, n, [...path, root], root)],
          ['leading element', verifyInclusion(h, leaf, m, n, [root, ...path], root)],
          ['short element', path.length > 0 && verifyInclusion(h, leaf, m, n, [path[0].subarray(1), ...path.slice(1)], root)],
          ['removed element', path.length > 0 && verifyInclusion(h, leaf, m, n, path.slice(0, -1), root)],
          ['swapped elements', path.length > 1 && !path[0].equals(path[1]) && verifyInclusion(h, leaf, m, n, [path[1], path[0], ...path.slice(2)], root)],
          ['negative index', verifyInclusion(h, leaf, -1, n, path, root)],
          ['fractional size', verifyInclusion(h, leaf, m, n + 0.5, path, root)],
        ];
        for (let i = 0; i < path.length; i++) for (const bit of [0, 7]) bad.push([`flip ${i}.${bit}`, verifyInclusion(h, leaf, m, n, flipped(path, i, bit), root)]);
        for (const [what, ok] of bad) if (ok) wrong.push(`${alg} inclusion (${m}, ${n}) ${what}`);
        probes += bad.length;
      }
      for (let m = 1; m < n; m++) {
        const first = tree.root(m);
        const proof = tree.consistency(m, n);
        const bad: [string, boolean][] = [
          ['m-1', m > 1 && verifyConsistency(h, m - 1, n, first, root, proof)],
          ['m+1', m + 1 < n && verifyConsistency(h, m + 1, n, first, root, proof)],
          ['n*2', verifyConsistency(h, m, n * 2, first, root, proof)],
          ['swapped sizes', verifyConsistency(h, n, m, first, root, proof)],
          ['swapped roots', verifyConsistency(h, m, n, root, first, proof)],
          ['wrong first root', verifyConsistency(h, m, n, other, root, proof)],
          ['wrong second root', verifyConsistency(h, m, n, first, other, proof)],
          ['empty proof', verifyConsistency(h, m, n, first, root, [])],
          ['trailing first root', verifyConsistency(h, m, n, first, root, [...proof, first])],
          ['trailing second root', verifyConsistency(h, m, n, first, root, [...proof, root])],
          ['leading first root', verifyConsistency(h, m, n, first, root, [first, ...proof])],
          ['leading proof[0]', verifyConsistency(h, m, n, first, root, [proof[0], ...proof])],
          ['truncated', verifyConsistency(h, m, n, first, root, proof.slice(0, -1))],
        ];
        for (let i = 0; i < proof.length; i++) for (const bit of [0, 4]) bad.push([`flip ${i}.${bit}`, verifyConsistency(h, m, n, first, root, flipped(proof, i, bit))]);
        for (const [what, ok] of bad) if (ok) wrong.push(`${alg} consistency ${m} → ${n} ${what}`);
        probes += bad.length;
      }
    }
    t.same(wrong, [], `${alg}: ${probes} tampered probes all refused`);
  }
});

t.test('edge sizes: empty tree, equal sizes, m > n; bad arguments are clear errors', async (t) => {
  const h = merkleHasher('sm3');
  const tree = treeOf('sm3', inputs(9));
  const r5 = tree.root(5);
  const r9 = tree.root(9);
  t.ok(verifyConsistency(h, 0, 9, h.empty(), r9, []), '0 → n: empty proof, empty-tree root');
  t.notOk(verifyConsistency(h, 0, 9, r5, r9, []), '0 → n with a non-empty first root');
  t.notOk(verifyConsistency(h, 0, 9, h.empty(), r9, [r5]), '0 → n with a non-empty proof');
  t.ok(verifyConsistency(h, 5, 5, r5, r5, []), 'n → n: equal roots');
  t.notOk(verifyConsistency(h, 5, 5, r5, r9, []), 'n → n: different roots');
  t.notOk(verifyConsistency(h, 5, 5, r5, r5, [r5]), 'n → n: non-empty proof');
  t.notOk(verifyConsistency(h, 9, 5, r9, r5, tree.consistency(5, 9)), 'm > n');
  t.notOk(verifyInclusion(h, h.leaf(Buffer.from('x')), 0, 0, [], h.empty()), 'nothing is in the empty tree');
  t.notOk(verifyInclusion(h, null as never, 0, 1, [], r5), 'null leaf');
  t.notOk(verifyInclusion(h, tree.perfect(0, 0), 0, 9, 'nope' as never, r9), 'proof not an array');
  t.notOk(verifyInclusion(h, tree.perfect(0, 0), 0, 9, [null] as never, r9), 'proof element null');
  t.notOk(verifyConsistency(h, 5, 9, r5, r9, Array.from({ length: 100 }, () => r5)), 'absurdly long proof');
  t.same(tree.consistency(0, 9), []);
  t.same(tree.consistency(9, 9), []);
  t.equal(rootFromInclusion(h, tree.perfect(0, 3), 3, 9, tree.inclusion(3, 9))?.toString('hex'), r9.toString('hex'), 'rootFromInclusion');

  const code = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      return isYiqianError(e) ? `${e.code}/${e.status}` : `not a YiqianError: ${String(e)}`;
    }
    return 'no error';
  };
  t.equal(code(() => tree.inclusion(9, 9)), `${MerkleCodes.MERKLE_INDEX_OUT_OF_RANGE}/400`);
  t.equal(code(() => tree.inclusion(0, 0)), `${MerkleCodes.MERKLE_INDEX_OUT_OF_RANGE}/400`);
  t.equal(code(() => tree.inclusion(-1, 5)), `${MerkleCodes.MERKLE_SIZE_INVALID}/400`);
  t.equal(code(() => tree.inclusion(1.5, 5)), `${MerkleCodes.MERKLE_SIZE_INVALID}/400`);
  t.equal(code(() => tree.consistency(6, 5)), `${MerkleCodes.MERKLE_RANGE_INVALID}/400`);
  t.equal(code(() => tree.root(10)), `${MerkleCodes.MERKLE_SIZE_INVALID}/400`, 'beyond the tree');
  t.equal(code(() => merkleHasher('md5' as never)), 'UNSUPPORTED_ALGORITHM/400');
  const holes: NodeSource = { perfect: () => undefined as never };
  t.equal(code(() => inclusionProof(h, holes, 0, 3)), `${MerkleCodes.MERKLE_NODE_MISSING}/500`, 'a missing node is an error, not a wrong proof');
  t.equal(code(() => consistencyProof(h, holes, 1, 3)), `${MerkleCodes.MERKLE_NODE_MISSING}/500`);
});

t.test('SM3 tree: known structure and domain separation', async (t) => {
  const h = merkleHasher('sm3');
  t.equal(h.name, 'sm3');
  // GB/T 32905 Appendix A.1: SM3("abc").
  t.equal(createHash('sm3').update('abc').digest('hex'), '66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0');
  const a = Buffer.from('a');
  const b = Buffer.from('b');
  t.equal(h.leaf(a).toString('hex'), createHash('sm3').update(Buffer.from([0])).update(a).digest('hex'), 'leaf = SM3(0x00 ‖ d)');
  const tree = treeOf('sm3', [a, b]);
  t.equal(tree.root().toString('hex'), createHash('sm3').update(Buffer.from([1])).update(h.leaf(a)).update(h.leaf(b)).digest('hex'), 'node = SM3(0x01 ‖ l ‖ r)');
  t.not(tree.root().toString('hex'), treeOf('sha256', [a, b]).root().toString('hex'));
  // A two-leaf root is not accepted as a leaf of a one-leaf tree (second pre-image via prefixes).
  t.notOk(verifyInclusion(h, tree.root(), 0, 1, [], h.leaf(Buffer.concat([h.leaf(a), h.leaf(b)]))));
});
