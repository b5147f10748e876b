// The trust store of the signature service (issue 4 item 4): what path validation may end at
// and build through, and the CRLs of external CAs.
//
//   - Our own hierarchies are always trusted: the roots (CaRepository role 'root') are trust
//     anchors, the issuing CAs intermediates. They cannot be removed (TRUST_CA_BUILTIN 409).
//   - Imported CA certificates (e.g. the licensed third-party CA that issues staff certificates):
//     only CA certificates (RFC 5280 §4.2.1.9 cA=TRUE and §4.2.1.3 keyCertSign); a self-signed one
//     becomes a trust anchor and must verify its own signature, any other one is an intermediate
//     (its path still has to end at an anchor). Id = lower-case hex SHA-256 of the DER.
//   - CRLs of imported CAs (uploaded, or fetched by crl-fetch.ts): the CRL issuer Name must be
//     the CA's subject Name (RFC 5280 §5.1.2.3), its signature must verify with the CA's key,
//     an unrecognised critical CRL extension refuses it (§5.2: delta CRLs, indirect CRLs and
//     partitioned CRLs are not supported), and it must be newer than the CRL held (§5.2.3 CRL
//     number; thisUpdate when either CRL lacks one).
//
// material() is cached in memory; every change made here drops the cache, and it also expires
// after CACHE_MS so that a change made by the CLI (another process on the same store) is seen.
// Every admin operation is audited in the same durable transaction as the change.
import { createHash } from 'node:crypto';
import { readCertificate, EXT, KEY_PURPOSES, type CertificateInfo } from '../asn1/certificate.js';
import { OID_AUTHORITY_KEY_IDENTIFIER, OID_CRL_NUMBER, parseCrl, type ParsedCrl } from '../asn1/crl.js';
import { nameToString } from '../asn1/name.js';
import type { AuditEntry } from '../audit/audit-log.js';
import { Tag, children, fromPem, readOid, readWhole } from '../crypto/der.js';
import { YiqianError } from '../errors.js';
import { log as rootLog, type Logger } from '../log.js';
import { checkIssuerSignature } from '../pki/issuer-signature.js';
import type { CaRecord, CaRepository } from '../pki/types.js';
import type { TrustMaterial, TrustStore, TrustedCaView } from './types.js';

export const TrustCodes = {
  /** Not a certificate (garbage, truncated, not DER/PEM). */
  CERT_DECODE_FAILED: 'CERT_DECODE_FAILED',
  /** A self-signed certificate whose signature does not verify with its own key. */
  CERT_SIGNATURE_INVALID: 'CERT_SIGNATURE_INVALID',
  TRUST_NOT_A_CA: 'TRUST_NOT_A_CA',
  TRUST_CA_EXISTS: 'TRUST_CA_EXISTS',
  TRUST_CA_BUILTIN: 'TRUST_CA_BUILTIN',
  TRUST_CA_NOT_FOUND: 'TRUST_CA_NOT_FOUND',
  /** crlUrl / ocspUrl / crlFetchHours not acceptable. */
  TRUST_OPTION_INVALID: 'TRUST_OPTION_INVALID',
  CRL_DECODE_FAILED: 'CRL_DECODE_FAILED',
  /** The CRL's issuer Name is not the CA's subject. */
  CRL_ISSUER_MISMATCH: 'CRL_ISSUER_MISMATCH',
  CRL_SIGNATURE_INVALID: 'CRL_SIGNATURE_INVALID',
  /** A critical CRL extension this appliance does not process (delta, indirect …). */
  CRL_UNSUPPORTED: 'CRL_UNSUPPORTED',
  CRL_NOT_NEWER: 'CRL_NOT_NEWER',
  /** POST …/crl/fetch for a CA without crlUrl. */
  CRL_URL_NOT_SET: 'CRL_URL_NOT_SET',
  /** Download failed: network, timeout, HTTP status, size limit. */
  CRL_FETCH_FAILED: 'CRL_FETCH_FAILED',
} as const;

export function trustError(code: keyof typeof TrustCodes, status: number, zh: string, en: string, detail?: Record<string, unknown>): YiqianError {
  return new YiqianError(TrustCodes[code], status, { zh, en }, detail);
}

// ---------- records and repository (store/trust-repository.ts implements it) ----------

