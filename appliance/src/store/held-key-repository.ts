// Signing keys the appliance holds for others (issue 4 item 1) on LMDB: db 'held-keys' keyed by
// id (ULID, so new keys append at the right end) → HeldKeyRecord, db 'held-keys-by-label'
// label → id (labels are unique: checked inside the write transaction, not raced), db
// 'held-keys-by-cert' certificate serial → id (verify reports name the held key of a signer).
// Every write is one durable transaction carrying its audit record (the AppRepository pattern).
import type { Database } from 'lmdb';
import type { AuditEntry } from '../audit/audit-log.js';
import { sealer } from '../audit/chain.js';
import { Codes, YiqianError, fail } from '../errors.js';
import type { HeldKeyView } from '../signing/types.js';
import type { LmdbAuditStorage } from './audit-storage.js';
import type { Writer } from './durable.js';
import { reparseOnChange } from './reparse-on-change.js';

/** A second key with a taken label (409). Defined next to the repository that raises it. */
export const HELD_KEY_EXISTS = 'HELD_KEY_EXISTS';

/**
 * Slow verifier of a key's access code: PBKDF2 (RFC 8018 §5.2) with HMAC-SM3 (GB/T 15852.2 over
 * GB/T 32905) as its PRF. The parameters are stored so a later build can raise the iterations.
 */
export interface AccessCodeVerifier {
  alg: 'pbkdf2-hmac-sm3';
  iterations: number;
  /** base64, 16 random bytes */
  salt: string;
  /** base64, 32 bytes */
  hash: string;
  setAt: string;
}

export interface HeldKeyRecord extends Omit<HeldKeyView, 'accessCodeRequired'> {
  /** Absent: no access code. Never leaves the service (views carry only accessCodeRequired). */
  accessCode?: AccessCodeVerifier;
  /** Times (ISO) of wrong access codes inside the lockout window, oldest first. */
  accessFailures?: string[];
  /** A disabled key is refused for use (KEY_NOT_FOUND) and kept for the record; not reversible. */
  disabled: boolean;
  disabledAt?: string;
  updatedAt: string;
}

export interface AuditedWrite {
  audit?: AuditEntry;
}

export interface HeldKeyRepository {
  /** HELD_KEY_EXISTS (409) when the label (or id, or certificate serial) is taken. Durable with its audit entry. */
  create(record: HeldKeyRecord, opts?: AuditedWrite): Promise<HeldKeyRecord>;
  get(id: string): Promise<HeldKeyRecord | undefined>;
  getByLabel(label: string): Promise<HeldKeyRecord | undefined>;
  getByCertSerial(serial: string): Promise<HeldKeyRecord | undefined>;
  /** In creation (id) order. */
  list(): Promise<HeldKeyRecord[]>;
  /**
   * Atomic read-modify-write of one record: `change` sees the current record and returns the new
   * one, or throws a YiqianError to refuse (then nothing is written, not even the audit entry).
   * Undefined when there is no such key (nothing written). Id, label and certificate cannot change.
   */
  update(id: string, change: (current: HeldKeyRecord) => HeldKeyRecord, opts?: AuditedWrite): Promise<HeldKeyRecord | undefined>;
}

/** Longer strings cannot be keys we wrote (ids are 26 characters, labels ≤ 64, serials ≤ 40). */
const MAX_LOOKUP = 256;

export function createHeldKeyRepository(
  dbs: { keys: Database<any, any>; byLabel: Database<any, any>; byCert: Database<any, any> },
  audit: LmdbAuditStorage,
  writer: Writer,
): HeldKeyRepository {
  const keys = dbs.keys as Database<HeldKeyRecord, string>;
  const byLabel = dbs.byLabel as Database<string, string>;
  const byCert = dbs.byCert as Database<string, string>;
  /** The record of a signer certificate's key, parsed again only when its bytes changed (read on every evidence push). */
  const keyById = reparseOnChange<HeldKeyRecord>(keys);

  return {
    async create(record, opts = {}) {
      const rec = copy(record);
      const seal = opts.audit && sealer(opts.audit);
      const outcome = await writer.durable(() => {
        if (byLabel.doesExist(rec.label)) return 'label' as const;
        if (keys.doesExist(rec.id) || byCert.doesExist(rec.certSerial)) return 'id' as const;
        void keys.put(rec.id, rec);
        void byLabel.put(rec.label, rec.id);
        void byCert.put(rec.certSerial, rec.id);
        if (seal) audit.appendInTransaction(seal);
        return 'created' as const;
      });
      if (outcome !== 'created') {
        throw new YiqianError(
          HELD_KEY_EXISTS,
          409,
          outcome === 'label'
            ? { zh: `标签为「${rec.label}」的托管密钥已存在`, en: `a held key labelled "${rec.label}" already exists` }
            : { zh: `托管密钥 ${rec.id} 已存在`, en: `held key ${rec.id} (or its certificate ${rec.certSerial}) already exists` },
          { label: rec.label },
        );
      }
      return rec;
    },

    async get(id) {
      if (!lookupable(id)) return undefined;
      return writer.read(() => keys.get(id));
    },

    async getByLabel(label) {
      if (!lookupable(label)) return undefined;
      return writer.read(() => {
        const id = byLabel.get(label);
        return id === undefined ? undefined : keys.get(id);
      });
    },

    async getByCertSerial(serial) {
      if (!lookupable(serial)) return undefined;
      return writer.read(() => {
        const id = byCert.get(serial);
        return id === undefined ? undefined : keyById(id);
      });
    },

    async list() {
      return writer.read(() => [...keys.getRange().map(({ value }) => value)]);
    },

    async update(id, change, opts = {}) {
      if (!lookupable(id)) return undefined;
      const seal = opts.audit && sealer(opts.audit);
      return writer.durable(() => {
        const current = keys.get(id);
        if (current === undefined) return undefined;
        const next = copy(change(current));
        if (next.id !== current.id || next.label !== current.label || next.certSerial !== current.certSerial) {
          fail(Codes.INTERNAL, 500, '托管密钥的标识不能修改', `an update of held key ${id} changed its id, label or certificate`);
        }
        void keys.put(id, next);
        if (seal) audit.appendInTransaction(seal);
        return next;
      });
    },
  };
}

function lookupable(s: unknown): s is string {
  return typeof s === 'string' && s.length > 0 && s.length <= MAX_LOOKUP;
}

/** A plain JSON copy (what reads back), with the lookup fields checked. */
function copy(r: HeldKeyRecord): HeldKeyRecord {
  if (typeof r !== 'object' || r === null) fail(Codes.BAD_REQUEST, 400, '托管密钥记录无效', 'held key record must be an object');
  for (const field of ['id', 'label', 'certSerial', 'keyId'] as const) {
    if (!lookupable(r[field])) fail(Codes.BAD_REQUEST, 400, `托管密钥的 ${field} 无效`, `held key ${field} must be a string of 1–${MAX_LOOKUP} characters`);
  }
  return JSON.parse(JSON.stringify(r)) as HeldKeyRecord;
}
