// GB/T 38629-2020 (GM/T 0029 lineage) identifiers the HTTP binding speaks: request types,
// Annex B response codes, SGD algorithm ids (GM/T 0006 / GB/T 33560) and the certificate
// item ids of parseCert (GB/T 33560 Table 8). STANDARDS.md §4 is the summary this follows.
//
// The standard's text is not public; the names below are the ones its ASN.1 (GM/T 0029-2014
// Annex A) and vendors' SVS clients use. Sources read (public, reference only):
//   - STANDARDS.md §4 (request types 0–12, Annex B codes, Table 8 ids);
//   - a GM/T 0029 SVS mock's design notes aligned with the "svsc" client (form-urlencoded,
//     SVS-Request-Version / SVS-Request-Time, fields identification/cert/infoType/ocsp/
//     signMethod/keyIndex/keyValue/inDataLen/inData/type/certSN/signature/verifyLevel/hashFlag/
//     originalText/certificateChain/crl/authenticationAttributes/signedMessage; responses
//     respValue, cert, info, state, signature, signedMessage);
//   - a vendor SVS JSON client ("SignServerJson": body {version, reqType, request, reqTime},
//     answer {version, reqType, respond: {respValue, …}}), whose response-code table extends
//     Annex B past 0x0E (vendor-specific; we emit only 0x00–0x0E).

import { gbtCodeTable } from './report-codes.js';

/** Request types by their number in GM/T 0029 / GB/T 38629 (the CHOICE order, 0–12). */
export const SVS_REQUEST_TYPES = [
  'exportCert',
  'parseCert',
  'validateCert',
  'signData',
  'verifySignedData',
  'signDataInit',
  'signDataUpdate',
  'signDataFinal',
  'verifySignedDataInit',
  'verifySignedDataUpdate',
  'verifySignedDataFinal',
  'signMessage',
  'verifySignedMessage',
] as const;
export type SvsRequestType = (typeof SVS_REQUEST_TYPES)[number];

/**
 * The request type named by a path segment: its name in any letter case (vendors write
 * "SignData" as well as "signData") or its number 0–12; undefined for anything else.
 */
export function requestTypeOf(segment: string): SvsRequestType | undefined {
  if (/^(0|[1-9]\d?)$/.test(segment)) return SVS_REQUEST_TYPES[Number(segment)];
  const lower = segment.toLowerCase();
  return SVS_REQUEST_TYPES.find((t) => t.toLowerCase() === lower);
}

/** GB/T 38629 Annex B response codes (respValue). */
export const GM_SUCCESS = 0;
const BASE = 0x04000000;
export const RespValue = {
  SUCCESS: GM_SUCCESS,
  CERT_ID: BASE + 0x01,
  CERT_INFO_TYPE: BASE + 0x02,
  SERVER_CONNECT: BASE + 0x03,
  SIGN_METHOD: BASE + 0x04,
  KEY_INDEX: BASE + 0x05,
  KEY_VALUE: BASE + 0x06,
  CERT: BASE + 0x07,
  CERT_DECODE: BASE + 0x08,
  CERT_INVALID_AF: BASE + 0x09,
  CERT_INVALID_BF: BASE + 0x0a,
  CERT_REVOKED: BASE + 0x0b,
  INVALID_SIGNATURE: BASE + 0x0c,
  INVALID_DATA_FORMAT: BASE + 0x0d,
  SYSTEM_FAILURE: BASE + 0x0e,
} as const;

/**
 * Our stable error codes of the binding (errors.ts: capability codes live with their code),
 * each with the Annex B respValue it is answered with.
 */
export const SvsCodes = {
  SVS_CERT_ID: 'SVS_CERT_ID',
  SVS_CERT_INFO_TYPE: 'SVS_CERT_INFO_TYPE',
  SVS_SIGN_METHOD: 'SVS_SIGN_METHOD',
  SVS_KEY_INDEX: 'SVS_KEY_INDEX',
  SVS_KEY_VALUE: 'SVS_KEY_VALUE',
  SVS_CERT: 'SVS_CERT',
  SVS_CERT_DECODE: 'SVS_CERT_DECODE',
  SVS_INVALID_DATA_FORMAT: 'SVS_INVALID_DATA_FORMAT',
  /** A request type of the standard that the binding does not implement (multi-part). */
  SVS_REQUEST_TYPE_UNSUPPORTED: 'SVS_REQUEST_TYPE_UNSUPPORTED',
  /** Path's last segment is no request type. */
  SVS_REQUEST_TYPE_UNKNOWN: 'SVS_REQUEST_TYPE_UNKNOWN',
  /** svs.appId is not configured, or names no active app. */
  SVS_NOT_CONFIGURED: 'SVS_NOT_CONFIGURED',
  /** The caller's address is not in svs.allow. */
  SVS_NOT_ALLOWED: 'SVS_NOT_ALLOWED',
  SVS_SYSTEM_FAILURE: 'SVS_SYSTEM_FAILURE',
} as const;

