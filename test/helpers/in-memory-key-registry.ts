// A KeyRegistry held in memory, for tests of the PKCS#11 custody itself (the token is what
// they exercise; the LMDB registry has its own tests in store-keys, and the e2e tests run the
// custody on the real store). Rows are kept as the JSON a store would write, so a test can
// check that no plaintext key material reaches them.
import type { KeyRecord, KeyRegistry } from '../../appliance/src/crypto/interfaces.js';

export class InMemoryKeyRegistry implements KeyRegistry {
  readonly rows = new Map<string, string>();
  async put(r: KeyRecord): Promise<void> {
    this.rows.set(r.id, JSON.stringify(r));
  }
  async get(id: string): Promise<KeyRecord | undefined> {
    const s = this.rows.get(id);
    return s === undefined ? undefined : (JSON.parse(s) as KeyRecord);
  }
  async getByLabel(label: string): Promise<KeyRecord | undefined> {
    return (await this.list()).find((r) => r.label === label);
  }
  async list(): Promise<KeyRecord[]> {
    return [...this.rows.values()].map((s) => JSON.parse(s) as KeyRecord).sort((a, b) => a.id.localeCompare(b.id));
  }
  async delete(id: string): Promise<void> {
    this.rows.delete(id);
  }
}
