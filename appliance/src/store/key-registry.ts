// The key inventory (crypto/interfaces.ts KeyRegistry) on LMDB: db 'keys' keyed by id,
// db 'keys-by-label' label → id. Labels are unique (one token per appliance; KeySpec.label
// is the token's CKA_LABEL), so a second record with a taken label is KEY_EXISTS.
import type { Database } from 'lmdb';
import type { KeyRecord, KeyRegistry } from '../crypto/interfaces.js';
import { Codes, YiqianError, fail } from '../errors.js';
import type { Writer } from './durable.js';

const MAX_LOOKUP = 256;

export class LmdbKeyRegistry implements KeyRegistry {
  constructor(
    private readonly keys: Database<KeyRecord, string>,
    private readonly byLabel: Database<string, string>,
    private readonly writer: Writer,
  ) {}

  /** Inserts or replaces the record with this id; durable when resolved. */
  async put(record: KeyRecord): Promise<void> {
    for (const field of ['id', 'label', 'uri'] as const) {
      if (typeof record[field] !== 'string' || record[field].length === 0 || record[field].length > MAX_LOOKUP) {
        fail(Codes.BAD_REQUEST, 400, `密钥记录的 ${field} 无效`, `key record ${field} must be a string of 1–${MAX_LOOKUP} characters`);
      }
    }
    const rec = JSON.parse(JSON.stringify(record)) as KeyRecord; // plain data, as it will read back
    const outcome = await this.writer.durable(() => {
      const holder = this.byLabel.get(rec.label);
      if (holder !== undefined && holder !== rec.id) return 'label-taken' as const;
      const previous = this.keys.get(rec.id);
      if (previous !== undefined && previous.label !== rec.label) void this.byLabel.remove(previous.label);
      void this.keys.put(rec.id, rec);
      void this.byLabel.put(rec.label, rec.id);
      return 'stored' as const;
    });
    if (outcome === 'label-taken') {
      throw new YiqianError(Codes.KEY_EXISTS, 409, { zh: `标签为「${rec.label}」的密钥已存在`, en: `a key labelled "${rec.label}" already exists` }, { label: rec.label });
    }
  }

  async get(id: string): Promise<KeyRecord | undefined> {
    if (!lookupable(id)) return undefined;
    return this.writer.read(() => this.keys.get(id));
  }

  async getByLabel(label: string): Promise<KeyRecord | undefined> {
    if (!lookupable(label)) return undefined;
    return this.writer.read(() => {
      const id = this.byLabel.get(label);
      return id === undefined ? undefined : this.keys.get(id);
    });
  }

  /** In id (creation) order. */
  async list(): Promise<KeyRecord[]> {
    return this.writer.read(() => [...this.keys.getRange().map(({ value }) => value)]);
  }

  /** Removes the record; deleting an id that is not there is not an error (retries after a crash). */
  async delete(id: string): Promise<void> {
    if (!lookupable(id)) return;
    await this.writer.durable(() => {
      const current = this.keys.get(id);
      if (current === undefined) return;
      void this.keys.remove(id);
      if (this.byLabel.get(current.label) === id) void this.byLabel.remove(current.label);
    });
  }
}

function lookupable(s: string): boolean {
  return typeof s === 'string' && s.length > 0 && s.length <= MAX_LOOKUP;
}
