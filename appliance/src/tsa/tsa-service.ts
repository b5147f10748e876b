// The RFC 3161 time-stamp authority (issue 5): one DER TimeStampReq in, one DER TimeStampResp
// out, never an exception. Order of the checks — each refusal is a `rejection` with its failInfo:
//
//   parse (strict DER) → badDataFormat / badRequest (version) / unacceptedExtension / badAlg
//   policy (reqPolicy among the configured ones of this identity) → unacceptedPolicy
//   clock gate (live: UNSYNCED or inputs older than the bound) → timeNotAvailable
//   TSA certificate valid at genTime and still good → systemFailure (never a token)
//   serial (genTime ms ‖ 80 random bits, unique in the store) → sign and store the record durably
//   (concurrently; an unsigned token's record is taken back) → reply
//
// The TSA's signer and certificate are resolved once per identity (hot path: no key parsing per
// request) and looked up again every minute, so a renewed or revoked TSA certificate is seen.
import type { ClockGate } from '../../../firmware-bridge/timesource/clock-gate.js';
import {
  TspRejection,
  buildTimeStampReq,
  buildTimeStampToken,
  encodeTstInfo,
  parseTimeStampReq,
  parseTimeStampResp,
  timeStampGranted,
  timeStampRejection,
  tokenSigningIdentity,
  type FailureInfoName,
  type TokenSigningIdentity,
} from '../asn1/tsp.js';
import { pooledRandomOctets } from '../crypto/random-pool.js';
import type { KeyCustody } from '../crypto/interfaces.js';
import { log as rootLog, type Logger } from '../log.js';
import { applianceCertificate } from '../pki/hierarchy.js';
import type { CertificateRecord, CertificateRepository } from '../pki/types.js';
import type { ImprintHash, TsaIdentity, TsaTokenRecord, TsaTokenRepository } from './types.js';

/**
 * A serial is 6 octets of genTime in milliseconds (big-endian) followed by 10 random octets:
 * 128 bits, within the 160 bits RFC 3161 §2.4.2 tells clients to accept, positive until the
 * year 6429, 80 random bits (≥ 64, issue 5). The time prefix makes serials — the keys of the
 * token store — rise with time, so the tokens of one commit share a B-tree leaf: random keys
 * dirtied a page per token and wrote ~18 KB to disk per token (bench/tsa.ts).
 */
const SERIAL_RANDOM_OCTETS = 10;
const SERIAL_TIME_OCTETS = 6;
const IDENTITY_TTL_MS = 60_000;

/**
 * GM/T 0033-2014 error codes (base 0x04000000, STANDARDS.md §3) for the failures that have one;
 * the others carry the RFC 3161 failInfo and text only.
 */
const GMT0033: Partial<Record<FailureInfoName, string>> = {
  timeNotAvailable: '0x0400000A TIME_NOT_AVAILABLE',
  unacceptedPolicy: '0x0400000B UNACCEPTED_POLICY',
  unacceptedExtension: '0x0400000C UNACCEPTED_EXTENSION',
  systemFailure: '0x0400000E SYSTEM_FAILURE',
};

export interface TsaPolicySettings {
  policies: { oid: string; identities?: TsaIdentity[] }[];
  defaultPolicy?: Partial<Record<TsaIdentity, string>>;
}

export interface TsaServiceDeps {
  certs: Pick<CertificateRepository, 'query'>;
  custody: Pick<KeyCustody, 'signer'>;
  tokens: TsaTokenRepository;
  gate: Pick<ClockGate, 'check'>;
  policies: TsaPolicySettings;
  /** Put into the statusString of every reply (the development notice of a system-trusted clock). */
  notice?: string | null;
  log?: Logger;
  /** Source of serial octets (tests). */
  random?: (n: number) => Buffer;
}

export interface TsaRequester {
  address: string;
  app?: string;
}

/** Outcome of TsaService.stamp: the DER TimeStampToken (ContentInfo), or why there is none. */
export type TsaStamp =
  | { ok: true; token: Buffer; genTime: Date; serial: string }
  | { ok: false; failInfo: FailureInfoName; reason: string };

export interface TsaAnswer {
  der: Buffer;
  granted: boolean;
  failInfo?: FailureInfoName;
  serial?: string;
  reason?: string;
}

interface LoadedIdentity {
  signing: TokenSigningIdentity;
  record: CertificateRecord;
  notBefore: number;
  notAfter: number;
  loadedAt: number;
}

