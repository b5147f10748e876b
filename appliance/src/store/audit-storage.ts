// Audit records on LMDB: db 'audit' keyed by seq (uint32, appended at the right end of the
// tree), the head ({ seq, hash } of the newest record) in db 'meta' under a reserved key.
// The chain itself (sealing, verification) is audit/'s business.
import type { Database } from 'lmdb';
import type { AuditHead, AuditRecord, AuditStorage } from '../audit/audit-log.js';
import type { AuditSeal } from '../audit/chain.js';
import { Codes, YiqianError } from '../errors.js';
import type { Writer } from './durable.js';

/** Reserved meta key (MetaRepository refuses writes under 'store.'). */
export const AUDIT_HEAD_KEY = 'store.audit.head';

/** uint32 keys: 4.29e9 records, 136 years at 1,000 audited operations per second. */
const MAX_SEQ = 0xffffffff;

export class LmdbAuditStorage implements AuditStorage {
  constructor(
    private readonly db: Database<AuditRecord, number>,
    private readonly meta: Database<unknown, string>,
    private readonly writer: Writer,
  ) {}

  append(seal: AuditSeal): Promise<AuditRecord> {
    return this.writer.durable(() => this.appendInTransaction(seal));
  }

  /**
   * Appends inside the caller's write transaction (so a state change and its audit record
   * commit together). Only call from within Writer.durable/committed.
   */
  appendInTransaction(seal: AuditSeal): AuditRecord {
    const newest = this.newest();
    const head = this.meta.get(AUDIT_HEAD_KEY) as AuditHead | undefined;
    const headOk = newest === undefined ? head === undefined : head !== undefined && head.seq === newest.seq && head.hash === newest.hash;
    if (!headOk) {
      throw new YiqianError(
        Codes.INTEGRITY_CHECK_FAILED,
        500,
        { zh: '审计日志的链头与最新记录不符，已拒绝追加；请核查审计日志', en: 'audit log head does not match its newest record; appending refused — verify the audit chain' },
        { newestSeq: newest?.seq ?? 0, headSeq: head?.seq ?? 0 },
      );
    }
    const record = seal(newest);
    if (record.seq !== (newest?.seq ?? 0) + 1 || record.seq > MAX_SEQ) {
      throw new YiqianError(Codes.INTERNAL, 500, { zh: '审计序号错误', en: `audit seal produced seq ${record.seq} after ${newest?.seq ?? 0}` });
    }
    void this.db.put(record.seq, record);
    void this.meta.put(AUDIT_HEAD_KEY, { seq: record.seq, hash: record.hash } satisfies AuditHead);
    return record;
  }

  async scan(fromSeq: number, limit: number, filter?: (r: AuditRecord) => boolean): Promise<AuditRecord[]> {
    if (fromSeq > MAX_SEQ) return [];
    return this.writer.read(() => {
      const out: AuditRecord[] = [];
      for (const { value } of this.db.getRange({ start: fromSeq })) {
        if (filter && !filter(value)) continue;
        out.push(value);
        if (out.length >= limit) break;
      }
      return out;
    });
  }

  async head(): Promise<AuditHead | undefined> {
    return this.writer.read(() => this.meta.get(AUDIT_HEAD_KEY) as AuditHead | undefined);
  }

  private newest(): AuditRecord | undefined {
    for (const { value } of this.db.getRange({ reverse: true, limit: 1 })) return value;
    return undefined;
  }
}
