// Makes and signs certificates: the profile's extensions around a subject and a public key,
// signed by a CA's key through its Signer, stored with a fresh random serial (retried when
// taken) as one durable, audited write. Used for every certificate the appliance issues —
// API requests, renewals and the appliance's own OCSP, TSA and TLS certificates.
import { randomBytes } from 'node:crypto';
import type { AuditEntry } from '../audit/audit-log.js';
import { assembleCertificate, encodeTbsCertificate, keyIdentifier, type CertificateExtension, type KeyUsageName, type TbsSpec } from '../asn1/certificate.js';
import { nameToString } from '../asn1/name.js';
import { toPem } from '../crypto/der.js';
import type { KeyAlgorithm, Signer } from '../crypto/interfaces.js';
import { isYiqianError } from '../errors.js';
import { CERT_EXISTS } from '../store/certificate-repository.js';
import { newId, nowIso } from '../store/ids.js';
import type { LoadedCa } from './authorities.js';
import { distributionUrls, type Profile } from './profiles.js';
import { signatureAlgorithmFor } from './signature-algorithm.js';
import type { CertificateRecord, CertificateRepository } from './types.js';

/** Issued certificates start this long in the past, for relying parties whose clocks lag. */
export const BACKDATE_MS = 5 * 60_000;
const SERIAL_ATTEMPTS = 3;

/** 16 random bytes, positive, first octet non-zero: always 16 octets of INTEGER content (RFC 5280 §4.1.2.2). */
export function randomSerial(): Buffer {
  const s = randomBytes(16);
  s[0] &= 0x7f;
  if (s[0] === 0) s[0] = 0x01;
  return s;
}

/** Signs a TBSCertificate with `signer` (its algorithm decides the signature algorithm). Returns the certificate DER. */
export async function signCertificate(signer: Signer, spec: Omit<TbsSpec, 'signatureAlgorithm'>): Promise<Buffer> {
  const alg = signatureAlgorithmFor(signer.algorithm);
  const tbs = encodeTbsCertificate({ ...spec, signatureAlgorithm: alg.identifier });
  const signature = await signer.sign(tbs, alg.signOptions);
  return assembleCertificate(tbs, alg.identifier, signature);
}

export interface SubjectContent {
  /** DER of the subject Name. */
  name: Buffer;
  commonName: string;
  employeeId?: string;
  departmentId?: string;
  titleLevel?: string;
  san?: { dnsNames: string[]; ipAddresses: string[]; emails: string[] };
}

export interface IssueOrder {
  ca: LoadedCa;
  profile: Profile;
  subject: SubjectContent;
  publicKeyInfo: Buffer;
  keyAlgorithm: KeyAlgorithm;
  /** Custom extensions (typed values) or extensions copied from a renewed certificate. */
  extra: CertificateExtension[];
  validityDays: number;
  keyOrigin: CertificateRecord['keyOrigin'];
  keyRef?: string;
  renewedFrom?: string;
  /** 'app:<id>', 'cli:init' … */
  actor: string;
}

/** The extensions a profile gives a certificate of `ca` for this key, before any extra ones. */
export function profileExtensions(order: Pick<IssueOrder, 'ca' | 'profile' | 'publicKeyInfo' | 'keyAlgorithm' | 'subject'>, publicBaseUrl: string): CertificateExtension[] {
  const { ca, profile } = order;
  const urls = distributionUrls(publicBaseUrl, ca.record.id);
  const usages: KeyUsageName[] = [...profile.keyUsage, ...(order.keyAlgorithm.startsWith('rsa') ? profile.rsaExtraKeyUsage : [])];
  const exts: CertificateExtension[] = [
    { kind: 'basicConstraints', ca: false },
    { kind: 'keyUsage', usages: [...new Set(usages)] },
  ];
  if (profile.extKeyUsage.length) exts.push({ kind: 'extKeyUsage', purposes: profile.extKeyUsage, critical: profile.extKeyUsageCritical });
  exts.push({ kind: 'subjectKeyIdentifier', keyIdentifier: keyIdentifier(order.publicKeyInfo) });
  if (ca.info.subjectKeyIdentifier) exts.push({ kind: 'authorityKeyIdentifier', keyIdentifier: ca.info.subjectKeyIdentifier });
  if (order.subject.san) exts.push({ kind: 'subjectAltName', ...order.subject.san });
  if (profile.policies.length) exts.push({ kind: 'certificatePolicies', policies: profile.policies });
  if (profile.crlDistributionPoint) exts.push({ kind: 'crlDistributionPoints', urls: [urls.crl] });
  if (profile.authorityInfoAccess) exts.push({ kind: 'authorityInfoAccess', ocsp: [urls.ocsp], caIssuers: [urls.caIssuers] });
  if (profile.ocspNoCheck) exts.push({ kind: 'ocspNoCheck' });
  return exts;
}

