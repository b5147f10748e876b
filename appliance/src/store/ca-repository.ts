// The appliance's certificate authorities on LMDB: db 'cas' keyed by CA id ('sm2-root', …)
// → CaRecord (JSON). Writes are durable with their audit record in the same transaction; the
// CRL number is incremented inside one durable transaction, so it strictly increases across
// restarts and crashes (a number handed out is never handed out again).
import type { Database } from 'lmdb';
import { sealer } from '../audit/chain.js';
import { Codes, YiqianError, fail } from '../errors.js';
import type { CaId, CaRecord, CaRepository } from '../pki/types.js';
import type { LmdbAuditStorage } from './audit-storage.js';
import type { Writer } from './durable.js';

export const CA_NOT_FOUND = 'CA_NOT_FOUND';

const CA_IDS: readonly CaId[] = ['sm2-root', 'sm2-issuing', 'ecdsa-root', 'ecdsa-issuing'];

export function caNotFound(id: string): YiqianError {
  return new YiqianError(CA_NOT_FOUND, 404, { zh: `没有证书机构 ${id}`, en: `no certificate authority ${id}` }, { caId: id });
}

export function createCaRepository(db: Database<any, any>, audit: LmdbAuditStorage, writer: Writer): CaRepository {
  const cas = db as Database<CaRecord, string>;
  return {
    async put(record, opts = {}) {
      if (!CA_IDS.includes(record.id)) fail(Codes.BAD_REQUEST, 400, '证书机构标识无效', `CA id must be one of ${CA_IDS.join(', ')}`);
      if (!/^\d+$/.test(record.crlNumber)) fail(Codes.BAD_REQUEST, 400, 'CRL 编号无效', 'crlNumber must be a decimal string');
      const rec = JSON.parse(JSON.stringify(record)) as CaRecord;
      const seal = opts.audit && sealer(opts.audit);
      await writer.durable(() => {
        void cas.put(rec.id, rec);
        if (seal) audit.appendInTransaction(seal);
      });
    },

    async get(id) {
      if (!CA_IDS.includes(id)) return undefined;
      return writer.read(() => cas.get(id));
    },

    async list() {
      return writer.read(() => [...cas.getRange().map(({ value }) => value)]);
    },

    async nextCrlNumber(id) {
      return writer.durable(() => {
        const current = CA_IDS.includes(id) ? cas.get(id) : undefined;
        if (!current) throw caNotFound(id);
        const next = (BigInt(current.crlNumber) + 1n).toString();
        void cas.put(id, { ...current, crlNumber: next });
        return next;
      });
    },
  };
}
