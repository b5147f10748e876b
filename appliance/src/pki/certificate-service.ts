// The certificate lifecycle as hospital systems use it (issue: CA and certificate lifecycle,
// item 3): issue from a PKCS#10 request, issue with a key generated here (handed out once as
// encrypted PKCS#8, not kept), look up and query, renew with the same or a new key, and the
// list of certificates that expire soon. Revocation, suspension and resumption are in
// revocation*.ts. Every state change is one durable write with its audit record; refusals
// are audited too (outcome 'error').
import type { AuditLog } from '../audit/audit-log.js';
import { EXT, readCertificate, type CertificateExtension } from '../asn1/certificate.js';
import { parseCsr, verifyCsr, type ParsedCsr } from '../asn1/csr.js';
import type { KeyAlgorithm } from '../crypto/interfaces.js';
import { Codes, YiqianError, fail, isYiqianError } from '../errors.js';
import { log } from '../log.js';
import { nowIso } from '../store/ids.js';
import type { Authorities } from './authorities.js';
import { createIssuer, type IssueOrder } from './certificate-issuer.js';
import { issuanceError } from './issuance-errors.js';
import { isManagedExtension, type Profile, type ProfileSet } from './profiles.js';
import { resolveExtensions, resolveSubject, type ExtensionInput, type SubjectInput } from './request-fields.js';
import { checkKeygenAlgorithm, checkPassword, generateSubjectKey, type KeygenAlgorithm } from './subject-keygen.js';
import type { CertificateQuery, CertificateRecord, CertificateRepository, CertificateStatus, Hierarchy, Page } from './types.js';

export interface IssueRequest extends SubjectInput {
  profile: string;
  /** Default: sm2 for SM2 keys, ecdsa for ECDSA and RSA keys. */
  hierarchy?: Hierarchy;
  extensions?: ExtensionInput[];
  /** Default: the profile's validityDays; at most its maxValidityDays. */
  validityDays?: number;
}

export interface CsrIssueRequest extends IssueRequest {
  /** PEM, base64 DER, or DER bytes. */
  csr: string | Buffer;
}

export interface KeygenIssueRequest extends IssueRequest {
  algorithm: KeygenAlgorithm;
  password: string;
}

/** A certificate for a key the appliance keeps (its OCSP signer, TSA, TLS key). */
export interface ApplianceIssueRequest extends IssueRequest {
  hierarchy: Hierarchy;
  /** Key inventory id of the key. */
  keyRef: string;
  publicKeyInfo: Buffer;
  keyAlgorithm: KeyAlgorithm;
}

export interface RenewRequest {
  /** A new key, by request. */
  csr?: string | Buffer;
  /** A new key made here. */
  keygen?: { algorithm: KeygenAlgorithm; password: string };
  validityDays?: number;
}

export interface IssuedCertificate {
  record: CertificateRecord;
  certificatePem: string;
  /** The issuing CA up to, not including, the root. */
  chainPem: string;
  /** Server key generation only: the private key, PEM "ENCRYPTED PRIVATE KEY". */
  encryptedPrivateKeyPem?: string;
}

export interface CertificateService {
  issueFromCsr(req: CsrIssueRequest, actor: string): Promise<IssuedCertificate>;
  issueWithKeygen(req: KeygenIssueRequest, actor: string): Promise<IssuedCertificate & { encryptedPrivateKeyPem: string }>;
  /** Also for the profiles only the appliance itself uses (tsa, ocsp). */
  issueForAppliance(req: ApplianceIssueRequest, actor: string): Promise<IssuedCertificate>;
  /** CERT_NOT_FOUND (404). */
  get(serial: string): Promise<CertificateRecord>;
  chainPem(record: CertificateRecord): Promise<string>;
  query(q: CertificateQuery, page?: { limit?: number; cursor?: string }): Promise<Page<CertificateRecord>>;
  renew(serial: string, req: RenewRequest, actor: string): Promise<IssuedCertificate>;
  /** Good, not yet renewed certificates whose notAfter is within `days` from now (the renewal reminder). */
  expiring(days: number, page?: { limit?: number; cursor?: string }): Promise<Page<CertificateRecord>>;
}

