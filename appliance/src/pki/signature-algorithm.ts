// Which AlgorithmIdentifier a key signs certificates and CRLs with.
// SM2: sm2sign-with-sm3 1.2.156.10197.1.501, parameters absent (GB/T 33560, STANDARDS.md §1).
// ECDSA: RFC 5758 §3.2 (parameters absent). RSA: RFC 4055 / 8017 (parameters NULL).
import type { KeyAlgorithm, SignOptions } from '../crypto/interfaces.js';

export interface SignatureAlgorithm {
  identifier: { algorithm: string; parameters?: ArrayBuffer | null };
  signOptions: SignOptions;
}

const NULL_PARAMS = new Uint8Array([0x05, 0x00]).buffer;

export function signatureAlgorithmFor(alg: KeyAlgorithm): SignatureAlgorithm {
  switch (alg) {
    case 'sm2':
      return { identifier: { algorithm: '1.2.156.10197.1.501' }, signOptions: {} };
    case 'ecdsa-p256':
      return { identifier: { algorithm: '1.2.840.10045.4.3.2' }, signOptions: { hash: 'sha256' } };
    case 'ecdsa-p384':
      return { identifier: { algorithm: '1.2.840.10045.4.3.3' }, signOptions: { hash: 'sha384' } };
    case 'rsa-2048':
    case 'rsa-3072':
    case 'rsa-4096':
      return { identifier: { algorithm: '1.2.840.113549.1.1.11', parameters: NULL_PARAMS }, signOptions: { hash: 'sha256', rsaPadding: 'pkcs1' } };
  }
}
