// The few DER shapes the crypto engine reads and writes itself (X.690 §8 and §10): SM2
// signatures and ciphertexts (GM/T 0009 §7), SPKI, PKCS#8 and SEC1 keys. Strict: definite
// minimal lengths, low tag numbers, minimal non-negative INTEGERs, nothing after the end.
// Throws DerError; callers turn it into their own outcome (false, DECRYPTION_FAILED, …).

export class DerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DerError';
  }
}

export const Tag = {
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  SEQUENCE: 0x30,
} as const;

export interface Tlv {
  tag: number;
  /** The content octets (a view into the input). */
  value: Buffer;
  /** The whole TLV (a view into the input). */
  raw: Buffer;
}

/** Reads one TLV at `offset`; returns it and the offset after it. */
export function readTlv(buf: Buffer, offset = 0): { tlv: Tlv; next: number } {
  if (offset + 2 > buf.length) throw new DerError('truncated TLV');
  const tag = buf[offset];
  // X.690 §8.1.2.4: tag numbers ≥ 31 use the long form; nothing we read needs them.
  if ((tag & 0x1f) === 0x1f) throw new DerError('high tag number');
  let pos = offset + 1;
  const first = buf[pos++];
  let len: number;
  if (first < 0x80) {
    len = first;
  } else {
    const n = first & 0x7f;
    // 0x80 is the indefinite form (BER only, §10.1); more than 4 length bytes is absurd here.
    if (n === 0 || n > 4) throw new DerError('bad length form');
    if (pos + n > buf.length) throw new DerError('truncated length');
    if (buf[pos] === 0) throw new DerError('non-minimal length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[pos++];
    if (len < 0x80) throw new DerError('non-minimal length'); // §10.1: short form when it fits
  }
  const end = pos + len;
  if (end > buf.length) throw new DerError('truncated value');
  return { tlv: { tag, value: buf.subarray(pos, end), raw: buf.subarray(offset, end) }, next: end };
}

/** Parses exactly one TLV that fills `buf` (no trailing bytes) and checks its tag. */
export function readWhole(buf: Buffer, tag: number): Tlv {
  const { tlv, next } = readTlv(buf, 0);
  if (tlv.tag !== tag) throw new DerError(`expected tag 0x${tag.toString(16)}, got 0x${tlv.tag.toString(16)}`);
  if (next !== buf.length) throw new DerError('trailing bytes');
  return tlv;
}

/** The children of a constructed value. */
export function children(value: Buffer): Tlv[] {
  const out: Tlv[] = [];
  let pos = 0;
  while (pos < value.length) {
    const { tlv, next } = readTlv(value, pos);
    out.push(tlv);
    pos = next;
  }
  return out;
}

export function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (!t || t.tag !== tag) throw new DerError(`${what}: wrong or missing element`);
  return t;
}

/** A non-negative INTEGER in minimal form (X.690 §8.3.2) → bigint. */
export function readUnsigned(t: Tlv): bigint {
  if (t.tag !== Tag.INTEGER) throw new DerError('not an INTEGER');
  const v = t.value;
  if (v.length === 0) throw new DerError('empty INTEGER');
  if (v[0] & 0x80) throw new DerError('negative INTEGER');
  if (v.length > 1 && v[0] === 0 && !(v[1] & 0x80)) throw new DerError('non-minimal INTEGER');
  return BigInt('0x' + v.toString('hex'));
}

export function readSmallInteger(t: Tlv): number {
  const v = readUnsigned(t);
  if (v > 0xffffn) throw new DerError('INTEGER too large');
  return Number(v);
}

// ---------- OIDs (X.690 §8.19) ----------

export function encodeOid(oid: string): Buffer {
  const arcs = oid.split('.').map((a) => {
    if (!/^\d+$/.test(a)) throw new DerError(`bad OID ${oid}`);
    return BigInt(a);
  });
  if (arcs.length < 2 || arcs[0] > 2n || (arcs[0] < 2n && arcs[1] > 39n)) throw new DerError(`bad OID ${oid}`);
  const out: number[] = [];
  const push = (n: bigint): void => {
    const bytes = [Number(n & 0x7fn)];
    for (let x = n >> 7n; x > 0n; x >>= 7n) bytes.unshift(Number(x & 0x7fn) | 0x80);
    out.push(...bytes);
  };
  push(arcs[0] * 40n + arcs[1]);
  for (const a of arcs.slice(2)) push(a);
  return Buffer.from(out);
}

/**
 * Decoded OIDs by their bytes: a CMS and its certificates carry the same few dozen OIDs on every
 * request, and decoding one (BigInt arcs, a join) cost more than the lookup. Bounded, as the
 * encoding cache below, since the bytes come from outside; only successful decodings are kept.
 */
const DECODED_OIDS = new Map<string, string>();
const DECODED_OIDS_MAX = 1024;

export function decodeOid(value: Buffer): string {
  const key = value.toString('latin1');
  let decoded = DECODED_OIDS.get(key);
  if (decoded === undefined) {
    decoded = decodeOidBytes(value);
    if (DECODED_OIDS.size < DECODED_OIDS_MAX) DECODED_OIDS.set(key, decoded);
  }
  return decoded;
}

