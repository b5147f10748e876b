// A Signer over a private key held in this process (app clients, tests, tools). ECDSA and RSA
// through node:crypto (async, on the libuv pool), SM2 through the SM2 engine with its ID.
// Keys that must be protected live in KeyCustody (HSM or wrapped), not here.
import { constants, createPrivateKey, createPublicKey, sign as nodeSign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { Codes, fail, isYiqianError } from '../errors.js';
import { P256, P384, fromBytes } from './ec-curve.js';
import { hashLength } from './hash.js';
import type { KeyAlgorithm, SignOptions, Signer } from './interfaces.js';
import { ecdsaSignDigest, rsaSignDigest } from './prehashed.js';
import { createSm2Signer, sm2PrivateKeyFromPem } from './sm2.js';
import { keyAlgorithmOfSpki, pickHash } from './verify.js';

const signAsync = promisify(nodeSign) as (
  alg: string | null,
  data: Buffer,
  key: { key: KeyObject; dsaEncoding?: 'der'; padding?: number; saltLength?: number },
) => Promise<Buffer>;

/** Signer for a PEM private key: PKCS#8, SEC1 "EC PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY". */
export function createSoftwareSigner(privateKeyPem: string): Signer {
  let key: KeyObject | undefined;
  try {
    key = createPrivateKey(privateKeyPem);
  } catch (e) {
    // Node cannot read every SM2 container; the SM2 reader may.
    try {
      return createSm2Signer(sm2PrivateKeyFromPem(privateKeyPem));
    } catch (e2) {
      if (isYiqianError(e2) && e2.code !== Codes.INVALID_KEY) throw e2;
      fail(Codes.INVALID_KEY, 400, '私钥无效', 'not a readable private key PEM', undefined, e);
    }
  }
  // Node reports no asymmetricKeyType for SM2 keys (OpenSSL 3 gives them their own type).
  if (key.asymmetricKeyType !== 'ec' && key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'rsa-pss') {
    return createSm2Signer(sm2PrivateKeyFromPem(privateKeyPem));
  }
  const publicKeyInfo = createPublicKey(key).export({ type: 'spki', format: 'der' });
  const algorithm: KeyAlgorithm = keyAlgorithmOfSpki(publicKeyInfo);
  if (algorithm === 'sm2') return createSm2Signer(sm2PrivateKeyFromPem(privateKeyPem));
  const privateKey = key;

  if (algorithm === 'ecdsa-p256' || algorithm === 'ecdsa-p384') {
    const curve = algorithm === 'ecdsa-p256' ? P256 : P384;
    let d: bigint | undefined;
    return {
      algorithm,
      publicKeyInfo,
      async sign(data: Buffer, opts: SignOptions = {}): Promise<Buffer> {
        const hash = pickHash(algorithm, opts);
        if (opts.prehashed) {
          if (data.length !== hashLength(hash)) fail(Codes.BAD_REQUEST, 400, '预杂凑值长度错误', `prehashed input must be ${hashLength(hash)} bytes`);
          d ??= fromBytes(Buffer.from(privateKey.export({ format: 'jwk' }).d as string, 'base64url'));
          return ecdsaSignDigest(curve, d, data);
        }
        return signAsync(hash, data, { key: privateKey, dsaEncoding: 'der' });
      },
    };
  }

  return {
    algorithm,
    publicKeyInfo,
    async sign(data: Buffer, opts: SignOptions = {}): Promise<Buffer> {
      const hash = pickHash(algorithm, opts);
      const padding = opts.rsaPadding ?? 'pkcs1';
      if (padding !== 'pkcs1' && padding !== 'pss') fail(Codes.BAD_REQUEST, 400, 'RSA 填充方式无效', `unknown RSA padding ${String(padding)}`);
      if (opts.prehashed) {
        if (data.length !== hashLength(hash)) fail(Codes.BAD_REQUEST, 400, '预杂凑值长度错误', `prehashed input must be ${hashLength(hash)} bytes`);
        return rsaSignDigest(privateKey, hash, data, padding);
      }
      return signAsync(
        hash,
        data,
        padding === 'pss'
          ? { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: hashLength(hash) }
          : { key: privateKey, padding: constants.RSA_PKCS1_PADDING },
      );
    },
  };
}
