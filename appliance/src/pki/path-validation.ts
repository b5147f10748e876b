// Certificate path validation for the signature service (issues #4 item 3): RFC 5280 §6.1 basic
// path validation, simplified, judged at the signing time `at` (GB/T 38629: a signature is valid
// when the signer's certificate path was valid when it was made).
//
// What is done:
//   - chain building leaf → … → trust anchor: a certificate's issuer is a candidate whose subject
//     Name DER equals its issuer Name DER and, when both are present, whose subjectKeyIdentifier
//     equals its authorityKeyIdentifier keyIdentifier. Trust anchors are tried before
//     intermediates; the path ends at the first certificate that is (byte for byte) a trust
//     anchor. Certificates already on the path are not revisited (loops); paths longer than
//     MAX_CHAIN certificates are abandoned. Each complete path found (at most MAX_PATHS) is
//     validated; the first valid one wins, else the first one's failure is reported.
//   - signatures of every link (not of the trust anchor itself): SM2/SM3 with the default ID
//     1234567812345678 (GB/T 35276), ECDSA with SHA-256/384, RSA PKCS#1 v1.5 SHA-256/384/512.
//   - validity of every certificate on the path, the trust anchor included, at `at` (inclusive).
//   - issuer constraints: basicConstraints cA=TRUE, pathLenConstraint (non-self-issued
//     intermediates below the issuer), keyUsage keyCertSign when keyUsage is present.
//   - a critical extension this module does not process fails the path (RFC 5280 §4.2).
//
// What is not done (simplifications): revocation (CRL/OCSP) — out of scope here; name
// constraints (a critical nameConstraints extension therefore fails); policy processing
// (certificatePolicies is accepted but not evaluated); the TBS `signature` field is not compared
// with the outer signatureAlgorithm; trust anchors are whole certificates, not bare keys.
//
// Never throws: malformed input yields { valid: false }.
import { readCertificate, EXT, type CertificateInfo } from '../asn1/certificate.js';
import { nameToString } from '../asn1/name.js';
import { Tag, children, readSmallInteger, readWhole } from '../crypto/der.js';
import { checkIssuerSignature } from './issuer-signature.js';

/** Longest accepted path, in certificates (leaf and trust anchor included). */
export const MAX_CHAIN = 8;
const MAX_PATHS = 16;

export type PathCheckName = 'chainBuilt' | 'signatures' | 'validity' | 'caConstraints' | 'criticalExtensions';
export type PathErrorCode = 'CERT_UNTRUSTED' | 'CERT_EXPIRED' | 'CERT_NOT_YET_VALID' | 'CERT_SIGNATURE_INVALID' | 'CERT_PATH_INVALID';

export interface PathCertificate {
  /** RFC 4514 strings of the Names. */
  subject: string;
  /** Lower-case hex, no leading zero octets. */
  serial: string;
  issuer: string;
  /** ISO 8601 UTC. */
  notBefore: string;
  notAfter: string;
}

export interface PathCheck {
  name: PathCheckName;
  ok: boolean;
  reason?: string;
}

export interface PathResult {
  valid: boolean;
  /** Leaf first, trust anchor last; as far as it could be built. */
  chain: PathCertificate[];
  checks: PathCheck[];
  code?: PathErrorCode;
}

export interface PathInput {
  /** DER of the certificate to validate. */
  leaf: Buffer;
  /** DER certificates that may be used to build the path (order does not matter). */
  intermediates: Buffer[];
  /** DER certificates trusted as path ends. */
  trustAnchors: Buffer[];
  /** The time the path is judged at (the signing time). */
  at: Date;
}

/** Extensions whose criticality this module handles (processed, or harmless to accept). */
const KNOWN_EXTENSIONS = new Set<string>([
  EXT.basicConstraints,
  EXT.keyUsage,
  EXT.extKeyUsage,
  EXT.subjectKeyIdentifier,
  EXT.authorityKeyIdentifier,
  EXT.subjectAltName,
  EXT.certificatePolicies,
  EXT.cRLDistributionPoints,
  EXT.authorityInfoAccess,
  EXT.ocspNoCheck,
]);

interface Cert {
  der: Buffer;
  info: CertificateInfo;
  aki?: Buffer;
}

function parse(der: Buffer): Cert | undefined {
  try {
    const info = readCertificate(der);
    return { der, info, aki: authorityKeyId(info) };
  } catch {
    return undefined;
  }
}

function extValue(info: CertificateInfo, oid: string): Buffer | undefined {
  return info.extensions.find((e) => e.oid === oid)?.value;
}

