// RFC 3161 time-stamp messages (§2.4.1 request, §2.4.2 response, TSTInfo) and the token as a
// CMS SignedData (RFC 5652 §5) with the ESS signing-certificate-v2 attribute (RFC 5035 §5.4,
// RFC 5816), read and written with the strict DER toolkit of crypto/der.ts (as ocsp.ts and
// crl.ts). No I/O and no keys: the token is signed by the Signer the caller hands in.
//
//   TimeStampReq ::= SEQUENCE { version INTEGER { v1(1) }, messageImprint MessageImprint,
//        reqPolicy TSAPolicyId OPTIONAL, nonce INTEGER OPTIONAL, certReq BOOLEAN DEFAULT FALSE,
//        extensions [0] IMPLICIT Extensions OPTIONAL }
//   MessageImprint ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, hashedMessage OCTET STRING }
//   TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken TimeStampToken OPTIONAL }
//   PKIStatusInfo ::= SEQUENCE { status PKIStatus, statusString PKIFreeText OPTIONAL, failInfo PKIFailureInfo OPTIONAL }
//   TSTInfo ::= SEQUENCE { version INTEGER { v1(1) }, policy TSAPolicyId, messageImprint MessageImprint,
//        serialNumber INTEGER, genTime GeneralizedTime, accuracy Accuracy OPTIONAL,
//        ordering BOOLEAN DEFAULT FALSE, nonce INTEGER OPTIONAL, tsa [0] GeneralName OPTIONAL,
//        extensions [1] IMPLICIT Extensions OPTIONAL }
//   Accuracy ::= SEQUENCE { seconds INTEGER OPTIONAL, millis [0] INTEGER (1..999) OPTIONAL, micros [1] INTEGER (1..999) OPTIONAL }
//
// SM2 tokens follow STANDARDS.md §3 (GM/T 0033): SignerInfo digest SM3, signature algorithm
// 1.2.156.10197.1.301.1 (1.2.156.10197.1.501 accepted when reading), SM2 with the default ID
// over DER(SET OF signed attributes); ESSCertIDv2 with SM3. ECDSA: SHA-256, ecdsa-with-SHA256.
import { DerError, Tag, children, expectTag, integer, octets, oid, readOid, readTlv, readWhole, seq, tlv, type Tlv } from '../crypto/der.js';
import { digest } from '../crypto/hash.js';
import type { Signer } from '../crypto/interfaces.js';
import { OID } from '../crypto/oids.js';
import type { ImprintHash } from '../tsa/types.js';

export const OID_CT_TSTINFO = '1.2.840.113549.1.9.16.1.4';
export const OID_CONTENT_TYPE = '1.2.840.113549.1.9.3';
export const OID_MESSAGE_DIGEST = '1.2.840.113549.1.9.4';
export const OID_SIGNING_TIME = '1.2.840.113549.1.9.5';
export const OID_SIGNING_CERTIFICATE_V2 = '1.2.840.113549.1.9.16.2.47';
/** SM2-1 signature, the SignerInfo signatureAlgorithm of GM/T 0033 SM2 tokens (STANDARDS.md §3). */
export const OID_SM2_SIGN = OID.sm2Sign;

const TAG_BOOLEAN = 0x01;
const TAG_UTF8 = 0x0c;
const TAG_SET = 0x31;
const TAG_GENERALIZED_TIME = 0x18;
const TAG_UTC_TIME = 0x17;

export const IMPRINT_HASH_OIDS: Record<ImprintHash, string> = {
  sm3: OID.sm3,
  sha256: OID.sha256,
  sha384: OID.sha384,
  sha512: OID.sha512,
};
const IMPRINT_BY_OID = new Map(Object.entries(IMPRINT_HASH_OIDS).map(([k, v]) => [v, k as ImprintHash]));
export const IMPRINT_LENGTH: Record<ImprintHash, number> = { sm3: 32, sha256: 32, sha384: 48, sha512: 64 };

/** PKIStatus (RFC 3161 §2.4.2). */
export const PkiStatus = { granted: 0, grantedWithMods: 1, rejection: 2, waiting: 3, revocationWarning: 4, revocationNotification: 5 } as const;
export type PkiStatusName = keyof typeof PkiStatus;

/** PKIFailureInfo bit numbers (RFC 3161 §2.4.2). */
export const FailureInfo = {
  badAlg: 0,
  badRequest: 2,
  badDataFormat: 5,
  timeNotAvailable: 14,
  unacceptedPolicy: 15,
  unacceptedExtension: 16,
  addInfoNotAvailable: 17,
  systemFailure: 25,
} as const;
export type FailureInfoName = keyof typeof FailureInfo;

