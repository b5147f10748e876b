// OCSP messages (RFC 6960 §4, module in Appendix B.2; nonce per RFC 8954), read and written
// with the strict DER toolkit of crypto/der.ts. No I/O and no keys: the BasicOCSPResponse is
// signed by the Signer the caller hands in.
//
//   OCSPRequest ::= SEQUENCE { tbsRequest TBSRequest, optionalSignature [0] EXPLICIT Signature OPTIONAL }
//   TBSRequest  ::= SEQUENCE { version [0] EXPLICIT Version DEFAULT v1, requestorName [1] EXPLICIT GeneralName OPTIONAL,
//                              requestList SEQUENCE OF Request, requestExtensions [2] EXPLICIT Extensions OPTIONAL }
//   Request     ::= SEQUENCE { reqCert CertID, singleRequestExtensions [0] EXPLICIT Extensions OPTIONAL }
//   CertID      ::= SEQUENCE { hashAlgorithm AlgorithmIdentifier, issuerNameHash OCTET STRING,
//                              issuerKeyHash OCTET STRING, serialNumber CertificateSerialNumber }
//   OCSPResponse ::= SEQUENCE { responseStatus OCSPResponseStatus, responseBytes [0] EXPLICIT ResponseBytes OPTIONAL }
//   BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData, signatureAlgorithm AlgorithmIdentifier,
//                              signature BIT STRING, certs [0] EXPLICIT SEQUENCE OF Certificate OPTIONAL }
//   ResponseData ::= SEQUENCE { version [0] EXPLICIT Version DEFAULT v1, responderID ResponderID, producedAt GeneralizedTime,
//                              responses SEQUENCE OF SingleResponse, responseExtensions [1] EXPLICIT Extensions OPTIONAL }
//   ResponderID ::= CHOICE { byName [1] Name, byKey [2] KeyHash }            -- explicit (module default)
//   SingleResponse ::= SEQUENCE { certID CertID, certStatus CertStatus, thisUpdate GeneralizedTime,
//                              nextUpdate [0] EXPLICIT GeneralizedTime OPTIONAL, singleExtensions [1] EXPLICIT Extensions OPTIONAL }
//   CertStatus ::= CHOICE { good [0] IMPLICIT NULL, revoked [1] IMPLICIT RevokedInfo, unknown [2] IMPLICIT UnknownInfo }
//   RevokedInfo ::= SEQUENCE { revocationTime GeneralizedTime, revocationReason [0] EXPLICIT CRLReason OPTIONAL }
import { createHash } from 'node:crypto';
import { DerError, Tag, bitString, children, expectTag, octets, oid, readBitStringBytes, readOid, readTlv, readWhole, seq, tlv, type Tlv } from '../crypto/der.js';
import type { Signer } from '../crypto/interfaces.js';
import { certificateIdentity, generalizedTime, readTime, serialHexOf, serialInteger, signatureAlgorithm } from './crl.js';

export const OID_OCSP_BASIC = '1.3.6.1.5.5.7.48.1.1';
export const OID_OCSP_NONCE = '1.3.6.1.5.5.7.48.1.2';
export const OID_OCSP_NOCHECK = '1.3.6.1.5.5.7.48.1.5';
export const OID_KP_OCSP_SIGNING = '1.3.6.1.5.5.7.3.9';

const TAG_ENUMERATED = 0x0a;
const TAG_BOOLEAN = 0x01;

/** Hash algorithms a CertID may use here (RFC 6960 §4.1.1; SHA-1 is what most clients send; SM3 for GM clients). */
export type CertIdHash = 'sha1' | 'sha256' | 'sha384' | 'sha512' | 'sm3';

export const CERT_ID_HASH_OIDS: Record<CertIdHash, string> = {
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha512: '2.16.840.1.101.3.4.2.3',
  sm3: '1.2.156.10197.1.401',
};
const HASH_BY_OID = new Map(Object.entries(CERT_ID_HASH_OIDS).map(([k, v]) => [v, k as CertIdHash]));
const HASH_LENGTH: Record<CertIdHash, number> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64, sm3: 32 };

