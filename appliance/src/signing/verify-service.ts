// The verification service (issue 4 item 3): raw signatures, CMS SignedData in both forms
// (GB/T 35275 and RFC 5652) and certificates, answered with a structured VerificationReport
// (signing/types.ts). Levels as GB/T 38629-2020 verifyLevel (STANDARDS.md §4): 0 — the signer
// certificate is within its validity at the judging time; 1 — + its path to the trust store
// (RFC 5280 §6.1, pki/path-validation.ts); 2 — + revocation of every certificate of the path
// (RevocationChecker: our CA directly, imported CRLs, OCSP).
//
// The judging time (GB/T 38629: a signature is valid when its certificate was valid when it was
// made): the genTime of a valid signature time-stamp (CAdES-T, ETSI EN 319 122-1 §5.3), else a
// time the caller vouches for (`at`), else now. The signingTime attribute (RFC 5652 §11.3) is
// reported, never trusted: the signer asserts it, so a stolen key could backdate signatures past
// its revocation (ETSI EN 319 102-1 §5.6.2: only a proof of existence moves the judging time).
//
// Never throws for a bad signature or certificate: the report says which check failed, `code`
// names the first failure and `gbtCode` its GB/T 38629 Annex B code (report-codes.ts). Throws a
// YiqianError (4xx) only for a malformed request.
//
// Speed (the bench verifies hundreds/s with chain and revocation): the trust material is asked
// for on every verification (the trust store caches it and drops its cache on every change), but
// parsed again only when it differs from the last one; a valid certificate path is cached per
// (leaf, embedded certificates, trust material) and reused for any judging time inside the
// validity of every certificate on it — path building and the link signatures depend on nothing
// else. A change of the trust store therefore takes effect with the next verification.
import { createHash } from 'node:crypto';
import { readCertificate, type CertificateInfo } from '../asn1/certificate.js';
import { parseSignedData, type ParsedSignedData } from '../asn1/cms-signed-data.js';
import { nameValue } from '../asn1/name.js';
import { hashLength } from '../crypto/hash.js';
import type { HashAlgorithm, KeyAlgorithm, SignOptions } from '../crypto/interfaces.js';
import { defaultHash, keyAlgorithmOfSpki, verifySignature } from '../crypto/verify.js';
import { YiqianError } from '../errors.js';
import { certificateId, safeNameString, validatePath, type PathResult } from '../pki/path-validation.js';
import type { CertificateRepository } from '../pki/types.js';
import { verifyCms as verifyCmsSignature, type CmsCheckName } from './cms-verify.js';
import { ReportCodes, VerifyRequestCodes, gbtCodeOf, type ReportCode } from './report-codes.js';
import { OID_SIGNATURE_TIMESTAMP_TOKEN, checkSignatureTimestamp, type TimestampCheck } from './timestamp-check.js';
import type {
  CertificateValidationRequest,
  CmsVerifyRequest,
  HeldKeyView,
  RawVerifyRequest,
  ReportCheck,
  RevocationChecker,
  RevocationReport,
  SignerIdentity,
  TrustMaterial,
  TrustStore,
  VerificationReport,
  VerificationService,
  VerifyLevel,
} from './types.js';

/** Valid paths kept (LRU by insertion). */
const PATH_CACHE_SIZE = 2048;

export interface VerificationDeps {
  trust: TrustStore;
  revocation: RevocationChecker;
  /** Our issued certificates: certSerial lookup and the signer's staff / department. */
  certs: Pick<CertificateRepository, 'get'>;
  /** Names the held key in the signer identity: HeldKeys, or the held-key repository (only these fields are read). */
  heldKeys?: { findByCertSerial(serial: string): Promise<Pick<HeldKeyView, 'id' | 'label' | 'kind' | 'employeeId' | 'departmentId'> | undefined> };
  clock?: () => Date;
}

/** zh-CN labels of the report checks. */
export const CHECK_LABELS: Record<string, string> = {
  structure: '格式正确',
  certificateFormat: '证书格式正确',
  signerFound: '找到签名者证书',
  algorithm: '算法受支持',
  contentType: '内容类型一致',
  contentIntact: '原文未改',
  signingCertificate: '签名证书一致',
  signatureIntact: '签名未改',
  timestamp: '时间戳',
  timestampImprint: '时间戳摘要',
  certificateValidity: '证书有效期',
  chain: '证书链',
  revocation: '证书状态',
};

