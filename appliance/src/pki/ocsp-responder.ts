// OCSP responder (RFC 6960), in cfssl's manner: a request without a nonce is answered by a
// lookup of a response that was signed when the status was last determined, kept in memory per
// (CA, CertID hash algorithm, serial); a request with a nonce is signed fresh (the nonce is
// echoed, RFC 9654). Pre-signed responses are re-signed when the certificate's status changes
// (statusChanged, called by RevocationService before it returns — so a revocation is visible
// in the very next response) and lazily once less than half of their validity
// (pki.ocspValidityHours) is left, so nothing older than that half is ever served.
//
// Which CA a CertID names: its issuerNameHash / issuerKeyHash are compared with the hashes of
// every CA certificate (issuing CAs and roots). An issuing CA's responses are signed by the
// hierarchy's delegated responder (profile 'ocsp': id-kp-OCSPSigning, ocsp-nocheck, issued by
// that issuing CA, RFC 6960 §4.2.2.2), whose certificate is included in `certs`. A root has no
// delegated responder: the status of an issuing-CA certificate is signed by the root key itself
// (also allowed by §4.2.2.2). Issuer not one of ours → unauthorized; a serial we never issued
// under that CA → unknown; all CertIDs of one request must name the same CA.
import { randomUUID } from 'node:crypto';
import { certificateIdentity } from '../asn1/crl.js';
import {
  CERT_ID_HASH_OIDS,
  OcspMalformedError,
  buildOcspResponse,
  encodeCertIdFields,
  hashOf,
  ocspErrorResponse,
  parseOcspRequest,
  responderKeyHash,
  type CertIdHash,
  type OcspCertId,
  type OcspResponseStatusName,
  type SingleStatus,
} from '../asn1/ocsp.js';
import type { KeyCustody, Signer } from '../crypto/interfaces.js';
import { log as rootLog, type Logger } from '../log.js';
import { REVOCATION_REASON_CODES, type CaId, type CaRecord, type CaRepository, type CertificateRecord, type CertificateRepository } from './types.js';

export const DEFAULT_OCSP_VALIDITY_HOURS = 24;
const DEFAULT_CACHE_ENTRIES = 100_000;
/** How long a resolved responder (key + certificate) is trusted before it is looked up again. */
const RESPONDER_TTL_MS = 10 * 60_000;
/** RFC 9654 §2.1: a nonce of 0 or more than 128 octets is refused with malformedRequest. */
const MAX_NONCE = 128;

export interface OcspResponderDeps {
  cas: Pick<CaRepository, 'list'>;
  certs: Pick<CertificateRepository, 'get' | 'query'>;
  custody: Pick<KeyCustody, 'signer'>;
  /** Hours between thisUpdate and nextUpdate of a response; default 24. */
  validityHours?: number;
  /** Pre-signed responses kept in memory; default 100 000 (least recently used go first). */
  cacheEntries?: number;
  /** Most CertIDs in one request; default 16. */
  maxRequests?: number;
  clock?: () => Date;
  log?: Logger;
}

export interface OcspAnswer {
  /** DER of the OCSPResponse. */
  der: Buffer;
  status: OcspResponseStatusName;
  /** For a successful answer: validity of the (earliest expiring) single response. */
  thisUpdate?: Date;
  nextUpdate?: Date;
  producedAt?: Date;
  /** The request carried a nonce (the answer is unique to it and must not be cached by HTTP). */
  nonce: boolean;
  /** Served from the pre-signed cache. */
  fromCache: boolean;
  /** Every single response is good or revoked (an 'unknown' answer is not worth caching by HTTP). */
  definite: boolean;
}

interface CaEntry {
  record: CaRecord;
  certificate: Buffer;
  notAfter: Date;
}

interface Responder {
  signer: Signer;
  keyHash: Buffer;
  certs: Buffer[];
  /** The responder may not vouch past its own certificate. */
  notAfter: Date;
  resolvedAt: number;
  delegated: boolean;
}

interface Presigned {
  der: Buffer;
  thisUpdate: Date;
  nextUpdate: Date;
  producedAt: Date;
  /** Re-sign instead of serving once this passes (half the validity). */
  staleAt: number;
  definite: boolean;
}

