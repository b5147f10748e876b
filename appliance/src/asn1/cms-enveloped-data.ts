// Digital envelopes: encode and decode only (no keys, no I/O; signing/envelope.ts does the crypto).
// Read with the strict DER toolkit of crypto/der.ts: an envelope in indefinite-length BER is
// refused as malformed (OpenSSL's `cms -encrypt -outform DER` and our own writers emit DER).
//
// Three outer forms:
//  - GM/T 0010-2012 §9 envelopedData (GB/T 35275-2017 §7.4; clause numbers [U]), content type
//    1.2.156.10197.6.1.4.2.3 — the PKCS#7 v1.5 shape with version 1 (as GmSSL and gmsm write):
//      EnvelopedData ::= SEQUENCE { version INTEGER (1), recipientInfos SET OF RecipientInfo,
//                                   encryptedContentInfo EncryptedContentInfo }
//      RecipientInfo ::= SEQUENCE { version INTEGER (1), issuerAndSerialNumber,
//                                   keyEncryptionAlgorithm (SM2-3 1.2.156.10197.1.301.3),
//                                   encryptedKey OCTET STRING (DER SM2Cipher, GM/T 0009 §7.2) }
//  - RFC 5652 §6.1 EnvelopedData (1.2.840.113549.1.7.3), read only (what others send).
//  - RFC 5083 §2.1 AuthEnvelopedData (1.2.840.113549.1.9.16.1.23), written with AES-256-GCM.
//
//   EncryptedContentInfo ::= SEQUENCE { contentType OID, contentEncryptionAlgorithm AlgorithmIdentifier,
//        encryptedContent [0] IMPLICIT OCTET STRING OPTIONAL }            (RFC 5652 §6.1)
//   KeyTransRecipientInfo ::= SEQUENCE { version (0 | 2), rid RecipientIdentifier,
//        keyEncryptionAlgorithm, encryptedKey OCTET STRING }              (RFC 5652 §6.2.1)
//   KeyAgreeRecipientInfo ::= [1] IMPLICIT SEQUENCE { version (3), originator [0] EXPLICIT
//        OriginatorIdentifierOrKey, ukm [1] EXPLICIT OCTET STRING OPTIONAL,
//        keyEncryptionAlgorithm, recipientEncryptedKeys SEQUENCE OF RecipientEncryptedKey }
//                                                                         (RFC 5652 §6.2.2)
import { DerError, Tag, bitString, children, derNull, expectTag, integer, octets, oid, readBitStringBytes, readOid, readWhole, seq, tlv, type Tlv } from '../crypto/der.js';
import { OID } from '../crypto/oids.js';

const TAG_SET = 0x31;
const CTX0_PRIM = 0x80;
const CTX0_CONS = 0xa0;
const CTX1_CONS = 0xa1;
const CTX2_CONS = 0xa2;

/** OIDs of the envelope formats that the suite's registry (crypto/oids.ts) does not name. */
export const ENVELOPE_OID = {
  authEnvelopedData: '1.2.840.113549.1.9.16.1.23', // RFC 5083 §1.1
  rsaesOaep: '1.2.840.113549.1.1.7', // RFC 8017 Appendix C
  sha1: '1.3.14.3.2.26',
  aes128Cbc: '2.16.840.1.101.3.4.1.2',
  aes192Cbc: '2.16.840.1.101.3.4.1.22',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
  aes128Gcm: '2.16.840.1.101.3.4.1.6', // RFC 5084 §3.2
  aes192Gcm: '2.16.840.1.101.3.4.1.26',
  aes256Gcm: '2.16.840.1.101.3.4.1.46',
  aes128Wrap: '2.16.840.1.101.3.4.1.5', // RFC 3565 §2.3.2 (RFC 3394)
  aes192Wrap: '2.16.840.1.101.3.4.1.25',
  aes256Wrap: '2.16.840.1.101.3.4.1.45',
  desEde3Cbc: '1.2.840.113549.3.7',
  // RFC 5753 §7.1.4 key agreement schemes (SEC 1 / X9.63 KDF with the named hash)
  ecdhSha1Kdf: '1.3.133.16.840.63.0.2',
  ecdhSha224Kdf: '1.3.132.1.11.0',
  ecdhSha256Kdf: '1.3.132.1.11.1',
  ecdhSha384Kdf: '1.3.132.1.11.2',
  ecdhSha512Kdf: '1.3.132.1.11.3',
} as const;

