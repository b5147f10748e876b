// RFC 7512 "The PKCS #11 URI Scheme": parse and format the key references the appliance
// hands out (`pkcs11:token=yiqian;object=device-tls;type=private`).
//
// Path attributes identify an object; query attributes (pin-value, pin-source, module-name,
// module-path) say how to reach it and are not part of its identity (RFC 7512 §2.3).
import { YiqianError, Codes } from '../../appliance/src/errors.js';

export type Pkcs11ObjectType = 'public' | 'private' | 'cert' | 'secret-key' | 'data';

export interface Pkcs11Uri {
  token?: string;
  manufacturer?: string;
  serial?: string;
  model?: string;
  libraryManufacturer?: string;
  libraryDescription?: string;
  libraryVersion?: string;
  slotDescription?: string;
  slotManufacturer?: string;
  slotId?: number;
  /** CKA_LABEL of the object. */
  object?: string;
  type?: Pkcs11ObjectType;
  /** CKA_ID, raw bytes. */
  id?: Buffer;
  /** Vendor-specific path attributes (names start with "x-"), decoded. */
  vendor?: Record<string, string>;
  /** Query attributes, decoded (pin-value, pin-source, module-name, module-path, x-…). Not identity. */
  query?: Record<string, string>;
}

const OBJECT_TYPES: readonly Pkcs11ObjectType[] = ['public', 'private', 'cert', 'secret-key', 'data'];

/** Text path attributes: URI name → field, in the order the RFC's ABNF lists them (used for formatting). */
const TEXT_ATTRS = [
  ['token', 'token'],
  ['manufacturer', 'manufacturer'],
  ['serial', 'serial'],
  ['model', 'model'],
  ['library-manufacturer', 'libraryManufacturer'],
  ['library-description', 'libraryDescription'],
  ['library-version', 'libraryVersion'],
  ['slot-description', 'slotDescription'],
  ['slot-manufacturer', 'slotManufacturer'],
  ['object', 'object'],
] as const;

type TextField = (typeof TEXT_ATTRS)[number][1];

// RFC 3986 unreserved plus RFC 7512 pk11-res-avail; path values may also carry "&",
// query values "/", "?" and "|" (RFC 7512 §2.3, pk11-path-res-avail / pk11-query-res-avail).
const UNRESERVED = /[A-Za-z0-9\-._~]/;
const RES_AVAIL = ":[]@!$'()*+,=";
const PATH_EXTRA = '&';
const QUERY_EXTRA = '/?|';

function invalid(uri: string, reasonEn: string, reasonZh: string): never {
  throw new YiqianError(
    Codes.INVALID_KEY_URI,
    400,
    { zh: `密钥URI无效：${reasonZh}`, en: `invalid PKCS#11 URI: ${reasonEn}` },
    { uri: redactPin(uri) },
  );
}

/** A PIN in the query must never reach a log or an error detail. */
function redactPin(uri: string): string {
  return uri.replace(/(pin-value=)[^&]*/gi, '$1***');
}

function isAllowed(ch: string, extra: string): boolean {
  return UNRESERVED.test(ch) || RES_AVAIL.includes(ch) || extra.includes(ch);
}

/** Percent-decodes one attribute value to bytes; rejects characters the grammar does not allow. */
function decodeBytes(uri: string, value: string, extra: string, what: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (ch === '%') {
      const hex = value.slice(i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) invalid(uri, `bad percent-encoding in ${what}`, `${what} 的百分号编码错误`);
      out.push(parseInt(hex, 16));
      i += 2;
    } else if (isAllowed(ch, extra)) {
      out.push(ch.charCodeAt(0));
    } else {
      invalid(uri, `character ${JSON.stringify(ch)} must be percent-encoded in ${what}`, `${what} 中的字符 ${JSON.stringify(ch)} 必须百分号编码`);
    }
  }
  return Buffer.from(out);
}

