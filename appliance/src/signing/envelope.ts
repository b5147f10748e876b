// Digital envelopes (issue 4 item 5): seal content to a recipient certificate, open envelopes
// addressed to a key the appliance holds. The form follows the recipient's key:
//   SM2   → GM/T 0010 envelopedData, SM4-CBC content key under SM2 encryption (GM/T 0009 DER)
//   RSA   → RFC 5083 AuthEnvelopedData, AES-256-GCM, key transport RSAES-OAEP-SHA-256 (RFC 4055, RFC 8017)
//   EC    → RFC 5083 AuthEnvelopedData, AES-256-GCM, ephemeral-static ECDH (RFC 5753
//           dhSinglePass-stdDH-sha256kdf-scheme, X9.63 KDF, id-aes256-wrap RFC 3394)
// Opening also reads RFC 5652 EnvelopedData with AES-CBC or 3DES-CBC and PKCS#1 v1.5 /
// OAEP-SHA-1 key transport, and the SHA-1/224/384/512 KDF variants (what `openssl cms -encrypt`
// writes). Private-key work goes through the custody's Decrypter; nothing here sees a private key.
import { createCipheriv, createDecipheriv, createHash, createPublicKey, diffieHellman, generateKeyPairSync, publicEncrypt, randomBytes, constants, type KeyObject } from 'node:crypto';
import {
  ENVELOPE_OID,
  eccCmsSharedInfo,
  encodeAuthEnvelopedData,
  encodeGmtEnvelopedData,
  encodeKeyAgreeRecipientInfo,
  encodeKeyTransRecipientInfo,
  oaepSha256Algorithm,
  parseEnvelope,
  readGcmParams,
  readIvParam,
  readOaepParams,
  keyWrapAlgorithm,
  type EnvelopeForm,
  type KeyAgreeRecipient,
  type ParsedEnvelope,
  type RecipientId,
} from '../asn1/cms-enveloped-data.js';
import { EXT, readCertificate, type CertificateInfo } from '../asn1/certificate.js';
import { DerError, Tag, children, expectTag, readBitStringBytes, readOid, readWhole } from '../crypto/der.js';
import type { Decrypter } from '../crypto/interfaces.js';
import { OID } from '../crypto/oids.js';
import { sm2Encrypt } from '../crypto/sm2.js';
import { sm4CbcDecrypt, sm4CbcEncrypt } from '../crypto/sm4.js';
import { Codes, YiqianError, isYiqianError } from '../errors.js';

export const EnvelopeCodes = {
  /** The recipient certificate's key or keyUsage does not allow encryption to it, or it is not valid now. */
  ENVELOPE_RECIPIENT_UNSUITABLE: 'ENVELOPE_RECIPIENT_UNSUITABLE',
  /** No RecipientInfo of the envelope names the given certificate. */
  ENVELOPE_NOT_FOR_KEY: 'ENVELOPE_NOT_FOR_KEY',
  /** Not a DER envelope (garbage, truncated, wrong content type). */
  ENVELOPE_MALFORMED: 'ENVELOPE_MALFORMED',
  /** Content over the size limit. */
  ENVELOPE_TOO_LARGE: 'ENVELOPE_TOO_LARGE',
} as const;

export type RecipientKeyKind = 'sm2' | 'rsa' | 'ec';
/** Content encryption names in answers, e.g. SM4-CBC, AES-256-GCM. */
export type ContentEncryptionName = 'SM4-CBC' | 'AES-128-CBC' | 'AES-192-CBC' | 'AES-256-CBC' | 'DES-EDE3-CBC' | 'AES-128-GCM' | 'AES-192-GCM' | 'AES-256-GCM';

export interface SealRequest {
  /** DER of the recipient's certificate. */
  recipientCertificate: Buffer;
  content: Buffer;
  /** Largest content accepted (the API body limit); default 10 MiB. */
  maxContentBytes?: number;
  /** Judge the certificate's validity at this time; default now. */
  at?: Date;
}

