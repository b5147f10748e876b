// X.501 Name (RFC 5280 §4.1.2.4): built from attribute lists, read back to attribute lists, and
// shown as an RFC 4514 string. Encode/decode only.
// String types follow RFC 5280 §4.1.2.4 / X.520: UTF8String for free text (Chinese names survive),
// PrintableString for countryName and serialNumber.
import { AsnConvert } from '@peculiar/asn1-schema';
import { AttributeTypeAndValue, AttributeValue, Name, RelativeDistinguishedName } from '@peculiar/asn1-x509';

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

export interface NameAttribute {
  type: NameAttributeType;
  value: string;
}

function attributeValue(type: NameAttributeType, value: string): AttributeValue {
  if (type === 'C' || type === 'serialNumber') return new AttributeValue({ printableString: value });
  if (type === 'emailAddress') return new AttributeValue({ ia5String: value });
  return new AttributeValue({ utf8String: value });
}

/** A Name with one attribute per RDN, in the order given (most general first: C, O, OU, CN). */
export function buildName(attributes: NameAttribute[]): Name {
  return new Name(attributes.map((a) => new RelativeDistinguishedName([new AttributeTypeAndValue({ type: NAME_OIDS[a.type], value: attributeValue(a.type, a.value) })])));
}

export function encodeName(name: Name): Buffer {
  return Buffer.from(AsnConvert.serialize(name));
}

/** Every attribute of the name as [oid, string value] in encoded order (multi-valued RDNs flattened). */
export function nameAttributes(name: Name): { oid: string; value: string }[] {
  const out: { oid: string; value: string }[] = [];
  for (const rdn of name) for (const atv of rdn) out.push({ oid: atv.type, value: atv.value.toString() });
  return out;
}

/** First value of an attribute type, if any. */
export function nameValue(name: Name, type: NameAttributeType): string | undefined {
  return nameAttributes(name).find((a) => a.oid === NAME_OIDS[type])?.value;
}

function escapeValue(v: string): string {
  // RFC 4514 §2.4
  let s = v.replace(/[\\,+"<>;=]/g, (c) => `\\${c}`).replace(/\0/g, '\\00');
  if (s.startsWith('#') || s.startsWith(' ')) s = `\\${s}`;
  if (s.endsWith(' ') && s.length > 1) s = `${s.slice(0, -1)}\\ `;
  return s;
}

/** RFC 4514 string: RDNs in reverse order, e.g. "CN=张三,OU=心内科,O=某医院,C=CN". */
export function nameToString(name: Name): string {
  return [...name]
    .reverse()
    .map((rdn) =>
      [...rdn]
        .map((atv) => {
          const short = SHORT_BY_OID.get(atv.type);
          if (short) return `${short}=${escapeValue(atv.value.toString())}`;
          // Unknown types: dotted OID and the BER of the value in hex (RFC 4514 §2.4).
          return `${atv.type}=#${Buffer.from(AsnConvert.serialize(atv.value)).toString('hex')}`;
        })
        .join('+'),
    )
    .join(',');
}
