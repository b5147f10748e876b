// Content-addressed blobs on disk (issue 6 item 1 "stored content-addressed"): the originals of
// signature records and uploaded files. A blob's id is the lower-case hex SM3 (GB/T 32905) of its
// bytes, so the same bytes are kept once and a blob proves its own integrity on read.
//
// Layout under evidence.blobPath:
//   ab/cd/abcd…(64 hex)   the blob, fanned out by its first two id bytes (65,536 directories at
//                          most, so no directory grows past a few hundred entries per million blobs)
//   tmp/<pid>-<rand>.part  uploads in progress, on the same filesystem so the final rename is atomic
//
// Durable before it resolves (ARCHITECTURE.md §5): the temp file is fsynced, renamed to its id,
// and the directory that now holds the name is fsynced (as is any directory the rename needed
// created); a crash leaves either the whole blob or only a temp file, which the next start removes.
// Nothing half-written is ever visible under a blob name.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { YiqianError } from '../errors.js';
import { log } from '../log.js';
import type { BlobStore } from './types.js';

export const BlobCodes = {
  /** The upload passed evidence.maxFileBytes (413); nothing was kept. */
  BLOB_TOO_LARGE: 'BLOB_TOO_LARGE',
  BLOB_NOT_FOUND: 'BLOB_NOT_FOUND',
  BLOB_ID_INVALID: 'BLOB_ID_INVALID',
} as const;

const BLOB_ID = /^[0-9a-f]{64}$/;
const TEMP_DIR = 'tmp';
const TEMP_NAME = /^(\d+)-[0-9a-f]{16}\.part$/;
/** A temp file of a live process older than this is left over from a reused pid. */
const STALE_LIVE_MS = 24 * 3600_000;
const log_ = log.child({ component: 'blob-store' });

export function tooLarge(maxBytes: number): YiqianError {
  return new YiqianError(
    BlobCodes.BLOB_TOO_LARGE,
    413,
    { zh: `文件超过 ${maxBytes} 字节上限`, en: `file exceeds the limit of ${maxBytes} bytes` },
    { limitBytes: maxBytes },
  );
}

function checkId(blobId: string): void {
  if (typeof blobId !== 'string' || !BLOB_ID.test(blobId)) {
    throw new YiqianError(BlobCodes.BLOB_ID_INVALID, 400, { zh: '文件标识必须是 64 位小写十六进制 SM3 值', en: 'a blob id is the 64 lower-case hex digits of an SM3 hash' });
  }
}

function notFound(blobId: string): YiqianError {
  return new YiqianError(BlobCodes.BLOB_NOT_FOUND, 404, { zh: '文件不存在', en: 'blob not found' }, { blobId });
}

