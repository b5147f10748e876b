// Evidence ingestion (issue 6 item 1): verify, then store. A signature record is verified at
// GB/T 38629 level 2 — the signature, the signer's path to a trusted root and its revocation at
// the judging time, and a time-stamp with its imprint — before anything is written; one that
// fails is answered 422 with the verdict's code and kept only as a rejection (reason, app,
// department) for the supervision statistics. Nothing partial is stored: the record, its
// indexes, its Merkle leaf and its counts commit in one durable transaction
// (store/evidence-repository.ts), and the answer leaves only after it (ARCHITECTURE.md §5).
//
// Judging time (signing/verify-service.ts, ETSI EN 319 102-1 §5.6.2): a valid signature
// time-stamp's genTime — inside a CAdES-T CMS, or sent beside the signature (its imprint must be
// the hash of the signature value, RFC 3161 Appendix A; signing/timestamp-check.ts) — else the
// appliance's receipt time, which it vouches for. Never the signer-stated signingTime.
//
// Contents: the original when sent is kept as a content-addressed blob (BlobStore) and its SM3 is
// the record's contentDigest; else the digest the app sent (for a raw signature over a digest,
// the very digest that was signed — for SM2 e = SM3(Z_A ‖ M), GB/T 38629); an attached CMS
// carries its original and its SM3 is the contentDigest.
import { digest as hashOf } from '../crypto/hash.js';
import { parseSignedData, signedAttribute, type ParsedSignedData } from '../asn1/cms-signed-data.js';
import { OID_MESSAGE_DIGEST } from '../asn1/tsp.js';
import { Tag } from '../crypto/der.js';
import { OID } from '../crypto/oids.js';
import { YiqianError } from '../errors.js';
import { ReportCodes, gbtCodeOf } from '../signing/report-codes.js';
import { checkSignatureTimestamp, type TimestampCheck, type TimestampTrust } from '../signing/timestamp-check.js';
import type { ReportCheck, RevocationChecker, TrustStore, VerificationReport, VerificationService } from '../signing/types.js';
import { CHECK_LABELS } from '../signing/verify-service.js';
import { newId, nowIso } from '../store/ids.js';
import { receivedAtOf, type EvidenceRecordFields, type EvidenceRepository } from '../store/evidence-repository.js';
import { leafData } from './leaf.js';
import type { PatientIdProtector } from './patient-id.js';
import type { BlobStore, EvidenceDigestAlgorithm, EvidenceKind, EvidenceMetadata, EvidenceRecord, EvidenceRejection, ProjectDirectory } from './types.js';

export const EvidenceCodes = {
  /** A field of the wrong type or value (its name in `field`) (400). */
  EVIDENCE_REQUEST_INVALID: 'EVIDENCE_REQUEST_INVALID',
  /** A raw signature needs exactly one of original and digest (400). */
  ORIGINAL_OR_DIGEST_REQUIRED: 'ORIGINAL_OR_DIGEST_REQUIRED',
  /** A detached CMS needs the original to be verified (400). */
  ORIGINAL_REQUIRED: 'ORIGINAL_REQUIRED',
  /** A raw signature needs the signer certificate (400). */
  CERTIFICATE_REQUIRED: 'CERTIFICATE_REQUIRED',
  /** The digest is not as long as its algorithm's output (400; kept as a rejection). */
  DIGEST_LENGTH_INVALID: 'DIGEST_LENGTH_INVALID',
  /** No record of that id in the caller's project (404, also for another project's ids). */
  EVIDENCE_NOT_FOUND: 'EVIDENCE_NOT_FOUND',
  /** Re-verification of a record that carries no signature (409). */
  EVIDENCE_NOT_SIGNED: 'EVIDENCE_NOT_SIGNED',
  /** A batch push with no items (400). */
  EVIDENCE_BATCH_EMPTY: 'EVIDENCE_BATCH_EMPTY',
  /** A batch push of more than MAX_EVIDENCE_BATCH items (413). */
  EVIDENCE_BATCH_TOO_LARGE: 'EVIDENCE_BATCH_TOO_LARGE',
} as const;