const CMS_CODES: Record<CmsCheckName, ReportCode> = {
  structure: ReportCodes.CMS_MALFORMED,
  signerFound: ReportCodes.SIGNER_NOT_FOUND,
  algorithm: ReportCodes.ALGORITHM_UNSUPPORTED,
  contentType: ReportCodes.CONTENT_TYPE_MISMATCH,
  contentIntact: ReportCodes.CONTENT_ALTERED,
  signingCertificate: ReportCodes.SIGNING_CERTIFICATE_MISMATCH,
  signatureIntact: ReportCodes.SIGNATURE_INVALID,
};

const LEVELS: readonly VerifyLevel[] = [0, 1, 2];
const HASHES = new Set(['sha256', 'sha384', 'sha512']);
const PADDINGS = new Set(['pkcs1', 'pss']);

function requestError(code: string, status: number, zh: string, en: string, detail?: Record<string, unknown>): YiqianError {
  return new YiqianError(code, status, { zh, en }, detail);
}

function invalid(zh: string, en: string, field: string): never {
  throw requestError(VerifyRequestCodes.VERIFY_REQUEST_INVALID, 400, zh, en, { field });
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function checkLevel(level: unknown): VerifyLevel {
  if (level === undefined) return 2;
  if (!LEVELS.includes(level as VerifyLevel)) invalid('level 必须是 0、1 或 2', 'level must be 0, 1 or 2', 'level');
  return level as VerifyLevel;
}

function checkAt(at: unknown): Date | undefined {
  if (at === undefined) return undefined;
  if (!(at instanceof Date) || Number.isNaN(at.getTime())) invalid('at 必须是有效时间', 'at must be a valid time', 'at');
  return at;
}

function nonEmpty(b: unknown): b is Buffer {
  return Buffer.isBuffer(b) && b.length > 0;
}

/** A check as collected: its failure code decides the report's code (first failed check wins). */
interface Collected extends ReportCheck {
  code?: ReportCode;
}

class Checks {
  readonly list: Collected[] = [];
  add(name: string, ok: boolean | null, code: ReportCode | undefined, reason?: string): boolean | null {
    this.list.push({ name, ok, label: CHECK_LABELS[name] ?? name, ...(reason !== undefined && ok !== true ? { reason } : {}), ...(ok === false && code ? { code } : {}) });
    return ok;
  }
  skip(name: string, reason: string): void {
    this.add(name, null, undefined, reason);
  }
  firstFailure(): Collected | undefined {
    return this.list.find((c) => c.ok === false);
  }
  out(): ReportCheck[] {
    return this.list.map(({ code: _code, ...c }) => c);
  }
}

interface ParsedTrust {
  material: TrustMaterial;
  /** Identifies this material in the path cache. */
  generation: string;
  /** `${serial}|${subject}` → DER, to turn a validated chain back into DER for the revocation checker. */
  byId: Map<string, Buffer>;
}

interface CachedPath {
  result: PathResult;
  der: Buffer[];
  from: number;
  to: number;
}

/**
 * The identity fields a certificate alone gives, worked out once per parsed certificate:
 * readCertificate shares one CertificateInfo per distinct DER, so the names of a signer seen on
 * every push are not decoded again (copied out: the report's object is the caller's).
 */
const NAMES = new WeakMap<CertificateInfo, Pick<SignerIdentity, 'subject' | 'serial' | 'issuer' | 'notBefore' | 'notAfter' | 'commonName'>>();
function namesOf(info: CertificateInfo): Pick<SignerIdentity, 'subject' | 'serial' | 'issuer' | 'notBefore' | 'notAfter' | 'commonName'> {
  let names = NAMES.get(info);
  if (!names) {
    names = {
      subject: safeNameString(info.subjectDer),
      serial: info.serial,
      issuer: safeNameString(info.issuerDer),
      notBefore: info.notBefore.toISOString(),
      notAfter: info.notAfter.toISOString(),
    };
    try {
      const cn = nameValue(info.subjectDer, 'CN');
      if (cn !== undefined) names.commonName = cn;
    } catch {
      // a Name that does not decode has no common name
    }
    NAMES.set(info, names);
  }
  return names;
}

/**
 * The DER of a certificate record, decoded once per record object: the repository hands out
 * the same (frozen) object while the stored bytes do not change (store/reparse-on-change.ts).
 */
const RECORD_DER = new WeakMap<object, Buffer>();
function recordDer(rec: { certificate: string }): Buffer {
  let der = RECORD_DER.get(rec);
  if (!der) {
    der = Buffer.from(rec.certificate, 'base64');
    RECORD_DER.set(rec, der);
  }
  return der;
}

export function createVerificationService(deps: VerificationDeps): VerificationService & { clearCaches(): void } {
  const clock = deps.clock ?? (() => new Date());
  let trust: ParsedTrust | undefined;
  const paths = new Map<string, CachedPath>();

  const sameList = (a: Buffer[], b: Buffer[]): boolean => a.length === b.length && a.every((x, i) => x === b[i] || x.equals(b[i]));

  function parseTrust(material: TrustMaterial): ParsedTrust {
    const h = createHash('sha256');
    const byId = new Map<string, Buffer>();
    for (const list of [material.anchors, material.intermediates]) {
      h.update(String(list.length));
      for (const der of list) {
        h.update(der);
        try {
          byId.set(certificateId(readCertificate(der)), der);
        } catch {
          // An unreadable trust certificate never builds a path; path validation skips it too.
        }
      }
    }
    return { material, generation: h.digest('hex'), byId };
  }

  /** The trust store's material now, parsed again only when it changed (same buffers: a reference check). */
  async function currentTrust(): Promise<ParsedTrust> {
    const material = await deps.trust.material();
    const last = trust;
    if (last && sameList(last.material.anchors, material.anchors) && sameList(last.material.intermediates, material.intermediates)) return last;
    trust = parseTrust(material);
    return trust;
  }

  /** validatePath with the path cache; also the DER of the path (leaf first, anchor last) when valid. */
  async function path(leaf: Buffer, embedded: Buffer[], at: Date): Promise<{ result: PathResult; der?: Buffer[] }> {
    const t = await currentTrust();
    const h = createHash('sha256').update(t.generation).update(leaf);
    for (const c of embedded) h.update(c);
    const key = h.digest('hex');
    const hit = paths.get(key);
    const when = at.getTime();
    if (hit && when >= hit.from && when <= hit.to) return { result: hit.result, der: hit.der };
    const result = await validatePath({ leaf, intermediates: [...embedded, ...t.material.intermediates], trustAnchors: t.material.anchors, at });
    if (!result.valid) return { result };
    // Back to DER: the chain names each certificate by serial and subject. The leaf is the leaf;
    // for the others the trust store's certificate wins over an embedded one of the same name
    // (a CMS may carry a damaged or forged copy of a trusted CA); two different embedded
    // certificates of one name are ambiguous and give no DER path (revocation then fails).
    const embeddedById = new Map<string, Buffer[]>();
    for (const c of embedded) {
      try {
        const id = certificateId(readCertificate(c));
        const list = embeddedById.get(id) ?? [];
        if (!list.some((x) => x.equals(c))) list.push(c);
        embeddedById.set(id, list);
      } catch {
        // not a certificate: it cannot be on the path
      }
    }
    const der = result.chain.map((c, i) => {
      if (i === 0) return leaf;
      const id = certificateId(c);
      const own = embeddedById.get(id);
      return t.byId.get(id) ?? (own?.length === 1 ? own[0] : undefined);
    });
    if (der.some((d) => d === undefined)) return { result };
    const from = Math.max(...result.chain.map((c) => Date.parse(c.notBefore)));
    const to = Math.min(...result.chain.map((c) => Date.parse(c.notAfter)));
    if (paths.size >= PATH_CACHE_SIZE) paths.delete(paths.keys().next().value as string);
    paths.set(key, { result, der: der as Buffer[], from, to });
    return { result, der: der as Buffer[] };
  }

  async function identity(info: CertificateInfo, der: Buffer): Promise<SignerIdentity> {
    const id: SignerIdentity = { ...namesOf(info) };
    // Ours only when the very certificate is on record (an external CA may reuse a serial).
    const rec = await deps.certs.get(info.serial).catch(() => undefined);
    if (rec && recordDer(rec).equals(der)) {
      if (rec.employeeId) id.employeeId = rec.employeeId;
      if (rec.departmentId) id.departmentId = rec.departmentId;
      const held = await deps.heldKeys?.findByCertSerial(info.serial).catch(() => undefined);
      if (held) {
        id.heldKey = { id: held.id, label: held.label, kind: held.kind };
        if (!id.employeeId && held.employeeId) id.employeeId = held.employeeId;
        if (!id.departmentId && held.departmentId) id.departmentId = held.departmentId;
      }
    }
    return id;
  }

  /** certificateValidity, chain, revocation by level at `at`. */
  async function certificateChecks(
    checks: Checks,
    cert: { info: CertificateInfo; der: Buffer } | undefined,
    embedded: Buffer[],
    level: VerifyLevel,
    at: Date,
  ): Promise<{ chain?: PathResult['chain']; revocation?: RevocationReport }> {
    if (!cert) {
      const why = 'no signer certificate to check';
      checks.skip('certificateValidity', why);
      checks.skip('chain', why);
      checks.skip('revocation', why);
      return {};
    }
    const t = at.getTime();
    const { info } = cert;
    if (t < info.notBefore.getTime()) checks.add('certificateValidity', false, ReportCodes.CERT_NOT_YET_VALID, `not valid before ${info.notBefore.toISOString()} (judged at ${at.toISOString()})`);
    else if (t > info.notAfter.getTime()) checks.add('certificateValidity', false, ReportCodes.CERT_EXPIRED, `expired at ${info.notAfter.toISOString()} (judged at ${at.toISOString()})`);
    else checks.add('certificateValidity', true, undefined);

    if (level < 1) {
      checks.skip('chain', 'not checked at level 0');
      checks.skip('revocation', 'not checked at level 0');
      return {};
    }
    const p = await path(cert.der, embedded, at);
    const r = p.result;
    if (r.valid) checks.add('chain', true, undefined);
    else {
      const reason = r.checks.filter((c) => !c.ok).map((c) => c.reason ?? c.name).join('; ');
      const code = (r.code && r.code in ReportCodes ? r.code : ReportCodes.CERT_PATH_INVALID) as ReportCode;
      checks.add('chain', false, code, reason || 'the certificate path is not valid');
    }
    if (level < 2) {
      checks.skip('revocation', 'not checked at level 1');
      return { chain: r.chain };
    }
    if (!r.valid) {
      checks.skip('revocation', 'not checked: no valid certificate path');
      return { chain: r.chain };
    }
    if (!p.der) {
      checks.add('revocation', false, ReportCodes.REVOCATION_UNKNOWN, 'the certificates of the path are ambiguous (two different certificates of one name)');
      return { chain: r.chain };
    }
    let rev: RevocationReport;
    try {
      rev = await deps.revocation.check(p.der, at);
    } catch (e) {
      checks.add('revocation', false, ReportCodes.REVOCATION_UNKNOWN, `revocation check failed: ${message(e)}`);
      return { chain: r.chain };
    }
    const revoked = rev.certificates.find((c) => c.status === 'revoked');
    const unknown = rev.certificates.find((c) => c.status === 'unknown');
    if (revoked) {
      checks.add('revocation', false, ReportCodes.CERT_REVOKED, `${revoked.subject} (serial ${revoked.serial}) revoked${revoked.revokedAt ? ` at ${revoked.revokedAt}` : ''}${revoked.reason ? ` (${revoked.reason})` : ''}${revoked.source ? ` [${revoked.source}]` : ''}`);
    } else if (unknown || !rev.ok) {
      checks.add('revocation', false, ReportCodes.REVOCATION_UNKNOWN, unknown ? `${unknown.subject} (serial ${unknown.serial}): status unknown${unknown.detail ? ` (${unknown.detail})` : ''}` : 'revocation status not established');
    } else {
      const sources = [...new Set(rev.certificates.map((c) => c.source).filter(Boolean))].join(', ');
      checks.add('revocation', true, undefined, sources ? `good [${sources}]` : 'good');
    }
    return { chain: r.chain, revocation: rev };
  }

  function finish(checks: Checks, base: Omit<VerificationReport, 'valid' | 'code' | 'gbtCode' | 'checks'>): VerificationReport {
    const failed = checks.firstFailure();
    const code = failed ? (failed.code ?? ReportCodes.INTERNAL) : ReportCodes.OK;
    return { valid: !failed, code, gbtCode: gbtCodeOf(code), ...base, checks: checks.out() };
  }

  function readCert(der: Buffer): { info: CertificateInfo; der: Buffer } | string {
    try {
      return { info: readCertificate(der), der };
    } catch (e) {
      return message(e);
    }
  }

  async function verifyCms(req: CmsVerifyRequest): Promise<VerificationReport> {
    if (!nonEmpty(req?.cms)) throw requestError(VerifyRequestCodes.SIGNATURE_REQUIRED, 400, '缺少 CMS 签名', 'the CMS signature is missing');
    const level = checkLevel(req.level);
    if (req.content !== undefined && !Buffer.isBuffer(req.content)) invalid('content 必须是字节', 'content must be bytes', 'content');
    if (req.at !== undefined && !(req.at instanceof Date && !Number.isNaN(req.at.getTime()))) invalid('at 必须是时间', 'at must be a valid time', 'at');
    let sd: ParsedSignedData | undefined;
    try {
      sd = req.parsed ?? parseSignedData(req.cms);
    } catch {
      sd = undefined; // verifyCmsSignature reports the structure failure with its reason
    }
    if (sd && sd.content === undefined && req.content === undefined) {
      throw requestError(VerifyRequestCodes.CONTENT_REQUIRED, 400, '分离式签名须提供原文', 'a detached signature needs the original content');
    }
    const now = clock();
    const r = await verifyCmsSignature(req.cms, { ...(req.content !== undefined ? { content: req.content } : {}), ...(sd ? { parsed: sd } : {}) });
    const checks = new Checks();
    for (const c of r.checks) checks.add(c.name, c.ok, CMS_CODES[c.name], c.reason);

    // Signature time-stamp (CAdES-T): the unsigned attribute of the one SignerInfo.
    const si = sd?.signerInfos.length === 1 ? sd.signerInfos[0] : undefined;
    const tsAttr = si?.unsignedAttrs.find((a) => a.type === OID_SIGNATURE_TIMESTAMP_TOKEN);
    let ts: TimestampCheck | undefined;
    if (si && tsAttr) {
      if (tsAttr.values.length !== 1) ts = { ok: false, imprintOk: null, reason: `${tsAttr.values.length} time-stamp tokens in one attribute (one is supported)` };
      else {
        const t = await currentTrust();
        // Level 2 checks the TSA's certificates for revocation as it does the signer's.
        ts = await checkSignatureTimestamp(Buffer.from(tsAttr.values[0].raw), si.signature, level >= 2 ? { ...t.material, revocation: deps.revocation } : t.material);
      }
      checks.add('timestampImprint', ts.imprintOk, ReportCodes.TIMESTAMP_INVALID, ts.imprintOk === null ? ts.reason : ts.imprintReason);
      checks.add('timestamp', ts.ok, ReportCodes.TIMESTAMP_INVALID, ts.reason);
    } else {
      checks.skip('timestampImprint', 'no signature time-stamp');
      checks.skip('timestamp', 'no signature time-stamp');
    }

    const judgedAtSource: VerificationReport['judgedAtSource'] = ts?.ok && ts.genTime ? 'timestamp' : req.at ? 'request' : 'now';
    const judgedAt = judgedAtSource === 'timestamp' ? ts!.genTime! : judgedAtSource === 'request' ? req.at! : now;

    const parsed = r.certificate ? readCert(r.certificate) : undefined;
    const cert = parsed && typeof parsed !== 'string' ? parsed : undefined;
    const extra = await certificateChecks(checks, cert, sd?.certificates ?? [], level, judgedAt);
    return finish(checks, {
      level,
      form: r.form ?? sd?.form ?? 'rfc5652',
      ...(cert ? { signer: await identity(cert.info, cert.der) } : {}),
      judgedAt: judgedAt.toISOString(),
      judgedAtSource,
      ...(r.signingTime ? { signingTime: r.signingTime.toISOString() } : {}),
      ...(ts
        ? {
            timestamp: {
              genTime: ts.genTime?.toISOString() ?? '',
              tsa: ts.tsa ?? '',
              serial: ts.serial ?? '',
              ok: ts.ok,
              ...(ts.reason ? { reason: ts.reason } : {}),
            },
          }
        : {}),
      ...(extra.chain ? { chain: extra.chain } : {}),
      ...(extra.revocation ? { revocation: extra.revocation } : {}),
      ...(sd?.content && r.content ? { content: r.content.toString('base64') } : {}),
    });
  }

  async function certificateFor(req: RawVerifyRequest): Promise<Buffer> {
    const hasDer = req.certificate !== undefined;
    const hasSerial = req.certSerial !== undefined;
    if (hasDer === hasSerial) {
      throw requestError(VerifyRequestCodes.CERTIFICATE_REQUIRED, 400, '须提供 certificate 或 certSerial 之一', 'give exactly one of certificate and certSerial');
    }
    if (hasDer) {
      if (!nonEmpty(req.certificate)) invalid('certificate 不能为空', 'certificate must not be empty', 'certificate');
      return req.certificate;
    }
    const raw = typeof req.certSerial === 'string' ? req.certSerial.replace(/[:\s]/g, '').toLowerCase() : '';
    if (!/^[0-9a-f]{1,42}$/.test(raw)) invalid('certSerial 必须是十六进制', 'certSerial must be hex digits', 'certSerial');
    // As CertificateRecord.serial: whole octets, no leading zero octets.
    let serial = raw.length % 2 ? `0${raw}` : raw;
    while (serial.length > 2 && serial.startsWith('00')) serial = serial.slice(2);
    const rec = await deps.certs.get(serial);
    if (!rec) throw requestError(VerifyRequestCodes.CERT_NOT_FOUND, 404, `证书 ${serial} 不存在`, `no certificate with serial ${serial}`, { serial });
    return Buffer.from(rec.certificate, 'base64');
  }

  async function verifyRaw(req: RawVerifyRequest): Promise<VerificationReport> {
    if (!req || typeof req !== 'object') invalid('请求无效', 'invalid request', 'request');
    if (!nonEmpty(req.signature)) throw requestError(VerifyRequestCodes.SIGNATURE_REQUIRED, 400, '缺少签名值', 'the signature is missing');
    if ((req.data === undefined) === (req.digest === undefined)) {
      throw requestError(VerifyRequestCodes.DATA_OR_DIGEST_REQUIRED, 400, '须提供 data 或 digest 之一', 'give exactly one of data and digest');
    }
    const message_ = (req.data ?? req.digest) as unknown;
    if (!Buffer.isBuffer(message_)) invalid('data/digest 必须是字节', 'data / digest must be bytes', req.data !== undefined ? 'data' : 'digest');
    if (req.sm2Id !== undefined && (!Buffer.isBuffer(req.sm2Id) || req.digest !== undefined)) {
      invalid('sm2Id 只能与 data 一起使用', 'sm2Id goes with data only (a digest already contains Z_A)', 'sm2Id');
    }
    if (req.hash !== undefined && !HASHES.has(req.hash)) invalid('hash 必须是 sha256、sha384 或 sha512', 'hash must be sha256, sha384 or sha512', 'hash');
    if (req.rsaPadding !== undefined && !PADDINGS.has(req.rsaPadding)) invalid('rsaPadding 必须是 pkcs1 或 pss', 'rsaPadding must be pkcs1 or pss', 'rsaPadding');
    const level = checkLevel(req.level);
    const at = checkAt(req.at);
    const certDer = await certificateFor(req);
    const judgedAt = at ?? clock();
    const judgedAtSource = at ? 'request' : 'now';
    const checks = new Checks();
    const base = { level, form: 'raw' as const, judgedAt: judgedAt.toISOString(), judgedAtSource: judgedAtSource as VerificationReport['judgedAtSource'] };

    const parsed = readCert(certDer);
    if (typeof parsed === 'string') {
      checks.add('certificateFormat', false, ReportCodes.CERT_DECODE_FAILED, `not a DER X.509 certificate: ${parsed}`);
      for (const n of ['algorithm', 'structure', 'signatureIntact', 'certificateValidity', 'chain', 'revocation']) checks.skip(n, 'no certificate');
      return finish(checks, base);
    }
    checks.add('certificateFormat', true, undefined);
    const cert = parsed;

    // algorithm: the certificate key and the options that fit it.
    let alg: KeyAlgorithm | undefined;
    let algProblem: string | undefined;
    try {
      alg = keyAlgorithmOfSpki(cert.info.publicKeyInfo);
    } catch (e) {
      algProblem = `the certificate key is not supported: ${message(e)}`;
    }
    if (alg === 'sm2' && req.hash !== undefined) algProblem = 'SM2 signs with SM3 only (hash does not apply)';
    else if (alg && !alg.startsWith('rsa') && req.rsaPadding !== undefined) algProblem = `rsaPadding does not apply to ${alg}`;
    checks.add('algorithm', algProblem === undefined, ReportCodes.ALGORITHM_UNSUPPORTED, algProblem);

    let hash: HashAlgorithm | undefined;
    if (alg && !algProblem) {
      hash = alg === 'sm2' ? 'sm3' : (req.hash ?? defaultHash(alg));
      // A digest must be as long as the hash: SM2 e = SM3(Z_A‖M) 32 bytes (GB/T 38629 "sign a digest").
      if (req.digest !== undefined && req.digest.length !== hashLength(hash)) {
        checks.add('structure', false, ReportCodes.DIGEST_LENGTH_INVALID, `the digest has ${req.digest.length} bytes, ${hash} has ${hashLength(hash)}`);
      } else checks.add('structure', true, undefined);
    } else checks.skip('structure', 'algorithm not supported');

    if (alg && hash && checks.firstFailure() === undefined) {
      const opts: SignOptions = {
        ...(alg === 'sm2' ? {} : { hash }),
        ...(alg.startsWith('rsa') ? { rsaPadding: req.rsaPadding ?? 'pkcs1' } : {}),
        ...(req.sm2Id ? { sm2Id: req.sm2Id } : {}),
        ...(req.digest !== undefined ? { prehashed: true } : {}),
      };
      let ok = false;
      let reason = 'the signature does not verify with the certificate key';
      try {
        ok = await verifySignature(alg, cert.info.publicKeyInfo, message_ as Buffer, req.signature, opts);
      } catch (e) {
        reason = `signature not verifiable: ${message(e)}`;
      }
      checks.add('signatureIntact', ok, ReportCodes.SIGNATURE_INVALID, reason);
    } else checks.skip('signatureIntact', 'not checked: the request does not fit the certificate');

    const extra = await certificateChecks(checks, cert, [], level, judgedAt);
    return finish(checks, {
      ...base,
      signer: await identity(cert.info, cert.der),
      ...(extra.chain ? { chain: extra.chain } : {}),
      ...(extra.revocation ? { revocation: extra.revocation } : {}),
    });
  }

  async function validateCertificate(req: CertificateValidationRequest): Promise<VerificationReport> {
    if (!nonEmpty(req?.certificate)) throw requestError(VerifyRequestCodes.CERTIFICATE_REQUIRED, 400, '缺少证书', 'the certificate is missing');
    const level = checkLevel(req.level);
    const at = checkAt(req.at);
    const judgedAt = at ?? clock();
    const checks = new Checks();
    const base = { level, form: 'raw' as const, judgedAt: judgedAt.toISOString(), judgedAtSource: (at ? 'request' : 'now') as VerificationReport['judgedAtSource'] };
    const parsed = readCert(req.certificate);
    if (typeof parsed === 'string') {
      checks.add('certificateFormat', false, ReportCodes.CERT_DECODE_FAILED, `not a DER X.509 certificate: ${parsed}`);
      for (const n of ['certificateValidity', 'chain', 'revocation']) checks.skip(n, 'no certificate');
      return finish(checks, base);
    }
    checks.add('certificateFormat', true, undefined);
    const extra = await certificateChecks(checks, parsed, [], level, judgedAt);
    return finish(checks, {
      ...base,
      signer: await identity(parsed.info, parsed.der),
      ...(extra.chain ? { chain: extra.chain } : {}),
      ...(extra.revocation ? { revocation: extra.revocation } : {}),
    });
  }

  return {
    verifyRaw,
    verifyCms,
    validateCertificate,
    clearCaches() {
      trust = undefined;
      paths.clear();
    },
  };
}