export interface HeldCrl {
  /** base64 DER. */
  der: string;
  thisUpdate: string;
  nextUpdate?: string;
  /** Decimal. */
  crlNumber?: string;
  entries: number;
  fetchedAt: string;
  source: 'upload' | 'fetch';
}

export interface TrustedCaRecord {
  /** Lower-case hex SHA-256 of the certificate DER. */
  id: string;
  /** base64 DER. */
  certificate: string;
  crlUrl?: string;
  crlFetchHours?: number;
  ocspUrl?: string;
  importedAt: string;
  importedBy: string;
  crl?: HeldCrl;
  /** Last download attempt (success or failure) by crl-fetch.ts. */
  lastFetchAt?: string;
  lastFetchError?: { at: string; code: string; message: string };
}

export interface TrustRepository {
  /** false when the id is taken (nothing written). Durable with its audit entry. */
  insert(record: TrustedCaRecord, opts?: { audit?: AuditEntry }): Promise<boolean>;
  get(id: string): Promise<TrustedCaRecord | undefined>;
  list(): Promise<TrustedCaRecord[]>;
  /** Atomic read-modify-write; `change` may throw a YiqianError to refuse (nothing written). */
  update(id: string, change: (current: TrustedCaRecord | undefined) => TrustedCaRecord, opts?: { audit?: AuditEntry }): Promise<TrustedCaRecord>;
  /** false when there was no such record. */
  remove(id: string, opts?: { audit?: AuditEntry }): Promise<boolean>;
}

// Signatures made by a CA (certificates, CRLs, OCSP responses): pki/issuer-signature.ts.
export { checkIssuerSignature } from '../pki/issuer-signature.js';

/** Lower-case hex SHA-256 of a DER certificate: the trust-store id. */
export function trustId(der: Buffer): string {
  return createHash('sha256').update(der).digest('hex');
}

function ext(info: CertificateInfo, oid: string): Buffer | undefined {
  return info.extensions.find((e) => e.oid === oid)?.value;
}

/** basicConstraints cA=TRUE and keyUsage keyCertSign (both required for an imported CA). */
function caReasons(info: CertificateInfo): string[] {
  const out: string[] = [];
  try {
    const bc = ext(info, EXT.basicConstraints);
    const items = bc ? children(readWhole(bc, Tag.SEQUENCE).value) : [];
    if (!(items[0]?.tag === 0x01 && items[0].value[0] !== 0)) out.push(bc ? 'basicConstraints cA is not TRUE' : 'no basicConstraints extension');
    const ku = ext(info, EXT.keyUsage);
    const bits = ku ? readWhole(ku, Tag.BIT_STRING).value : undefined;
    if (!bits || !(bits.length >= 2 && (bits[1] & 0x04) !== 0)) out.push(ku ? 'keyUsage lacks keyCertSign' : 'no keyUsage extension (keyCertSign required)');
  } catch (e) {
    out.push(`malformed basicConstraints or keyUsage: ${(e as Error).message}`);
  }
  return out;
}

/** Whether the certificate carries id-kp-OCSPSigning (RFC 6960 §4.2.2.2). */
export function hasOcspSigning(info: CertificateInfo): boolean {
  const v = ext(info, EXT.extKeyUsage);
  if (!v) return false;
  try {
    return children(readWhole(v, Tag.SEQUENCE).value).some((t) => readOid(t) === KEY_PURPOSES.OCSPSigning);
  } catch {
    return false;
  }
}

function safeName(der: Buffer): string {
  try {
    return nameToString(der);
  } catch {
    return `#${der.toString('hex')}`;
  }
}

/** Certificate bytes from DER, PEM text (as string or bytes) or base64 DER. Exactly one certificate. */
export function decodeCertificateInput(input: Buffer | string): { der: Buffer; info: CertificateInfo } {
  const bad = (en: string, zh = '无法解析证书'): never => {
    throw trustError('CERT_DECODE_FAILED', 400, `${zh}：${en}`, `cannot read the certificate: ${en}`);
  };
  let der: Buffer | undefined;
  try {
    const text = typeof input === 'string' ? input : input.subarray(0, 32).toString('latin1').includes('-----BEGIN') ? input.toString('latin1') : undefined;
    if (text !== undefined && text.includes('-----BEGIN')) {
      const blocks = fromPem(text).filter((b) => b.label === 'CERTIFICATE' || b.label === 'X509 CERTIFICATE' || b.label === 'TRUSTED CERTIFICATE');
      if (blocks.length !== 1) bad(`expected exactly one CERTIFICATE PEM block, found ${blocks.length}`);
      der = blocks[0].der;
    } else if (typeof input === 'string') {
      const b64 = input.replace(/\s+/g, '');
      if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) bad('neither PEM nor base64 DER');
      der = Buffer.from(b64, 'base64');
    } else der = input;
  } catch (e) {
    if (e instanceof YiqianError) throw e;
    bad((e as Error).message);
  }
  try {
    return { der: der as Buffer, info: readCertificate(der as Buffer) };
  } catch (e) {
    return bad((e as Error).message);
  }
}

