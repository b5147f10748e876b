// X.509 v2 CRL (RFC 5280 §5), encoded and read with the strict DER toolkit of crypto/der.ts so
// that every byte is ours to decide: the issuer Name is spliced in byte for byte from the CA
// certificate (§5.1.2.3: it must match the certificate's issuer exactly), times follow §5.1.2.4
// (UTCTime through 2049, GeneralizedTime after, whole seconds, Z), the revokedCertificates list
// is absent when empty (§5.1.2.6), and the reasonCode entry extension is left out for
// `unspecified` (§5.3.1: "SHOULD be absent instead of using the unspecified reason code").
//
//   CertificateList ::= SEQUENCE { tbsCertList TBSCertList, signatureAlgorithm AlgorithmIdentifier, signatureValue BIT STRING }
//   TBSCertList ::= SEQUENCE { version Version (v2), signature AlgorithmIdentifier, issuer Name,
//        thisUpdate Time, nextUpdate Time, revokedCertificates SEQUENCE OF SEQUENCE {
//        userCertificate CertificateSerialNumber, revocationDate Time, crlEntryExtensions Extensions OPTIONAL } OPTIONAL,
//        crlExtensions [0] EXPLICIT Extensions OPTIONAL }
//
// No I/O and no keys: the signature comes from the Signer the caller hands in.
import { createHash } from 'node:crypto';
import { DerError, Tag, bitString, children, expectTag, integer, octets, oid, readBitStringBytes, readOid, readWhole, seq, tlv, type Tlv } from '../crypto/der.js';
import type { KeyAlgorithm, SignOptions, Signer } from '../crypto/interfaces.js';
import { OID } from '../crypto/oids.js';

export const OID_CRL_NUMBER = '2.5.29.20';
export const OID_REASON_CODE = '2.5.29.21';
export const OID_AUTHORITY_KEY_IDENTIFIER = '2.5.29.35';
export const OID_SUBJECT_KEY_IDENTIFIER = '2.5.29.14';

const TAG_ENUMERATED = 0x0a;
const TAG_BOOLEAN = 0x01;
const TAG_UTC_TIME = 0x17;
const TAG_GENERALIZED_TIME = 0x18;

// ---------- shared with ocsp.ts ----------

/** AlgorithmIdentifier DER and sign options for the signatures this appliance makes (RFC 5758, GB/T 33560, RFC 8017). */
export function signatureAlgorithm(alg: KeyAlgorithm): { der: Buffer; oid: string; options: SignOptions } {
  switch (alg) {
    case 'sm2':
      // sm2sign-with-sm3, parameters absent; the SM2 signer applies the default ID 1234567812345678.
      return { der: seq(oid(OID.sm2WithSm3)), oid: OID.sm2WithSm3, options: {} };
    case 'ecdsa-p256':
      return { der: seq(oid(OID.ecdsaWithSha256)), oid: OID.ecdsaWithSha256, options: { hash: 'sha256' } };
    case 'ecdsa-p384':
      return { der: seq(oid(OID.ecdsaWithSha384)), oid: OID.ecdsaWithSha384, options: { hash: 'sha384' } };
    case 'rsa-2048':
    case 'rsa-3072':
    case 'rsa-4096':
      return { der: seq(oid(OID.sha256WithRsa), Buffer.from([0x05, 0x00])), oid: OID.sha256WithRsa, options: { hash: 'sha256', rsaPadding: 'pkcs1' } };
  }
}

/** Whole seconds: DER times carry no fraction here (RFC 5280 §4.1.2.5.2, RFC 6960 profiles). */
export function wholeSeconds(d: Date): Date {
  return new Date(Math.floor(d.getTime() / 1000) * 1000);
}

