// CMS SignedData signing (issue 4 item 2): one signer, signed attributes contentType,
// messageDigest, signingTime and signing-certificate-v2 (RFC 5035 §5.4), attached or detached.
// SM2: SM3 digest, SM2 with the default ID over DER(SET OF signed attributes) — in the
// GB/T 35275 form (GM/T 0010 OIDs, signature OID 1.2.156.10197.1.301.1) or the RFC 5652 form
// (1.2.840.113549.1.7.x, signature OID 1.2.156.10197.1.501) (STANDARDS.md §2).
// ECDSA (ecdsa-with-SHA256) and RSA (sha256WithRSAEncryption, PKCS#1 v1.5) always RFC 5652.
import { CMS_FORM_OIDS, attribute, encodeSignedData, setOf, type CmsForm } from '../asn1/cms-signed-data.js';
import { OID_CONTENT_TYPE, OID_MESSAGE_DIGEST, OID_SIGNING_CERTIFICATE_V2, OID_SIGNING_TIME } from '../asn1/tsp.js';
import { Tag, children, derNull, expectTag, integer, octets, oid, readWhole, seq, tlv } from '../crypto/der.js';
import { digest } from '../crypto/hash.js';
import type { KeyAlgorithm, Signer } from '../crypto/interfaces.js';
import { OID } from '../crypto/oids.js';

export interface SignCmsInput {
  signer: Signer;
  /** DER of the signer's certificate (its key must be the signer's). */
  certificate: Buffer;
  /** Further certificates to embed (issuing CA, …), DER. */
  chain?: Buffer[];
  content: Buffer;
  detached: boolean;
  /** SM2 only; ECDSA and RSA are always RFC 5652. */
  form: CmsForm;
  signingTime?: Date;
  /** Leave out the signingTime attribute: PAdES (ETSI EN 319 142-1 §5.2.1) forbids it, the PDF's M entry carries the time. */
  omitSigningTime?: boolean;
  /** The certificate's IssuerAndSerialNumber and ESSCertIDv2 hash, prepared once (cmsSignerIdentity) so hot paths do not re-parse it. */
  identity?: CmsSignerIdentity;
  /**
   * Called with the signature value once it is made; the attributes it returns (DER Attribute
   * each) become the SignerInfo's [1] unsignedAttrs — e.g. id-aa-signatureTimeStampToken (CAdES-T, cades-t.ts).
   */
  unsignedAttributes?: (signature: Buffer) => Promise<Buffer[]>;
}

/** What the SignerInfo names of its certificate: sid (RFC 5652 §5.3) and the ESSCertIDv2 certHash (RFC 5035 §5.4). */
export interface CmsSignerIdentity {
  issuerDer: Buffer;
  serialDer: Buffer;
  /** SM3 of the certificate for SM2 keys, SHA-256 otherwise (the SignerInfo digest algorithm). */
  certHash: Buffer;
}

interface Algorithms {
  hash: 'sm3' | 'sha256';
  digestAlg: Buffer;
  sigAlg: Buffer;
  form: CmsForm;
}

function algorithms(signer: Signer, form: CmsForm): Algorithms {
  if (signer.algorithm === 'sm2') {
    const sigOid = form === 'gbt35275' ? OID.sm2Sign : OID.sm2WithSm3;
    return { hash: 'sm3', digestAlg: seq(oid(OID.sm3)), sigAlg: seq(oid(sigOid)), form };
  }
  if (signer.algorithm === 'ecdsa-p256' || signer.algorithm === 'ecdsa-p384') {
    return { hash: 'sha256', digestAlg: seq(oid(OID.sha256)), sigAlg: seq(oid(OID.ecdsaWithSha256)), form: 'rfc5652' };
  }
  // RSA: sha256WithRSAEncryption with NULL parameters (RFC 4055 §5).
  return { hash: 'sha256', digestAlg: seq(oid(OID.sha256)), sigAlg: seq(oid(OID.sha256WithRsa), derNull()), form: 'rfc5652' };
}

