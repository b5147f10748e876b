// CMS SignedData (RFC 5652 §5) and its GB/T 35275 / GM/T 0010-2012 twin (STANDARDS.md §2):
// the same shapes, with the content types under 1.2.156.10197.6.1.4.2 instead of
// 1.2.840.113549.1.7. Read and written with the strict DER toolkit of crypto/der.ts (as tsp.ts).
// No keys and no I/O: signing and verifying live in signing/cms-sign.ts and cms-verify.ts.
//
//   ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY }
//   SignedData ::= SEQUENCE { version INTEGER, digestAlgorithms SET OF AlgorithmIdentifier,
//        encapContentInfo EncapsulatedContentInfo, certificates [0] IMPLICIT CertificateSet OPTIONAL,
//        crls [1] IMPLICIT RevocationInfoChoices OPTIONAL, signerInfos SET OF SignerInfo }
//   EncapsulatedContentInfo ::= SEQUENCE { eContentType OID, eContent [0] EXPLICIT OCTET STRING OPTIONAL }
//   SignerInfo ::= SEQUENCE { version INTEGER, sid SignerIdentifier, digestAlgorithm AlgorithmIdentifier,
//        signedAttrs [0] IMPLICIT SET OF Attribute OPTIONAL, signatureAlgorithm AlgorithmIdentifier,
//        signature OCTET STRING, unsignedAttrs [1] IMPLICIT SET OF Attribute OPTIONAL }
//   Attribute ::= SEQUENCE { attrType OID, attrValues SET OF ANY }
import { DerError, Tag, children, expectTag, oid, readOid, readWhole, seq, tlv, type Tlv } from '../crypto/der.js';
import { OID } from '../crypto/oids.js';

export type CmsForm = 'gbt35275' | 'rfc5652';

/** id-aa-signatureTimeStampToken (RFC 3161 Appendix A; ETSI EN 319 122-1 §5.3): the CAdES-T unsigned attribute. */
export const OID_SIGNATURE_TIME_STAMP_TOKEN = '1.2.840.113549.1.9.16.2.14';

export const TAG_SET = 0x31;
const TAG_CTX0_CONS = 0xa0;
const TAG_CTX1_CONS = 0xa1;

/** Outer (signedData) and inner (data) content types of each form. */
export const CMS_FORM_OIDS: Record<CmsForm, { signedData: string; data: string }> = {
  gbt35275: { signedData: OID.gmtSignedData, data: OID.gmtData },
  rfc5652: { signedData: OID.pkcs7SignedData, data: OID.pkcs7Data },
};

export interface AlgorithmId {
  oid: string;
  /** Parameters are absent or NULL (the only forms the signature suite uses). */
  paramsAbsentOrNull: boolean;
}

export interface ParsedAttribute {
  type: string;
  /** The values of the SET, each a whole TLV. */
  values: Tlv[];
}

export interface ParsedSignerInfo {
  version: number;
  /** IssuerAndSerialNumber; undefined when the signer is named by subjectKeyIdentifier. */
  issuerDer?: Buffer;
  /** Serial INTEGER contents as encoded. */
  serialValue?: Buffer;
  subjectKeyIdentifier?: Buffer;
  digestAlgorithm: AlgorithmId;
  /** DER of the signed attributes re-tagged as SET OF (the bytes the signature covers), if present. */
  signedAttrsDer?: Buffer;
  signedAttrs: ParsedAttribute[];
  signatureAlgorithm: AlgorithmId;
  signature: Buffer;
  /** [1] unsignedAttrs, e.g. id-aa-signatureTimeStampToken (CAdES-T). */
  unsignedAttrs: ParsedAttribute[];
}

export interface ParsedSignedData {
  form: CmsForm;
  version: number;
  eContentType: string;
  /** The encapsulated content; undefined when detached. */
  content?: Buffer;
  /** Certificates ([0] certificates, X.509 entries only), DER. */
  certificates: Buffer[];
  signerInfos: ParsedSignerInfo[];
}