export type EnvelopeForm = 'gmt0010' | 'rfc5652' | 'rfc5083';

export interface AlgorithmWithParams {
  oid: string;
  /** The parameters TLV as encoded, absent when there are none. */
  params?: Tlv;
}

/** RecipientIdentifier (RFC 5652 §6.2.1): issuerAndSerialNumber or [0] subjectKeyIdentifier. */
export interface RecipientId {
  issuerDer?: Buffer;
  /** INTEGER contents as encoded. */
  serialValue?: Buffer;
  subjectKeyIdentifier?: Buffer;
}

export interface KeyTransRecipient {
  kind: 'ktri';
  version: number;
  rid: RecipientId;
  keyEncryptionAlgorithm: AlgorithmWithParams;
  encryptedKey: Buffer;
}

export interface KeyAgreeRecipient {
  kind: 'kari';
  version: number;
  /** originatorKey [1]: the ephemeral public key; undefined when the originator is named by certificate (static-static, unsupported). */
  originatorKey?: { algorithm: AlgorithmWithParams; publicKey: Buffer };
  ukm?: Buffer;
  keyEncryptionAlgorithm: AlgorithmWithParams;
  /** The key-wrap algorithm from the keyEncryptionAlgorithm parameters (RFC 5753 §3.1.1), as encoded. */
  keyWrapAlgorithm?: { oid: string; der: Buffer };
  recipientEncryptedKeys: { rid: RecipientId; encryptedKey: Buffer }[];
}

/** kekri, pwri, ori: kept only so that their presence is visible. */
export interface OtherRecipient {
  kind: 'other';
  tag: number;
}

export type RecipientInfo = KeyTransRecipient | KeyAgreeRecipient | OtherRecipient;

export interface ParsedEnvelope {
  form: EnvelopeForm;
  version: number;
  recipients: RecipientInfo[];
  contentType: string;
  contentEncryption: AlgorithmWithParams;
  ciphertext: Buffer;
  /** RFC 5083: the MAC (GCM tag) and the DER of authAttrs re-tagged as SET OF (the AAD), if any. */
  mac?: Buffer;
  authAttrsDer?: Buffer;
}

// ---------- reading ----------

function readAlgorithm(t: Tlv | undefined, what: string): AlgorithmWithParams {
  const parts = children(expectTag(t, Tag.SEQUENCE, what).value);
  if (parts.length < 1 || parts.length > 2) throw new DerError(`${what}: 1 or 2 elements`);
  return { oid: readOid(parts[0]), ...(parts[1] ? { params: parts[1] } : {}) };
}

function readVersion(t: Tlv | undefined, what: string): number {
  const v = expectTag(t, Tag.INTEGER, what).value;
  if (v.length !== 1 || v[0] > 0x7f) throw new DerError(`${what}: unexpected value`);
  return v[0];
}

function readIssuerAndSerial(t: Tlv): RecipientId {
  const ias = children(expectTag(t, Tag.SEQUENCE, 'issuerAndSerialNumber').value);
  if (ias.length !== 2) throw new DerError('IssuerAndSerialNumber has 2 elements');
  const serialValue = Buffer.from(expectTag(ias[1], Tag.INTEGER, 'serialNumber').value);
  if (serialValue.length === 0) throw new DerError('empty serial');
  return { issuerDer: Buffer.from(expectTag(ias[0], Tag.SEQUENCE, 'issuer').raw), serialValue };
}

