// Issued certificates on LMDB: db 'certs' keyed by serial (lower-case hex) → CertificateRecord
// (JSON), db 'certs-by-id' keyed by the issuance id (ULID, time-ordered) → serial, which gives
// listing and pagination in issuance order and keeps inserts at the right end of the tree.
// Every write is one durable transaction with its audit record (the AppRepository pattern).
//
// Queries scan certs-by-id from the cursor and filter: no secondary indexes yet. At hospital
// scale (10⁴–10⁵ certificates) a page costs at most one pass over the ids; a PostgreSQL
// implementation of the same interface would index employeeId, departmentId, status, notAfter.
import type { Database } from 'lmdb';
import { sealer } from '../audit/chain.js';
import { Codes, YiqianError, fail } from '../errors.js';
import type { CaId, CertificateQuery, CertificateRecord, CertificateRepository, Page } from '../pki/types.js';
import type { LmdbAuditStorage } from './audit-storage.js';
import type { Writer } from './durable.js';
import { reparseOnChange } from './reparse-on-change.js';

/** The serial is taken (409). */
export const CERT_EXISTS = 'CERT_EXISTS';

export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 500;

const SERIAL = /^[0-9a-f]{1,40}$/;
const ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

export function createCertificateRepository(
  dbs: { certs: Database<any, any>; byId: Database<any, any> },
  audit: LmdbAuditStorage,
  writer: Writer,
): Required<Pick<CertificateRepository, 'insertRenewal'>> & CertificateRepository {
  const certs = dbs.certs as Database<CertificateRecord, string>;
  const byId = dbs.byId as Database<string, string>;
  /** get(serial) reads the bytes every time and parses them when they changed (every evidence push checks its signer's status). */
  const certBySerial = reparseOnChange<CertificateRecord>(certs);

  const exists = (serial: string): YiqianError =>
    new YiqianError(CERT_EXISTS, 409, { zh: `序列号为 ${serial} 的证书已存在`, en: `a certificate with serial ${serial} already exists` }, { serial });

  function checkReplacement(serial: string, current: CertificateRecord | undefined, next: CertificateRecord): CertificateRecord {
    const rec = copy(next);
    if (rec.serial !== serial) fail(Codes.INTERNAL, 500, '证书更新改变了序列号', `an update of ${serial} changed its serial to ${rec.serial}`);
    if (current !== undefined && rec.id !== current.id) fail(Codes.INTERNAL, 500, '证书更新改变了标识', `an update of ${serial} changed its id`);
    return rec;
  }

  function putRecord(rec: CertificateRecord, isNew: boolean): void {
    void certs.put(rec.serial, rec);
    if (isNew) void byId.put(rec.id, rec.serial);
  }

  function* scan(fromCursor?: string): Generator<CertificateRecord> {
    for (const { key, value } of byId.getRange(fromCursor ? { start: fromCursor } : {})) {
      if (key === fromCursor) continue;
      const rec = certs.get(value);
      if (rec) yield rec;
    }
  }

  return {
    async insert(record, opts = {}) {
      const rec = copy(record);
      const seal = opts.audit && sealer(opts.audit);
      const outcome = await writer.durable(() => {
        if (certs.doesExist(rec.serial)) return 'taken' as const;
        if (byId.doesExist(rec.id)) fail(Codes.INTERNAL, 500, '证书标识重复', `certificate id ${rec.id} is taken`);
        putRecord(rec, true);
        if (seal) audit.appendInTransaction(seal);
        return 'stored' as const;
      });
      if (outcome === 'taken') throw exists(rec.serial);
      return rec;
    },

    async insertRenewal(record, renewed, change, opts = {}) {
      const rec = copy(record);
      if (!SERIAL.test(renewed)) fail(Codes.BAD_REQUEST, 400, '序列号无效', `invalid serial ${renewed}`);
      const seal = opts.audit && sealer(opts.audit);
      const outcome = await writer.durable(() => {
        if (certs.doesExist(rec.serial)) return 'taken' as const;
        const current = certs.get(renewed);
        const next = checkReplacement(renewed, current, change(current));
        putRecord(next, current === undefined);
        putRecord(rec, true);
        if (seal) audit.appendInTransaction(seal);
        return 'stored' as const;
      });
      if (outcome === 'taken') throw exists(rec.serial);
      return rec;
    },

    async get(serial) {
      if (typeof serial !== 'string' || !SERIAL.test(serial)) return undefined;
      return writer.read(() => certBySerial(serial));
    },

    async update(serial, change, opts = {}) {
      if (typeof serial !== 'string' || !SERIAL.test(serial)) fail(Codes.BAD_REQUEST, 400, '序列号无效', `invalid serial ${String(serial).slice(0, 64)}`);
      const seal = opts.audit && sealer(opts.audit);
      return writer.durable(() => {
        const current = certs.get(serial);
        const next = checkReplacement(serial, current, change(current));
        putRecord(next, current === undefined);
        if (seal) audit.appendInTransaction(seal);
        return next;
      });
    },

    async query(q, page = {}) {
      const limit = page.limit ?? DEFAULT_PAGE;
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) fail(Codes.BAD_REQUEST, 400, `limit 必须在 1 到 ${MAX_PAGE} 之间`, `limit must be 1–${MAX_PAGE}`);
      const cursor = page.cursor === undefined ? undefined : decodeCursor(page.cursor);
      const match = matcher(q);
      return writer.read(() => {
        const items: CertificateRecord[] = [];
        let more = false;
        const candidates: Iterable<CertificateRecord> = q.serial !== undefined ? single(certs.get(q.serial.toLowerCase()), cursor) : scan(cursor);
        for (const rec of candidates) {
          if (!match(rec)) continue;
          if (items.length === limit) {
            more = true;
            break;
          }
          items.push(rec);
        }
        const result: Page<CertificateRecord> = { items };
        if (more) result.next = encodeCursor(items[items.length - 1].id);
        return result;
      });
    },

    async revokedBy(caId: CaId) {
      return writer.read(() => {
        const out: CertificateRecord[] = [];
        for (const rec of scan()) if (rec.caId === caId && (rec.status === 'revoked' || rec.status === 'suspended')) out.push(rec);
        return out;
      });
    },

    async *all() {
      // In batches, so no read transaction is held across the consumer's awaits.
      let cursor: string | undefined;
      for (;;) {
        const batch = writer.read(() => {
          const out: CertificateRecord[] = [];
          for (const rec of scan(cursor)) {
            out.push(rec);
            if (out.length >= 500) break;
          }
          return out;
        });
        yield* batch;
        if (batch.length < 500) return;
        cursor = batch[batch.length - 1].id;
      }
    },
  };
}