/** The values of the signed attribute `type` when the SignerInfo has exactly one, with one value; else undefined. */
export function signedAttribute(si: ParsedSignerInfo, type: string): ParsedAttribute['values'] | undefined {
  const found = si.signedAttrs.filter((a) => a.type === type);
  if (found.length !== 1 || found[0].values.length !== 1) return undefined;
  return found[0].values;
}

function readAlgorithm(t: Tlv | undefined, what: string): AlgorithmId {
  const parts = children(expectTag(t, Tag.SEQUENCE, what).value);
  const algOid = readOid(parts[0]);
  if (parts.length > 2) throw new DerError(`${what}: too many elements`);
  const p = parts[1];
  return { oid: algOid, paramsAbsentOrNull: !p || (p.tag === Tag.NULL && p.value.length === 0) };
}

function readSmall(t: Tlv | undefined, what: string): number {
  const v = expectTag(t, Tag.INTEGER, what).value;
  if (v.length !== 1 || v[0] > 0x7f) throw new DerError(`${what}: unexpected value`);
  return v[0];
}

function readAttributes(value: Buffer): ParsedAttribute[] {
  return children(value).map((a) => {
    const parts = children(expectTag(a, Tag.SEQUENCE, 'Attribute').value);
    if (parts.length !== 2) throw new DerError('Attribute has 2 elements');
    return { type: readOid(parts[0]), values: children(expectTag(parts[1], TAG_SET, 'attrValues').value) };
  });
}

function readSignerInfo(t: Tlv): ParsedSignerInfo {
  const items = children(expectTag(t, Tag.SEQUENCE, 'SignerInfo').value);
  let i = 0;
  const version = readSmall(items[i++], 'SignerInfo version');
  const sid = items[i++];
  let issuerDer: Buffer | undefined;
  let serialValue: Buffer | undefined;
  let subjectKeyIdentifier: Buffer | undefined;
  if (sid?.tag === Tag.SEQUENCE) {
    const ias = children(sid.value);
    if (ias.length !== 2) throw new DerError('IssuerAndSerialNumber has 2 elements');
    issuerDer = Buffer.from(expectTag(ias[0], Tag.SEQUENCE, 'issuer').raw);
    serialValue = Buffer.from(expectTag(ias[1], Tag.INTEGER, 'serialNumber').value);
    if (serialValue.length === 0) throw new DerError('empty serial');
  } else if (sid?.tag === 0x80) {
    subjectKeyIdentifier = Buffer.from(sid.value);
  } else {
    throw new DerError('SignerInfo sid: wrong or missing element');
  }
  const digestAlgorithm = readAlgorithm(items[i++], 'digestAlgorithm');
  let signedAttrsDer: Buffer | undefined;
  let signedAttrs: ParsedAttribute[] = [];
  if (items[i]?.tag === TAG_CTX0_CONS) {
    const a = items[i++];
    // RFC 5652 §5.4: the signature covers the DER of the SET OF with its universal tag.
    signedAttrsDer = Buffer.concat([Buffer.from([TAG_SET]), a.raw.subarray(1)]);
    signedAttrs = readAttributes(a.value);
  }
  const signatureAlgorithm = readAlgorithm(items[i++], 'signatureAlgorithm');
  const signature = Buffer.from(expectTag(items[i++], Tag.OCTET_STRING, 'signature').value);
  let unsignedAttrs: ParsedAttribute[] = [];
  if (items[i]?.tag === TAG_CTX1_CONS) {
    unsignedAttrs = readAttributes(items[i].value);
    i++;
  }
  if (i !== items.length) throw new DerError('SignerInfo: unexpected elements');
  return {
    version,
    ...(issuerDer ? { issuerDer } : {}),
    ...(serialValue ? { serialValue } : {}),
    ...(subjectKeyIdentifier ? { subjectKeyIdentifier } : {}),
    digestAlgorithm,
    ...(signedAttrsDer ? { signedAttrsDer } : {}),
    signedAttrs,
    signatureAlgorithm,
    signature,
    unsignedAttrs,
  };
}