function readRid(t: Tlv | undefined): RecipientId {
  if (t?.tag === Tag.SEQUENCE) return readIssuerAndSerial(t);
  if (t?.tag === CTX0_PRIM) return { subjectKeyIdentifier: Buffer.from(t.value) };
  throw new DerError('RecipientIdentifier: wrong or missing element');
}

/** RFC 5652 §6.2.1 KeyTransRecipientInfo; also the GM/T 0010 RecipientInfo (same shape). */
function readKtri(t: Tlv): KeyTransRecipient {
  const items = children(t.value);
  if (items.length !== 4) throw new DerError('KeyTransRecipientInfo has 4 elements');
  return {
    kind: 'ktri',
    version: readVersion(items[0], 'RecipientInfo version'),
    rid: readRid(items[1]),
    keyEncryptionAlgorithm: readAlgorithm(items[2], 'keyEncryptionAlgorithm'),
    encryptedKey: Buffer.from(expectTag(items[3], Tag.OCTET_STRING, 'encryptedKey').value),
  };
}

/** RFC 5652 §6.2.2 KeyAgreeRecipientInfo (RFC 5753 §3.1.1 for ECDH). */
function readKari(t: Tlv): KeyAgreeRecipient {
  const items = children(t.value);
  let i = 0;
  const version = readVersion(items[i++], 'KeyAgreeRecipientInfo version');
  const originator = children(expectTag(items[i++], CTX0_CONS, 'originator').value);
  if (originator.length !== 1) throw new DerError('originator has one choice');
  let originatorKey: KeyAgreeRecipient['originatorKey'];
  if (originator[0].tag === CTX1_CONS) {
    // OriginatorPublicKey ::= SEQUENCE { algorithm, publicKey BIT STRING }, IMPLICIT [1]
    const ok = children(originator[0].value);
    if (ok.length !== 2) throw new DerError('OriginatorPublicKey has 2 elements');
    originatorKey = { algorithm: readAlgorithm(ok[0], 'originatorKey algorithm'), publicKey: Buffer.from(readBitStringBytes(ok[1])) };
  }
  let ukm: Buffer | undefined;
  if (items[i]?.tag === CTX1_CONS) ukm = Buffer.from(readWhole(items[i++].value, Tag.OCTET_STRING).value);
  const keyEncryptionAlgorithm = readAlgorithm(items[i++], 'keyEncryptionAlgorithm');
  let keyWrapAlgorithm: KeyAgreeRecipient['keyWrapAlgorithm'];
  if (keyEncryptionAlgorithm.params?.tag === Tag.SEQUENCE) {
    const w = readAlgorithm(keyEncryptionAlgorithm.params, 'KeyWrapAlgorithm');
    keyWrapAlgorithm = { oid: w.oid, der: Buffer.from(keyEncryptionAlgorithm.params.raw) };
  }
  const reks = children(expectTag(items[i++], Tag.SEQUENCE, 'recipientEncryptedKeys').value).map((r) => {
    const parts = children(expectTag(r, Tag.SEQUENCE, 'RecipientEncryptedKey').value);
    if (parts.length !== 2) throw new DerError('RecipientEncryptedKey has 2 elements');
    // KeyAgreeRecipientIdentifier: issuerAndSerialNumber or rKeyId [0] IMPLICIT RecipientKeyIdentifier
    let rid: RecipientId;
    if (parts[0].tag === CTX0_CONS) {
      const rk = children(parts[0].value);
      rid = { subjectKeyIdentifier: Buffer.from(expectTag(rk[0], Tag.OCTET_STRING, 'subjectKeyIdentifier').value) };
    } else rid = readIssuerAndSerial(parts[0]);
    return { rid, encryptedKey: Buffer.from(expectTag(parts[1], Tag.OCTET_STRING, 'encryptedKey').value) };
  });
  if (i !== items.length) throw new DerError('KeyAgreeRecipientInfo: unexpected elements');
  return { kind: 'kari', version, ...(originatorKey ? { originatorKey } : {}), ...(ukm ? { ukm } : {}), keyEncryptionAlgorithm, ...(keyWrapAlgorithm ? { keyWrapAlgorithm } : {}), recipientEncryptedKeys: reks };
}

