// CAdES-T: a signature time-stamp as the unsigned attribute id-aa-signatureTimeStampToken
// (1.2.840.113549.1.9.16.2.14; RFC 3161 Appendix A, ETSI EN 319 122-1 §5.3). The token's
// messageImprint is the hash of the value of the SignerInfo's signature OCTET STRING (the
// signature bytes, not their TLV) — SM3 from the SM2 TSA for SM2 signatures (GM/T 0033,
// STANDARDS.md §3), SHA-256 from the ECDSA TSA otherwise. The token comes from the appliance's
// own TSA in process (TsaService.stamp): the same clock gate, and the token is recorded like
// any other; a refusal (clock UNSYNCED → timeNotAvailable) fails the signing with
// TIMESTAMP_UNAVAILABLE 503 and the reason.
import { OID_SIGNATURE_TIME_STAMP_TOKEN, TAG_SET, attribute, setOf } from '../asn1/cms-signed-data.js';
import type { FailureInfoName } from '../asn1/tsp.js';
import { DerError, Tag, children, expectTag, readOid, readWhole, seq, tlv } from '../crypto/der.js';
import { digest } from '../crypto/hash.js';
import type { KeyAlgorithm } from '../crypto/interfaces.js';
import { OID } from '../crypto/oids.js';
import { YiqianError } from '../errors.js';
import type { ImprintHash, TsaIdentity } from '../tsa/types.js';

export { OID_SIGNATURE_TIME_STAMP_TOKEN };

export const CadesCodes = {
  /** The TSA refused or is absent: no CAdES-T signature is made (503, the reason says why). */
  TIMESTAMP_UNAVAILABLE: 'TIMESTAMP_UNAVAILABLE',
} as const;

export type StampOutcome = { ok: true; token: Buffer; genTime: Date; serial: string } | { ok: false; failInfo: FailureInfoName; reason: string };

/** What signs time-stamps in process; TsaService implements it. */
export interface SignatureStamper {
  stamp(hash: ImprintHash, hashedMessage: Buffer, identity: TsaIdentity, requester: { address: string; app?: string }): Promise<StampOutcome>;
}

export interface SignatureTimestamp {
  /** DER Attribute { id-aa-signatureTimeStampToken, SET { TimeStampToken } }. */
  attribute: Buffer;
  token: Buffer;
  genTime: Date;
  serial: string;
}

/** The TSA identity and imprint hash for a signature of this key algorithm. */
export function stampProfile(algorithm: KeyAlgorithm): { identity: TsaIdentity; hash: ImprintHash } {
  return algorithm === 'sm2' ? { identity: 'sm2', hash: 'sm3' } : { identity: 'ecdsa', hash: 'sha256' };
}

/** Attribute { id-aa-signatureTimeStampToken, SET OF { token } } (the token is a ContentInfo). */
export function signatureTimeStampAttribute(token: Buffer): Buffer {
  return attribute(OID_SIGNATURE_TIME_STAMP_TOKEN, token);
}

export function timestampUnavailable(reason: string, failInfo?: string): YiqianError {
  return new YiqianError(
    CadesCodes.TIMESTAMP_UNAVAILABLE,
    503,
    { zh: `时间戳服务不可用，未签名：${reason}`, en: `no signature time-stamp available, nothing was signed: ${reason}` },
    { reason, ...(failInfo ? { failInfo } : {}) },
  );
}

/**
 * Time-stamps `signature` (the SignerInfo signature value) with the TSA matching `algorithm`;
 * throws TIMESTAMP_UNAVAILABLE (503) when there is no stamper or it refuses.
 */
export async function timestampSignature(stamper: SignatureStamper | undefined, algorithm: KeyAlgorithm, signature: Buffer, app?: string): Promise<SignatureTimestamp> {
  if (!stamper) throw timestampUnavailable('this appliance has no time-stamp authority configured');
  const { identity, hash } = stampProfile(algorithm);
  const r = await stamper.stamp(hash, digest(hash, signature), identity, { address: 'in-process', ...(app ? { app } : {}) });
  if (!r.ok) throw timestampUnavailable(`${r.failInfo}: ${r.reason}`, r.failInfo);
  return { attribute: signatureTimeStampAttribute(r.token), token: r.token, genTime: r.genTime, serial: r.serial };
}

const SM2_SIGNATURE_OIDS = new Set<string>([OID.sm2Sign, OID.sm2WithSm3]);

/**
 * Adds a signature time-stamp to the (only) SignerInfo of an existing DER SignedData in either
 * form, keeping every other byte: the attribute joins the [1] unsignedAttrs (made if absent,
 * DER-sorted). The algorithm (SM2 or not) is read from the SignerInfo's signatureAlgorithm.
 */
export async function addSignatureTimestamp(cms: Buffer, stamper: SignatureStamper | undefined, app?: string): Promise<{ cms: Buffer } & SignatureTimestamp> {
  const ci = children(readWhole(cms, Tag.SEQUENCE).value);
  if (ci.length !== 2) throw new DerError('ContentInfo has 2 elements');
  const sd = children(readWhole(expectTag(ci[1], 0xa0, 'content').value, Tag.SEQUENCE).value);
  const infos = children(expectTag(sd[sd.length - 1], TAG_SET, 'signerInfos').value);
  if (infos.length !== 1) throw new DerError(`expected one SignerInfo, found ${infos.length}`);
  const si = children(expectTag(infos[0], Tag.SEQUENCE, 'SignerInfo').value);
  const hasUnsigned = si[si.length - 1]?.tag === 0xa1;
  const sigIndex = si.length - (hasUnsigned ? 2 : 1);
  const signature = Buffer.from(expectTag(si[sigIndex], Tag.OCTET_STRING, 'signature').value);
  const sigAlg = readOid(children(expectTag(si[sigIndex - 1], Tag.SEQUENCE, 'signatureAlgorithm').value)[0]);
  const ts = await timestampSignature(stamper, SM2_SIGNATURE_OIDS.has(sigAlg) ? 'sm2' : 'ecdsa-p256', signature, app);
  const existing = hasUnsigned ? children(si[si.length - 1].value).map((a) => Buffer.from(a.raw)) : [];
  const unsigned = Buffer.concat([Buffer.from([0xa1]), setOf([...existing, ts.attribute]).subarray(1)]);
  const signerInfo = seq(...si.slice(0, sigIndex + 1).map((x) => x.raw), unsigned);
  const signedData = seq(...sd.slice(0, -1).map((x) => x.raw), tlv(TAG_SET, signerInfo));
  return { cms: seq(ci[0].raw, tlv(0xa0, signedData)), ...ts };
}