function decodeOidBytes(value: Buffer): string {
  if (value.length === 0) throw new DerError('empty OID');
  const arcs: bigint[] = [];
  let acc = 0n;
  let fresh = true;
  for (const b of value) {
    if (fresh && b === 0x80) throw new DerError('non-minimal OID arc');
    acc = (acc << 7n) | BigInt(b & 0x7f);
    fresh = !(b & 0x80);
    if (fresh) {
      arcs.push(acc);
      acc = 0n;
    }
  }
  if (!fresh) throw new DerError('truncated OID');
  const first = arcs[0];
  const head = first < 40n ? [0n, first] : first < 80n ? [1n, first - 40n] : [2n, first - 80n];
  return [...head, ...arcs.slice(1)].join('.');
}

export function readOid(t: Tlv | undefined): string {
  if (!t || t.tag !== Tag.OID) throw new DerError('not an OBJECT IDENTIFIER');
  return decodeOid(t.value);
}

// ---------- writers ----------

/** Bytes of a definite length field (X.690 §8.1.3): short form below 128, else long form. */
function lengthBytes(n: number): number {
  if (n < 0x80) return 1;
  let k = 1;
  for (let x = n; x > 0xff; x = Math.floor(x / 256)) k++;
  return 1 + k;
}

// Writers run for every TSA token, OCSP answer and CMS signature: one allocation per TLV, no
// intermediate header arrays or double concatenation.
export function tlv(tag: number, ...content: Buffer[]): Buffer {
  let n = 0;
  for (const c of content) n += c.length;
  const lb = lengthBytes(n);
  const out = Buffer.allocUnsafe(1 + lb + n);
  out[0] = tag;
  if (lb === 1) out[1] = n;
  else {
    out[1] = 0x80 | (lb - 1);
    for (let i = lb, x = n; i >= 2; i--, x = Math.floor(x / 256)) out[i] = x & 0xff;
  }
  let at = 1 + lb;
  for (const c of content) {
    c.copy(out, at);
    at += c.length;
  }
  return out;
}

export const seq = (...items: Buffer[]): Buffer => tlv(Tag.SEQUENCE, ...items);
export const octets = (b: Buffer): Buffer => tlv(Tag.OCTET_STRING, b);

// The same few dozen OIDs are encoded on every request: keep their TLVs. Bounded, because an
// OID may come from a request (a TSA policy); past the bound they are encoded each time.
const OID_CACHE = new Map<string, Buffer>();
const OID_CACHE_MAX = 512;
/** OBJECT IDENTIFIER TLV. The returned buffer may be shared: never write into it. */
export const oid = (o: string): Buffer => {
  let b = OID_CACHE.get(o);
  if (!b) {
    b = tlv(Tag.OID, encodeOid(o));
    if (OID_CACHE.size < OID_CACHE_MAX) OID_CACHE.set(o, b);
  }
  return b;
};
export const bitString = (b: Buffer): Buffer => tlv(Tag.BIT_STRING, Buffer.from([0]), b);
export const derNull = (): Buffer => Buffer.from([0x05, 0x00]);

export function integer(v: bigint | number): Buffer {
  // Small non-negative numbers (versions, counts, millis) without BigInt and hex round trips.
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < 0x800000) {
    const len = v < 0x80 ? 1 : v < 0x8000 ? 2 : 3;
    const out = Buffer.allocUnsafe(2 + len);
    out[0] = Tag.INTEGER;
    out[1] = len;
    for (let i = len - 1, x = v; i >= 0; i--, x >>= 8) out[2 + i] = x & 0xff;
    return out;
  }
  const n = BigInt(v);
  if (n < 0n) throw new DerError('negative INTEGER not supported');
  let hex = n.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  let b = Buffer.from(hex, 'hex');
  if (b[0] & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(Tag.INTEGER, b);
}

/** BIT STRING content with no unused bits (keys, X.690 §8.6). */
export function readBitStringBytes(t: Tlv | undefined): Buffer {
  if (!t || t.tag !== Tag.BIT_STRING) throw new DerError('not a BIT STRING');
  if (t.value.length < 1 || t.value[0] !== 0) throw new DerError('BIT STRING with unused bits');
  return t.value.subarray(1);
}

// ---------- PEM (RFC 7468) ----------

export function toPem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** All PEM blocks in a text, in order. */
export function fromPem(text: string): { label: string; der: Buffer }[] {
  const out: { label: string; der: Buffer }[] = [];
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const body = m[2];
    // Encapsulated headers (RFC 1421 "Proc-Type:") mean legacy encryption: not supported.
    if (/:/.test(body)) throw new DerError(`PEM ${m[1]} has headers (encrypted legacy PEM is not supported)`);
    const b64 = body.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw new DerError('bad base64 in PEM');
    out.push({ label: m[1], der: Buffer.from(b64, 'base64') });
  }
  return out;
}
