// X.509 v3 certificates (RFC 5280 §4): the TBSCertificate with the extensions the CA writes,
// the signed Certificate around it, and a reader for the fields the CA needs back.
// Encode/decode only: the signature is made by the caller (pki/) with a Signer.
//
// Extensions written here, RFC 5280 §4.2 unless noted:
//   basicConstraints §4.2.1.9 (critical)      keyUsage §4.2.1.3 (critical)
//   extKeyUsage §4.2.1.12                     subjectKeyIdentifier §4.2.1.2 (RFC 7093 method 1)
//   authorityKeyIdentifier §4.2.1.1           subjectAltName §4.2.1.6
//   certificatePolicies §4.2.1.4              cRLDistributionPoints §4.2.1.13
//   authorityInfoAccess §4.2.2.1              id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1)
//   any other extension by OID with a typed value (TypedValue), or as raw DER.
// Written and read with the strict DER helpers of crypto/der.ts: the schema library cost ~1.6 ms
// per certificate (most of an issuance's CPU), and its decoder mangles OIDs with large arcs
// (2.25.<UUID>).
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { DerError, Tag, bitString, children, derNull, expectTag, integer, octets, oid as derOid, readBitStringBytes, readOid, readTlv, readWhole, seq, tlv, type Tlv } from '../crypto/der.js';
import { YiqianError } from '../errors.js';
import { PRINTABLE } from './name.js';

/** Raised for a custom extension whose value does not fit its declared type. */
export const EXTENSION_INVALID = 'EXTENSION_INVALID';

export const EXT = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  cRLDistributionPoints: '2.5.29.31',
  certificatePolicies: '2.5.29.32',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  ocspNoCheck: '1.3.6.1.5.5.7.48.1.5',
} as const;

/** RFC 5280 §4.2.1.12 and RFC 6960 key purposes by name. */
export const KEY_PURPOSES = {
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  codeSigning: '1.3.6.1.5.5.7.3.3',
  emailProtection: '1.3.6.1.5.5.7.3.4',
  timeStamping: '1.3.6.1.5.5.7.3.8',
  OCSPSigning: '1.3.6.1.5.5.7.3.9',
} as const;

const ACCESS_OCSP = '1.3.6.1.5.5.7.48.1';
const ACCESS_CA_ISSUERS = '1.3.6.1.5.5.7.48.2';
const QUALIFIER_CPS = '1.3.6.1.5.5.7.2.1';

/** KeyUsage bits (RFC 5280 §4.2.1.3), in bit order. */
export const KEY_USAGE_BITS = ['digitalSignature', 'nonRepudiation', 'keyEncipherment', 'dataEncipherment', 'keyAgreement', 'keyCertSign', 'cRLSign', 'encipherOnly', 'decipherOnly'] as const;
export type KeyUsageName = (typeof KEY_USAGE_BITS)[number];

export const TYPED_VALUE_TYPES = ['utf8String', 'printableString', 'ia5String', 'integer', 'boolean', 'octets-hex', 'der-hex'] as const;
export type TypedValueType = (typeof TYPED_VALUE_TYPES)[number];

/** The value of a custom extension: its ASN.1 type and the value in JSON form. */
export interface TypedValue {
  type: TypedValueType;
  value: string | number | boolean;
}

export type CertificateExtension =
  | { kind: 'basicConstraints'; ca: boolean; pathLength?: number }
  | { kind: 'keyUsage'; usages: KeyUsageName[] }
  | { kind: 'extKeyUsage'; purposes: string[]; critical: boolean }
  | { kind: 'subjectKeyIdentifier'; keyIdentifier: Buffer }
  | { kind: 'authorityKeyIdentifier'; keyIdentifier: Buffer }
  | { kind: 'subjectAltName'; dnsNames?: string[]; ipAddresses?: string[]; emails?: string[] }
  | { kind: 'certificatePolicies'; policies: { oid: string; cps?: string }[] }
  | { kind: 'crlDistributionPoints'; urls: string[] }
  | { kind: 'authorityInfoAccess'; ocsp: string[]; caIssuers: string[] }
  | { kind: 'ocspNoCheck' }
  | { kind: 'custom'; oid: string; critical: boolean; value: TypedValue }
  /** An extension copied as is (e.g. from the certificate being renewed). */
  | { kind: 'raw'; oid: string; critical: boolean; value: Buffer };

