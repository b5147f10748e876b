// CMS SignedData verification (issue 4 item 3, the signature part): both forms (RFC 5652 and
// GB/T 35275 content types; SM2 signature OID .301.1 or .501, parameters absent or NULL), the
// signer certificate found by issuerAndSerialNumber among the embedded certificates, the
// messageDigest against the attached or given detached content, the contentType attribute,
// signing-certificate-v2 when present, and the signature over DER(SET OF signed attributes).
// NOT here: certificate path validation to the trust store, validity period, revocation —
// the caller's verification report adds those. Never throws for bad input: every problem is
// a failed check with a reason.
import { nameToString } from '../asn1/name.js';
import { readCertificate, serialHex, type CertificateInfo } from '../asn1/certificate.js';
import { parseSignedData, signedAttribute, type ParsedSignedData } from '../asn1/cms-signed-data.js';
import { OID_CONTENT_TYPE, OID_MESSAGE_DIGEST, OID_SIGNING_CERTIFICATE_V2, OID_SIGNING_TIME } from '../asn1/tsp.js';
import { Tag, children, readOid } from '../crypto/der.js';
import { digest } from '../crypto/hash.js';
import type { HashAlgorithm, KeyAlgorithm } from '../crypto/interfaces.js';
import { OID } from '../crypto/oids.js';
import { keyAlgorithmOfSpki, verifySignature } from '../crypto/verify.js';

export type CmsCheckName = 'structure' | 'signerFound' | 'algorithm' | 'contentType' | 'contentIntact' | 'signingCertificate' | 'signatureIntact';

export interface CmsCheck {
  name: CmsCheckName;
  ok: boolean;
  /** Chinese label of the check as in the verification report, e.g. 原文未改. */
  label: string;
  reason?: string;
}

export interface CmsVerifyResult {
  valid: boolean;
  form?: 'gbt35275' | 'rfc5652';
  checks: CmsCheck[];
  signer?: { subject: string; serial: string; issuer: string };
  /** DER of the signer certificate, when found. */
  certificate?: Buffer;
  signingTime?: Date;
  /** The attached content (or the detached content that was checked). */
  content?: Buffer;
}

export interface CmsVerifyOptions {
  /** The original of a detached signature. */
  content?: Buffer;
  /** parseSignedData(der), when the caller has it already: the structure is then not read twice. */
  parsed?: ParsedSignedData;
}

const LABELS: Record<CmsCheckName, string> = {
  structure: '格式正确',
  signerFound: '找到签名者证书',
  algorithm: '算法受支持',
  contentType: '内容类型一致',
  contentIntact: '原文未改',
  signingCertificate: '签名证书一致',
  signatureIntact: '签名未改',
};

const DIGESTS = new Map<string, HashAlgorithm>([
  [OID.sm3, 'sm3'],
  [OID.sha256, 'sha256'],
  [OID.sha384, 'sha384'],
  [OID.sha512, 'sha512'],
]);

/** Signature algorithm OID → the key family it needs and the digest it implies (undefined: the SignerInfo digest). */
const SIGNATURES = new Map<string, { family: 'sm2' | 'ecdsa' | 'rsa'; hash?: HashAlgorithm }>([
  [OID.sm2Sign, { family: 'sm2', hash: 'sm3' }],
  [OID.sm2WithSm3, { family: 'sm2', hash: 'sm3' }],
  [OID.ecdsaWithSha256, { family: 'ecdsa', hash: 'sha256' }],
  [OID.ecdsaWithSha384, { family: 'ecdsa', hash: 'sha384' }],
  [OID.ecdsaWithSha512, { family: 'ecdsa', hash: 'sha512' }],
  [OID.idEcPublicKey, { family: 'ecdsa' }],
  [OID.sha256WithRsa, { family: 'rsa', hash: 'sha256' }],
  [OID.sha384WithRsa, { family: 'rsa', hash: 'sha384' }],
  [OID.sha512WithRsa, { family: 'rsa', hash: 'sha512' }],
  // OpenSSL and BouncyCastle write rsaEncryption with the hash in digestAlgorithm.
  [OID.rsaEncryption, { family: 'rsa' }],
]);