function decodeText(uri: string, value: string, extra: string, what: string): string {
  const bytes = decodeBytes(uri, value, extra, what);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return invalid(uri, `${what} is not valid UTF-8`, `${what} 不是有效的UTF-8`);
  }
}

function encodeBytes(bytes: Uint8Array, extra: string, encodeAll = false): string {
  let s = '';
  for (const b of bytes) {
    const ch = String.fromCharCode(b);
    if (!encodeAll && b < 0x80 && isAllowed(ch, extra)) s += ch;
    else s += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return s;
}

const ATTR_NAME = /^[a-z][a-z0-9-]*$/;

/** Parses an RFC 7512 URI. Throws YiqianError INVALID_KEY_URI (400) with a reason. */
export function parsePkcs11Uri(uri: string): Pkcs11Uri {
  if (typeof uri !== 'string' || !/^pkcs11:/i.test(uri)) invalid(String(uri), 'scheme must be "pkcs11:"', '协议必须为 "pkcs11:"');
  if (uri.includes('#')) invalid(uri, 'a fragment ("#") is not allowed', '不允许片段（"#"）');
  const rest = uri.slice('pkcs11:'.length);
  const q = rest.indexOf('?');
  const path = q < 0 ? rest : rest.slice(0, q);
  const query = q < 0 ? undefined : rest.slice(q + 1);
  const out: Pkcs11Uri = {};
  const seen = new Set<string>();

  if (path.length > 0) {
    for (const attr of path.split(';')) {
      const eq = attr.indexOf('=');
      if (eq <= 0) invalid(uri, `path attribute ${JSON.stringify(attr)} is not name=value`, `路径属性 ${JSON.stringify(attr)} 不是 名=值 形式`);
      const name = attr.slice(0, eq).toLowerCase();
      const raw = attr.slice(eq + 1);
      if (!ATTR_NAME.test(name)) invalid(uri, `bad attribute name ${JSON.stringify(name)}`, `属性名 ${JSON.stringify(name)} 无效`);
      if (seen.has(name)) invalid(uri, `path attribute "${name}" appears twice`, `路径属性 "${name}" 重复出现`);
      seen.add(name);
      const text = TEXT_ATTRS.find(([n]) => n === name);
      if (text) {
        out[text[1] as TextField] = decodeText(uri, raw, PATH_EXTRA, name);
      } else if (name === 'type') {
        const t = decodeText(uri, raw, PATH_EXTRA, name);
        if (!OBJECT_TYPES.includes(t as Pkcs11ObjectType)) invalid(uri, `unknown object type ${JSON.stringify(t)}`, `未知对象类型 ${JSON.stringify(t)}`);
        out.type = t as Pkcs11ObjectType;
      } else if (name === 'id') {
        out.id = decodeBytes(uri, raw, PATH_EXTRA, name);
      } else if (name === 'slot-id') {
        const t = decodeText(uri, raw, PATH_EXTRA, name);
        if (!/^[0-9]{1,20}$/.test(t) || !Number.isSafeInteger(Number(t))) invalid(uri, 'slot-id must be a decimal number', 'slot-id 必须是十进制数');
        out.slotId = Number(t);
      } else if (name.startsWith('x-')) {
        (out.vendor ??= {})[name] = decodeText(uri, raw, PATH_EXTRA, name);
      } else {
        invalid(uri, `unknown path attribute "${name}"`, `未知路径属性 "${name}"`);
      }
    }
  }

  if (query !== undefined && query.length > 0) {
    for (const attr of query.split('&')) {
      const eq = attr.indexOf('=');
      if (eq <= 0) invalid(uri, `query attribute ${JSON.stringify(redactPin(attr))} is not name=value`, '查询属性不是 名=值 形式');
      const name = attr.slice(0, eq).toLowerCase();
      if (!ATTR_NAME.test(name)) invalid(uri, `bad query attribute name ${JSON.stringify(name)}`, `查询属性名 ${JSON.stringify(name)} 无效`);
      if (out.query && name in out.query) invalid(uri, `query attribute "${name}" appears twice`, `查询属性 "${name}" 重复出现`);
      if (!['pin-value', 'pin-source', 'module-name', 'module-path'].includes(name) && !name.startsWith('x-')) {
        invalid(uri, `unknown query attribute "${name}"`, `未知查询属性 "${name}"`);
      }
      (out.query ??= {})[name] = decodeText(uri, attr.slice(eq + 1), QUERY_EXTRA, name);
    }
  }
  return out;
}

/**
 * Formats an RFC 7512 URI: attributes in the RFC's order, values percent-encoded where the
 * grammar requires it (non-ASCII as UTF-8 bytes), `id` always fully percent-encoded.
 * With `identityOnly`, the query (pin, module) is left out.
 */
export function formatPkcs11Uri(u: Pkcs11Uri, opts: { identityOnly?: boolean } = {}): string {
  const parts: string[] = [];
  const text = (name: string, v: string | undefined): void => {
    if (v !== undefined) parts.push(`${name}=${encodeBytes(Buffer.from(v, 'utf8'), PATH_EXTRA)}`);
  };
  for (const [name, field] of TEXT_ATTRS) {
    if (name === 'object') continue; // object, type, id come last, as in the RFC's examples
    text(name, u[field]);
  }
  if (u.slotId !== undefined) {
    if (!Number.isSafeInteger(u.slotId) || u.slotId < 0) invalid(String(u.slotId), 'slot-id must be a non-negative integer', 'slot-id 必须是非负整数');
    parts.push(`slot-id=${u.slotId}`);
  }
  text('object', u.object);
  if (u.type !== undefined) {
    if (!OBJECT_TYPES.includes(u.type)) invalid(String(u.type), `unknown object type ${JSON.stringify(u.type)}`, '未知对象类型');
    parts.push(`type=${u.type}`);
  }
  if (u.id !== undefined) parts.push(`id=${encodeBytes(u.id, PATH_EXTRA, true)}`);
  for (const [name, v] of Object.entries(u.vendor ?? {})) {
    if (!name.startsWith('x-') || !ATTR_NAME.test(name)) invalid(name, `vendor attribute "${name}" must start with "x-"`, `厂商属性 "${name}" 必须以 "x-" 开头`);
    text(name, v);
  }
  let s = 'pkcs11:' + parts.join(';');
  if (!opts.identityOnly && u.query && Object.keys(u.query).length > 0) {
    s += '?' + Object.entries(u.query).map(([k, v]) => `${k}=${encodeBytes(Buffer.from(v, 'utf8'), QUERY_EXTRA)}`).join('&');
  }
  return s;
}

/** True when both URIs name the same object (path attributes equal; the query is ignored). */
export function samePkcs11Object(a: string | Pkcs11Uri, b: string | Pkcs11Uri): boolean {
  const pa = typeof a === 'string' ? parsePkcs11Uri(a) : a;
  const pb = typeof b === 'string' ? parsePkcs11Uri(b) : b;
  return formatPkcs11Uri(pa, { identityOnly: true }) === formatPkcs11Uri(pb, { identityOnly: true });
}

/**
 * RFC 7512 matching: every path attribute present in `pattern` has the same value in
 * `candidate` (a URI with fewer attributes matches more objects).
 */
export function pkcs11UriMatches(pattern: Pkcs11Uri, candidate: Pkcs11Uri): boolean {
  for (const [, field] of TEXT_ATTRS) {
    if (pattern[field] !== undefined && pattern[field] !== candidate[field]) return false;
  }
  if (pattern.slotId !== undefined && pattern.slotId !== candidate.slotId) return false;
  if (pattern.type !== undefined && pattern.type !== candidate.type) return false;
  if (pattern.id !== undefined && !(candidate.id && pattern.id.equals(candidate.id))) return false;
  for (const [k, v] of Object.entries(pattern.vendor ?? {})) {
    if (candidate.vendor?.[k] !== v) return false;
  }
  return true;
}
