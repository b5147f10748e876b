// PKCS#10 certification requests (RFC 2986): decode, and proof of possession — the request's
// signature over certificationRequestInfo checked with the public key it carries (§3, §4.2).
// SM2 requests are checked with SM3 and the default distinguishing ID "1234567812345678"
// (GB/T 35276 §5.4; what `openssl req -sm3 -sigopt distid:1234567812345678` makes).
// Decode/verify only: no I/O, no private keys.
import { DerError, Tag, children, expectTag, fromPem, readBitStringBytes, readOid, readSmallInteger, readWhole } from '../crypto/der.js';
import type { HashAlgorithm, KeyAlgorithm } from '../crypto/interfaces.js';
import { OID } from '../crypto/oids.js';
import { keyAlgorithmOfSpki, verifySignature } from '../crypto/verify.js';
import { Codes, YiqianError, isYiqianError } from '../errors.js';
import { nameToString } from './name.js';

export const CSR_MALFORMED = 'CSR_MALFORMED';
export const CSR_SIGNATURE_INVALID = 'CSR_SIGNATURE_INVALID';
export const CSR_ALGORITHM_UNSUPPORTED = 'CSR_ALGORITHM_UNSUPPORTED';
/** A public key the CA does not certify: unknown or weak algorithm, curve or size. */
export const KEY_UNSUPPORTED = 'KEY_UNSUPPORTED';

export interface ParsedCsr {
  der: Buffer;
  /** DER of the requested subject Name. */
  subject: Buffer;
  /** RFC 4514 form of the requested subject. */
  subjectString: string;
  /** SubjectPublicKeyInfo DER as it appears in the request. */
  publicKeyInfo: Buffer;
  keyAlgorithm: KeyAlgorithm;
  /** The signed bytes (certificationRequestInfo as received), algorithm and signature. */
  signedBytes: Buffer;
  signatureAlgorithm: string;
  signature: Buffer;
}

type Family = 'sm2' | 'ecdsa' | 'rsa';

/** Signature algorithms accepted on requests; SHA-1 and anything unlisted is refused. */
const SIGNATURE_ALGORITHMS: Record<string, { family: Family; hash: HashAlgorithm; name: string }> = {
  [OID.sm2WithSm3]: { family: 'sm2', hash: 'sm3', name: 'SM2-with-SM3' },
  [OID.ecdsaWithSha256]: { family: 'ecdsa', hash: 'sha256', name: 'ecdsa-with-SHA256' },
  [OID.ecdsaWithSha384]: { family: 'ecdsa', hash: 'sha384', name: 'ecdsa-with-SHA384' },
  [OID.ecdsaWithSha512]: { family: 'ecdsa', hash: 'sha512', name: 'ecdsa-with-SHA512' },
  [OID.sha256WithRsa]: { family: 'rsa', hash: 'sha256', name: 'sha256WithRSAEncryption' },
  [OID.sha384WithRsa]: { family: 'rsa', hash: 'sha384', name: 'sha384WithRSAEncryption' },
  [OID.sha512WithRsa]: { family: 'rsa', hash: 'sha512', name: 'sha512WithRSAEncryption' },
};

function familyOf(alg: KeyAlgorithm): Family {
  return alg === 'sm2' ? 'sm2' : alg.startsWith('ecdsa') ? 'ecdsa' : 'rsa';
}

function malformed(reason: string, cause?: unknown): never {
  throw new YiqianError(CSR_MALFORMED, 400, { zh: `证书请求（PKCS#10）格式错误：${reason}`, en: `malformed certificate request (PKCS#10): ${reason}` }, { reason }, { cause });
}

/** A request given as PEM ("CERTIFICATE REQUEST" / "NEW CERTIFICATE REQUEST"), base64 DER, or DER bytes → DER. */
export function csrDer(input: string | Buffer): Buffer {
  if (Buffer.isBuffer(input)) return input;
  if (typeof input !== 'string' || input.trim() === '') malformed('empty');
  if (input.includes('-----BEGIN')) {
    let blocks;
    try {
      blocks = fromPem(input);
    } catch (e) {
      return malformed((e as Error).message, e);
    }
    const block = blocks.find((b) => b.label === 'CERTIFICATE REQUEST' || b.label === 'NEW CERTIFICATE REQUEST');
    if (!block) malformed(`no CERTIFICATE REQUEST block in the PEM (found: ${blocks.map((b) => b.label).join(', ') || 'none'})`);
    return block.der;
  }
  const b64 = input.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) malformed('neither PEM nor base64 DER');
  return Buffer.from(b64, 'base64');
}