export interface SealResult {
  /** DER ContentInfo. */
  envelope: Buffer;
  form: EnvelopeForm;
  contentEncryption: ContentEncryptionName;
  /** How the content key reaches the recipient, e.g. SM2, RSAES-OAEP-SHA256, ECDH-SHA256KDF-AES256WRAP. */
  keyEncryption: string;
}

export interface OpenRequest {
  envelope: Buffer;
  /** The custody key (URI or inventory id) of the recipient's private key. */
  keyUri: string;
  /** DER of that key's certificate: finds the RecipientInfo and tells the key type. */
  certificate: Buffer;
  decrypter: Decrypter;
  maxContentBytes?: number;
}

export interface OpenResult {
  content: Buffer;
  form: EnvelopeForm;
  contentEncryption: ContentEncryptionName;
  keyEncryption: string;
}

const DEFAULT_MAX = 10 * 1024 * 1024;

function err(code: string, status: number, zh: string, en: string, detail?: Record<string, unknown>, cause?: unknown): YiqianError {
  return new YiqianError(code, status, { zh, en }, detail, { cause });
}

const malformed = (why: string, cause?: unknown): YiqianError => err(EnvelopeCodes.ENVELOPE_MALFORMED, 400, `数字信封格式错误：${why}`, `malformed envelope: ${why}`, { reason: why }, cause);
const unsupported = (what: string): YiqianError => err(Codes.UNSUPPORTED_ALGORITHM, 400, `不支持的算法：${what}`, `unsupported algorithm: ${what}`, { algorithm: what });
const failed = (why: string, cause?: unknown): YiqianError => err(Codes.DECRYPTION_FAILED, 400, '数字信封解密失败', `decryption failed: ${why}`, undefined, cause);
const unsuitable = (why: string, zh: string): YiqianError => err(EnvelopeCodes.ENVELOPE_RECIPIENT_UNSUITABLE, 400, `接收者证书不适合加密：${zh}`, `the recipient certificate is not suitable for encryption: ${why}`, { reason: why });

function checkSize(content: Buffer, max: number): void {
  if (content.length > max) throw err(EnvelopeCodes.ENVELOPE_TOO_LARGE, 413, `内容超过 ${max} 字节`, `content is larger than ${max} bytes`, { limit: max });
}

// ---------- recipient certificate ----------

interface Recipient {
  info: CertificateInfo;
  kind: RecipientKeyKind;
  /** Uncompressed point (sm2, ec); curve name for node (ec). */
  point?: Buffer;
  curve?: 'P-256' | 'P-384';
  key?: KeyObject;
  serialValue: Buffer;
}

const CURVES: Record<string, { name: 'P-256' | 'P-384'; size: number }> = {
  [OID.secp256r1]: { name: 'P-256', size: 32 },
  [OID.secp384r1]: { name: 'P-384', size: 48 },
};

function serialValueOf(certDer: Buffer): Buffer {
  const tbs = children(readWhole(certDer, Tag.SEQUENCE).value)[0];
  const items = children(tbs.value);
  return Buffer.from(expectTag(items[items[0]?.tag === 0xa0 ? 1 : 0], Tag.INTEGER, 'serialNumber').value);
}

