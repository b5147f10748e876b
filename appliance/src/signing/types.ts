// Contracts of the signature/verification capability (issue 4). The services here are
// implemented in signing/ and wired in main.ts; http/ sees only these interfaces.
import type { CmsForm, ParsedSignedData } from '../asn1/cms-signed-data.js';
import type { KeyAlgorithm, Signer } from '../crypto/interfaces.js';
import type { PathCertificate } from '../pki/path-validation.js';
import type { Hierarchy } from '../pki/types.js';

// ---- keys the appliance holds for others (held-keys.ts) -------------------------------

/** What a held key stands for; chooses the certificate profile. */
export type HeldKeyKind = 'organisation' | 'department' | 'seal' | 'staff';
/** sign: digitalSignature + nonRepudiation certificate; encrypt: key/data encipherment (envelopes). */
export type HeldKeyUsage = 'sign' | 'encrypt';

/** A held key as apps and admins see it (never the access code or its hash). */
export interface HeldKeyView {
  /** ULID. */
  id: string;
  /** Unique, e.g. "dept-cardiology-sign". */
  label: string;
  kind: HeldKeyKind;
  usage: HeldKeyUsage;
  algorithm: KeyAlgorithm;
  hierarchy: Hierarchy;
  /** Custody inventory id and RFC 7512 URI of the private key. */
  keyId: string;
  keyUri: string;
  /** The certificate issued for it by our CA (lower-case hex serial) and its subject. */
  certSerial: string;
  subject: string;
  /** App ids allowed to use the key. */
  grants: string[];
  accessCodeRequired: boolean;
  /** Staff keys: employee id in the staff directory. */
  employeeId?: string;
  departmentId?: string;
  createdAt: string;
}

export interface HeldKeyForUse {
  key: HeldKeyView;
  signer: Signer;
  /** DER of the key's certificate and of its issuing CA(s) up to, not including, the root. */
  certificate: Buffer;
  chain: Buffer[];
}

export interface HeldKeys {
  /**
   * Resolves a key (id or label) for `appId`: KEY_NOT_FOUND 404, KEY_NOT_GRANTED 403,
   * ACCESS_CODE_REQUIRED 403 (none given but one is set), ACCESS_CODE_INVALID 403,
   * KEY_USAGE_MISMATCH 403 (e.g. signing with an encryption key).
   */
  forUse(ref: string, appId: string, opts?: { accessCode?: string; usage?: HeldKeyUsage }): Promise<HeldKeyForUse>;
  /** Keys granted to the app (all keys when appId is undefined). */
  list(appId?: string): Promise<HeldKeyView[]>;
  get(ref: string): Promise<HeldKeyView>;
  /** Held key whose certificate has this serial, if any (verify reports name the key). */
  findByCertSerial(serial: string): Promise<HeldKeyView | undefined>;
}

// ---- trust store and revocation (trust-store.ts, revocation-check.ts) --------------------

export interface TrustedCaView {
  /** Lower-case hex SHA-256 of the certificate DER. */
  id: string;
  subject: string;
  issuer: string;
  serial: string;
  notBefore: string;
  notAfter: string;
  /** Our own hierarchies are always trusted and cannot be removed. */
  source: 'appliance' | 'imported';
  /** A self-signed CA is a trust anchor; others are intermediates. */
  anchor: boolean;
  /** Imported CAs: CRL download URL and interval, OCSP URL, the CRL held now. */
  crlUrl?: string;
  crlFetchHours?: number;
  ocspUrl?: string;
  crl?: { thisUpdate: string; nextUpdate?: string; number?: string; entries: number; fetchedAt: string; source: 'upload' | 'fetch' };
}

/** Certificates path validation may use: anchors and intermediates, DER. */
export interface TrustMaterial {
  anchors: Buffer[];
  intermediates: Buffer[];
}

export interface TrustStore {
  material(): Promise<TrustMaterial>;
  list(): Promise<TrustedCaView[]>;
}

export type RevocationSource = 'appliance-ca' | 'crl' | 'ocsp';

export interface CertificateRevocation {
  serial: string;
  subject: string;
  /** Status at the judging time: a revocation after that time leaves it good at that time. */
  status: 'good' | 'revoked' | 'unknown';
  source?: RevocationSource;
  /** Revocation (or hold) time and reason, when the certificate is revoked now, even if after the judging time. */
  revokedAt?: string;
  reason?: string;
  /** Why unknown (no CRL, stale CRL, OCSP unreachable …). */
  detail?: string;
}

export interface RevocationReport {
  ok: boolean;
  /** One entry per certificate of the path except the trust anchor, leaf first. */
  certificates: CertificateRevocation[];
}

export interface RevocationChecker {
  /** `path`: DER, leaf first, trust anchor last (as built by validatePath). */
  check(path: Buffer[], at: Date): Promise<RevocationReport>;
}

// ---- verification reports (verify-service.ts) -------------------------------------------

/** GB/T 38629 verifyLevel: 0 validity of the certificate only, 1 + chain, 2 + revocation. */
export type VerifyLevel = 0 | 1 | 2;

export interface ReportCheck {
  /** Stable name: structure, signerFound, algorithm, contentType, contentIntact, signingCertificate, signatureIntact, certificateValidity, chain, revocation, timestamp, timestampImprint. */
  name: string;
  /** null: not checked at this level. */
  ok: boolean | null;
  /** zh-CN label, e.g. 签名未改, 原文未改. */
  label: string;
  reason?: string;
}

