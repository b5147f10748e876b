// One CRL per CA (RFC 5280 §5): the issuing CAs list the certificates they issued that are
// revoked or suspended (certificateHold), the roots list the issuing-CA certificates they
// revoked (normally none). A CRL is re-signed on every status change of a certificate of its CA
// (RevocationService calls publish before it returns) and on a schedule before nextUpdate: a
// timer re-signs every CRL with less than half of its validity left (pki.crlValidityHours,
// default 24 h), and retries a publication that failed (HSM down) on its next tick.
//
// CRL numbers come from CaRepository.nextCrlNumber, which is durable before it resolves, so
// they strictly increase across restarts (a number may be skipped by a crash between taking it
// and storing the CRL — allowed, §5.2.3 asks for increasing, not contiguous). The latest DER of
// each CA is kept durably in meta `pki.crl.<caId>` so that a restart serves the same CRL
// rather than signing a new one, and publications of one CA are serialised so that a newer
// CRL is never overwritten by an older one.
import type { AuditLog } from '../audit/audit-log.js';
import { buildCrl, type CrlEntry } from '../asn1/crl.js';
import type { KeyCustody, Signer } from '../crypto/interfaces.js';
import { log as rootLog, type Logger } from '../log.js';
import type { MetaRepository } from '../store/meta-repository.js';
import { REVOCATION_REASON_CODES, type CaId, type CaRecord, type CaRepository, type CertificateRecord, type CertificateRepository } from './types.js';

export const CRL_META_PREFIX = 'pki.crl.';
export const DEFAULT_CRL_VALIDITY_HOURS = 24;

export interface PublishedCrl {
  caId: CaId;
  der: Buffer;
  /** Decimal. */
  crlNumber: string;
  thisUpdate: Date;
  nextUpdate: Date;
  /** Number of revokedCertificates entries. */
  entries: number;
}

interface StoredCrl {
  der: string;
  crlNumber: string;
  thisUpdate: string;
  nextUpdate: string;
  entries: number;
}

export interface CrlPublisherDeps {
  cas: Pick<CaRepository, 'get' | 'list' | 'nextCrlNumber'>;
  certs: Pick<CertificateRepository, 'revokedBy'>;
  meta: Pick<MetaRepository, 'get' | 'set'>;
  custody: Pick<KeyCustody, 'signer'>;
  audit?: Pick<AuditLog, 'append'>;
  /** Hours between thisUpdate and nextUpdate; default 24. */
  validityHours?: number;
  clock?: () => Date;
  log?: Logger;
}

/** The CRL entry of a revoked or suspended certificate (suspended → certificateHold). */
export function crlEntryOf(r: CertificateRecord): CrlEntry {
  const reason = r.status === 'suspended' ? 'certificateHold' : (r.revocation?.reason ?? 'unspecified');
  return { serial: r.serial, revocationDate: new Date(r.revocation?.time ?? r.updatedAt), reasonCode: REVOCATION_REASON_CODES[reason] };
}

export class CrlPublisher {
  private readonly latest = new Map<CaId, PublishedCrl>();
  private readonly queues = new Map<CaId, Promise<unknown>>();
  /** CAs whose last publication failed: the next tick retries them. */
  private readonly dirty = new Set<CaId>();
  private readonly signers = new Map<string, Promise<Signer>>();
  private readonly validityMs: number;
  private readonly clock: () => Date;
  private readonly log: Logger;
  private timer?: NodeJS.Timeout;
  private ticking?: Promise<unknown>;

  constructor(private readonly deps: CrlPublisherDeps) {
    const hours = deps.validityHours ?? DEFAULT_CRL_VALIDITY_HOURS;
    if (!(hours > 0)) throw new RangeError('CRL validity must be positive');
    this.validityMs = hours * 3_600_000;
    this.clock = deps.clock ?? (() => new Date());
    this.log = deps.log ?? rootLog;
  }

  /** The CRL currently served for `caId` (memory, else the stored one, else signed now); undefined for an unknown CA. */
  async current(caId: CaId): Promise<PublishedCrl | undefined> {
    const mem = this.latest.get(caId);
    if (mem) return mem;
    const stored = await this.loadStored(caId);
    if (stored) return stored;
    if (!(await this.deps.cas.get(caId))) return undefined;
    return this.publish(caId, 'first request');
  }

  /**
   * Signs and stores a new CRL for `caId` with the next CRL number. Calls for one CA run one
   * after the other, each reading the revocations afresh, so the last one reflects every
   * change that completed before it was called.
   */
  publish(caId: CaId, cause: string): Promise<PublishedCrl> {
    const prev = this.queues.get(caId) ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(() => this.sign(caId, cause));
    const tail = run.catch(() => undefined);
    this.queues.set(caId, tail);
    void tail.then(() => {
      if (this.queues.get(caId) === tail) this.queues.delete(caId);
    });
    return run;
  }

