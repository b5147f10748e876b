// Patient ids in evidence records (issue 6 item 1: "stored encrypted and shown masked"; GB/T
// 39786-2021 level 3 storage confidentiality, STANDARDS.md §8), in the style of staff/pii.ts:
//   - sealed with SM4 encrypt-then-MAC (crypto/sealed-sm4.ts) under a 32-byte data key that is
//     stored only wrapped by the HSM's non-extractable KEK (SecretWrapper), in store meta:
//       evidence.patientKey             the current key { keyId, alg, wrapped, wrappedBy, createdAt }
//       evidence.patientKeys.<keyId>    every key ever made, never overwritten
//     The sealed value is bound (AAD) to its project and record id: moved to another record it
//     fails its integrity check.
//   - searchable by a blind index HMAC-SM3(K_idx, "patientId" ‖ 0x00 ‖ the id), K_idx = HKDF-SM3(data
//     key, info "yiqian evidence patient-id index v1"). The index is in the Merkle leaf
//     (evidence/leaf.ts), so it must never change for a record: it is computed under the key
//     that sealed the record, and a query computes it under every key in use (one, normally).
//   - shown masked: at most the first 2 and last 2 characters, never more than a third.
import type { SecretWrapper } from '../crypto/interfaces.js';
import { hkdf, hmac } from '../crypto/hash.js';
import { openSm4, sealSm4, sealedKeyId } from '../crypto/sealed-sm4.js';
import { Codes, YiqianError } from '../errors.js';
import { log } from '../log.js';
import { createDataKeyRing } from '../crypto/data-key-ring.js';
import type { MetaRepository } from '../store/meta-repository.js';
import { newId, nowIso } from '../store/ids.js';

export const PATIENT_KEY = 'evidence.patientKey';
export const PATIENT_KEYS_PREFIX = 'evidence.patientKeys.';

export const PatientIdCodes = {
  /** The custody cannot wrap data keys: patient ids cannot be stored (503). */
  PATIENT_KEY_UNAVAILABLE: 'PATIENT_KEY_UNAVAILABLE',
} as const;

export interface SealedPatientId {
  patientIdSealed: string;
  patientIdIndex: string;
  patientIdMasked: string;
}

export interface PatientIdProtector {
  /** Seals a plain patient id for record `recordId` of `project`. */
  seal(project: string, recordId: string, plain: string): Promise<SealedPatientId>;
  /** Opens a stored one (INTEGRITY_CHECK_FAILED 500 when altered or moved). */
  open(project: string, recordId: string, sealedB64: string): Promise<string>;
  /** The blind indexes of a plain id under every key in use (a query matches any of them). */
  indexes(plain: string): Promise<string[]>;
}

const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const INDEX_INFO = Buffer.from('yiqian evidence patient-id index v1', 'ascii');
const AAD_PREFIX = 'yiqian.evidence.patientId.v1';
const log_ = log.child({ component: 'patient-id' });

/** Masked for display: ≥ 7 characters keep the first 2 and last 2; shorter ones keep the last 1 (≥ 4) or nothing. */
export function maskPatientId(v: string): string {
  const c = [...v];
  if (c.length >= 7) return c.slice(0, 2).join('') + '*'.repeat(c.length - 4) + c.slice(-2).join('');
  if (c.length >= 4) return '*'.repeat(c.length - 1) + c.slice(-1).join('');
  return '*'.repeat(c.length);
}

function aad(project: string, recordId: string): Buffer {
  return Buffer.from(`${AAD_PREFIX}\0${project}\0${recordId}`, 'utf8');
}

export function createPatientIdProtector(deps: { meta: MetaRepository; wrapper: SecretWrapper | undefined }): PatientIdProtector {
  /** K_idx per data key id, derived once (HKDF is deterministic, RFC 5869): each hkdfSync cost ~80 µs, most of an index. */
  const indexKeys = new Map<string, Buffer>();
  const ring = createDataKeyRing({
    records: deps.meta,
    wrapper: () => {
      if (!deps.wrapper) {
        throw new YiqianError(PatientIdCodes.PATIENT_KEY_UNAVAILABLE, 503, {
          zh: '密钥保管不支持封装数据密钥，无法加密患者标识',
          en: 'the key custody cannot wrap data keys (no SecretWrapper): patient ids cannot be stored or read',
        });
      }
      return deps.wrapper;
    },
    currentKey: PATIENT_KEY,
    archivePrefix: PATIENT_KEYS_PREFIX,
    what: { zh: '患者标识', en: 'patient-id' },
    newId,
    now: nowIso,
    log: log_,
  });
  const key = (keyId: string): Promise<Buffer> => ring.key(keyId);
  const currentKeyId = (): Promise<string> => ring.currentKeyId();


  function index(keyId: string, dataKey: Buffer, plain: string): string {
    let k = indexKeys.get(keyId);
    if (!k) {
      k = hkdf('sm3', dataKey, Buffer.alloc(0), INDEX_INFO, 32);
      indexKeys.set(keyId, k);
    }
    return hmac('sm3', k, [Buffer.from('patientId', 'ascii'), Buffer.from([0]), Buffer.from(plain, 'utf8')]).toString('hex');
  }

  return {
    async seal(project, recordId, plain) {
      const keyId = await currentKeyId();
      const k = await key(keyId);
      return {
        patientIdSealed: sealSm4(k, keyId, Buffer.from(plain, 'utf8'), aad(project, recordId)).toString('base64'),
        patientIdIndex: index(keyId, k, plain),
        patientIdMasked: maskPatientId(plain),
      };
    },

    async open(project, recordId, sealedB64) {
      const sealed = Buffer.from(sealedB64, 'base64');
      try {
        const keyId = sealedKeyId(sealed);
        if (!ULID.test(keyId)) throw new YiqianError(Codes.INTEGRITY_CHECK_FAILED, 500, { zh: '数据完整性校验失败', en: 'sealed value names no patient-id data key' });
        return openSm4(await key(keyId), sealed, aad(project, recordId)).toString('utf8');
      } catch (e) {
        if (e instanceof YiqianError && e.code === Codes.INTEGRITY_CHECK_FAILED) {
          throw new YiqianError(Codes.INTEGRITY_CHECK_FAILED, 500, { zh: `存证记录 ${recordId} 的患者标识完整性校验失败`, en: `the sealed patient id of evidence record ${recordId} failed its integrity check (altered or moved)` }, { id: recordId }, { cause: e });
        }
        throw e;
      }
    },

    async indexes(plain) {
      // Keys in use: the current one (key rotation, when it comes, lists its predecessors here).
      const id = await currentKeyId();
      return [index(id, await key(id), plain)];
    },
  };
}