export interface SignerIdentity {
  subject: string;
  serial: string;
  issuer: string;
  notBefore: string;
  notAfter: string;
  commonName?: string;
  /** When the certificate is ours and names staff / a department, or is a held key. */
  employeeId?: string;
  departmentId?: string;
  heldKey?: { id: string; label: string; kind: HeldKeyKind };
}

export interface VerificationReport {
  valid: boolean;
  /** 'OK' or the code of the first failed check, e.g. SIGNATURE_INVALID, CONTENT_ALTERED, CERT_REVOKED. */
  code: string;
  /** GB/T 38629 Annex B response code (0 success, 0x04000000 + n). */
  gbtCode: number;
  level: VerifyLevel;
  form: 'raw' | 'gbt35275' | 'rfc5652';
  signer?: SignerIdentity;
  /**
   * The time certificate validity and revocation were judged at, and where it came from: the
   * genTime of a valid signature time-stamp, a time the caller asserts (`at` — e.g. the evidence
   * store's own receipt time), or now. The signer's signingTime attribute is reported but never
   * used: the signer asserts it, so a stolen key could backdate with it (ETSI EN 319 102-1 §5.6.2).
   */
  judgedAt: string;
  judgedAtSource: 'timestamp' | 'request' | 'now';
  signingTime?: string;
  timestamp?: { genTime: string; tsa: string; serial: string; ok: boolean; reason?: string };
  checks: ReportCheck[];
  chain?: PathCertificate[];
  revocation?: RevocationReport;
  /** Attached CMS: the original, base64. */
  content?: string;
}

// ---- signing and verification use-cases (sign-service.ts, verify-service.ts) -------------

export type { CmsForm };

export interface RawSignRequest {
  /** Held key id or label. */
  key: string;
  accessCode?: string;
  /** Exactly one of data (the message) and digest (already hashed: for SM2 e = SM3(Z_A‖M)). */
  data?: Buffer;
  digest?: Buffer;
  /** SM2 distinguishing ID; default 1234567812345678. Not allowed with digest. */
  sm2Id?: Buffer;
  /** ECDSA/RSA hash; defaults by key (P-256/RSA sha256, P-384 sha384). */
  hash?: 'sha256' | 'sha384' | 'sha512';
  rsaPadding?: 'pkcs1' | 'pss';
}

export interface RawSignResult {
  /** DER SEQUENCE{r,s} for SM2/ECDSA, modulus-size bytes for RSA. */
  signature: Buffer;
  /** e.g. SM2-SM3, ECDSA-SHA256, RSA-PKCS1-SHA256, RSA-PSS-SHA256. */
  algorithm: string;
  key: HeldKeyView;
  /** DER of the signer certificate. */
  certificate: Buffer;
}

export interface CmsSignRequest {
  key: string;
  accessCode?: string;
  content: Buffer;
  detached: boolean;
  /** SM2 only; default gbt35275. ECDSA/RSA are always rfc5652. */
  form?: CmsForm;
  /** Add a signature time-stamp from the appliance's TSA (CAdES-T, id-aa-signatureTimeStampToken). */
  timestamp?: boolean;
  /** Embed the issuing CA certificate(s) besides the signer's; default true. */
  includeChain?: boolean;
}

export interface CmsSignResult {
  /** DER ContentInfo. */
  cms: Buffer;
  form: CmsForm;
  key: HeldKeyView;
  signingTime: string;
  /** When a time-stamp was added. */
  timestamp?: { genTime: string; serial: string };
}

export interface SigningService {
  signRaw(appId: string, req: RawSignRequest): Promise<RawSignResult>;
  signCms(appId: string, req: CmsSignRequest): Promise<CmsSignResult>;
}

export interface RawVerifyRequest {
  /** DER of the signer certificate, or the serial of a certificate our CA issued. */
  certificate?: Buffer;
  certSerial?: string;
  data?: Buffer;
  digest?: Buffer;
  signature: Buffer;
  sm2Id?: Buffer;
  hash?: 'sha256' | 'sha384' | 'sha512';
  rsaPadding?: 'pkcs1' | 'pss';
  /** Default 2. */
  level?: VerifyLevel;
  /** The time to judge the certificate at (a claimed signing time); default now. */
  at?: Date;
}

export interface CmsVerifyRequest {
  cms: Buffer;
  /** The original, for detached CMS. */
  content?: Buffer;
  level?: VerifyLevel;
  /** A time the caller vouches for (used when the CMS has no valid signature time-stamp); default now. */
  at?: Date;
  /** `cms` already parsed by the caller (in-process only; routes never set it), so it is parsed once. */
  parsed?: ParsedSignedData;
}

export interface CertificateValidationRequest {
  certificate: Buffer;
  level?: VerifyLevel;
  at?: Date;
}

/** Never throws for bad signatures or certificates: the report says what failed. Throws only for malformed requests. */
export interface VerificationService {
  verifyRaw(req: RawVerifyRequest): Promise<VerificationReport>;
  verifyCms(req: CmsVerifyRequest): Promise<VerificationReport>;
  validateCertificate(req: CertificateValidationRequest): Promise<VerificationReport>;
}
