// Evidence files (issue 6 item 1 "files"): a streamed upload becomes a record of kind 'file'
// whose contentDigest is the SM3 computed while the bytes were written (= its blob id).
//
// Order, so that nothing partial is kept and nothing unverified is evidence:
//   1. precheck — metadata, declared size, the project is writable: before a byte is read;
//   2. stage    — the body into a temp file of the blob store (SM3 on the way, maxFileBytes);
//   3. complete — the YQ1 body hash the request was signed with must match the bytes
//                 (else 401 BAD_SIGNATURE); a detached CMS signature must verify against them
//                 (else the rejection is kept for statistics and the upload refused); only then
//                 the blob is committed (durable) and the record appended (durable, with its
//                 Merkle leaf and counts, store/evidence-repository.ts). Any failure discards the
//                 temp file. A record always finds its blob: the blob is durable first.
import { createHash } from 'node:crypto';
import { decodeTime } from 'ulid';
import { Codes, YiqianError } from '../errors.js';
import type { VerificationReport, VerificationService } from '../signing/types.js';
import { newId } from '../store/ids.js';
import type { FsBlobStore, StagedBlob } from './blob-store.js';
import { tooLarge } from './blob-store.js';
import { leafData } from './leaf.js';
import type { EvidenceMetadata, EvidenceRecord, EvidenceRejection, ProjectDirectory } from './types.js';

export const FileIngestCodes = {
  /** A metadata field, file name or media type that cannot be kept (400). */
  FILE_METADATA_INVALID: 'FILE_METADATA_INVALID',
  /** The multipart body is not what the upload expects (400). */
  FILE_FORM_INVALID: 'FILE_FORM_INVALID',
  /** A detached signature that is not DER/base64 CMS, or is too large (400). */
  FILE_SIGNATURE_INVALID: 'FILE_SIGNATURE_INVALID',
  /** No such record in the caller's project (another project's id is answered the same way). */
  RECORD_NOT_FOUND: 'RECORD_NOT_FOUND',
  /** The record has no stored original (a digest-only record). */
  ORIGINAL_NOT_STORED: 'ORIGINAL_NOT_STORED',
  /** An upload's body stopped arriving for longer than http.timeoutMs (408; nothing is kept). */
  UPLOAD_STALLED: 'UPLOAD_STALLED',
} as const;

export const METADATA_FIELDS = ['system', 'departmentId', 'patientId', 'businessSerial', 'documentType'] as const;
export const MAX_METADATA_CHARS = 128;
export const MAX_FILE_NAME_CHARS = 255;
/** A CMS SignedData with a chain and a time-stamp is a few KiB; this is generous. */
export const MAX_SIGNATURE_BYTES = 1024 * 1024;

/** Seals a patient id for one record (evidence/patient-id.ts PatientIdProtector): SM4 ciphertext, HMAC index, masked form. */
export interface PatientIdSealer {
  seal(project: string, recordId: string, plain: string): Promise<Pick<EvidenceRecord, 'patientIdSealed' | 'patientIdIndex' | 'patientIdMasked'>>;
}

/** What of the evidence repository (store/evidence-repository.ts) the file ingest writes through. */
export interface FileRecordStore {
  append(fields: Omit<EvidenceRecord, 'leafIndex' | 'leafHash' | 'tier'>, leafData: Buffer): Promise<EvidenceRecord>;
  rejection(r: EvidenceRejection): Promise<unknown>;
}

export interface FileIngestDeps {
  blobs: FsBlobStore;
  records: FileRecordStore;
  projects: ProjectDirectory;
  /** Without it a patientId is refused (no plain patient id is ever stored). */
  patientIds?: PatientIdSealer;
  /** Needed for detached signatures. */
  verification?: VerificationService;
  maxFileBytes: number;
}

export interface FileUpload {
  app: { id: string; project: string };
  metadata: EvidenceMetadata;
  fileName?: string;
  mediaType?: string;
  /** Content-Length when the client sent one. */
  declaredBytes?: number;
  /** The body hash the YQ1 signature was verified with (app-auth.ts declaredBodyHash). */
  bodyHash: { algorithm: 'sm3' | 'sha256'; hex: string };
}

export interface FileIngestResult {
  record: EvidenceRecord;
  /** The same bytes were already kept (another record's blob); this record shares it. */
  deduplicated: boolean;
}

function metadataError(field: string, zh: string, en: string): YiqianError {
  return new YiqianError(FileIngestCodes.FILE_METADATA_INVALID, 400, { zh: `${field}：${zh}`, en: `${field}: ${en}` }, { field });
}

// C0/C1 controls and the Unicode line/paragraph separators never belong in a label.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

function checkText(field: string, v: unknown, max: number): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw metadataError(field, '只能出现一次且必须是文本', 'must be given once, as text');
  if (v.length === 0 || [...v].length > max) throw metadataError(field, `长度必须为 1 到 ${max} 个字符`, `must be 1–${max} characters`);
  if (CONTROL.test(v)) throw metadataError(field, '不能包含控制字符', 'must not contain control characters');
  return v;
}

