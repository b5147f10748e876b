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