async function fsyncDir(path: string): Promise<void> {
  const h = await open(path, 'r');
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** An upload written and hashed but not yet under its name: commit() keeps it, discard() drops it. */
export interface StagedBlob {
  blobId: string;
  bytes: number;
  /** The staged bytes, for checks that need the whole content (a detached CMS signature). */
  readAll(): Promise<Buffer>;
  /** Renames into place, durably; an existing blob with this id is kept (deduplicated). Idempotent. */
  commit(): Promise<{ blobId: string; bytes: number; deduplicated: boolean }>;
  /** Deletes the temp file. Safe to call after commit (does nothing then) and more than once. */
  discard(): Promise<void>;
}

export interface StageOptions {
  /** Sees every chunk as it is written (e.g. the YQ1 body hash of an ECDSA app, SHA-256). */
  onChunk?: (chunk: Buffer) => void;
}

export class FsBlobStore implements BlobStore {
  private constructor(readonly dir: string) {}

  /** Creates the directories and removes temp files that no running process owns (a crash's leftovers). */
  static async open(dir: string): Promise<FsBlobStore> {
    await mkdir(join(dir, TEMP_DIR), { recursive: true, mode: 0o700 });
    const store = new FsBlobStore(dir);
    await store.cleanTemp();
    return store;
  }

  /** Removes temp files of processes that are gone (or of a live pid, when older than a day). Returns how many. */
  async cleanTemp(now: number = Date.now()): Promise<number> {
    const tmp = join(this.dir, TEMP_DIR);
    let removed = 0;
    for (const name of await readdir(tmp)) {
      const m = TEMP_NAME.exec(name);
      const path = join(tmp, name);
      if (m) {
        const pid = Number(m[1]);
        if (pid === process.pid) continue;
        if (pidAlive(pid)) {
          const st = await stat(path).catch(() => undefined);
          if (!st || now - st.mtimeMs < STALE_LIVE_MS) continue;
        }
      }
      await unlink(path).catch(() => undefined);
      removed++;
    }
    if (removed > 0) log_.info({ removed }, 'removed stale upload temp files');
    return removed;
  }

  pathOf(blobId: string): string {
    return join(this.dir, blobId.slice(0, 2), blobId.slice(2, 4), blobId);
  }

  /**
   * Writes `source` to a temp file hashing it with SM3. Past `maxBytes` it stops consuming the
   * source (its iterator's return() is called), deletes the temp file and throws BLOB_TOO_LARGE;
   * if the source fails (a client abort), the temp file is deleted and the error passes on.
   */
  async stage(source: AsyncIterable<Buffer>, maxBytes: number, opts: StageOptions = {}): Promise<StagedBlob> {
    const tempPath = join(this.dir, TEMP_DIR, `${process.pid}-${randomBytes(8).toString('hex')}.part`);
    const sm3 = createHash('sm3');
    let bytes = 0;
    let fh: FileHandle | undefined;
    try {
      fh = await open(tempPath, 'wx', 0o600);
      for await (const chunk of source) {
        bytes += chunk.length;
        if (bytes > maxBytes) throw tooLarge(maxBytes);
        sm3.update(chunk);
        opts.onChunk?.(chunk);
        // Awaiting each write is the back-pressure: the source is read no faster than the disk takes it.
        await fh.write(chunk);
      }
      await fh.sync();
      await fh.close();
      fh = undefined;
    } catch (e) {
      await fh?.close().catch(() => undefined);
      await unlink(tempPath).catch(() => undefined);
      throw e;
    }
    const blobId = sm3.digest('hex');
    let state: 'staged' | 'committed' | 'discarded' = 'staged';
    let committed: Promise<{ blobId: string; bytes: number; deduplicated: boolean }> | undefined;
    return {
      blobId,
      bytes,
      readAll: () => readFile(tempPath),
      commit: () => {
        if (state === 'discarded') throw new Error('blob was discarded');
        committed ??= this.place(tempPath, blobId, bytes).then((r) => {
          state = 'committed';
          return r;
        });
        return committed;
      },
      discard: async () => {
        if (state !== 'staged' || committed) return;
        state = 'discarded';
        await unlink(tempPath).catch(() => undefined);
      },
    };
  }

  private async place(tempPath: string, blobId: string, bytes: number): Promise<{ blobId: string; bytes: number; deduplicated: boolean }> {
    const finalPath = this.pathOf(blobId);
    const existing = await stat(finalPath).catch(() => undefined);
    if (existing?.isFile() && existing.size === bytes) {
      // Same SM3, same length: the same bytes are already kept durably.
      await unlink(tempPath).catch(() => undefined);
      return { blobId, bytes, deduplicated: true };
    }
    const level1 = join(this.dir, blobId.slice(0, 2));
    const level2 = join(level1, blobId.slice(2, 4));
    const created = await mkdir(level2, { recursive: true, mode: 0o700 });
    if (created !== undefined) {
      // New directories are entries of their parents: make those entries durable too.
      await fsyncDir(this.dir);
      await fsyncDir(level1);
    }
    // rename(2) is atomic within a filesystem: readers see no blob or the whole blob. A file of the
    // wrong length under this name (damaged) is replaced by the bytes that really hash to it.
    await rename(tempPath, finalPath);
    await fsyncDir(level2);
    return { blobId, bytes, deduplicated: false };
  }

  async putStream(source: AsyncIterable<Buffer>, maxBytes: number): Promise<{ blobId: string; bytes: number }> {
    const staged = await this.stage(source, maxBytes);
    try {
      const r = await staged.commit();
      return { blobId: r.blobId, bytes: r.bytes };
    } finally {
      await staged.discard();
    }
  }

  putBuffer(data: Buffer): Promise<{ blobId: string; bytes: number }> {
    return this.putStream(
      (async function* () {
        yield data;
      })(),
      data.length,
    );
  }

  async *read(blobId: string): AsyncIterable<Buffer> {
    checkId(blobId);
    const path = this.pathOf(blobId);
    let h: FileHandle;
    try {
      h = await open(path, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(blobId);
      throw e;
    }
    // The stream owns (and closes) the handle, also when the consumer stops early.
    yield* h.createReadStream({ autoClose: true, highWaterMark: 256 * 1024 }) as AsyncIterable<Buffer>;
  }

  /** Size of a stored blob, or undefined. */
  async size(blobId: string): Promise<number | undefined> {
    checkId(blobId);
    const st = await stat(this.pathOf(blobId)).catch(() => undefined);
    return st?.isFile() ? st.size : undefined;
  }

  async has(blobId: string): Promise<boolean> {
    return (await this.size(blobId)) !== undefined;
  }

  async remove(blobId: string): Promise<void> {
    checkId(blobId);
    const path = this.pathOf(blobId);
    try {
      await unlink(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    await fsyncDir(join(this.dir, blobId.slice(0, 2), blobId.slice(2, 4)));
  }
}

/** Opens the blob store of evidence.blobPath (created on first use). */
export function openBlobStore(dir: string): Promise<FsBlobStore> {
  return FsBlobStore.open(dir);
}