function familyOf(a: KeyAlgorithm): 'sm2' | 'ecdsa' | 'rsa' {
  return a === 'sm2' ? 'sm2' : a.startsWith('ecdsa') ? 'ecdsa' : 'rsa';
}

function stripZeros(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

function parseTime(tag: number, s: string): Date | undefined {
  let m: RegExpExecArray | null;
  if (tag === 0x17 && (m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s))) {
    const yy = Number(m[1]);
    return new Date(Date.UTC(yy < 50 ? 2000 + yy : 1900 + yy, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  }
  if (tag === 0x18 && (m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.\d+)?Z$/.exec(s))) {
    return new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
  }
  return undefined;
}

class Report {
  readonly checks: CmsCheck[] = [];
  add(name: CmsCheckName, ok: boolean, reason?: string): boolean {
    this.checks.push({ name, ok, label: LABELS[name], ...(ok || reason === undefined ? {} : { reason }) });
    return ok;
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Verifies a DER CMS SignedData (one signer). `opts.content` is the original for a detached signature. */
export async function verifyCms(der: Buffer, opts: CmsVerifyOptions = {}): Promise<CmsVerifyResult> {
  const r = new Report();
  const done = (extra: Partial<CmsVerifyResult> = {}): CmsVerifyResult => ({ valid: r.checks.every((c) => c.ok), checks: r.checks, ...extra });
  try {
    return await verifyInner(der, opts, r, done);
  } catch (e) {
    // Defensive: any unexpected failure is a failed structure check, never an exception.
    r.add('structure', false, `unexpected: ${message(e)}`);
    return done();
  }
}

async function verifyInner(
  der: Buffer,
  opts: CmsVerifyOptions,
  r: Report,
  done: (extra?: Partial<CmsVerifyResult>) => CmsVerifyResult,
): Promise<CmsVerifyResult> {
  let sd: ParsedSignedData;
  try {
    if (!Buffer.isBuffer(der)) throw new Error('input is not a Buffer');
    sd = opts.parsed ?? parseSignedData(der);
  } catch (e) {
    r.add('structure', false, `not a CMS SignedData: ${message(e)}`);
    return done();
  }
  if (sd.signerInfos.length !== 1) {
    r.add('structure', false, `${sd.signerInfos.length} signers (exactly one is supported)`);
    return done({ form: sd.form });
  }
  const si = sd.signerInfos[0];
  if (!si.signedAttrsDer) {
    r.add('structure', false, 'SignerInfo without signed attributes (not supported)');
    return done({ form: sd.form });
  }
  r.add('structure', true);

  // signerFound: issuerAndSerialNumber among the embedded certificates.
  let cert: CertificateInfo | undefined;
  let certDer: Buffer | undefined;
  if (!si.issuerDer || !si.serialValue) {
    r.add('signerFound', false, 'signer named by subjectKeyIdentifier (only issuerAndSerialNumber is supported)');
    return done({ form: sd.form });
  }
  for (const c of sd.certificates) {
    let info: CertificateInfo;
    try {
      info = readCertificate(c);
    } catch {
      continue;
    }
    if (info.issuerDer.equals(si.issuerDer) && info.serial === serialHex(stripZeros(si.serialValue))) {
      cert = info;
      certDer = c;
      break;
    }
  }
  if (!cert || !certDer) {
    r.add('signerFound', false, 'no embedded certificate matches the issuerAndSerialNumber');
    return done({ form: sd.form });
  }
  r.add('signerFound', true);
  let signer: CmsVerifyResult['signer'];
  try {
    signer = { subject: nameToString(cert.subjectDer), serial: cert.serial, issuer: nameToString(cert.issuerDer) };
  } catch {
    signer = { subject: cert.subjectDer.toString('hex'), serial: cert.serial, issuer: cert.issuerDer.toString('hex') };
  }
  const base: Partial<CmsVerifyResult> = { form: sd.form, signer, certificate: certDer };

  // signingTime (informative; not a check).
  const st = signedAttribute(si, OID_SIGNING_TIME);
  const signingTime = st ? parseTime(st[0].tag, st[0].value.toString('latin1')) : undefined;
  if (signingTime) base.signingTime = signingTime;

  // algorithm: digest, signature OID, key family and parameters.
  const hash = DIGESTS.get(si.digestAlgorithm.oid);
  const sig = SIGNATURES.get(si.signatureAlgorithm.oid);
  let keyAlg: KeyAlgorithm | undefined;
  try {
    keyAlg = keyAlgorithmOfSpki(cert.publicKeyInfo);
  } catch {
    keyAlg = undefined;
  }
  const algProblem = !hash
    ? `unsupported digest algorithm ${si.digestAlgorithm.oid}`
    : !sig
      ? `unsupported signature algorithm ${si.signatureAlgorithm.oid}`
      : !si.digestAlgorithm.paramsAbsentOrNull || !si.signatureAlgorithm.paramsAbsentOrNull
        ? 'algorithm parameters must be absent or NULL'
        : sig.hash && sig.hash !== hash
          ? `signature algorithm ${si.signatureAlgorithm.oid} does not match digest ${hash}`
          : (sig.family === 'sm2') !== (hash === 'sm3')
            ? 'SM3 goes with SM2 only'
            : !keyAlg
              ? 'the certificate key is not supported'
              : familyOf(keyAlg) !== sig.family
                ? `signature algorithm ${si.signatureAlgorithm.oid} does not fit the ${keyAlg} key of the certificate`
                : undefined;
  if (!r.add('algorithm', algProblem === undefined, algProblem) || !hash || !keyAlg) return done(base);

  // contentType attribute = eContentType; data content type of the same form.
  const ct = signedAttribute(si, OID_CONTENT_TYPE);
  let ctOid: string | undefined;
  try {
    ctOid = ct ? readOid(ct[0]) : undefined;
  } catch {
    ctOid = undefined;
  }
  r.add(
    'contentType',
    ctOid !== undefined && ctOid === sd.eContentType,
    ctOid === undefined ? 'contentType attribute missing or malformed' : `contentType attribute ${ctOid} differs from eContentType ${sd.eContentType}`,
  );

  // contentIntact: messageDigest over the attached or given content.
  const content = sd.content ?? opts.content;
  if (content) base.content = content;
  const md = signedAttribute(si, OID_MESSAGE_DIGEST);
  if (!content) {
    r.add('contentIntact', false, 'detached signature and no content given');
  } else if (!md || md[0].tag !== Tag.OCTET_STRING) {
    r.add('contentIntact', false, 'messageDigest attribute missing or malformed');
  } else if (sd.content && opts.content && !sd.content.equals(opts.content)) {
    r.add('contentIntact', false, 'the given content differs from the attached content');
  } else {
    r.add('contentIntact', digest(hash, content).equals(md[0].value), 'messageDigest does not match the content');
  }

  // signingCertificate(V2) when present: the ESSCertIDv2 hash names this certificate.
  const sc = signedAttribute(si, OID_SIGNING_CERTIFICATE_V2);
  if (sc) {
    let problem: string | undefined;
    try {
      const certs = children(children(sc[0].value)[0].value);
      const first = children(certs[0].value);
      let essHash: HashAlgorithm = 'sha256';
      let k = 0;
      if (first[0]?.tag === Tag.SEQUENCE) {
        const h = DIGESTS.get(readOid(children(first[0].value)[0]));
        if (!h) throw new Error('unsupported ESSCertIDv2 hash');
        essHash = h;
        k = 1;
      }
      if (first[k]?.tag !== Tag.OCTET_STRING) throw new Error('ESSCertIDv2 certHash missing');
      if (!digest(essHash, certDer).equals(first[k].value)) problem = 'signing-certificate-v2 names another certificate';
    } catch (e) {
      problem = `malformed signing-certificate-v2: ${message(e)}`;
    }
    r.add('signingCertificate', problem === undefined, problem);
  }

  // signatureIntact: the signature over DER(SET OF signed attributes) with the certificate's key.
  let ok = false;
  let reason = 'the signature does not verify with the certificate key';
  try {
    ok = await verifySignature(keyAlg, cert.publicKeyInfo, si.signedAttrsDer ?? Buffer.alloc(0), si.signature, keyAlg === 'sm2' ? {} : { hash });
  } catch (e) {
    reason = `signature not verifiable: ${message(e)}`;
  }
  r.add('signatureIntact', ok, reason);
  return done(base);
}