/** The OCSP single status of a certificate record (suspended → revoked with certificateHold). */
export function singleStatusOf(r: CertificateRecord): SingleStatus {
  if (r.status === 'good') return { status: 'good' };
  const reason = r.status === 'suspended' ? 'certificateHold' : (r.revocation?.reason ?? 'unspecified');
  const code = REVOCATION_REASON_CODES[reason];
  return { status: 'revoked', revocationTime: new Date(r.revocation?.time ?? r.updatedAt), ...(code === 0 ? {} : { reasonCode: code }) };
}

export class OcspResponder {
  private readonly validityMs: number;
  private readonly maxEntries: number;
  private readonly clock: () => Date;
  private readonly log: Logger;
  /** `${hashOid}|${nameHash}|${keyHash}` → CA. */
  private index?: Map<string, CaEntry>;
  private indexAt = 0;
  private indexing?: Promise<Map<string, CaEntry>>;
  private readonly responders = new Map<CaId, Promise<Responder>>();
  private readonly cache = new Map<string, Presigned>();
  private readonly keysBySerial = new Map<string, Set<string>>();
  /** Bumped on every status change of a serial: a signing that started before it is not cached. */
  private readonly generation = new Map<string, number>();
  private readonly inFlight = new Map<string, { gen: number; p: Promise<Presigned> }>();

  constructor(private readonly deps: OcspResponderDeps) {
    const hours = deps.validityHours ?? DEFAULT_OCSP_VALIDITY_HOURS;
    if (!(hours > 0)) throw new RangeError('OCSP validity must be positive');
    this.validityMs = hours * 3_600_000;
    this.maxEntries = deps.cacheEntries ?? DEFAULT_CACHE_ENTRIES;
    this.clock = deps.clock ?? (() => new Date());
    this.log = deps.log ?? rootLog;
  }

  /** Answers one DER OCSPRequest with a DER OCSPResponse; never throws. */
  async respond(requestDer: Buffer): Promise<OcspAnswer> {
    const fail = (status: Exclude<OcspResponseStatusName, 'successful'>): OcspAnswer => ({
      der: ocspErrorResponse(status),
      status,
      nonce: false,
      fromCache: false,
      definite: false,
    });
    let request;
    try {
      request = parseOcspRequest(requestDer, { maxRequests: this.deps.maxRequests });
      if (request.nonceValue && (request.nonceValue.length === 0 || request.nonceValue.length > MAX_NONCE)) {
        throw new OcspMalformedError(`nonce of ${request.nonceValue.length} octets`);
      }
    } catch (e) {
      this.log.debug({ reason: (e as Error).message }, 'malformed OCSP request');
      return fail('malformedRequest');
    }
    try {
      const cas = await Promise.all(request.requests.map((id) => this.caOf(id)));
      const ca = cas[0];
      if (!ca || cas.some((c) => c !== ca)) return fail('unauthorized');

      if (!request.nonce && request.requests.length === 1) {
        const p = await this.presigned(ca, request.requests[0]);
        return { der: p.der, status: 'successful', thisUpdate: p.thisUpdate, nextUpdate: p.nextUpdate, producedAt: p.producedAt, nonce: false, fromCache: true, definite: p.definite };
      }
      const statuses = await Promise.all(request.requests.map((id) => this.statusOf(ca, id.serial)));
      const p = await this.sign(ca, request.requests.map((id, i) => ({ certId: id.raw, status: statuses[i] })), request.nonce);
      return { der: p.der, status: 'successful', thisUpdate: p.thisUpdate, nextUpdate: p.nextUpdate, producedAt: p.producedAt, nonce: request.nonce !== undefined, fromCache: false, definite: p.definite };
    } catch (e) {
      const incident = randomUUID();
      this.log.error({ err: e, incident }, 'OCSP response failed');
      return fail('internalError');
    }
  }