function readRecipientInfo(t: Tlv): RecipientInfo {
  if (t.tag === Tag.SEQUENCE) return readKtri(t);
  if (t.tag === CTX1_CONS) return readKari(t);
  if (t.tag === CTX2_CONS || t.tag === 0xa3 || t.tag === 0xa4) return { kind: 'other', tag: t.tag };
  throw new DerError('RecipientInfo: unknown choice');
}

/** RFC 5652 §6.1 EncryptedContentInfo; encryptedContent primitive [0] or (gmsm) constructed [0] of OCTET STRINGs. */
function readEncryptedContentInfo(t: Tlv | undefined): { contentType: string; contentEncryption: AlgorithmWithParams; ciphertext: Buffer } {
  const items = children(expectTag(t, Tag.SEQUENCE, 'encryptedContentInfo').value);
  const contentType = readOid(items[0]);
  const contentEncryption = readAlgorithm(items[1], 'contentEncryptionAlgorithm');
  const ec = items[2];
  let ciphertext: Buffer;
  if (ec?.tag === CTX0_PRIM) ciphertext = Buffer.from(ec.value);
  else if (ec?.tag === CTX0_CONS) ciphertext = Buffer.concat(children(ec.value).map((c) => expectTag(c, Tag.OCTET_STRING, 'encryptedContent segment').value));
  else throw new DerError('encryptedContent is absent (detached content is not supported)');
  // GM/T 0010 adds sharedInfo1 [1] / sharedInfo2 [2] IMPLICIT OCTET STRING OPTIONAL; nothing else may follow.
  for (const extra of items.slice(3)) if (extra.tag !== 0x81 && extra.tag !== 0x82) throw new DerError('EncryptedContentInfo: unexpected elements');
  return { contentType, contentEncryption, ciphertext };
}

/** Parses a ContentInfo holding GM/T 0010 envelopedData, RFC 5652 EnvelopedData or RFC 5083 AuthEnvelopedData. */
export function parseEnvelope(der: Buffer): ParsedEnvelope {
  const ci = children(readWhole(der, Tag.SEQUENCE).value);
  if (ci.length !== 2) throw new DerError('ContentInfo has 2 elements');
  const outer = readOid(ci[0]);
  const form: EnvelopeForm | undefined =
    outer === OID.gmtEnvelopedData ? 'gmt0010' : outer === OID.pkcs7EnvelopedData ? 'rfc5652' : outer === ENVELOPE_OID.authEnvelopedData ? 'rfc5083' : undefined;
  if (!form) throw new DerError(`content type ${outer} is not an envelope`);
  const body = readWhole(expectTag(ci[1], CTX0_CONS, 'content').value, Tag.SEQUENCE);
  const items = children(body.value);
  let i = 0;
  const version = readVersion(items[i++], 'version');
  if (items[i]?.tag === CTX0_CONS) i++; // originatorInfo: certificates for the reader, not needed here
  const recipients = children(expectTag(items[i++], TAG_SET, 'recipientInfos').value).map(readRecipientInfo);
  if (recipients.length === 0) throw new DerError('no recipientInfos');
  const eci = readEncryptedContentInfo(items[i++]);
  const out: ParsedEnvelope = { form, version, recipients, ...eci };
  if (form === 'rfc5083') {
    // RFC 5083 §2.1: authAttrs [1] IMPLICIT, mac OCTET STRING, unauthAttrs [2] IMPLICIT.
    if (items[i]?.tag === CTX1_CONS) {
      // §2.2: the AAD is the DER of authAttrs with the universal SET OF tag.
      out.authAttrsDer = Buffer.concat([Buffer.from([TAG_SET]), items[i].raw.subarray(1)]);
      i++;
    }
    out.mac = Buffer.from(expectTag(items[i++], Tag.OCTET_STRING, 'mac').value);
    if (items[i]?.tag === CTX2_CONS) i++;
  } else if (items[i]?.tag === CTX1_CONS) i++; // unprotectedAttrs
  if (i !== items.length) throw new DerError('envelope: unexpected elements');
  return out;
}

