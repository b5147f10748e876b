// What store-only CLI commands share: who the actor is in the audit log, and the store of an
// initialised data directory, opened for one command and closed after it.
import { loadConfig } from '../config/config.js';
import { openStore, type Store } from '../store/open-store.js';
import { type Values, dataDir } from './command.js';

/** The audit actor of a CLI command: the operator's login name. */
export const CLI_ACTOR = `cli:${process.env.SUDO_USER ?? process.env.USER ?? 'unknown'}`;

export async function withStore<T>(values: Values, fn: (store: Store) => Promise<T>): Promise<T> {
  const dir = dataDir(values);
  loadConfig(dir); // refuses an uninitialised directory with a clear reason
  const store = await openStore(dir);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}