/** The key type of a certificate's SPKI (RFC 5480 §2.1.1; SM2 by curve or by algorithm OID, STANDARDS.md §1). */
function recipientOf(certDer: Buffer): Recipient {
  let info: CertificateInfo;
  try {
    info = readCertificate(certDer);
  } catch (e) {
    throw err(Codes.BAD_REQUEST, 400, '证书不是有效的 DER', `the certificate is not valid DER: ${(e as Error).message}`, undefined, e);
  }
  const [algTlv, keyTlv] = children(readWhole(info.publicKeyInfo, Tag.SEQUENCE).value);
  const alg = children(expectTag(algTlv, Tag.SEQUENCE, 'algorithm').value);
  const algOid = readOid(alg[0]);
  const serialValue = serialValueOf(certDer);
  if (algOid === OID.rsaEncryption) return { info, kind: 'rsa', key: createPublicKey({ key: info.publicKeyInfo, format: 'der', type: 'spki' }), serialValue };
  const curveOid = alg[1]?.tag === Tag.OID ? readOid(alg[1]) : undefined;
  const point = Buffer.from(readBitStringBytes(keyTlv));
  if (algOid === OID.sm2 || (algOid === OID.idEcPublicKey && curveOid === OID.sm2p256v1)) return { info, kind: 'sm2', point, serialValue };
  if (algOid === OID.idEcPublicKey && curveOid && CURVES[curveOid]) return { info, kind: 'ec', point, curve: CURVES[curveOid].name, key: createPublicKey({ key: info.publicKeyInfo, format: 'der', type: 'spki' }), serialValue };
  throw unsupported(`recipient key ${algOid}${curveOid ? ` (${curveOid})` : ''}`);
}

/** keyUsage bits (RFC 5280 §4.2.1.3); undefined when the extension is absent. */
function keyUsageBits(info: CertificateInfo): Set<number> | undefined {
  const ext = info.extensions.find((e) => e.oid === EXT.keyUsage);
  if (!ext) return undefined;
  const t = readWhole(ext.value, Tag.BIT_STRING).value;
  const bits = new Set<number>();
  for (let i = 1; i < t.length; i++) for (let b = 0; b < 8; b++) if (t[i] & (0x80 >> b)) bits.add((i - 1) * 8 + b);
  return bits;
}

const KU = { keyEncipherment: 2, dataEncipherment: 3, keyAgreement: 4 } as const;

function checkSuitable(r: Recipient, at: Date): void {
  if (at < r.info.notBefore || at > r.info.notAfter) throw unsuitable('it is not valid now', '证书不在有效期内');
  let bits: Set<number> | undefined;
  try {
    bits = keyUsageBits(r.info);
  } catch (e) {
    throw unsuitable(`malformed keyUsage (${(e as Error).message})`, 'keyUsage 扩展格式错误');
  }
  if (!bits) return; // RFC 5280 §4.2.1.3: no keyUsage, no restriction
  // RSA/SM2 key transport needs keyEncipherment (RFC 4055 §1.2; GM/T 0015 encryption certificates);
  // ECDH key agreement needs keyAgreement (RFC 5480 §3, RFC 5753 §3.1).
  if (r.kind === 'ec' ? !bits.has(KU.keyAgreement) : !bits.has(KU.keyEncipherment)) {
    const need = r.kind === 'ec' ? 'keyAgreement' : 'keyEncipherment';
    throw unsuitable(`its keyUsage lacks ${need}`, `keyUsage 缺少 ${need}`);
  }
}

// ---------- key derivation and wrapping ----------

/** ANSI X9.63 KDF (SEC 1 §3.6.1) as RFC 5753 §3.1.2 uses it: Hash(Z ‖ counter ‖ SharedInfo), counter from 1. */
function x963Kdf(hash: string, z: Buffer, sharedInfo: Buffer, len: number): Buffer {
  const out: Buffer[] = [];
  let have = 0;
  for (let counter = 1; have < len; counter++) {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(counter);
    const d = createHash(hash).update(z).update(c).update(sharedInfo).digest();
    out.push(d);
    have += d.length;
  }
  return Buffer.concat(out).subarray(0, len);
}

const WRAPS: Record<string, { cipher: string; bytes: number; name: string }> = {
  [ENVELOPE_OID.aes128Wrap]: { cipher: 'id-aes128-wrap', bytes: 16, name: 'AES128WRAP' },
  [ENVELOPE_OID.aes192Wrap]: { cipher: 'id-aes192-wrap', bytes: 24, name: 'AES192WRAP' },
  [ENVELOPE_OID.aes256Wrap]: { cipher: 'id-aes256-wrap', bytes: 32, name: 'AES256WRAP' },
};
const KDF_HASHES: Record<string, string> = {
  [ENVELOPE_OID.ecdhSha1Kdf]: 'sha1',
  [ENVELOPE_OID.ecdhSha224Kdf]: 'sha224',
  [ENVELOPE_OID.ecdhSha256Kdf]: 'sha256',
  [ENVELOPE_OID.ecdhSha384Kdf]: 'sha384',
  [ENVELOPE_OID.ecdhSha512Kdf]: 'sha512',
};
/** RFC 3394 §2.2.3.1 default IV. */
const AES_WRAP_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');

