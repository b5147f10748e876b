// Stable codes of certificate issuance and renewal (errors.ts: capability codes live with their
// capability). The CSR codes (CSR_MALFORMED, CSR_SIGNATURE_INVALID, CSR_ALGORITHM_UNSUPPORTED,
// KEY_UNSUPPORTED) are in asn1/csr.ts, EXTENSION_INVALID in asn1/certificate.ts, CERT_EXISTS in
// store/certificate-repository.ts, CA_NOT_FOUND in store/ca-repository.ts.
import { YiqianError } from '../errors.js';

export const IssuanceCodes = {
  PROFILE_UNKNOWN: 'PROFILE_UNKNOWN',
  /** The profile exists but is not issued this way (e.g. 'tsa' or 'ocsp' over the API). */
  PROFILE_NOT_ALLOWED: 'PROFILE_NOT_ALLOWED',
  PROFILE_FIELD_MISSING: 'PROFILE_FIELD_MISSING',
  SUBJECT_FIELD_NOT_ALLOWED: 'SUBJECT_FIELD_NOT_ALLOWED',
  SUBJECT_FIELD_INVALID: 'SUBJECT_FIELD_INVALID',
  EXTENSION_NOT_ALLOWED: 'EXTENSION_NOT_ALLOWED',
  HIERARCHY_UNKNOWN: 'HIERARCHY_UNKNOWN',
  /** An SM2 key for the ECDSA hierarchy, or an ECDSA/RSA key for the SM2 hierarchy. */
  KEY_ALGORITHM_MISMATCH: 'KEY_ALGORITHM_MISMATCH',
  VALIDITY_INVALID: 'VALIDITY_INVALID',
  PASSWORD_INVALID: 'PASSWORD_INVALID',
  SERIAL_INVALID: 'SERIAL_INVALID',
  CERT_NOT_FOUND: 'CERT_NOT_FOUND',
  /** Revoked, suspended, or already renewed. */
  CERT_NOT_RENEWABLE: 'CERT_NOT_RENEWABLE',
  /** `yiqian init` made no CA in this data directory (initialised before the CA existed). */
  CA_NOT_INITIALISED: 'CA_NOT_INITIALISED',
} as const;

export function issuanceError(code: keyof typeof IssuanceCodes, status: number, zh: string, en: string, detail?: Record<string, unknown>): YiqianError {
  return new YiqianError(IssuanceCodes[code], status, { zh, en }, detail);
}
