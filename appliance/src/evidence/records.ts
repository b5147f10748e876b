// Reading evidence records (issue 6 item 2): detail, query and re-verification on demand, for the
// app's own project only. Another project's record id answers 404 EVIDENCE_NOT_FOUND, exactly as
// an id that does not exist — never 403 — so ids do not leak across projects.
//
// Re-verification answers the stored verdict and a fresh one made now with the same judging-time
// rules as ingestion (evidence/ingest.ts): a valid time-stamp's genTime, else the record's
// receipt time — so a certificate revoked AFTER receipt leaves the record valid, one revoked
// before (once the CRL says so) does not.
import { YiqianError } from '../errors.js';
import type { EvidenceIndexQuery, EvidenceRepository } from '../store/evidence-repository.js';
import { EvidenceCodes, EvidenceRefusal, verifySignatureEvidence, type IngestCaller, type IngestDeps, type VerdictSummary } from './ingest.js';
import type { PatientIdProtector } from './patient-id.js';
import type { BlobStore, EvidenceQuery, EvidenceRecord, EvidenceRecordSummary, EvidenceRejection, Page } from './types.js';
import type { VerificationReport } from '../signing/types.js';

/** A record as answered: never the sealed patient id (its masked form and HMAC index stay). */
export type EvidenceRecordView = Omit<EvidenceRecord, 'patientIdSealed'>;

export interface Reverification {
  id: string;
  stored?: VerificationReport;
  fresh: VerificationReport | { valid: false; code: string; reason: string };
  verifiedAt: string;
}

export interface EvidenceRecords {
  detail(caller: IngestCaller, id: string): Promise<EvidenceRecordView>;
  /** Summaries (evidence/record-summary.ts): the CMS and report stay with detail(). */
  query(caller: IngestCaller, q: Omit<EvidenceQuery, 'project'>, page?: { limit?: number; cursor?: string }): Promise<Page<EvidenceRecordSummary>>;
  reverify(caller: IngestCaller, id: string): Promise<Reverification>;
  rejections(caller: IngestCaller, page?: { limit?: number; cursor?: string }): Promise<Page<EvidenceRejection>>;
}

export interface RecordsDeps extends Pick<IngestDeps, 'verification' | 'trust' | 'revocation'> {
  records: Pick<EvidenceRepository, 'get' | 'summaries' | 'rejections'>;
  blobs: Pick<BlobStore, 'read'>;
  patientIds: Pick<PatientIdProtector, 'indexes'>;
  clock?: () => Date;
}

export function recordView(r: EvidenceRecord): EvidenceRecordView {
  const { patientIdSealed: _sealed, ...view } = r;
  return view;
}

export function verdictOf(r: VerificationReport): VerdictSummary {
  return { valid: r.valid, code: r.code, gbtCode: r.gbtCode, judgedAt: r.judgedAt, judgedAtSource: r.judgedAtSource, checks: r.checks.map((c) => ({ name: c.name, ok: c.ok, label: c.label })) };
}

function notFound(id: string): YiqianError {
  return new YiqianError(EvidenceCodes.EVIDENCE_NOT_FOUND, 404, { zh: `存证记录 ${id.slice(0, 40)} 不存在`, en: `no evidence record ${id.slice(0, 40)} in this project` }, { id: id.slice(0, 40) });
}

async function readAll(source: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of source) parts.push(p);
  return Buffer.concat(parts);
}

export function createEvidenceRecords(deps: RecordsDeps): EvidenceRecords {
  const clock = deps.clock ?? (() => new Date());

  async function own(caller: IngestCaller, id: string): Promise<EvidenceRecord> {
    if (typeof id !== 'string') throw notFound(String(id));
    const rec = await deps.records.get(id);
    if (!rec || rec.project !== caller.project) throw notFound(id);
    return rec;
  }

  return {
    async detail(caller, id) {
      return recordView(await own(caller, id));
    },

    async query(caller, q, page = {}) {
      const { patientId, ...rest } = q;
      const iq: EvidenceIndexQuery = { ...rest, project: caller.project };
      if (patientId !== undefined) {
        if (typeof patientId !== 'string' || patientId.length === 0 || [...patientId].length > 128) {
          throw new YiqianError('EVIDENCE_QUERY_INVALID', 400, { zh: 'patientId 必须是 1 到 128 个字符', en: 'patientId must be 1–128 characters' }, { field: 'patientId' });
        }
        // One data key in use today: its blind index (evidence/patient-id.ts).
        [iq.patientIdIndex] = await deps.patientIds.indexes(patientId);
      }
      return deps.records.summaries(iq, page);
    },

    async reverify(caller, id) {
      const rec = await own(caller, id);
      const sig = rec.signature;
      if (!sig) {
        throw new YiqianError(EvidenceCodes.EVIDENCE_NOT_SIGNED, 409, { zh: '该存证记录没有签名，无法重新验证', en: `evidence record ${id} carries no signature to verify` }, { id, kind: rec.kind });
      }
      const original = rec.original ? await readAll(deps.blobs.read(rec.original.blobId)) : undefined;
      // A raw signature over a digest was verified against that digest (the contentDigest).
      const digest = !original && sig.format === 'raw' ? { algorithm: rec.contentDigest.algorithm, value: Buffer.from(rec.contentDigest.value, 'hex') } : undefined;
      const verifiedAt = clock().toISOString();
      const checked = await verifySignatureEvidence(deps, {
        signature: {
          format: sig.format,
          value: Buffer.from(sig.value, 'base64'),
          ...(sig.algorithm ? { algorithm: sig.algorithm } : {}),
          ...(sig.certificate ? { certificate: Buffer.from(sig.certificate, 'base64') } : {}),
          // The token kept (sent beside the signature, or the CMS's own: checking that again is harmless).
          ...(sig.timestampToken ? { timestampToken: Buffer.from(sig.timestampToken, 'base64') } : {}),
        },
        ...(original ? { original } : {}),
        ...(digest ? { digest } : {}),
        receivedAt: new Date(rec.receivedAt),
      });
      let fresh: Reverification['fresh'];
      if (checked instanceof EvidenceRefusal) fresh = checked.report ?? { valid: false, code: checked.code, reason: checked.reason };
      else {
        const { content: _content, ...report } = checked.report;
        fresh = report;
      }
      return { id: rec.id, ...(rec.verification ? { stored: rec.verification } : {}), fresh, verifiedAt };
    },

    async rejections(caller, page = {}) {
      return deps.records.rejections(caller.project, page);
    },
  };
}