export interface AlgorithmIdentifierSpec {
  algorithm: string;
  /** DER of the parameters; absent, or NULL (05 00) for RSA. */
  parameters?: ArrayBuffer | null;
}

export interface TbsSpec {
  /** Unsigned big-endian serial, 1–20 octets (RFC 5280 §4.1.2.2). */
  serial: Buffer;
  signatureAlgorithm: AlgorithmIdentifierSpec;
  /** DER of the issuer Name (the issuing CA's subject, byte for byte). */
  issuer: Buffer;
  /** DER of the subject Name (asn1/name.ts encodeName). */
  subject: Buffer;
  notBefore: Date;
  notAfter: Date;
  /** SubjectPublicKeyInfo DER. */
  subjectPublicKeyInfo: Buffer;
  extensions: CertificateExtension[];
}

function invalid(en: string, zh: string, detail?: Record<string, unknown>): never {
  throw new YiqianError(EXTENSION_INVALID, 400, { zh, en }, detail);
}

// ---------- typed values ----------

/** INTEGER of any sign (X.690 §8.3, two's complement, minimal). */
function signedInteger(v: bigint): Buffer {
  if (v >= 0n) return integer(v);
  let bytes = 1;
  while (v < -(1n << BigInt(8 * bytes - 1))) bytes++;
  const twos = (1n << BigInt(8 * bytes)) + v;
  return tlv(Tag.INTEGER, Buffer.from(twos.toString(16).padStart(bytes * 2, '0'), 'hex'));
}

const MAX_VALUE_BYTES = 4096;

/** DER of a typed value; EXTENSION_INVALID (400) when the value does not fit the type. */
export function encodeTypedValue(v: TypedValue, oidForMessages = ''): Buffer {
  const where = oidForMessages ? { oid: oidForMessages } : undefined;
  const str = (): string => {
    if (typeof v.value !== 'string' || v.value.length === 0) invalid(`extension ${oidForMessages}: ${v.type} value must be a non-empty string`, `扩展 ${oidForMessages} 的值必须是非空字符串`, where);
    if (Buffer.byteLength(v.value) > MAX_VALUE_BYTES) invalid(`extension ${oidForMessages}: value longer than ${MAX_VALUE_BYTES} bytes`, `扩展 ${oidForMessages} 的值过长`, where);
    return v.value;
  };
  const hex = (): Buffer => {
    const s = str();
    if (!/^([0-9a-fA-F]{2})+$/.test(s)) invalid(`extension ${oidForMessages}: ${v.type} value must be hex`, `扩展 ${oidForMessages} 的值必须是十六进制`, where);
    return Buffer.from(s, 'hex');
  };
  switch (v.type) {
    case 'utf8String': {
      const s = str();
      if (/\p{Cc}/u.test(s)) invalid(`extension ${oidForMessages}: control characters are not allowed`, `扩展 ${oidForMessages} 的值含控制字符`, where);
      return tlv(0x0c, Buffer.from(s, 'utf8'));
    }
    case 'printableString': {
      const s = str();
      if (!PRINTABLE.test(s)) invalid(`extension ${oidForMessages}: not a PrintableString (A–Z a–z 0–9 '()+,-./:=? space)`, `扩展 ${oidForMessages} 的值不是 PrintableString`, where);
      return tlv(0x13, Buffer.from(s, 'latin1'));
    }
    case 'ia5String': {
      const s = str();
      if (!/^[\x20-\x7e]*$/.test(s)) invalid(`extension ${oidForMessages}: not printable ASCII (IA5String)`, `扩展 ${oidForMessages} 的值不是 IA5String`, where);
      return tlv(0x16, Buffer.from(s, 'latin1'));
    }
    case 'integer': {
      let n: bigint;
      if (typeof v.value === 'number' && Number.isSafeInteger(v.value)) n = BigInt(v.value);
      else if (typeof v.value === 'string' && /^-?\d{1,200}$/.test(v.value)) n = BigInt(v.value);
      else return invalid(`extension ${oidForMessages}: integer value must be a whole number or a decimal string`, `扩展 ${oidForMessages} 的值必须是整数`, where);
      return signedInteger(n);
    }
    case 'boolean':
      if (typeof v.value !== 'boolean') invalid(`extension ${oidForMessages}: boolean value must be true or false`, `扩展 ${oidForMessages} 的值必须是布尔值`, where);
      return Buffer.from([0x01, 0x01, v.value ? 0xff : 0x00]);
    case 'octets-hex':
      return tlv(Tag.OCTET_STRING, hex());
    case 'der-hex': {
      const der = hex();
      try {
        const { next } = readTlv(der, 0);
        if (next !== der.length) throw new DerError('trailing bytes');
      } catch (e) {
        invalid(`extension ${oidForMessages}: der-hex is not one DER element (${(e as Error).message})`, `扩展 ${oidForMessages} 的值不是一个 DER 元素`, where);
      }
      return der;
    }
    default:
      return invalid(`extension ${oidForMessages}: unknown value type ${String((v as TypedValue).type)} (${TYPED_VALUE_TYPES.join(', ')})`, `扩展 ${oidForMessages} 的值类型未知`, where);
  }
}

