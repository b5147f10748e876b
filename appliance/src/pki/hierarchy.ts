// The two CA hierarchies made at `yiqian init` (docs/pki.md):
//
//   sm2-root (SM2/SM3, self-signed) → sm2-issuing → sm2 OCSP signer, sm2 TSA, staff/org/seal…
//   ecdsa-root (P-256, or RSA-3072 by config) → ecdsa-issuing → ecdsa OCSP signer, ecdsa TSA,
//                                               the appliance's TLS certificate, devices…
//
// Every key is made through KeyCustody: SM2 keys in wrapped custody on a token without SM2
// (SoftHSM2) or in the HSM with a vendor SM2 profile; ECDSA/RSA keys in the HSM. The OCSP
// signer and TSA keys stay in the appliance (keyOrigin 'appliance', keyRef = inventory id).
// CA certificates: RFC 5280 §4.2.1.9 basicConstraints cA (critical), keyUsage keyCertSign +
// cRLSign (critical), SKI; the issuing CA also AKI, pathLen 0, anyPolicy, and CDP/AIA pointing
// at its root's CRL and certificate. Roots carry no CDP/AIA (they are trust anchors).
import { hostname } from 'node:os';
import type { CertificateExtension } from '../asn1/certificate.js';
import { keyIdentifier, readCertificate } from '../asn1/certificate.js';
import { encodeName, nameToString } from '../asn1/name.js';
import type { KeyAlgorithm, KeyCustody, KeyInfo, Signer } from '../crypto/interfaces.js';
import { nowIso } from '../store/ids.js';
import type { Authorities } from './authorities.js';
import { randomSerial, signCertificate, BACKDATE_MS } from './certificate-issuer.js';
import type { CertificateService } from './certificate-service.js';
import { distributionUrls } from './profiles.js';
import type { CaId, CaRecord, CaRepository, CertificateRecord, CertificateRepository, Hierarchy } from './types.js';

export const ROOT_VALIDITY_DAYS = 20 * 365;
export const ISSUING_VALIDITY_DAYS = 10 * 365;
const ANY_POLICY = '2.5.29.32.0';

/** Key labels (CKA_LABEL) of the keys a hierarchy owns. */
export function hierarchyKeyLabels(h: Hierarchy): { root: string; issuing: string; ocsp: string; tsa: string } {
  return { root: `${h}-root-ca`, issuing: `${h}-issuing-ca`, ocsp: `${h}-ocsp-signer`, tsa: `${h}-tsa` };
}

export interface HierarchyOptions {
  custody: KeyCustody;
  cas: CaRepository;
  authorities: Authorities;
  certificates: CertificateService;
  /** config.pki and config.publicBaseUrl. */
  publicBaseUrl: string;
  organisation: string;
  country: string;
  ecdsaAlgorithm: 'ecdsa-p256' | 'rsa-3072';
  actor: string;
}

export interface DeviceTlsOptions {
  /** The device-tls key (already in custody). */
  key: KeyInfo;
  dnsNames: string[];
  ipAddresses: string[];
  commonName?: string;
}

export interface CreatedHierarchies {
  cas: CaRecord[];
  certificates: CertificateRecord[];
  deviceTls: { certificatePem: string; chainPem: string; record: CertificateRecord };
}

function days(n: number): number {
  return n * 86_400_000;
}

async function makeCa(
  o: HierarchyOptions,
  h: Hierarchy,
  role: 'root' | 'issuing',
  algorithm: KeyAlgorithm,
  parent?: { record: CaRecord; signer: Signer },
): Promise<CaRecord> {
  const labels = hierarchyKeyLabels(h);
  const kind = h === 'sm2' ? 'SM2' : algorithm === 'rsa-3072' ? 'RSA' : 'ECDSA';
  const key = await o.custody.generate({
    algorithm,
    label: role === 'root' ? labels.root : labels.issuing,
    purpose: `${role === 'root' ? 'root' : 'issuing'} CA key of the ${kind} hierarchy (signs ${role === 'root' ? 'the issuing CA certificate and its CRL' : 'certificates and CRLs'})`,
  });
  const signer = await o.custody.signer(key.uri);
  const id = `${h}-${role}` as CaId;
  const subject = encodeName([
    { type: 'C', value: o.country },
    { type: 'O', value: o.organisation },
    { type: 'CN', value: `${o.organisation} ${kind} ${role === 'root' ? 'Root' : 'Issuing'} CA` },
  ]);
  const ski = keyIdentifier(key.publicKeyInfo);
  const now = Date.now();
  const notBefore = new Date(now - BACKDATE_MS);
  const extensions: CertificateExtension[] = [
    role === 'root' ? { kind: 'basicConstraints', ca: true } : { kind: 'basicConstraints', ca: true, pathLength: 0 },
    { kind: 'keyUsage', usages: ['keyCertSign', 'cRLSign'] },
    { kind: 'subjectKeyIdentifier', keyIdentifier: ski },
  ];
  let issuerName = subject;
  let notAfter = new Date(now + days(ROOT_VALIDITY_DAYS));
  if (parent) {
    const parentCert = readCertificate(Buffer.from(parent.record.certificate, 'base64'));
    const urls = distributionUrls(o.publicBaseUrl, parent.record.id);
    issuerName = parentCert.subjectDer;
    notAfter = new Date(Math.min(now + days(ISSUING_VALIDITY_DAYS), parentCert.notAfter.getTime()));
    if (parentCert.subjectKeyIdentifier) extensions.push({ kind: 'authorityKeyIdentifier', keyIdentifier: parentCert.subjectKeyIdentifier });
    extensions.push(
      { kind: 'certificatePolicies', policies: [{ oid: ANY_POLICY }] },
      { kind: 'crlDistributionPoints', urls: [urls.crl] },
      // No OCSP pointer: the delegated responders are issued by the issuing CAs and answer for their leaves only.
      { kind: 'authorityInfoAccess', ocsp: [], caIssuers: [urls.caIssuers] },
    );
  }
  const serial = randomSerial();
  const der = await signCertificate(parent?.signer ?? signer, {
    serial,
    issuer: issuerName,
    subject,
    notBefore,
    notAfter,
    subjectPublicKeyInfo: key.publicKeyInfo,
    extensions,
  });
  const info = readCertificate(der);
  const record: CaRecord = {
    id,
    hierarchy: h,
    role,
    keyId: key.id,
    keyUri: key.uri,
    algorithm,
    certificate: der.toString('base64'),
    subject: nameToString(subject),
    serial: info.serial,
    notBefore: info.notBefore.toISOString(),
    notAfter: info.notAfter.toISOString(),
    ...(parent ? { parentId: parent.record.id } : {}),
    crlNumber: '0',
    createdAt: nowIso(),
  };
  await o.cas.put(record, {
    audit: { actor: o.actor, action: 'ca.create', target: id, outcome: 'ok', detail: { algorithm, keyUri: key.uri, serial: record.serial, notAfter: record.notAfter } },
  });
  return record;
}