/** RSAES-OAEP-params (RFC 8017 Appendix A.2.1 / RFC 4055 §4.1): defaults SHA-1, MGF1-SHA-1, empty label. */
export interface OaepParams {
  hash: string;
  mgfHash: string;
  /** The label is empty (pSourceAlgorithm absent or pSpecified with an empty OCTET STRING). */
  emptyLabel: boolean;
}

export function readOaepParams(params: Tlv | undefined): OaepParams {
  const out: OaepParams = { hash: ENVELOPE_OID.sha1, mgfHash: ENVELOPE_OID.sha1, emptyLabel: true };
  if (!params || params.tag === Tag.NULL) return out;
  for (const f of children(expectTag(params, Tag.SEQUENCE, 'RSAES-OAEP-params').value)) {
    const inner = readWhole(f.value, Tag.SEQUENCE);
    const alg = readAlgorithm(inner, 'OAEP parameter');
    if (f.tag === CTX0_CONS) out.hash = alg.oid;
    else if (f.tag === CTX1_CONS) {
      if (alg.oid !== OID.mgf1) throw new DerError(`mask generation ${alg.oid} is not MGF1`);
      out.mgfHash = readAlgorithm(alg.params, 'MGF1 hash').oid;
    } else if (f.tag === CTX2_CONS) {
      // pSpecified (1.2.840.113549.1.1.9) with the label as OCTET STRING
      const label = alg.params ? readWhole(alg.params.raw, Tag.OCTET_STRING).value : Buffer.alloc(0);
      out.emptyLabel = alg.oid === '1.2.840.113549.1.1.9' && label.length === 0;
    } else throw new DerError('RSAES-OAEP-params: unknown field');
  }
  return out;
}

/** GCMParameters (RFC 5084 §3.2): aes-nonce OCTET STRING, aes-ICVlen INTEGER DEFAULT 12. */
export function readGcmParams(params: Tlv | undefined): { nonce: Buffer; tagLength: number } {
  const parts = children(expectTag(params, Tag.SEQUENCE, 'GCMParameters').value);
  const nonce = Buffer.from(expectTag(parts[0], Tag.OCTET_STRING, 'aes-nonce').value);
  const tagLength = parts[1] ? readVersion(parts[1], 'aes-ICVlen') : 12;
  if (parts.length > 2) throw new DerError('GCMParameters has at most 2 elements');
  return { nonce, tagLength };
}

/** CBC parameters: the IV as OCTET STRING (RFC 3565 §4.1 AES-IV, GM/T 0010 for SM4-CBC, RFC 3370 §5.1 3DES). */
export function readIvParam(params: Tlv | undefined): Buffer {
  return Buffer.from(expectTag(params, Tag.OCTET_STRING, 'IV').value);
}

// ---------- writing ----------

export function issuerAndSerialNumber(issuerDer: Buffer, serialValue: Buffer): Buffer {
  return seq(issuerDer, tlv(Tag.INTEGER, serialValue));
}

function encryptedContentInfo(contentType: string, algorithm: Buffer, ciphertext: Buffer): Buffer {
  return seq(oid(contentType), algorithm, tlv(CTX0_PRIM, ciphertext));
}

/** GM/T 0010 envelopedData with one SM2 recipient and SM4-CBC content (the IV as OCTET STRING parameter). */
export function encodeGmtEnvelopedData(p: { issuerDer: Buffer; serialValue: Buffer; encryptedKey: Buffer; iv: Buffer; ciphertext: Buffer }): Buffer {
  const recipient = seq(integer(1), issuerAndSerialNumber(p.issuerDer, p.serialValue), seq(oid(OID.sm2Encrypt), derNull()), octets(p.encryptedKey));
  const body = seq(integer(1), tlv(TAG_SET, recipient), encryptedContentInfo(OID.gmtData, seq(oid(OID.sm4Cbc), octets(p.iv)), p.ciphertext));
  return seq(oid(OID.gmtEnvelopedData), tlv(CTX0_CONS, body));
}