/** AuthorityKeyIdentifier keyIdentifier [0], if present and readable. */
function authorityKeyId(info: CertificateInfo): Buffer | undefined {
  const v = extValue(info, EXT.authorityKeyIdentifier);
  if (!v) return undefined;
  try {
    const k = children(readWhole(v, Tag.SEQUENCE).value).find((t) => t.tag === 0x80);
    return k ? Buffer.from(k.value) : undefined;
  } catch {
    return undefined;
  }
}

/** basicConstraints: undefined when absent; throws on malformed. */
function basicConstraints(info: CertificateInfo): { ca: boolean; pathLen?: number } | undefined {
  const v = extValue(info, EXT.basicConstraints);
  if (!v) return undefined;
  const items = children(readWhole(v, Tag.SEQUENCE).value);
  let i = 0;
  let ca = false;
  if (items[i]?.tag === 0x01) ca = items[i++].value[0] !== 0;
  const pathLen = items[i]?.tag === Tag.INTEGER ? readSmallInteger(items[i]) : undefined;
  return pathLen === undefined ? { ca } : { ca, pathLen };
}

/** keyUsage keyCertSign (bit 5): undefined when keyUsage is absent; throws on malformed. */
function hasKeyCertSign(info: CertificateInfo): boolean | undefined {
  const v = extValue(info, EXT.keyUsage);
  if (!v) return undefined;
  const t = readWhole(v, Tag.BIT_STRING);
  return t.value.length >= 2 && (t.value[1] & 0x04) !== 0;
}

function isIssuer(candidate: Cert, child: Cert): boolean {
  if (!candidate.info.subjectDer.equals(child.info.issuerDer)) return false;
  const ski = candidate.info.subjectKeyIdentifier;
  return !(child.aki && ski && !child.aki.equals(ski));
}

function selfIssued(c: Cert): boolean {
  return c.info.subjectDer.equals(c.info.issuerDer);
}

/** Whether `child`'s signature verifies under `issuer`'s key; a reason string when not. */
function checkSignature(child: Cert, issuer: Cert): Promise<string | undefined> {
  return checkIssuerSignature(child.info.signatureAlgorithm, issuer.info.publicKeyInfo, child.info.tbs, child.info.signature);
}

/** RFC 4514 string of a Name, or # and its hex when it cannot be read. */
export function safeNameString(der: Buffer): string {
  try {
    return nameToString(der);
  } catch {
    return `#${der.toString('hex')}`;
  }
}

/** `${serial}|${subject}` of a certificate: how a PathCertificate of a validated chain is matched back to its DER. */
export function certificateId(c: Pick<CertificateInfo, 'serial' | 'subjectDer'> | PathCertificate): string {
  return 'subjectDer' in c ? `${c.serial}|${safeNameString(c.subjectDer)}` : `${c.serial}|${c.subject}`;
}

/** The DER of each certificate of a validated chain, from the certificates it was built from; undefined when one is missing or ambiguous. */
export function chainDer(chain: readonly PathCertificate[], candidates: readonly Buffer[]): Buffer[] | undefined {
  const byId = new Map<string, Buffer[]>();
  for (const der of candidates) {
    try {
      const id = certificateId(readCertificate(der));
      const list = byId.get(id) ?? [];
      if (!list.some((d) => d.equals(der))) list.push(der);
      byId.set(id, list);
    } catch {
      // unreadable: never part of a validated chain
    }
  }
  const out: Buffer[] = [];
  for (const c of chain) {
    const found = byId.get(certificateId(c));
    if (found?.length !== 1) return undefined;
    out.push(found[0]);
  }
  return out;
}

function describe(c: Cert): PathCertificate {
  return {
    subject: safeNameString(c.info.subjectDer),
    serial: c.info.serial,
    issuer: safeNameString(c.info.issuerDer),
    notBefore: c.info.notBefore.toISOString(),
    notAfter: c.info.notAfter.toISOString(),
  };
}

/** Complete paths leaf → anchor (depth-first, anchors first); `tooLong` when a path was cut at MAX_CHAIN. */
function buildPaths(leaf: Cert, intermediates: Cert[], anchors: Cert[]): { paths: Cert[][]; tooLong: boolean } {
  const paths: Cert[][] = [];
  let tooLong = false;
  const isAnchor = (c: Cert): boolean => anchors.some((a) => a.der.equals(c.der));
  const walk = (path: Cert[]): void => {
    if (paths.length >= MAX_PATHS) return;
    const last = path[path.length - 1];
    if (isAnchor(last)) {
      paths.push(path);
      return;
    }
    if (path.length >= MAX_CHAIN) {
      tooLong = true;
      return;
    }
    for (const c of [...anchors, ...intermediates]) {
      if (path.some((p) => p.der.equals(c.der))) continue; // loop
      if (isIssuer(c, last)) walk([...path, c]);
    }
  };
  walk([leaf]);
  return { paths, tooLong };
}