export const OcspResponseStatus = {
  successful: 0,
  malformedRequest: 1,
  internalError: 2,
  tryLater: 3,
  sigRequired: 5,
  unauthorized: 6,
} as const;
export type OcspResponseStatusName = keyof typeof OcspResponseStatus;
const STATUS_NAME = new Map<number, OcspResponseStatusName>(Object.entries(OcspResponseStatus).map(([k, v]) => [v, k as OcspResponseStatusName]));

/** A request that cannot be read as an OCSPRequest; the responder answers malformedRequest. */
export class OcspMalformedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OcspMalformedError';
  }
}

// ---------- requests ----------

export interface OcspCertId {
  /** hashAlgorithm OID; `hash` is set when it is one this module knows. */
  hashAlgorithm: string;
  hash?: CertIdHash;
  /** Whether the hashAlgorithm parameters were NULL (OpenSSL, BouncyCastle) or absent (RFC 5754 style). */
  hashParams: 'null' | 'absent';
  issuerNameHash: Buffer;
  issuerKeyHash: Buffer;
  /** Lower-case hex of the serial's content octets without leading zero bytes. */
  serial: string;
  /** The CertID exactly as the client sent it (echoed in the SingleResponse). */
  raw: Buffer;
}

export interface ParsedOcspRequest {
  requests: OcspCertId[];
  /**
   * extnValue of the nonce extension exactly as sent (normally an OCTET STRING around the nonce
   * octets, RFC 8954 §2.1); echoed byte for byte. Absent when the request has no nonce.
   */
  nonce?: Buffer;
  /** The nonce octets (inside the OCTET STRING); for the length check of RFC 8954. */
  nonceValue?: Buffer;
  /** Whether optionalSignature was present (not verified: this responder does not require signed requests). */
  signed: boolean;
}

export interface ParseRequestOptions {
  /** Most CertIDs in one request; more → malformed. Default 16. */
  maxRequests?: number;
}

function readCertId(t: Tlv): OcspCertId {
  const f = children(expectTag(t, Tag.SEQUENCE, 'CertID').value);
  if (f.length !== 4) throw new DerError('CertID must have 4 fields');
  const alg = children(expectTag(f[0], Tag.SEQUENCE, 'hashAlgorithm').value);
  const hashAlgorithm = readOid(alg[0]);
  // parameters: absent or NULL (RFC 5754 §2; OpenSSL sends NULL).
  if (alg.length > 2 || (alg[1] && !(alg[1].tag === Tag.NULL && alg[1].value.length === 0))) throw new DerError('unexpected hash parameters');
  const hash = HASH_BY_OID.get(hashAlgorithm);
  const issuerNameHash = expectTag(f[1], Tag.OCTET_STRING, 'issuerNameHash').value;
  const issuerKeyHash = expectTag(f[2], Tag.OCTET_STRING, 'issuerKeyHash').value;
  if (hash && (issuerNameHash.length !== HASH_LENGTH[hash] || issuerKeyHash.length !== HASH_LENGTH[hash])) {
    throw new DerError(`CertID hashes are not ${hash} values`);
  }
  const serialTlv = expectTag(f[3], Tag.INTEGER, 'serialNumber');
  if (serialTlv.value.length > 21) throw new DerError('serial number too long');
  return {
    hashAlgorithm,
    hash,
    hashParams: alg[1] ? 'null' : 'absent',
    issuerNameHash: Buffer.from(issuerNameHash),
    issuerKeyHash: Buffer.from(issuerKeyHash),
    serial: serialHexOf(serialTlv),
    raw: Buffer.from(t.raw),
  };
}

function findExtension(t: Tlv, id: string): Buffer | undefined {
  let found: Buffer | undefined;
  for (const e of children(expectTag(t, Tag.SEQUENCE, 'Extensions').value)) {
    const p = children(expectTag(e, Tag.SEQUENCE, 'Extension').value);
    const extnId = readOid(p[0]);
    const valueTlv = p[1]?.tag === TAG_BOOLEAN ? p[2] : p[1];
    const value = expectTag(valueTlv, Tag.OCTET_STRING, 'extnValue').value;
    if (extnId === id) {
      if (found) throw new DerError(`duplicate extension ${id}`);
      found = Buffer.from(value);
    }
  }
  return found;
}

