// The CAdES-T check (issue 4 item 3): a signature time-stamp in the SignerInfo's unsigned
// attribute id-aa-signatureTimeStampToken (1.2.840.113549.1.9.16.2.14; ETSI EN 319 122-1 §5.3,
// RFC 3161 Appendix A, RFC 5126 §6.1.1). The token is a CMS SignedData over a TSTInfo
// (RFC 3161 §2.4.2; GM/T 0033 for SM2 tokens, STANDARDS.md §3). Checked:
//   - the token's signature (cms-verify.ts: structure, signer, messageDigest, signature),
//     eContentType id-ct-TSTInfo;
//   - TSTInfo version 1 and its messageImprint = hash(the value of the SignerInfo's signature
//     OCTET STRING) with the imprint's hash algorithm (RFC 3161 App. A);
//   - the TSA certificate: ExtendedKeyUsage id-kp-timeStamping (RFC 3161 §2.3), and its path to
//     the trust anchors at genTime (RFC 5280 §6.1, pki/path-validation.ts).
//   - with a revocation checker (verification level 2): the revocation status of the TSA's path
//     at genTime (revocation-check.ts); a certificate revoked at or before genTime fails the
//     token (RFC 3161 §4, ETSI EN 319 102-1 §5.4: a time-stamp whose unit's certificate was
//     revoked then proves nothing). A status that cannot be established is reported and does
//     not fail the token: the TSA's CRL is often not at hand where a signature is checked.
// Not checked: a TSA certificate that the token does not carry (certReq false) is not looked up
// elsewhere — the token fails.
// Never throws: every problem is a reason.
import { EXT, KEY_PURPOSES, readCertificate } from '../asn1/certificate.js';
import { parseSignedData } from '../asn1/cms-signed-data.js';
import { OID_CT_TSTINFO } from '../asn1/tsp.js';
import { Tag, children, readOid, readWhole } from '../crypto/der.js';
import { digest } from '../crypto/hash.js';
import type { HashAlgorithm } from '../crypto/interfaces.js';
import { OID } from '../crypto/oids.js';
import { chainDer, validatePath, type PathCertificate } from '../pki/path-validation.js';
import type { RevocationChecker } from './types.js';
import { verifyCms } from './cms-verify.js';

/** id-aa-signatureTimeStampToken (RFC 3161 Appendix A). */
export const OID_SIGNATURE_TIMESTAMP_TOKEN = '1.2.840.113549.1.9.16.2.14';

const IMPRINT_HASHES = new Map<string, HashAlgorithm>([
  [OID.sm3, 'sm3'],
  [OID.sha256, 'sha256'],
  [OID.sha384, 'sha384'],
  [OID.sha512, 'sha512'],
]);

export interface TstInfoFields {
  policy: string;
  hashAlgorithm: string;
  hashedMessage: Buffer;
  /** Lower-case hex, no leading zero octets. */
  serial: string;
  genTime: Date;
}

export interface TimestampCheck {
  /** The whole token checks out (signature, imprint, TSA certificate). */
  ok: boolean;
  /** The messageImprint matches the signature value; null when the TSTInfo could not be read. */
  imprintOk: boolean | null;
  reason?: string;
  imprintReason?: string;
  /** Present once the TSTInfo was read (even when the token fails). */
  genTime?: Date;
  serial?: string;
  /** RFC 4514 subject of the TSA certificate, when found. */
  tsa?: string;
  chain?: PathCertificate[];
  /** With a revocation checker: what it found for the TSA's path ('unknown' does not fail the token). */
  tsaRevocation?: { status: 'good' | 'revoked' | 'unknown'; detail?: string };
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** GeneralizedTime "YYYYMMDDHHMMSS[.f+]Z" (RFC 3161 §2.4.2: UTC, no leading/trailing-zero games checked). */
function generalizedTime(text: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\.\d+)?Z$/.exec(text);
  if (!m) throw new Error(`genTime ${text.slice(0, 40)} is not a UTC GeneralizedTime`);
  const ms = m[7] ? Math.floor(Number(`0${m[7]}`) * 1000) : 0;
  const d = new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]), ms));
  if (Number.isNaN(d.getTime())) throw new Error(`genTime ${text} is not a date`);
  return d;
}

/** Reads the fields of a DER TSTInfo this check needs (RFC 3161 §2.4.2); throws on malformed. */
export function readTstInfo(der: Buffer): TstInfoFields {
  const f = children(readWhole(der, Tag.SEQUENCE).value);
  const version = f[0];
  if (version?.tag !== Tag.INTEGER || version.value.length !== 1 || version.value[0] !== 1) throw new Error('TSTInfo version is not 1');
  const policy = readOid(f[1]);
  if (f[2]?.tag !== Tag.SEQUENCE) throw new Error('TSTInfo messageImprint missing');
  const mi = children(f[2].value);
  if (mi.length !== 2 || mi[0].tag !== Tag.SEQUENCE || mi[1].tag !== Tag.OCTET_STRING) throw new Error('malformed MessageImprint');
  const hashAlgorithm = readOid(children(mi[0].value)[0]);
  if (f[3]?.tag !== Tag.INTEGER || f[3].value.length === 0) throw new Error('TSTInfo serialNumber missing');
  let i = 0;
  while (i < f[3].value.length - 1 && f[3].value[i] === 0) i++;
  const serial = f[3].value.subarray(i).toString('hex');
  if (f[4]?.tag !== 0x18) throw new Error('TSTInfo genTime missing');
  return { policy, hashAlgorithm, hashedMessage: Buffer.from(mi[1].value), serial, genTime: generalizedTime(f[4].value.toString('latin1')) };
}

