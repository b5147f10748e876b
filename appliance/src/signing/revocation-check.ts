// Revocation status of a certificate path for the verification report (issue 4 item 3, GB/T
// 38629 verify level 2). The path is leaf first, trust anchor last (pki/path-validation.ts);
// every certificate but the anchor is checked, and its issuer is the next one on the path.
//
// Where the status comes from:
//   - issuer is one of OUR CAs → our CertificateRepository record (source 'appliance-ca'): the
//     same facts our CRL and OCSP responder publish, without a network round trip; a suspended
//     certificate is revoked with reason certificateHold (RFC 5280 §5.3.1). Our own issuing-CA
//     certificates (the root's children) are never revoked here: good.
//   - issuer is an imported CA with an ocspUrl → OCSP (source 'ocsp', ocsp-client.ts); when the
//     responder fails and a CRL is held, the CRL answers and the detail says why.
//   - issuer is an imported CA otherwise → its CRL held in the trust store (source 'crl'); no
//     CRL, or a CRL past its nextUpdate now → 'unknown' with the reason (RFC 5280 §6.3.3 (a)).
//
// Judged at `at` (the signing or time-stamp time; RFC 5280 §6.3, ETSI EN 319 102-1 §5.2.6:
// the status at that time): revoked with a revocation time ≤ at → 'revoked'; revoked after
// `at` → 'good' at `at`, with revokedAt and reason still reported. ok = every entry 'good'.
import { readCertificate, type CertificateInfo } from '../asn1/certificate.js';
import { parseCrl } from '../asn1/crl.js';
import { nameToString } from '../asn1/name.js';
import { log as rootLog, type Logger } from '../log.js';
import { REVOCATION_REASON_CODES, type CertificateRepository, type RevocationReason } from '../pki/types.js';
import { OcspClientError, type OcspClient } from './ocsp-client.js';
import type { KnownCa, TrustStoreService, TrustedCaRecord } from './trust-store.js';
import type { CertificateRevocation, RevocationChecker, RevocationReport } from './types.js';

const REASON_NAMES = new Map<number, RevocationReason>(Object.entries(REVOCATION_REASON_CODES).map(([k, v]) => [v, k as RevocationReason]));

/** RFC 5280 §5.3.1 name of a CRLReason code. */
export function reasonName(code: number | undefined): string {
  return code === undefined ? 'unspecified' : (REASON_NAMES.get(code) ?? `reason ${code}`);
}

export interface RevocationCheckerDeps {
  trust: Pick<TrustStoreService, 'findCa'>;
  certs: Pick<CertificateRepository, 'get'>;
  ocsp: OcspClient;
  clock?: () => Date;
  log?: Logger;
}

function subjectOf(info: CertificateInfo): string {
  try {
    return nameToString(info.subjectDer);
  } catch {
    return `#${info.subjectDer.toString('hex')}`;
  }
}

/** The entry for a certificate revoked (or on hold) at `revokedAt`, judged at `at`. */
function judged(base: CertificateRevocation, source: CertificateRevocation['source'], revokedAt: Date, reason: string, at: Date, detail?: string): CertificateRevocation {
  const before = revokedAt.getTime() <= at.getTime();
  return {
    ...base,
    status: before ? 'revoked' : 'good',
    source,
    revokedAt: revokedAt.toISOString(),
    reason,
    ...(before ? (detail ? { detail } : {}) : { detail: `${detail ? `${detail}; ` : ''}revoked at ${revokedAt.toISOString()}, after the time judged at (${at.toISOString()})` }),
  };
}

