// Content-addressed blobs (evidence/blob-store.ts): ids are the SM3 that `openssl dgst -sm3`
// computes, the fan-out layout, deduplication, oversize and aborted sources leave nothing
// behind and stop being read, stale temp files of dead processes are removed at open, and — seen
// with strace on a child process — the temp file is fsynced before the rename and the directory
// after it, so a resolved put is durable.
//
// This file is also the child: with YQ_BLOB_CHILD=<dir> it stores one blob and prints its path.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlobCodes, openBlobStore } from '../../appliance/src/evidence/blob-store.js';

const CHILD_DIR = process.env.YQ_BLOB_CHILD;
if (CHILD_DIR !== undefined) {
  const store = await openBlobStore(CHILD_DIR);
  const { blobId } = await store.putBuffer(Buffer.from('durable evidence bytes'));
  process.stdout.write(`${store.pathOf(blobId)}\n`);
} else {
  await runTests();
}

async function* chunksOf(data: Buffer, size: number, seen?: { n: number }): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) {
    if (seen) seen.n++;
    yield data.subarray(i, i + size);
  }
}

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

async function runTests(): Promise<void> {
  const { default: t } = await import('tap');

  const tempDir = (tt: { teardown(f: () => void): void }): string => {
    const dir = mkdtempSync(join(tmpdir(), 'yq-blobs-'));
    tt.teardown(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  };
  const tempFiles = (dir: string): string[] => readdirSync(join(dir, 'tmp'));

  t.test('streamed put: SM3 id as openssl computes it, fan-out path, bytes read back', async (t) => {
    const dir = tempDir(t);
    const store = await openBlobStore(dir);
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const file = join(dir, 'input.bin');
    writeFileSync(file, data);
    const opensslSm3 = execFileSync('openssl', ['dgst', '-sm3', '-r', file], { encoding: 'utf8' }).split(' ')[0];

    const r = await store.putStream(chunksOf(data, 65536), data.length);
    t.equal(r.blobId, opensslSm3, 'blob id = openssl dgst -sm3');
    t.equal(r.bytes, data.length);
    const path = join(dir, r.blobId.slice(0, 2), r.blobId.slice(2, 4), r.blobId);
    t.equal(store.pathOf(r.blobId), path);
    t.ok(readFileSync(path).equals(data), 'stored under ab/cd/<id>');
    t.ok((await collect(store.read(r.blobId))).equals(data), 'read streams the bytes back');
    t.equal(await store.has(r.blobId), true);
    t.equal(await store.size(r.blobId), data.length);
    t.same(tempFiles(dir), [], 'no temp file left');

    const small = await store.putBuffer(Buffer.from('abc'));
    t.equal(small.blobId, '66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0', 'SM3("abc"), GB/T 32905 example A.1');
  });

  t.test('the same bytes twice are kept once', async (t) => {
    const dir = tempDir(t);
    const store = await openBlobStore(dir);
    const data = randomBytes(200_000);
    const a = await store.putStream(chunksOf(data, 4096), 1_000_000);
    const staged = await store.stage(chunksOf(data, 7000), 1_000_000);
    const b = await staged.commit();
    t.equal(b.blobId, a.blobId);
    t.equal(b.deduplicated, true, 'second copy recognised');
    t.same(tempFiles(dir), [], 'the duplicate temp file is gone');
    t.same(readdirSync(join(dir, a.blobId.slice(0, 2), a.blobId.slice(2, 4))), [a.blobId], 'one file');
    t.same(await staged.commit(), b, 'commit is idempotent');
  });

  t.test('a staged blob is invisible until committed, and discard leaves nothing', async (t) => {
    const dir = tempDir(t);
    const store = await openBlobStore(dir);
    const data = randomBytes(10_000);
    let seenBytes = 0;
    const staged = await store.stage(chunksOf(data, 1000), 20_000, { onChunk: (c) => (seenBytes += c.length) });
    t.equal(seenBytes, data.length, 'onChunk saw every byte');
    t.equal(staged.blobId, createHash('sm3').update(data).digest('hex'));
    t.ok((await staged.readAll()).equals(data), 'staged bytes readable for checks');
    t.equal(await store.has(staged.blobId), false, 'not a blob yet');
    t.equal(tempFiles(dir).length, 1);
    await staged.discard();
    await staged.discard();
    t.equal(await store.has(staged.blobId), false);
    t.same(tempFiles(dir), [], 'discarded');
  });

  t.test('oversize: BLOB_TOO_LARGE, the source stops being read, nothing kept', async (t) => {
    const dir = tempDir(t);
    const store = await openBlobStore(dir);
    const seen = { n: 0 };
    const data = randomBytes(1024 * 1024);
    await t.rejects(store.putStream(chunksOf(data, 1024, seen), 10 * 1024), { code: BlobCodes.BLOB_TOO_LARGE, status: 413 });
    t.equal(seen.n, 11, 'read one chunk past the limit and no further');
    t.same(tempFiles(dir), [], 'temp file deleted');
    t.same(readdirSync(dir), ['tmp'], 'no blob directory made');
    // Exactly at the limit is allowed.
    const ok = await store.putStream(chunksOf(data.subarray(0, 10 * 1024), 1024), 10 * 1024);
    t.equal(ok.bytes, 10 * 1024);
  });

  t.test('a source that fails midway (client abort) leaves nothing', async (t) => {
    const dir = tempDir(t);
    const store = await openBlobStore(dir);
    async function* truncated(): AsyncGenerator<Buffer> {
      yield randomBytes(50_000);
      yield randomBytes(50_000);
      throw Object.assign(new Error('client aborted the request body'), { code: 'CLIENT_ABORTED' });
    }
    await t.rejects(store.putStream(truncated(), 1_000_000), { code: 'CLIENT_ABORTED' });
    t.same(tempFiles(dir), []);
    t.same(readdirSync(dir), ['tmp']);
  });

  t.test('open removes temp files of dead processes, keeps a live process’s fresh ones', async (t) => {
    const dir = tempDir(t);
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    const dead = join(dir, 'tmp', `999999999-${'a'.repeat(16)}.part`); // no such pid (above pid_max)
    const liveFresh = join(dir, 'tmp', `${process.ppid}-${'b'.repeat(16)}.part`);
    const liveOld = join(dir, 'tmp', `${process.ppid}-${'c'.repeat(16)}.part`);
    const stray = join(dir, 'tmp', 'garbage');
    for (const f of [dead, liveFresh, liveOld, stray]) writeFileSync(f, 'partial');
    const old = new Date(Date.now() - 2 * 24 * 3600_000);
    utimesSync(liveOld, old, old);
    await openBlobStore(dir);
    t.equal(existsSync(dead), false, 'a dead process’s upload is removed');
    t.equal(existsSync(stray), false, 'an unrecognised file is removed');
    t.equal(existsSync(liveOld), false, 'a two-day-old file of a live pid is stale (pid reused)');
    t.equal(existsSync(liveFresh), true, 'an upload in progress in another live process is kept');
  });

  t.test('remove, missing and invalid ids', async (t) => {
    const dir = tempDir(t);
    const store = await openBlobStore(dir);
    const { blobId } = await store.putBuffer(Buffer.from('to be removed'));
    await store.remove(blobId);
    t.equal(await store.has(blobId), false);
    await store.remove(blobId); // idempotent
    await t.rejects(collect(store.read(blobId)), { code: BlobCodes.BLOB_NOT_FOUND, status: 404 });
    for (const bad of ['../../etc/passwd', 'A'.repeat(64), '0'.repeat(63), '']) {
      await t.rejects(collect(store.read(bad)), { code: BlobCodes.BLOB_ID_INVALID, status: 400 }, JSON.stringify(bad));
      await t.rejects(store.has(bad), { code: BlobCodes.BLOB_ID_INVALID });
    }
  });

  const strace = spawnSync('strace', ['-V']).status === 0;
  t.test('durable before resolve: fsync(temp) → rename → fsync(directory), seen by strace', { skip: strace ? false : 'strace not installed' }, async (t) => {
    const dir = tempDir(t);
    const trace = join(dir, 'trace.txt');
    const r = spawnSync(
      'strace',
      ['-f', '-y', '-o', trace, '-e', 'trace=fsync,fdatasync,rename,renameat,renameat2', process.execPath, '--import', '@tapjs/typescript/import', import.meta.filename],
      { env: { ...process.env, YQ_BLOB_CHILD: join(dir, 'blobs') }, encoding: 'utf8', timeout: 120_000 },
    );
    t.equal(r.status, 0, r.stderr);
    const finalPath = r.stdout.trim().split('\n').pop()!;
    const finalDir = finalPath.slice(0, finalPath.lastIndexOf('/'));
    const lines = readFileSync(trace, 'utf8').split('\n');
    const iTempSync = lines.findIndex((l) => /fsync\(\d+<[^>]*\/tmp\/\d+-[0-9a-f]{16}\.part>\)\s+= 0/.test(l));
    const iRename = lines.findIndex((l) => /rename(at2?)?\(.*\.part".*= 0/.test(l) && l.includes(finalPath));
    const iDirSync = lines.findIndex((l, i) => i > iRename && l.includes(`fsync(`) && l.includes(`<${finalDir}>`) && /= 0$/.test(l.trim()));
    t.ok(iTempSync >= 0, 'temp file fsynced');
    t.ok(iRename > iTempSync, 'renamed after the fsync');
    t.ok(iDirSync > iRename, 'the directory holding the name fsynced after the rename');
  });
}