/** A request that is refused; the TSA answers `rejection` with this failInfo. */
export class TspRejection extends Error {
  constructor(
    readonly failInfo: FailureInfoName,
    message: string,
  ) {
    super(message);
    this.name = 'TspRejection';
  }
}

// ---------- request ----------

export interface ParsedTimeStampReq {
  /** hashAlgorithm OID and, when approved, its name. */
  hashAlgorithm: string;
  hash?: ImprintHash;
  hashedMessage: Buffer;
  /** The MessageImprint exactly as sent (TSTInfo repeats it byte for byte, §2.4.2). */
  messageImprintDer: Buffer;
  reqPolicy?: string;
  /** The nonce INTEGER TLV exactly as sent, echoed in TSTInfo. */
  nonceDer?: Buffer;
  /** Hex of the nonce content octets. */
  nonceHex?: string;
  certReq: boolean;
  /** OIDs of non-critical extensions that were ignored. */
  ignoredExtensions: string[];
}

function minimalInteger(t: Tlv, what: string): void {
  const v = t.value;
  if (v.length === 0) throw new DerError(`${what}: empty INTEGER`);
  if (v.length > 1 && ((v[0] === 0 && !(v[1] & 0x80)) || (v[0] === 0xff && v[1] & 0x80))) throw new DerError(`${what}: non-minimal INTEGER`);
}

function readAlgorithmIdentifier(t: Tlv | undefined, what: string): { oid: string; params?: Tlv } {
  const a = children(expectTag(t, Tag.SEQUENCE, what).value);
  if (a.length < 1 || a.length > 2) throw new DerError(`${what}: bad AlgorithmIdentifier`);
  return { oid: readOid(a[0]), params: a[1] };
}

/**
 * Parses a DER TimeStampReq strictly. Throws TspRejection: badDataFormat for anything that is
 * not exactly one DER TimeStampReq (truncated, BER, trailing bytes, wrong length digest),
 * badRequest for version ≠ 1, badAlg for an unapproved hash, unacceptedExtension for an
 * unknown critical extension. Never throws anything else.
 */
