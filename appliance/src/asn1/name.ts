// X.501 Name (RFC 5280 §4.1.2.4) as DER: built from attribute lists, decoded to attributes, and
// shown as an RFC 4514 string. Encode/decode only; strict DER reader of crypto/der.ts.
// String types follow RFC 5280 §4.1.2.4 / X.520: UTF8String for free text (Chinese names
// survive), PrintableString for countryName and serialNumber, IA5String for emailAddress.
import { DerError, Tag, children, oid, readOid, readTlv, seq, tlv, type Tlv } from '../crypto/der.js';

/** Attribute types the appliance writes or names in RFC 4514 strings. */
export const NAME_OIDS = {
  C: '2.5.4.6',
  ST: '2.5.4.8',
  L: '2.5.4.7',
  O: '2.5.4.10',
  OU: '2.5.4.11',
  CN: '2.5.4.3',
  title: '2.5.4.12',
  serialNumber: '2.5.4.5',
  organizationIdentifier: '2.5.4.97',
  UID: '0.9.2342.19200300.100.1.1',
  emailAddress: '1.2.840.113549.1.9.1',
} as const;

export type NameAttributeType = keyof typeof NAME_OIDS;

const SHORT_BY_OID = new Map<string, string>(Object.entries(NAME_OIDS).map(([k, v]) => [v, k]));

/** PrintableString alphabet (X.680 §41.4). */
export const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

const UTF8 = 0x0c;
const PRINTABLE_STRING = 0x13;
const TELETEX = 0x14;
const IA5 = 0x16;
const UNIVERSAL = 0x1c;
const BMP = 0x1e;
const SET = 0x31;

export interface NameAttribute {
  type: NameAttributeType;
  value: string;
}

/** One attribute of a decoded name. */
export interface NameEntry {
  oid: string;
  /** The value as text when it is a string type; else the hex of its DER. */
  value: string;
  /** DER of the value (tag included). */
  der: Buffer;
  isString: boolean;
}

function stringTag(type: NameAttributeType): number {
  return type === 'C' || type === 'serialNumber' ? PRINTABLE_STRING : type === 'emailAddress' ? IA5 : UTF8;
}

/** DER of a Name with one attribute per RDN, in the order given (most general first: C, O, OU, CN). */
export function encodeName(attributes: NameAttribute[]): Buffer {
  return seq(
    ...attributes.map((a) => {
      const tag = stringTag(a.type);
      if (tag === PRINTABLE_STRING && !PRINTABLE.test(a.value)) throw new DerError(`${a.type} must be a PrintableString`);
      return tlv(SET, seq(oid(NAME_OIDS[a.type]), tlv(tag, Buffer.from(a.value, tag === UTF8 ? 'utf8' : 'latin1'))));
    }),
  );
}

function decodeString(t: Tlv): string | undefined {
  switch (t.tag) {
    case UTF8:
      return new TextDecoder('utf-8', { fatal: true }).decode(t.value);
    case PRINTABLE_STRING:
    case IA5:
    case TELETEX:
      return t.value.toString('latin1');
    case BMP: {
      if (t.value.length % 2) throw new DerError('odd BMPString');
      const swapped = Buffer.from(t.value);
      swapped.swap16();
      return swapped.toString('utf16le');
    }
    case UNIVERSAL: {
      if (t.value.length % 4) throw new DerError('bad UniversalString');
      let s = '';
      for (let i = 0; i < t.value.length; i += 4) s += String.fromCodePoint(t.value.readUInt32BE(i));
      return s;
    }
    default:
      return undefined;
  }
}

/** RDNs of a Name DER, each a list of entries (multi-valued RDNs keep their entries together). */
export function decodeName(der: Buffer): NameEntry[][] {
  const { tlv: outer, next } = readTlv(der, 0);
  if (outer.tag !== Tag.SEQUENCE || next !== der.length) throw new DerError('a Name is one SEQUENCE');
  return children(outer.value).map((rdn) => {
    if (rdn.tag !== SET) throw new DerError('an RDN is a SET');
    const entries = children(rdn.value).map((atv) => {
      if (atv.tag !== Tag.SEQUENCE) throw new DerError('an attribute is a SEQUENCE');
      const [type, value, extra] = children(atv.value);
      if (!value || extra) throw new DerError('an attribute has a type and a value');
      const text = decodeString(value);
      return { oid: readOid(type), value: text ?? value.raw.toString('hex'), der: Buffer.from(value.raw), isString: text !== undefined };
    });
    if (entries.length === 0) throw new DerError('empty RDN');
    return entries;
  });
}

/** First value of an attribute type, if any. */
export function nameValue(der: Buffer, type: NameAttributeType): string | undefined {
  for (const rdn of decodeName(der)) for (const e of rdn) if (e.oid === NAME_OIDS[type] && e.isString) return e.value;
  return undefined;
}

function escapeValue(v: string): string {
  // RFC 4514 §2.4
  let s = v.replace(/[\\,+"<>;=]/g, (c) => `\\${c}`).replace(/\0/g, '\\00');
  if (s.startsWith('#') || s.startsWith(' ')) s = `\\${s}`;
  if (s.endsWith(' ') && s.length > 1) s = `${s.slice(0, -1)}\\ `;
  return s;
}

// Reports name the same subjects and issuers on every verification: strings are kept per
// distinct Name DER (bounded, oldest out first; a string pins no buffer).
const NAME_STRINGS_MAX = 2048;
const nameStrings = new Map<string, string>();

/** RFC 4514 string of a Name DER: RDNs in reverse order, e.g. "CN=张三,OU=心内科,O=某医院,C=CN". */
export function nameToString(der: Buffer): string {
  const key = der.toString('latin1');
  let s = nameStrings.get(key);
  if (s === undefined) {
    s = formatName(der);
    if (nameStrings.size >= NAME_STRINGS_MAX) nameStrings.delete(nameStrings.keys().next().value as string);
    nameStrings.set(key, s);
  }
  return s;
}

function formatName(der: Buffer): string {
  return decodeName(der)
    .reverse()
    .map((rdn) =>
      rdn
        .map((e) => {
          const short = SHORT_BY_OID.get(e.oid);
          // Unknown types or non-string values: dotted OID and the DER of the value in hex (§2.4).
          return short && e.isString ? `${short}=${escapeValue(e.value)}` : `${e.oid}=#${e.der.toString('hex')}`;
        })
        .join('+'),
    )
    .join(',');
}