function aesWrap(cipher: string, kek: Buffer, key: Buffer): Buffer {
  const c = createCipheriv(cipher, kek, AES_WRAP_IV);
  return Buffer.concat([c.update(key), c.final()]);
}

function aesUnwrap(cipher: string, kek: Buffer, wrapped: Buffer): Buffer {
  try {
    const d = createDecipheriv(cipher, kek, AES_WRAP_IV);
    return Buffer.concat([d.update(wrapped), d.final()]);
  } catch (e) {
    throw failed('the content key does not unwrap (RFC 3394 integrity check)', e);
  }
}

// ---------- content ciphers ----------

const CONTENT: Record<string, { name: ContentEncryptionName; node: string; keyBytes: number; mode: 'cbc' | 'gcm' }> = {
  [OID.sm4Cbc]: { name: 'SM4-CBC', node: 'sm4-cbc', keyBytes: 16, mode: 'cbc' },
  [ENVELOPE_OID.aes128Cbc]: { name: 'AES-128-CBC', node: 'aes-128-cbc', keyBytes: 16, mode: 'cbc' },
  [ENVELOPE_OID.aes192Cbc]: { name: 'AES-192-CBC', node: 'aes-192-cbc', keyBytes: 24, mode: 'cbc' },
  [ENVELOPE_OID.aes256Cbc]: { name: 'AES-256-CBC', node: 'aes-256-cbc', keyBytes: 32, mode: 'cbc' },
  [ENVELOPE_OID.desEde3Cbc]: { name: 'DES-EDE3-CBC', node: 'des-ede3-cbc', keyBytes: 24, mode: 'cbc' },
  [ENVELOPE_OID.aes128Gcm]: { name: 'AES-128-GCM', node: 'aes-128-gcm', keyBytes: 16, mode: 'gcm' },
  [ENVELOPE_OID.aes192Gcm]: { name: 'AES-192-GCM', node: 'aes-192-gcm', keyBytes: 24, mode: 'gcm' },
  [ENVELOPE_OID.aes256Gcm]: { name: 'AES-256-GCM', node: 'aes-256-gcm', keyBytes: 32, mode: 'gcm' },
};

function gcmSeal(key: Buffer, content: Buffer): { nonce: Buffer; ciphertext: Buffer; tag: Buffer } {
  // RFC 5084 §3.2: a 12-octet nonce, fresh for every key (the key is fresh for every envelope).
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: 16 });
  const ciphertext = Buffer.concat([c.update(content), c.final()]);
  return { nonce, ciphertext, tag: c.getAuthTag() };
}

// ---------- seal ----------