// ---------- extensions ----------

/** KeyUsage BIT STRING in DER: named bits, trailing zero bits removed (X.690 §11.2.2). */
export function encodeKeyUsage(usages: KeyUsageName[]): Buffer {
  let bits = 0;
  for (const u of usages) {
    const i = KEY_USAGE_BITS.indexOf(u);
    if (i < 0) throw new DerError(`unknown key usage ${u}`);
    bits |= 1 << i;
  }
  if (bits === 0) throw new DerError('key usage without any bit');
  const highest = 31 - Math.clz32(bits);
  const nBytes = Math.floor(highest / 8) + 1;
  const out = Buffer.alloc(nBytes);
  for (let i = 0; i <= highest; i++) if (bits & (1 << i)) out[i >> 3] |= 0x80 >> (i & 7);
  const unused = nBytes * 8 - 1 - highest;
  return tlv(Tag.BIT_STRING, Buffer.from([unused]), out);
}


const TRUE = Buffer.from([0x01, 0x01, 0xff]);

/** Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING } (§4.1). */
function ext(extnID: string, critical: boolean, value: Buffer): { oid: string; der: Buffer } {
  return { oid: extnID, der: seq(derOid(extnID), ...(critical ? [TRUE] : []), octets(value)) };
}

function ia5(s: string): Buffer {
  if (!/^[\x20-\x7e]*$/.test(s)) throw new DerError(`not IA5 text: ${s.slice(0, 60)}`);
  return Buffer.from(s, 'latin1');
}

/** GeneralName [6] uniformResourceIdentifier (IMPLICIT IA5String). */
function uri(u: string): Buffer {
  return tlv(0x86, ia5(u));
}