/** Decodes a request (does not check its signature: see verifyCsr). */
export function parseCsr(input: string | Buffer): ParsedCsr {
  const der = csrDer(input);
  let signedBytes: Buffer;
  let signature: Buffer;
  let signatureAlgorithm: string;
  let subject: Buffer;
  let publicKeyInfo: Buffer;
  let subjectString: string;
  try {
    // CertificationRequest ::= SEQUENCE { certificationRequestInfo, signatureAlgorithm, signature BIT STRING }
    const items = children(readWhole(der, Tag.SEQUENCE).value);
    if (items.length !== 3) throw new DerError('a CertificationRequest has 3 elements');
    const info = expectTag(items[0], Tag.SEQUENCE, 'certificationRequestInfo');
    signedBytes = Buffer.from(info.raw);
    signatureAlgorithm = readOid(children(expectTag(items[1], Tag.SEQUENCE, 'signatureAlgorithm').value)[0]);
    signature = Buffer.from(readBitStringBytes(items[2]));
    // CertificationRequestInfo ::= SEQUENCE { version INTEGER { v1(0) }, subject Name,
    //   subjectPKInfo SubjectPublicKeyInfo, attributes [0] Attributes }
    const [version, name, spki, attributes, extra] = children(info.value);
    if (readSmallInteger(expectTag(version, Tag.INTEGER, 'version')) !== 0) throw new DerError('version must be 0 (v1)');
    subject = Buffer.from(expectTag(name, Tag.SEQUENCE, 'subject').raw);
    subjectString = nameToString(subject);
    publicKeyInfo = Buffer.from(expectTag(spki, Tag.SEQUENCE, 'subjectPKInfo').raw);
    if (!attributes || attributes.tag !== 0xa0 || extra) throw new DerError('attributes [0] must end the request info');
  } catch (e) {
    return malformed((e as Error).message, e);
  }
  let keyAlgorithm: KeyAlgorithm;
  try {
    keyAlgorithm = keyAlgorithmOfSpki(publicKeyInfo);
  } catch (e) {
    if (isYiqianError(e) && (e.code === Codes.UNSUPPORTED_ALGORITHM || e.code === Codes.INVALID_KEY)) {
      throw new YiqianError(
        KEY_UNSUPPORTED,
        400,
        { zh: `不支持请求中的公钥：${e.text.zh}`, en: `the request's public key is not supported: ${e.text.en} (accepted: SM2; ECDSA P-256, P-384; RSA 2048, 3072, 4096)` },
        { reason: e.text.en },
        { cause: e },
      );
    }
    throw e;
  }
  return {
    der,
    subject,
    subjectString,
    publicKeyInfo,
    keyAlgorithm,
    signedBytes,
    signatureAlgorithm,
    signature,
  };
}

function signatureInvalid(reason: string): never {
  throw new YiqianError(
    CSR_SIGNATURE_INVALID,
    400,
    { zh: `证书请求的签名无效（持有私钥的证明不成立）：${reason}`, en: `the request's signature does not verify (no proof of possession): ${reason}` },
    { reason },
  );
}

/** Proof of possession: the request is signed by the private key of the public key it carries. */
export async function verifyCsr(csr: ParsedCsr): Promise<void> {
  const alg = SIGNATURE_ALGORITHMS[csr.signatureAlgorithm];
  if (!alg) {
    throw new YiqianError(
      CSR_ALGORITHM_UNSUPPORTED,
      400,
      { zh: `不支持证书请求的签名算法 ${csr.signatureAlgorithm}`, en: `unsupported request signature algorithm ${csr.signatureAlgorithm} (accepted: ${Object.values(SIGNATURE_ALGORITHMS).map((a) => a.name).join(', ')})` },
      { signatureAlgorithm: csr.signatureAlgorithm },
    );
  }
  if (alg.family !== familyOf(csr.keyAlgorithm)) signatureInvalid(`${alg.name} does not fit a ${csr.keyAlgorithm} key`);
  if (csr.signature.length === 0) signatureInvalid('the request is not signed');
  let ok: boolean;
  try {
    ok = await verifySignature(csr.keyAlgorithm, csr.publicKeyInfo, csr.signedBytes, csr.signature, { hash: alg.hash });
  } catch (e) {
    if (isYiqianError(e) && e.code === Codes.INVALID_KEY) {
      throw new YiqianError(KEY_UNSUPPORTED, 400, { zh: `请求中的公钥无效：${e.text.zh}`, en: `the request's public key is invalid: ${e.text.en}` }, { reason: e.text.en }, { cause: e });
    }
    throw e;
  }
  if (!ok) signatureInvalid(`${alg.name} signature over certificationRequestInfo${alg.family === 'sm2' ? ' (SM2 with the default ID 1234567812345678)' : ''}`);
}

/** parseCsr + verifyCsr. */
export async function readVerifiedCsr(input: string | Buffer): Promise<ParsedCsr> {
  const csr = parseCsr(input);
  await verifyCsr(csr);
  return csr;
}