/** Time as UTCTime for 1950–2049, GeneralizedTime otherwise (RFC 5652 §11.3). */
function signingTimeValue(d: Date): Buffer {
  const iso = d.toISOString();
  const year = d.getUTCFullYear();
  if (year >= 1950 && year < 2050) return tlv(0x17, Buffer.from(iso.slice(2, 19).replace(/[-:T]/g, '') + 'Z', 'ascii'));
  return tlv(0x18, Buffer.from(iso.slice(0, 19).replace(/[-:T]/g, '') + 'Z', 'ascii'));
}

/** issuer Name (DER) and serialNumber INTEGER (DER) of a certificate. */
export function issuerAndSerial(certificate: Buffer): { issuerDer: Buffer; serialDer: Buffer } {
  const cert = children(readWhole(certificate, Tag.SEQUENCE).value);
  const tbs = children(expectTag(cert[0], Tag.SEQUENCE, 'tbsCertificate').value);
  let i = 0;
  if (tbs[i]?.tag === 0xa0) i++;
  const serialDer = Buffer.from(expectTag(tbs[i++], Tag.INTEGER, 'serialNumber').raw);
  i++; // signature
  const issuerDer = Buffer.from(expectTag(tbs[i], Tag.SEQUENCE, 'issuer').raw);
  return { issuerDer, serialDer };
}

/** Prepares the per-certificate constants of signCms once (the signer's algorithm picks the hash). */
export function cmsSignerIdentity(algorithm: KeyAlgorithm, certificate: Buffer): CmsSignerIdentity {
  return { ...issuerAndSerial(certificate), certHash: digest(algorithm === 'sm2' ? 'sm3' : 'sha256', certificate) };
}

/** Signs `content` into a DER ContentInfo (SignedData). */
export async function signCms(input: SignCmsInput): Promise<Buffer> {
  const alg = algorithms(input.signer, input.form);
  const { issuerDer, serialDer, certHash } = input.identity ?? cmsSignerIdentity(input.signer.algorithm, input.certificate);
  const dataOid = CMS_FORM_OIDS[alg.form].data;
  const essCertId = seq(
    // hashAlgorithm DEFAULT id-sha256: omitted for SHA-256 (DER), named for SM3.
    ...(alg.hash === 'sha256' ? [] : [alg.digestAlg]),
    octets(certHash),
    seq(seq(tlv(0xa4, issuerDer)), serialDer),
  );
  const signedAttrs = setOf([
    attribute(OID_CONTENT_TYPE, oid(dataOid)),
    ...(input.omitSigningTime ? [] : [attribute(OID_SIGNING_TIME, signingTimeValue(input.signingTime ?? new Date()))]),
    attribute(OID_MESSAGE_DIGEST, octets(digest(alg.hash, input.content))),
    attribute(OID_SIGNING_CERTIFICATE_V2, seq(seq(essCertId))),
  ]);
  // SM2: the signer applies Z_A with the default ID; ECDSA/RSA: SHA-256 over the attributes.
  const signature = await input.signer.sign(signedAttrs, alg.hash === 'sha256' ? { hash: 'sha256' } : {});
  const unsigned = input.unsignedAttributes ? await input.unsignedAttributes(signature) : [];
  const signerInfo = seq(
    integer(1),
    seq(issuerDer, serialDer),
    alg.digestAlg,
    Buffer.concat([Buffer.from([0xa0]), signedAttrs.subarray(1)]),
    alg.sigAlg,
    octets(signature),
    // [1] IMPLICIT SET OF Attribute (RFC 5652 §5.3): DER-sorted like the signed attributes.
    ...(unsigned.length ? [Buffer.concat([Buffer.from([0xa1]), setOf(unsigned).subarray(1)])] : []),
  );
  return encodeSignedData({
    form: alg.form,
    digestAlgorithm: alg.digestAlg,
    ...(input.detached ? {} : { content: input.content }),
    certificates: [input.certificate, ...(input.chain ?? [])],
    signerInfo,
  });
}
