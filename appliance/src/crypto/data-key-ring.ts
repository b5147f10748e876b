// A ring of 32-byte data keys kept only wrapped under the HSM's non-extractable KEK
// (SecretWrapper), for data sealed at rest with SM4 (crypto/sealed-sm4.ts; STANDARDS.md §8):
//   <currentKey>            the key that seals new values { keyId, alg, wrapped, wrappedBy, createdAt }
//   <archivePrefix><keyId>  every key ever made, never overwritten (a sealed value names its key)
// The first use makes the key; concurrent first uses settle on one (archive first, then the pointer
// if still unset). Unwrapped keys are cached per id; a failed unwrap is not remembered.
// Used by the staff directory's PII and the evidence store's patient ids.
import { randomBytes } from 'node:crypto';
import { Codes, YiqianError } from '../errors.js';
import type { Logger } from '../log.js';
import type { SecretWrapper } from './interfaces.js';

export interface DataKeyRecord {
  keyId: string;
  alg: 'sealed-sm4-v1';
  wrapped: string;
  wrappedBy: 'hsm-kek';
  createdAt: string;
}

/** Where the wrapped keys are kept (the store's meta repository). */
export interface KeyRecordStore {
  get<T>(key: string): Promise<T | undefined>;
  set(key: string, value: unknown): Promise<void>;
}

export interface DataKeyRing {
  /** Id of the key that seals new values (made on first use; its unwrap is checked). */
  currentKeyId(): Promise<string>;
  /** The unwrapped key with this id (KEY_NOT_FOUND / KEY_UNWRAP_FAILED 500). */
  key(keyId: string): Promise<Buffer>;
}

export interface DataKeyRingOptions {
  records: KeyRecordStore;
  /** Throws the capability's own 503 when the custody cannot wrap. */
  wrapper: () => SecretWrapper;
  currentKey: string;
  archivePrefix: string;
  /** What the key protects, for messages: e.g. {zh: '个人信息', en: 'PII'}. */
  what: { zh: string; en: string };
  newId: () => string;
  now: () => string;
  log: Logger;
}

export function createDataKeyRing(o: DataKeyRingOptions): DataKeyRing {
  const keys = new Map<string, Promise<Buffer>>();
  let current: Promise<string> | undefined;

  async function loadKey(keyId: string): Promise<Buffer> {
    let rec = await o.records.get<DataKeyRecord>(o.archivePrefix + keyId);
    if (!rec) {
      // Keys made before the archive existed are found through the current pointer.
      const ptr = await o.records.get<DataKeyRecord>(o.currentKey);
      if (ptr?.keyId === keyId) rec = ptr;
    }
    if (!rec || typeof rec.wrapped !== 'string') {
      throw new YiqianError(Codes.KEY_NOT_FOUND, 500, { zh: `${o.what.zh}数据密钥 ${keyId} 不存在`, en: `${o.what.en} data key ${keyId} is not in the store` }, { keyId });
    }
    const key = await o.wrapper().unwrapSecret(Buffer.from(rec.wrapped, 'base64'));
    if (key.length !== 32) {
      key.fill(0);
      throw new YiqianError(Codes.KEY_UNWRAP_FAILED, 500, { zh: `${o.what.zh}数据密钥长度错误`, en: `${o.what.en} data key ${keyId} unwrapped to ${key.length} bytes, expected 32` }, { keyId });
    }
    o.log.info({ keyId }, `${o.what.en} data key unwrapped into memory`);
    return key;
  }

  function key(keyId: string): Promise<Buffer> {
    let p = keys.get(keyId);
    if (!p) {
      p = loadKey(keyId);
      keys.set(keyId, p);
      p.catch(() => keys.delete(keyId)); // an HSM hiccup is not remembered
    }
    return p;
  }

  async function makeOrLoadCurrent(): Promise<string> {
    const existing = await o.records.get<DataKeyRecord>(o.currentKey);
    if (existing) return existing.keyId;
    const fresh = randomBytes(32);
    const rec: DataKeyRecord = { keyId: o.newId(), alg: 'sealed-sm4-v1', wrapped: (await o.wrapper().wrapSecret(fresh)).toString('base64'), wrappedBy: 'hsm-kek', createdAt: o.now() };
    // Archive first: any key that may ever seal a value is findable by its id.
    await o.records.set(o.archivePrefix + rec.keyId, rec);
    if ((await o.records.get(o.currentKey)) === undefined) await o.records.set(o.currentKey, rec);
    const winner = (await o.records.get<DataKeyRecord>(o.currentKey))!;
    if (winner.keyId === rec.keyId) {
      keys.set(rec.keyId, Promise.resolve(fresh));
      o.log.info({ keyId: rec.keyId }, `${o.what.en} data key created and stored wrapped under the HSM key-encryption key`);
    } else {
      fresh.fill(0);
    }
    return winner.keyId;
  }

  return {
    key,
    async currentKeyId() {
      current ??= makeOrLoadCurrent();
      try {
        const id = await current;
        await key(id);
        return id;
      } catch (e) {
        current = undefined;
        throw e;
      }
    },
  };
}
