// Time-limited signed download URLs for originals and files (issue 6 item 2): a URL that a
// browser or a court expert can open without an app key, good for evidence.downloadUrlSeconds.
//
//   /evidence/download/<record id>?exp=<Unix seconds>&sig=<hex HMAC-SM3>
//   sig = HMAC-SM3(K, "yiqian-evidence-download-v1" ‖ 0x0A ‖ id ‖ 0x0A ‖ exp)     (RFC 2104, GB/T 32905)
//
// K is 32 random bytes made on first use and stored only wrapped by the HSM's non-extractable KEK
// (SecretWrapper, the staff/pii.ts pattern) in store meta, so every process of the appliance (and a
// restart) accepts the URLs of the others, and a copy of the database alone cannot mint URLs.
// The tag is checked (constant time) before the expiry, so a changed URL is DOWNLOAD_URL_INVALID
// whatever its exp says; an intact one past its exp is DOWNLOAD_URL_EXPIRED. Both are 403.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { SecretWrapper } from '../crypto/interfaces.js';
import { hmac } from '../crypto/hash.js';
import { Codes, YiqianError } from '../errors.js';
import { log } from '../log.js';
import type { MetaRepository } from '../store/meta-repository.js';
import { newId, nowIso } from '../store/ids.js';

export const DownloadUrlCodes = {
  DOWNLOAD_URL_EXPIRED: 'DOWNLOAD_URL_EXPIRED',
  DOWNLOAD_URL_INVALID: 'DOWNLOAD_URL_INVALID',
  /** The custody cannot wrap the URL key (no SecretWrapper): no URLs can be made or checked (503). */
  DOWNLOAD_KEY_UNAVAILABLE: 'DOWNLOAD_KEY_UNAVAILABLE',
} as const;

/** Where the public download app answers (HTTPS listener only, no app auth). */
export const DOWNLOAD_PATH_PREFIX = '/evidence/download/';
export const DOWNLOAD_URL_KEY = 'evidence.downloadUrlKey';
export const DEFAULT_DOWNLOAD_URL_SECONDS = 300;

const DOMAIN = 'yiqian-evidence-download-v1';
const RECORD_ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const EXP = /^[1-9][0-9]{0,11}$/;
const SIG = /^[0-9a-f]{64}$/;
const log_ = log.child({ component: 'download-url' });

interface DownloadKeyRecord {
  keyId: string;
  alg: 'hmac-sm3';
  /** base64 of SecretWrapper.wrapSecret(key). */
  wrapped: string;
  wrappedBy: 'hsm-kek';
  createdAt: string;
}

export interface DownloadUrl {
  /** Path and query, to put after the appliance's HTTPS origin. */
  path: string;
  /** ISO 8601 UTC. */
  expiresAt: string;
}

export interface DownloadUrlSigner {
  /** A URL for `recordId` good until now + ttl (whole seconds, rounded up). */
  sign(recordId: string, now?: number): Promise<DownloadUrl>;
  /** The record id a URL grants; DOWNLOAD_URL_INVALID / DOWNLOAD_URL_EXPIRED (403) otherwise. */
  verify(recordId: string, query: { exp?: unknown; sig?: unknown }, now?: number): Promise<string>;
}

export interface DownloadUrlDeps {
  meta: MetaRepository;
  wrapper: SecretWrapper | undefined;
  ttlSeconds: number;
}

function invalid(reason: string): YiqianError {
  return new YiqianError(DownloadUrlCodes.DOWNLOAD_URL_INVALID, 403, { zh: '下载链接无效（被修改或不完整）', en: 'invalid download URL (altered or incomplete)' }, { reason });
}

function tbs(recordId: string, exp: string): Buffer {
  return Buffer.from(`${DOMAIN}\n${recordId}\n${exp}`, 'ascii');
}

