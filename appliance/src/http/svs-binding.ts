// GB/T 38629-2020 HTTP binding (Annex A; GM/T 0029-2014 Annex B/C lineage) so that clients
// written against other vendors' signature/verification servers (签名验签服务器) can switch to
// the appliance. Field names, request types and codes: signing/svs-codes.ts (sources there);
// docs/gbt38629.md has one curl example per request type.
//
//   POST /svs/<reqType>   reqType = the request type's name (any letter case) or number 0–12
//                         as the LAST path segment (a client may keep its own prefix: /svs/x/SignData)
//   Content-Type application/x-www-form-urlencoded (UTF-8): INTEGER decimal, BOOLEAN TRUE/FALSE,
//                octet strings and certificates Base64 → the answer in the same encoding;
//                application/json: the same fields flat, or a vendor-style envelope
//                {version, reqType, request: {…}, reqTime} → {version, reqType, respond: {…}}.
//   Headers      SVS-Request-Version / SVS-Request-Time: optional; when sent they must be
//                well-formed and are echoed on the answer beside SVS-Response-Time.
//   Answer       respValue (0, or 0x04000000 + n of Annex B) and the response type's fields.
//
// Public like /tsa (apps here authenticate the vendor way, by key index + access code; the
// binding acts for the one registered app svs.appId, whose grants decide the keys it may use),
// optional network allow-list svs.allow, and HTTPS only. Its own small koa app: EVERY failure —
// wrong method, wrong content type, oversize body, unknown reqType, network refused, overload,
// timeout, a service error — is a well-formed answer with a respValue, never problem+json.
// Protocol failures (the request was read; the answer is a failure code) are HTTP 200, which is
// what vendor clients expect; transport failures keep a fitting HTTP status (403/404/405/413/415/503).
import type { TLSSocket } from 'node:tls';
import Koa, { type Middleware, type ParameterizedContext } from 'koa';
import Router from '@koa/router';
import { readCertificate, type CertificateInfo } from '../asn1/certificate.js';
import { nameToString, nameValue, type NameAttributeType } from '../asn1/name.js';
import { Tag, children, expectTag, fromPem, readSmallInteger, readWhole, seq, oid as derOid, octets } from '../crypto/der.js';
import { keyAlgorithmOfSpki } from '../crypto/verify.js';
import { Codes, YiqianError, isYiqianError } from '../errors.js';
import { log as rootLog, type Logger } from '../log.js';
import { metrics as defaultMetrics, type Metrics } from '../metrics.js';
import { CertInfoType, RespValue, SvsCodes, requestTypeOf, respValueHex, respValueOf, signMethodKind, type SvsRequestType } from '../signing/svs-codes.js';
import type { HeldKeys, HeldKeyView, SigningService, VerificationReport, VerificationService, VerifyLevel } from '../signing/types.js';
import { readLimited } from './body-reader.js';
import type { HttpLimits } from './create-api-app.js';
import { httpError } from './problem.js';
import { createSignedObjectApp } from './signed-object-app.js';
import type { HttpState } from './state.js';
import { addressFilter } from './tsa-routes.js';

export const SVS_PREFIX = '/svs';
export const FORM_TYPE = 'application/x-www-form-urlencoded';
const JSON_TYPE = 'application/json';

/** The services the binding maps onto (signing/types.ts), given by main.ts. */
export interface SvsServices {
  /** The registered app on whose behalf calls act (config svs.appId); undefined → key operations refused. */
  appId?: string;
  /** Whether the app exists and is not frozen (checked on every key operation). */
  appActive(appId: string): Promise<boolean>;
  heldKeys: Pick<HeldKeys, 'get' | 'findByCertSerial'>;
  /** DER of a certificate our CA issued, by lower-case hex serial. */
  certificateBySerial(serial: string): Promise<Buffer | undefined>;
  signing: SigningService;
  verification: VerificationService;
}

export interface SvsBindingDeps extends SvsServices {
  /** CIDRs allowed to call; empty → everyone. */
  allow: string[];
  maxRequestBytes: number;
  /** Refuse requests that did not arrive over TLS (default true; unit tests serve plain HTTP). */
  requireTls?: boolean;
  limits?: HttpLimits;
  metrics?: Metrics;
  log?: Logger;
}

/** The paths the binding answers (main.ts routes them to it on both listeners; plain HTTP is refused). */
export function isSvsPath(url: string | undefined): boolean {
  const path = (url ?? '').split('?')[0];
  return path === SVS_PREFIX || path.startsWith(`${SVS_PREFIX}/`);
}

// ---- fields: the decoded request ------------------------------------------------------

export type FieldValue = string | number | boolean;
export type Fields = Map<string, FieldValue>;
export type Wire = 'form' | 'json';