/** IPv4 (4 bytes) or IPv6 (16 bytes) for GeneralName iPAddress (§4.2.1.6). */
export function ipBytes(ip: string): Buffer {
  const kind = isIP(ip);
  if (kind === 4) return Buffer.from(ip.split('.').map(Number));
  if (kind !== 6) throw new DerError(`not an IP address: ${ip}`);
  let text = ip;
  let tail: number[] = [];
  const v4 = /:(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    // An embedded IPv4 address stands for the last two groups.
    tail = v4[1].split('.').map(Number);
    text = `${text.slice(0, v4.index)}:0:0`;
  }
  const [head, rest] = text.split('::');
  const groups = (part: string | undefined): number[] => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const words = rest === undefined ? left : [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = Buffer.alloc(16);
  words.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  if (tail.length) out.set(tail, 12);
  return out;
}

function toExtension(e: CertificateExtension): { oid: string; der: Buffer } {
  switch (e.kind) {
    case 'basicConstraints':
      // cA DEFAULT FALSE: omitted when false (X.690 §11.5).
      return ext(EXT.basicConstraints, true, seq(...(e.ca ? [TRUE, ...(e.pathLength !== undefined ? [integer(e.pathLength)] : [])] : [])));
    case 'keyUsage':
      return ext(EXT.keyUsage, true, encodeKeyUsage(e.usages));
    case 'extKeyUsage':
      return ext(EXT.extKeyUsage, e.critical, seq(...e.purposes.map(derOid)));
    case 'subjectKeyIdentifier':
      return ext(EXT.subjectKeyIdentifier, false, octets(e.keyIdentifier));
    case 'authorityKeyIdentifier':
      // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING, … }
      return ext(EXT.authorityKeyIdentifier, false, seq(tlv(0x80, e.keyIdentifier)));
    case 'subjectAltName':
      return ext(
        EXT.subjectAltName,
        false,
        seq(
          ...(e.dnsNames ?? []).map((d) => tlv(0x82, ia5(d))),
          ...(e.ipAddresses ?? []).map((ip) => tlv(0x87, ipBytes(ip))),
          ...(e.emails ?? []).map((m) => tlv(0x81, ia5(m))),
        ),
      );
    case 'certificatePolicies':
      // PolicyInformation ::= SEQUENCE { policyIdentifier, policyQualifiers SEQUENCE OF
      //   PolicyQualifierInfo { id-qt-cps, CPSuri IA5String } OPTIONAL }
      return ext(
        EXT.certificatePolicies,
        false,
        seq(...e.policies.map((p) => seq(derOid(p.oid), ...(p.cps ? [seq(seq(derOid(QUALIFIER_CPS), tlv(0x16, ia5(p.cps))))] : [])))),
      );
    case 'crlDistributionPoints':
      // DistributionPoint { distributionPoint [0] (a CHOICE: explicit) { fullName [0] IMPLICIT GeneralNames } }
      return ext(EXT.cRLDistributionPoints, false, seq(seq(tlv(0xa0, tlv(0xa0, ...e.urls.map(uri))))));
    case 'authorityInfoAccess':
      return ext(
        EXT.authorityInfoAccess,
        false,
        seq(...e.ocsp.map((u) => seq(derOid(ACCESS_OCSP), uri(u))), ...e.caIssuers.map((u) => seq(derOid(ACCESS_CA_ISSUERS), uri(u)))),
      );
    case 'ocspNoCheck':
      // id-pkix-ocsp-nocheck: the value is NULL (RFC 6960 §4.2.2.2.1).
      return ext(EXT.ocspNoCheck, false, derNull());
    case 'custom':
      return ext(e.oid, e.critical, encodeTypedValue(e.value, e.oid));
    case 'raw':
      return ext(e.oid, e.critical, e.value);
  }
}

/** Key identifier of an SPKI: leftmost 160 bits of SHA-256 over the subjectPublicKey bits (RFC 7093 §2 method 1). */
export function keyIdentifier(spki: Buffer): Buffer {
  const [, key] = children(readWhole(spki, Tag.SEQUENCE).value);
  return createHash('sha256').update(readBitStringBytes(key)).digest().subarray(0, 20);
}

// ---------- TBSCertificate and Certificate ----------

function algorithmIdentifier(a: AlgorithmIdentifierSpec): Buffer {
  return seq(derOid(a.algorithm), ...(a.parameters ? [Buffer.from(a.parameters)] : []));
}

/** Time (§4.1.2.5): UTCTime through 2049, GeneralizedTime from 2050; whole seconds, Z. */
function encodeTime(d: Date): Buffer {
  const digits = d.toISOString().slice(0, 19).replace(/[-T:]/g, ''); // YYYYMMDDHHMMSS
  const year = d.getUTCFullYear();
  return year >= 1950 && year < 2050 ? tlv(0x17, Buffer.from(`${digits.slice(2)}Z`, 'latin1')) : tlv(0x18, Buffer.from(`${digits}Z`, 'latin1'));
}

function decodeTime(t: Tlv | undefined): Date {
  const s = t?.value.toString('latin1') ?? '';
  let m: RegExpExecArray | null;
  if (t?.tag === 0x17 && (m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s))) {
    const yy = Number(m[1]);
    return new Date(Date.UTC(yy < 50 ? 2000 + yy : 1900 + yy, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  }
  if (t?.tag === 0x18 && (m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s))) {
    return new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  }
  throw new DerError(`bad Time ${s.slice(0, 20)}`);
}

/** DER of the TBSCertificate (RFC 5280 §4.1.2): the bytes the CA signs. */
export function encodeTbsCertificate(spec: TbsSpec): Buffer {
  if (spec.serial.length < 1 || spec.serial.length > 20) throw new DerError('serial must be 1–20 octets');
  if (!(spec.notAfter.getTime() > spec.notBefore.getTime())) throw new DerError('notAfter must be after notBefore');
  const extensions = spec.extensions.map(toExtension);
  const oids = extensions.map((e) => e.oid);
  const dup = oids.find((o, i) => oids.indexOf(o) !== i);
  if (dup) throw new DerError(`extension ${dup} appears twice (RFC 5280 §4.2)`);
  for (const part of [spec.issuer, spec.subject, spec.subjectPublicKeyInfo]) readWhole(part, Tag.SEQUENCE);
  return seq(
    tlv(0xa0, integer(2)), // version v3
    integer(BigInt('0x' + spec.serial.toString('hex'))),
    algorithmIdentifier(spec.signatureAlgorithm),
    spec.issuer,
    seq(encodeTime(spec.notBefore), encodeTime(spec.notAfter)),
    spec.subject,
    spec.subjectPublicKeyInfo,
    ...(extensions.length ? [tlv(0xa3, seq(...extensions.map((e) => e.der)))] : []),
  );
}

/** Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue } over the exact signed bytes. */
export function assembleCertificate(tbsDer: Buffer, signatureAlgorithm: AlgorithmIdentifierSpec, signature: Buffer): Buffer {
  return seq(tbsDer, algorithmIdentifier(signatureAlgorithm), bitString(signature));
}

// ---------- reading ----------

export interface CertificateInfo {
  /** Lower-case hex, no leading zero octets. */
  serial: string;
  /** DER of the subject and issuer Names exactly as encoded. */
  subjectDer: Buffer;
  issuerDer: Buffer;
  notBefore: Date;
  notAfter: Date;
  /** SubjectPublicKeyInfo DER. */
  publicKeyInfo: Buffer;
  /** subjectKeyIdentifier, if present. */
  subjectKeyIdentifier?: Buffer;
  extensions: { oid: string; critical: boolean; value: Buffer }[];
  /** The signed bytes, signature algorithm OID and signature value. */
  tbs: Buffer;
  signatureAlgorithm: string;
  signature: Buffer;
}

// The same certificates (a department's, its CA, the root, the TSA's) arrive with every CMS to
// verify and every evidence record: each distinct DER is parsed once and its (never mutated)
// CertificateInfo shared. Parsed from a private copy, so a cached entry never keeps a large
// request body alive; bounded, least recently used out first. Keyed by the length and the last
// 16 bytes (inside the signature value), then compared whole: a key made of the whole DER cost a
// 1–2 KB string and its hash on each of the ≈ 5 lookups of a verification. Two certificates
// with one key only take turns in the entry.
const PARSED_MAX = 1024;
const parsed = new Map<string, { der: Buffer; info: CertificateInfo }>();

/** Parses a DER certificate (strict DER); throws DerError if it is not one. The result is shared: do not modify it. */
export function readCertificate(der: Buffer): CertificateInfo {
  const key = `${der.length}:${der.toString('latin1', Math.max(0, der.length - 16))}`;
  let entry = parsed.get(key);
  if (entry && entry.der.equals(der)) {
    parsed.delete(key);
  } else {
    const copy = Buffer.from(der);
    entry = { der: copy, info: parseCertificate(copy) };
    parsed.delete(key);
    if (parsed.size >= PARSED_MAX) parsed.delete(parsed.keys().next().value as string);
  }
  parsed.set(key, entry);
  return entry.info;
}

function parseCertificate(der: Buffer): CertificateInfo {
  const [tbsTlv, algTlv, sigTlv, extra] = children(readWhole(der, Tag.SEQUENCE).value);
  if (!sigTlv || extra) throw new DerError('a Certificate has 3 elements');
  const items = children(expectTag(tbsTlv, Tag.SEQUENCE, 'tbsCertificate').value);
  let i = 0;
  if (items[i]?.tag === 0xa0) i++; // [0] version
  const serial = expectTag(items[i++], Tag.INTEGER, 'serialNumber');
  expectTag(items[i++], Tag.SEQUENCE, 'signature');
  const issuer = expectTag(items[i++], Tag.SEQUENCE, 'issuer');
  const validity = children(expectTag(items[i++], Tag.SEQUENCE, 'validity').value);
  const subject = expectTag(items[i++], Tag.SEQUENCE, 'subject');
  const spki = expectTag(items[i++], Tag.SEQUENCE, 'subjectPublicKeyInfo');
  while (items[i] && (items[i].tag === 0x81 || items[i].tag === 0x82)) i++; // unique identifiers
  const extensions: CertificateInfo['extensions'] = [];
  if (items[i]?.tag === 0xa3) {
    for (const e of children(readWhole(items[i].value, Tag.SEQUENCE).value)) {
      const parts = children(expectTag(e, Tag.SEQUENCE, 'Extension').value);
      const critical = parts.length === 3 && parts[1].tag === 0x01 && parts[1].value[0] !== 0;
      extensions.push({ oid: readOid(parts[0]), critical, value: Buffer.from(expectTag(parts[parts.length - 1], Tag.OCTET_STRING, 'extnValue').value) });
    }
  }
  const skiExt = extensions.find((e) => e.oid === EXT.subjectKeyIdentifier);
  return {
    serial: serialHex(Buffer.from(serial.value)),
    subjectDer: Buffer.from(subject.raw),
    issuerDer: Buffer.from(issuer.raw),
    notBefore: decodeTime(validity[0]),
    notAfter: decodeTime(validity[1]),
    publicKeyInfo: Buffer.from(spki.raw),
    ...(skiExt ? { subjectKeyIdentifier: Buffer.from(readWhole(skiExt.value, Tag.OCTET_STRING).value) } : {}),
    extensions,
    tbs: Buffer.from(tbsTlv.raw),
    signatureAlgorithm: readOid(children(algTlv.value)[0]),
    signature: Buffer.from(readBitStringBytes(sigTlv)),
  };
}

/** Lower-case hex of an unsigned serial without leading zero octets ("00" for zero). */
export function serialHex(serial: Buffer): string {
  let i = 0;
  while (i < serial.length - 1 && serial[i] === 0) i++;
  return serial.subarray(i).toString('hex');
}