/** Metadata, file name and media type from untrusted input (query parameters), validated. */
export function fileUploadFields(q: Record<string, unknown>): Pick<FileUpload, 'metadata' | 'fileName' | 'mediaType'> {
  const allowed = new Set<string>([...METADATA_FIELDS, 'fileName', 'mediaType']);
  for (const k of Object.keys(q)) if (!allowed.has(k)) throw metadataError(k.slice(0, 40), '不是可用的参数', `is not a parameter of this operation (use ${[...allowed].join(', ')})`);
  const metadata: EvidenceMetadata = {};
  for (const f of METADATA_FIELDS) {
    const v = checkText(f, q[f], MAX_METADATA_CHARS);
    if (v !== undefined) metadata[f] = v;
  }
  const fileName = checkText('fileName', q.fileName, MAX_FILE_NAME_CHARS);
  if (fileName !== undefined && /[/\\]/.test(fileName)) throw metadataError('fileName', '不能包含路径分隔符', 'must be a name, without / or \\');
  const mediaType = checkText('mediaType', q.mediaType, 127);
  if (mediaType !== undefined && !/^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}$/.test(mediaType)) {
    throw metadataError('mediaType', '必须是 type/subtype 形式（RFC 6838）', 'must be a type/subtype (RFC 6838)');
  }
  return { metadata, ...(fileName !== undefined ? { fileName } : {}), ...(mediaType !== undefined ? { mediaType: mediaType.toLowerCase() } : {}) };
}

function bodyHashMismatch(): YiqianError {
  return new YiqianError(
    Codes.BAD_SIGNATURE,
    401,
    { zh: '签名验证失败：上传内容与签名时的请求体杂凑不符', en: 'signature verification failed: the uploaded bytes differ from the body hash that was signed' },
    { reason: 'the uploaded bytes differ from the body hash that was signed' },
  );
}

function addYears(iso: string, years: number): string {
  const d = new Date(iso);
  d.setUTCFullYear(d.getUTCFullYear() + years);
  return d.toISOString();
}

export interface FileIngest {
  /** Everything that needs no body: refuse before reading a byte. */
  precheck(u: FileUpload): Promise<void>;
  /** The body into a temp file; `yq1Hash` sees every chunk when the app's YQ1 hash is not SM3. */
  stage(u: FileUpload, source: AsyncIterable<Buffer>): Promise<{ staged: StagedBlob; yq1Hex: string }>;
  /** Checks the staged bytes and stores the record; always leaves the temp file gone. */
  complete(u: FileUpload, s: { staged: StagedBlob; yq1Hex: string }, signature?: Buffer): Promise<FileIngestResult>;
}

export function createFileIngest(deps: FileIngestDeps): FileIngest {
  return {
    async precheck(u) {
      if (u.declaredBytes !== undefined && u.declaredBytes > deps.maxFileBytes) throw tooLarge(deps.maxFileBytes);
      if (u.metadata.patientId !== undefined && !deps.patientIds) {
        throw new YiqianError(Codes.KEY_NOT_FOUND, 503, { zh: '无法加密患者标识', en: 'patient ids cannot be sealed on this appliance' });
      }
      await deps.projects.writable(u.app.project);
    },

    async stage(u, source) {
      const sha256 = u.bodyHash.algorithm === 'sha256' ? createHash('sha256') : undefined;
      const staged = await deps.blobs.stage(source, deps.maxFileBytes, sha256 ? { onChunk: (c) => sha256.update(c) } : {});
      return { staged, yq1Hex: sha256 ? sha256.digest('hex') : staged.blobId };
    },

    async complete(u, { staged, yq1Hex }, signature) {
      try {
        // YQ1 binds the body (docs/api-auth.md §2): the bytes must be those that were signed.
        if (yq1Hex !== u.bodyHash.hex) throw bodyHashMismatch();
        const project = await deps.projects.writable(u.app.project);
        const id = newId();
        // receivedAt is the instant in the id (store/evidence-repository.ts receivedAtOf).
        const receivedAt = new Date(decodeTime(id)).toISOString();

        let verification: VerificationReport | undefined;
        if (signature) {
          if (!deps.verification) throw new YiqianError(Codes.INTERNAL, 500, { zh: '验证服务不可用', en: 'verification service not wired' });
          // The detached CMS is checked against the bytes as stored (messageDigest, RFC 5652 §11.2),
          // judged at the receipt time unless it carries a valid signature time-stamp.
          verification = await deps.verification.verifyCms({ cms: signature, content: await staged.readAll(), at: new Date(receivedAt) });
          if (!verification.valid) {
            const reason = verification.checks.find((c) => c.ok === false)?.reason ?? verification.code;
            await deps.records.rejection({
              id: newId(),
              at: new Date().toISOString(),
              project: project.id,
              appId: u.app.id,
              ...(u.metadata.departmentId !== undefined ? { departmentId: u.metadata.departmentId } : {}),
              kind: 'file',
              code: verification.code,
              reason: String(reason).slice(0, 500),
            });
            throw new YiqianError(
              verification.code,
              422,
              { zh: `分离式签名验证未通过（${verification.code}），文件未存证`, en: `the detached signature did not verify (${verification.code}); the file was not stored` },
              { verification },
            );
          }
        }

        const { patientId, ...plainMeta } = u.metadata;
        const sealed = patientId !== undefined ? await deps.patientIds!.seal(project.id, id, patientId) : {};
        const placed = await staged.commit();
        const fields: Omit<EvidenceRecord, 'leafIndex' | 'leafHash' | 'tier'> = {
          id,
          kind: 'file',
          project: project.id,
          appId: u.app.id,
          ...plainMeta,
          ...sealed,
          receivedAt,
          contentDigest: { algorithm: 'sm3', value: placed.blobId },
          original: { blobId: placed.blobId, bytes: placed.bytes, ...(u.mediaType ? { mediaType: u.mediaType } : {}), ...(u.fileName ? { fileName: u.fileName } : {}) },
          ...(signature ? { signature: { format: 'cms' as const, value: signature.toString('base64') } } : {}),
          ...(verification ? { verification } : {}),
          retainUntil: addYears(receivedAt, project.retentionYears),
        };
        const record = await deps.records.append(fields, leafData(fields));
        return { record, deduplicated: placed.deduplicated };
      } finally {
        await staged.discard();
      }
    },
  };
}