export function createRevocationChecker(deps: RevocationCheckerDeps): RevocationChecker {
  const clock = deps.clock ?? (() => new Date());
  const log = deps.log ?? rootLog;

  async function fromAppliance(base: CertificateRevocation, der: Buffer, info: CertificateInfo, issuer: Extract<KnownCa, { source: 'appliance' }>, at: Date): Promise<CertificateRevocation> {
    const rec = await deps.certs.get(info.serial);
    if (!rec || rec.certificate !== der.toString('base64')) {
      // Our issuing CAs are certificates of our roots without a record: never revoked.
      const ownCa = issuer.record.role === 'root' && (await deps.trust.findCa(der))?.source === 'appliance';
      if (ownCa) return { ...base, status: 'good', source: 'appliance-ca', detail: "one of the appliance's own CAs" };
      return { ...base, status: 'unknown', source: 'appliance-ca', detail: `no record of this certificate at the appliance's CA ${issuer.record.id}` };
    }
    if (rec.status === 'good' || !rec.revocation) return { ...base, status: 'good', source: 'appliance-ca' };
    const reason = rec.status === 'suspended' ? 'certificateHold' : rec.revocation.reason;
    return judged(base, 'appliance-ca', new Date(rec.revocation.time), reason, at, rec.status === 'suspended' ? 'suspended (certificateHold)' : undefined);
  }

  function fromCrl(base: CertificateRevocation, info: CertificateInfo, ca: TrustedCaRecord, at: Date, prefix?: string): CertificateRevocation {
    const unknown = (detail: string): CertificateRevocation => ({ ...base, status: 'unknown', source: 'crl', detail: prefix ? `${prefix}; ${detail}` : detail });
    if (!ca.crl) return unknown('no CRL is held for the issuing CA (upload one or configure crlUrl)');
    const now = clock();
    if (ca.crl.nextUpdate && Date.parse(ca.crl.nextUpdate) < now.getTime()) return unknown(`the CRL held expired at ${ca.crl.nextUpdate} (nextUpdate); a newer one is needed`);
    let entry;
    try {
      entry = parseCrl(Buffer.from(ca.crl.der, 'base64')).entries.find((e) => e.serial === info.serial);
    } catch (e) {
      return unknown(`the CRL held is unreadable: ${(e as Error).message}`);
    }
    const crlNote = `CRL ${ca.crl.crlNumber ?? ''} of ${ca.crl.thisUpdate}`.replace('  ', ' ');
    const detail = prefix ? `${prefix}; ${crlNote}` : undefined;
    // removeFromCRL (8) only appears on delta CRLs, which are refused at import; treat as not listed.
    if (!entry || entry.reasonCode === 8) return { ...base, status: 'good', source: 'crl', ...(detail ? { detail } : {}) };
    return judged(base, 'crl', entry.revocationDate, reasonName(entry.reasonCode), at, detail);
  }

  async function fromImported(base: CertificateRevocation, der: Buffer, info: CertificateInfo, issuer: Extract<KnownCa, { source: 'imported' }>, at: Date): Promise<CertificateRevocation> {
    const ca = issuer.record;
    if (!ca.ocspUrl) return fromCrl(base, info, ca, at);
    try {
      const a = await deps.ocsp.query(der, issuer.der, ca.ocspUrl);
      if (a.status === 'good') return { ...base, status: 'good', source: 'ocsp' };
      if (a.status === 'unknown') return { ...base, status: 'unknown', source: 'ocsp', detail: 'the OCSP responder does not know this certificate' };
      return judged(base, 'ocsp', a.revocationTime ?? a.thisUpdate, reasonName(a.reasonCode), at);
    } catch (e) {
      const why = e instanceof OcspClientError ? `${e.code}: ${e.message}` : `OCSP failed: ${(e as Error).message}`;
      log.warn({ url: ca.ocspUrl, serial: info.serial, reason: why }, 'OCSP check failed');
      if (ca.crl) return fromCrl(base, info, ca, at, `OCSP failed (${why}), answered from the CRL`);
      return { ...base, status: 'unknown', source: 'ocsp', detail: why };
    }
  }

  return {
    async check(path, at): Promise<RevocationReport> {
      const certificates: CertificateRevocation[] = [];
      for (let i = 0; i < path.length - 1; i++) {
        const der = path[i];
        let info: CertificateInfo;
        try {
          info = readCertificate(der);
        } catch (e) {
          certificates.push({ serial: '', subject: '', status: 'unknown', detail: `not a certificate: ${(e as Error).message}` });
          continue;
        }
        const base: CertificateRevocation = { serial: info.serial, subject: subjectOf(info), status: 'unknown' };
        const issuer = await deps.trust.findCa(path[i + 1]);
        if (!issuer) {
          certificates.push({ ...base, detail: 'the issuer is not in the trust store' });
          continue;
        }
        try {
          certificates.push(issuer.source === 'appliance' ? await fromAppliance(base, der, info, issuer, at) : await fromImported(base, der, info, issuer, at));
        } catch (e) {
          log.error({ err: e, serial: info.serial }, 'revocation check failed');
          certificates.push({ ...base, detail: `revocation check failed: ${(e as Error).message}` });
        }
      }
      return { ok: certificates.every((c) => c.status === 'good'), certificates };
    },
  };
}