export const DIGEST_LENGTHS: Record<EvidenceDigestAlgorithm, number> = { sm3: 32, sha256: 32, sha384: 48, sha512: 64 };
export const MAX_METADATA_CHARS = 128;
const METADATA_FIELDS = ['system', 'departmentId', 'patientId', 'businessSerial', 'documentType'] as const;

/** Raw signature algorithms as the signing API names them (signing/sign-service.ts). */
const RAW_ALGORITHMS: Record<string, { hash?: 'sha256' | 'sha384' | 'sha512'; rsaPadding?: 'pkcs1' | 'pss'; digest: EvidenceDigestAlgorithm }> = {
  'SM2-SM3': { digest: 'sm3' },
  'ECDSA-SHA256': { hash: 'sha256', digest: 'sha256' },
  'ECDSA-SHA384': { hash: 'sha384', digest: 'sha384' },
  'ECDSA-SHA512': { hash: 'sha512', digest: 'sha512' },
  'RSA-PKCS1-SHA256': { hash: 'sha256', rsaPadding: 'pkcs1', digest: 'sha256' },
  'RSA-PKCS1-SHA384': { hash: 'sha384', rsaPadding: 'pkcs1', digest: 'sha384' },
  'RSA-PKCS1-SHA512': { hash: 'sha512', rsaPadding: 'pkcs1', digest: 'sha512' },
  'RSA-PSS-SHA256': { hash: 'sha256', rsaPadding: 'pss', digest: 'sha256' },
  'RSA-PSS-SHA384': { hash: 'sha384', rsaPadding: 'pss', digest: 'sha384' },
  'RSA-PSS-SHA512': { hash: 'sha512', rsaPadding: 'pss', digest: 'sha512' },
};
export const RAW_ALGORITHM_NAMES = Object.keys(RAW_ALGORITHMS);

/** zh-CN of the verdict codes an ingestion is refused with. */
const VERDICT_ZH: Record<string, string> = {
  SIGNATURE_INVALID: '签名无效',
  CONTENT_ALTERED: '原文与签名不符',
  CMS_MALFORMED: 'CMS 签名格式错误',
  SIGNER_NOT_FOUND: '找不到签名者证书',
  ALGORITHM_UNSUPPORTED: '签名算法不受支持',
  CERT_DECODE_FAILED: '证书格式错误',
  CERT_EXPIRED: '签名时证书已过期',
  CERT_NOT_YET_VALID: '签名时证书尚未生效',
  CERT_UNTRUSTED: '证书不受信任',
  CERT_PATH_INVALID: '证书链无效',
  CERT_SIGNATURE_INVALID: '证书签名无效',
  CERT_REVOKED: '签名时证书已吊销',
  REVOCATION_UNKNOWN: '无法确定证书状态',
  TIMESTAMP_INVALID: '时间戳无效或与签名不符',
  DIGEST_LENGTH_INVALID: '摘要长度错误',
};

export interface IngestCaller {
  appId: string;
  project: string;
}

export interface DigestInput {
  algorithm: EvidenceDigestAlgorithm;
  value: Buffer;
}

export interface SignatureInput {
  format: 'cms' | 'raw';
  /** DER CMS ContentInfo, or the raw signature value. */
  value: Buffer;
  /** Raw: SM2-SM3, ECDSA-SHA256 …, RSA-PSS-SHA256 (RAW_ALGORITHM_NAMES); default by the certificate key. */
  algorithm?: string;
  certificate?: Buffer;
  chain?: Buffer[];
  timestampToken?: Buffer;
  signingTime?: string;
  statedSigner?: Record<string, string>;
}

export interface SignatureEvidenceInput {
  /** The original (kept as a blob); or `digest`. */
  original?: Buffer;
  mediaType?: string;
  digest?: DigestInput;
  signature: SignatureInput;
  metadata?: EvidenceMetadata;
}

export interface DigestEvidenceInput {
  digest: DigestInput;
  metadata?: EvidenceMetadata;
}

export interface VerdictSummary {
  valid: boolean;
  code: string;
  gbtCode?: number;
  judgedAt?: string;
  judgedAtSource?: VerificationReport['judgedAtSource'];
  checks: Pick<ReportCheck, 'name' | 'ok' | 'label'>[];
}