/** AlgorithmIdentifier of SHA-256 as RFC 4055 §2.1 writes it (NULL parameters). */
const SHA256_ALG = seq(oid(OID.sha256), derNull());

/** RFC 4055 §4.1 RSAES-OAEP with SHA-256, MGF1-SHA-256 and the default (empty) label. */
export function oaepSha256Algorithm(): Buffer {
  return seq(oid(ENVELOPE_OID.rsaesOaep), seq(tlv(CTX0_CONS, SHA256_ALG), tlv(CTX1_CONS, seq(oid(OID.mgf1), SHA256_ALG))));
}

/** RFC 5652 §6.2.1 KeyTransRecipientInfo, version 0 (issuerAndSerialNumber). */
export function encodeKeyTransRecipientInfo(p: { issuerDer: Buffer; serialValue: Buffer; keyEncryptionAlgorithm: Buffer; encryptedKey: Buffer }): Buffer {
  return seq(integer(0), issuerAndSerialNumber(p.issuerDer, p.serialValue), p.keyEncryptionAlgorithm, octets(p.encryptedKey));
}

/** The KeyWrapAlgorithm carried as keyEncryptionAlgorithm parameters (RFC 5753 §7.2: id-aes*-wrap, parameters absent). */
export function keyWrapAlgorithm(wrapOid: string): Buffer {
  return seq(oid(wrapOid));
}

/**
 * RFC 5753 §3.1.1 KeyAgreeRecipientInfo (version 3) with an ephemeral originatorKey; the
 * originator algorithm is id-ecPublicKey with absent parameters (§7.1.1 allows absent or NULL).
 */
export function encodeKeyAgreeRecipientInfo(p: { originatorPoint: Buffer; schemeOid: string; wrapOid: string; issuerDer: Buffer; serialValue: Buffer; encryptedKey: Buffer; ukm?: Buffer }): Buffer {
  const originator = tlv(CTX0_CONS, tlv(CTX1_CONS, seq(oid(OID.idEcPublicKey)), bitString(p.originatorPoint)));
  return tlv(
    CTX1_CONS,
    integer(3),
    originator,
    ...(p.ukm ? [tlv(CTX1_CONS, octets(p.ukm))] : []),
    seq(oid(p.schemeOid), keyWrapAlgorithm(p.wrapOid)),
    seq(seq(issuerAndSerialNumber(p.issuerDer, p.serialValue), octets(p.encryptedKey))),
  );
}

/**
 * ECC-CMS-SharedInfo (RFC 5753 §7.2): keyInfo = the key-wrap AlgorithmIdentifier, entityUInfo
 * [0] = ukm when present, suppPubInfo [2] = the KEK length in bits, 32-bit big-endian.
 */
export function eccCmsSharedInfo(keyWrapAlgDer: Buffer, kekBits: number, ukm?: Buffer): Buffer {
  const bits = Buffer.alloc(4);
  bits.writeUInt32BE(kekBits);
  return seq(keyWrapAlgDer, ...(ukm ? [tlv(CTX0_CONS, octets(ukm))] : []), tlv(CTX2_CONS, octets(bits)));
}

/** RFC 5083 AuthEnvelopedData (version 0) with AES-GCM content (RFC 5084 §3.2 GCMParameters), no authAttrs. */
export function encodeAuthEnvelopedData(p: { recipientInfo: Buffer; gcmOid: string; nonce: Buffer; tagLength: number; ciphertext: Buffer; tag: Buffer }): Buffer {
  const alg = seq(oid(p.gcmOid), seq(octets(p.nonce), integer(p.tagLength)));
  const body = seq(integer(0), tlv(TAG_SET, p.recipientInfo), encryptedContentInfo(OID.pkcs7Data, alg, p.ciphertext), octets(p.tag));
  return seq(oid(ENVELOPE_OID.authEnvelopedData), tlv(CTX0_CONS, body));
}
