// The evidence Merkle log on LMDB (store/merkle-repository.ts): 10,000 appends compared with the
// in-memory reference tree (evidence/merkle.ts MemoryTree), proofs for sampled indices and sizes
// verified against root(size), O(log n) writes per append, reopen after close, appends that
// commit with a caller's own record (and roll back with it), and a child process SIGKILLed
// mid-append: the reopened tree holds every acknowledged leaf, at its index, with no gap.
//
// This file is also the child: with YQ_MERKLE_CHILD=<dataDir> it appends forever from 16
// concurrent writers and prints "ack <index> <data>" after each append resolved (durable).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { MemoryTree, MerkleCodes, merkleHasher, verifyConsistency, verifyInclusion } from '../../appliance/src/evidence/merkle.js';
import { openStore, type Store } from '../../appliance/src/store/open-store.js';

const CHILD_DIR = process.env.YQ_MERKLE_CHILD;
if (CHILD_DIR !== undefined) {
  await runChild(CHILD_DIR);
} else {
  await runTests();
}

async function runChild(dataDir: string): Promise<void> {
  const store = await openStore(dataDir);
  process.stdout.write(`pid ${process.pid}\n`);
  let seq = 0;
  const writer = async (w: number): Promise<never> => {
    for (;;) {
      const data = `w${w}-${process.pid}-${seq++}`;
      const { index } = await store.merkle.append(Buffer.from(data));
      process.stdout.write(`ack ${index} ${data}\n`);
    }
  };
  await Promise.all(Array.from({ length: 16 }, (_, w) => writer(w)));
}