/**
 * respValue for an error code: ours (SvsCodes), and those the services of signing/types.ts,
 * the HTTP layer and errors.ts raise. Unlisted 4xx codes → INVALID_DATA_FORMAT, others →
 * SYSTEM_FAILURE (respValueOf).
 */
const RESP_BY_CODE: Record<string, number> = {
  SVS_CERT_ID: RespValue.CERT_ID,
  SVS_CERT_INFO_TYPE: RespValue.CERT_INFO_TYPE,
  SVS_SIGN_METHOD: RespValue.SIGN_METHOD,
  SVS_KEY_INDEX: RespValue.KEY_INDEX,
  SVS_KEY_VALUE: RespValue.KEY_VALUE,
  SVS_CERT: RespValue.CERT,
  SVS_CERT_DECODE: RespValue.CERT_DECODE,
  SVS_INVALID_DATA_FORMAT: RespValue.INVALID_DATA_FORMAT,
  SVS_REQUEST_TYPE_UNSUPPORTED: RespValue.INVALID_DATA_FORMAT,
  SVS_REQUEST_TYPE_UNKNOWN: RespValue.INVALID_DATA_FORMAT,
  SVS_NOT_CONFIGURED: RespValue.SYSTEM_FAILURE,
  SVS_NOT_ALLOWED: RespValue.SERVER_CONNECT,
  SVS_SYSTEM_FAILURE: RespValue.SYSTEM_FAILURE,
  // held keys (signing/types.ts HeldKeys.forUse): the key index is wrong for this app …
  KEY_NOT_FOUND: RespValue.KEY_INDEX,
  KEY_NOT_GRANTED: RespValue.KEY_INDEX,
  KEY_USAGE_MISMATCH: RespValue.KEY_INDEX,
  // … or the private-key access code ("keyValue") is
  ACCESS_CODE_REQUIRED: RespValue.KEY_VALUE,
  ACCESS_CODE_INVALID: RespValue.KEY_VALUE,
  ACCESS_CODE_LOCKED: RespValue.KEY_VALUE,
  HELD_KEY_CERT_REVOKED: RespValue.CERT_REVOKED,
  HELD_KEY_CERT_EXPIRED: RespValue.CERT_INVALID_AF,
  // signing / verification requests
  UNSUPPORTED_ALGORITHM: RespValue.SIGN_METHOD,
  ALGORITHM_UNSUPPORTED: RespValue.SIGN_METHOD,
  CERT_NOT_FOUND: RespValue.CERT,
  CERT_DECODE_FAILED: RespValue.CERT_DECODE,
  HSM_UNAVAILABLE: RespValue.SYSTEM_FAILURE,
};

/** respValue of an error: the table above, then the verification capability's one table (report-codes.ts), then by HTTP status. */
export function respValueOf(code: string, status: number): number {
  return RESP_BY_CODE[code] ?? gbtCodeTable()[code] ?? (status >= 400 && status < 500 ? RespValue.INVALID_DATA_FORMAT : RespValue.SYSTEM_FAILURE);
}

/** respValue as vendors print it: 0 or 0x0400000d. */
export function respValueHex(v: number): string {
  return v === 0 ? '0' : `0x${v.toString(16).padStart(8, '0')}`;
}

/**
 * SGD algorithm ids (GM/T 0006-2012 §5.2, GB/T 33560-2017) the binding accepts as signMethod.
 * SM2 signing hashes with SM3 (Z_A ‖ M, GB/T 35276) whichever of the two SM2 ids is named.
 */
export const SGD = {
  SM3_RSA: 0x00010001,
  SHA1_RSA: 0x00010002,
  SHA256_RSA: 0x00010004,
  SM2_1: 0x00020200,
  SM3_SM2: 0x00020201,
} as const;

/** What a signMethod means for our keys; undefined: not offered (SHA-1, SM3-with-RSA, ECDSA has no SGD id). */
export function signMethodKind(method: number): { family: 'sm2' } | { family: 'rsa'; hash: 'sha256' } | undefined {
  if (method === SGD.SM3_SM2 || method === SGD.SM2_1) return { family: 'sm2' };
  if (method === SGD.SHA256_RSA) return { family: 'rsa', hash: 'sha256' };
  return undefined;
}

/** Certificate item ids of parseCert's infoType (GB/T 33560-2017 Table 8, SGD_CERT_*). */
export const CertInfoType = {
  VERSION: 0x01,
  SERIAL: 0x02,
  ISSUER: 0x05,
  VALID_TIME: 0x06,
  SUBJECT: 0x07,
  DER_PUBLIC_KEY: 0x08,
  DER_EXTENSIONS: 0x09,
  ISSUER_CN: 0x21,
  SUBJECT_CN: 0x31,
  SUBJECT_O: 0x32,
  SUBJECT_OU: 0x33,
  SUBJECT_EMAIL: 0x34,
  NOTBEFORE: 0x35,
  NOTAFTER: 0x36,
} as const;