export interface CertificateServiceDeps {
  certs: CertificateRepository;
  audit: AuditLog;
  authorities: Authorities;
  profiles: ProfileSet;
  publicBaseUrl: string;
  /** Default O and C of issued subjects (config pki.organisation, pki.country). */
  organisation: string;
  country: string;
  clock?: () => number;
}

const HIERARCHIES: readonly Hierarchy[] = ['sm2', 'ecdsa'];
const STATUSES: readonly CertificateStatus[] = ['good', 'revoked', 'suspended'];
const MAX_EXPIRING_DAYS = 3650;

/** "0A:1B…", "0a1b…", "a1b" → canonical lower-case hex without leading zero octets; SERIAL_INVALID otherwise. */
export function normaliseSerial(input: unknown): string {
  const s = typeof input === 'string' ? input.replace(/[:\s]/g, '').toLowerCase() : '';
  if (!/^[0-9a-f]{1,42}$/.test(s)) {
    throw issuanceError('SERIAL_INVALID', 400, '证书序列号必须是十六进制', 'a certificate serial is hex digits (colons allowed), at most 20 octets', { serial: String(input).slice(0, 80) });
  }
  let hex = s.length % 2 ? `0${s}` : s;
  while (hex.length > 2 && hex.startsWith('00')) hex = hex.slice(2);
  if (hex.length > 40) throw issuanceError('SERIAL_INVALID', 400, '证书序列号过长', 'a certificate serial is at most 20 octets', { serial: s.slice(0, 80) });
  return hex;
}

function validActor(actor: unknown): actor is string {
  return typeof actor === 'string' && actor.length > 0 && actor.length <= 128;
}