/** Parses a DER OCSPRequest; throws OcspMalformedError. */
export function parseOcspRequest(der: Buffer, opts: ParseRequestOptions = {}): ParsedOcspRequest {
  const max = opts.maxRequests ?? 16;
  try {
    const top = children(readWhole(der, Tag.SEQUENCE).value);
    if (top.length < 1 || top.length > 2) throw new DerError('OCSPRequest must have 1 or 2 fields');
    if (top[1] && top[1].tag !== 0xa0) throw new DerError('unexpected field after tbsRequest');
    const f = children(expectTag(top[0], Tag.SEQUENCE, 'tbsRequest').value);
    let i = 0;
    if (f[i]?.tag === 0xa0) {
      const v = readWhole(f[i++].value, Tag.INTEGER).value;
      if (!(v.length === 1 && v[0] === 0)) throw new DerError('unsupported OCSP request version');
    }
    if (f[i]?.tag === 0xa1) i++; // requestorName: informational only
    const list = children(expectTag(f[i++], Tag.SEQUENCE, 'requestList').value);
    if (list.length === 0) throw new DerError('empty requestList');
    if (list.length > max) throw new DerError(`more than ${max} certificates in one request`);
    const requests = list.map((r) => {
      const p = children(expectTag(r, Tag.SEQUENCE, 'Request').value);
      if (p.length > 2 || (p[1] && p[1].tag !== 0xa0)) throw new DerError('unexpected field in Request');
      if (p[1]) readWhole(p[1].value, Tag.SEQUENCE);
      return readCertId(p[0]);
    });
    let nonce: Buffer | undefined;
    if (f[i]?.tag === 0xa2) nonce = findExtension(readWhole(f[i++].value, Tag.SEQUENCE), OID_OCSP_NONCE);
    if (i !== f.length) throw new DerError('unexpected fields in tbsRequest');
    let nonceValue: Buffer | undefined;
    if (nonce) {
      // RFC 8954: the value is an OCTET STRING of the nonce octets; some old clients put the
      // octets in directly, which we echo all the same.
      try {
        nonceValue = Buffer.from(readWhole(nonce, Tag.OCTET_STRING).value);
      } catch {
        nonceValue = nonce;
      }
    }
    return { requests, nonce, nonceValue, signed: top.length === 2 };
  } catch (e) {
    throw new OcspMalformedError((e as Error).message, { cause: e });
  }
}

// ---------- CertID and request construction (clients, tests, benchmarks) ----------

export function hashOf(hash: CertIdHash, data: Buffer): Buffer {
  return createHash(hash).update(data).digest();
}

/** issuerNameHash and issuerKeyHash of an issuer certificate (RFC 6960 §4.1.1). */
export function issuerHashes(issuerCertificate: Buffer, hash: CertIdHash): { nameHash: Buffer; keyHash: Buffer } {
  const id = certificateIdentity(issuerCertificate);
  return { nameHash: hashOf(hash, id.subject), keyHash: hashOf(hash, id.publicKey) };
}

export interface CertIdInput {
  issuerCertificate: Buffer;
  serial: string;
  hash?: CertIdHash;
}

export function encodeCertId(input: CertIdInput): Buffer {
  const hash = input.hash ?? 'sha1';
  const { nameHash, keyHash } = issuerHashes(input.issuerCertificate, hash);
  return encodeCertIdFields(CERT_ID_HASH_OIDS[hash], nameHash, keyHash, input.serial);
}

/** CertID from its fields; hash parameters NULL as OpenSSL and BouncyCastle write them, or absent. */
export function encodeCertIdFields(hashOid: string, nameHash: Buffer, keyHash: Buffer, serial: string, params: 'null' | 'absent' = 'null'): Buffer {
  const alg = params === 'null' ? seq(oid(hashOid), Buffer.from([0x05, 0x00])) : seq(oid(hashOid));
  return seq(alg, octets(nameHash), octets(keyHash), serialInteger(serial));
}

