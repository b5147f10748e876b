// What a request asks to be in a certificate — subject fields and extra extensions — checked
// against its profile and turned into the subject Name, subjectAltName and custom extensions.
//
// Subject layout (RFC 5280 §4.1.2.6; most general first): C, O, OU, title, CN, serialNumber.
//   commonName → CN (the person's, organisation's, seal's or server's name)
//   organisation → O (default: config pki.organisation)   ou / department → OU
//   titleLevel → title (职称)                              employeeId → serialNumber (工号)
//   departmentId (the hospital systems' 科室 id) is kept on the record, not in the certificate.
//   dnsNames, ipAddresses, email → subjectAltName.
// Only the commonName may come from the CSR's subject (when the request gives none): the rest of
// a requested subject is ignored, so a client cannot name itself into another organisation.
import { isIP } from 'node:net';
import { encodeTypedValue, TYPED_VALUE_TYPES, type CertificateExtension, type TypedValue, type TypedValueType } from '../asn1/certificate.js';
import { PRINTABLE, encodeName, nameValue, type NameAttribute } from '../asn1/name.js';
import { issuanceError } from './issuance-errors.js';
import { SUBJECT_FIELDS, isManagedExtension, isOid, type Profile, type SubjectField } from './profiles.js';

export interface SubjectInput {
  commonName?: string;
  organisation?: string;
  ou?: string;
  employeeId?: string;
  departmentId?: string;
  titleLevel?: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  email?: string;
}

/** An extra extension by profile name (`name`) or by OID with a typed value. */
export interface ExtensionInput {
  name?: string;
  oid?: string;
  type?: TypedValueType;
  critical?: boolean;
  value: string | number | boolean;
}

export interface ResolvedSubject {
  /** DER of the subject Name. */
  name: Buffer;
  commonName: string;
  employeeId?: string;
  departmentId?: string;
  titleLevel?: string;
  san?: { dnsNames: string[]; ipAddresses: string[]; emails: string[] };
}

const MAX_EXTENSIONS = 20;
const MAX_SAN = 100;
const DNS_LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;
const EMAIL = /^[\x21-\x3f\x41-\x7e]+@[A-Za-z0-9.-]+$/;

function fieldInvalid(field: string, zh: string, en: string): never {
  throw issuanceError('SUBJECT_FIELD_INVALID', 400, `主体字段 ${field} 无效：${zh}`, `subject field ${field} is invalid: ${en}`, { field });
}

function text(field: string, v: unknown, max = 64): string {
  if (typeof v !== 'string') fieldInvalid(field, '必须是字符串', 'must be a string');
  const s = v.normalize('NFC');
  if (s.trim() !== s || s.length === 0) fieldInvalid(field, '不能为空，首尾不能有空白', 'must be non-empty without surrounding blanks');
  if ([...s].length > max) fieldInvalid(field, `不能超过 ${max} 个字符`, `must be at most ${max} characters (RFC 5280 upper bounds)`);
  if (/[\p{Cc}\p{Cf}]/u.test(s)) fieldInvalid(field, '不能含控制字符', 'must not contain control or format characters');
  return s;
}

function dnsName(v: unknown): string {
  if (typeof v !== 'string' || v.length > 253) fieldInvalid('dnsNames', '不是有效的域名', 'not a valid DNS name');
  const labels = v.toLowerCase().split('.');
  const wildcard = labels[0] === '*' && labels.length > 2;
  if (!labels.slice(wildcard ? 1 : 0).every((l) => DNS_LABEL.test(l))) fieldInvalid('dnsNames', `不是有效的域名：${v.slice(0, 80)}`, `not a valid DNS name: ${v.slice(0, 80)}`);
  return v.toLowerCase();
}

function list(field: string, v: unknown, check: (x: unknown) => string): string[] {
  if (!Array.isArray(v)) fieldInvalid(field, '必须是数组', 'must be an array');
  if (v.length > MAX_SAN) fieldInvalid(field, `最多 ${MAX_SAN} 项`, `at most ${MAX_SAN} entries`);
  const out = v.map(check);
  return [...new Set(out)];
}