export interface Issued {
  record: CertificateRecord;
  der: Buffer;
  certificatePem: string;
}

export interface Issuer {
  /**
   * Signs and stores one certificate. `store` does the durable write (default: insert); it is
   * called again with a new serial when the serial is taken (CERT_EXISTS).
   */
  issue(order: IssueOrder, store?: (record: CertificateRecord, audit: AuditEntry) => Promise<CertificateRecord>): Promise<Issued>;
}

export function createIssuer(deps: { certs: CertificateRepository; publicBaseUrl: string; clock?: () => number }): Issuer {
  const clock = deps.clock ?? Date.now;
  return {
    async issue(order, store) {
      const { ca, profile } = order;
      const signer = await ca.signer();
      const now = clock();
      // Within the CA's own validity (RFC 5280 §6.1.3 checks each certificate at validation time;
      // a leaf outliving its issuer would be refused then).
      const caFrom = ca.info.notBefore.getTime();
      const caUntil = ca.info.notAfter.getTime();
      const notBefore = new Date(Math.max(now - BACKDATE_MS, caFrom));
      notBefore.setUTCMilliseconds(0);
      const notAfter = new Date(Math.min(now + order.validityDays * 86_400_000, caUntil));
      notAfter.setUTCMilliseconds(0);
      const extensions = [...profileExtensions(order, deps.publicBaseUrl), ...order.extra];
      const subject = nameToString(order.subject.name);
      for (let attempt = 1; ; attempt++) {
        const serialBytes = randomSerial();
        const der = await signCertificate(signer, {
          serial: serialBytes,
          issuer: ca.info.subjectDer,
          subject: order.subject.name,
          notBefore,
          notAfter,
          subjectPublicKeyInfo: order.publicKeyInfo,
          extensions,
        });
        const serial = serialBytes.toString('hex');
        const at = nowIso();
        const record: CertificateRecord = {
          serial,
          id: newId(),
          caId: ca.record.id,
          hierarchy: ca.record.hierarchy,
          profile: profile.name,
          subject,
          commonName: order.subject.commonName,
          ...(order.subject.employeeId !== undefined ? { employeeId: order.subject.employeeId } : {}),
          ...(order.subject.departmentId !== undefined ? { departmentId: order.subject.departmentId } : {}),
          ...(order.subject.titleLevel !== undefined ? { titleLevel: order.subject.titleLevel } : {}),
          keyAlgorithm: order.keyAlgorithm,
          keyOrigin: order.keyOrigin,
          ...(order.keyRef !== undefined ? { keyRef: order.keyRef } : {}),
          publicKeyInfo: order.publicKeyInfo.toString('base64'),
          notBefore: notBefore.toISOString(),
          notAfter: notAfter.toISOString(),
          status: 'good',
          certificate: der.toString('base64'),
          issuedAt: at,
          issuedBy: order.actor,
          ...(order.renewedFrom !== undefined ? { renewedFrom: order.renewedFrom } : {}),
          updatedAt: at,
        };
        const audit: AuditEntry = {
          actor: order.actor,
          action: order.renewedFrom !== undefined ? 'cert.renew' : 'cert.issue',
          target: serial,
          outcome: 'ok',
          detail: {
            profile: profile.name,
            caId: ca.record.id,
            subject,
            keyAlgorithm: order.keyAlgorithm,
            keyOrigin: order.keyOrigin,
            notAfter: record.notAfter,
            ...(order.renewedFrom !== undefined ? { renewedFrom: order.renewedFrom } : {}),
          },
        };
        try {
          const stored = store ? await store(record, audit) : await deps.certs.insert(record, { audit });
          return { record: stored, der, certificatePem: toPem('CERTIFICATE', der) };
        } catch (e) {
          if (!(isYiqianError(e) && e.code === CERT_EXISTS) || attempt >= SERIAL_ATTEMPTS) throw e;
        }
      }
    },
  };
}