/** An unsigned OCSPRequest for the given certificates, with a nonce extension when `nonce` is given. */
export function buildOcspRequest(ids: CertIdInput[], nonce?: Buffer): Buffer {
  const list = seq(...ids.map((id) => seq(encodeCertId(id))));
  const exts = nonce ? [tlv(0xa2, seq(seq(oid(OID_OCSP_NONCE), octets(octets(nonce)))))] : [];
  return seq(seq(list, ...exts));
}

// ---------- responses ----------

export type SingleStatus =
  | { status: 'good' }
  | { status: 'revoked'; revocationTime: Date; /** CRLReason code; absent → no revocationReason */ reasonCode?: number }
  | { status: 'unknown' };

export type SingleResponseInput = SingleStatus & {
  /** The CertID as the client sent it. */
  certId: Buffer;
  thisUpdate: Date;
  nextUpdate?: Date;
};

export interface BasicResponseRequest {
  signer: Signer;
  producedAt: Date;
  responses: SingleResponseInput[];
  /** extnValue to echo in a nonce response extension. */
  nonce?: Buffer;
  /** Certificates to include (the delegated responder's certificate), DER. */
  certs?: Buffer[];
  /** SHA-1 of the signer's public key (ResponderID byKey); computed from the signer when absent. */
  responderKeyHash?: Buffer;
}

/** ResponderID byKey: SHA-1 of the subjectPublicKey BIT STRING value of an SPKI (RFC 6960 §4.2.1). */
export function responderKeyHash(spki: Buffer): Buffer {
  return hashOf('sha1', readBitStringBytes(children(readWhole(spki, Tag.SEQUENCE).value)[1]));
}

function certStatus(s: SingleStatus): Buffer {
  switch (s.status) {
    case 'good':
      return Buffer.from([0x80, 0x00]);
    case 'unknown':
      return Buffer.from([0x82, 0x00]);
    case 'revoked': {
      const reason = s.reasonCode === undefined ? [] : [tlv(0xa0, tlv(TAG_ENUMERATED, Buffer.from([s.reasonCode])))];
      return tlv(0xa1, generalizedTime(s.revocationTime), ...reason);
    }
  }
}

/** A successful OCSPResponse carrying a BasicOCSPResponse signed by `signer`, responderID byKey. */
export async function buildOcspResponse(req: BasicResponseRequest): Promise<Buffer> {
  if (req.responses.length === 0) throw new DerError('no responses');
  const alg = signatureAlgorithm(req.signer.algorithm);
  const keyHash = req.responderKeyHash ?? responderKeyHash(req.signer.publicKeyInfo);
  const singles = req.responses.map((r) =>
    seq(r.certId, certStatus(r), generalizedTime(r.thisUpdate), ...(r.nextUpdate ? [tlv(0xa0, generalizedTime(r.nextUpdate))] : [])),
  );
  const exts = req.nonce ? [tlv(0xa1, seq(seq(oid(OID_OCSP_NONCE), octets(req.nonce))))] : [];
  const tbs = seq(tlv(0xa2, octets(keyHash)), generalizedTime(req.producedAt), seq(...singles), ...exts);
  const signature = await req.signer.sign(tbs, alg.options);
  const certs = req.certs && req.certs.length > 0 ? [tlv(0xa0, seq(...req.certs))] : [];
  const basic = seq(tbs, alg.der, bitString(signature), ...certs);
  return seq(tlv(TAG_ENUMERATED, Buffer.from([OcspResponseStatus.successful])), tlv(0xa0, seq(oid(OID_OCSP_BASIC), octets(basic))));
}

/** An OCSPResponse with an error status and no responseBytes (RFC 6960 §4.2.1). */
export function ocspErrorResponse(status: Exclude<OcspResponseStatusName, 'successful'>): Buffer {
  return seq(tlv(TAG_ENUMERATED, Buffer.from([OcspResponseStatus[status]])));
}

export interface ParsedSingleResponse {
  certId: Buffer;
  hashAlgorithm: string;
  issuerNameHash: Buffer;
  issuerKeyHash: Buffer;
  serial: string;
  status: 'good' | 'revoked' | 'unknown';
  revocationTime?: Date;
  reasonCode?: number;
  thisUpdate: Date;
  nextUpdate?: Date;
}