export class TsaService {
  private readonly log: Logger;
  private readonly random: (n: number) => Buffer;
  private readonly identities = new Map<TsaIdentity, Promise<LoadedIdentity>>();
  /** The loaded identities, for the synchronous fast path of respond() (no promise per token while fresh). */
  private readonly loadedNow = new Map<TsaIdentity, LoadedIdentity>();
  private readonly policyOf: Record<TsaIdentity, { allowed: Set<string>; byDefault: string }>;

  constructor(private readonly deps: TsaServiceDeps) {
    this.log = deps.log ?? rootLog;
    this.random = deps.random ?? pooledRandomOctets;
    const pick = (id: TsaIdentity) => {
      const allowed = deps.policies.policies.filter((p) => !p.identities || p.identities.includes(id)).map((p) => p.oid);
      if (allowed.length === 0) throw new RangeError(`no TSA policy for the ${id} identity`);
      const byDefault = deps.policies.defaultPolicy?.[id] ?? allowed[0];
      if (!allowed.includes(byDefault)) throw new RangeError(`default policy ${byDefault} is not a policy of the ${id} identity`);
      return { allowed: new Set(allowed), byDefault };
    };
    this.policyOf = { sm2: pick('sm2'), ecdsa: pick('ecdsa') };
  }

  /** Policies and default per identity (docs, /api). */
  policies(): Record<TsaIdentity, { policies: string[]; default: string }> {
    return {
      sm2: { policies: [...this.policyOf.sm2.allowed], default: this.policyOf.sm2.byDefault },
      ecdsa: { policies: [...this.policyOf.ecdsa.allowed], default: this.policyOf.ecdsa.byDefault },
    };
  }

  /** Resolves the signer and certificate of both identities now (startup), so the first request is fast. */
  async warmUp(): Promise<void> {
    await Promise.all((['sm2', 'ecdsa'] as const).map((id) => this.identity(id).catch((e: Error) => this.log.warn({ identity: id, err: e.message }, 'TSA identity not available'))));
  }

  /** The loaded identity (signer + certificate), refreshed after IDENTITY_TTL_MS. */
  identity(id: TsaIdentity): Promise<LoadedIdentity> {
    const cached = this.identities.get(id);
    if (cached) {
      return cached.then((l) => {
        if (Date.now() - l.loadedAt < IDENTITY_TTL_MS) return l;
        if (this.identities.get(id) === cached) this.identities.delete(id);
        return this.identity(id);
      });
    }
    const p = this.load(id);
    this.identities.set(id, p);
    p.then(
      (l) => {
        if (this.identities.get(id) === p) this.loadedNow.set(id, l);
      },
      () => {
        if (this.identities.get(id) === p) this.identities.delete(id);
      },
    );
    return p;
  }

  private async load(id: TsaIdentity): Promise<LoadedIdentity> {
    const record = await applianceCertificate(this.deps.certs as CertificateRepository, id, 'tsa');
    if (!record || !record.keyRef) throw new Error(`no good TSA certificate in the ${id} hierarchy`);
    const signer = await this.deps.custody.signer(record.keyRef);
    return {
      signing: tokenSigningIdentity(signer, Buffer.from(record.certificate, 'base64')),
      record,
      notBefore: Date.parse(record.notBefore),
      notAfter: Date.parse(record.notAfter),
      loadedAt: Date.now(),
    };
  }

