// Revocation, suspension (certificateHold, 挂失) and resumption of certificates.
//
//   good ──revoke(reason)──▶ revoked (final)
//   good ──suspend────────▶ suspended ──resume──▶ good
//                           suspended ──revoke(reason)──▶ revoked
//
// Each change is one atomic, durable CertificateRepository.update carrying its audit entry
// (nothing is written when the change is refused). Before the call returns, the CRL of the
// certificate's CA is re-signed (CrlPublisher.publish) and the OCSP pre-signed responses for
// the serial are replaced (OcspResponder.statusChanged), so the very next CRL download or OCSP
// request shows the change. If re-signing fails (HSM away) the change stands — it is durable
// and audited — the CA is marked for the CRL timer to retry, and the result says
// `crl.published: false`; OCSP never serves a stale pre-signed response because its cache
// entry was dropped before re-signing was attempted.
import { normaliseSerialHex } from '../asn1/crl.js';
import { Codes, YiqianError, fail } from '../errors.js';
import { log as rootLog, type Logger } from '../log.js';
import type { CrlPublisher } from './crl-publisher.js';
import type { OcspResponder } from './ocsp-responder.js';
import { REVOCATION_REASON_CODES, type CaId, type CertificateRecord, type CertificateRepository, type RevocationReason } from './types.js';

export const RevocationCodes = {
  CERT_NOT_FOUND: 'CERT_NOT_FOUND',
  CERT_ALREADY_REVOKED: 'CERT_ALREADY_REVOKED',
  CERT_NOT_SUSPENDED: 'CERT_NOT_SUSPENDED',
  CERT_SUSPENDED: 'CERT_SUSPENDED',
  INVALID_REVOCATION_REASON: 'INVALID_REVOCATION_REASON',
  /** Same code as issuance uses for a malformed serial. */
  SERIAL_INVALID: 'SERIAL_INVALID',
} as const;

/** Reasons accepted by revoke(): RFC 5280 §5.3.1 without certificateHold (use suspend) and removeFromCRL (delta CRLs only). */
export const REVOKE_REASONS: readonly RevocationReason[] = (Object.keys(REVOCATION_REASON_CODES) as RevocationReason[]).filter(
  (r) => r !== 'certificateHold' && r !== 'removeFromCRL',
);

export interface RevocationResult {
  certificate: CertificateRecord;
  crl: { caId: CaId; published: boolean; crlNumber?: string };
}

export interface RevocationDeps {
  certs: Pick<CertificateRepository, 'update'>;
  crls: Pick<CrlPublisher, 'publish' | 'markDirty'>;
  ocsp: Pick<OcspResponder, 'statusChanged'>;
  clock?: () => Date;
  log?: Logger;
}

/** Lower-case hex without leading zero bytes, as CertificateRecord.serial (colons allowed); SERIAL_INVALID otherwise. */
export function normaliseSerial(input: unknown): string {
  const s = typeof input === 'string' ? input.trim().replace(/:/g, '') : '';
  const serial = /^[0-9a-fA-F]{1,80}$/.test(s) ? normaliseSerialHex(s) : '';
  // RFC 5280 §4.1.2.2: at most 20 octets.
  if (serial === '' || serial.length > 40) {
    fail(RevocationCodes.SERIAL_INVALID, 400, '证书序列号必须是不超过 20 字节的十六进制数', 'certificate serial must be hexadecimal, at most 20 bytes', { serial: String(input).slice(0, 80) });
  }
  return serial;
}

/** A reason name accepted by revoke(); INVALID_REVOCATION_REASON otherwise. */
export function parseRevocationReason(input: unknown): RevocationReason {
  if (input === 'certificateHold') {
    fail(RevocationCodes.INVALID_REVOCATION_REASON, 400, '挂失请使用 suspend 接口，不能以 certificateHold 吊销', 'certificateHold is not a revocation reason here: use suspend', {
      reason: input,
      allowed: REVOKE_REASONS,
    });
  }
  if (typeof input !== 'string' || !REVOKE_REASONS.includes(input as RevocationReason)) {
    fail(RevocationCodes.INVALID_REVOCATION_REASON, 400, '吊销原因无效（须为 RFC 5280 CRLReason 名称）', 'invalid revocation reason (an RFC 5280 CRLReason name is required)', {
      reason: typeof input === 'string' ? input.slice(0, 64) : input === undefined ? null : typeof input,
      allowed: REVOKE_REASONS,
    });
  }
  return input as RevocationReason;
}

function notFound(serial: string): never {
  fail(RevocationCodes.CERT_NOT_FOUND, 404, `证书 ${serial} 不存在`, `no certificate with serial ${serial}`, { serial });
}