const present = (v: unknown): boolean => v !== undefined && v !== null && !(Array.isArray(v) && v.length === 0);

/** Checks the request's subject fields against the profile and builds the subject. */
export function resolveSubject(profile: Profile, input: SubjectInput, defaults: { organisation: string; country: string }, csrSubject?: Buffer): ResolvedSubject {
  const given: Partial<Record<SubjectField, unknown>> = {};
  for (const f of SUBJECT_FIELDS) {
    const v = (input as Record<SubjectField, unknown>)[f];
    if (!present(v)) continue;
    given[f] = v;
    if (!profile.allowed.includes(f)) {
      throw issuanceError('SUBJECT_FIELD_NOT_ALLOWED', 400, `配置 ${profile.name} 的证书不含字段 ${f}`, `profile ${profile.name} does not take the subject field ${f} (it takes: ${profile.allowed.join(', ')})`, { field: f, profile: profile.name });
    }
  }
  if (csrSubject && given.commonName === undefined) {
    const cn = nameValue(csrSubject, 'CN');
    if (cn !== undefined) given.commonName = cn;
  }
  const missing = profile.required.filter((f) => given[f] === undefined);
  if (profile.requireSubjectAltName && given.dnsNames === undefined && given.ipAddresses === undefined) missing.push('dnsNames');
  if (missing.length) {
    throw issuanceError(
      'PROFILE_FIELD_MISSING',
      400,
      `配置 ${profile.name} 的证书缺少必填字段：${missing.join('、')}`,
      `profile ${profile.name} requires: ${missing.join(', ')}${profile.requireSubjectAltName ? ' (a TLS server certificate needs dnsNames or ipAddresses)' : ''}`,
      { missing, profile: profile.name },
    );
  }

  const commonName = text('commonName', given.commonName);
  const organisation = given.organisation !== undefined ? text('organisation', given.organisation) : profile.allowed.includes('organisation') ? defaults.organisation : undefined;
  const ou = given.ou !== undefined ? text('ou', given.ou) : undefined;
  const titleLevel = given.titleLevel !== undefined ? text('titleLevel', given.titleLevel) : undefined;
  let employeeId: string | undefined;
  if (given.employeeId !== undefined) {
    employeeId = text('employeeId', given.employeeId);
    if (!PRINTABLE.test(employeeId)) fieldInvalid('employeeId', '只能含字母、数字和 \'()+,-./:=? 空格', "may only contain A–Z a–z 0–9 '()+,-./:=? and spaces (PrintableString)");
  }
  const departmentId = given.departmentId !== undefined ? text('departmentId', given.departmentId) : undefined;

  const attrs: NameAttribute[] = [{ type: 'C', value: defaults.country }];
  if (organisation) attrs.push({ type: 'O', value: organisation });
  if (ou) attrs.push({ type: 'OU', value: ou });
  if (titleLevel) attrs.push({ type: 'title', value: titleLevel });
  attrs.push({ type: 'CN', value: commonName });
  if (employeeId) attrs.push({ type: 'serialNumber', value: employeeId });

  const dnsNames = given.dnsNames !== undefined ? list('dnsNames', given.dnsNames, dnsName) : [];
  const ipAddresses =
    given.ipAddresses !== undefined
      ? list('ipAddresses', given.ipAddresses, (x) => {
        if (typeof x !== 'string' || isIP(x) === 0) fieldInvalid('ipAddresses', `不是 IP 地址：${String(x).slice(0, 60)}`, `not an IP address: ${String(x).slice(0, 60)}`);
        return x;
      })
      : [];
  const emails: string[] = [];
  if (given.email !== undefined) {
    const e = text('email', given.email, 128);
    if (!EMAIL.test(e)) fieldInvalid('email', '不是有效的电子邮件地址', 'not a valid e-mail address');
    emails.push(e);
  }
  const hasSan = dnsNames.length + ipAddresses.length + emails.length > 0;
  return {
    name: encodeName(attrs),
    commonName,
    ...(employeeId !== undefined ? { employeeId } : {}),
    ...(departmentId !== undefined ? { departmentId } : {}),
    ...(titleLevel !== undefined ? { titleLevel } : {}),
    ...(hasSan ? { san: { dnsNames, ipAddresses, emails } } : {}),
  };
}