/** CRL bytes from DER, PEM ("X509 CRL") or base64 DER; parsed (CRL_DECODE_FAILED otherwise). */
export function decodeCrlInput(input: Buffer | string): { der: Buffer; crl: ParsedCrl } {
  const bad = (en: string): never => {
    throw trustError('CRL_DECODE_FAILED', 400, `无法解析 CRL：${en}`, `cannot read the CRL: ${en}`);
  };
  let der: Buffer | undefined;
  try {
    const text = typeof input === 'string' ? input : input.subarray(0, 32).toString('latin1').includes('-----BEGIN') ? input.toString('latin1') : undefined;
    if (text !== undefined && text.includes('-----BEGIN')) {
      const blocks = fromPem(text).filter((b) => b.label === 'X509 CRL');
      if (blocks.length !== 1) bad(`expected exactly one X509 CRL PEM block, found ${blocks.length}`);
      der = blocks[0].der;
    } else if (typeof input === 'string') {
      const b64 = input.replace(/\s+/g, '');
      if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) bad('neither PEM nor base64 DER');
      der = Buffer.from(b64, 'base64');
    } else der = input;
  } catch (e) {
    if (e instanceof YiqianError) throw e;
    bad((e as Error).message);
  }
  try {
    return { der: der as Buffer, crl: parseCrl(der as Buffer) };
  } catch (e) {
    return bad((e as Error).message);
  }
}

// ---------- the service ----------

export interface ImportOptions {
  crlUrl?: string;
  crlFetchHours?: number;
  ocspUrl?: string;
}

export const DEFAULT_CRL_FETCH_HOURS = 24;
const MAX_CRL_FETCH_HOURS = 24 * 30;
const CACHE_MS = 60_000;

/** How a CA certificate on a path is known to the trust store. */
export type KnownCa =
  | { source: 'appliance'; record: CaRecord; der: Buffer }
  | { source: 'imported'; record: TrustedCaRecord; der: Buffer };

/** The view of types.ts plus, for imported CAs, the last download attempt of crl-fetch.ts. */
export type TrustedCaDetail = TrustedCaView & { lastFetchAt?: string; lastFetchError?: { at: string; code: string; message: string } };

export interface TrustStoreService extends TrustStore {
  list(): Promise<TrustedCaDetail[]>;
  get(id: string): Promise<TrustedCaDetail>;
  importCa(certificate: Buffer | string, opts: ImportOptions, actor: string): Promise<TrustedCaDetail>;
  remove(id: string, actor: string): Promise<void>;
  importCrl(id: string, crl: Buffer | string, source: 'upload' | 'fetch', actor: string): Promise<TrustedCaDetail>;
  /** Records the outcome of a download attempt (crl-fetch.ts); an error is audited. */
  noteFetch(id: string, error: { code: string; message: string } | undefined, actor: string): Promise<void>;
  /** The imported CA records as stored now (for the fetch scheduler). */
  imported(): Promise<TrustedCaRecord[]>;
  /** Our CA or an imported one whose certificate is exactly `der`; undefined otherwise. */
  findCa(der: Buffer): Promise<KnownCa | undefined>;
}

export interface TrustStoreDeps {
  trust: TrustRepository;
  cas: Pick<CaRepository, 'list'>;
  clock?: () => Date;
  log?: Logger;
}

function optionUrl(name: string, v: unknown): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  let ok = false;
  if (typeof v === 'string' && v.length <= 2048) {
    try {
      const u = new URL(v);
      ok = (u.protocol === 'http:' || u.protocol === 'https:') && u.username === '' && u.password === '';
    } catch {
      ok = false;
    }
  }
  if (!ok) throw trustError('TRUST_OPTION_INVALID', 400, `${name} 必须是 http(s) 地址`, `${name} must be an http or https URL (no credentials)`, { field: name });
  return v as string;
}