  /** Answers one DER TimeStampReq for `identity`; never throws. */
  async respond(der: Buffer, identity: TsaIdentity, requester: TsaRequester): Promise<TsaAnswer> {
    let notice: string | null = this.deps.notice ?? null;
    try {
      const req = parseTimeStampReq(der);
      const pol = this.policyOf[identity];
      const policy = req.reqPolicy ?? pol.byDefault;
      if (!pol.allowed.has(policy)) throw new TspRejection('unacceptedPolicy', `policy ${policy} is not offered by the ${identity} TSA`);
      const clock = this.deps.gate.check();
      if (!clock.ok) throw new TspRejection('timeNotAvailable', `trusted time not available: ${clock.reason}`);
      notice ??= clock.notice;
      let loaded = this.loadedNow.get(identity);
      if (!loaded || Date.now() - loaded.loadedAt >= IDENTITY_TTL_MS) {
        try {
          loaded = await this.identity(identity);
        } catch (e) {
          throw new TspRejection('systemFailure', `TSA ${identity} is not available: ${(e as Error).message}`);
        }
      }
      const genTime = clock.time;
      const t = genTime.getTime();
      if (t < loaded.notBefore || t > loaded.notAfter) {
        throw new TspRejection('systemFailure', `the ${identity} TSA certificate ${loaded.record.serial} is not valid at ${genTime.toISOString()} (${loaded.record.notBefore} – ${loaded.record.notAfter})`);
      }
      for (let attempt = 0; attempt < 8; attempt++) {
        const serial = this.newSerial(t);
        const serialHex = serial.toString('hex').replace(/^(00)+(?=.)/, '');
        // No look-up first: insert() checks and writes in one transaction and answers false for a taken serial.
        const tstInfo = encodeTstInfo({
          policy,
          messageImprintDer: req.messageImprintDer,
          serial,
          genTime,
          accuracyMicros: clock.accuracyMicros,
          ...(req.nonceDer ? { nonceDer: req.nonceDer } : {}),
        });
        const record: TsaTokenRecord = {
          serial: serialHex,
          identity,
          policy,
          imprintAlgorithm: req.hash!,
          imprint: req.hashedMessage.toString('hex'),
          genTime: genTime.toISOString(),
          accuracyMicros: Math.ceil(clock.accuracyMicros),
          ...(req.nonceHex ? { nonce: req.nonceHex } : {}),
          certReq: req.certReq,
          tsaCertificate: loaded.record.serial,
          requester: { address: requester.address, ...(requester.app ? { app: requester.app } : {}) },
          clock: { source: clock.source, state: clock.state },
        };
        // The record holds nothing the signature adds, so it is written WHILE the token is signed
        // (both take milliseconds under load; one after the other they were most of a token's
        // latency). The reply still waits for both: a token that exists is always on record. A
        // token that could not be signed takes its record back (its serial was never issued).
        const recorded = this.deps.tokens.insert(record);
        // Handled here as well as awaited below: a store failure while the signing is still
        // running must not count as an unhandled rejection (which ends the process).
        recorded.catch(() => undefined);
        let token: Buffer;
        try {
          token = await buildTimeStampToken(tstInfo, genTime, loaded.signing, req.certReq);
        } catch (e) {
          void recorded.then((stored) => (stored ? this.deps.tokens.discard(serialHex) : undefined)).catch((d: unknown) => this.log.warn({ serial: serialHex, err: d }, 'record of an unsigned time-stamp not taken back'));
          throw e;
        }
        if (!(await recorded)) continue;
        return { der: timeStampGranted(token, notice ? [notice] : []), granted: true, serial: serialHex };
      }
      throw new TspRejection('systemFailure', 'no unused serial number found');
    } catch (e) {
      const r = e instanceof TspRejection ? e : new TspRejection('systemFailure', 'internal error');
      if (!(e instanceof TspRejection)) this.log.error({ err: e }, 'time-stamp request failed');
      const text = [GMT0033[r.failInfo] ? `${GMT0033[r.failInfo]}: ${r.message}` : r.message, ...(notice ? [notice] : [])];
      return { der: timeStampRejection(r.failInfo, text), granted: false, failInfo: r.failInfo, reason: r.message };
    }
  }

  /**
   * In-process stamping (CAdES-T signature time-stamps, signing/cades-t.ts): builds the
   * TimeStampReq here (certReq TRUE, so the token carries the TSA certificate), answers it through
   * respond() — same clock gate, policy, checks and durable token record as over HTTP — and
   * returns the token, or the failInfo and reason of the refusal. Never throws.
   */
  async stamp(hash: ImprintHash, hashedMessage: Buffer, identity: TsaIdentity, requester: TsaRequester): Promise<TsaStamp> {
    let req: Buffer;
    try {
      req = buildTimeStampReq({ hash, hashedMessage, certReq: true });
    } catch (e) {
      return { ok: false, failInfo: 'badDataFormat', reason: (e as Error).message };
    }
    const a = await this.respond(req, identity, requester);
    if (!a.granted) return { ok: false, failInfo: a.failInfo ?? 'systemFailure', reason: a.reason ?? 'time-stamp refused' };
    try {
      const r = parseTimeStampResp(a.der);
      if (r.token && r.tstInfo) return { ok: true, token: r.token, genTime: r.tstInfo.genTime, serial: r.tstInfo.serial };
    } catch (e) {
      this.log.error({ err: e }, 'in-process time-stamp reply unreadable');
    }
    return { ok: false, failInfo: 'systemFailure', reason: 'granted reply without a readable token' };
  }

  private newSerial(genTimeMs: number): Buffer {
    const b = Buffer.allocUnsafe(SERIAL_TIME_OCTETS + SERIAL_RANDOM_OCTETS);
    b.writeUIntBE(genTimeMs, 0, SERIAL_TIME_OCTETS);
    b.set(this.random(SERIAL_RANDOM_OCTETS), SERIAL_TIME_OCTETS);
    return b;
  }
}
