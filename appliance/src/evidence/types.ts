// Contracts of the evidence store (issue 6, 电子数据存证). Services in evidence/ implement them,
// store/ keeps them on LMDB (a hot environment in the appliance store and a cold one at its own
// path), http/evidence-*.ts serve them. One record = one leaf of the SM3 Merkle log
// (evidence/merkle.ts, store/merkle-repository.ts); the leaf bytes are `leafData(record)` of
// evidence/leaf.ts, which the offline verifier (ops/verify-evidence) recomputes from a bundle.
import type { VerificationReport } from '../signing/types.js';

export type EvidenceKind = 'signature' | 'digest' | 'file';
export type Tier = 'hot' | 'cold';
export type EvidenceDigestAlgorithm = 'sm3' | 'sha256' | 'sha384' | 'sha512';

/** Business metadata an app sends with a record (all optional, each ≤ 128 characters). */
export interface EvidenceMetadata {
  /** The clinical system, e.g. HIS, EMR, LIS. */
  system?: string;
  departmentId?: string;
  /** Plain on input only: stored sealed (SM4, staff/pii.ts style), searchable by its HMAC index, shown masked. */
  patientId?: string;
  businessSerial?: string;
  documentType?: string;
}

/** A stored piece of evidence, as kept and as answered (never the plain patient id). */
export interface EvidenceRecord {
  /** ULID: time-ordered, so LMDB appends stay at the end and ids sort by receipt. */
  id: string;
  kind: EvidenceKind;
  /** The app's project (apps carry one); an app reads and writes only its project. */
  project: string;
  appId: string;
  system?: string;
  departmentId?: string;
  businessSerial?: string;
  documentType?: string;
  /** SM4-sealed patient id (base64), its HMAC-SM3 search index (hex) and the masked form. */
  patientIdSealed?: string;
  patientIdIndex?: string;
  patientIdMasked?: string;
  /** ISO 8601 UTC with ms: when the appliance accepted the record (set before the durable write; in the leaf). */
  receivedAt: string;
  /** Digest of the original (for 'file': SM3 computed while streaming). Lower-case hex. */
  contentDigest: { algorithm: EvidenceDigestAlgorithm; value: string };
  /** The original, when it was sent (signature records with the original, files): content-addressed blob. */
  /** fileName: as the uploader named it (files), used for Content-Disposition on download; not in the leaf. */
  original?: { blobId: string; bytes: number; mediaType?: string; fileName?: string };
  /** Signature records (and files with a detached signature). Binary fields base64 DER. */
  signature?: {
    format: 'cms' | 'raw';
    /** The CMS ContentInfo, or the raw signature value. */
    value: string;
    /** Raw: the algorithm as named by the signing API, e.g. SM2-SM3, ECDSA-SHA256. */
    algorithm?: string;
    /** Signer certificate and further chain certificates the app sent (raw: required; CMS: embedded ones suffice). */
    certificate?: string;
    chain?: string[];
    /** RFC 3161 token over the signature, sent by the app (raw signatures) or found in the CMS (CAdES-T). */
    timestampToken?: string;
    /** As the app stated it (claimed; the verdict's judgedAt is what counts). */
    signingTime?: string;
    /** Signer identity as the app stated it (name, employee id …), kept beside the verified certificate identity. */
    statedSigner?: Record<string, string>;
  };
  /** The verdict at ingestion (only valid records are stored as evidence). */
  verification?: VerificationReport;
  /** Merkle leaf: index in the log and SM3 leaf hash (hex) of leafData(record). */
  leafIndex: number;
  leafHash: string;
  /** Until when the record must be kept (project retention). */
  retainUntil: string;
  tier: Tier;
}

/**
 * One item of a list page: who, what, when and the verdict, without the CMS, certificates and the
 * full report (a few hundred bytes instead of ~7 KB); GET /evidence/records/:id has the rest. Kept beside
 * each record (store/evidence-repository.ts, evidence-by-project) so a page reads no record.
 */
export interface EvidenceRecordSummary {
  id: string;
  kind: EvidenceRecord['kind'];
  receivedAt: string;
  project: string;
  appId: string;
  system?: string;
  departmentId?: string;
  patientIdMasked?: string;
  businessSerial?: string;
  documentType?: string;
  /** The verdict at ingestion (signature records; digests and unsigned files have none). */
  verdict?: { valid: boolean; code: string };
  /** The verified signer certificate's subject and serial (hex). */
  signer?: { subject: string; serial: string };
  tier: EvidenceRecord['tier'];
}

/** A refused ingestion, kept for supervision statistics (which integrator signs wrongly). */
export interface EvidenceRejection {
  id: string;
  at: string;
  project: string;
  appId: string;
  departmentId?: string;
  kind: EvidenceKind;
  /** Our code (e.g. SIGNATURE_INVALID, CERT_REVOKED, DIGEST_LENGTH_INVALID) and its reason. */
  code: string;
  reason: string;
}

