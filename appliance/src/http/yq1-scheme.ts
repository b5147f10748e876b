// The YQ1 request-signing scheme (docs/api-auth.md), both sides: parsing and the canonical
// string for the server, `signRequest` for clients (tests, bench, ops tools). No I/O.
//
//   Authorization: YQ1-SM2-SM3 app=<appId>,ts=<unix ms>,nonce=<16–64 hex>,sig=<base64 DER>
//   signed string:  "YQ1\n" METHOD "\n" path-with-query "\n" ts "\n" nonce "\n" hex(HASH(body))
//
// HASH and the signature pair up: YQ1-SM2-SM3 = SM3 + SM2 (ID 1234567812345678),
// YQ1-ECDSA-SHA256 = SHA-256 + ECDSA P-256.
import { randomBytes } from 'node:crypto';
import { digest } from '../crypto/hash.js';
import type { Signer } from '../crypto/interfaces.js';
import { Codes, YiqianError } from '../errors.js';

export const YQ1_SCHEMES = ['YQ1-SM2-SM3', 'YQ1-ECDSA-SHA256'] as const;
export type Yq1Scheme = (typeof YQ1_SCHEMES)[number];
export type Yq1Algorithm = 'sm2' | 'ecdsa-p256';

/** Accepted difference between the client's ts and the server clock, either way. */
export const YQ1_MAX_SKEW_MS = 300_000;

const SCHEME_OF: Record<Yq1Algorithm, Yq1Scheme> = { sm2: 'YQ1-SM2-SM3', 'ecdsa-p256': 'YQ1-ECDSA-SHA256' };
const HASH_OF: Record<Yq1Scheme, 'sm3' | 'sha256'> = { 'YQ1-SM2-SM3': 'sm3', 'YQ1-ECDSA-SHA256': 'sha256' };

export function schemeForAlgorithm(algorithm: string): Yq1Scheme | undefined {
  return Object.hasOwn(SCHEME_OF, algorithm) ? SCHEME_OF[algorithm as Yq1Algorithm] : undefined;
}

export function bodyHashHex(scheme: Yq1Scheme, body: Buffer): string {
  return digest(HASH_OF[scheme], body).toString('hex');
}

export interface Yq1Authorization {
  scheme: Yq1Scheme;
  appId: string;
  /** Milliseconds since the Unix epoch. */
  ts: number;
  nonce: string;
  /** DER signature bytes. */
  signature: Buffer;
}

export type ParseResult = { ok: true; auth: Yq1Authorization } | { ok: false; reason: string };

const MAX_HEADER = 1024;
const APP_ID = /^[A-Za-z0-9._-]{1,128}$/;
const TS = /^(0|[1-9][0-9]{0,15})$/;
const NONCE = /^[0-9a-fA-F]{16,64}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const PARAMS = ['app', 'ts', 'nonce', 'sig'] as const;

/**
 * Parses an Authorization header value. Strict: exactly the four parameters, each once,
 * separated by commas (optional spaces around), values bare or in plain double quotes.
 */
export function parseAuthorization(header: string): ParseResult {
  const bad = (reason: string): ParseResult => ({ ok: false, reason });
  if (header.length > MAX_HEADER) return bad(`header longer than ${MAX_HEADER} characters`);
  const m = /^([A-Za-z0-9-]+)[ \t]+(.*)$/s.exec(header.trim());
  if (!m) return bad('expected "<scheme> app=…,ts=…,nonce=…,sig=…"');
  const scheme = YQ1_SCHEMES.find((s) => s === m[1]!.toUpperCase());
  if (!scheme) return bad(`unknown scheme "${m[1]!.slice(0, 40)}", expected ${YQ1_SCHEMES.join(' or ')}`);

  const values = new Map<string, string>();
  for (const part of m[2]!.split(',')) {
    const p = part.trim();
    const eq = p.indexOf('=');
    if (eq <= 0) return bad(`parameter "${p.slice(0, 40)}" is not name=value`);
    const name = p.slice(0, eq).trim().toLowerCase();
    let value = p.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (!(PARAMS as readonly string[]).includes(name)) return bad(`unknown parameter "${name.slice(0, 40)}"`);
    if (values.has(name)) return bad(`duplicate parameter "${name}"`);
    if (value === '') return bad(`parameter "${name}" is empty`);
    values.set(name, value);
  }
  for (const name of PARAMS) if (!values.has(name)) return bad(`missing parameter "${name}"`);

  const appId = values.get('app')!;
  if (!APP_ID.test(appId)) return bad('app must be 1–128 characters of A–Z a–z 0–9 . _ -');
  const tsText = values.get('ts')!;
  if (!TS.test(tsText) || !Number.isSafeInteger(Number(tsText))) return bad('ts must be a non-negative integer of Unix milliseconds');
  const nonce = values.get('nonce')!;
  if (!NONCE.test(nonce)) return bad('nonce must be 16–64 hexadecimal characters');
  const sig = values.get('sig')!;
  if (sig.length % 4 !== 0 || !BASE64.test(sig)) return bad('sig must be standard base64 (with padding)');
  const signature = Buffer.from(sig, 'base64');
  if (signature.toString('base64') !== sig) return bad('sig is not canonical base64');
  if (signature.length < 8 || signature.length > 256) return bad('sig has an implausible length for a DER signature');

  return { ok: true, auth: { scheme, appId, ts: Number(tsText), nonce, signature } };
}

/** The exact string whose UTF-8 bytes are signed. `pathWithQuery` is the request target as sent. */
export function canonicalString(method: string, pathWithQuery: string, ts: number | string, nonce: string, bodyHashHexValue: string): string {
  return `YQ1\n${method}\n${pathWithQuery}\n${ts}\n${nonce}\n${bodyHashHexValue}`;
}

export function formatAuthorization(a: Yq1Authorization): string {
  return `${a.scheme} app=${a.appId},ts=${a.ts},nonce=${a.nonce},sig=${a.signature.toString('base64')}`;
}

/**
 * Client side: the Authorization header value for one request. `pathWithQuery` must be sent
 * byte for byte as signed (no re-encoding by the HTTP client); `method` as on the request line.
 */
export async function signRequest(
  signer: Signer,
  appId: string,
  method: string,
  pathWithQuery: string,
  body?: Buffer | string,
  now: number = Date.now(),
  nonce: string = randomBytes(16).toString('hex'),
): Promise<string> {
  const scheme = schemeForAlgorithm(signer.algorithm);
  if (!scheme) {
    throw new YiqianError(Codes.UNSUPPORTED_ALGORITHM, 400, {
      zh: `YQ1 不支持 ${signer.algorithm} 密钥`,
      en: `YQ1 does not support ${signer.algorithm} keys`,
    });
  }
  const bytes = body === undefined ? Buffer.alloc(0) : typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const tbs = canonicalString(method, pathWithQuery, now, nonce, bodyHashHex(scheme, bytes));
  const signature = await signer.sign(Buffer.from(tbs, 'utf8'));
  return formatAuthorization({ scheme, appId, ts: now, nonce, signature });
}