export interface IngestResult {
  id: string;
  verdict: VerdictSummary;
  leafIndex: number;
  leafHash: string;
  receivedAt: string;
}

export interface IngestDeps {
  records: Pick<EvidenceRepository, 'append' | 'appendBatch' | 'rejection'>;
  projects: ProjectDirectory;
  verification: VerificationService;
  /** Trust material for a time-stamp sent beside a signature (the verification service's trust store). */
  trust: Pick<TrustStore, 'material'>;
  /**
   * Revocation of the TSA's certificate path at genTime for such a time-stamp (level 2, as the
   * verification service checks a token inside a CMS). Without it the TSA path is not checked
   * for revocation.
   */
  revocation?: RevocationChecker;
  blobs: Pick<BlobStore, 'putBuffer'>;
  patientIds: PatientIdProtector;
}

/** Trust for a separately sent time-stamp: the anchors, and the TSA path's revocation when known. */
async function timestampTrust(deps: Pick<IngestDeps, 'trust' | 'revocation'>): Promise<TimestampTrust> {
  const material = await deps.trust.material();
  return deps.revocation ? { ...material, revocation: deps.revocation } : material;
}

/** One item of a batch: its answer, or the error it would have been answered alone (a refusal's rejection is kept). */
export type BatchItemResult = { ok: true; result: IngestResult } | { ok: false; error: unknown };

/** Items of one batch verified at once (the verification and the patient-id seal are async). */
const BATCH_CONCURRENCY = 16;
export const MAX_EVIDENCE_BATCH = 100;

export interface EvidenceIngest {
  signature(caller: IngestCaller, input: SignatureEvidenceInput): Promise<IngestResult>;
  /**
   * Each input verified as by signature(); the valid ones stored and the refusals kept as
   * rejections, all in ONE durable transaction; answered per item, in order. An item given as an
   * Error (e.g. it did not parse) is answered with it and touches nothing.
   */
  signatureBatch(caller: IngestCaller, inputs: readonly (SignatureEvidenceInput | Error)[]): Promise<BatchItemResult[]>;
  digest(caller: IngestCaller, input: DigestEvidenceInput): Promise<IngestResult>;
}

function invalid(field: string, zh: string, en: string): never {
  throw new YiqianError(EvidenceCodes.EVIDENCE_REQUEST_INVALID, 400, { zh, en }, { field });
}

/** The metadata fields, each a string of 1–128 characters, nothing else. */
export function checkMetadata(m: unknown): EvidenceMetadata {
  if (m === undefined) return {};
  if (typeof m !== 'object' || m === null || Array.isArray(m)) invalid('metadata', 'metadata 必须是对象', 'metadata must be an object');
  const out: EvidenceMetadata = {};
  for (const [k, v] of Object.entries(m)) {
    if (!(METADATA_FIELDS as readonly string[]).includes(k)) invalid(`metadata.${k}`, `metadata 不接受字段 ${k}`, `metadata takes ${METADATA_FIELDS.join(', ')}, not ${k}`);
    if (v === undefined) continue;
    if (typeof v !== 'string' || v.trim().length === 0 || [...v].length > MAX_METADATA_CHARS || hasControl(v)) {
      invalid(`metadata.${k}`, `metadata.${k} 必须是 1 到 ${MAX_METADATA_CHARS} 个字符`, `metadata.${k} must be 1–${MAX_METADATA_CHARS} characters (no control characters)`);
    }
    out[k as keyof EvidenceMetadata] = v;
  }
  return out;
}

function hasControl(v: string): boolean {
  for (let i = 0; i < v.length; i++) if (v.charCodeAt(i) < 0x20) return true;
  return false;
}

function checkDigestShape(d: unknown, field: string): DigestInput {
  if (typeof d !== 'object' || d === null) invalid(field, `${field} 必须是 {algorithm, value}`, `${field} must be {algorithm, value}`);
  const { algorithm, value } = d as Partial<DigestInput>;
  if (typeof algorithm !== 'string' || !(algorithm in DIGEST_LENGTHS)) invalid(`${field}.algorithm`, `${field}.algorithm 必须是 sm3、sha256、sha384 或 sha512`, `${field}.algorithm must be sm3, sha256, sha384 or sha512`);
  if (!Buffer.isBuffer(value) || value.length === 0) invalid(`${field}.value`, `${field}.value 不能为空`, `${field}.value must be non-empty bytes`);
  return { algorithm, value };
}

