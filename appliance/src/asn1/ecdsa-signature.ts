// ECDSA/SM2 signature encodings: PKCS#11 CKM_ECDSA returns raw r‖s (PKCS#11 v2.40 §2.3.1),
// X.509/CMS and GM/T 0009 §7 want DER SEQUENCE { r INTEGER, s INTEGER } (RFC 3279 §2.2.3).
import { AsnConvert } from '@peculiar/asn1-schema';
import { ECDSASigValue } from '@peculiar/asn1-ecc';
import { YiqianError, Codes } from '../errors.js';

function unsignedInteger(bytes: Uint8Array): ArrayBuffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const trimmed = bytes.subarray(i);
  // A leading 1 bit would make it negative: prefix 0x00.
  const out = trimmed[0] & 0x80 ? Buffer.concat([Buffer.from([0]), trimmed]) : Buffer.from(trimmed);
  return out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength) as ArrayBuffer;
}

/** raw r‖s (each `size` bytes) → DER. */
export function ecdsaRawToDer(raw: Uint8Array): Buffer {
  if (raw.length === 0 || raw.length % 2 !== 0) {
    throw new YiqianError(Codes.INVALID_SIGNATURE_ENCODING, 400, { zh: '签名值长度错误', en: 'raw signature has odd length' });
  }
  const half = raw.length / 2;
  const sig = new ECDSASigValue({ r: unsignedInteger(raw.subarray(0, half)), s: unsignedInteger(raw.subarray(half)) });
  return Buffer.from(AsnConvert.serialize(sig));
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
