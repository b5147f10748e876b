// Stable codes of the verification capability (issue 4 item 3) and their GB/T 38629-2020 Annex B
// response codes (STANDARDS.md §4: base 0x04000000 + n). One table: a verification report carries
// both `code` and `gbtCode`, and the GB/T 38629 HTTP binding answers the same numbers.
//
// Two kinds of codes live here:
//   - verdict codes: the `code` of a VerificationReport (answered 200; the verdict is in the body);
//   - request codes: thrown as YiqianError (4xx problem+json) for a malformed request.

/** GB/T 38629-2020 Annex B response codes. */
export const GbtCode = {
  SUCCESS: 0,
  CERT_ID: 0x04000001,
  CERT_INFO_TYPE: 0x04000002,
  SERVER_CONNECT: 0x04000003,
  SIGN_METHOD: 0x04000004,
  KEY_INDEX: 0x04000005,
  KEY_VALUE: 0x04000006,
  CERT: 0x04000007,
  CERT_DECODE: 0x04000008,
  CERT_EXPIRED: 0x04000009,
  CERT_NOT_YET_VALID: 0x0400000a,
  CERT_REVOKED: 0x0400000b,
  INVALID_SIGNATURE: 0x0400000c,
  INVALID_DATA_FORMAT: 0x0400000d,
  SYSTEM_FAILURE: 0x0400000e,
} as const;

/** Verdict codes of a VerificationReport. */
export const ReportCodes = {
  OK: 'OK',
  CMS_MALFORMED: 'CMS_MALFORMED',
  SIGNER_NOT_FOUND: 'SIGNER_NOT_FOUND',
  ALGORITHM_UNSUPPORTED: 'ALGORITHM_UNSUPPORTED',
  CONTENT_TYPE_MISMATCH: 'CONTENT_TYPE_MISMATCH',
  CONTENT_ALTERED: 'CONTENT_ALTERED',
  SIGNING_CERTIFICATE_MISMATCH: 'SIGNING_CERTIFICATE_MISMATCH',
  SIGNATURE_INVALID: 'SIGNATURE_INVALID',
  DIGEST_LENGTH_INVALID: 'DIGEST_LENGTH_INVALID',
  TIMESTAMP_INVALID: 'TIMESTAMP_INVALID',
  CERT_DECODE_FAILED: 'CERT_DECODE_FAILED',
  CERT_EXPIRED: 'CERT_EXPIRED',
  CERT_NOT_YET_VALID: 'CERT_NOT_YET_VALID',
  CERT_UNTRUSTED: 'CERT_UNTRUSTED',
  CERT_SIGNATURE_INVALID: 'CERT_SIGNATURE_INVALID',
  CERT_PATH_INVALID: 'CERT_PATH_INVALID',
  CERT_REVOKED: 'CERT_REVOKED',
  REVOCATION_UNKNOWN: 'REVOCATION_UNKNOWN',
  INTERNAL: 'INTERNAL',
} as const;
export type ReportCode = (typeof ReportCodes)[keyof typeof ReportCodes];

/** Request codes: thrown (4xx), never a report verdict. */
export const VerifyRequestCodes = {
  /** The signature (raw) or the CMS is missing or not base64/PEM. */
  SIGNATURE_REQUIRED: 'SIGNATURE_REQUIRED',
  /** Raw verify: neither or both of data and digest. */
  DATA_OR_DIGEST_REQUIRED: 'DATA_OR_DIGEST_REQUIRED',
  /** Raw verify: neither or both of certificate and certSerial; certificate validation: none given. */
  CERTIFICATE_REQUIRED: 'CERTIFICATE_REQUIRED',
  /** Detached CMS and no original given. */
  CONTENT_REQUIRED: 'CONTENT_REQUIRED',
  /** A field of the wrong type or value (level, at, hash, rsaPadding, sm2Id with digest, base64 …). */
  VERIFY_REQUEST_INVALID: 'VERIFY_REQUEST_INVALID',
  /** certSerial names no certificate our CA issued (404). */
  CERT_NOT_FOUND: 'CERT_NOT_FOUND',
  BATCH_EMPTY: 'BATCH_EMPTY',
  /** More than MAX_BATCH items (413). */
  BATCH_TOO_LARGE: 'BATCH_TOO_LARGE',
} as const;

