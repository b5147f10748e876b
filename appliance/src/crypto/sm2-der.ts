// GM/T 0009-2012 §7 encodings of SM2 values and the key containers SM2 keys travel in:
// signature SEQUENCE { r, s }, ciphertext SEQUENCE { x, y, hash, ciphertext } (C1C3C2),
// SubjectPublicKeyInfo (RFC 5480 / GM/T 0015-2023), PKCS#8 (RFC 5208) and SEC1 (RFC 5915).
// Decoders are strict DER and throw DerError.
import { DerError, Tag, bitString, children, expectTag, integer, octets, oid, readBitStringBytes, readOid, readSmallInteger, readUnsigned, readWhole, seq, tlv } from './der.js';
import { SM2P256V1, fromBytes, toBytes } from './ec-curve.js';
import { OID } from './oids.js';

const N = SM2P256V1.n;
const P = SM2P256V1.p;

/** SM2Signature ::= SEQUENCE { R INTEGER, S INTEGER } (GM/T 0009 §7.3). */
export function encodeSm2Signature(r: bigint, s: bigint): Buffer {
  return seq(integer(r), integer(s));
}

/**
 * Strict decode: canonical DER, no trailing bytes, r and s in [1, n−1] (GB/T 32918.2 §7.1 B1–B2).
 * Throws DerError otherwise.
 */
export function decodeSm2Signature(der: Buffer): { r: bigint; s: bigint } {
  const items = children(readWhole(der, Tag.SEQUENCE).value);
  if (items.length !== 2) throw new DerError('SM2 signature must have exactly r and s');
  const r = readUnsigned(items[0]);
  const s = readUnsigned(items[1]);
  if (r < 1n || r >= N || s < 1n || s >= N) throw new DerError('SM2 signature r or s out of [1, n-1]');
  return { r, s };
}

/** raw C1 ‖ C3 ‖ C2 (C1 = 04 ‖ x ‖ y) → SM2Cipher DER (GM/T 0009 §7.2). */
export function sm2CiphertextRawToDer(raw: Buffer): Buffer {
  if (raw.length <= 97 || raw[0] !== 0x04) throw new DerError('SM2 C1C3C2 ciphertext too short or C1 not uncompressed');
  return seq(integer(fromBytes(raw.subarray(1, 33))), integer(fromBytes(raw.subarray(33, 65))), octets(raw.subarray(65, 97)), octets(raw.subarray(97)));
}

/** SM2Cipher DER → raw C1 ‖ C3 ‖ C2. Strict; x, y < p; hash 32 bytes; C2 not empty. */
export function sm2CiphertextDerToRaw(der: Buffer): Buffer {
  const items = children(readWhole(der, Tag.SEQUENCE).value);
  if (items.length !== 4) throw new DerError('SM2Cipher must have 4 elements');
  const x = readUnsigned(items[0]);
  const y = readUnsigned(items[1]);
  const hash = expectTag(items[2], Tag.OCTET_STRING, 'HASH').value;
  const c2 = expectTag(items[3], Tag.OCTET_STRING, 'CipherText').value;
  if (x >= P || y >= P) throw new DerError('C1 coordinate out of range');
  if (hash.length !== 32) throw new DerError('HASH must be 32 bytes (SM3)');
  if (c2.length === 0) throw new DerError('empty CipherText');
  return Buffer.concat([Buffer.from([0x04]), toBytes(x, 32), toBytes(y, 32), hash, c2]);
}

/** SPKI as OpenSSL and Node write it: id-ecPublicKey + namedCurve sm2p256v1 (RFC 5480 §2.1.1). */
export function encodeSm2Spki(point: Buffer): Buffer {
  return seq(seq(oid(OID.idEcPublicKey), oid(OID.sm2p256v1)), bitString(point));
}

/**
 * SPKI → the encoded point (as stored, 04‖X‖Y or compressed). Accepts id-ecPublicKey with the
 * sm2p256v1 curve, and the SM2 OID as algorithm with parameters absent, NULL or the curve OID
 * (GM/T 0015-2023). The point itself is validated by the caller.
 */