export interface ParsedBasicResponse {
  tbs: Buffer;
  signatureAlgorithm: string;
  signature: Buffer;
  responderKeyHash?: Buffer;
  responderName?: Buffer;
  producedAt: Date;
  responses: ParsedSingleResponse[];
  nonce?: Buffer;
  certs: Buffer[];
}

export interface ParsedOcspResponse {
  status: OcspResponseStatusName;
  basic?: ParsedBasicResponse;
}

/** Reads an OCSPResponse (strict DER); throws DerError. */
export function parseOcspResponse(der: Buffer): ParsedOcspResponse {
  const top = children(readWhole(der, Tag.SEQUENCE).value);
  const code = readWhole(expectTag(top[0], TAG_ENUMERATED, 'responseStatus').raw, TAG_ENUMERATED).value;
  const status = STATUS_NAME.get(code[code.length - 1]);
  if (!status || code.length !== 1) throw new DerError('unknown response status');
  if (!top[1]) return { status };
  const rb = children(readWhole(expectTag(top[1], 0xa0, 'responseBytes').value, Tag.SEQUENCE).value);
  if (readOid(rb[0]) !== OID_OCSP_BASIC) throw new DerError('not a basic OCSP response');
  const basic = children(readWhole(expectTag(rb[1], Tag.OCTET_STRING, 'response').value, Tag.SEQUENCE).value);
  const tbsTlv = expectTag(basic[0], Tag.SEQUENCE, 'tbsResponseData');
  const signatureAlgorithm = readOid(children(expectTag(basic[1], Tag.SEQUENCE, 'signatureAlgorithm').value)[0]);
  const signature = readBitStringBytes(basic[2]);
  const certs = basic[3] ? children(readWhole(expectTag(basic[3], 0xa0, 'certs').value, Tag.SEQUENCE).value).map((c) => Buffer.from(c.raw)) : [];
  const f = children(tbsTlv.value);
  let i = 0;
  if (f[i]?.tag === 0xa0) i++;
  let responderKeyHash: Buffer | undefined;
  let responderName: Buffer | undefined;
  const rid = f[i++];
  if (rid?.tag === 0xa2) responderKeyHash = Buffer.from(readWhole(rid.value, Tag.OCTET_STRING).value);
  else if (rid?.tag === 0xa1) responderName = Buffer.from(rid.value);
  else throw new DerError('bad responderID');
  const producedAt = readTime(f[i++]);
  const responses = children(expectTag(f[i++], Tag.SEQUENCE, 'responses').value).map((s): ParsedSingleResponse => {
    const p = children(expectTag(s, Tag.SEQUENCE, 'SingleResponse').value);
    const id = children(expectTag(p[0], Tag.SEQUENCE, 'certID').value);
    const out: ParsedSingleResponse = {
      certId: Buffer.from(p[0].raw),
      hashAlgorithm: readOid(children(id[0].value)[0]),
      issuerNameHash: Buffer.from(id[1].value),
      issuerKeyHash: Buffer.from(id[2].value),
      serial: serialHexOf(id[3]),
      status: 'unknown',
      thisUpdate: readTime(p[2]),
    };
    const cs = p[1];
    if (cs.tag === 0x80) out.status = 'good';
    else if (cs.tag === 0x82) out.status = 'unknown';
    else if (cs.tag === 0xa1) {
      out.status = 'revoked';
      const ri = children(cs.value);
      out.revocationTime = readTime(ri[0]);
      if (ri[1]) {
        const v = readWhole(expectTag(ri[1], 0xa0, 'revocationReason').value, TAG_ENUMERATED).value;
        out.reasonCode = v[v.length - 1];
      }
    } else throw new DerError('bad certStatus');
    for (const extra of p.slice(3)) if (extra.tag === 0xa0) out.nextUpdate = readTime(readTlv(extra.value).tlv);
    return out;
  });
  let nonce: Buffer | undefined;
  if (f[i]?.tag === 0xa1) nonce = findExtension(readWhole(f[i++].value, Tag.SEQUENCE), OID_OCSP_NONCE);
  return { status, basic: { tbs: Buffer.from(tbsTlv.raw), signatureAlgorithm, signature: Buffer.from(signature), responderKeyHash, responderName, producedAt, responses, nonce, certs } };
}
