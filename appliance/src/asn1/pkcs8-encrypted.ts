// Encrypted PKCS#8 (RFC 5958 §3 EncryptedPrivateKeyInfo) with PBES2 (RFC 8018 §6.2):
// PBKDF2 with HMAC-SHA256 (RFC 8018 §5.2, RFC 8018 Appendix B.1.2) and AES-256-CBC (RFC 3565,
// PKCS#7 padding). The form `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes, so that
// `openssl pkcs8 -in k.p8 -passin pass:…` reads it — for SM2, ECDSA and RSA keys alike, since
// only the PrivateKeyInfo bytes are encrypted.
import { createCipheriv, createDecipheriv, pbkdf2, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { DerError, Tag, children, expectTag, octets, oid, readOid, readUnsigned, readWhole, seq, integer, derNull, toPem, fromPem } from '../crypto/der.js';
import { Codes, YiqianError } from '../errors.js';

const pbkdf2Async = promisify(pbkdf2);

export const PBES2 = {
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  hmacWithSha256: '1.2.840.113549.2.9',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
} as const;

/** OWASP 2023 figure for PBKDF2-HMAC-SHA256; about 0.3 s on one core here, run on the libuv pool. */
export const DEFAULT_PBKDF2_ITERATIONS = 600_000;
const MIN_ITERATIONS = 1_000;
const MAX_ITERATIONS = 10_000_000;

export interface EncryptOptions {
  iterations?: number;
}

/** EncryptedPrivateKeyInfo DER of a PrivateKeyInfo (PKCS#8) DER under `password` (UTF-8 bytes). */
export async function encryptPrivateKeyInfo(privateKeyInfo: Buffer, password: string, opts: EncryptOptions = {}): Promise<Buffer> {
  const iterations = opts.iterations ?? DEFAULT_PBKDF2_ITERATIONS;
  if (!Number.isInteger(iterations) || iterations < MIN_ITERATIONS || iterations > MAX_ITERATIONS) throw new RangeError(`PBKDF2 iterations must be ${MIN_ITERATIONS}..${MAX_ITERATIONS}`);
  const salt = randomBytes(16);
  const iv = randomBytes(16);
  const key = await pbkdf2Async(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256');
  try {
    const cipher = createCipheriv('aes-256-cbc', key, iv);
    const encrypted = Buffer.concat([cipher.update(privateKeyInfo), cipher.final()]);
    const kdf = seq(oid(PBES2.pbkdf2), seq(octets(salt), integer(iterations), seq(oid(PBES2.hmacWithSha256), derNull())));
    const scheme = seq(oid(PBES2.aes256Cbc), octets(iv));
    return seq(seq(oid(PBES2.pbes2), seq(kdf, scheme)), octets(encrypted));
  } finally {
    key.fill(0);
  }
}

/** The same as PEM "ENCRYPTED PRIVATE KEY" (RFC 7468 §11). */
export async function encryptPrivateKeyInfoPem(privateKeyInfo: Buffer, password: string, opts: EncryptOptions = {}): Promise<string> {
  return toPem('ENCRYPTED PRIVATE KEY', await encryptPrivateKeyInfo(privateKeyInfo, password, opts));
}

function failed(en: string, cause?: unknown): never {
  throw new YiqianError(Codes.DECRYPTION_FAILED, 400, { zh: '加密私钥无法解密', en }, undefined, { cause });
}

/**
 * Decrypts what encryptPrivateKeyInfo wrote (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC; DER or
 * PEM). A wrong password or anything else → DECRYPTION_FAILED.
 */
export async function decryptPrivateKeyInfo(input: Buffer | string, password: string): Promise<Buffer> {
  let der: Buffer;
  let salt: Buffer;
  let iterations: number;
  let iv: Buffer;
  let encrypted: Buffer;
  try {
    if (typeof input === 'string') {
      const block = fromPem(input).find((b) => b.label === 'ENCRYPTED PRIVATE KEY');
      if (!block) throw new DerError('no ENCRYPTED PRIVATE KEY block');
      der = block.der;
    } else {
      der = input;
    }
    const [alg, data] = children(readWhole(der, Tag.SEQUENCE).value);
    const [algOid, params] = children(expectTag(alg, Tag.SEQUENCE, 'encryptionAlgorithm').value);
    if (readOid(algOid) !== PBES2.pbes2) throw new DerError('not PBES2');
    const [kdf, scheme] = children(expectTag(params, Tag.SEQUENCE, 'PBES2-params').value);
    const [kdfOid, kdfParams] = children(expectTag(kdf, Tag.SEQUENCE, 'keyDerivationFunc').value);
    if (readOid(kdfOid) !== PBES2.pbkdf2) throw new DerError('not PBKDF2');
    const p = children(expectTag(kdfParams, Tag.SEQUENCE, 'PBKDF2-params').value);
    salt = Buffer.from(expectTag(p[0], Tag.OCTET_STRING, 'salt').value);
    const n = readUnsigned(p[1]);
    if (n < BigInt(MIN_ITERATIONS) || n > BigInt(MAX_ITERATIONS)) throw new DerError('iteration count out of range');
    iterations = Number(n);
    const prf = p.find((x) => x.tag === Tag.SEQUENCE);
    if (!prf || readOid(children(prf.value)[0]) !== PBES2.hmacWithSha256) throw new DerError('PRF is not HMAC-SHA256');
    const [schemeOid, ivTlv] = children(expectTag(scheme, Tag.SEQUENCE, 'encryptionScheme').value);
    if (readOid(schemeOid) !== PBES2.aes256Cbc) throw new DerError('not AES-256-CBC');
    iv = Buffer.from(expectTag(ivTlv, Tag.OCTET_STRING, 'IV').value);
    if (iv.length !== 16) throw new DerError('IV must be 16 bytes');
    encrypted = Buffer.from(expectTag(data, Tag.OCTET_STRING, 'encryptedData').value);
  } catch (e) {
    return failed(`not an encrypted PKCS#8 this appliance writes: ${(e as Error).message}`, e);
  }
  const key = await pbkdf2Async(Buffer.from(password, 'utf8'), salt, iterations, 32, 'sha256');
  try {
    const decipher = createDecipheriv('aes-256-cbc', key, iv);
    const plain = Buffer.concat([decipher.update(encrypted), decipher.final()]);
    readWhole(plain, Tag.SEQUENCE);
    return plain;
  } catch (e) {
    return failed('wrong password or damaged data', e);
  } finally {
    key.fill(0);
  }
}