function checkOptions(opts: ImportOptions): ImportOptions {
  const crlUrl = optionUrl('crlUrl', opts.crlUrl);
  const ocspUrl = optionUrl('ocspUrl', opts.ocspUrl);
  let hours = opts.crlFetchHours;
  if (hours !== undefined && hours !== null) {
    if (typeof hours !== 'number' || !Number.isFinite(hours) || hours < 1 || hours > MAX_CRL_FETCH_HOURS) {
      throw trustError('TRUST_OPTION_INVALID', 400, `crlFetchHours 必须在 1 到 ${MAX_CRL_FETCH_HOURS} 之间`, `crlFetchHours must be a number from 1 to ${MAX_CRL_FETCH_HOURS}`, { field: 'crlFetchHours' });
    }
    if (!crlUrl) throw trustError('TRUST_OPTION_INVALID', 400, 'crlFetchHours 需要 crlUrl', 'crlFetchHours needs crlUrl', { field: 'crlFetchHours' });
  } else hours = crlUrl ? DEFAULT_CRL_FETCH_HOURS : undefined;
  return { ...(crlUrl ? { crlUrl, crlFetchHours: hours } : {}), ...(ocspUrl ? { ocspUrl } : {}) };
}

const ID_RE = /^[0-9a-f]{64}$/;