function* single(rec: CertificateRecord | undefined, cursor: string | undefined): Generator<CertificateRecord> {
  if (rec && (cursor === undefined || rec.id > cursor)) yield rec;
}

function matcher(q: CertificateQuery): (r: CertificateRecord) => boolean {
  const subject = q.subject?.toLowerCase();
  const before = q.expiresBefore === undefined ? undefined : Date.parse(q.expiresBefore);
  const after = q.expiresAfter === undefined ? undefined : Date.parse(q.expiresAfter);
  if (Number.isNaN(before) || Number.isNaN(after)) fail(Codes.BAD_REQUEST, 400, '到期时间格式无效', 'expiresBefore/expiresAfter must be ISO 8601 times');
  return (r) =>
    (q.serial === undefined || r.serial === q.serial.toLowerCase()) &&
    (subject === undefined || r.subject.toLowerCase().includes(subject)) &&
    (q.employeeId === undefined || r.employeeId === q.employeeId) &&
    (q.departmentId === undefined || r.departmentId === q.departmentId) &&
    (q.status === undefined || r.status === q.status) &&
    (q.profile === undefined || r.profile === q.profile) &&
    (q.caId === undefined || r.caId === q.caId) &&
    (q.renewed === undefined || (r.renewedBy !== undefined) === q.renewed) &&
    (before === undefined || Date.parse(r.notAfter) <= before) &&
    (after === undefined || Date.parse(r.notAfter) >= after);
}

function encodeCursor(id: string): string {
  return Buffer.from(id, 'latin1').toString('base64url');
}

function decodeCursor(cursor: string): string {
  const id = typeof cursor === 'string' && cursor.length <= 64 ? Buffer.from(cursor, 'base64url').toString('latin1') : '';
  if (!ID.test(id)) fail(Codes.BAD_REQUEST, 400, '分页游标无效', 'invalid cursor');
  return id;
}

/**
 * A plain JSON copy (what reads back). Not a field whitelist: other parts of the CA capability
 * (revocation, OCSP) may add optional fields to CertificateRecord and must not lose them here.
 */
function copy(r: CertificateRecord): CertificateRecord {
  if (typeof r !== 'object' || r === null) fail(Codes.BAD_REQUEST, 400, '证书记录无效', 'certificate record must be an object');
  if (typeof r.serial !== 'string' || !SERIAL.test(r.serial)) fail(Codes.BAD_REQUEST, 400, '证书序列号无效', 'certificate serial must be 1–40 lower-case hex digits');
  if (typeof r.id !== 'string' || !ID.test(r.id)) fail(Codes.BAD_REQUEST, 400, '证书标识无效', 'certificate id must be a ULID');
  return JSON.parse(JSON.stringify(r)) as CertificateRecord;
}
