// ECDSA/SM2 signature encodings: PKCS#11 CKM_ECDSA returns raw r‖s (PKCS#11 v2.40 §2.3.1),
// X.509/CMS and GM/T 0009 §7 want DER SEQUENCE { r INTEGER, s INTEGER } (RFC 3279 §2.2.3).
import { AsnConvert } from '@peculiar/asn1-schema';
import { ECDSASigValue } from '@peculiar/asn1-ecc';
import { YiqianError, Codes } from '../errors.js';

/** Octets of a DER length field (X.690 §8.1.3.3 short form, §8.1.3.5 long form). */
function lengthOctets(n: number): number {
  return n < 0x80 ? 1 : n < 0x100 ? 2 : 3;
}

function writeLength(out: Buffer, at: number, n: number): number {
  if (n < 0x80) out[at++] = n;
  else if (n < 0x100) {
    out[at++] = 0x81;
    out[at++] = n;
  } else {
    out[at++] = 0x82;
    out[at++] = n >> 8;
    out[at++] = n & 0xff;
  }
  return at;
}

/**
 * raw r‖s (each `size` bytes) → DER, written straight into one buffer: this runs for every HSM
 * ECDSA/SM2 signature (every TSA token), where the schema serializer was 5 % of a token's
 * main-thread time. Each INTEGER is minimal: leading zero octets dropped, one 0x00 put back
 * when the first remaining octet has its top bit set (X.690 §8.3.2, positive value).
 */
export function ecdsaRawToDer(raw: Uint8Array): Buffer {
  if (raw.length === 0 || raw.length % 2 !== 0 || raw.length > 0x4000) {
    throw new YiqianError(Codes.INVALID_SIGNATURE_ENCODING, 400, { zh: '签名值长度错误', en: 'raw signature has a wrong length (empty, odd or over 16 KiB)' });
  }
  const half = raw.length / 2;
  let r = 0;
  while (r < half - 1 && raw[r] === 0) r++;
  let s = half;
  while (s < raw.length - 1 && raw[s] === 0) s++;
  const rPad = raw[r] & 0x80 ? 1 : 0;
  const sPad = raw[s] & 0x80 ? 1 : 0;
  const rLen = half - r + rPad;
  const sLen = raw.length - s + sPad;
  const body = 1 + lengthOctets(rLen) + rLen + 1 + lengthOctets(sLen) + sLen;
  const out = Buffer.allocUnsafe(1 + lengthOctets(body) + body);
  out[0] = 0x30; // SEQUENCE { r INTEGER, s INTEGER } (RFC 3279 §2.2.3)
  let at = writeLength(out, 1, body);
  out[at++] = 0x02;
  at = writeLength(out, at, rLen);
  if (rPad) out[at++] = 0;
  out.set(raw.subarray(r, half), at);
  at += half - r;
  out[at++] = 0x02;
  at = writeLength(out, at, sLen);
  if (sPad) out[at++] = 0;
  out.set(raw.subarray(s), at);
  return out;
}

/** DER → raw r‖s with each half padded to `size` bytes. Throws on malformed DER or oversize values. */
export function ecdsaDerToRaw(der: Uint8Array, size: number): Buffer {
  let sig: ECDSASigValue;
  try {
    sig = AsnConvert.parse(Buffer.from(der), ECDSASigValue);
    // Re-encode to reject trailing bytes and non-canonical forms (DER is unique).
    if (!Buffer.from(AsnConvert.serialize(sig)).equals(Buffer.from(der))) throw new Error('not canonical DER');
  } catch (e) {
    throw new YiqianError(Codes.INVALID_SIGNATURE_ENCODING, 400, { zh: '签名值不是有效的DER编码', en: 'signature is not valid DER' }, undefined, { cause: e });
  }
  const fix = (v: ArrayBuffer): Buffer => {
    let b = Buffer.from(v);
    while (b.length > size && b[0] === 0) b = b.subarray(1);
    if (b.length > size) {
      throw new YiqianError(Codes.INVALID_SIGNATURE_ENCODING, 400, { zh: '签名分量过长', en: 'signature component too long' });
    }
    return Buffer.concat([Buffer.alloc(size - b.length), b]);
  };
  return Buffer.concat([fix(sig.r), fix(sig.s)]);
}