export function createTrustStore(deps: TrustStoreDeps): TrustStoreService {
  const clock = deps.clock ?? (() => new Date());
  const log = deps.log ?? rootLog;
  let cache: { at: number; own: { record: CaRecord; der: Buffer }[]; imported: { record: TrustedCaRecord; der: Buffer; info: CertificateInfo }[] } | undefined;
  const invalidate = (): void => {
    cache = undefined;
  };

  async function load(): Promise<NonNullable<typeof cache>> {
    if (cache && Date.now() - cache.at < CACHE_MS) return cache;
    const own = (await deps.cas.list()).map((record) => ({ record, der: Buffer.from(record.certificate, 'base64') }));
    const imported = [];
    for (const record of await deps.trust.list()) {
      const der = Buffer.from(record.certificate, 'base64');
      try {
        imported.push({ record, der, info: readCertificate(der) });
      } catch (e) {
        log.error({ err: e, id: record.id }, 'stored trusted CA certificate unreadable; ignored');
      }
    }
    cache = { at: Date.now(), own, imported };
    return cache;
  }

  function ownView(r: CaRecord, der: Buffer): TrustedCaView {
    const info = readCertificate(der);
    return {
      id: trustId(der),
      subject: safeName(info.subjectDer),
      issuer: safeName(info.issuerDer),
      serial: info.serial,
      notBefore: info.notBefore.toISOString(),
      notAfter: info.notAfter.toISOString(),
      source: 'appliance',
      anchor: r.role === 'root',
    };
  }

  function importedView(r: TrustedCaRecord): TrustedCaDetail {
    const info = readCertificate(Buffer.from(r.certificate, 'base64'));
    return {
      id: r.id,
      subject: safeName(info.subjectDer),
      issuer: safeName(info.issuerDer),
      serial: info.serial,
      notBefore: info.notBefore.toISOString(),
      notAfter: info.notAfter.toISOString(),
      source: 'imported',
      anchor: info.subjectDer.equals(info.issuerDer),
      ...(r.crlUrl ? { crlUrl: r.crlUrl, crlFetchHours: r.crlFetchHours } : {}),
      ...(r.ocspUrl ? { ocspUrl: r.ocspUrl } : {}),
      ...(r.crl
        ? {
            crl: {
              thisUpdate: r.crl.thisUpdate,
              ...(r.crl.nextUpdate ? { nextUpdate: r.crl.nextUpdate } : {}),
              ...(r.crl.crlNumber ? { number: r.crl.crlNumber } : {}),
              entries: r.crl.entries,
              fetchedAt: r.crl.fetchedAt,
              source: r.crl.source,
            },
          }
        : {}),
      ...(r.lastFetchAt ? { lastFetchAt: r.lastFetchAt } : {}),
      ...(r.lastFetchError ? { lastFetchError: r.lastFetchError } : {}),
    };
  }

  const notFound = (id: string): YiqianError => trustError('TRUST_CA_NOT_FOUND', 404, `信任库中没有 ${id.slice(0, 64)}`, `no CA ${id.slice(0, 64)} in the trust store`, { id: id.slice(0, 64) });

  async function builtin(id: string): Promise<{ record: CaRecord; der: Buffer } | undefined> {
    return (await load()).own.find((o) => trustId(o.der) === id);
  }

  const service: TrustStoreService = {
    async material(): Promise<TrustMaterial> {
      const c = await load();
      const anchors: Buffer[] = [];
      const intermediates: Buffer[] = [];
      for (const o of c.own) (o.record.role === 'root' ? anchors : intermediates).push(o.der);
      for (const i of c.imported) (i.info.subjectDer.equals(i.info.issuerDer) ? anchors : intermediates).push(i.der);
      return { anchors, intermediates };
    },

    async list() {
      const c = await load();
      return [...c.own.map((o) => ownView(o.record, o.der)), ...c.imported.map((i) => importedView(i.record))];
    },

    async get(id) {
      if (typeof id !== 'string' || !ID_RE.test(id)) throw notFound(String(id));
      const own = await builtin(id);
      if (own) return ownView(own.record, own.der);
      const r = await deps.trust.get(id);
      if (!r) throw notFound(id);
      return importedView(r);
    },

    async imported() {
      // From the repository, not the cache: the fetcher needs the latest lastFetchAt and crlUrl.
      return deps.trust.list();
    },

    async findCa(der) {
      const c = await load();
      const own = c.own.find((o) => o.der.equals(der));
      if (own) return { source: 'appliance', record: own.record, der: own.der };
      const id = trustId(der);
      const imp = c.imported.find((i) => i.record.id === id);
      if (!imp) return undefined;
      // The cached list may be up to CACHE_MS old: read the record (its CRL) afresh.
      const fresh = await deps.trust.get(id);
      return fresh ? { source: 'imported', record: fresh, der: imp.der } : undefined;
    },

    async importCa(input, opts, actor) {
      const { der, info } = decodeCertificateInput(input);
      const options = checkOptions(opts ?? {});
      const reasons = caReasons(info);
      const subject = safeName(info.subjectDer);
      if (reasons.length) {
        throw trustError('TRUST_NOT_A_CA', 400, `不是 CA 证书：${reasons.join('；')}`, `not a CA certificate: ${reasons.join('; ')}`, { subject, reasons });
      }
      const selfSigned = info.subjectDer.equals(info.issuerDer);
      if (selfSigned) {
        const why = await checkIssuerSignature(info.signatureAlgorithm, info.publicKeyInfo, info.tbs, info.signature);
        if (why) throw trustError('CERT_SIGNATURE_INVALID', 400, `自签名 CA 证书的签名无效：${why}`, `the self-signed CA certificate does not verify with its own key: ${why}`, { subject });
      }
      const id = trustId(der);
      if (await builtin(id)) {
        throw trustError('TRUST_CA_EXISTS', 409, '这是本设备自己的 CA，已始终受信任', "this is one of the appliance's own CAs, which are always trusted", { id, source: 'appliance' });
      }
      const record: TrustedCaRecord = { id, certificate: der.toString('base64'), ...options, importedAt: clock().toISOString(), importedBy: actor };
      const stored = await deps.trust.insert(record, {
        audit: { actor, action: 'trust.ca.import', target: id, outcome: 'ok', detail: { subject, serial: info.serial, anchor: selfSigned, ...options } },
      });
      if (!stored) throw trustError('TRUST_CA_EXISTS', 409, '该 CA 证书已在信任库中', 'this CA certificate is already in the trust store', { id });
      invalidate();
      log.info({ id, subject, anchor: selfSigned }, 'CA imported into the trust store');
      return importedView(record);
    },

    async remove(id, actor) {
      if (typeof id !== 'string' || !ID_RE.test(id)) throw notFound(String(id));
      if (await builtin(id)) throw trustError('TRUST_CA_BUILTIN', 409, '本设备自己的 CA 始终受信任，不能移除', "the appliance's own CAs are always trusted and cannot be removed", { id });
      const removed = await deps.trust.remove(id, { audit: { actor, action: 'trust.ca.remove', target: id, outcome: 'ok' } });
      invalidate();
      if (!removed) throw notFound(id);
    },

    async importCrl(id, input, source, actor) {
      if (typeof id !== 'string' || !ID_RE.test(id)) throw notFound(String(id));
      if (await builtin(id)) {
        throw trustError('TRUST_CA_BUILTIN', 409, '本设备自己的 CA 的吊销状态直接取自证书库，不导入 CRL', "the status of certificates of the appliance's own CAs comes from its records; no CRL is imported for them", { id });
      }
      const current = await deps.trust.get(id);
      if (!current) throw notFound(id);
      const { der, crl } = decodeCrlInput(input);
      const ca = readCertificate(Buffer.from(current.certificate, 'base64'));
      if (!crl.issuer.equals(ca.subjectDer)) {
        throw trustError('CRL_ISSUER_MISMATCH', 400, `CRL 的签发者不是该 CA：${safeName(crl.issuer)}`, `the CRL's issuer ${safeName(crl.issuer)} is not this CA (${safeName(ca.subjectDer)})`, { id });
      }
      const why = await checkIssuerSignature(crl.signatureAlgorithm, ca.publicKeyInfo, crl.tbs, crl.signature);
      if (why) throw trustError('CRL_SIGNATURE_INVALID', 400, `CRL 签名无效：${why}`, `the CRL's signature does not verify with the CA's key: ${why}`, { id });
      // RFC 5280 §5.2: a CRL with an unrecognised critical extension must not be used.
      const unknownCritical = [...crl.extensions].filter(([oid, e]) => e.critical && oid !== OID_CRL_NUMBER && oid !== OID_AUTHORITY_KEY_IDENTIFIER).map(([oid]) => oid);
      if (unknownCritical.length) {
        throw trustError('CRL_UNSUPPORTED', 400, `CRL 含有不支持的关键扩展 ${unknownCritical.join(', ')}（增量 CRL、间接 CRL 等）`, `the CRL has critical extensions this appliance does not process: ${unknownCritical.join(', ')} (delta, indirect or partitioned CRLs)`, { id, extensions: unknownCritical });
      }
      const now = clock().toISOString();
      const held: HeldCrl = {
        der: der.toString('base64'),
        thisUpdate: crl.thisUpdate.toISOString(),
        ...(crl.nextUpdate ? { nextUpdate: crl.nextUpdate.toISOString() } : {}),
        ...(crl.crlNumber !== undefined ? { crlNumber: crl.crlNumber.toString() } : {}),
        entries: crl.entries.length,
        fetchedAt: now,
        source,
      };
      const updated = await deps.trust.update(
        id,
        (cur) => {
          if (!cur) throw notFound(id);
          const old = cur.crl;
          if (old) {
            const older =
              old.crlNumber !== undefined && held.crlNumber !== undefined
                ? BigInt(held.crlNumber) <= BigInt(old.crlNumber)
                : Date.parse(held.thisUpdate) <= Date.parse(old.thisUpdate);
            if (older) {
              throw trustError('CRL_NOT_NEWER', 409, '该 CRL 不比已有的新（CRL 编号或 thisUpdate 不大于已有的）', 'this CRL is not newer than the one held (CRL number or thisUpdate not greater)', {
                id,
                held: { crlNumber: old.crlNumber, thisUpdate: old.thisUpdate },
                offered: { crlNumber: held.crlNumber, thisUpdate: held.thisUpdate },
              });
            }
          }
          const next: TrustedCaRecord = { ...cur, crl: held };
          if (source === 'fetch') {
            next.lastFetchAt = now;
            delete next.lastFetchError;
          }
          return next;
        },
        { audit: { actor, action: 'trust.crl.import', target: id, outcome: 'ok', detail: { source, crlNumber: held.crlNumber, thisUpdate: held.thisUpdate, nextUpdate: held.nextUpdate, entries: held.entries } } },
      );
      invalidate();
      return importedView(updated);
    },

    async noteFetch(id, error, actor) {
      const at = clock().toISOString();
      await deps.trust.update(
        id,
        (cur) => {
          if (!cur) throw notFound(id);
          const next: TrustedCaRecord = { ...cur, lastFetchAt: at };
          if (error) next.lastFetchError = { at, code: error.code, message: error.message.slice(0, 500) };
          else delete next.lastFetchError;
          return next;
        },
        error ? { audit: { actor, action: 'trust.crl.fetch', target: id, outcome: 'error', detail: { code: error.code, message: error.message.slice(0, 500) } } } : {},
      );
      invalidate();
    },
  };
  return service;
}