  /** Publishes every CA whose CRL is missing, failed last time, or has less than half its validity left. */
  async refreshDue(): Promise<PublishedCrl[]> {
    const now = this.clock().getTime();
    const out: PublishedCrl[] = [];
    for (const ca of await this.deps.cas.list()) {
      const cur = this.latest.get(ca.id) ?? (await this.loadStored(ca.id));
      const due =
        this.dirty.has(ca.id) ||
        !cur ||
        cur.nextUpdate.getTime() - now < (cur.nextUpdate.getTime() - cur.thisUpdate.getTime()) / 2;
      if (!due) continue;
      try {
        out.push(await this.publish(ca.id, cur ? (this.dirty.has(ca.id) ? 'retry' : 'schedule') : 'initial'));
      } catch (e) {
        this.log.error({ err: e, caId: ca.id }, 'CRL re-signing failed; retrying on the next tick');
      }
    }
    return out;
  }

  /** Remembers that `caId` needs a new CRL (a publication failed); the timer retries it. */
  markDirty(caId: CaId): void {
    this.dirty.add(caId);
  }

  /** Starts the re-signing timer (checks are cheap; signing happens only when due). */
  start(intervalMs = Math.min(60_000, this.validityMs / 8)): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.ticking) return;
      this.ticking = this.refreshDue()
        .catch((e: unknown) => this.log.error({ err: e }, 'CRL schedule failed'))
        .finally(() => (this.ticking = undefined));
    }, intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and waits for publications in progress (call before the store closes). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking;
    await Promise.all([...this.queues.values()]);
  }

  private async loadStored(caId: CaId): Promise<PublishedCrl | undefined> {
    const s = await this.deps.meta.get<StoredCrl>(CRL_META_PREFIX + caId);
    if (!s) return undefined;
    const crl: PublishedCrl = {
      caId,
      der: Buffer.from(s.der, 'base64'),
      crlNumber: s.crlNumber,
      thisUpdate: new Date(s.thisUpdate),
      nextUpdate: new Date(s.nextUpdate),
      entries: s.entries,
    };
    if (!this.latest.has(caId)) this.latest.set(caId, crl);
    return this.latest.get(caId);
  }

  private signerFor(ca: CaRecord): Promise<Signer> {
    let s = this.signers.get(ca.keyUri);
    if (!s) {
      s = this.deps.custody.signer(ca.keyUri);
      this.signers.set(ca.keyUri, s);
      s.catch(() => this.signers.delete(ca.keyUri));
    }
    return s;
  }

  private async sign(caId: CaId, cause: string): Promise<PublishedCrl> {
    try {
      const ca = await this.deps.cas.get(caId);
      if (!ca) throw new Error(`no CA ${caId}`);
      const [signer, revoked] = await Promise.all([this.signerFor(ca), this.deps.certs.revokedBy(caId)]);
      const entries = revoked.filter((r) => r.status === 'revoked' || r.status === 'suspended').map(crlEntryOf);
      // The number is taken only once everything else is ready, so a failure above costs none.
      const crlNumber = await this.deps.cas.nextCrlNumber(caId);
      const thisUpdate = new Date(Math.floor(this.clock().getTime() / 1000) * 1000);
      const nextUpdate = new Date(thisUpdate.getTime() + this.validityMs);
      const der = await buildCrl({ issuerCertificate: Buffer.from(ca.certificate, 'base64'), signer, thisUpdate, nextUpdate, crlNumber, entries });
      const stored: StoredCrl = { der: der.toString('base64'), crlNumber, thisUpdate: thisUpdate.toISOString(), nextUpdate: nextUpdate.toISOString(), entries: entries.length };
      await this.deps.meta.set(CRL_META_PREFIX + caId, stored);
      const crl: PublishedCrl = { caId, der, crlNumber, thisUpdate, nextUpdate, entries: entries.length };
      this.latest.set(caId, crl);
      this.dirty.delete(caId);
      await this.deps.audit
        ?.append({ actor: 'system', action: 'pki.crl.publish', target: caId, outcome: 'ok', detail: { crlNumber, entries: entries.length, nextUpdate: stored.nextUpdate, cause } })
        .catch((e: unknown) => this.log.warn({ err: e, caId }, 'audit of CRL publication failed'));
      this.log.info({ caId, crlNumber, entries: entries.length, cause }, 'CRL published');
      return crl;
    } catch (e) {
      this.dirty.add(caId);
      this.signers.clear();
      throw e;
    }
  }
}
