// Signatures a CA makes over a certificate, a CRL or an OCSP response (RFC 5280 §4.1.1.3,
// §5.1.1.3; RFC 6960 §4.2.1): checked by path validation, the trust store and the OCSP client.
//
// The outcome is a pure function of (algorithm, issuer key, signed bytes, signature), and the
// same few certificates (a department's, its issuing CA, the root) are checked again on every
// verification and evidence record: each is verified once and the answer kept (bounded, least
// recently used first out). Worth it because an SM2 verify costs ~0.6 ms of CPU and a verified
// CMS would otherwise pay it three times for its chain. Never used for the signature over the
// signed content itself: that is new on every call.
import { createHash } from 'node:crypto';
import type { HashAlgorithm, KeyAlgorithm, SignOptions } from '../crypto/interfaces.js';
import { keyAlgorithmOfSpki, verifySignature } from '../crypto/verify.js';

const SIG_ALGS: Record<string, { keys: KeyAlgorithm[]; hash: HashAlgorithm }> = {
  '1.2.156.10197.1.501': { keys: ['sm2'], hash: 'sm3' }, // SM2-with-SM3, GM/T 0006
  '1.2.840.10045.4.3.2': { keys: ['ecdsa-p256', 'ecdsa-p384'], hash: 'sha256' }, // RFC 5758 §3.2
  '1.2.840.10045.4.3.3': { keys: ['ecdsa-p256', 'ecdsa-p384'], hash: 'sha384' },
  '1.2.840.10045.4.3.4': { keys: ['ecdsa-p256', 'ecdsa-p384'], hash: 'sha512' },
  '1.2.840.113549.1.1.11': { keys: ['rsa-2048', 'rsa-3072', 'rsa-4096'], hash: 'sha256' }, // RFC 4055 §5
  '1.2.840.113549.1.1.12': { keys: ['rsa-2048', 'rsa-3072', 'rsa-4096'], hash: 'sha384' },
  '1.2.840.113549.1.1.13': { keys: ['rsa-2048', 'rsa-3072', 'rsa-4096'], hash: 'sha512' },
};

const CACHE_MAX = 4096;
const NOT_CHECKABLE = 'signature not checkable';
const outcomes = new Map<string, Promise<string | undefined>>();

function cacheKey(sigAlgOid: string, spki: Buffer, tbs: Buffer, signature: Buffer): string {
  // Lengths first, so no two different inputs hash the same concatenation.
  return createHash('sha256').update(`${sigAlgOid}|${spki.length}|${tbs.length}|${signature.length}|`).update(spki).update(tbs).update(signature).digest('base64');
}

async function check(sigAlgOid: string, spki: Buffer, tbs: Buffer, signature: Buffer): Promise<string | undefined> {
  const alg = SIG_ALGS[sigAlgOid];
  if (!alg) return `unsupported signature algorithm ${sigAlgOid}`;
  try {
    const key = keyAlgorithmOfSpki(spki);
    if (!alg.keys.includes(key)) return `signature algorithm ${sigAlgOid} does not fit the issuer's ${key} key`;
    // SM2: no sm2Id → the default ID 1234567812345678 (GB/T 35276 §7.3).
    const opts: SignOptions = key === 'sm2' ? {} : key.startsWith('rsa') ? { hash: alg.hash, rsaPadding: 'pkcs1' } : { hash: alg.hash };
    return (await verifySignature(key, spki, tbs, signature, opts)) ? undefined : 'signature does not verify';
  } catch (e) {
    return `${NOT_CHECKABLE}: ${(e as Error).message}`;
  }
}

/**
 * Whether `signature` over `tbs` (signatureAlgorithm `sigAlgOid`) verifies with the issuer key
 * `spki`: SM2/SM3 with the default ID, ECDSA SHA-2, RSA PKCS#1 v1.5 SHA-2. A reason string when
 * not; never throws.
 */
export function checkIssuerSignature(sigAlgOid: string, spki: Buffer, tbs: Buffer, signature: Buffer): Promise<string | undefined> {
  const key = cacheKey(sigAlgOid, spki, tbs, signature);
  let p = outcomes.get(key);
  if (p) {
    outcomes.delete(key); // most recently used goes last
  } else {
    const checking = check(sigAlgOid, spki, tbs, signature);
    p = checking;
    // A check that could not run (a failing engine) says nothing about the signature: not kept.
    void checking.then((why) => {
      if (why?.startsWith(NOT_CHECKABLE) && outcomes.get(key) === checking) outcomes.delete(key);
    });
    if (outcomes.size >= CACHE_MAX) outcomes.delete(outcomes.keys().next().value as string);
  }
  outcomes.set(key, p);
  return p;
}
