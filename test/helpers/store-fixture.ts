// Shared by store and service tests: a real LMDB store in a temporary directory, removed with
// the test, and a helper that expects a YiqianError rejection.
import type { Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isYiqianError, type YiqianError } from '../../appliance/src/errors.js';
import { openStore, type Store } from '../../appliance/src/store/open-store.js';

export async function freshStore(t: Test, prefix = 'yq-store-'): Promise<{ store: Store; dataDir: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  const store = await openStore(dataDir);
  t.teardown(async () => {
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return { store, dataDir };
}

/** Resolves with the YiqianError `p` rejects with; fails if it resolves or throws anything else. */
export async function rejection(p: Promise<unknown>): Promise<YiqianError> {
  try {
    await p;
  } catch (e) {
    if (isYiqianError(e)) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}
