// A self-signed X.509 v3 certificate (RFC 5280) for a key held by any Signer — the device's
// bootstrap TLS certificate. The CA issue replaces it with one from the ECDSA hierarchy.
import { randomBytes, createHash } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import {
  AlgorithmIdentifier, AttributeTypeAndValue, AttributeValue, BasicConstraints, Certificate, ExtendedKeyUsage, Extension,
  Extensions, GeneralName, KeyUsage, KeyUsageFlags, Name, RelativeDistinguishedName, SubjectAlternativeName,
  SubjectKeyIdentifier, SubjectPublicKeyInfo, TBSCertificate, Time, Validity, Version,
  id_ce_basicConstraints, id_ce_extKeyUsage, id_ce_keyUsage, id_ce_subjectAltName, id_ce_subjectKeyIdentifier,
  id_kp_serverAuth,
} from '@peculiar/asn1-x509';
import type { Signer } from '../crypto/interfaces.js';
import { signatureAlgorithmFor } from './signature-algorithm.js';

export interface SelfSignedRequest {
  signer: Signer;
  subjectCN: string;
  organisation?: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  days: number;
  /** Defaults to now; a test can pin it. */
  notBefore?: Date;
}

const OID_CN = '2.5.4.3';
const OID_O = '2.5.4.10';

function rdn(type: string, value: string): RelativeDistinguishedName {
  // UTF8String (RFC 5280 §4.1.2.6) so that Chinese names survive.
  return new RelativeDistinguishedName([new AttributeTypeAndValue({ type, value: new AttributeValue({ utf8String: value }) })]);
}

function ext(extnID: string, critical: boolean, value: unknown): Extension {
  return new Extension({ extnID, critical, extnValue: new OctetString(AsnConvert.serialize(value)) });
}

/** Positive serial of 16 random bytes (RFC 5280 §4.1.2.2: ≤ 20 octets, non-negative). */
export function randomSerial(): ArrayBuffer {
  const s = randomBytes(16);
  s[0] &= 0x7f;
  if (s[0] === 0) s[0] = 0x01;
  return s.buffer.slice(s.byteOffset, s.byteOffset + 16) as ArrayBuffer;
}

export async function buildSelfSignedCertificate(req: SelfSignedRequest): Promise<Buffer> {
  const spki = AsnConvert.parse(req.signer.publicKeyInfo, SubjectPublicKeyInfo);
  const sigAlg = signatureAlgorithmFor(req.signer.algorithm);
  const name = new Name([rdn(OID_CN, req.subjectCN), ...(req.organisation ? [rdn(OID_O, req.organisation)] : [])]);
  const notBefore = req.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = new Date(notBefore.getTime() + req.days * 86_400_000);
  // RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits.
  const ski = createHash('sha1').update(Buffer.from(spki.subjectPublicKey)).digest();
  const san = [
    ...(req.dnsNames ?? []).map((d) => new GeneralName({ dNSName: d })),
    ...(req.ipAddresses ?? []).map((ip) => new GeneralName({ iPAddress: ip })),
  ];
  const extensions = [
    ext(id_ce_basicConstraints, true, new BasicConstraints({ cA: false })),
    ext(id_ce_keyUsage, true, new KeyUsage(KeyUsageFlags.digitalSignature | (req.signer.algorithm.startsWith('rsa') ? KeyUsageFlags.keyEncipherment : 0))),
    ext(id_ce_extKeyUsage, false, new ExtendedKeyUsage([id_kp_serverAuth])),
    ext(id_ce_subjectKeyIdentifier, false, new SubjectKeyIdentifier(ski.buffer.slice(ski.byteOffset, ski.byteOffset + ski.byteLength) as ArrayBuffer)),
    ...(san.length ? [ext(id_ce_subjectAltName, false, new SubjectAlternativeName(san))] : []),
  ];
  const tbs = new TBSCertificate({
    version: Version.v3,
    serialNumber: randomSerial(),
    signature: new AlgorithmIdentifier(sigAlg.identifier),
    issuer: name,
    validity: new Validity({ notBefore, notAfter }),
    subject: name,
    subjectPublicKeyInfo: spki,
    extensions: new Extensions(extensions),
  });
  // RFC 5280 §4.1.1.2: UTCTime up to 2049, GeneralizedTime after.
  tbs.validity.notBefore = new Time(notBefore);
  tbs.validity.notAfter = new Time(notAfter);
  const tbsDer = Buffer.from(AsnConvert.serialize(tbs));
  const signature = await req.signer.sign(tbsDer, sigAlg.signOptions);
  const cert = new Certificate({
    tbsCertificate: tbs,
    signatureAlgorithm: new AlgorithmIdentifier(sigAlg.identifier),
    signatureValue: signature.buffer.slice(signature.byteOffset, signature.byteOffset + signature.byteLength) as ArrayBuffer,
  });
  return Buffer.from(AsnConvert.serialize(cert));
}

export function derToPem(der: Buffer, label = 'CERTIFICATE'): string {
  const b64 = der.toString('base64').replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}-----END ${label}-----\n`;
}
