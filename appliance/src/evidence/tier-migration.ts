// Hot → cold migration of evidence records (issue 6 item 7), run by the evidence-migration job.
//
// Records received more than evidence.migration.afterDays ago are moved in batches of
// evidence.migration.batchSize by the records repository's moveBatchToCold
// (store/evidence-repository.ts), which for each batch writes the records into the cold
// environment durably, then removes them from the hot one — each batch its own short
// transactions, so ingestion (one transaction per event turn on the hot environment) waits for
// at most one batch, never for the whole migration. Between batches this loop yields the event
// loop and checks the stop signal.
//
// Resumable after a crash: the repository's two steps are idempotent (a record already in cold
// is not written again; one still in hot after its cold copy is durable is simply removed on the
// next batch), so a SIGKILL at any moment neither loses nor duplicates a record, and the next run
// carries on from whatever is still hot (test/e2e/evidence-crash.test.ts).
import { setImmediate as yieldTurn } from 'node:timers/promises';
import { log as rootLog, type Logger } from '../log.js';

/** What the migration needs of the records repository (E1's store/evidence-repository.ts). */
export interface ColdMover {
  /**
   * Moves up to `limit` hot records received before `before` (ISO 8601) to the cold tier and
   * resolves with how many it moved; fewer than `limit` means none are left.
   */
  moveBatchToCold(before: string, limit: number): Promise<number>;
}

export interface MigrationSettings {
  afterDays: number;
  batchSize: number;
  /** Longest a single run goes on before it returns (the next run continues); default 5 min. */
  maxRunMs?: number;
}

export interface MigrationResult extends Record<string, unknown> {
  cutoff: string;
  moved: number;
  batches: number;
  /** true when the run ended with nothing left to move; false when stopped or out of time. */
  complete: boolean;
}

export async function migrateToCold(
  mover: ColdMover,
  settings: MigrationSettings,
  opts: { signal?: AbortSignal; clock?: () => number; log?: Logger } = {},
): Promise<MigrationResult> {
  const clock = opts.clock ?? Date.now;
  const log = opts.log ?? rootLog;
  const started = clock();
  const cutoff = new Date(started - settings.afterDays * 86_400_000).toISOString();
  const maxRunMs = settings.maxRunMs ?? 5 * 60_000;
  let moved = 0;
  let batches = 0;
  let complete = false;
  while (!opts.signal?.aborted && clock() - started < maxRunMs) {
    const n = await mover.moveBatchToCold(cutoff, settings.batchSize);
    batches++;
    moved += n;
    if (n < settings.batchSize) {
      complete = true;
      break;
    }
    await yieldTurn(); // let waiting ingestion turns commit between batches
  }
  if (moved > 0) log.info({ component: 'evidence-migration', cutoff, moved, batches, complete }, 'evidence records moved to the cold tier');
  return { cutoff, moved, batches, complete };
}