async function runTests(): Promise<void> {
  const { default: t } = await import('tap');
  const { rejection } = await import('../helpers/store-fixture.js');
  const h = merkleHasher('sm3');

  const tempDir = (tt: { teardown(f: () => void): void }): string => {
    const dir = mkdtempSync(join(tmpdir(), 'yq-merkle-'));
    tt.teardown(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  };

  /** Reference tree rebuilt from the stored leaf hashes, and the first mismatch of any root. */
  async function audit(store: Store, sizes: number[]): Promise<{ ref: MemoryTree; problems: string[] }> {
    const size = await store.merkle.size();
    const ref = new MemoryTree(h);
    const problems: string[] = [];
    for (let i = 0; i < size; i++) {
      const leaf = await store.merkle.leafHash(i);
      if (leaf === undefined) {
        problems.push(`leaf ${i} missing (size ${size})`);
        break;
      }
      ref.appendLeafHash(leaf);
    }
    for (const s of sizes.filter((x) => x <= ref.size)) {
      if (!(await store.merkle.root(s)).equals(ref.root(s))) problems.push(`root(${s}) differs from the reference`);
    }
    return { ref, problems };
  }

  t.test('10,000 appends: roots and proofs equal the reference and verify; O(log n) writes; reopen keeps all', async (t) => {
    const dataDir = tempDir(t);
    let store = await openStore(dataDir);
    const ref = new MemoryTree(h);
    const leafData = (i: number) => Buffer.from(`evidence record ${i}`);

    // Count the LMDB puts each append makes (the repository's own database handle).
    const db = (store.merkle as unknown as { db: { put: (...a: unknown[]) => unknown } }).db;
    const put = db.put.bind(db);
    let puts = 0;
    db.put = (...a: unknown[]) => {
      puts++;
      return put(...a);
    };

    t.equal(await store.merkle.size(), 0);
    t.equal((await store.merkle.root()).toString('hex'), h.empty().toString('hex'), 'empty log: root = SM3()');

    // 1) one durable append at a time (one transaction and fsync each)
    let t0 = performance.now();
    let maxPuts = 0;
    for (let i = 0; i < 1000; i++) {
      const before = puts;
      const { index, leafHash } = await store.merkle.append(leafData(i));
      maxPuts = Math.max(maxPuts, puts - before);
      if (index !== ref.append(leafData(i)) || !leafHash.equals(ref.perfect(0, index))) t.fail(`append ${i} returned index ${index}`);
    }
    const sequentialRate = 1000 / ((performance.now() - t0) / 1000);
    t.ok(maxPuts <= Math.log2(1000) + 2, `at most log2(n) + 2 writes per append (max seen ${maxPuts})`);
    t.equal(puts, 1000 + (1000 - popcount(1000)) + 1000, 'each perfect subtree written once + the size record: 2n − popcount(n) + n puts');

    // 2) 100 concurrent appenders at a time: they share transactions and fsyncs
    t0 = performance.now();
    for (let base = 1000; base < 9000; base += 100) {
      const batch = Array.from({ length: 100 }, (_, j) => leafData(base + j));
      const results = await Promise.all(batch.map((d) => store.merkle.append(d)));
      // Indices are handed out in transaction order, which is issue order here.
      results.forEach((r, j) => {
        if (r.index !== ref.append(batch[j])) t.fail(`concurrent append ${base + j} got index ${r.index}`);
      });
    }
    const concurrentRate = 8000 / ((performance.now() - t0) / 1000);

    // 3) appendMany: 1,000 leaves in one transaction
    t0 = performance.now();
    const many = await store.merkle.appendMany(Array.from({ length: 1000 }, (_, j) => leafData(9000 + j)));
    const manyRate = 1000 / ((performance.now() - t0) / 1000);
    many.forEach((r, j) => {
      if (r.index !== ref.append(leafData(9000 + j))) t.fail(`appendMany ${j} got index ${r.index}`);
    });
    t.comment(`appends/s (durable): one at a time ${sequentialRate.toFixed(0)}, 100 concurrent ${concurrentRate.toFixed(0)}, appendMany(1000) ${manyRate.toFixed(0)}`);

    t.equal(await store.merkle.size(), 10_000);
    t.equal(ref.size, 10_000);
    const root = await store.merkle.root();
    t.equal(root.toString('hex'), ref.root().toString('hex'), 'root(10000) equals the reference');

    // Sampled sizes and indices, including the edges and powers of two around them.
    const sizes = [1, 2, 3, 7, 8, 9, 1023, 1024, 1025, 4096, 5000, 8191, 8192, 9999, 10_000];
    for (let i = 0; i < 25; i++) sizes.push(1 + Math.floor(Math.random() * 10_000));
    const wrong: string[] = [];
    let proofs = 0;
    for (const n of sizes) {
      const rn = await store.merkle.root(n);
      if (!rn.equals(ref.root(n))) wrong.push(`root(${n})`);
      const indices = [0, n - 1, Math.floor(n / 2), Math.floor(Math.random() * n)];
      for (const i of indices) {
        const proof = await store.merkle.inclusion(i, n);
        if (!verifyInclusion(h, h.leaf(leafData(i)), i, n, proof, rn)) wrong.push(`inclusion(${i}, ${n})`);
        if (proof.map((p) => p.toString('hex')).join() !== ref.inclusion(i, n).map((p) => p.toString('hex')).join()) wrong.push(`inclusion(${i}, ${n}) ≠ reference`);
        proofs++;
      }
      for (const m of [1, Math.ceil(n / 3), n - 1, n].filter((x) => x >= 1)) {
        const proof = await store.merkle.consistency(m, n);
        if (!verifyConsistency(h, m, n, await store.merkle.root(m), rn, proof)) wrong.push(`consistency(${m}, ${n})`);
        proofs++;
      }
    }
    t.same(wrong, [], `${proofs} proofs from LMDB verify against root(size) and equal the reference`);

    // Bad arguments are errors with codes, not wrong proofs.
    t.equal((await rejection(store.merkle.inclusion(10_000))).code, MerkleCodes.MERKLE_INDEX_OUT_OF_RANGE);
    t.equal((await rejection(store.merkle.inclusion(5, 10_001))).code, MerkleCodes.MERKLE_SIZE_INVALID);
    t.equal((await rejection(store.merkle.root(-1))).code, MerkleCodes.MERKLE_SIZE_INVALID);
    t.equal((await rejection(store.merkle.consistency(10, 5))).code, MerkleCodes.MERKLE_RANGE_INVALID);
    t.equal((await rejection(store.merkle.append('text' as never))).code, 'BAD_REQUEST');
    t.equal(await store.merkle.leafHash(10_000), undefined);

    await store.close();
    store = await openStore(dataDir);
    t.teardown(() => store.close());
    t.equal(await store.merkle.size(), 10_000, 'reopened: same size');
    t.equal((await store.merkle.root()).toString('hex'), root.toString('hex'), 'reopened: same root');
    t.ok(verifyInclusion(h, h.leaf(leafData(4321)), 4321, 10_000, await store.merkle.inclusion(4321), root), 'reopened: proofs verify');
    const next = await store.merkle.append(leafData(10_000));
    ref.append(leafData(10_000));
    t.equal(next.index, 10_000, 'appends continue after the last leaf');
    t.ok(verifyConsistency(h, 10_000, 10_001, root, await store.merkle.root(), await store.merkle.consistency(10_000)), 'old root is a prefix of the new');
  });

  t.test('appendInTransaction commits with the caller\'s record and rolls back with it', async (t) => {
    const dataDir = tempDir(t);
    const store = await openStore(dataDir);
    t.teardown(() => store.close());
    // The Writer is what the future evidence repository receives from open-store.
    const writer = (store.merkle as unknown as { writer: { durable<T>(f: () => T): Promise<T> } }).writer;
    await store.merkle.append(Buffer.from('first'));
    const leaf = await writer.durable(() => store.merkle.appendInTransaction(Buffer.from('second')));
    t.equal(leaf.index, 1);
    await t.rejects(
      writer.durable(() => {
        store.merkle.appendInTransaction(Buffer.from('third'));
        store.merkle.appendInTransaction(Buffer.from('fourth'));
        throw new Error('the record failed its checks');
      }),
      /the record failed/,
    );
    t.equal(await store.merkle.size(), 2, 'the failed transaction left no leaf behind');
    const ref = new MemoryTree(h);
    ref.append(Buffer.from('first'));
    ref.append(Buffer.from('second'));
    t.equal((await store.merkle.root()).toString('hex'), ref.root().toString('hex'));
    t.equal((await store.merkle.append(Buffer.from('third'))).index, 2, 'the next append takes the index the rolled-back one had');
  });

  t.test('SIGKILL during appends: every acknowledged leaf is there, at its index, no gap; three rounds', async (t) => {
    const dataDir = tempDir(t);
    const root = resolve(import.meta.dirname, '../..');
    const allAcked = new Map<number, string>();
    let lastSize = 0;
    for (let round = 1; round <= 3; round++) {
      const acked = await new Promise<Map<number, string>>((done, reject) => {
        const child = spawn(process.execPath, ['--import', '@tapjs/typescript/import', import.meta.filename], {
          cwd: root,
          env: { ...process.env, YQ_MERKLE_CHILD: dataDir, TS_NODE_TRANSPILE_ONLY: '1', TS_NODE_PROJECT: join(root, 'tsconfig.json') },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        const got = new Map<number, string>();
        const killAfter = 200 + Math.floor(Math.random() * 800);
        let pending = '';
        let stderr = '';
        let killed = false;
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`child acknowledged only ${got.size} appends in 60 s\n${stderr}`));
        }, 60_000);
        child.stdout.setEncoding('utf8');
        child.stdout.on('data', (chunk: string) => {
          pending += chunk;
          const lines = pending.split('\n');
          pending = lines.pop() ?? ''; // a torn last line was never fully acknowledged
          for (const line of lines) {
            const [kind, index, data] = line.split(' ');
            if (kind === 'ack') got.set(Number(index), data);
          }
          if (!killed && got.size >= killAfter) {
            killed = true;
            process.kill(child.pid as number, 'SIGKILL'); // 16 appends are in flight right now
          }
        });
        child.stderr.setEncoding('utf8');
        child.stderr.on('data', (c: string) => (stderr += c));
        child.on('exit', (_code, signal) => {
          clearTimeout(timer);
          if (signal === 'SIGKILL') done(got);
          else reject(new Error(`child exited (${_code}) before it was killed\n${stderr}`));
        });
      });

      // safeRestore: start from the last transaction flushed to disk, as after a power loss.
      const store = await openStore(dataDir, { safeRestore: true });
      try {
        const size = await store.merkle.size();
        const maxAcked = Math.max(...acked.keys());
        t.ok(size > maxAcked, `round ${round}: size ${size} covers the highest acknowledged index ${maxAcked} (${acked.size} acknowledged)`);
        t.ok(size >= lastSize + acked.size, `round ${round}: size ${size} ≥ ${lastSize} before + ${acked.size} acknowledged`);
        const missing: string[] = [];
        for (const [index, data] of acked) {
          const leaf = await store.merkle.leafHash(index);
          if (leaf === undefined || !leaf.equals(h.leaf(Buffer.from(data)))) missing.push(`${index}:${data}`);
          allAcked.set(index, data);
        }
        t.same(missing, [], `round ${round}: every acknowledged leaf is stored at its index`);
        for (const [index, data] of allAcked) {
          if (!(await store.merkle.leafHash(index))?.equals(h.leaf(Buffer.from(data)))) missing.push(`earlier ${index}`);
        }
        t.same(missing, [], `round ${round}: leaves acknowledged in earlier rounds are unchanged`);
        // No gap, no half-appended leaf: the whole tree rebuilds from its leaves to the same nodes.
        const sizes = Array.from({ length: 50 }, (_, i) => Math.max(1, Math.floor((size * (i + 1)) / 50)));
        const { ref, problems } = await audit(store, sizes);
        t.equal(ref.size, size, `round ${round}: all ${size} leaves present`);
        t.same(problems, [], `round ${round}: every sampled root equals the reference rebuilt from the leaves`);
        const distinct = new Set<string>();
        for (let i = 0; i < size; i++) distinct.add(ref.perfect(0, i).toString('hex'));
        t.equal(distinct.size, size, `round ${round}: no leaf stored twice`);
        if (lastSize > 0) {
          t.ok(
            verifyConsistency(h, lastSize, size, await store.merkle.root(lastSize), await store.merkle.root(), await store.merkle.consistency(lastSize)),
            `round ${round}: consistent with the tree before the round`,
          );
        }
        lastSize = size;
      } finally {
        await store.close();
      }
    }
  });
}

function popcount(n: number): number {
  let c = 0;
  for (; n > 0; n = Math.floor(n / 2)) c += n % 2;
  return c;
}