function summary(r: VerificationReport): VerdictSummary {
  return {
    valid: r.valid,
    code: r.code,
    gbtCode: r.gbtCode,
    judgedAt: r.judgedAt,
    judgedAtSource: r.judgedAtSource,
    checks: r.checks.map((c) => ({ name: c.name, ok: c.ok, label: c.label })),
  };
}

function firstFailure(r: VerificationReport): string {
  const c = r.checks.find((x) => x.ok === false);
  return c ? `${c.name}: ${c.reason ?? 'failed'}` : r.code;
}

/** A refusal: the verdict's code, 422, zh/en, the rejection's id. */
export class EvidenceRefusal {
  constructor(
    readonly code: string,
    readonly status: number,
    readonly reason: string,
    readonly report?: VerificationReport,
  ) {}
}

export interface SignatureCheckInput {
  signature: SignatureInput;
  original?: Buffer;
  digest?: DigestInput;
  /** The receipt time the appliance vouches for (the judging time when no time-stamp is valid). */
  receivedAt: Date;
}

/**
 * Verifies a signature record's signature at level 2 by the judging-time rules above; shared by
 * ingestion and re-verification. Resolves with the report, or an EvidenceRefusal; throws
 * (4xx) only for a request that cannot be verified at all.
 */
export async function verifySignatureEvidence(
  deps: Pick<IngestDeps, 'verification' | 'trust' | 'revocation'>,
  input: SignatureCheckInput,
): Promise<{ report: VerificationReport; content?: Buffer; contentSm3?: Buffer; token?: Buffer } | EvidenceRefusal> {
  const sig = input.signature;
  if (sig.format === 'raw') {
    if (!sig.certificate) throw new YiqianError(EvidenceCodes.CERTIFICATE_REQUIRED, 400, { zh: '裸签名须提供签名者证书', en: 'a raw signature needs signature.certificate' }, { field: 'signature.certificate' });
    if ((input.original === undefined) === (input.digest === undefined)) {
      throw new YiqianError(EvidenceCodes.ORIGINAL_OR_DIGEST_REQUIRED, 400, { zh: '裸签名须提供原文或摘要之一', en: 'a raw signature needs exactly one of original and digest' });
    }
    const alg = sig.algorithm === undefined ? undefined : RAW_ALGORITHMS[sig.algorithm];
    if (sig.algorithm !== undefined && !alg) invalid('signature.algorithm', `signature.algorithm 必须是 ${RAW_ALGORITHM_NAMES.join('、')} 之一`, `signature.algorithm must be one of ${RAW_ALGORITHM_NAMES.join(', ')}`);
    let hash = alg?.hash;
    if (input.digest) {
      if (alg && alg.digest !== input.digest.algorithm) invalid('digest.algorithm', `${sig.algorithm} 签名的摘要算法是 ${alg.digest}`, `a ${sig.algorithm} signature signs a ${alg.digest} digest, not ${input.digest.algorithm}`);
      if (!alg && input.digest.algorithm !== 'sm3') hash = input.digest.algorithm as 'sha256' | 'sha384' | 'sha512';
    }
    let ts: TimestampCheck | undefined;
    if (sig.timestampToken) {
      ts = await checkSignatureTimestamp(sig.timestampToken, sig.value, await timestampTrust(deps));
      if (!ts.ok || !ts.genTime) return new EvidenceRefusal(ReportCodes.TIMESTAMP_INVALID, 422, ts.reason ?? 'the time-stamp token does not verify');
    }
    const report = await deps.verification.verifyRaw({
      certificate: sig.certificate,
      signature: sig.value,
      ...(input.original !== undefined ? { data: input.original } : { digest: input.digest!.value }),
      ...(hash ? { hash } : {}),
      ...(alg?.rsaPadding ? { rsaPadding: alg.rsaPadding } : {}),
      level: 2,
      at: ts?.genTime ?? input.receivedAt,
    });
    const full = ts ? withTimestamp(report, ts) : report;
    if (!full.valid) return new EvidenceRefusal(full.code, 422, firstFailure(full), full);
    return { report: full, ...(sig.timestampToken ? { token: sig.timestampToken } : {}) };
  }

  // CMS (RFC 5652 / GB/T 35275).
  let sd: ParsedSignedData | undefined;
  try {
    sd = parseSignedData(sig.value);
  } catch {
    sd = undefined; // verifyCms reports CMS_MALFORMED with its reason
  }
  const detached = sd !== undefined && sd.content === undefined;
  if (detached && input.original === undefined) {
    throw new YiqianError(EvidenceCodes.ORIGINAL_REQUIRED, 400, { zh: '分离式 CMS 签名须提供原文', en: 'a detached CMS signature needs the original (a digest alone cannot be checked against it)' }, { field: 'original' });
  }
  let ts: TimestampCheck | undefined;
  if (sig.timestampToken) {
    const si = sd?.signerInfos.length === 1 ? sd.signerInfos[0] : undefined;
    ts = si ? await checkSignatureTimestamp(sig.timestampToken, si.signature, await timestampTrust(deps)) : { ok: false, imprintOk: null, reason: 'the CMS has no single SignerInfo to time-stamp' };
    if (!ts.ok || !ts.genTime) return new EvidenceRefusal(ReportCodes.TIMESTAMP_INVALID, 422, ts.reason ?? 'the time-stamp token does not verify');
  }
  const report = await deps.verification.verifyCms({
    cms: sig.value,
    ...(sd ? { parsed: sd } : {}),
    ...(detached ? { content: input.original } : {}),
    level: 2,
    at: ts?.genTime ?? input.receivedAt,
  });
  // A valid separate token moves the judging time like an embedded one: the report says so.
  const full = ts && report.judgedAtSource !== 'timestamp' ? withTimestamp(report, ts) : report;
  if (!full.valid) return new EvidenceRefusal(full.code, 422, firstFailure(full), full);
  const content = detached ? input.original! : sd?.content;
  // An attached CMS with an original or digest beside it: they must be what was signed.
  if (!detached && content) {
    if (input.original !== undefined && !input.original.equals(content)) return new EvidenceRefusal(ReportCodes.CONTENT_ALTERED, 422, 'the original sent differs from the content the CMS carries', full);
    if (input.digest && !hashOf(input.digest.algorithm, content).equals(input.digest.value)) return new EvidenceRefusal(ReportCodes.CONTENT_ALTERED, 422, 'the digest sent is not the digest of the content the CMS carries', full);
  }
  const embedded = embeddedToken(sd);
  const token = sig.timestampToken ?? embedded;
  const contentSm3 = !detached && content ? verifiedSm3MessageDigest(sd) : undefined;
  return { report: full, ...(content ? { content } : {}), ...(contentSm3 ? { contentSm3 } : {}), ...(token ? { token } : {}) };
}

