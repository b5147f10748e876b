// A record's list-page summary (EvidenceRecordSummary in types.ts): what GET /evidence/records
// answers per item. The repository keeps it beside each record at write time, so a page of 50
// parses 50 summaries of a few hundred bytes rather than 50 records of ~6 KB.
import type { EvidenceRecord, EvidenceRecordSummary } from './types.js';

export function recordSummary(r: EvidenceRecord): EvidenceRecordSummary {
  const v = r.verification;
  const signer = v?.signer;
  return {
    id: r.id,
    kind: r.kind,
    receivedAt: r.receivedAt,
    project: r.project,
    appId: r.appId,
    ...(r.system !== undefined ? { system: r.system } : {}),
    ...(r.departmentId !== undefined ? { departmentId: r.departmentId } : {}),
    ...(r.patientIdMasked !== undefined ? { patientIdMasked: r.patientIdMasked } : {}),
    ...(r.businessSerial !== undefined ? { businessSerial: r.businessSerial } : {}),
    ...(r.documentType !== undefined ? { documentType: r.documentType } : {}),
    ...(v ? { verdict: { valid: v.valid, code: v.code } } : {}),
    ...(signer ? { signer: { subject: signer.subject, serial: signer.serial } } : {}),
    tier: r.tier,
  };
}