function digits(d: Date): string {
  return wholeSeconds(d).toISOString().replace(/[-:T]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

/** GeneralizedTime YYYYMMDDHHMMSSZ. */
export function generalizedTime(d: Date): Buffer {
  return tlv(TAG_GENERALIZED_TIME, Buffer.from(digits(d), 'ascii'));
}

/** RFC 5280 Time: UTCTime for 1950–2049, GeneralizedTime otherwise (§4.1.2.5, §5.1.2.4). */
export function x509Time(d: Date): Buffer {
  const y = d.getUTCFullYear();
  if (y >= 1950 && y <= 2049) return tlv(TAG_UTC_TIME, Buffer.from(digits(d).slice(2), 'ascii'));
  return generalizedTime(d);
}

/** Reads a UTCTime or GeneralizedTime (Z form, optional fraction). */
export function readTime(t: Tlv | undefined): Date {
  if (!t || (t.tag !== TAG_UTC_TIME && t.tag !== TAG_GENERALIZED_TIME)) throw new DerError('not a Time');
  const s = t.value.toString('ascii');
  const m = t.tag === TAG_UTC_TIME ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\.\d+)?Z$/.exec(s);
  if (!m) throw new DerError(`malformed time ${s}`);
  let year = Number(m[1]);
  if (t.tag === TAG_UTC_TIME) year += year < 50 ? 2000 : 1900;
  const ms = t.tag === TAG_GENERALIZED_TIME && m[7] ? Math.floor(Number(`0${m[7]}`) * 1000) : 0;
  const d = new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]), ms));
  if (Number.isNaN(d.getTime())) throw new DerError(`invalid time ${s}`);
  return d;
}

/** Lower-case hex of a serial without leading zero bytes ('00' for zero), as CertificateRecord.serial. */
export function normaliseSerialHex(hex: string): string {
  const h = (hex.length % 2 ? '0' + hex : hex).toLowerCase().replace(/^(00)+/, '');
  return h === '' ? '00' : h;
}

/** CertificateSerialNumber INTEGER for a (non-negative) hex serial. */
export function serialInteger(hex: string): Buffer {
  if (!/^[0-9a-fA-F]{1,80}$/.test(hex)) throw new DerError(`bad serial ${hex}`);
  return integer(BigInt('0x' + hex));
}

/** Hex of the INTEGER's content octets as a serial (a negative serial keeps its two's-complement bytes). */
export function serialHexOf(t: Tlv): string {
  if (t.tag !== Tag.INTEGER || t.value.length === 0) throw new DerError('serial is not an INTEGER');
  return normaliseSerialHex(t.value.toString('hex'));
}

function extension(extnId: string, critical: boolean, value: Buffer): Buffer {
  return seq(oid(extnId), ...(critical ? [tlv(TAG_BOOLEAN, Buffer.from([0xff]))] : []), octets(value));
}

export interface ParsedExtension {
  critical: boolean;
  /** extnValue contents (the DER of the extension's own type). */
  value: Buffer;
}

function readExtensions(t: Tlv): Map<string, ParsedExtension> {
  const out = new Map<string, ParsedExtension>();
  for (const e of children(expectTag(t, Tag.SEQUENCE, 'Extensions').value)) {
    const parts = children(expectTag(e, Tag.SEQUENCE, 'Extension').value);
    const id = readOid(parts[0]);
    let i = 1;
    let critical = false;
    if (parts[i]?.tag === TAG_BOOLEAN) {
      critical = parts[i].value.length === 1 && parts[i].value[0] !== 0;
      i++;
    }
    const value = expectTag(parts[i], Tag.OCTET_STRING, 'extnValue').value;
    if (parts.length !== i + 1) throw new DerError('Extension has extra fields');
    if (out.has(id)) throw new DerError(`duplicate extension ${id}`);
    out.set(id, { critical, value });
  }
  return out;
}

// ---------- certificate identity of an issuer ----------