export function decodeSm2Spki(spki: Buffer): Buffer {
  const items = children(readWhole(spki, Tag.SEQUENCE).value);
  if (items.length !== 2) throw new DerError('SubjectPublicKeyInfo must have 2 elements');
  checkSm2Algorithm(expectTag(items[0], Tag.SEQUENCE, 'algorithm'));
  return readBitStringBytes(items[1]);
}

function checkSm2Algorithm(alg: { value: Buffer }): void {
  const parts = children(alg.value);
  const algOid = readOid(parts[0]);
  if (parts.length > 2) throw new DerError('AlgorithmIdentifier has extra elements');
  const params = parts[1];
  if (algOid === OID.idEcPublicKey) {
    if (!params || params.tag !== Tag.OID || readOid(params) !== OID.sm2p256v1) throw new DerError('EC key is not on sm2p256v1');
  } else if (algOid === OID.sm2) {
    if (params && !(params.tag === Tag.NULL && params.value.length === 0) && !(params.tag === Tag.OID && readOid(params) === OID.sm2p256v1)) {
      throw new DerError('unexpected SM2 algorithm parameters');
    }
  } else {
    throw new DerError(`not an SM2 key (algorithm ${algOid})`);
  }
}

/** ECPrivateKey (RFC 5915 §3) with version 1, the 32-byte d and [1] the public point. */
export function encodeSm2Sec1(d: Buffer, point: Buffer, withCurve: boolean): Buffer {
  const parts = [integer(1), octets(d)];
  if (withCurve) parts.push(tlv(0xa0, oid(OID.sm2p256v1)));
  parts.push(tlv(0xa1, bitString(point)));
  return seq(...parts);
}

/** PKCS#8 PrivateKeyInfo (RFC 5208 §5) as `openssl genpkey -algorithm SM2` writes it. */
export function encodeSm2Pkcs8(d: Buffer, point: Buffer): Buffer {
  return seq(integer(0), seq(oid(OID.idEcPublicKey), oid(OID.sm2p256v1)), octets(encodeSm2Sec1(d, point, false)));
}

export interface DecodedPrivateKey {
  d: Buffer;
  /** The public point stored with the key, if any (the caller checks it matches d). */
  point?: Buffer;
}

/** ECPrivateKey (SEC1 / RFC 5915); [0] parameters, when present, must name sm2p256v1. */
export function decodeSm2Sec1(der: Buffer): DecodedPrivateKey {
  const items = children(readWhole(der, Tag.SEQUENCE).value);
  if (readSmallInteger(expectTag(items[0], Tag.INTEGER, 'version')) !== 1) throw new DerError('ECPrivateKey version must be 1');
  const raw = expectTag(items[1], Tag.OCTET_STRING, 'privateKey').value;
  if (raw.length === 0 || raw.length > 32) throw new DerError('SM2 private key must be at most 32 bytes');
  const d = Buffer.concat([Buffer.alloc(32 - raw.length), raw]);
  let point: Buffer | undefined;
  for (const t of items.slice(2)) {
    if (t.tag === 0xa0) {
      const inner = children(t.value);
      if (inner.length !== 1 || readOid(inner[0]) !== OID.sm2p256v1) throw new DerError('EC private key is not on sm2p256v1');
    } else if (t.tag === 0xa1) {
      const inner = children(t.value);
      if (inner.length !== 1) throw new DerError('bad [1] publicKey');
      point = readBitStringBytes(inner[0]);
    } else {
      throw new DerError('unexpected element in ECPrivateKey');
    }
  }
  return { d, point };
}

/** PrivateKeyInfo / OneAsymmetricKey (RFC 5958) holding an SM2 key. */
export function decodeSm2Pkcs8(der: Buffer): DecodedPrivateKey {
  const items = children(readWhole(der, Tag.SEQUENCE).value);
  const version = readSmallInteger(expectTag(items[0], Tag.INTEGER, 'version'));
  if (version !== 0 && version !== 1) throw new DerError('unsupported PKCS#8 version');
  checkSm2Algorithm(expectTag(items[1], Tag.SEQUENCE, 'privateKeyAlgorithm'));
  return decodeSm2Sec1(expectTag(items[2], Tag.OCTET_STRING, 'privateKey').value);
}