/**
 * The SM3 of the attached content, read from the signed messageDigest attribute of the only
 * SignerInfo when it digests with SM3: call only once the report is valid — its contentIntact
 * check (RFC 5652 §11.2, signing/cms-verify.ts) proved that value equal to the content's SM3,
 * so the record's contentDigest needs no second pass over the content.
 */
function verifiedSm3MessageDigest(sd: ParsedSignedData | undefined): Buffer | undefined {
  const si = sd?.signerInfos.length === 1 ? sd.signerInfos[0] : undefined;
  if (si?.digestAlgorithm.oid !== OID.sm3) return undefined;
  const md = signedAttribute(si, OID_MESSAGE_DIGEST)?.[0];
  return md?.tag === Tag.OCTET_STRING && md.value.length === 32 ? Buffer.from(md.value) : undefined;
}

/** The CAdES-T token of the only SignerInfo, if any (id-aa-signatureTimeStampToken). */
function embeddedToken(sd: ParsedSignedData | undefined): Buffer | undefined {
  const si = sd?.signerInfos.length === 1 ? sd.signerInfos[0] : undefined;
  const attr = si?.unsignedAttrs.find((a) => a.type === '1.2.840.113549.1.9.16.2.14');
  return attr?.values.length === 1 ? Buffer.from(attr.values[0].raw) : undefined;
}