/** Our code → GB/T 38629 Annex B code. Unknown codes map to SYSTEM_FAILURE. */
const GBT_OF: Record<string, number> = {
  [ReportCodes.OK]: GbtCode.SUCCESS,
  [ReportCodes.CMS_MALFORMED]: GbtCode.INVALID_DATA_FORMAT,
  // The message names a signer whose certificate it does not carry: a certificate problem.
  [ReportCodes.SIGNER_NOT_FOUND]: GbtCode.CERT,
  [ReportCodes.ALGORITHM_UNSUPPORTED]: GbtCode.SIGN_METHOD,
  [ReportCodes.CONTENT_TYPE_MISMATCH]: GbtCode.INVALID_DATA_FORMAT,
  // GB/T 38629 has no "content altered": the signed digest no longer matches, i.e. the signature fails.
  [ReportCodes.CONTENT_ALTERED]: GbtCode.INVALID_SIGNATURE,
  [ReportCodes.SIGNING_CERTIFICATE_MISMATCH]: GbtCode.INVALID_SIGNATURE,
  [ReportCodes.SIGNATURE_INVALID]: GbtCode.INVALID_SIGNATURE,
  [ReportCodes.DIGEST_LENGTH_INVALID]: GbtCode.INVALID_DATA_FORMAT,
  // The time-stamp is a signature over the signature (ETSI EN 319 122-1 §5.3).
  [ReportCodes.TIMESTAMP_INVALID]: GbtCode.INVALID_SIGNATURE,
  [ReportCodes.CERT_DECODE_FAILED]: GbtCode.CERT_DECODE,
  [ReportCodes.CERT_EXPIRED]: GbtCode.CERT_EXPIRED,
  [ReportCodes.CERT_NOT_YET_VALID]: GbtCode.CERT_NOT_YET_VALID,
  [ReportCodes.CERT_UNTRUSTED]: GbtCode.CERT,
  [ReportCodes.CERT_SIGNATURE_INVALID]: GbtCode.CERT,
  [ReportCodes.CERT_PATH_INVALID]: GbtCode.CERT,
  [ReportCodes.CERT_REVOKED]: GbtCode.CERT_REVOKED,
  // Annex B has no "status unknown"; verifyLevel 2 (CRL) cannot be satisfied: a certificate error.
  [ReportCodes.REVOCATION_UNKNOWN]: GbtCode.CERT,
  [ReportCodes.INTERNAL]: GbtCode.SYSTEM_FAILURE,
  [VerifyRequestCodes.SIGNATURE_REQUIRED]: GbtCode.INVALID_DATA_FORMAT,
  [VerifyRequestCodes.DATA_OR_DIGEST_REQUIRED]: GbtCode.INVALID_DATA_FORMAT,
  [VerifyRequestCodes.CERTIFICATE_REQUIRED]: GbtCode.CERT_INFO_TYPE,
  [VerifyRequestCodes.CONTENT_REQUIRED]: GbtCode.INVALID_DATA_FORMAT,
  [VerifyRequestCodes.VERIFY_REQUEST_INVALID]: GbtCode.INVALID_DATA_FORMAT,
  [VerifyRequestCodes.CERT_NOT_FOUND]: GbtCode.CERT_ID,
  [VerifyRequestCodes.BATCH_EMPTY]: GbtCode.INVALID_DATA_FORMAT,
  [VerifyRequestCodes.BATCH_TOO_LARGE]: GbtCode.INVALID_DATA_FORMAT,
};

/** GB/T 38629 Annex B code of one of our codes (report verdicts and request errors). */
export function gbtCodeOf(code: string): number {
  return GBT_OF[code] ?? GbtCode.SYSTEM_FAILURE;
}

/** The whole table (docs, the GB/T 38629 binding, tests). */
export function gbtCodeTable(): Readonly<Record<string, number>> {
  return GBT_OF;
}