export interface CertificateIdentity {
  /** DER of the subject Name, exactly as in the certificate. */
  subject: Buffer;
  /** DER of the issuer Name, exactly as in the certificate. */
  issuer: Buffer;
  /** SubjectPublicKeyInfo DER. */
  spki: Buffer;
  /** The subjectPublicKey BIT STRING contents without the unused-bits octet (what RFC 6960 issuerKeyHash hashes). */
  publicKey: Buffer;
  /** subjectKeyIdentifier, else RFC 5280 §4.2.1.2 method 1 (SHA-1 of the public key). */
  keyIdentifier: Buffer;
  /** Lower-case hex serial. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
  extensions: Map<string, ParsedExtension>;
}

/** The parts of a certificate (RFC 5280 §4.1) a CRL or OCSP response refers to. */
export function certificateIdentity(certDer: Buffer): CertificateIdentity {
  const cert = children(readWhole(certDer, Tag.SEQUENCE).value);
  const tbs = children(expectTag(cert[0], Tag.SEQUENCE, 'tbsCertificate').value);
  let i = 0;
  if (tbs[i]?.tag === 0xa0) i++; // [0] EXPLICIT version
  const serial = serialHexOf(expectTag(tbs[i++], Tag.INTEGER, 'serialNumber'));
  expectTag(tbs[i++], Tag.SEQUENCE, 'signature');
  const issuer = expectTag(tbs[i++], Tag.SEQUENCE, 'issuer').raw;
  const validity = children(expectTag(tbs[i++], Tag.SEQUENCE, 'validity').value);
  const subject = expectTag(tbs[i++], Tag.SEQUENCE, 'subject').raw;
  const spkiTlv = expectTag(tbs[i++], Tag.SEQUENCE, 'subjectPublicKeyInfo');
  const publicKey = readBitStringBytes(children(spkiTlv.value)[1]);
  let extensions = new Map<string, ParsedExtension>();
  for (; i < tbs.length; i++) {
    if (tbs[i].tag === 0xa3) extensions = readExtensions(readWhole(tbs[i].value, Tag.SEQUENCE));
  }
  const ski = extensions.get(OID_SUBJECT_KEY_IDENTIFIER);
  const keyIdentifier = ski ? readWhole(ski.value, Tag.OCTET_STRING).value : createHash('sha1').update(publicKey).digest();
  return {
    subject: Buffer.from(subject),
    issuer: Buffer.from(issuer),
    spki: Buffer.from(spkiTlv.raw),
    publicKey: Buffer.from(publicKey),
    keyIdentifier: Buffer.from(keyIdentifier),
    serial,
    notBefore: readTime(validity[0]),
    notAfter: readTime(validity[1]),
    extensions,
  };
}

// ---------- building ----------

export interface CrlEntry {
  /** Lower-case hex serial. */
  serial: string;
  revocationDate: Date;
  /** RFC 5280 §5.3.1 CRLReason code; 0 (unspecified) or absent → no reasonCode extension. */
  reasonCode?: number;
}

export interface CrlRequest {
  /** DER of the CA certificate: its subject becomes the CRL issuer, its key id the authorityKeyIdentifier. */
  issuerCertificate: Buffer;
  /** The CA's key; must be the key of `issuerCertificate`. */
  signer: Signer;
  thisUpdate: Date;
  nextUpdate: Date;
  /** CRL number (decimal string or bigint); strictly increasing per CA (§5.2.3). */
  crlNumber: bigint | string;
  entries: CrlEntry[];
}

const REASON_CODES = new Set([0, 1, 2, 3, 4, 5, 6, 8, 9, 10]);

/** The DER of a signed CertificateList. */
export async function buildCrl(req: CrlRequest): Promise<Buffer> {
  const issuer = certificateIdentity(req.issuerCertificate);
  if (!issuer.spki.equals(req.signer.publicKeyInfo)) throw new DerError("the signer's key is not the issuer certificate's key");
  const number = BigInt(req.crlNumber);
  // §5.2.3: a non-negative integer of at most 20 octets.
  if (number < 0n || number >= 1n << 159n) throw new DerError('CRL number out of range');
  if (req.nextUpdate.getTime() <= req.thisUpdate.getTime()) throw new DerError('nextUpdate must be after thisUpdate');
  const alg = signatureAlgorithm(req.signer.algorithm);

  const entries = [...req.entries]
    .sort((a, b) => (BigInt('0x' + a.serial) < BigInt('0x' + b.serial) ? -1 : 1))
    .map((e) => {
      const code = e.reasonCode ?? 0;
      if (!REASON_CODES.has(code)) throw new DerError(`bad reason code ${code}`);
      const exts = code === 0 ? [] : [seq(extension(OID_REASON_CODE, false, tlv(TAG_ENUMERATED, Buffer.from([code]))))];
      return seq(serialInteger(e.serial), x509Time(e.revocationDate), ...exts);
    });
  const crlExtensions = seq(
    // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT KeyIdentifier OPTIONAL, … } (§4.2.1.1, §5.2.1)
    extension(OID_AUTHORITY_KEY_IDENTIFIER, false, seq(tlv(0x80, issuer.keyIdentifier))),
    extension(OID_CRL_NUMBER, false, integer(number)),
  );
  const tbs = seq(
    integer(1), // v2
    alg.der,
    issuer.subject,
    x509Time(req.thisUpdate),
    x509Time(req.nextUpdate),
    ...(entries.length > 0 ? [seq(...entries)] : []),
    tlv(0xa0, crlExtensions),
  );
  const signature = await req.signer.sign(tbs, alg.options);
  return seq(tbs, alg.der, bitString(signature));
}

// ---------- reading ----------

export interface ParsedCrlEntry {
  serial: string;
  revocationDate: Date;
  /** Absent when the entry has no reasonCode extension. */
  reasonCode?: number;
}

export interface ParsedCrl {
  version: number;
  /** DER of the TBSCertList (what the signature covers). */
  tbs: Buffer;
  signatureAlgorithm: string;
  signature: Buffer;
  issuer: Buffer;
  thisUpdate: Date;
  nextUpdate?: Date;
  entries: ParsedCrlEntry[];
  crlNumber?: bigint;
  authorityKeyIdentifier?: Buffer;
  extensions: Map<string, ParsedExtension>;
}

/** Reads a DER CertificateList (strict DER; throws DerError). */
export function parseCrl(der: Buffer): ParsedCrl {
  const top = children(readWhole(der, Tag.SEQUENCE).value);
  if (top.length !== 3) throw new DerError('CertificateList must have 3 elements');
  const tbsTlv = expectTag(top[0], Tag.SEQUENCE, 'tbsCertList');
  const sigAlg = readOid(children(expectTag(top[1], Tag.SEQUENCE, 'signatureAlgorithm').value)[0]);
  const signature = readBitStringBytes(top[2]);
  const f = children(tbsTlv.value);
  let i = 0;
  let version = 1;
  if (f[i]?.tag === Tag.INTEGER) version = Number(f[i++].value[0]) + 1;
  const innerAlg = readOid(children(expectTag(f[i++], Tag.SEQUENCE, 'signature').value)[0]);
  if (innerAlg !== sigAlg) throw new DerError('signature algorithms differ');
  const issuer = expectTag(f[i++], Tag.SEQUENCE, 'issuer').raw;
  const thisUpdate = readTime(f[i++]);
  let nextUpdate: Date | undefined;
  if (f[i] && (f[i].tag === TAG_UTC_TIME || f[i].tag === TAG_GENERALIZED_TIME)) nextUpdate = readTime(f[i++]);
  const entries: ParsedCrlEntry[] = [];
  if (f[i]?.tag === Tag.SEQUENCE) {
    for (const e of children(f[i++].value)) {
      const p = children(expectTag(e, Tag.SEQUENCE, 'revokedCertificate').value);
      const entry: ParsedCrlEntry = { serial: serialHexOf(p[0]), revocationDate: readTime(p[1]) };
      if (p[2]) {
        const reason = readExtensions(p[2]).get(OID_REASON_CODE);
        if (reason) {
          const v = readWhole(reason.value, TAG_ENUMERATED).value;
          entry.reasonCode = v[v.length - 1];
        }
      }
      entries.push(entry);
    }
  }
  let extensions = new Map<string, ParsedExtension>();
  if (f[i]?.tag === 0xa0) extensions = readExtensions(readWhole(f[i++].value, Tag.SEQUENCE));
  if (i !== f.length) throw new DerError('unexpected fields in TBSCertList');
  const numberExt = extensions.get(OID_CRL_NUMBER);
  const akiExt = extensions.get(OID_AUTHORITY_KEY_IDENTIFIER);
  let authorityKeyIdentifier: Buffer | undefined;
  if (akiExt) {
    const kid = children(readWhole(akiExt.value, Tag.SEQUENCE).value).find((c) => c.tag === 0x80);
    authorityKeyIdentifier = kid ? Buffer.from(kid.value) : undefined;
  }
  return {
    version,
    tbs: Buffer.from(tbsTlv.raw),
    signatureAlgorithm: sigAlg,
    signature: Buffer.from(signature),
    issuer: Buffer.from(issuer),
    thisUpdate,
    nextUpdate,
    entries,
    crlNumber: numberExt ? BigInt('0x' + (readWhole(numberExt.value, Tag.INTEGER).value.toString('hex') || '0')) : undefined,
    authorityKeyIdentifier,
    extensions,
  };
}