export function createCertificateService(deps: CertificateServiceDeps): CertificateService {
  const issuer = createIssuer({ certs: deps.certs, publicBaseUrl: deps.publicBaseUrl, clock: deps.clock });
  const clock = deps.clock ?? Date.now;
  const defaults = { organisation: deps.organisation, country: deps.country };

  async function auditFailure(actor: string, action: string, target: string | undefined, err: unknown): Promise<void> {
    if (!isYiqianError(err) || !validActor(actor)) return;
    await deps.audit
      .append({ actor, action, ...(target !== undefined ? { target } : {}), outcome: 'error', detail: { code: err.code, reason: err.text.en } })
      .catch((e: Error) => log.warn({ err: e.message, action }, 'could not audit a failed certificate operation'));
  }

  async function audited<T>(actor: string, action: string, target: string | undefined, work: () => Promise<T>): Promise<T> {
    try {
      if (!validActor(actor)) fail(Codes.INTERNAL, 500, '缺少操作者', 'certificate operation without an actor');
      return await work();
    } catch (e) {
      await auditFailure(actor, action, target, e);
      throw e;
    }
  }

  function profileFor(name: unknown, internal: boolean): Profile {
    const profile = typeof name === 'string' ? deps.profiles.get(name) : undefined;
    if (!profile) {
      throw issuanceError('PROFILE_UNKNOWN', 400, `没有名为 ${String(name).slice(0, 40)} 的证书配置`, `unknown certificate profile ${String(name).slice(0, 40)} (profiles: ${[...deps.profiles.keys()].join(', ')})`, {
        profile: String(name).slice(0, 40),
      });
    }
    if (profile.issuance === 'appliance' && !internal) {
      throw issuanceError('PROFILE_NOT_ALLOWED', 400, `配置 ${profile.name} 的证书只由设备自身使用，不能通过接口签发`, `profile ${profile.name} is for keys the appliance itself keeps; it is not issued over the API`, { profile: profile.name });
    }
    return profile;
  }

  function validity(profile: Profile, days: unknown): number {
    if (days === undefined) return profile.validityDays;
    if (!Number.isInteger(days) || (days as number) < 1 || (days as number) > profile.maxValidityDays) {
      throw issuanceError('VALIDITY_INVALID', 400, `有效期必须是 1 到 ${profile.maxValidityDays} 天`, `validityDays must be an integer in 1..${profile.maxValidityDays} for profile ${profile.name}`, {
        maxValidityDays: profile.maxValidityDays,
      });
    }
    return days as number;
  }

  function hierarchyFor(requested: unknown, keyAlgorithm: KeyAlgorithm): Hierarchy {
    const natural: Hierarchy = keyAlgorithm === 'sm2' ? 'sm2' : 'ecdsa';
    if (requested === undefined) return natural;
    if (!HIERARCHIES.includes(requested as Hierarchy)) {
      throw issuanceError('HIERARCHY_UNKNOWN', 400, `没有名为 ${String(requested).slice(0, 20)} 的证书体系（sm2、ecdsa）`, `unknown hierarchy ${String(requested).slice(0, 20)} (sm2, ecdsa)`);
    }
    if (requested !== natural) throw keyMismatch(requested as Hierarchy, keyAlgorithm);
    return natural;
  }

  function keyMismatch(h: Hierarchy, keyAlgorithm: KeyAlgorithm): YiqianError {
    return issuanceError(
      'KEY_ALGORITHM_MISMATCH',
      400,
      h === 'sm2' ? `SM2 证书体系只签发 SM2 密钥，请求的是 ${keyAlgorithm}` : `ECDSA 证书体系不签发 SM2 密钥，请使用 sm2 体系`,
      h === 'sm2' ? `the SM2 hierarchy certifies SM2 keys only; this key is ${keyAlgorithm}` : `the ECDSA hierarchy certifies ECDSA and RSA keys; SM2 keys belong in the sm2 hierarchy`,
      { hierarchy: h, keyAlgorithm },
    );
  }

  async function chainPem(record: CertificateRecord): Promise<string> {
    return deps.authorities.chainPem(record.caId);
  }

  async function finish(order: IssueOrder, store?: Parameters<typeof issuer.issue>[1]): Promise<IssuedCertificate> {
    const issued = await issuer.issue(order, store);
    return { record: issued.record, certificatePem: issued.certificatePem, chainPem: await chainPem(issued.record) };
  }

  /** Everything a request decides except the key. */
  function prepare(req: IssueRequest, internal: boolean, csr?: ParsedCsr) {
    const profile = profileFor(req.profile, internal);
    const subject = resolveSubject(profile, req, defaults, csr?.subject);
    const extra = resolveExtensions(profile, req.extensions);
    const validityDays = validity(profile, req.validityDays);
    return { profile, subject, extra, validityDays };
  }

  async function get(serialInput: string): Promise<CertificateRecord> {
    const serial = normaliseSerial(serialInput);
    const record = await deps.certs.get(serial);
    if (!record) throw issuanceError('CERT_NOT_FOUND', 404, `没有序列号为 ${serial} 的证书`, `no certificate with serial ${serial}`, { serial });
    return record;
  }

  function checkQuery(q: CertificateQuery): CertificateQuery {
    const out: CertificateQuery = {};
    if (q.serial !== undefined) out.serial = normaliseSerial(q.serial);
    for (const k of ['subject', 'employeeId', 'departmentId', 'profile'] as const) {
      const v = q[k];
      if (v === undefined) continue;
      if (typeof v !== 'string' || v.length === 0 || v.length > 256) fail(Codes.BAD_REQUEST, 400, `查询参数 ${k} 无效`, `query parameter ${k} must be 1–256 characters`);
      out[k] = v;
    }
    if (q.status !== undefined) {
      if (!STATUSES.includes(q.status)) fail(Codes.BAD_REQUEST, 400, `status 必须是 ${STATUSES.join('、')}`, `status must be one of ${STATUSES.join(', ')}`);
      out.status = q.status;
    }
    if (q.caId !== undefined) out.caId = q.caId;
    for (const k of ['expiresBefore', 'expiresAfter'] as const) {
      const v = q[k];
      if (v === undefined) continue;
      if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) fail(Codes.BAD_REQUEST, 400, `${k} 必须是 ISO 8601 时间`, `${k} must be an ISO 8601 time`);
      out[k] = new Date(Date.parse(v)).toISOString();
    }
    if (q.renewed !== undefined) out.renewed = q.renewed;
    return out;
  }

  return {
    issueFromCsr(req, actor) {
      return audited(actor, 'cert.issue', undefined, async () => {
        const csr = parseCsr(req.csr);
        const p = prepare(req, false, csr);
        const hierarchy = hierarchyFor(req.hierarchy, csr.keyAlgorithm);
        await verifyCsr(csr); // proof of possession, last of the checks (the costly one)
        const ca = await deps.authorities.issuing(hierarchy);
        return finish({ ca, ...p, publicKeyInfo: csr.publicKeyInfo, keyAlgorithm: csr.keyAlgorithm, keyOrigin: 'csr', actor });
      });
    },

    issueWithKeygen(req, actor) {
      return audited(actor, 'cert.issue', undefined, async () => {
        const p = prepare(req, false);
        const algorithm = checkKeygenAlgorithm(req.algorithm);
        const hierarchy = hierarchyFor(req.hierarchy, algorithm);
        const password = checkPassword(req.password);
        const ca = await deps.authorities.issuing(hierarchy);
        const key = await generateSubjectKey(algorithm, password);
        const issued = await finish({ ca, ...p, publicKeyInfo: key.publicKeyInfo, keyAlgorithm: key.keyAlgorithm, keyOrigin: 'server', actor });
        return { ...issued, encryptedPrivateKeyPem: key.encryptedPrivateKeyPem };
      });
    },

    issueForAppliance(req, actor) {
      return audited(actor, 'cert.issue', undefined, async () => {
        const p = prepare(req, true);
        const hierarchy = hierarchyFor(req.hierarchy, req.keyAlgorithm);
        const ca = await deps.authorities.issuing(hierarchy);
        return finish({ ca, ...p, publicKeyInfo: req.publicKeyInfo, keyAlgorithm: req.keyAlgorithm, keyOrigin: 'appliance', keyRef: req.keyRef, actor });
      });
    },

    get,
    chainPem,

    async query(q, page) {
      return deps.certs.query(checkQuery(q), page);
    },

    renew(serialInput, req, actor) {
      return audited(actor, 'cert.renew', typeof serialInput === 'string' ? serialInput.slice(0, 64) : undefined, async () => {
        const old = await get(serialInput);
        const notRenewable = (cur: CertificateRecord): YiqianError | undefined => {
          if (cur.status !== 'good') {
            return issuanceError('CERT_NOT_RENEWABLE', 409, `证书 ${cur.serial} 已${cur.status === 'revoked' ? '吊销' : '挂失'}，不能更新`, `certificate ${cur.serial} is ${cur.status} and cannot be renewed`, { serial: cur.serial, status: cur.status });
          }
          if (cur.renewedBy !== undefined) {
            return issuanceError('CERT_NOT_RENEWABLE', 409, `证书 ${cur.serial} 已由 ${cur.renewedBy} 更新`, `certificate ${cur.serial} was already renewed by ${cur.renewedBy}`, { serial: cur.serial, renewedBy: cur.renewedBy });
          }
          return undefined;
        };
        const refusal = notRenewable(old);
        if (refusal) throw refusal;
        if (req.csr !== undefined && req.keygen !== undefined) fail(Codes.BAD_REQUEST, 400, 'csr 与 keygen 只能给出一个', 'give csr or keygen, not both');
        const profile = profileFor(old.profile, false);
        const validityDays = validity(profile, req.validityDays);

        // Subject, subjectAltName and the request's own extensions come from the old certificate
        // verbatim; the CA's extensions are made afresh from the profile as it is now.
        const oldCert = readCertificate(Buffer.from(old.certificate, 'base64'));
        const extra: CertificateExtension[] = oldCert.extensions
          .filter((e) => e.oid === EXT.subjectAltName || !isManagedExtension(e.oid))
          .map((e) => ({ kind: 'raw', oid: e.oid, critical: e.critical, value: e.value }));

        let publicKeyInfo: Buffer = Buffer.from(old.publicKeyInfo, 'base64');
        let keyAlgorithm = old.keyAlgorithm;
        let keyOrigin = old.keyOrigin;
        let keyRef = old.keyRef;
        let encryptedPrivateKeyPem: string | undefined;
        if (req.csr !== undefined) {
          const csr = parseCsr(req.csr);
          if (hierarchyOf(csr.keyAlgorithm) !== old.hierarchy) throw keyMismatch(old.hierarchy, csr.keyAlgorithm);
          await verifyCsr(csr);
          ({ publicKeyInfo, keyAlgorithm } = csr);
          keyOrigin = 'csr';
          keyRef = undefined;
        } else if (req.keygen !== undefined) {
          const algorithm = checkKeygenAlgorithm(req.keygen.algorithm);
          if (hierarchyOf(algorithm) !== old.hierarchy) throw keyMismatch(old.hierarchy, algorithm);
          const key = await generateSubjectKey(algorithm, checkPassword(req.keygen.password));
          ({ publicKeyInfo, keyAlgorithm, encryptedPrivateKeyPem } = key);
          keyOrigin = 'server';
          keyRef = undefined;
        }
        const ca = await deps.authorities.issuing(old.hierarchy);
        const issued = await finish(
          {
            ca,
            profile,
            subject: {
              name: oldCert.subjectDer,
              commonName: old.commonName,
              ...(old.employeeId !== undefined ? { employeeId: old.employeeId } : {}),
              ...(old.departmentId !== undefined ? { departmentId: old.departmentId } : {}),
              ...(old.titleLevel !== undefined ? { titleLevel: old.titleLevel } : {}),
            },
            extra,
            validityDays,
            publicKeyInfo,
            keyAlgorithm,
            keyOrigin,
            ...(keyRef !== undefined ? { keyRef } : {}),
            renewedFrom: old.serial,
            actor,
          },
          (record, audit) => {
            if (!deps.certs.insertRenewal) throw new Error('the certificate repository cannot renew atomically');
            return deps.certs.insertRenewal(
              record,
              old.serial,
              (cur) => {
                if (!cur) throw issuanceError('CERT_NOT_FOUND', 404, `没有序列号为 ${old.serial} 的证书`, `no certificate with serial ${old.serial}`, { serial: old.serial });
                const refused = notRenewable(cur); // changed since we looked: revoked meanwhile
                if (refused) throw refused;
                return { ...cur, renewedBy: record.serial, updatedAt: nowIso() };
              },
              { audit },
            );
          },
        );
        return encryptedPrivateKeyPem !== undefined ? { ...issued, encryptedPrivateKeyPem } : issued;
      });
    },

    async expiring(days, page) {
      if (!Number.isInteger(days) || days < 1 || days > MAX_EXPIRING_DAYS) {
        fail(Codes.BAD_REQUEST, 400, `days 必须是 1 到 ${MAX_EXPIRING_DAYS} 的整数`, `days must be an integer in 1..${MAX_EXPIRING_DAYS}`);
      }
      const now = clock();
      return deps.certs.query(
        { status: 'good', renewed: false, expiresAfter: new Date(now).toISOString(), expiresBefore: new Date(now + days * 86_400_000).toISOString() },
        page,
      );
    },
  };
}

function hierarchyOf(alg: KeyAlgorithm): Hierarchy {
  return alg === 'sm2' ? 'sm2' : 'ecdsa';
}