/** A failure answered with its respValue; status is for logs and HTTP (protocol failures → 200). */
function svsError(code: string, zh: string, en: string, detail?: Record<string, unknown>): YiqianError {
  return new YiqianError(code, 400, { zh, en }, detail);
}

function badFormat(zh: string, en: string, field?: string): YiqianError {
  return svsError(SvsCodes.SVS_INVALID_DATA_FORMAT, zh, en, field ? { field } : undefined);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeUtf8(body: Buffer): string {
  try {
    return utf8.decode(body);
  } catch {
    throw badFormat('请求体不是 UTF-8 文本', 'request body is not UTF-8');
  }
}

/**
 * application/x-www-form-urlencoded (WHATWG URL §5.1). Read by hand, not URLSearchParams, so
 * that a field given twice is refused rather than silently choosing one.
 */
export function parseForm(body: Buffer): Fields {
  const text = decodeUtf8(body);
  const fields: Fields = new Map();
  if (text.trim() === '') return fields;
  for (const part of text.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rawName = eq < 0 ? part : part.slice(0, eq);
    const rawValue = eq < 0 ? '' : part.slice(eq + 1);
    let name: string;
    let value: string;
    try {
      name = decodeURIComponent(rawName.replace(/\+/g, ' '));
      value = decodeURIComponent(rawValue.replace(/\+/g, ' '));
    } catch {
      throw badFormat('表单编码错误', `malformed percent-encoding in field ${rawName.slice(0, 40)}`);
    }
    if (fields.has(name)) throw badFormat(`字段 ${name} 重复`, `field ${name} is given more than once`, name);
    fields.set(name, value);
  }
  return fields;
}

/** JSON: the fields flat, or under `request` (vendor envelope); values string, number or boolean. */
export function parseJson(body: Buffer): { fields: Fields; envelope?: { version?: string; reqType?: string } } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decodeUtf8(body));
  } catch (e) {
    if (isYiqianError(e)) throw e;
    throw badFormat('请求体不是有效的 JSON', 'request body is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw badFormat('请求体必须是 JSON 对象', 'request body must be a JSON object');
  const top = parsed as Record<string, unknown>;
  const wrapped = typeof top.request === 'object' && top.request !== null && !Array.isArray(top.request);
  const source = wrapped ? (top.request as Record<string, unknown>) : top;
  const fields: Fields = new Map();
  for (const [k, v] of Object.entries(source)) {
    if (v === null || v === undefined) continue;
    if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') throw badFormat(`字段 ${k} 的值必须是字符串、数字或布尔值`, `field ${k} must be a string, number or boolean`, k);
    fields.set(k, v);
  }
  if (!wrapped) return { fields };
  const version = typeof top.version === 'string' ? top.version : undefined;
  const reqType = typeof top.reqType === 'string' ? top.reqType : undefined;
  return { fields, envelope: { version, reqType } };
}

class FieldReader {
  constructor(private readonly fields: Fields) {}

  private raw(name: string): FieldValue | undefined {
    const v = this.fields.get(name);
    return v === '' ? undefined : v;
  }

  has(name: string): boolean {
    return this.raw(name) !== undefined;
  }

  string(name: string): string;
  string(name: string, optional: true): string | undefined;
  string(name: string, optional = false): string | undefined {
    const v = this.raw(name);
    if (v === undefined) {
      if (optional) return undefined;
      throw badFormat(`缺少字段 ${name}`, `field ${name} is missing`, name);
    }
    const s = String(v);
    if (s.length > 1024) throw badFormat(`字段 ${name} 过长`, `field ${name} is too long`, name);
    return s;
  }

  /** INTEGER: decimal (0x-hex tolerated: some clients write SGD ids that way). */
  integer(name: string): number;
  integer(name: string, optional: true): number | undefined;
  integer(name: string, optional = false): number | undefined {
    const v = this.raw(name);
    if (v === undefined) {
      if (optional) return undefined;
      throw badFormat(`缺少字段 ${name}`, `field ${name} is missing`, name);
    }
    if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
    const s = String(v).trim();
    if (/^-?\d{1,15}$/.test(s)) return Number(s);
    if (/^0[xX][0-9a-fA-F]{1,8}$/.test(s)) return parseInt(s.slice(2), 16);
    throw badFormat(`字段 ${name} 必须是整数`, `field ${name} must be an INTEGER (decimal)`, name);
  }

  /** BOOLEAN: TRUE / FALSE (any case), or a JSON boolean. */
  boolean(name: string, dflt: boolean): boolean {
    const v = this.raw(name);
    if (v === undefined) return dflt;
    if (typeof v === 'boolean') return v;
    const s = String(v).trim().toUpperCase();
    if (s === 'TRUE') return true;
    if (s === 'FALSE') return false;
    throw badFormat(`字段 ${name} 必须是 TRUE 或 FALSE`, `field ${name} must be TRUE or FALSE`, name);
  }

  /**
   * Octet string in Base64. Two client slips are repaired: a '+' sent unescaped arrives as a
   * space (base64 has no spaces), and a value percent-encoded twice arrives with %2B/%2F/%3D
   * left in it (base64 has no '%').
   */
  octets(name: string): Buffer;
  octets(name: string, optional: true): Buffer | undefined;
  octets(name: string, optional = false): Buffer | undefined {
    const v = this.raw(name);
    if (v === undefined) {
      if (optional) return undefined;
      throw badFormat(`缺少字段 ${name}`, `field ${name} is missing`, name);
    }
    return decodeBase64(String(v), name);
  }

  /** A certificate: Base64 of the DER, or PEM. CERT_DECODE when it is not one. */
  certificate(name: string): { der: Buffer; info: CertificateInfo } {
    const v = this.raw(name);
    if (v === undefined) throw badFormat(`缺少字段 ${name}`, `field ${name} is missing`, name);
    const s = String(v);
    let der: Buffer | undefined;
    if (s.includes('-----BEGIN')) der = fromPem(s.replace(/\r/g, '')).find((b) => b.label === 'CERTIFICATE')?.der;
    else {
      try {
        der = decodeBase64(s, name);
      } catch {
        der = undefined;
      }
    }
    try {
      if (!der) throw new Error('not base64');
      return { der, info: readCertificate(der) };
    } catch {
      throw svsError(SvsCodes.SVS_CERT_DECODE, `字段 ${name} 不是可解析的证书`, `field ${name} is not a decodable certificate`, { field: name });
    }
  }
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

export function decodeBase64(value: string, field: string): Buffer {
  let s = value;
  if (/%[0-9A-Fa-f]{2}/.test(s)) {
    try {
      s = decodeURIComponent(s);
    } catch {
      /* judged below */
    }
  }
  s = s.replace(/[\r\n\t]/g, '').replace(/ /g, '+');
  if (!B64.test(s) || s.length % 4 !== 0) throw badFormat(`字段 ${field} 不是 Base64`, `field ${field} is not Base64`, field);
  return Buffer.from(s, 'base64');
}

// ---- the answer --------------------------------------------------------------------------

export interface SvsAnswer {
  respValue: number;
  /** Fields of the response type (Base64 strings, decimal integers). */
  fields: Record<string, string | number>;
  /** Our stable code and message for a failure (JSON answers carry them; form answers as headers). */
  error?: { code: string; zh: string; en: string };
}

/** Form answer: respValue first, then the fields, percent-encoded (so Base64 '+', '/', '=' survive). */
export function encodeForm(a: SvsAnswer): string {
  const enc = (s: string): string => encodeURIComponent(s);
  return [`respValue=${a.respValue}`, ...Object.entries(a.fields).map(([k, v]) => `${enc(k)}=${enc(String(v))}`)].join('&');
}

export function encodeJson(a: SvsAnswer, envelope?: { version?: string; reqType: string }): Record<string, unknown> {
  const respond: Record<string, unknown> = { respValue: a.respValue, ...a.fields };
  if (a.error) respond.error = { code: a.error.code, message: { 'zh-CN': a.error.zh, en: a.error.en } };
  return envelope ? { version: envelope.version ?? 'v1', reqType: envelope.reqType, respond } : respond;
}

// ---- the operations ------------------------------------------------------------------

const b64 = (b: Buffer): string => b.toString('base64');

function keyIndexError(keyIndex: string): YiqianError {
  return svsError(SvsCodes.SVS_KEY_INDEX, `没有可用的私钥 ${keyIndex}`, `no usable key ${keyIndex}`, { keyIndex });
}

async function requireApp(s: SvsServices): Promise<string> {
  const appId = s.appId;
  if (!appId || !(await s.appActive(appId))) {
    throw new YiqianError(SvsCodes.SVS_NOT_CONFIGURED, 500, { zh: '签名验签接口未配置有效的应用（svs.appId）', en: 'the signature server binding has no active app configured (svs.appId)' });
  }
  return appId;
}

/** A held key granted to the binding's app, by id or label (KEY_INDEX otherwise, never saying which). */
async function grantedKey(s: SvsServices, appId: string, keyIndex: string): Promise<HeldKeyView> {
  let key: HeldKeyView;
  try {
    key = await s.heldKeys.get(keyIndex);
  } catch (e) {
    if (isYiqianError(e) && e.status === 404) throw keyIndexError(keyIndex);
    throw e;
  }
  if (!key.grants.includes(appId)) throw keyIndexError(keyIndex);
  return key;
}

function family(alg: string): 'sm2' | 'rsa' | 'ecdsa' {
  return alg === 'sm2' ? 'sm2' : alg.startsWith('rsa') ? 'rsa' : 'ecdsa';
}

function signMethod(r: FieldReader, keyAlgorithm: string | undefined): { family: 'sm2' } | { family: 'rsa'; hash: 'sha256' } {
  const method = r.integer('signMethod');
  const kind = signMethodKind(method);
  const hex = `0x${method.toString(16).padStart(8, '0')}`;
  if (!kind) throw svsError(SvsCodes.SVS_SIGN_METHOD, `不支持的签名算法 ${hex}`, `unsupported signMethod ${hex} (SGD_SM3_SM2 0x00020201, SGD_SHA256_RSA 0x00010004)`, { signMethod: method });
  if (keyAlgorithm !== undefined && family(keyAlgorithm) !== kind.family) {
    throw svsError(SvsCodes.SVS_SIGN_METHOD, `签名算法 ${hex} 与密钥算法 ${keyAlgorithm} 不符`, `signMethod ${hex} does not fit a ${keyAlgorithm} key`, { signMethod: method });
  }
  return kind;
}

/** inData, non-empty, and inDataLen (when given) equal to its length. */
function inData(r: FieldReader): Buffer {
  const data = r.octets('inData');
  if (data.length === 0) throw badFormat('inData 为空', 'inData is empty', 'inData');
  const declared = r.integer('inDataLen', true);
  if (declared !== undefined && declared !== data.length) throw badFormat(`inDataLen ${declared} 与数据长度 ${data.length} 不符`, `inDataLen ${declared} does not match the ${data.length} bytes of inData`, 'inDataLen');
  return data;
}

function verifyLevel(r: FieldReader): VerifyLevel {
  const l = r.integer('verifyLevel', true) ?? 2;
  if (l !== 0 && l !== 1 && l !== 2) throw badFormat('verifyLevel 必须是 0、1 或 2', 'verifyLevel must be 0, 1 or 2', 'verifyLevel');
  return l;
}

/** GMT text of a time as X.509 GeneralizedTime writes it (YYYYMMDDHHMMSSZ). */
function generalizedTime(d: Date): string {
  return d.toISOString().replace(/[-:T]/g, '').replace(/\.\d{3}/, '');
}

/** X.509 version as the certificate says (v1 when the [0] field is absent): "1", "2" or "3". */
function certificateVersion(tbs: Buffer): string {
  const first = children(readWhole(tbs, Tag.SEQUENCE).value)[0];
  if (first?.tag !== 0xa0) return '1';
  return String(readSmallInteger(expectTag(children(first.value)[0], Tag.INTEGER, 'version')) + 1);
}

/** DER of the certificate's Extensions (RFC 5280 §4.1), re-encoded from the parsed list (DER is canonical). */
function extensionsDer(info: CertificateInfo): Buffer {
  const TRUE = Buffer.from([0x01, 0x01, 0xff]);
  return seq(...info.extensions.map((e) => seq(derOid(e.oid), ...(e.critical ? [TRUE] : []), octets(e.value))));
}

/** parseCert's `info` for a GB/T 33560 Table 8 item id; SVS_CERT_INFO_TYPE for any other id. */
export function certificateItem(info: CertificateInfo, infoType: number): string {
  const attr = (name: Buffer, type: NameAttributeType): string => nameValue(name, type) ?? '';
  switch (infoType) {
    case CertInfoType.VERSION:
      return certificateVersion(info.tbs);
    case CertInfoType.SERIAL:
      return info.serial;
    case CertInfoType.ISSUER:
      return nameToString(info.issuerDer);
    case CertInfoType.VALID_TIME:
      return `${generalizedTime(info.notBefore)},${generalizedTime(info.notAfter)}`;
    case CertInfoType.SUBJECT:
      return nameToString(info.subjectDer);
    case CertInfoType.DER_PUBLIC_KEY:
      return b64(info.publicKeyInfo);
    case CertInfoType.DER_EXTENSIONS:
      return info.extensions.length ? b64(extensionsDer(info)) : '';
    case CertInfoType.ISSUER_CN:
      return attr(info.issuerDer, 'CN');
    case CertInfoType.SUBJECT_CN:
      return attr(info.subjectDer, 'CN');
    case CertInfoType.SUBJECT_O:
      return attr(info.subjectDer, 'O');
    case CertInfoType.SUBJECT_OU:
      return attr(info.subjectDer, 'OU');
    case CertInfoType.SUBJECT_EMAIL:
      return attr(info.subjectDer, 'emailAddress');
    case CertInfoType.NOTBEFORE:
      return generalizedTime(info.notBefore);
    case CertInfoType.NOTAFTER:
      return generalizedTime(info.notAfter);
    default:
      throw svsError(SvsCodes.SVS_CERT_INFO_TYPE, `不支持的证书信息类型 ${infoType}`, `unsupported certificate infoType 0x${infoType.toString(16)} (GB/T 33560 Table 8)`, { infoType });
  }
}

/** The verdict of a report as an answer: respValue is the report's Annex B code. */
function reportAnswer(report: VerificationReport, extra: Record<string, string | number> = {}): SvsAnswer {
  const answer: SvsAnswer = { respValue: report.valid ? RespValue.SUCCESS : report.gbtCode || RespValue.SYSTEM_FAILURE, fields: extra };
  if (!report.valid) {
    const failed = report.checks.find((c) => c.ok === false);
    answer.error = { code: report.code, zh: failed ? `${failed.label}：未通过` : report.code, en: failed?.reason ?? report.code };
  }
  return answer;
}

type Operation = (r: FieldReader, s: SvsServices) => Promise<SvsAnswer>;

const ok = (fields: Record<string, string | number> = {}): SvsAnswer => ({ respValue: RespValue.SUCCESS, fields });

export const OPERATIONS: Partial<Record<SvsRequestType, Operation>> = {
  /** ExportCertReq { identification } → { cert }: the certificate of a key granted to the app (id, label or certificate serial). */
  async exportCert(r, s) {
    const appId = await requireApp(s);
    const id = r.string('identification');
    let key: HeldKeyView | undefined;
    try {
      key = await s.heldKeys.get(id);
    } catch (e) {
      if (!(isYiqianError(e) && e.status === 404)) throw e;
      const serial = id.toLowerCase().replace(/^0x/, '').replace(/^(00)+(?=.)/, '');
      if (/^[0-9a-f]{1,40}$/.test(serial)) key = await s.heldKeys.findByCertSerial(serial);
    }
    const notFound = (): never => {
      throw svsError(SvsCodes.SVS_CERT_ID, `没有证书标识为 ${id} 的证书`, `no certificate for identification ${id}`, { identification: id });
    };
    if (!key || !key.grants.includes(appId)) return notFound();
    const der = await s.certificateBySerial(key.certSerial);
    if (!der) return notFound();
    return ok({ cert: b64(der) });
  },

  /** ParseCertReq { infoType, cert } → { info }. */
  async parseCert(r) {
    const infoType = r.integer('infoType');
    const { info } = r.certificate('cert');
    return ok({ info: certificateItem(info, infoType) });
  },

  /**
   * ValidateCertReq { cert, ocsp } → { state }: validity, chain and revocation (verify level 2).
   * state: 0 good, 1 revoked, 2 status unknown. `ocsp` is read and accepted: where revocation
   * comes from (our CA, imported CRLs, a configured OCSP URL) is the trust store's choice.
   */
  async validateCert(r, s) {
    const { der } = r.certificate('cert');
    r.boolean('ocsp', false);
    const report = await s.verification.validateCertificate({ certificate: der, level: 2 });
    const status = report.revocation?.certificates[0]?.status;
    const state = status === 'revoked' ? 1 : status === 'unknown' ? 2 : status === 'good' ? 0 : undefined;
    return reportAnswer(report, state === undefined ? {} : { state });
  },

  /** SignDataReq { signMethod, keyIndex, keyValue, inDataLen, inData } → { signature } (DER SM2 / PKCS#1 v1.5). */
  async signData(r, s) {
    const appId = await requireApp(s);
    const keyIndex = r.string('keyIndex');
    const key = await grantedKey(s, appId, keyIndex);
    const kind = signMethod(r, key.algorithm);
    const data = inData(r);
    const res = await s.signing.signRaw(appId, {
      key: key.id,
      accessCode: r.string('keyValue', true),
      data,
      ...(kind.family === 'rsa' ? { hash: kind.hash, rsaPadding: 'pkcs1' as const } : {}),
    });
    return ok({ signature: b64(res.signature) });
  },

  /** VerifySignedDataReq { signMethod, type (1 cert, 2 certSN), cert | certSN, inDataLen, inData, signature, verifyLevel } → {}. */
  async verifySignedData(r, s) {
    const type = r.integer('type');
    let certificate: Buffer;
    if (type === 1) {
      certificate = r.certificate('cert').der;
    } else if (type === 2) {
      const sn = r.string('certSN').toLowerCase().replace(/^0x/, '').replace(/^(00)+(?=.)/, '');
      if (!/^[0-9a-f]{1,40}$/.test(sn)) throw badFormat('certSN 必须是十六进制序列号', 'certSN must be a hex serial number', 'certSN');
      const found = await s.certificateBySerial(sn);
      if (!found) throw svsError(SvsCodes.SVS_CERT, `没有序列号为 ${sn} 的证书`, `no certificate with serial ${sn}`, { certSN: sn });
      certificate = found;
    } else {
      throw badFormat('type 必须是 1（证书）或 2（证书序列号）', 'type must be 1 (cert) or 2 (certSN)', 'type');
    }
    let keyAlgorithm: string;
    try {
      keyAlgorithm = keyAlgorithmOfSpki(readCertificate(certificate).publicKeyInfo);
    } catch {
      throw svsError(SvsCodes.SVS_CERT, '证书公钥不受支持', 'the certificate has an unsupported public key');
    }
    const kind = signMethod(r, keyAlgorithm);
    const data = inData(r);
    const signature = r.octets('signature');
    const report = await s.verification.verifyRaw({
      certificate,
      data,
      signature,
      level: verifyLevel(r),
      ...(kind.family === 'rsa' ? { hash: kind.hash, rsaPadding: 'pkcs1' as const } : {}),
    });
    return reportAnswer(report);
  },

  /**
   * SignMessageReq { signMethod, keyIndex, keyValue, inDataLen, inData, hashFlag, originalText,
   * certificateChain, crl, authenticationAttributes } → { signedMessage }: CMS SignedData, SM2
   * in the GB/T 35275 form (RFC 5652 for RSA). originalText (default TRUE) → attached;
   * certificateChain (default TRUE) → the issuing CA certificates too. hashFlag=TRUE (inData is
   * a digest) and crl=TRUE (embed CRLs) are not offered: INVALID_DATA_FORMAT rather than a
   * message that silently lacks them. Signed attributes are always present (contentType,
   * messageDigest, signingTime, signing-certificate-v2), whatever authenticationAttributes says.
   */
  async signMessage(r, s) {
    const appId = await requireApp(s);
    const keyIndex = r.string('keyIndex');
    const key = await grantedKey(s, appId, keyIndex);
    signMethod(r, key.algorithm);
    const content = inData(r);
    if (r.boolean('hashFlag', false)) throw badFormat('不支持对摘要制作消息签名（hashFlag=TRUE）', 'signing a message over a given digest (hashFlag=TRUE) is not offered', 'hashFlag');
    if (r.boolean('crl', false)) throw badFormat('不支持在签名消息中嵌入 CRL（crl=TRUE）', 'embedding CRLs in the signed message (crl=TRUE) is not offered', 'crl');
    r.boolean('authenticationAttributes', true);
    const res = await s.signing.signCms(appId, {
      key: key.id,
      accessCode: r.string('keyValue', true),
      content,
      detached: !r.boolean('originalText', true),
      includeChain: r.boolean('certificateChain', true),
    });
    return ok({ signedMessage: b64(res.cms) });
  },

  /**
   * VerifySignedMessageReq { signedMessage, inDataLen?, inData? (the original of a detached
   * message), hashFlag, originalText, certificateChain, crl, authenticationAttributes,
   * verifyLevel? (default 2) } → {}. The booleans describe the message, which the verifier
   * reads from the message itself; hashFlag=TRUE (inData is a digest) is not offered.
   */
  async verifySignedMessage(r, s) {
    const cms = r.octets('signedMessage');
    if (cms.length === 0) throw badFormat('signedMessage 为空', 'signedMessage is empty', 'signedMessage');
    if (r.boolean('hashFlag', false)) throw badFormat('不支持以摘要代替原文验证（hashFlag=TRUE）', 'verifying against a digest instead of the original (hashFlag=TRUE) is not offered', 'hashFlag');
    for (const f of ['originalText', 'certificateChain', 'crl', 'authenticationAttributes']) r.boolean(f, false);
    const content = r.has('inData') ? inData(r) : undefined;
    const report = await s.verification.verifyCms({ cms, ...(content ? { content } : {}), level: verifyLevel(r) });
    return reportAnswer(report);
  },
};

/**
 * Runs one request: the answer for a request that was read, success or failure (never throws).
 * Unexpected errors are logged with their cause and answered SYSTEM_FAILURE.
 */
export async function runSvsRequest(reqType: SvsRequestType, fields: Fields, s: SvsServices, log: Logger = rootLog): Promise<SvsAnswer> {
  const op = OPERATIONS[reqType];
  try {
    if (!op) {
      throw svsError(SvsCodes.SVS_REQUEST_TYPE_UNSUPPORTED, `不支持请求类型 ${reqType}（多包接口未实现）`, `request type ${reqType} is not offered (the multi-part Init/Update/Final types are not implemented)`, { reqType });
    }
    return await op(new FieldReader(fields), s);
  } catch (e) {
    const err = isYiqianError(e) ? e : new YiqianError(SvsCodes.SVS_SYSTEM_FAILURE, 500, { zh: '服务内部错误', en: 'internal error' }, undefined, { cause: e });
    const respValue = respValueOf(err.code, err.status);
    if (!isYiqianError(e)) log.error({ reqType, code: err.code, err: e }, 'svs request failed');
    else if (err.status >= 500) log.warn({ reqType, code: err.code, reason: err.text.en }, 'svs request failed');
    else log.debug({ reqType, code: err.code, respValue: respValueHex(respValue) }, 'svs request refused');
    return { respValue, fields: {}, error: { code: err.code, zh: err.text.zh, en: err.text.en } };
  }
}

// ---- HTTP ------------------------------------------------------------------------------

type Ctx = ParameterizedContext<HttpState>;

/** SVS-Request-Time: yyyyMMddHHmmss with an optional Z / ±hhmm, ISO 8601, or epoch milliseconds. */
export function wellFormedRequestTime(v: string): boolean {
  if (/^\d{14}(Z|[+-]\d{4})?$/.test(v)) {
    const [y, mo, d, h, mi, s] = [v.slice(0, 4), v.slice(4, 6), v.slice(6, 8), v.slice(8, 10), v.slice(10, 12), v.slice(12, 14)].map(Number);
    return mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h <= 23 && mi <= 59 && s <= 60 && y >= 1970;
  }
  if (/^\d{10,13}$/.test(v)) return true;
  return /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/.test(v) && !Number.isNaN(Date.parse(v.replace(' ', 'T')));
}

/** What the answer must look like, decided as soon as the request's headers are read. */
interface AnswerShape {
  wire: Wire;
  envelope?: { version?: string; reqType: string };
}
const SHAPE = Symbol('svs-answer-shape');
type ShapedCtx = Ctx & { [SHAPE]?: AnswerShape };

function wireOf(ctx: Ctx): Wire | undefined {
  const type = (ctx.get('Content-Type') || '').split(';')[0].trim().toLowerCase();
  if (type === FORM_TYPE) return 'form';
  if (type === JSON_TYPE || type.endsWith('+json')) return 'json';
  return undefined;
}

function send(ctx: ShapedCtx, a: SvsAnswer, status = 200): void {
  const shape = ctx[SHAPE] ?? { wire: wireOf(ctx) ?? 'form' };
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  ctx.set('SVS-Response-Time', generalizedTime(new Date()));
  for (const h of ['SVS-Request-Version', 'SVS-Request-Time']) {
    const v = ctx.get(h);
    if (v && /^[\x20-\x7e]{1,64}$/.test(v)) ctx.set(h, v);
  }
  if (a.error) ctx.set('X-Yiqian-Code', a.error.code);
  if (shape.wire === 'json') {
    ctx.type = 'application/json; charset=utf-8';
    ctx.body = encodeJson(a, shape.envelope);
  } else {
    ctx.type = `${FORM_TYPE}; charset=UTF-8`;
    ctx.body = encodeForm(a);
  }
}

/** Every failure outside a read request (method, type, size, network, overload, timeout) → an answer with a respValue. */
function svsEnvelope(m: Metrics): Middleware<HttpState> {
  return async (ctx, next) => {
    try {
      await next();
      if (ctx.body == null && ctx.status === 404) throw notFound();
    } catch (err) {
      if (ctx.headerSent || !ctx.writable) return;
      if ((err as { code?: unknown } | null)?.code === 'CLIENT_ABORTED') return;
      const e = isYiqianError(err) ? err : new YiqianError(Codes.INTERNAL, 500, { zh: '服务内部错误', en: 'internal error' }, undefined, { cause: err });
      for (const name of ctx.res.getHeaderNames()) if (name !== 'x-request-id') ctx.res.removeHeader(name);
      let status = e.status;
      if (e.code === Codes.PAYLOAD_TOO_LARGE || e.code === Codes.UNSUPPORTED_MEDIA_TYPE) {
        ctx.set('Connection', 'close');
      } else if (e.code === Codes.METHOD_NOT_ALLOWED) {
        ctx.set('Allow', 'POST');
      } else if (e.code === Codes.OVERLOADED || e.code === Codes.REQUEST_TIMEOUT) {
        status = 503;
        ctx.set('Retry-After', '1');
        if (!ctx.req.complete) ctx.set('Connection', 'close');
      } else if (status >= 500) {
        ctx.state.log.error({ err }, 'svs request failed');
      }
      m.errors.inc({ code: e.code });
      send(ctx, { respValue: respValueOf(e.code, e.status), fields: {}, error: { code: e.code, zh: e.text.zh, en: e.text.en } }, status);
    }
  };
}

function notFound(): YiqianError {
  return httpError(SvsCodes.SVS_REQUEST_TYPE_UNKNOWN, 404, '路径的最后一段必须是请求类型，如 /svs/signData', 'the last path segment must be a request type, e.g. /svs/signData');
}

async function readBody(ctx: Ctx, limit: number): Promise<Buffer> {
  const tooLarge = () => httpError(Codes.PAYLOAD_TOO_LARGE, 413, `请求超过 ${limit} 字节上限`, `request exceeds ${limit} bytes`);
  const declared = Number(ctx.req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge();
  try {
    return await readLimited(ctx.req, limit, ctx.res);
  } catch (e) {
    if (isYiqianError(e) && e.code === Codes.PAYLOAD_TOO_LARGE) throw tooLarge();
    throw e;
  }
}

export function svsRouter(deps: SvsBindingDeps): Router<HttpState> {
  const router = new Router<HttpState>({ sensitive: true, strict: true });
  const allowed = addressFilter(deps.allow);
  const log = deps.log ?? rootLog;
  const handle: Middleware<HttpState> = async (ctx) => {
    const c = ctx as ShapedCtx;
    const segments = ctx.path.split('/').filter(Boolean);
    const reqType = segments.length >= 2 ? requestTypeOf(segments[segments.length - 1]) : undefined;
    if (!reqType) throw notFound();
    if (ctx.method !== 'POST') throw httpError(Codes.METHOD_NOT_ALLOWED, 405, '只接受 POST', 'only POST is accepted');
    if (deps.requireTls !== false && !(ctx.req.socket as TLSSocket).encrypted) {
      throw httpError(Codes.HTTPS_REQUIRED, 403, '签名验签接口只在 HTTPS 上提供', 'the signature server binding is served over HTTPS only');
    }
    const address = ctx.req.socket.remoteAddress;
    if (!allowed(address)) throw httpError(SvsCodes.SVS_NOT_ALLOWED, 403, '此网络不得使用签名验签接口', `the signature server binding is not open to ${address ?? 'this address'}`);
    const wire = wireOf(ctx);
    if (!wire) throw httpError(Codes.UNSUPPORTED_MEDIA_TYPE, 415, `内容类型必须是 ${FORM_TYPE} 或 ${JSON_TYPE}`, `Content-Type must be ${FORM_TYPE} or ${JSON_TYPE}`);
    const charset = /charset=([^;]+)/i.exec(ctx.get('Content-Type'))?.[1]?.trim().replace(/"/g, '').toLowerCase();
    if (charset && charset !== 'utf-8' && charset !== 'utf8') throw httpError(Codes.UNSUPPORTED_MEDIA_TYPE, 415, '只接受 UTF-8 编码', 'only the UTF-8 charset is accepted');
    c[SHAPE] = { wire };
    const body = await readBody(ctx, deps.maxRequestBytes);
    let answer: SvsAnswer;
    try {
      const version = ctx.get('SVS-Request-Version');
      if (version && !/^[\x21-\x7e]{1,32}$/.test(version)) throw badFormat('SVS-Request-Version 格式错误', 'SVS-Request-Version is malformed');
      const time = ctx.get('SVS-Request-Time');
      if (time && !wellFormedRequestTime(time.trim())) throw badFormat('SVS-Request-Time 格式错误', 'SVS-Request-Time is malformed (yyyyMMddHHmmss[Z|±hhmm], ISO 8601 or epoch milliseconds)');
      let fields: Fields;
      if (wire === 'json') {
        const parsed = parseJson(body);
        fields = parsed.fields;
        if (parsed.envelope) {
          c[SHAPE] = { wire, envelope: { version: parsed.envelope.version, reqType: parsed.envelope.reqType ?? segments[segments.length - 1] } };
          if (parsed.envelope.reqType !== undefined && requestTypeOf(parsed.envelope.reqType.split('/').pop() ?? '') !== reqType) {
            throw badFormat('请求体中的 reqType 与路径不符', `reqType ${parsed.envelope.reqType.slice(0, 40)} in the body does not match the path`);
          }
        }
      } else {
        fields = parseForm(body);
      }
      answer = await runSvsRequest(reqType, fields, deps, ctx.state.log ?? log);
    } catch (e) {
      if (!isYiqianError(e)) throw e;
      answer = { respValue: respValueOf(e.code, e.status), fields: {}, error: { code: e.code, zh: e.text.zh, en: e.text.en } };
    }
    if (answer.error) (deps.metrics ?? defaultMetrics).errors.inc({ code: answer.error.code });
    send(c, answer);
  };
  router.all(SVS_PREFIX, handle);
  router.all(`${SVS_PREFIX}/*rest`, handle);
  return router;
}

/** The koa app that serves /svs/… (main.ts sends /svs paths of both listeners here; plain HTTP is refused). */
export function createSvsApp(deps: SvsBindingDeps): Koa<HttpState> {
  const m = deps.metrics ?? defaultMetrics;
  return createSignedObjectApp({ metrics: m, log: deps.log ?? rootLog, limits: deps.limits, envelope: svsEnvelope(m), router: svsRouter(deps) });
}
