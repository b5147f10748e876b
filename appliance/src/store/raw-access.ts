// Raw access to one named database of a CLOSED store, bypassing repositories, checks and the
// audit chain. For tests that must tamper with stored records as an intruder would, and for
// forensic tools. The service never uses it.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { open, type Key } from 'lmdb';
import { Codes, fail } from '../errors.js';
import { NONCE_ENV_DIR } from './nonce-repository.js';

export interface RawDatabase {
  get(key: Key): unknown;
  /** Synchronous and committed when it returns. */
  put(key: Key, value: unknown): void;
  remove(key: Key): void;
  keys(): Key[];
}

export type RawDatabaseName = 'apps' | 'apps-by-name' | 'keys' | 'keys-by-label' | 'nonces' | 'nonces-by-expiry' | 'audit' | 'meta' | 'departments' | 'staff' | 'staff-by-department';

export async function withRawDatabase<T>(dataDir: string, name: RawDatabaseName, fn: (db: RawDatabase) => T | Promise<T>): Promise<T> {
  // Replay nonces have their own environment (nonce-repository.ts).
  const nonceEnv = name === 'nonces' || name === 'nonces-by-expiry';
  const path = join(resolve(dataDir), nonceEnv ? NONCE_ENV_DIR : 'db');
  if (!existsSync(join(path, 'data.mdb'))) fail(Codes.STORE_UNAVAILABLE, 503, '没有存储', `no store at ${path}`);
  // The nonce environment is written through the map, as the service writes it (open-store.ts).
  const env = open({ path, maxDbs: 64, encoding: 'json', useWritemap: nonceEnv });
  try {
    const db = env.openDB({ name, encoding: 'json', ...(name === 'audit' ? { keyEncoding: 'uint32' as const } : {}) });
    return await fn({
      get: (key) => db.get(key),
      put: (key, value) => db.putSync(key, value),
      remove: (key) => void db.removeSync(key),
      keys: () => [...db.getKeys()],
    });
  } finally {
    await env.close();
  }
}