export async function sealEnvelope(req: SealRequest): Promise<SealResult> {
  if (!Buffer.isBuffer(req.content)) throw err(Codes.BAD_REQUEST, 400, '内容必须是字节', 'content must be bytes');
  checkSize(req.content, req.maxContentBytes ?? DEFAULT_MAX);
  const r = recipientOf(req.recipientCertificate);
  checkSuitable(r, req.at ?? new Date());
  const issuerDer = r.info.issuerDer;
  if (r.kind === 'sm2') {
    // GM/T 0010: SM4-CBC content key (16 bytes) encrypted with SM2 (GM/T 0009 DER SM2Cipher).
    const cek = randomBytes(16);
    const iv = randomBytes(16);
    try {
      const ciphertext = sm4CbcEncrypt(cek, iv, req.content);
      const encryptedKey = await sm2Encrypt(r.point as Buffer, cek, 'der');
      return { envelope: encodeGmtEnvelopedData({ issuerDer, serialValue: r.serialValue, encryptedKey, iv, ciphertext }), form: 'gmt0010', contentEncryption: 'SM4-CBC', keyEncryption: 'SM2' };
    } finally {
      cek.fill(0);
    }
  }
  const cek = randomBytes(32);
  try {
    let recipientInfo: Buffer;
    let keyEncryption: string;
    if (r.kind === 'rsa') {
      const encryptedKey = publicEncrypt({ key: r.key as KeyObject, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, cek);
      recipientInfo = encodeKeyTransRecipientInfo({ issuerDer, serialValue: r.serialValue, keyEncryptionAlgorithm: oaepSha256Algorithm(), encryptedKey });
      keyEncryption = 'RSAES-OAEP-SHA256';
    } else {
      // RFC 5753 §3.1.2: ephemeral key on the recipient's curve, Z = x(eph·Q), KEK by X9.63 KDF over ECC-CMS-SharedInfo.
      const eph = generateKeyPairSync('ec', { namedCurve: r.curve as string });
      const z = diffieHellman({ privateKey: eph.privateKey, publicKey: r.key as KeyObject });
      const wrap = WRAPS[ENVELOPE_OID.aes256Wrap];
      const kek = x963Kdf('sha256', z, eccCmsSharedInfo(keyWrapAlgorithm(ENVELOPE_OID.aes256Wrap), wrap.bytes * 8), wrap.bytes);
      z.fill(0);
      const encryptedKey = aesWrap(wrap.cipher, kek, cek);
      kek.fill(0);
      const ephPoint = ecPointOf(eph.publicKey);
      recipientInfo = encodeKeyAgreeRecipientInfo({ originatorPoint: ephPoint, schemeOid: ENVELOPE_OID.ecdhSha256Kdf, wrapOid: ENVELOPE_OID.aes256Wrap, issuerDer, serialValue: r.serialValue, encryptedKey });
      keyEncryption = 'ECDH-SHA256KDF-AES256WRAP';
    }
    const g = gcmSeal(cek, req.content);
    return {
      envelope: encodeAuthEnvelopedData({ recipientInfo, gcmOid: ENVELOPE_OID.aes256Gcm, nonce: g.nonce, tagLength: 16, ciphertext: g.ciphertext, tag: g.tag }),
      form: 'rfc5083',
      contentEncryption: 'AES-256-GCM',
      keyEncryption,
    };
  } finally {
    cek.fill(0);
  }
}

/** Uncompressed point of an EC public key (the BIT STRING of its SPKI). */
function ecPointOf(key: KeyObject): Buffer {
  const spki = key.export({ format: 'der', type: 'spki' });
  return Buffer.from(readBitStringBytes(children(readWhole(spki, Tag.SEQUENCE).value)[1]));
}

// ---------- open ----------

function sameRecipient(rid: RecipientId, r: Recipient): boolean {
  if (rid.issuerDer && rid.serialValue) return rid.issuerDer.equals(r.info.issuerDer) && rid.serialValue.equals(r.serialValue);
  return !!rid.subjectKeyIdentifier && !!r.info.subjectKeyIdentifier && rid.subjectKeyIdentifier.equals(r.info.subjectKeyIdentifier);
}

async function openKtri(env: ParsedEnvelope, r: Recipient, req: OpenRequest): Promise<{ cek: Buffer; keyEncryption: string } | undefined> {
  for (const ri of env.recipients) {
    if (ri.kind !== 'ktri' || !sameRecipient(ri.rid, r)) continue;
    const alg = ri.keyEncryptionAlgorithm.oid;
    if (r.kind === 'sm2') {
      // GM/T 0010 RecipientInfo: SM2-3 (.301.3); GmSSL writes .301.2 for the same thing (STANDARDS.md §1) — not accepted.
      if (alg !== OID.sm2Encrypt && alg !== OID.sm2) throw unsupported(`key encryption ${alg} for an SM2 key`);
      return { cek: await req.decrypter.decrypt(req.keyUri, { kind: 'sm2' }, ri.encryptedKey), keyEncryption: 'SM2' };
    }
    if (r.kind !== 'rsa') throw unsupported(`key transport ${alg} to an EC key`);
    if (alg === OID.rsaEncryption) {
      // RFC 3218 §2.3.2: on a PKCS#1 v1.5 failure carry on with a random key, so the only error is the content's.
      try {
        return { cek: await req.decrypter.decrypt(req.keyUri, { kind: 'rsa-pkcs1' }, ri.encryptedKey), keyEncryption: 'RSAES-PKCS1-v1_5' };
      } catch (e) {
        if (isYiqianError(e) && e.code === Codes.DECRYPTION_FAILED) return { cek: randomBytes(32), keyEncryption: 'RSAES-PKCS1-v1_5' };
        throw e;
      }
    }
    if (alg === ENVELOPE_OID.rsaesOaep) {
      let p;
      try {
        p = readOaepParams(ri.keyEncryptionAlgorithm.params);
      } catch (e) {
        throw malformed(`RSAES-OAEP parameters: ${(e as Error).message}`, e);
      }
      const hash = p.hash === ENVELOPE_OID.sha1 ? 'sha1' : p.hash === OID.sha256 ? 'sha256' : undefined;
      if (!hash || p.mgfHash !== p.hash || !p.emptyLabel) throw unsupported(`RSAES-OAEP with hash ${p.hash}, MGF1 ${p.mgfHash}${p.emptyLabel ? '' : ', a label'}`);
      return { cek: await req.decrypter.decrypt(req.keyUri, { kind: 'rsa-oaep', hash }, ri.encryptedKey), keyEncryption: `RSAES-OAEP-${hash.toUpperCase()}` };
    }
    throw unsupported(`key transport ${alg}`);
  }
  return undefined;
}

async function openKari(env: ParsedEnvelope, r: Recipient, req: OpenRequest): Promise<{ cek: Buffer; keyEncryption: string } | undefined> {
  for (const ri of env.recipients) {
    if (ri.kind !== 'kari') continue;
    const rek = ri.recipientEncryptedKeys.find((k) => sameRecipient(k.rid, r));
    if (!rek) continue;
    if (r.kind !== 'ec') throw unsupported(`key agreement to a ${r.kind} key`);
    return { cek: await unwrapKari(ri, rek.encryptedKey, req), keyEncryption: kariName(ri) };
  }
  return undefined;
}

function kariName(ri: KeyAgreeRecipient): string {
  const h = KDF_HASHES[ri.keyEncryptionAlgorithm.oid] ?? '?';
  const w = ri.keyWrapAlgorithm ? WRAPS[ri.keyWrapAlgorithm.oid]?.name ?? '?' : '?';
  return `ECDH-${h.toUpperCase()}KDF-${w}`;
}

/** RFC 5753 §3.1.2 recipient side: Z from the custody, KEK = X9.63-KDF(Z, ECC-CMS-SharedInfo), RFC 3394 unwrap. */
async function unwrapKari(ri: KeyAgreeRecipient, encryptedKey: Buffer, req: OpenRequest): Promise<Buffer> {
  const hash = KDF_HASHES[ri.keyEncryptionAlgorithm.oid];
  if (!hash) throw unsupported(`key agreement ${ri.keyEncryptionAlgorithm.oid}`);
  const wrap = ri.keyWrapAlgorithm && WRAPS[ri.keyWrapAlgorithm.oid];
  if (!wrap || !ri.keyWrapAlgorithm) throw unsupported(`key wrap ${ri.keyWrapAlgorithm?.oid ?? '(none)'}`);
  if (!ri.originatorKey) throw unsupported('static-static ECDH (originator named by certificate)');
  const z = await req.decrypter.deriveEcdh(req.keyUri, ri.originatorKey.publicKey);
  const kek = x963Kdf(hash, z, eccCmsSharedInfo(ri.keyWrapAlgorithm.der, wrap.bytes * 8, ri.ukm), wrap.bytes);
  z.fill(0);
  try {
    return aesUnwrap(wrap.cipher, kek, encryptedKey);
  } finally {
    kek.fill(0);
  }
}

function decryptContent(env: ParsedEnvelope, cek: Buffer, max: number): { content: Buffer; name: ContentEncryptionName } {
  const c = CONTENT[env.contentEncryption.oid];
  if (!c) throw unsupported(`content encryption ${env.contentEncryption.oid}`);
  if ((c.mode === 'gcm') !== (env.form === 'rfc5083')) throw malformed(`${c.name} in ${env.form}`);
  if (cek.length !== c.keyBytes) throw failed(`the content key has ${cek.length} bytes, ${c.name} needs ${c.keyBytes}`);
  // A CBC/GCM ciphertext is at most 16 bytes longer than its plaintext.
  if (env.ciphertext.length > max + 16) throw err(EnvelopeCodes.ENVELOPE_TOO_LARGE, 413, `内容超过 ${max} 字节`, `content is larger than ${max} bytes`, { limit: max });
  let params;
  try {
    params = c.mode === 'gcm' ? readGcmParams(env.contentEncryption.params) : { iv: readIvParam(env.contentEncryption.params) };
  } catch (e) {
    throw malformed(`${c.name} parameters: ${(e as Error).message}`, e);
  }
  if ('iv' in params) {
    const ivLen = c.name === 'DES-EDE3-CBC' ? 8 : 16;
    if (params.iv.length !== ivLen) throw malformed(`${c.name} IV of ${params.iv.length} bytes`);
    if (c.name === 'SM4-CBC') return { content: sm4CbcDecrypt(cek, params.iv, env.ciphertext), name: c.name };
    try {
      const d = createDecipheriv(c.node, cek, params.iv);
      return { content: Buffer.concat([d.update(env.ciphertext), d.final()]), name: c.name };
    } catch (e) {
      throw failed(`${c.name} padding`, e);
    }
  }
  // RFC 5084 §3.2: 12-octet nonce recommended; ICV 12–16 octets; the mac field is the tag.
  const { nonce, tagLength } = params;
  if (nonce.length < 1 || ![12, 13, 14, 15, 16].includes(tagLength) || env.mac?.length !== tagLength) throw malformed('GCM nonce, ICV length or mac');
  try {
    const d = createDecipheriv(c.node as 'aes-256-gcm', cek, nonce, { authTagLength: tagLength });
    d.setAuthTag(env.mac);
    if (env.authAttrsDer) d.setAAD(env.authAttrsDer);
    return { content: Buffer.concat([d.update(env.ciphertext), d.final()]), name: c.name };
  } catch (e) {
    throw failed('the GCM tag does not match', e);
  }
}

export async function openEnvelope(req: OpenRequest): Promise<OpenResult> {
  if (!Buffer.isBuffer(req.envelope) || req.envelope.length === 0) throw malformed('empty');
  const max = req.maxContentBytes ?? DEFAULT_MAX;
  let env: ParsedEnvelope;
  try {
    env = parseEnvelope(req.envelope);
  } catch (e) {
    if (e instanceof DerError) throw malformed(e.message, e);
    throw e;
  }
  const r = recipientOf(req.certificate);
  const opened = (await openKtri(env, r, req)) ?? (await openKari(env, r, req));
  if (!opened) {
    throw err(EnvelopeCodes.ENVELOPE_NOT_FOR_KEY, 400, '该数字信封不是发给此密钥的', 'the envelope has no recipient info for this key', { recipients: env.recipients.length });
  }
  try {
    const { content, name } = decryptContent(env, opened.cek, max);
    checkSize(content, max);
    return { content, form: env.form, contentEncryption: name, keyEncryption: opened.keyEncryption };
  } finally {
    opened.cek.fill(0);
  }
}