  /**
   * The status of `record` changed: drops every pre-signed response for it and signs the
   * SHA-1 and SHA-256 ones again (plus any other hash variant that was cached), so the next
   * request is a lookup again. A change to a responder certificate makes its CA look up its
   * responder afresh.
   */
  async statusChanged(record: CertificateRecord): Promise<void> {
    const serial = record.serial;
    this.generation.set(serial, (this.generation.get(serial) ?? 0) + 1);
    for (const [key] of this.inFlight) if (key.endsWith(`|${serial}`)) this.inFlight.delete(key);
    const keys = [...(this.keysBySerial.get(serial) ?? [])];
    for (const k of keys) this.drop(k);
    if (record.profile === 'ocsp') this.responders.delete(record.caId);

    const index = await this.caIndex();
    const ca = [...index.values()].find((c) => c.record.id === record.caId);
    if (!ca) return;
    const id = certificateIdentity(ca.certificate);
    const variants = new Set<string>([`${CERT_ID_HASH_OIDS.sha1}~null`, `${CERT_ID_HASH_OIDS.sha256}~null`, ...keys.map((k) => k.split('|')[1])]);
    for (const variant of variants) {
      const [hashOid, params] = variant.split('~') as [string, 'null' | 'absent'];
      const hash = (Object.keys(CERT_ID_HASH_OIDS) as CertIdHash[]).find((h) => CERT_ID_HASH_OIDS[h] === hashOid);
      if (!hash) continue;
      const nameHash = hashOf(hash, id.subject);
      const keyHash = hashOf(hash, id.publicKey);
      await this.presigned(ca, {
        hashAlgorithm: hashOid,
        hash,
        hashParams: params,
        issuerNameHash: nameHash,
        issuerKeyHash: keyHash,
        serial,
        raw: encodeCertIdFields(hashOid, nameHash, keyHash, serial, params),
      });
    }
  }

  /** Forgets CAs and responders (e.g. after a CA or responder certificate was replaced). */
  reload(): void {
    this.index = undefined;
    this.responders.clear();
    this.cache.clear();
    this.keysBySerial.clear();
  }

  /** Number of pre-signed responses held (for tests and metrics). */
  get cachedResponses(): number {
    return this.cache.size;
  }

  // ---- CA lookup ----

  private async caIndex(): Promise<Map<string, CaEntry>> {
    if (this.index) return this.index;
    this.indexing ??= (async () => {
      const index = new Map<string, CaEntry>();
      for (const record of await this.deps.cas.list()) {
        const certificate = Buffer.from(record.certificate, 'base64');
        const id = certificateIdentity(certificate);
        const entry: CaEntry = { record, certificate, notAfter: id.notAfter };
        for (const hash of Object.keys(CERT_ID_HASH_OIDS) as CertIdHash[]) {
          index.set(`${CERT_ID_HASH_OIDS[hash]}|${hashOf(hash, id.subject).toString('hex')}|${hashOf(hash, id.publicKey).toString('hex')}`, entry);
        }
      }
      this.index = index;
      this.indexAt = Date.now();
      return index;
    })().finally(() => (this.indexing = undefined));
    return this.indexing;
  }

  private async caOf(id: OcspCertId): Promise<CaEntry | undefined> {
    const key = `${id.hashAlgorithm}|${id.issuerNameHash.toString('hex')}|${id.issuerKeyHash.toString('hex')}`;
    let found = (await this.caIndex()).get(key);
    // CAs are made at init; look again (at most every 30 s) in case one was added since.
    if (!found && Date.now() - this.indexAt > 30_000) {
      this.index = undefined;
      found = (await this.caIndex()).get(key);
    }
    return found;
  }

  // ---- status ----

  private async statusOf(ca: CaEntry, serial: string): Promise<SingleStatus> {
    const record = await this.deps.certs.get(serial);
    if (record && record.caId === ca.record.id) return singleStatusOf(record);
    if (ca.record.role === 'root') {
      // The root's own issued certificates are the issuing-CA certificates (CaRecords).
      const child = (await this.deps.cas.list()).find((c) => c.parentId === ca.record.id && c.serial === serial);
      if (child) return { status: 'good' };
    }
    return { status: 'unknown' };
  }

  // ---- responders ----

  private responder(ca: CaEntry): Promise<Responder> {
    const cached = this.responders.get(ca.record.id);
    if (cached) {
      return cached.then((r) => {
        if (Date.now() - r.resolvedAt < RESPONDER_TTL_MS && this.clock() < r.notAfter) return r;
        if (this.responders.get(ca.record.id) === cached) this.responders.delete(ca.record.id);
        return this.responder(ca);
      });
    }
    const p = this.resolveResponder(ca);
    this.responders.set(ca.record.id, p);
    p.catch(() => this.responders.delete(ca.record.id));
    return p;
  }

