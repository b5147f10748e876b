// Personal data of staff at rest (GB/T 39786-2021 level 3: storage confidentiality 应, storage
// integrity 宜; STANDARDS.md §8): national id and mobile are stored only sealed with SM4
// encrypt-then-MAC (crypto/sealed-sm4.ts) under a 32-byte PII data key, shown masked, and
// found through HMAC-SM3 blind indexes — never through plaintext.
//
// The data key is random, made on first use, and stored only wrapped by the HSM's
// non-extractable AES-256 KEK (SecretWrapper) in store meta:
//   pii.dataKey              the current key: { keyId, alg, wrapped (base64), wrappedBy, createdAt }
//   pii.dataKeys.<keyId>     every key ever made (same record), never overwritten
// It is unwrapped once per process and kept in memory. Every sealed value names its keyId
// (sealed-sm4 header) and every staff record its piiKeyId, so a value stays readable even if
// two processes (serve and a CLI import) both made a first key at the same moment and one
// pointer write won; lookups compute the blind index under each key in use. The same layout
// carries a later key rotation.
//
// Each sealed value is bound (AAD) to its field and employee id: a sealed national id moved
// to another record or field fails its integrity check (INTEGRITY_CHECK_FAILED).
// Blind index = HMAC-SM3(K_idx, field ‖ 0x00 ‖ normalised value), K_idx = HKDF-SM3(data key,
// info "yiqian pii blind-index v1") — a second key, independent of the sealing keys.
import type { SecretWrapper } from '../crypto/interfaces.js';
import { hkdf, hmac } from '../crypto/hash.js';
import { openSm4, sealSm4, sealedKeyId } from '../crypto/sealed-sm4.js';
import { Codes, YiqianError, isYiqianError } from '../errors.js';
import { log } from '../log.js';
import { createDataKeyRing, type DataKeyRecord } from '../crypto/data-key-ring.js';
import type { MetaRepository } from '../store/meta-repository.js';
import { newId, nowIso } from '../store/ids.js';
import { StaffCodes } from './staff-errors.js';
import type { PiiField, StaffRecord } from './types.js';

export const PII_DATA_KEY = 'pii.dataKey';
export const PII_DATA_KEYS_PREFIX = 'pii.dataKeys.';

/** A PII data key as kept in meta (crypto/data-key-ring.ts). */
export type PiiDataKeyRecord = DataKeyRecord;

/** The sealed PII columns of a StaffRecord. */
export type SealedPii = Pick<StaffRecord, 'nationalIdSealed' | 'nationalIdIndex' | 'mobileSealed' | 'mobileIndex' | 'piiKeyId'>;

export interface PlainPii {
  nationalId: string;
  mobile?: string;
}

const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const INDEX_INFO = Buffer.from('yiqian pii blind-index v1', 'ascii');
const AAD_PREFIX = 'yiqian.staff.pii.v1';
const log_ = log.child({ component: 'pii' });

/** 110***********1234: first 3 and last 4 characters. */
export function maskNationalId(v: string): string {
  if (v.length <= 7) return '*'.repeat(v.length);
  return v.slice(0, 3) + '*'.repeat(v.length - 7) + v.slice(-4);
}

/** 138****5678. */
export function maskMobile(v: string): string {
  if (v.length <= 7) return '*'.repeat(v.length);
  return v.slice(0, 3) + '*'.repeat(v.length - 7) + v.slice(-4);
}

function aad(field: PiiField, employeeId: string): Buffer {
  return Buffer.from(`${AAD_PREFIX}\0${field}\0${employeeId}`, 'utf8');
}

export interface PiiProtector {
  /** Seals the fields for a record of `employeeId` under the current data key (made on first use). */
  seal(employeeId: string, plain: PlainPii): Promise<SealedPii>;
  /** Opens one field of a stored record; INTEGRITY_CHECK_FAILED (500) when it was altered or moved. */
  open(record: Pick<StaffRecord, 'employeeId'> & Partial<SealedPii>, field: PiiField): Promise<string | undefined>;
  /** The blind index of a normalised value under each of the given data keys. */
  blindIndexes(field: PiiField, value: string, keyIds: Iterable<string>): Promise<Map<string, string>>;
  /** The current data key's id (makes the key on first use). */
  currentKeyId(): Promise<string>;
}