export interface EvidenceQuery {
  project: string;
  appId?: string;
  departmentId?: string;
  /** Plain patient id: matched through its HMAC index, never stored or logged plain. */
  patientId?: string;
  businessSerial?: string;
  documentType?: string;
  kind?: EvidenceKind;
  /** receivedAt range, ISO 8601, from inclusive, to exclusive. */
  from?: string;
  to?: string;
}

export interface Page<T> {
  items: T[];
  /** Opaque; absent on the last page. */
  next?: string;
}

export interface Project {
  /** Lower-case a-z 0-9 - _, 1–64; apps name it (`yiqian app create --project`). */
  id: string;
  name: string;
  description?: string;
  /** Records are kept at least this long from receipt (medical records: 15–30 years). */
  retentionYears: number;
  frozen: boolean;
  createdAt: string;
  updatedAt: string;
}

/** Counters kept at write time (issue 6 item 6): never answered by scanning records. */
export interface EvidenceStatistics {
  scope: { project?: string; appId?: string };
  total: number;
  last3Months: number;
  today: number;
  /** Keys: YYYY, YYYY-MM, YYYY-MM-DD (Asia/Shanghai calendar), oldest first. */
  perYear: { period: string; count: number }[];
  perMonth: { period: string; count: number }[];
  perDay: { period: string; count: number }[];
  rejections: { total: number; byCode: Record<string, number>; byApp: Record<string, number> };
}

// ---- collaborators (each implemented by its own module; see the file named) -----------------

/** Projects (evidence/projects.ts): ingestion asks for a writable project and its retention. */
export interface ProjectDirectory {
  get(id: string): Promise<Project | undefined>;
  /** PROJECT_NOT_FOUND 404, PROJECT_FROZEN 409. */
  writable(id: string): Promise<Project>;
}

/**
 * Statistics counters (store/evidence-counters.ts). The *InTxn functions are synchronous and are
 * called by the evidence repository INSIDE the durable transaction that stores the record or
 * the rejection (store/durable.ts Writer callback), so counts and records never disagree.
 */
export interface EvidenceCounters {
  recordStoredInTxn(r: Pick<EvidenceRecord, 'project' | 'appId' | 'receivedAt'>): void;
  /** The counts of several records of one transaction (what recordStoredInTxn does for each, summed per counter). */
  recordsStoredInTxn(rs: readonly Pick<EvidenceRecord, 'project' | 'appId' | 'receivedAt'>[]): void;
  rejectionInTxn(r: EvidenceRejection): void;
  /** Removing a project's data (project delete) takes its counts with it. */
  projectRemovedInTxn(project: string): void;
  statistics(scope: { project?: string; appId?: string }, now?: Date): Promise<EvidenceStatistics>;
}

/** Content-addressed blobs on disk (evidence/blob-store.ts): originals and files. */
export interface BlobStore {
  /** Durable (file and directory fsynced) before it resolves; blobId = lower-case hex SM3 of the bytes. */
  putBuffer(data: Buffer): Promise<{ blobId: string; bytes: number }>;
  /** Streams into the store computing SM3 as it goes; BLOB_TOO_LARGE 413 past maxBytes (nothing kept). */
  putStream(source: AsyncIterable<Buffer>, maxBytes: number): Promise<{ blobId: string; bytes: number }>;
  read(blobId: string): AsyncIterable<Buffer>;
  has(blobId: string): Promise<boolean>;
  /** Only for project deletion. */
  remove(blobId: string): Promise<void>;
}

/** A signed checkpoint of the Merkle log with its RFC 3161 anchor (evidence/checkpoint-log.ts). */
export interface StoredCheckpoint {
  treeSize: number;
  /** Lower-case hex SM3 root. */
  rootHash: string;
  /** ISO 8601 UTC. */
  time: string;
  /** The signed note (evidence/checkpoint.ts): body + signature lines. */
  note: string;
  /** Base64 DER of the certificate of the key that signs checkpoints, and its chain up to (not incl.) the root. */
  signerCertificate: string;
  signerChain: string[];
  /** Base64 DER RFC 3161 TimeStampToken over the checkpoint body (checkpointImprint), from the appliance's TSA. */
  timestampToken: string;
}

export interface CheckpointLog {
  latest(): Promise<StoredCheckpoint | undefined>;
  /** The earliest checkpoint whose tree includes leaf `leafIndex` (treeSize > leafIndex). */
  covering(leafIndex: number): Promise<StoredCheckpoint | undefined>;
  get(treeSize: number): Promise<StoredCheckpoint | undefined>;
  list(page?: { limit?: number; cursor?: string }): Promise<Page<StoredCheckpoint>>;
}
