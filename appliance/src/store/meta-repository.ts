// Small named values of the appliance: schema version, device identity, init time …
// db 'meta', string keys, JSON values. Keys under 'store.' belong to the store itself
// (format version, audit head) and cannot be written through this interface.
import type { Database } from 'lmdb';
import { Codes, fail } from '../errors.js';
import type { Writer } from './durable.js';

export interface MetaRepository {
  get<T = unknown>(key: string): Promise<T | undefined>;
  /** Durable when resolved. `value` must be JSON data; undefined is refused (use a delete). */
  set(key: string, value: unknown): Promise<void>;
  /** Durable when resolved; true if there was a value. */
  delete(key: string): Promise<boolean>;
}

export const RESERVED_META_PREFIX = 'store.';
const MAX_KEY = 200;

export class LmdbMetaRepository implements MetaRepository {
  constructor(
    private readonly db: Database<unknown, string>,
    private readonly writer: Writer,
  ) {}

  async get<T = unknown>(key: string): Promise<T | undefined> {
    checkKey(key, false);
    return this.writer.read(() => this.db.get(key) as T | undefined);
  }

  async set(key: string, value: unknown): Promise<void> {
    checkKey(key, true);
    if (value === undefined) fail(Codes.BAD_REQUEST, 400, '元数据值不能为 undefined', 'meta value must not be undefined');
    const json = JSON.stringify(value);
    if (json === undefined) fail(Codes.BAD_REQUEST, 400, '元数据值必须是 JSON 数据', 'meta value must be JSON data');
    const plain: unknown = JSON.parse(json);
    await this.writer.durable(() => void this.db.put(key, plain));
  }

  async delete(key: string): Promise<boolean> {
    checkKey(key, true);
    return this.writer.durable(() => {
      if (!this.db.doesExist(key)) return false;
      void this.db.remove(key);
      return true;
    });
  }
}

function checkKey(key: string, forWrite: boolean): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY) {
    fail(Codes.BAD_REQUEST, 400, `元数据键必须为 1 到 ${MAX_KEY} 个字符`, `meta key must be 1–${MAX_KEY} characters`);
  }
  if (forWrite && key.startsWith(RESERVED_META_PREFIX)) {
    fail(Codes.BAD_REQUEST, 400, `以 ${RESERVED_META_PREFIX} 开头的元数据键为存储保留`, `meta keys starting with "${RESERVED_META_PREFIX}" are reserved for the store`);
  }
}