/** The report of a signature judged at a separately sent time-stamp's genTime, with the time-stamp checks in it. */
function withTimestamp(r: VerificationReport, ts: TimestampCheck): VerificationReport {
  const checks: ReportCheck[] = r.checks.filter((c) => c.name !== 'timestamp' && c.name !== 'timestampImprint');
  const at = checks.findIndex((c) => c.name === 'certificateValidity');
  const tsChecks: ReportCheck[] = [
    { name: 'timestampImprint', ok: ts.imprintOk, label: CHECK_LABELS.timestampImprint, ...(ts.imprintOk ? {} : { reason: ts.imprintReason ?? ts.reason }) },
    { name: 'timestamp', ok: ts.ok, label: CHECK_LABELS.timestamp, ...(ts.ok ? {} : { reason: ts.reason }) },
  ];
  checks.splice(at < 0 ? checks.length : at, 0, ...tsChecks);
  const failed = checks.find((c) => c.ok === false);
  const code = failed ? r.code : ReportCodes.OK;
  return {
    ...r,
    valid: !failed,
    code,
    gbtCode: gbtCodeOf(code),
    judgedAt: ts.genTime!.toISOString(),
    judgedAtSource: 'timestamp',
    timestamp: { genTime: ts.genTime?.toISOString() ?? '', tsa: ts.tsa ?? '', serial: ts.serial ?? '', ok: ts.ok, ...(ts.reason ? { reason: ts.reason } : {}) },
    checks,
  };
}

/** fn over items with at most `limit` in flight; results in order. */
async function mapBounded<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i], i);
    }),
  );
  return out;
}

function addYears(iso: string, years: number): string {
  const d = new Date(iso);
  d.setUTCFullYear(d.getUTCFullYear() + years);
  return d.toISOString();
}

