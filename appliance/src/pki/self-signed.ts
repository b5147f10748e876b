// A self-signed X.509 v3 TLS server certificate (RFC 5280) for a key held by any Signer. The
// appliance's own TLS certificate comes from the ECDSA hierarchy (hierarchy.ts); this remains
// for tools and tests that need a throwaway certificate for a token key (e.g. the HSM TLS
// engine's interop test). Built with the CA's certificate encoder and signer.
import { KEY_PURPOSES, keyIdentifier, type CertificateExtension } from '../asn1/certificate.js';
import { encodeName, type NameAttribute } from '../asn1/name.js';
import { toPem } from '../crypto/der.js';
import type { Signer } from '../crypto/interfaces.js';
import { randomSerial, signCertificate } from './certificate-issuer.js';

export interface SelfSignedRequest {
  signer: Signer;
  subjectCN: string;
  organisation?: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  days: number;
  /** Defaults to a minute ago; a test can pin it. */
  notBefore?: Date;
}

export async function buildSelfSignedCertificate(req: SelfSignedRequest): Promise<Buffer> {
  const attrs: NameAttribute[] = [{ type: 'CN', value: req.subjectCN }];
  if (req.organisation) attrs.push({ type: 'O', value: req.organisation });
  const name = encodeName(attrs);
  const notBefore = req.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = new Date(notBefore.getTime() + req.days * 86_400_000);
  const extensions: CertificateExtension[] = [
    { kind: 'basicConstraints', ca: false },
    { kind: 'keyUsage', usages: req.signer.algorithm.startsWith('rsa') ? ['digitalSignature', 'keyEncipherment'] : ['digitalSignature'] },
    { kind: 'extKeyUsage', purposes: [KEY_PURPOSES.serverAuth], critical: false },
    { kind: 'subjectKeyIdentifier', keyIdentifier: keyIdentifier(req.signer.publicKeyInfo) },
  ];
  if (req.dnsNames?.length || req.ipAddresses?.length) extensions.push({ kind: 'subjectAltName', dnsNames: req.dnsNames ?? [], ipAddresses: req.ipAddresses ?? [] });
  return signCertificate(req.signer, { serial: randomSerial(), issuer: name, subject: name, notBefore, notAfter, subjectPublicKeyInfo: req.signer.publicKeyInfo, extensions });
}

export function derToPem(der: Buffer, label = 'CERTIFICATE'): string {
  return toPem(label, der);
}