function notAllowed(zh: string, en: string, detail?: Record<string, unknown>): never {
  throw issuanceError('EXTENSION_NOT_ALLOWED', 400, zh, en, detail);
}

/** Checks the requested extra extensions against the profile; returns them ready to encode. */
export function resolveExtensions(profile: Profile, input: ExtensionInput[] | undefined): CertificateExtension[] {
  const requested = input ?? [];
  if (!Array.isArray(requested)) notAllowed('extensions 必须是数组', 'extensions must be an array');
  if (requested.length > MAX_EXTENSIONS) notAllowed(`最多 ${MAX_EXTENSIONS} 个扩展`, `at most ${MAX_EXTENSIONS} extensions`);
  const out: CertificateExtension[] = [];
  const seen = new Set<string>();
  for (const raw of requested) {
    if (typeof raw !== 'object' || raw === null) notAllowed('扩展必须是对象', 'each extension must be an object { name | oid, type, value }');
    const e = raw;
    const named = profile.namedExtensions.find((n) => (e.name !== undefined && n.name === e.name) || (e.oid !== undefined && n.oid === e.oid));
    let oid: string;
    let critical: boolean;
    let value: TypedValue;
    if (named) {
      if (e.name !== undefined && e.oid !== undefined && e.oid !== named.oid) notAllowed(`扩展 ${named.name} 的 OID 是 ${named.oid}`, `extension ${named.name} has OID ${named.oid}, not ${e.oid}`);
      if (e.type !== undefined && e.type !== named.type) notAllowed(`扩展 ${named.name} 的值类型是 ${named.type}`, `extension ${named.name} takes a ${named.type} value`, { name: named.name });
      oid = named.oid;
      critical = named.critical;
      value = { type: named.type, value: e.value };
    } else {
      if (e.name !== undefined) {
        notAllowed(`配置 ${profile.name} 没有名为 ${String(e.name).slice(0, 40)} 的扩展`, `profile ${profile.name} has no extension named ${String(e.name).slice(0, 40)} (named: ${profile.namedExtensions.map((n) => n.name).join(', ') || 'none'})`);
      }
      if (!isOid(e.oid)) notAllowed('扩展必须给出 name 或有效的 OID', 'an extension needs a profile name or a valid dotted OID');
      if (isManagedExtension(e.oid)) notAllowed(`扩展 ${e.oid} 由 CA 按配置写入，不能在请求中指定`, `extension ${e.oid} is written by the CA from the profile and cannot be requested`, { oid: e.oid });
      if (!profile.allowCustomExtensions) notAllowed(`配置 ${profile.name} 不接受自定义扩展`, `profile ${profile.name} does not take custom extensions`, { oid: e.oid });
      if (e.critical === true) notAllowed('自定义扩展不能标为关键', 'custom extensions cannot be critical (relying parties would reject the certificate)', { oid: e.oid });
      if (!(TYPED_VALUE_TYPES as readonly string[]).includes(e.type as string)) notAllowed(`扩展 ${e.oid} 需要 type（${TYPED_VALUE_TYPES.join('、')}）`, `extension ${e.oid} needs a type (${TYPED_VALUE_TYPES.join(', ')})`, { oid: e.oid });
      oid = e.oid;
      critical = false;
      value = { type: e.type as TypedValueType, value: e.value };
    }
    if (seen.has(oid)) notAllowed(`扩展 ${oid} 重复`, `extension ${oid} is given twice`, { oid });
    seen.add(oid);
    encodeTypedValue(value, oid); // EXTENSION_INVALID now, not at signing time
    out.push({ kind: 'custom', oid, critical, value });
  }
  const missing = profile.namedExtensions.filter((n) => n.required && !seen.has(n.oid)).map((n) => `extensions.${n.name}`);
  if (missing.length) {
    throw issuanceError('PROFILE_FIELD_MISSING', 400, `配置 ${profile.name} 的证书缺少必填扩展：${missing.join('、')}`, `profile ${profile.name} requires: ${missing.join(', ')}`, { missing, profile: profile.name });
  }
  return out;
}