export function createEvidenceIngest(deps: IngestDeps): EvidenceIngest {
  /** Keeps the rejection (durably, counted) and throws the refusal. */
  async function refuse(caller: IngestCaller, kind: EvidenceKind, metadata: EvidenceMetadata, r: EvidenceRefusal): Promise<never> {
    const rejection = rejectionOf(caller, kind, metadata, r);
    await deps.records.rejection(rejection);
    throw refusalError(r, rejection);
  }

  function rejectionOf(caller: IngestCaller, kind: EvidenceKind, metadata: EvidenceMetadata, r: EvidenceRefusal): EvidenceRejection {
    return {
      id: newId(),
      at: nowIso(),
      project: caller.project,
      appId: caller.appId,
      ...(metadata.departmentId ? { departmentId: metadata.departmentId } : {}),
      kind,
      code: r.code,
      reason: r.reason.slice(0, 500),
    };
  }

  function refusalError(r: EvidenceRefusal, rejection: EvidenceRejection): YiqianError {
    const zh = VERDICT_ZH[r.code] ?? '签名验证未通过';
    return new YiqianError(r.code, r.status, { zh: `拒收：${zh}`, en: `refused: ${r.reason}` }, {
      rejectionId: rejection.id,
      ...(r.report ? { verdict: summary(r.report) } : {}),
    });
  }

  function digestLengthRefusal(d: DigestInput): EvidenceRefusal | undefined {
    const want = DIGEST_LENGTHS[d.algorithm];
    return d.value.length === want ? undefined : new EvidenceRefusal(EvidenceCodes.DIGEST_LENGTH_INVALID, 400, `a ${d.algorithm} digest has ${want} bytes, got ${d.value.length}`);
  }

  async function digestLength(caller: IngestCaller, kind: EvidenceKind, metadata: EvidenceMetadata, d: DigestInput): Promise<void> {
    const r = digestLengthRefusal(d);
    if (r) await refuse(caller, kind, metadata, r);
  }

  async function store(caller: IngestCaller, id: string, retentionYears: number, metadata: EvidenceMetadata, rest: Pick<EvidenceRecordFields, 'kind' | 'contentDigest' | 'original' | 'signature' | 'verification'>): Promise<EvidenceRecord> {
    return deps.records.append(...(await fieldsOf(caller, id, retentionYears, metadata, rest)));
  }

  async function fieldsOf(caller: IngestCaller, id: string, retentionYears: number, metadata: EvidenceMetadata, rest: Pick<EvidenceRecordFields, 'kind' | 'contentDigest' | 'original' | 'signature' | 'verification'>): Promise<[EvidenceRecordFields, Buffer]> {
    const receivedAt = receivedAtOf(id);
    const { patientId, ...meta } = metadata;
    const fields: EvidenceRecordFields = {
      id,
      kind: rest.kind,
      project: caller.project,
      appId: caller.appId,
      ...meta,
      ...(patientId !== undefined ? await deps.patientIds.seal(caller.project, id, patientId) : {}),
      receivedAt,
      contentDigest: rest.contentDigest,
      ...(rest.original ? { original: rest.original } : {}),
      ...(rest.signature ? { signature: rest.signature } : {}),
      ...(rest.verification ? { verification: rest.verification } : {}),
      retainUntil: addYears(receivedAt, retentionYears),
    };
    return [fields, leafData(fields)];
  }

  /** A signature record checked and verified, ready to store — or refused (to keep as a rejection). Throws 4xx for a request that cannot be verified at all. */
  async function prepareSignature(caller: IngestCaller, input: SignatureEvidenceInput, retentionYears: number): Promise<{ fields: EvidenceRecordFields; leaf: Buffer; verdict: VerdictSummary } | { refusal: EvidenceRefusal; metadata: EvidenceMetadata }> {
    // Received now: the id carries the instant (receivedAt), set before verification.
    const id = newId();
    if (typeof input !== 'object' || input === null) invalid('body', '请求体必须是对象', 'the request must be an object');
    const metadata = checkMetadata(input.metadata);
    const sig = input.signature;
    if (typeof sig !== 'object' || sig === null) invalid('signature', '缺少 signature', 'signature is required');
    if (sig.format !== 'cms' && sig.format !== 'raw') invalid('signature.format', 'signature.format 必须是 cms 或 raw', 'signature.format must be cms or raw');
    if (!Buffer.isBuffer(sig.value) || sig.value.length === 0) invalid('signature.value', '缺少签名值', 'signature.value must be non-empty bytes');
    if (input.original !== undefined && (!Buffer.isBuffer(input.original) || input.original.length === 0)) invalid('original', 'original 不能为空', 'original must be non-empty bytes');
    if (input.mediaType !== undefined && (typeof input.mediaType !== 'string' || !/^[\w.+-]+\/[\w.+-]+$/.test(input.mediaType) || input.mediaType.length > 128)) invalid('mediaType', 'mediaType 必须是 MIME 类型', 'mediaType must be a MIME type such as application/pdf');
    const dg = input.digest === undefined ? undefined : checkDigestShape(input.digest, 'digest');
    if (sig.signingTime !== undefined && (typeof sig.signingTime !== 'string' || !/^\d{4}-\d{2}-\d{2}T/.test(sig.signingTime) || Number.isNaN(Date.parse(sig.signingTime)))) invalid('signature.signingTime', 'signingTime 必须是 ISO 8601 时间', 'signature.signingTime must be an ISO 8601 time');
    if (sig.statedSigner !== undefined) {
      const s = sig.statedSigner as unknown;
      if (typeof s !== 'object' || s === null || Array.isArray(s) || Object.keys(s).length > 16 || !Object.entries(s).every(([k, v]) => k.length <= 64 && typeof v === 'string' && [...v].length <= MAX_METADATA_CHARS)) {
        invalid('signature.statedSigner', 'statedSigner 必须是至多 16 个字符串字段的对象', 'signature.statedSigner must be an object of at most 16 string fields (≤ 128 characters each)');
      }
    }
    if (dg) {
      const refusal = digestLengthRefusal(dg);
      if (refusal) return { refusal, metadata };
    }

    const checked = await verifySignatureEvidence(deps, { signature: sig, ...(input.original ? { original: input.original } : {}), ...(dg ? { digest: dg } : {}), receivedAt: new Date(receivedAtOf(id)) });
    if (checked instanceof EvidenceRefusal) return { refusal: checked, metadata };

    let original: EvidenceRecord['original'];
    let contentDigest: EvidenceRecord['contentDigest'];
    if (input.original !== undefined) {
      const blob = await deps.blobs.putBuffer(input.original);
      original = { blobId: blob.blobId, bytes: blob.bytes, ...(input.mediaType ? { mediaType: input.mediaType } : {}) };
      contentDigest = { algorithm: 'sm3', value: blob.blobId };
    } else if (dg) {
      contentDigest = { algorithm: dg.algorithm, value: dg.value.toString('hex') };
    } else {
      contentDigest = { algorithm: 'sm3', value: (checked.contentSm3 ?? hashOf('sm3', checked.content!)).toString('hex') };
    }
    const { content: _content, ...report } = checked.report;
    const [fields, leaf] = await fieldsOf(caller, id, retentionYears, metadata, {
      kind: 'signature',
      contentDigest,
      ...(original ? { original } : {}),
      signature: {
        format: sig.format,
        value: sig.value.toString('base64'),
        ...(sig.algorithm ? { algorithm: sig.algorithm } : {}),
        ...(sig.certificate ? { certificate: sig.certificate.toString('base64') } : {}),
        ...(sig.chain?.length ? { chain: sig.chain.map((c) => c.toString('base64')) } : {}),
        ...(checked.token ? { timestampToken: checked.token.toString('base64') } : {}),
        ...(sig.signingTime ? { signingTime: sig.signingTime } : {}),
        ...(sig.statedSigner ? { statedSigner: sig.statedSigner } : {}),
      },
      verification: report,
    });
    return { fields, leaf, verdict: summary(report) };
  }

  function answer(rec: EvidenceRecord, verdict: VerdictSummary): IngestResult {
    return { id: rec.id, verdict, leafIndex: rec.leafIndex, leafHash: rec.leafHash, receivedAt: rec.receivedAt };
  }

  return {
    async signature(caller, input) {
      const project = await deps.projects.writable(caller.project);
      const p = await prepareSignature(caller, input, project.retentionYears);
      if ('refusal' in p) return refuse(caller, 'signature', p.metadata, p.refusal);
      return answer(await deps.records.append(p.fields, p.leaf), p.verdict);
    },

    async signatureBatch(caller, inputs) {
      const project = await deps.projects.writable(caller.project);
      const prepared = await mapBounded(inputs, BATCH_CONCURRENCY, async (input) => {
        if (input instanceof Error) return { error: input };
        try {
          return await prepareSignature(caller, input, project.retentionYears);
        } catch (error) {
          return { error };
        }
      });
      const toStore: { index: number; fields: EvidenceRecordFields; leaf: Buffer; verdict: VerdictSummary }[] = [];
      const refused: { index: number; refusal: EvidenceRefusal; rejection: EvidenceRejection }[] = [];
      const out: BatchItemResult[] = new Array(inputs.length);
      prepared.forEach((p, index) => {
        if ('error' in p) out[index] = { ok: false, error: p.error };
        else if ('refusal' in p) refused.push({ index, refusal: p.refusal, rejection: rejectionOf(caller, 'signature', p.metadata, p.refusal) });
        else toStore.push({ index, ...p });
      });
      // One durable transaction: the records, their leaves and counts, and the rejections.
      const stored = await deps.records.appendBatch(
        toStore.map((x) => ({ fields: x.fields, leafData: x.leaf })),
        refused.map((x) => x.rejection),
      );
      toStore.forEach((x, i) => (out[x.index] = { ok: true, result: answer(stored[i], x.verdict) }));
      for (const x of refused) out[x.index] = { ok: false, error: refusalError(x.refusal, x.rejection) };
      return out;
    },

    async digest(caller, input) {
      const project = await deps.projects.writable(caller.project);
      const id = newId();
      if (typeof input !== 'object' || input === null) invalid('body', '请求体必须是对象', 'the request must be an object');
      const metadata = checkMetadata(input.metadata);
      const dg = checkDigestShape(input.digest, 'digest');
      await digestLength(caller, 'digest', metadata, dg);
      const rec = await store(caller, id, project.retentionYears, metadata, { kind: 'digest', contentDigest: { algorithm: dg.algorithm, value: dg.value.toString('hex') } });
      return answer(rec, { valid: true, code: 'OK', checks: [{ name: 'digestLength', ok: true, label: '摘要长度' }] });
    },
  };
}