export function parseTimeStampReq(der: Buffer): ParsedTimeStampReq {
  try {
    return parseInner(der);
  } catch (e) {
    if (e instanceof TspRejection) throw e;
    throw new TspRejection('badDataFormat', `not a DER TimeStampReq: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function parseInner(der: Buffer): ParsedTimeStampReq {
  const f = children(readWhole(der, Tag.SEQUENCE).value);
  let i = 0;
  const version = expectTag(f[i++], Tag.INTEGER, 'version');
  minimalInteger(version, 'version');
  const mi = expectTag(f[i++], Tag.SEQUENCE, 'messageImprint');
  const mif = children(mi.value);
  if (mif.length !== 2) throw new DerError('MessageImprint must have 2 fields');
  const alg = readAlgorithmIdentifier(mif[0], 'hashAlgorithm');
  if (alg.params && !(alg.params.tag === Tag.NULL && alg.params.value.length === 0)) throw new DerError('unexpected hash parameters');
  const hashedMessage = Buffer.from(expectTag(mif[1], Tag.OCTET_STRING, 'hashedMessage').value);
  let reqPolicy: string | undefined;
  let nonceDer: Buffer | undefined;
  let certReq = false;
  let extensions: Tlv | undefined;
  if (f[i]?.tag === Tag.OID) reqPolicy = readOid(f[i++]);
  if (f[i]?.tag === Tag.INTEGER) {
    minimalInteger(f[i], 'nonce');
    if (f[i].value.length > 64) throw new DerError('nonce longer than 64 octets');
    nonceDer = Buffer.from(f[i++].raw);
  }
  if (f[i]?.tag === TAG_BOOLEAN) {
    const b = f[i++].value;
    // DER: TRUE is 0xff, and the DEFAULT FALSE is never encoded (X.690 §11.1, §11.5).
    if (b.length !== 1 || b[0] !== 0xff) throw new DerError('certReq must be DER TRUE when present');
    certReq = true;
  }
  if (f[i]?.tag === 0xa0) extensions = f[i++];
  if (i !== f.length) throw new DerError('unexpected fields in TimeStampReq');
  // Only now the semantic checks: a malformed request is badDataFormat whatever it claims.
  const v = version.value.length === 1 ? version.value[0] : -1;
  if (v !== 1) throw new TspRejection('badRequest', `TimeStampReq version ${version.value.toString('hex')} is not 1`);
  const ignoredExtensions: string[] = [];
  if (extensions) {
    const exts = children(extensions.value);
    if (exts.length === 0) throw new DerError('empty extensions');
    for (const e of exts) {
      const p = children(expectTag(e, Tag.SEQUENCE, 'Extension').value);
      const id = readOid(p[0]);
      let j = 1;
      let critical = false;
      if (p[j]?.tag === TAG_BOOLEAN) {
        if (p[j].value.length !== 1 || p[j].value[0] !== 0xff) throw new DerError('critical must be DER TRUE when present');
        critical = true;
        j++;
      }
      expectTag(p[j++], Tag.OCTET_STRING, 'extnValue');
      if (j !== p.length) throw new DerError('bad Extension');
      // No request extension is understood: a critical one cannot be honoured (RFC 3161 §2.4.1).
      if (critical) throw new TspRejection('unacceptedExtension', `critical extension ${id} is not supported`);
      ignoredExtensions.push(id);
    }
  }
  const hash = IMPRINT_BY_OID.get(alg.oid);
  if (!hash) throw new TspRejection('badAlg', `hash algorithm ${alg.oid} is not accepted (SM3, SHA-256, SHA-384, SHA-512)`);
  if (hashedMessage.length !== IMPRINT_LENGTH[hash]) {
    throw new TspRejection('badDataFormat', `hashedMessage has ${hashedMessage.length} octets, ${hash} has ${IMPRINT_LENGTH[hash]}`);
  }
  return {
    hashAlgorithm: alg.oid,
    hash,
    hashedMessage,
    messageImprintDer: Buffer.from(mi.raw),
    ...(reqPolicy !== undefined ? { reqPolicy } : {}),
    ...(nonceDer ? { nonceDer, nonceHex: readTlv(nonceDer).tlv.value.toString('hex') } : {}),
    certReq,
    ignoredExtensions,
  };
}

/** Builds a TimeStampReq (tests, bench and docs examples; the TSA never sends one). */
export function buildTimeStampReq(r: { hash: ImprintHash; hashedMessage: Buffer; reqPolicy?: string; nonce?: bigint; certReq?: boolean; extensions?: { oid: string; critical: boolean; value: Buffer }[]; version?: number }): Buffer {
  return seq(
    integer(r.version ?? 1),
    seq(seq(oid(IMPRINT_HASH_OIDS[r.hash])), octets(r.hashedMessage)),
    ...(r.reqPolicy ? [oid(r.reqPolicy)] : []),
    ...(r.nonce !== undefined ? [integer(r.nonce)] : []),
    ...(r.certReq ? [tlv(TAG_BOOLEAN, Buffer.from([0xff]))] : []),
    ...(r.extensions?.length ? [tlv(0xa0, ...r.extensions.map((e) => seq(oid(e.oid), ...(e.critical ? [tlv(TAG_BOOLEAN, Buffer.from([0xff]))] : []), octets(e.value))))] : []),
  );
}

// ---------- response ----------

/**
 * Writes `tag` + length + [YY]YYMMDDHHMMSS[.fff]Z of `d` in UTC into one buffer (every token
 * has two times; no ISO string and regex round trip). `yearDigits` 4: GeneralizedTime, 2: UTCTime.
 */
function timeTlv(tag: number, d: Date, yearDigits: 2 | 4, millis: boolean): Buffer {
  if (Number.isNaN(d.getTime())) throw new RangeError('invalid time');
  const year = d.getUTCFullYear();
  if (year < 0 || year > 9999) throw new RangeError(`year ${year} cannot be encoded`);
  let ms = millis ? d.getUTCMilliseconds() : 0;
  // The fraction without trailing zeros, and none at all when zero (X.690 §11.7.3 / §11.7.4).
  let fracDigits = ms === 0 ? 0 : 3;
  while (fracDigits > 0 && ms % 10 === 0) {
    ms /= 10;
    fracDigits--;
  }
  const len = yearDigits + 10 + (fracDigits ? 1 + fracDigits : 0) + 1;
  const out = Buffer.allocUnsafe(2 + len);
  out[0] = tag;
  out[1] = len;
  let at = 2;
  const put = (v: number, n: number): void => {
    for (let i = n - 1; i >= 0; i--, v = Math.floor(v / 10)) out[at + i] = 0x30 + (v % 10);
    at += n;
  };
  put(yearDigits === 4 ? year : year % 100, yearDigits);
  put(d.getUTCMonth() + 1, 2);
  put(d.getUTCDate(), 2);
  put(d.getUTCHours(), 2);
  put(d.getUTCMinutes(), 2);
  put(d.getUTCSeconds(), 2);
  if (fracDigits) {
    out[at++] = 0x2e; // '.'
    put(ms, fracDigits);
  }
  out[at] = 0x5a; // 'Z'
  return out;
}

/** GeneralizedTime with milliseconds, trailing zeros of the fraction dropped (X.690 §11.7.3). */
export function generalizedTimeMillis(d: Date): Buffer {
  return timeTlv(TAG_GENERALIZED_TIME, d, 4, true);
}

/** Accuracy from microseconds (seconds / millis / micros; zero fields omitted; at least 1 µs). */
export function encodeAccuracy(micros: number): Buffer {
  const total = Math.max(1, Math.ceil(micros));
  const seconds = Math.floor(total / 1_000_000);
  const millis = Math.floor((total % 1_000_000) / 1000);
  const us = total % 1000;
  return seq(
    ...(seconds > 0 ? [integer(seconds)] : []),
    ...(millis > 0 ? [tlv(0x80, integer(millis).subarray(2))] : []),
    ...(us > 0 ? [tlv(0x81, integer(us).subarray(2))] : []),
  );
}

/** PKIFailureInfo as a DER BIT STRING (named bits: trailing zero bits removed, X.690 §11.2.2). */
export function failureInfoBits(name: FailureInfoName): Buffer {
  const bit = FailureInfo[name];
  const bytes = Buffer.alloc(Math.floor(bit / 8) + 1);
  bytes[bytes.length - 1] = 0x80 >> (bit % 8);
  return tlv(Tag.BIT_STRING, Buffer.from([7 - (bit % 8)]), bytes);
}

function statusInfo(status: PkiStatusName, text: string[], failInfo?: FailureInfoName): Buffer {
  return seq(
    integer(PkiStatus[status]),
    ...(text.length ? [seq(...text.map((t) => tlv(TAG_UTF8, Buffer.from(t, 'utf8'))))] : []),
    ...(failInfo ? [failureInfoBits(failInfo)] : []),
  );
}

/** A TimeStampResp without a token (rejection, waiting, …). */
export function timeStampRejection(failInfo: FailureInfoName, text: string[]): Buffer {
  return seq(statusInfo('rejection', text, failInfo));
}

export interface TstInfoInput {
  policy: string;
  messageImprintDer: Buffer;
  /** Positive serial as bytes (big-endian). */
  serial: Buffer;
  genTime: Date;
  accuracyMicros?: number;
  nonceDer?: Buffer;
}

/** INTEGER from big-endian unsigned octets: minimal (X.690 §8.3.2), positive (0x00 before a top bit). */
function positiveInteger(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  if (b.length === 0) return integer(0);
  return b[i] & 0x80 ? tlv(Tag.INTEGER, ZERO_OCTET, b.subarray(i)) : tlv(Tag.INTEGER, b.subarray(i));
}
const ZERO_OCTET = Buffer.from([0]);

export function encodeTstInfo(t: TstInfoInput): Buffer {
  return seq(
    integer(1),
    oid(t.policy),
    t.messageImprintDer,
    positiveInteger(t.serial),
    generalizedTimeMillis(t.genTime),
    ...(t.accuracyMicros !== undefined ? [encodeAccuracy(t.accuracyMicros)] : []),
    // ordering: DEFAULT FALSE → absent in DER.
    ...(t.nonceDer ? [t.nonceDer] : []),
  );
}

/** What the token signer needs, prepared once per TSA identity (no per-request parsing). */
export interface TokenSigningIdentity {
  signer: Signer;
  /** DER of the TSA certificate. */
  certificate: Buffer;
  /** issuer Name (DER) and serial INTEGER (DER) of the certificate. */
  issuerDer: Buffer;
  serialDer: Buffer;
  /** SHA-256 (ECDSA) or SM3 (SM2) of the certificate: the ESSCertIDv2 certHash. */
  certHash: Buffer;
}

/** SignerInfo digest algorithm and signature algorithm per key (STANDARDS.md §3). */
function algorithms(signer: Signer): { hash: 'sm3' | 'sha256'; digestAlg: Buffer; sigAlg: Buffer } {
  if (signer.algorithm === 'sm2') return { hash: 'sm3', digestAlg: seq(oid(OID.sm3)), sigAlg: seq(oid(OID_SM2_SIGN)) };
  if (signer.algorithm === 'ecdsa-p256') return { hash: 'sha256', digestAlg: seq(oid(OID.sha256)), sigAlg: seq(oid(OID.ecdsaWithSha256)) };
  throw new Error(`TSA key algorithm ${signer.algorithm} is not supported`);
}

/** Prepares the per-identity constants of the token: ESSCertIDv2 hash, IssuerAndSerialNumber. */
export function tokenSigningIdentity(signer: Signer, certificate: Buffer): TokenSigningIdentity {
  const cert = children(readWhole(certificate, Tag.SEQUENCE).value);
  const tbs = children(expectTag(cert[0], Tag.SEQUENCE, 'tbsCertificate').value);
  let i = 0;
  if (tbs[i]?.tag === 0xa0) i++;
  const serialDer = Buffer.from(expectTag(tbs[i++], Tag.INTEGER, 'serialNumber').raw);
  i++; // signature
  const issuerDer = Buffer.from(expectTag(tbs[i], Tag.SEQUENCE, 'issuer').raw);
  return { signer, certificate, issuerDer, serialDer, certHash: digest(algorithms(signer).hash, certificate) };
}

/** DER SET OF: elements sorted by their encodings (X.690 §11.6). */
function setOf(items: Buffer[]): Buffer {
  return tlv(TAG_SET, ...[...items].sort(Buffer.compare));
}

function attribute(type: string, value: Buffer): Buffer {
  return seq(oid(type), tlv(TAG_SET, value));
}

/** UTCTime, whole seconds (X.690 §11.8; RFC 5652 §11.3 signingTime). */
function utcTime(d: Date): Buffer {
  return timeTlv(TAG_UTC_TIME, d, 2, false);
}

/**
 * The TimeStampToken: ContentInfo { id-signedData, SignedData } around the TSTInfo, signed by
 * `id`. `includeCertificate` honours certReq (RFC 3161 §2.4.1: the TSA's certificate).
 */
/** The parts of a token that depend only on the signing identity, encoded once per identity. */
interface TokenConstants {
  alg: ReturnType<typeof algorithms>;
  contentTypeAttr: Buffer;
  signingCertificateAttr: Buffer;
  sid: Buffer;
  digestAlgSet: Buffer;
}
const constantsOf = new WeakMap<TokenSigningIdentity, TokenConstants>();

function tokenConstants(id: TokenSigningIdentity): TokenConstants {
  let c = constantsOf.get(id);
  if (!c) {
    const alg = algorithms(id.signer);
    const essCertId = seq(
      // hashAlgorithm DEFAULT id-sha256: omitted for SHA-256 (DER), named for SM3.
      ...(alg.hash === 'sha256' ? [] : [alg.digestAlg]),
      octets(id.certHash),
      seq(seq(tlv(0xa4, id.issuerDer)), id.serialDer),
    );
    c = {
      alg,
      contentTypeAttr: attribute(OID_CONTENT_TYPE, oid(OID_CT_TSTINFO)),
      signingCertificateAttr: attribute(OID_SIGNING_CERTIFICATE_V2, seq(seq(essCertId))),
      sid: seq(id.issuerDer, id.serialDer),
      digestAlgSet: tlv(TAG_SET, alg.digestAlg),
    };
    constantsOf.set(id, c);
  }
  return c;
}

/**
 * The TimeStampToken: ContentInfo { id-signedData, SignedData } around the TSTInfo, signed by
 * `id`. `includeCertificate` honours certReq (RFC 3161 §2.4.1: the TSA's certificate).
 */
export async function buildTimeStampToken(tstInfo: Buffer, genTime: Date, id: TokenSigningIdentity, includeCertificate: boolean): Promise<Buffer> {
  const k = tokenConstants(id);
  const alg = k.alg;
  const attrs = [
    k.contentTypeAttr,
    attribute(OID_SIGNING_TIME, utcTime(genTime)),
    attribute(OID_MESSAGE_DIGEST, octets(digest(alg.hash, tstInfo))),
    k.signingCertificateAttr,
  ];
  const signedAttrs = setOf(attrs);
  const signature = await id.signer.sign(signedAttrs, alg.hash === 'sha256' ? { hash: 'sha256' } : {});
  signedAttrs[0] = 0xa0; // [0] IMPLICIT SET OF Attribute in the SignerInfo (RFC 5652 §5.3); signed as a SET
  const signerInfo = seq(integer(1), k.sid, alg.digestAlg, signedAttrs, alg.sigAlg, octets(signature));
  const signedData = seq(
    integer(3),
    k.digestAlgSet,
    seq(oid(OID_CT_TSTINFO), tlv(0xa0, octets(tstInfo))),
    ...(includeCertificate ? [tlv(0xa0, id.certificate)] : []),
    tlv(TAG_SET, signerInfo),
  );
  return seq(oid(OID.pkcs7SignedData), tlv(0xa0, signedData));
}

/** A granted TimeStampResp carrying `token`; `text` goes into statusString (development notice). */
export function timeStampGranted(token: Buffer, text: string[]): Buffer {
  return seq(statusInfo('granted', text), token);
}

// ---------- reading responses (tests, tools) ----------

export interface ParsedTimeStampResp {
  status: number;
  statusString: string[];
  failInfo?: FailureInfoName;
  token?: Buffer;
  tstInfo?: {
    der: Buffer;
    policy: string;
    serial: string;
    genTime: Date;
    genTimeText: string;
    accuracyMicros?: number;
    nonceHex?: string;
    imprintHashOid: string;
    imprint: Buffer;
  };
  /** SignerInfo algorithms and whether the certificate was included. */
  signer?: { digestAlgorithm: string; signatureAlgorithm: string; certificateIncluded: boolean };
}

export function parseTimeStampResp(der: Buffer): ParsedTimeStampResp {
  const top = children(readWhole(der, Tag.SEQUENCE).value);
  const si = children(expectTag(top[0], Tag.SEQUENCE, 'PKIStatusInfo').value);
  const status = Number(expectTag(si[0], Tag.INTEGER, 'status').value[0]);
  let statusString: string[] = [];
  let failInfo: FailureInfoName | undefined;
  for (const x of si.slice(1)) {
    if (x.tag === Tag.SEQUENCE) statusString = children(x.value).map((s) => s.value.toString('utf8'));
    if (x.tag === Tag.BIT_STRING) {
      const bytes = x.value.subarray(1);
      for (const [name, bit] of Object.entries(FailureInfo)) if (bytes[Math.floor(bit / 8)] & (0x80 >> (bit % 8))) failInfo = name as FailureInfoName;
    }
  }
  const out: ParsedTimeStampResp = { status, statusString, ...(failInfo ? { failInfo } : {}) };
  if (!top[1]) return out;
  out.token = Buffer.from(top[1].raw);
  const ci = children(top[1].value);
  const sd = children(readWhole(expectTag(ci[1], 0xa0, 'content').value, Tag.SEQUENCE).value);
  const eci = children(sd[2].value);
  const tst = readWhole(children(expectTag(eci[1], 0xa0, 'eContent').value)[0].raw, Tag.OCTET_STRING).value;
  const t = children(readWhole(tst, Tag.SEQUENCE).value);
  const imprint = children(t[2].value);
  let k = 5;
  let accuracyMicros: number | undefined;
  if (t[k]?.tag === Tag.SEQUENCE) {
    accuracyMicros = 0;
    for (const a of children(t[k].value)) {
      const n = Number(BigInt('0x' + a.value.toString('hex')));
      accuracyMicros += a.tag === Tag.INTEGER ? n * 1_000_000 : a.tag === 0x80 ? n * 1000 : n;
    }
    k++;
  }
  if (t[k]?.tag === TAG_BOOLEAN) k++;
  const nonceHex = t[k]?.tag === Tag.INTEGER ? t[k].value.toString('hex') : undefined;
  const genTimeText = t[4].value.toString('ascii');
  const signerInfo = children(children(sd[sd.length - 1].value)[0].value);
  out.tstInfo = {
    der: Buffer.from(tst),
    policy: readOid(t[1]),
    serial: t[3].value.toString('hex').replace(/^(00)+(?=.)/, ''),
    genTime: new Date(genTimeText.replace(/^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\.\d+)?Z$/, '$1-$2-$3T$4:$5:$6$7Z')),
    genTimeText,
    ...(accuracyMicros !== undefined ? { accuracyMicros } : {}),
    ...(nonceHex !== undefined ? { nonceHex } : {}),
    imprintHashOid: readOid(children(imprint[0].value)[0]),
    imprint: Buffer.from(imprint[1].value),
  };
  out.signer = {
    digestAlgorithm: readOid(children(signerInfo[2].value)[0]),
    signatureAlgorithm: readOid(children(signerInfo[4].value)[0]),
    certificateIncluded: sd.some((x) => x.tag === 0xa0),
  };
  return out;
}
