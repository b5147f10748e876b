// Imported CA certificates of the trust store on LMDB: db 'trust-cas' keyed by the lower-case
// hex SHA-256 of the certificate DER → TrustedCaRecord (JSON) with the CRL held for the CA.
// Every write is one durable transaction with its audit record (the CertificateRepository
// pattern); a change that is refused writes nothing and audits nothing.
import type { Database } from 'lmdb';
import { sealer } from '../audit/chain.js';
import { Codes, fail } from '../errors.js';
import type { TrustRepository, TrustedCaRecord } from '../signing/trust-store.js';
import type { LmdbAuditStorage } from './audit-storage.js';
import type { Writer } from './durable.js';

const ID = /^[0-9a-f]{64}$/;

function copy(r: TrustedCaRecord, id?: string): TrustedCaRecord {
  if (typeof r !== 'object' || r === null || typeof r.id !== 'string' || !ID.test(r.id)) fail(Codes.INTERNAL, 500, '信任库记录无效', 'trusted CA record needs a SHA-256 hex id');
  if (id !== undefined && r.id !== id) fail(Codes.INTERNAL, 500, '信任库记录更新改变了标识', `an update of ${id} changed its id`);
  if (typeof r.certificate !== 'string' || r.certificate.length === 0) fail(Codes.INTERNAL, 500, '信任库记录无效', 'trusted CA record needs its certificate');
  return JSON.parse(JSON.stringify(r)) as TrustedCaRecord;
}

export function createTrustRepository(db: Database<any, any>, audit: LmdbAuditStorage, writer: Writer): TrustRepository {
  const cas = db as Database<TrustedCaRecord, string>;
  return {
    async insert(record, opts = {}) {
      const rec = copy(record);
      const seal = opts.audit && sealer(opts.audit);
      return writer.durable(() => {
        if (cas.doesExist(rec.id)) return false;
        void cas.put(rec.id, rec);
        if (seal) audit.appendInTransaction(seal);
        return true;
      });
    },

    async get(id) {
      if (typeof id !== 'string' || !ID.test(id)) return undefined;
      return writer.read(() => cas.get(id));
    },

    async list() {
      return writer.read(() => [...cas.getRange().map(({ value }) => value)]);
    },

    async update(id, change, opts = {}) {
      if (typeof id !== 'string' || !ID.test(id)) fail(Codes.BAD_REQUEST, 400, '信任库标识无效', 'trust store id must be 64 hex digits');
      const seal = opts.audit && sealer(opts.audit);
      return writer.durable(() => {
        const next = copy(change(cas.get(id)), id);
        void cas.put(id, next);
        if (seal) audit.appendInTransaction(seal);
        return next;
      });
    },

    async remove(id, opts = {}) {
      if (typeof id !== 'string' || !ID.test(id)) return false;
      const seal = opts.audit && sealer(opts.audit);
      return writer.durable(() => {
        if (!cas.doesExist(id)) return false;
        void cas.remove(id);
        if (seal) audit.appendInTransaction(seal);
        return true;
      });
    },
  };
}