/** Parses a ContentInfo holding SignedData in either form; throws DerError on anything else. */
export function parseSignedData(der: Buffer): ParsedSignedData {
  const ci = children(readWhole(der, Tag.SEQUENCE).value);
  if (ci.length !== 2) throw new DerError('ContentInfo has 2 elements');
  const outer = readOid(ci[0]);
  const form: CmsForm | undefined = outer === OID.pkcs7SignedData ? 'rfc5652' : outer === OID.gmtSignedData ? 'gbt35275' : undefined;
  if (!form) throw new DerError(`content type ${outer} is not signedData`);
  const sdTlv = readWhole(expectTag(ci[1], TAG_CTX0_CONS, 'content').value, Tag.SEQUENCE);
  const items = children(sdTlv.value);
  let i = 0;
  const version = readSmall(items[i++], 'SignedData version');
  const digestAlgs = children(expectTag(items[i++], TAG_SET, 'digestAlgorithms').value);
  digestAlgs.forEach((a) => readAlgorithm(a, 'digestAlgorithm'));
  const eci = children(expectTag(items[i++], Tag.SEQUENCE, 'encapContentInfo').value);
  const eContentType = readOid(eci[0]);
  let content: Buffer | undefined;
  if (eci.length > 2) throw new DerError('encapContentInfo has at most 2 elements');
  if (eci[1]) {
    const inner = readWhole(expectTag(eci[1], TAG_CTX0_CONS, 'eContent').value, Tag.OCTET_STRING);
    content = Buffer.from(inner.value);
  }
  const certificates: Buffer[] = [];
  if (items[i]?.tag === TAG_CTX0_CONS) {
    for (const c of children(items[i].value)) if (c.tag === Tag.SEQUENCE) certificates.push(Buffer.from(c.raw));
    i++;
  }
  if (items[i]?.tag === TAG_CTX1_CONS) i++; // crls: not used here
  const signerInfos = children(expectTag(items[i++], TAG_SET, 'signerInfos').value).map(readSignerInfo);
  if (i !== items.length) throw new DerError('SignedData: unexpected elements');
  return { form, version, eContentType, ...(content ? { content } : {}), certificates, signerInfos };
}

// ---------- writing ----------

/** DER SET OF: elements sorted by their encodings (X.690 §11.6). */
export function setOf(items: Buffer[]): Buffer {
  return tlv(TAG_SET, ...[...items].sort(Buffer.compare));
}

export function attribute(type: string, value: Buffer): Buffer {
  return seq(oid(type), tlv(TAG_SET, value));
}

export interface SignedDataParts {
  form: CmsForm;
  digestAlgorithm: Buffer;
  /** Undefined for a detached signature. */
  content?: Buffer;
  certificates: Buffer[];
  /** The complete SignerInfo DER. */
  signerInfo: Buffer;
}

/** ContentInfo { signedData, SignedData version 1 } around one SignerInfo (RFC 5652 §5.1, GM/T 0010 §8). */
export function encodeSignedData(p: SignedDataParts): Buffer {
  const oids = CMS_FORM_OIDS[p.form];
  const signedData = seq(
    tlv(Tag.INTEGER, Buffer.from([1])),
    tlv(TAG_SET, p.digestAlgorithm),
    seq(oid(oids.data), ...(p.content ? [tlv(TAG_CTX0_CONS, tlv(Tag.OCTET_STRING, p.content))] : [])),
    ...(p.certificates.length ? [tlv(TAG_CTX0_CONS, ...p.certificates)] : []),
    tlv(TAG_SET, p.signerInfo),
  );
  return seq(oid(oids.signedData), tlv(TAG_CTX0_CONS, signedData));
}