export interface PiiDeps {
  meta: MetaRepository;
  /** The HSM custody's SecretWrapper capability; without it PII cannot be stored (PII_KEY_UNAVAILABLE). */
  wrapper: SecretWrapper | undefined;
}

export function createPiiProtector(deps: PiiDeps): PiiProtector {
  const ring = createDataKeyRing({
    records: deps.meta,
    wrapper: () => {
      if (!deps.wrapper) {
        throw new YiqianError(StaffCodes.PII_KEY_UNAVAILABLE, 503, {
          zh: '密钥保管不支持封装数据密钥，无法加密个人信息',
          en: 'the key custody cannot wrap data keys (no SecretWrapper): personal data cannot be stored or read',
        });
      }
      return deps.wrapper;
    },
    currentKey: PII_DATA_KEY,
    archivePrefix: PII_DATA_KEYS_PREFIX,
    what: { zh: '个人信息', en: 'PII' },
    newId,
    now: nowIso,
    log: log_,
  });
  const key = (keyId: string): Promise<Buffer> => ring.key(keyId);
  const currentKeyId = (): Promise<string> => ring.currentKeyId();


  function indexKey(dataKey: Buffer): Buffer {
    return hkdf('sm3', dataKey, Buffer.alloc(0), INDEX_INFO, 32);
  }

  function index(k: Buffer, field: PiiField, value: string): string {
    return hmac('sm3', k, [Buffer.from(field, 'ascii'), Buffer.from([0]), Buffer.from(value, 'utf8')]).toString('hex');
  }

  return {
    currentKeyId,

    async seal(employeeId, plain) {
      const keyId = await currentKeyId();
      const k = await key(keyId);
      const idx = indexKey(k);
      const out: SealedPii = {
        piiKeyId: keyId,
        nationalIdSealed: sealSm4(k, keyId, Buffer.from(plain.nationalId, 'utf8'), aad('nationalId', employeeId)).toString('base64'),
        nationalIdIndex: index(idx, 'nationalId', plain.nationalId),
      };
      if (plain.mobile !== undefined) {
        out.mobileSealed = sealSm4(k, keyId, Buffer.from(plain.mobile, 'utf8'), aad('mobile', employeeId)).toString('base64');
        out.mobileIndex = index(idx, 'mobile', plain.mobile);
      }
      return out;
    },

    async open(record, field) {
      const sealedB64 = field === 'nationalId' ? record.nationalIdSealed : record.mobileSealed;
      if (sealedB64 === undefined) return undefined;
      const sealed = Buffer.from(sealedB64, 'base64');
      try {
        const keyId = sealedKeyId(sealed);
        if (!ULID.test(keyId)) throw new YiqianError(Codes.INTEGRITY_CHECK_FAILED, 500, { zh: '数据完整性校验失败', en: 'sealed value names no PII data key' });
        const k = await key(keyId);
        return openSm4(k, sealed, aad(field, record.employeeId)).toString('utf8');
      } catch (e) {
        if (isYiqianError(e) && e.code === Codes.INTEGRITY_CHECK_FAILED) {
          throw new YiqianError(
            Codes.INTEGRITY_CHECK_FAILED,
            500,
            { zh: `工号 ${record.employeeId} 的加密字段 ${field} 完整性校验失败（数据被篡改或移动）`, en: `stored ${field} of employee ${record.employeeId} failed its integrity check (altered or moved)` },
            { employeeId: record.employeeId, field },
            { cause: e },
          );
        }
        throw e;
      }
    },

    async blindIndexes(field, value, keyIds) {
      const out = new Map<string, string>();
      for (const id of new Set(keyIds)) out.set(id, index(indexKey(await key(id)), field, value));
      return out;
    },
  };
}
