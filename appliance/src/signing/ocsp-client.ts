// OCSP client for the revocation check of certificates of external CAs (RFC 6960).
//
//   - request: one CertID, SHA-1 by default (RFC 6960 §4.1.1; what responders are sure to
//     index), and a 16-octet nonce (RFC 8954), POSTed as application/ocsp-request (§A.1) with a
//     5 s timeout and a 1 MiB answer limit;
//   - response: responseStatus successful, a BasicOCSPResponse whose signature verifies with
//     the issuing CA's key, or with a delegated responder certificate that the issuing CA
//     signed and that carries id-kp-OCSPSigning and is valid now (§4.2.2.2); the ResponderID
//     must name that signer (§4.2.2.3); the SingleResponse must carry exactly our CertID
//     (hash algorithm, issuerNameHash, issuerKeyHash, serial); a returned nonce must equal ours
//     (a responder serving pre-signed answers returns none, RFC 5019 §2.2.1 — accepted, the
//     freshness check covers it); thisUpdate not in the future and nextUpdate not passed
//     (§4.2.2.1, with CLOCK_SKEW_MS tolerance), or without nextUpdate a thisUpdate at most
//     MAX_AGE_MS old;
//   - answers are cached until their nextUpdate but at most maxCacheMs (5 min): a responder's
//     nextUpdate is often a day away, and a revocation must not stay unseen that long.
// Failures reject with an OcspClientError (code + reason); the checker reports them as 'unknown'.
import { randomBytes } from 'node:crypto';
import { readCertificate, type CertificateInfo } from '../asn1/certificate.js';
import { buildOcspRequest, CERT_ID_HASH_OIDS, issuerHashes, parseOcspResponse, responderKeyHash, type CertIdHash, type ParsedSingleResponse } from '../asn1/ocsp.js';
import { log as rootLog, type Logger } from '../log.js';
import { checkIssuerSignature, hasOcspSigning } from './trust-store.js';

export const OcspClientCodes = {
  OCSP_UNREACHABLE: 'OCSP_UNREACHABLE',
  OCSP_RESPONSE_INVALID: 'OCSP_RESPONSE_INVALID',
  OCSP_ERROR_STATUS: 'OCSP_ERROR_STATUS',
  OCSP_SIGNER_UNAUTHORISED: 'OCSP_SIGNER_UNAUTHORISED',
  OCSP_SIGNATURE_INVALID: 'OCSP_SIGNATURE_INVALID',
  OCSP_CERTID_MISMATCH: 'OCSP_CERTID_MISMATCH',
  OCSP_NONCE_MISMATCH: 'OCSP_NONCE_MISMATCH',
  OCSP_STALE: 'OCSP_STALE',
} as const;
export type OcspClientCode = keyof typeof OcspClientCodes;

export class OcspClientError extends Error {
  constructor(
    readonly code: OcspClientCode,
    message: string,
  ) {
    super(message);
    this.name = 'OcspClientError';
  }
}

export interface OcspAnswer {
  status: 'good' | 'revoked' | 'unknown';
  revocationTime?: Date;
  reasonCode?: number;
  thisUpdate: Date;
  nextUpdate?: Date;
  producedAt: Date;
  /** 'issuer' or the subject of the delegated responder certificate. */
  signer: string;
  fromCache: boolean;
}

export interface OcspClient {
  /** Status of `cert` (DER) issued by `issuer` (DER) from the responder at `url`. */
  query(cert: Buffer, issuer: Buffer, url: string): Promise<OcspAnswer>;
}

export interface OcspClientDeps {
  timeoutMs?: number;
  maxResponseBytes?: number;
  hash?: CertIdHash;
  clock?: () => Date;
  log?: Logger;
  /** Tests: a fixed nonce source. */
  nonce?: () => Buffer;
  /** Longest an answer is reused, even when its nextUpdate is later; default 5 minutes. */
  maxCacheMs?: number;
}

export const OCSP_MAX_CACHE_MS = 5 * 60_000;