/** The delegated OCSP signer and the TSA certificate of one hierarchy, keys kept by the appliance. */
async function makeServiceCertificates(o: HierarchyOptions, h: Hierarchy): Promise<CertificateRecord[]> {
  const labels = hierarchyKeyLabels(h);
  const kind = h === 'sm2' ? 'SM2' : 'ECDSA';
  // Leaf keys of the second hierarchy are P-256 even under an RSA-3072 CA: OCSP and time-stamp
  // signatures are made per request, and P-256 signs ~15× faster than RSA-3072 in the HSM.
  const algorithm: KeyAlgorithm = h === 'sm2' ? 'sm2' : 'ecdsa-p256';
  const out: CertificateRecord[] = [];
  for (const [profile, label, cn, purpose] of [
    ['ocsp', labels.ocsp, `${o.organisation} ${kind} OCSP Responder`, `delegated OCSP responder key of the ${kind} hierarchy (RFC 6960)`],
    ['tsa', labels.tsa, `${o.organisation} ${kind} Time-Stamping Authority`, `time-stamping key of the ${kind} hierarchy (RFC 3161)`],
  ] as const) {
    const key = await o.custody.generate({ algorithm, label, purpose });
    const issued = await o.certificates.issueForAppliance(
      { profile, hierarchy: h, commonName: cn, keyRef: key.id, publicKeyInfo: key.publicKeyInfo, keyAlgorithm: algorithm },
      o.actor,
    );
    out.push(issued.record);
  }
  return out;
}

/**
 * Makes both hierarchies, their OCSP and TSA certificates, and the appliance's TLS certificate
 * (issued by ecdsa-issuing for the existing device-tls key). For `yiqian init`: it does not
 * undo what it made when it fails midway — init removes the whole token and store then.
 */
export async function createHierarchies(o: HierarchyOptions, tls: DeviceTlsOptions): Promise<CreatedHierarchies> {
  const cas: CaRecord[] = [];
  const certificates: CertificateRecord[] = [];
  for (const h of ['sm2', 'ecdsa'] as const) {
    const algorithm: KeyAlgorithm = h === 'sm2' ? 'sm2' : o.ecdsaAlgorithm;
    const root = await makeCa(o, h, 'root', algorithm);
    const rootSigner = await o.custody.signer(root.keyUri);
    const issuing = await makeCa(o, h, 'issuing', algorithm, { record: root, signer: rootSigner });
    cas.push(root, issuing);
    certificates.push(...(await makeServiceCertificates(o, h)));
  }
  const device = await o.certificates.issueForAppliance(
    {
      profile: 'device',
      hierarchy: 'ecdsa',
      commonName: tls.commonName ?? `yiqian ${hostname()}`.slice(0, 64),
      dnsNames: tls.dnsNames,
      ipAddresses: tls.ipAddresses,
      keyRef: tls.key.id,
      publicKeyInfo: tls.key.publicKeyInfo,
      keyAlgorithm: tls.key.algorithm,
    },
    o.actor,
  );
  certificates.push(device.record);
  return { cas, certificates, deviceTls: { certificatePem: device.certificatePem, chainPem: device.chainPem, record: device.record } };
}

/**
 * The newest good, not renewed certificate of `profile` for a key the appliance keeps in
 * `hierarchy` (the OCSP responder and TSA look up their signing certificate with this).
 */
export async function applianceCertificate(certs: CertificateRepository, hierarchy: Hierarchy, profile: 'ocsp' | 'tsa' | 'device'): Promise<CertificateRecord | undefined> {
  let found: CertificateRecord | undefined;
  let cursor: string | undefined;
  do {
    const page = await certs.query({ caId: `${hierarchy}-issuing`, profile, status: 'good', renewed: false }, { limit: 500, ...(cursor ? { cursor } : {}) });
    for (const r of page.items) if (r.keyOrigin === 'appliance' && r.keyRef !== undefined) found = r;
    cursor = page.next;
  } while (cursor);
  return found;
}

