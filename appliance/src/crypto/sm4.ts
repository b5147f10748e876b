// SM4 (GB/T 32907-2016) modes on Node's built-in ciphers. Node 20 has no SM4-GCM: for
// authenticated encryption use sealed-sm4.ts (encrypt-then-MAC, STANDARDS.md §8).
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { Codes, fail } from '../errors.js';

const BLOCK = 16;

function checkKeyIv(key: Buffer, iv: Buffer): void {
  if (key.length !== 16) fail(Codes.INVALID_KEY, 400, 'SM4 密钥必须为 16 字节', 'SM4 key must be 16 bytes');
  if (iv.length !== BLOCK) fail(Codes.BAD_REQUEST, 400, 'SM4 IV 必须为 16 字节', 'SM4 IV must be 16 bytes');
}

/** SM4-CBC with PKCS#7 padding (RFC 5652 §6.3). */
export function sm4CbcEncrypt(key: Buffer, iv: Buffer, plaintext: Buffer): Buffer {
  checkKeyIv(key, iv);
  const c = createCipheriv('sm4-cbc', key, iv);
  return Buffer.concat([c.update(plaintext), c.final()]);
}

/** Inverse of sm4CbcEncrypt; bad length or padding → DECRYPTION_FAILED. */
export function sm4CbcDecrypt(key: Buffer, iv: Buffer, ciphertext: Buffer): Buffer {
  checkKeyIv(key, iv);
  if (ciphertext.length === 0 || ciphertext.length % BLOCK !== 0) {
    fail(Codes.DECRYPTION_FAILED, 400, 'SM4 密文长度错误', 'SM4-CBC ciphertext length is not a positive multiple of 16');
  }
  try {
    const d = createDecipheriv('sm4-cbc', key, iv);
    return Buffer.concat([d.update(ciphertext), d.final()]);
  } catch (e) {
    return fail(Codes.DECRYPTION_FAILED, 400, 'SM4 解密失败', 'SM4-CBC decryption failed (bad padding)', undefined, e);
  }
}

/**
 * SM4-CTR: the IV is the initial 128-bit counter block, incremented as a big-endian integer
 * (NIST SP 800-38A §B.1). Encryption and decryption are the same; never reuse a counter block
 * under one key.
 */
export function sm4Ctr(key: Buffer, iv: Buffer, data: Buffer): Buffer {
  checkKeyIv(key, iv);
  const c = createCipheriv('sm4-ctr', key, iv);
  return Buffer.concat([c.update(data), c.final()]);
}

/** One SM4 block, ECB (for known-answer tests only). */
export function sm4EncryptBlock(key: Buffer, block: Buffer): Buffer {
  if (key.length !== 16 || block.length !== BLOCK) fail(Codes.BAD_REQUEST, 400, 'SM4 分组长度错误', 'SM4 key and block must be 16 bytes');
  const c = createCipheriv('sm4-ecb', key, null).setAutoPadding(false);
  return Buffer.concat([c.update(block), c.final()]);
}