export const OCSP_TIMEOUT_MS = 5_000;
const MAX_RESPONSE = 1024 * 1024;
const CLOCK_SKEW_MS = 5 * 60_000;
const MAX_AGE_MS = 60 * 60_000;

/** Reads a fetch Response body up to `limit` bytes. */
export async function readBodyLimited(res: Response, limit: number): Promise<Buffer> {
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > limit) {
    await res.body?.cancel().catch(() => undefined);
    throw new RangeError(`answer of ${declared} bytes exceeds the limit of ${limit}`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  if (!res.body) return Buffer.alloc(0);
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel().catch(() => undefined);
      throw new RangeError(`answer exceeds the limit of ${limit} bytes`);
    }
    chunks.push(Buffer.from(value));
  }
  return Buffer.concat(chunks, size);
}

export function createOcspClient(deps: OcspClientDeps = {}): OcspClient {
  const timeoutMs = deps.timeoutMs ?? OCSP_TIMEOUT_MS;
  const limit = deps.maxResponseBytes ?? MAX_RESPONSE;
  const hash = deps.hash ?? 'sha1';
  const clock = deps.clock ?? (() => new Date());
  const log = deps.log ?? rootLog;
  const newNonce = deps.nonce ?? (() => randomBytes(16));
  const maxCacheMs = deps.maxCacheMs ?? OCSP_MAX_CACHE_MS;
  const cache = new Map<string, { answer: OcspAnswer; until: number }>();

  async function post(url: string, body: Buffer): Promise<Buffer> {
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/ocsp-request', accept: 'application/ocsp-response' },
        body: new Uint8Array(body),
        redirect: 'error',
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      const err = e as Error & { cause?: { code?: string } };
      const why = err.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (err.cause?.code ?? err.message);
      throw new OcspClientError('OCSP_UNREACHABLE', `OCSP responder ${url}: ${why}`);
    }
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => undefined);
      throw new OcspClientError('OCSP_UNREACHABLE', `OCSP responder ${url} answered HTTP ${res.status}`);
    }
    try {
      return await readBodyLimited(res, limit);
    } catch (e) {
      throw new OcspClientError(e instanceof RangeError ? 'OCSP_RESPONSE_INVALID' : 'OCSP_UNREACHABLE', `OCSP responder ${url}: ${(e as Error).message}`);
    }
  }

  /** Who signed: the issuer itself or an authorised delegated responder (RFC 6960 §4.2.2.2); its SPKI. */
  async function authorisedSigner(certs: Buffer[], responderKey: Buffer | undefined, responderName: Buffer | undefined, issuer: CertificateInfo, now: Date): Promise<{ spki: Buffer; who: string }> {
    const names = (spki: Buffer, subject: Buffer): boolean =>
      (responderKey !== undefined && responderKey.equals(responderKeyHash(spki))) || (responderName !== undefined && responderName.equals(subject));
    if (names(issuer.publicKeyInfo, issuer.subjectDer)) return { spki: issuer.publicKeyInfo, who: 'issuer' };
    const reasons: string[] = [];
    for (const der of certs) {
      let c: CertificateInfo;
      try {
        c = readCertificate(der);
      } catch {
        continue;
      }
      if (!names(c.publicKeyInfo, c.subjectDer)) continue;
      if (!c.issuerDer.equals(issuer.subjectDer)) {
        reasons.push('the responder certificate was not issued by the CA of the certificate asked about');
        continue;
      }
      const why = await checkIssuerSignature(c.signatureAlgorithm, issuer.publicKeyInfo, c.tbs, c.signature);
      if (why) {
        reasons.push(`the responder certificate is not signed by the CA: ${why}`);
        continue;
      }
      if (!hasOcspSigning(c)) {
        reasons.push('the responder certificate lacks id-kp-OCSPSigning');
        continue;
      }
      if (now < c.notBefore || now > c.notAfter) {
        reasons.push('the responder certificate is not valid now');
        continue;
      }
      return { spki: c.publicKeyInfo, who: `responder ${c.serial}` };
    }
    throw new OcspClientError('OCSP_SIGNER_UNAUTHORISED', reasons[0] ?? 'the response is signed neither by the CA nor by a responder certificate it included');
  }

  function matches(s: ParsedSingleResponse, nameHash: Buffer, keyHash: Buffer, serial: string): boolean {
    return s.hashAlgorithm === CERT_ID_HASH_OIDS[hash] && s.issuerNameHash.equals(nameHash) && s.issuerKeyHash.equals(keyHash) && s.serial === serial;
  }

  return {
    async query(certDer, issuerDer, url) {
      const cert = readCertificate(certDer);
      const issuer = readCertificate(issuerDer);
      const key = `${url}\n${issuer.subjectDer.toString('hex')}\n${issuer.publicKeyInfo.toString('hex')}\n${cert.serial}`;
      const now = clock();
      const hit = cache.get(key);
      if (hit && hit.until > now.getTime()) return { ...hit.answer, fromCache: true };
      cache.delete(key);

      const nonce = newNonce();
      const der = await post(url, buildOcspRequest([{ issuerCertificate: issuerDer, serial: cert.serial, hash }], nonce));
      let parsed;
      try {
        parsed = parseOcspResponse(der);
      } catch (e) {
        throw new OcspClientError('OCSP_RESPONSE_INVALID', `not an OCSP response: ${(e as Error).message}`);
      }
      if (parsed.status !== 'successful' || !parsed.basic) throw new OcspClientError('OCSP_ERROR_STATUS', `OCSP responder answered ${parsed.status}`);
      const b = parsed.basic;
      const signer = await authorisedSigner(b.certs, b.responderKeyHash, b.responderName, issuer, now);
      const why = await checkIssuerSignature(b.signatureAlgorithm, signer.spki, b.tbs, b.signature);
      if (why) throw new OcspClientError('OCSP_SIGNATURE_INVALID', `OCSP response signature: ${why}`);
      if (b.nonce) {
        // RFC 8954: extnValue is an OCTET STRING around the nonce octets.
        const expected = Buffer.concat([Buffer.from([0x04, nonce.length]), nonce]);
        if (!b.nonce.equals(expected) && !b.nonce.equals(nonce)) throw new OcspClientError('OCSP_NONCE_MISMATCH', 'the response nonce is not the one sent');
      } else log.debug({ url }, 'OCSP response without nonce (pre-signed); freshness checked instead');
      const { nameHash, keyHash } = issuerHashes(issuerDer, hash);
      const single = b.responses.find((s) => matches(s, nameHash, keyHash, cert.serial));
      if (!single) throw new OcspClientError('OCSP_CERTID_MISMATCH', 'the response does not answer for the certificate asked about');
      const t = now.getTime();
      if (single.thisUpdate.getTime() > t + CLOCK_SKEW_MS) throw new OcspClientError('OCSP_STALE', `thisUpdate ${single.thisUpdate.toISOString()} is in the future`);
      if (single.nextUpdate ? single.nextUpdate.getTime() < t - CLOCK_SKEW_MS : single.thisUpdate.getTime() < t - MAX_AGE_MS) {
        throw new OcspClientError('OCSP_STALE', single.nextUpdate ? `the response expired at ${single.nextUpdate.toISOString()}` : `thisUpdate ${single.thisUpdate.toISOString()} is too old and no nextUpdate was given`);
      }
      const answer: OcspAnswer = {
        status: single.status,
        ...(single.revocationTime ? { revocationTime: single.revocationTime } : {}),
        ...(single.reasonCode !== undefined ? { reasonCode: single.reasonCode } : {}),
        thisUpdate: single.thisUpdate,
        ...(single.nextUpdate ? { nextUpdate: single.nextUpdate } : {}),
        producedAt: b.producedAt,
        signer: signer.who,
        fromCache: false,
      };
      if (answer.nextUpdate && answer.nextUpdate.getTime() > t) cache.set(key, { answer, until: Math.min(answer.nextUpdate.getTime(), t + maxCacheMs) });
      return answer;
    },
  };
}