async function validateChain(path: Cert[], at: Date): Promise<PathResult> {
  const checks: PathCheck[] = [{ name: 'chainBuilt', ok: true }];
  const sigFailures: string[] = [];
  const caFailures: string[] = [];
  const critFailures: string[] = [];
  let notYet: string | undefined;
  let expired: string | undefined;
  const chain = path.map(describe);
  const t = at.getTime();

  for (let i = 0; i < path.length; i++) {
    const c = path[i];
    const who = `${chain[i].subject} (serial ${c.info.serial})`;
    if (t < c.info.notBefore.getTime()) notYet ??= `${who} is not valid before ${chain[i].notBefore}`;
    if (t > c.info.notAfter.getTime()) expired ??= `${who} expired at ${chain[i].notAfter}`;
    for (const e of c.info.extensions) if (e.critical && !KNOWN_EXTENSIONS.has(e.oid)) critFailures.push(`${who}: unknown critical extension ${e.oid}`);

    if (i === 0) continue;
    const child = path[i - 1];
    const sig = await checkSignature(child, c);
    if (sig) sigFailures.push(`${chain[i - 1].subject} (serial ${child.info.serial}): ${sig}`);
    try {
      const bc = basicConstraints(c.info);
      if (!bc?.ca) caFailures.push(`${who} is used as an issuer but is not a CA (basicConstraints cA)`);
      else if (bc.pathLen !== undefined) {
        const below = path.slice(1, i).filter((p) => !selfIssued(p)).length;
        if (below > bc.pathLen) caFailures.push(`${who}: pathLenConstraint ${bc.pathLen} exceeded (${below} intermediates below it)`);
      }
      if (hasKeyCertSign(c.info) === false) caFailures.push(`${who}: keyUsage lacks keyCertSign`);
    } catch (e) {
      caFailures.push(`${who}: malformed basicConstraints or keyUsage (${(e as Error).message})`);
    }
  }

  const check = (name: PathCheckName, reasons: string[]): void => {
    checks.push(reasons.length ? { name, ok: false, reason: reasons.join('; ') } : { name, ok: true });
  };
  check('signatures', sigFailures);
  check('validity', [notYet, expired].filter((r): r is string => r !== undefined));
  check('caConstraints', caFailures);
  check('criticalExtensions', critFailures);

  const code: PathErrorCode | undefined = sigFailures.length
    ? 'CERT_SIGNATURE_INVALID'
    : caFailures.length || critFailures.length
      ? 'CERT_PATH_INVALID'
      : notYet
        ? 'CERT_NOT_YET_VALID'
        : expired
          ? 'CERT_EXPIRED'
          : undefined;
  return code ? { valid: false, chain, checks, code } : { valid: true, chain, checks };
}

/** RFC 5280 §6.1 basic path validation (simplified, see the header) at `at`. Never throws. */
export async function validatePath(input: PathInput): Promise<PathResult> {
  try {
    const leaf = parse(input.leaf);
    if (!leaf) return { valid: false, chain: [], checks: [{ name: 'chainBuilt', ok: false, reason: 'the certificate is not a DER X.509 certificate' }], code: 'CERT_PATH_INVALID' };
    const at = input.at;
    if (!(at instanceof Date) || Number.isNaN(at.getTime())) {
      return { valid: false, chain: [describe(leaf)], checks: [{ name: 'validity', ok: false, reason: 'no valid time to judge at' }], code: 'CERT_PATH_INVALID' };
    }
    const list = (xs: Buffer[] | undefined): Cert[] => (Array.isArray(xs) ? xs : []).map((d) => (Buffer.isBuffer(d) ? parse(d) : undefined)).filter((c): c is Cert => c !== undefined);
    const anchors = list(input.trustAnchors);
    const intermediates = list(input.intermediates);
    const { paths, tooLong } = buildPaths(leaf, intermediates, anchors);
    if (paths.length === 0) {
      const reason = tooLong ? `no path to a trust anchor within ${MAX_CHAIN} certificates` : 'no path to a trust anchor';
      return { valid: false, chain: [describe(leaf)], checks: [{ name: 'chainBuilt', ok: false, reason }], code: tooLong ? 'CERT_PATH_INVALID' : 'CERT_UNTRUSTED' };
    }
    let first: PathResult | undefined;
    for (const p of paths) {
      const r = await validateChain(p, at);
      if (r.valid) return r;
      first ??= r;
    }
    return first as PathResult;
  } catch (e) {
    return { valid: false, chain: [], checks: [{ name: 'chainBuilt', ok: false, reason: `unexpected: ${(e as Error).message}` }], code: 'CERT_PATH_INVALID' };
  }
}