export function createDownloadUrlSigner(deps: DownloadUrlDeps): DownloadUrlSigner {
  if (!Number.isInteger(deps.ttlSeconds) || deps.ttlSeconds < 1) throw new Error('ttlSeconds must be a positive integer');
  let key: Promise<Buffer> | undefined;

  function wrapper(): SecretWrapper {
    if (!deps.wrapper) {
      throw new YiqianError(DownloadUrlCodes.DOWNLOAD_KEY_UNAVAILABLE, 503, {
        zh: '密钥保管不支持封装数据密钥，无法签发或校验下载链接',
        en: 'the key custody cannot wrap data keys (no SecretWrapper): download URLs cannot be made or checked',
      });
    }
    return deps.wrapper;
  }

  async function unwrap(rec: DownloadKeyRecord): Promise<Buffer> {
    const k = await wrapper().unwrapSecret(Buffer.from(rec.wrapped, 'base64'));
    if (k.length !== 32) {
      k.fill(0);
      throw new YiqianError(Codes.KEY_UNWRAP_FAILED, 500, { zh: '下载链接密钥长度错误', en: `download URL key unwrapped to ${k.length} bytes, expected 32` });
    }
    return k;
  }

  async function loadOrMake(): Promise<Buffer> {
    const existing = await deps.meta.get<DownloadKeyRecord>(DOWNLOAD_URL_KEY);
    if (existing) return unwrap(existing);
    const fresh = randomBytes(32);
    const rec: DownloadKeyRecord = { keyId: newId(), alg: 'hmac-sm3', wrapped: (await wrapper().wrapSecret(fresh)).toString('base64'), wrappedBy: 'hsm-kek', createdAt: nowIso() };
    // Two processes making the first key at once: the first durable write wins, both use it.
    if ((await deps.meta.get(DOWNLOAD_URL_KEY)) === undefined) await deps.meta.set(DOWNLOAD_URL_KEY, rec);
    const winner = (await deps.meta.get<DownloadKeyRecord>(DOWNLOAD_URL_KEY))!;
    if (winner.keyId !== rec.keyId) {
      fresh.fill(0);
      return unwrap(winner);
    }
    log_.info({ keyId: rec.keyId }, 'download URL key created and stored wrapped under the HSM key-encryption key');
    return fresh;
  }

  function currentKey(): Promise<Buffer> {
    key ??= loadOrMake();
    key.catch(() => (key = undefined)); // an HSM hiccup is not remembered
    return key;
  }

  return {
    async sign(recordId, now = Date.now()) {
      if (!RECORD_ID.test(recordId)) throw invalid('record id');
      const exp = String(Math.ceil(now / 1000) + deps.ttlSeconds);
      const sig = hmac('sm3', await currentKey(), tbs(recordId, exp)).toString('hex');
      return { path: `${DOWNLOAD_PATH_PREFIX}${recordId}?exp=${exp}&sig=${sig}`, expiresAt: new Date(Number(exp) * 1000).toISOString() };
    },

    async verify(recordId, query, now = Date.now()) {
      const { exp, sig } = query;
      if (typeof recordId !== 'string' || !RECORD_ID.test(recordId)) throw invalid('record id');
      if (typeof exp !== 'string' || !EXP.test(exp)) throw invalid('exp');
      if (typeof sig !== 'string' || !SIG.test(sig)) throw invalid('sig');
      const expected = hmac('sm3', await currentKey(), tbs(recordId, exp));
      if (!timingSafeEqual(expected, Buffer.from(sig, 'hex'))) throw invalid('sig');
      if (Number(exp) * 1000 <= now) {
        throw new YiqianError(
          DownloadUrlCodes.DOWNLOAD_URL_EXPIRED,
          403,
          { zh: '下载链接已过期，请重新获取', en: 'the download URL has expired; ask for a new one' },
          { expiredAt: new Date(Number(exp) * 1000).toISOString() },
        );
      }
      return recordId;
    },
  };
}