export class RevocationService {
  private readonly clock: () => Date;
  private readonly log: Logger;

  constructor(private readonly deps: RevocationDeps) {
    this.clock = deps.clock ?? (() => new Date());
    this.log = deps.log ?? rootLog;
  }

  /** Revokes for good (from good or suspended). */
  async revoke(serialInput: string, reasonInput: unknown, actor: string): Promise<RevocationResult> {
    const serial = normaliseSerial(serialInput);
    const reason = parseRevocationReason(reasonInput);
    const now = this.clock().toISOString();
    let from: CertificateRecord['status'] = 'good';
    const updated = await this.deps.certs.update(
      serial,
      (cur) => {
        if (!cur) notFound(serial);
        if (cur.status === 'revoked') {
          fail(RevocationCodes.CERT_ALREADY_REVOKED, 409, `证书 ${serial} 已被吊销`, `certificate ${serial} is already revoked`, {
            serial,
            revocation: cur.revocation,
          });
        }
        from = cur.status;
        return { ...cur, status: 'revoked', revocation: { time: now, reason, by: actor }, updatedAt: now };
      },
      { audit: { actor, action: 'cert.revoke', target: serial, outcome: 'ok', detail: { reason, reasonCode: REVOCATION_REASON_CODES[reason] } } },
    );
    return this.afterChange(updated, `revoke (${reason}) from ${from}`);
  }

  /** Suspends (certificateHold, 挂失): revoked with reason certificateHold until resumed. */
  async suspend(serialInput: string, actor: string): Promise<RevocationResult> {
    const serial = normaliseSerial(serialInput);
    const now = this.clock().toISOString();
    const updated = await this.deps.certs.update(
      serial,
      (cur) => {
        if (!cur) notFound(serial);
        if (cur.status === 'revoked') {
          fail(RevocationCodes.CERT_ALREADY_REVOKED, 409, `证书 ${serial} 已被吊销，不能挂失`, `certificate ${serial} is revoked and cannot be suspended`, { serial });
        }
        if (cur.status === 'suspended') {
          fail(RevocationCodes.CERT_SUSPENDED, 409, `证书 ${serial} 已挂失`, `certificate ${serial} is already suspended`, { serial, revocation: cur.revocation });
        }
        return { ...cur, status: 'suspended', revocation: { time: now, reason: 'certificateHold', by: actor }, updatedAt: now };
      },
      { audit: { actor, action: 'cert.suspend', target: serial, outcome: 'ok', detail: { reason: 'certificateHold', reasonCode: 6 } } },
    );
    return this.afterChange(updated, 'suspend');
  }

  /** Resumes a suspended certificate (RFC 5280 §5.3.1: removed from the next CRL). */
  async resume(serialInput: string, actor: string): Promise<RevocationResult> {
    const serial = normaliseSerial(serialInput);
    const now = this.clock().toISOString();
    let heldSince: string | undefined;
    const updated = await this.deps.certs.update(
      serial,
      (cur) => {
        if (!cur) notFound(serial);
        if (cur.status !== 'suspended') {
          fail(RevocationCodes.CERT_NOT_SUSPENDED, 409, `证书 ${serial} 未挂失，不能恢复`, `certificate ${serial} is not suspended (status ${cur.status})`, {
            serial,
            status: cur.status,
          });
        }
        heldSince = cur.revocation?.time;
        const { revocation: _dropped, ...rest } = cur;
        return { ...rest, status: 'good', updatedAt: now };
      },
      { audit: { actor, action: 'cert.resume', target: serial, outcome: 'ok' } },
    );
    this.log.debug({ serial, heldSince }, 'certificate resumed');
    return this.afterChange(updated, 'resume');
  }

  private async afterChange(record: CertificateRecord, cause: string): Promise<RevocationResult> {
    const [crl] = await Promise.allSettled([
      this.deps.crls.publish(record.caId, `${cause} of ${record.serial}`),
      this.deps.ocsp.statusChanged(record).catch((e: unknown) => {
        // The stale entry is gone already; the next request signs afresh.
        this.log.error({ err: e, serial: record.serial }, 'OCSP re-signing after a status change failed');
      }),
    ]);
    if (crl.status === 'fulfilled') return { certificate: record, crl: { caId: record.caId, published: true, crlNumber: crl.value.crlNumber } };
    this.deps.crls.markDirty(record.caId);
    const reason = crl.reason instanceof YiqianError ? crl.reason.code : Codes.INTERNAL;
    this.log.error({ err: crl.reason, caId: record.caId, serial: record.serial, reason }, 'CRL re-signing after a status change failed; the timer retries');
    return { certificate: record, crl: { caId: record.caId, published: false } };
  }
}
