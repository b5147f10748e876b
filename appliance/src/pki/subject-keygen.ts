// Server-side key generation for a subject that has no key of its own yet: a fresh key pair,
// handed out once as encrypted PKCS#8 (asn1/pkcs8-encrypted.ts) and NOT kept by the appliance.
// ECDSA and RSA by node:crypto (async, libuv pool); SM2 by the SM2 engine (crypto/sm2.ts).
import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import { encryptPrivateKeyInfoPem } from '../asn1/pkcs8-encrypted.js';
import type { KeyAlgorithm } from '../crypto/interfaces.js';
import { generateSm2KeyPair, sm2SpkiFromPublicKey } from '../crypto/sm2.js';
import { encodeSm2Pkcs8 } from '../crypto/sm2-der.js';
import { KEY_UNSUPPORTED } from '../asn1/csr.js';
import { YiqianError } from '../errors.js';
import { issuanceError } from './issuance-errors.js';

export const KEYGEN_ALGORITHMS = ['sm2', 'ecdsa-p256', 'rsa-2048', 'rsa-3072'] as const;
export type KeygenAlgorithm = (typeof KEYGEN_ALGORITHMS)[number];

const generate = promisify(generateKeyPair);

export const MIN_PASSWORD = 8;
const MAX_PASSWORD = 1024;

/** The password that protects the PKCS#8; refused (PASSWORD_INVALID) when short or not text. */
export function checkPassword(password: unknown): string {
  if (typeof password !== 'string' || [...password].length < MIN_PASSWORD || password.length > MAX_PASSWORD || /\p{Cc}/u.test(password)) {
    throw issuanceError(
      'PASSWORD_INVALID',
      400,
      `私钥保护口令必须是 ${MIN_PASSWORD} 到 ${MAX_PASSWORD} 个字符、不含控制字符的文本`,
      `the password protecting the private key must be ${MIN_PASSWORD}–${MAX_PASSWORD} characters without control characters`,
    );
  }
  return password;
}

export interface GeneratedSubjectKey {
  keyAlgorithm: KeyAlgorithm;
  publicKeyInfo: Buffer;
  /** PEM "ENCRYPTED PRIVATE KEY" (PBES2). */
  encryptedPrivateKeyPem: string;
}

/** KEY_UNSUPPORTED (400) unless `algorithm` is one the appliance generates. */
export function checkKeygenAlgorithm(algorithm: unknown): KeygenAlgorithm {
  if (!(KEYGEN_ALGORITHMS as readonly unknown[]).includes(algorithm)) {
    throw new YiqianError(KEY_UNSUPPORTED, 400, { zh: `不支持生成 ${String(algorithm).slice(0, 20)} 密钥（可选：${KEYGEN_ALGORITHMS.join('、')}）`, en: `cannot generate a ${String(algorithm).slice(0, 20)} key (algorithms: ${KEYGEN_ALGORITHMS.join(', ')})` });
  }
  return algorithm as KeygenAlgorithm;
}

/** A key pair for `algorithm`; the private key leaves only encrypted under `password`. */
export async function generateSubjectKey(algorithm: KeygenAlgorithm, password: string): Promise<GeneratedSubjectKey> {
  let publicKeyInfo: Buffer;
  let pkcs8: Buffer;
  switch (algorithm) {
    case 'sm2': {
      const { privateKey, publicKey } = generateSm2KeyPair();
      try {
        publicKeyInfo = sm2SpkiFromPublicKey(publicKey);
        pkcs8 = encodeSm2Pkcs8(privateKey, publicKey);
      } finally {
        privateKey.fill(0);
      }
      break;
    }
    case 'ecdsa-p256': {
      const pair = await generate('ec', { namedCurve: 'prime256v1', publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'der' } });
      publicKeyInfo = pair.publicKey;
      pkcs8 = pair.privateKey;
      break;
    }
    case 'rsa-2048':
    case 'rsa-3072': {
      const pair = await generate('rsa', {
        modulusLength: algorithm === 'rsa-2048' ? 2048 : 3072,
        publicExponent: 0x10001,
        publicKeyEncoding: { type: 'spki', format: 'der' },
        privateKeyEncoding: { type: 'pkcs8', format: 'der' },
      });
      publicKeyInfo = pair.publicKey;
      pkcs8 = pair.privateKey;
      break;
    }
    default:
      return checkKeygenAlgorithm(algorithm) as never;
  }
  try {
    return { keyAlgorithm: algorithm, publicKeyInfo, encryptedPrivateKeyPem: await encryptPrivateKeyInfoPem(pkcs8, password) };
  } finally {
    pkcs8.fill(0);
  }
}
