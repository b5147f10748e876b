// The one place that decides when a write counts as done (ARCHITECTURE.md §4, §5).
//
// lmdb-js 3.5 with overlappingSync (our pinned setting): a resolved write promise means the
// transaction is COMMITTED (visible, atomic, survives a crash of this process) but not yet
// flushed; `env.flushed` resolves once the last commit is fsynced to disk. So a durable write
// is "await the write, then await env.flushed". Writes issued in one event turn share one
// transaction and one fsync, so many concurrent durable writers cost few fsyncs.
// (Traced with strace on 3.5.6/Linux: the commit promise in fact resolved only after that
// transaction's fdatasync, so the extra await costs about nothing; it stays because the
// documented contract is that only `flushed` means durable. test/e2e/store-crash.test.ts.)
//
// Multi-step writes run in a child transaction: if the callback throws, its writes are
// rolled back (a plain `transaction()` callback that throws would still commit the puts it
// made before throwing — measured with lmdb-js 3.5.6).
import type { RootDatabase } from 'lmdb';
import { Codes, YiqianError, fail } from '../errors.js';

/**
 * LMDB page size of every environment this store creates (an existing environment keeps the
 * size it was made with). 8 KiB, not the OS's 4 KiB: an evidence record (≈ 2–7 KB of JSON)
 * then sits in its leaf or in ONE overflow page. With 4 KiB pages most records needed runs of
 * 2–3 contiguous overflow pages, and once the hot→cold move had freed pages, LMDB's search of
 * its free list for such runs (mdb_page_alloc) made each commit slower as the store grew:
 * digest ingestion at 1,000,000 records fell to 56/s over HTTPS (bench/evidence.ts).
 */
export const STORE_PAGE_SIZE = 8192;

export interface StoreState {
  readonly dataDir: string;
  readonly readOnly: boolean;
  closed: boolean;
}

export class Writer {
  constructor(
    private readonly env: RootDatabase,
    private readonly state: StoreState,
  ) {}

  /**
   * Runs `action` inside one write transaction (atomic; thrown errors roll it back) and
   * resolves after the commit is flushed to disk. Use for every write a client is told about.
   */
  async durable<T>(action: () => T): Promise<T> {
    const result = await this.committed(action);
    await this.flushed();
    return result;
  }

  /**
   * Queues one lmdb-js write instruction (`put`, `remove`, a conditional put such as
   * `{ noOverwrite: true }`) and resolves with its result after it is flushed to disk. Unlike
   * durable(), no callback runs inside the transaction, so lmdb-js's write thread never hands
   * control to the main thread and back: the cheapest durable single-record write.
   */
  async durableWrite<T>(write: () => Promise<T>): Promise<T> {
    const result = await this.written(write);
    await this.flushed();
    return result;
  }

  /**
   * Runs `action` inside one write transaction and resolves once it is committed (visible
   * and crash-safe for this process, not yet fsynced: a power loss may undo it). Only for
   * records whose loss is harmless, e.g. replay nonces.
   */
  async committed<T>(action: () => T): Promise<T> {
    return this.written(() => this.env.childTransaction(action));
  }

  /** Runs a write on a writable store; a failure that is not ours becomes STORE_UNAVAILABLE. */
  private async written<T>(write: () => Promise<T>): Promise<T> {
    this.assertWritable();
    try {
      return await write();
    } catch (e) {
      if (e instanceof YiqianError) throw e;
      throw unavailable(this.state, 'write failed', e);
    }
  }

  /** Resolves once every commit so far is fsynced (lmdb-js `flushed`). */
  private async flushed(): Promise<void> {
    try {
      await this.env.flushed;
    } catch (e) {
      throw unavailable(this.state, 'flush to disk failed', e);
    }
  }

  /** Runs a synchronous read; a closed or broken environment becomes STORE_UNAVAILABLE. */
  read<T>(action: () => T): T {
    assertOpen(this.state);
    try {
      return action();
    } catch (e) {
      if (e instanceof YiqianError) throw e;
      throw unavailable(this.state, 'read failed', e);
    }
  }

  private assertWritable(): void {
    assertOpen(this.state);
    if (this.state.readOnly) {
      fail(Codes.STORE_UNAVAILABLE, 503, '存储以只读方式打开，不能写入', 'the store is open read-only; writes are refused', {
        dataDir: this.state.dataDir,
      });
    }
  }
}

export function assertOpen(state: StoreState): void {
  if (state.closed) {
    fail(Codes.STORE_UNAVAILABLE, 503, '存储已关闭', 'the store is closed', { dataDir: state.dataDir });
  }
}

export function unavailable(state: StoreState, what: string, cause: unknown): YiqianError {
  const reason = cause instanceof Error ? cause.message.split('\n')[0] : String(cause);
  return new YiqianError(
    Codes.STORE_UNAVAILABLE,
    503,
    { zh: `存储不可用：${what}`, en: `store unavailable: ${what}: ${reason}` },
    { dataDir: state.dataDir, reason },
    { cause },
  );
}