/** The TSA path's revocation status at genTime, in one line. */
async function revocationOf(checker: RevocationChecker, chain: PathCertificate[], candidates: Buffer[], at: Date): Promise<NonNullable<TimestampCheck['tsaRevocation']>> {
  const der = chainDer(chain, candidates);
  if (!der) return { status: 'unknown', detail: 'the certificates of the TSA path are ambiguous' };
  try {
    const r = await checker.check(der, at);
    const revoked = r.certificates.find((e) => e.status === 'revoked');
    if (revoked) return { status: 'revoked', detail: `${revoked.subject} (serial ${revoked.serial})${revoked.revokedAt ? ` at ${revoked.revokedAt}` : ''}${revoked.reason ? ` (${revoked.reason})` : ''}, before genTime ${at.toISOString()}` };
    const unknown = r.certificates.find((e) => e.status !== 'good');
    if (unknown) return { status: 'unknown', detail: `${unknown.subject} (serial ${unknown.serial}): status unknown${unknown.detail ? ` (${unknown.detail})` : ''}` };
    return { status: 'good' };
  } catch (e) {
    return { status: 'unknown', detail: `revocation check failed: ${message(e)}` };
  }
}

/** Whether the certificate's extendedKeyUsage names id-kp-timeStamping (RFC 3161 §2.3). */
function hasTimeStampingEku(certDer: Buffer): boolean {
  const ext = readCertificate(certDer).extensions.find((e) => e.oid === EXT.extKeyUsage);
  if (!ext) return false;
  return children(readWhole(ext.value, Tag.SEQUENCE).value).some((p) => readOid(p) === KEY_PURPOSES.timeStamping);
}

export interface TimestampTrust {
  anchors: Buffer[];
  intermediates: Buffer[];
  /** When given, the TSA certificate path's revocation status at genTime is checked too. */
  revocation?: RevocationChecker;
}

/**
 * Checks `token` (DER ContentInfo of a TimeStampToken) as the signature time-stamp of a
 * SignerInfo whose signature value is `signatureValue` (the OCTET STRING contents).
 */
export async function checkSignatureTimestamp(token: Buffer, signatureValue: Buffer, trust: TimestampTrust): Promise<TimestampCheck> {
  try {
    const sd = parseSignedData(token);
    if (sd.eContentType !== OID_CT_TSTINFO) return { ok: false, imprintOk: null, reason: `token eContentType ${sd.eContentType} is not id-ct-TSTInfo` };
    if (!sd.content) return { ok: false, imprintOk: null, reason: 'token carries no TSTInfo' };
    const tst = readTstInfo(sd.content);
    const base = { genTime: tst.genTime, serial: tst.serial };

    // messageImprint over the signature value (RFC 3161 Appendix A).
    const hash = IMPRINT_HASHES.get(tst.hashAlgorithm);
    let imprintOk: boolean;
    let imprintReason: string | undefined;
    if (!hash) {
      imprintOk = false;
      imprintReason = `unsupported imprint hash algorithm ${tst.hashAlgorithm}`;
    } else {
      imprintOk = digest(hash, signatureValue).equals(tst.hashedMessage);
      if (!imprintOk) imprintReason = 'the time-stamp imprint is not the hash of this signature';
    }
    const imprint = { imprintOk, ...(imprintReason ? { imprintReason } : {}) };

    const cms = await verifyCms(token);
    const tsa = cms.signer?.subject;
    const withTsa = { ...base, ...imprint, ...(tsa ? { tsa } : {}) };
    if (!cms.valid || !cms.certificate) {
      const failed = cms.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.reason ?? 'failed'}`);
      return { ok: false, ...withTsa, reason: `the time-stamp token does not verify (${failed.join('; ')})` };
    }
    if (!hasTimeStampingEku(cms.certificate)) {
      return { ok: false, ...withTsa, reason: 'the TSA certificate lacks extendedKeyUsage id-kp-timeStamping' };
    }
    const path = await validatePath({ leaf: cms.certificate, intermediates: [...sd.certificates, ...trust.intermediates], trustAnchors: trust.anchors, at: tst.genTime });
    if (!path.valid) {
      const failed = path.checks.filter((c) => !c.ok).map((c) => c.reason ?? c.name);
      return { ok: false, ...withTsa, chain: path.chain, reason: `TSA certificate path (${path.code}): ${failed.join('; ')}` };
    }
    let tsaRevocation: TimestampCheck['tsaRevocation'];
    if (trust.revocation) {
      tsaRevocation = await revocationOf(trust.revocation, path.chain, [cms.certificate, ...sd.certificates, ...trust.intermediates, ...trust.anchors], tst.genTime);
      if (tsaRevocation.status === 'revoked') return { ok: false, ...withTsa, chain: path.chain, tsaRevocation, reason: `TSA certificate revoked: ${tsaRevocation.detail}` };
    }
    const rev = tsaRevocation ? { tsaRevocation } : {};
    if (!imprintOk) return { ok: false, ...withTsa, chain: path.chain, ...rev, reason: imprintReason };
    return { ok: true, ...withTsa, chain: path.chain, ...rev };
  } catch (e) {
    return { ok: false, imprintOk: null, reason: `malformed time-stamp token: ${message(e)}` };
  }
}
