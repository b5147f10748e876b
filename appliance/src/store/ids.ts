// Record ids: ULIDs from one monotonic factory per process, so ids made in the same
// millisecond still sort in creation order and LMDB inserts land at the right end of the
// B-tree (ARCHITECTURE.md §3 "Repositories").
import { monotonicFactory } from 'ulid';

const next = monotonicFactory();

/** A new time-ordered id: 26 characters of Crockford base32, e.g. "01J9Z3V4Q7K8M2N5P6R7S8T9VW". */
export function newId(): string {
  return next();
}

/** Now as ISO 8601 UTC with milliseconds, the one time format the store keeps. */
export function nowIso(): string {
  return new Date().toISOString();
}