  private async resolveResponder(ca: CaEntry): Promise<Responder> {
    const now = this.clock();
    if (ca.record.role === 'issuing') {
      const candidates: CertificateRecord[] = [];
      let cursor: string | undefined;
      do {
        const page = await this.deps.certs.query({ caId: ca.record.id, profile: 'ocsp', status: 'good' }, { limit: 100, cursor });
        candidates.push(...page.items);
        cursor = page.next;
      } while (cursor);
      const usable = candidates
        .filter((c) => c.keyOrigin === 'appliance' && c.keyRef && new Date(c.notBefore) <= now && now < new Date(c.notAfter))
        .sort((a, b) => Date.parse(b.notAfter) - Date.parse(a.notAfter));
      const chosen = usable[0];
      if (chosen?.keyRef) {
        const signer = await this.deps.custody.signer(chosen.keyRef);
        return { signer, keyHash: responderKeyHash(signer.publicKeyInfo), certs: [Buffer.from(chosen.certificate, 'base64')], notAfter: new Date(chosen.notAfter), resolvedAt: Date.now(), delegated: true };
      }
      this.log.warn({ caId: ca.record.id }, 'no valid delegated OCSP responder certificate: responses are signed by the CA key');
    }
    const signer = await this.deps.custody.signer(ca.record.keyUri);
    return { signer, keyHash: responderKeyHash(signer.publicKeyInfo), certs: [], notAfter: ca.notAfter, resolvedAt: Date.now(), delegated: false };
  }

  // ---- signing and the pre-signed cache ----

  private async sign(ca: CaEntry, items: { certId: Buffer; status: SingleStatus }[], nonce?: Buffer): Promise<Presigned> {
    const responder = await this.responder(ca);
    const now = this.clock();
    const thisUpdate = new Date(Math.floor(now.getTime() / 1000) * 1000);
    // Never vouch beyond the responder certificate's own validity.
    const nextUpdate = new Date(Math.min(thisUpdate.getTime() + this.validityMs, Math.floor(responder.notAfter.getTime() / 1000) * 1000));
    const der = await buildOcspResponse({
      signer: responder.signer,
      responderKeyHash: responder.keyHash,
      producedAt: thisUpdate,
      responses: items.map((i) => ({ ...i.status, certId: i.certId, thisUpdate, nextUpdate })),
      nonce,
      certs: responder.certs,
    });
    return {
      der,
      thisUpdate,
      nextUpdate,
      producedAt: thisUpdate,
      staleAt: thisUpdate.getTime() + (nextUpdate.getTime() - thisUpdate.getTime()) / 2,
      definite: items.every((i) => i.status.status !== 'unknown'),
    };
  }

  private async presigned(ca: CaEntry, id: OcspCertId): Promise<Presigned> {
    // The CertID is echoed as sent, so the two encodings of the hash parameters are kept apart.
    const key = `${ca.record.id}|${id.hashAlgorithm}~${id.hashParams}|${id.serial}`;
    const hit = this.cache.get(key);
    if (hit && this.clock().getTime() < hit.staleAt) {
      // Least recently used goes first: move to the end.
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    const gen = this.generation.get(id.serial) ?? 0;
    const pending = this.inFlight.get(key);
    if (pending && pending.gen === gen) return pending.p;
    const p = (async () => {
      const status = await this.statusOf(ca, id.serial);
      const signed = await this.sign(ca, [{ certId: id.raw, status }]);
      // 'unknown' is not kept: the serial may be issued a moment later. A status change
      // during the signing makes this response stale at birth: answer with it, keep nothing.
      if (signed.definite && (this.generation.get(id.serial) ?? 0) === gen) this.put(key, id.serial, signed);
      return signed;
    })();
    this.inFlight.set(key, { gen, p });
    try {
      return await p;
    } finally {
      if (this.inFlight.get(key)?.p === p) this.inFlight.delete(key);
    }
  }

  private put(key: string, serial: string, value: Presigned): void {
    this.cache.delete(key);
    this.cache.set(key, value);
    let keys = this.keysBySerial.get(serial);
    if (!keys) this.keysBySerial.set(serial, (keys = new Set()));
    keys.add(key);
    while (this.cache.size > this.maxEntries) {
      const oldest = this.cache.keys().next().value as string;
      this.drop(oldest);
    }
  }

  private drop(key: string): void {
    this.cache.delete(key);
    const serial = key.slice(key.lastIndexOf('|') + 1);
    const keys = this.keysBySerial.get(serial);
    keys?.delete(key);
    if (keys && keys.size === 0) this.keysBySerial.delete(serial);
  }
}

