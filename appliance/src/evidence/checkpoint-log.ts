// The checkpoint log of the evidence Merkle tree (issue 6 item 3): now and then (the
// evidence-checkpoint job, evidence.checkpointSeconds) the appliance signs a checkpoint of the
// tree (evidence/checkpoint.ts, a C2SP signed note) and anchors it with an RFC 3161 token from
// its own TSA over SM3 of the checkpoint body (摘要数据加固时间戳), then keeps both durably
// (store/checkpoint-repository.ts). A checkpoint never exists without its token: a refused stamp
// (clock unsynced → timeNotAvailable) means no checkpoint this round; the job retries.
//
// The signing key: a dedicated ECDSA P-256 key 'evidence-log' made in the HSM at first use
// (custody mode 'hsm': CKM_ECDSA, never extractable, also on SoftHSM2), certified by our ECDSA
// issuing CA with the 'organisation' profile. Why ECDSA and not SM2: on a token without an SM2
// mechanism (SoftHSM2, many PCIe HSMs' default profile) an SM2 key would be a wrapped key
// unwrapped into process memory to sign; the checkpoint signature is the long-lived statement
// of the log and should come from a key that never leaves the HSM. The 国密 anchor is the SM2
// TSA token over the SM3 imprint (GM/T 0033 profile), and the tree itself is SM3; every peer
// (OpenSSL, BouncyCastle, Go's note package, browsers' WebCrypto) verifies P-256, so a court
// expert needs no SM2-capable tool for the signature.
//
// The log's origin (the note's first line and key name) is fixed at first use and kept in meta
// with the key and certificate, so it does not change when publicBaseUrl does.
import type { KeyCustody, Signer } from '../crypto/interfaces.js';
import { fromPem } from '../crypto/der.js';
import { YiqianError } from '../errors.js';
import { log as rootLog, type Logger } from '../log.js';
import type { CertificateService } from '../pki/certificate-service.js';
import type { CertificateRecord } from '../pki/types.js';
import type { CheckpointRepository } from '../store/checkpoint-repository.js';
import type { MetaRepository } from '../store/meta-repository.js';
import type { MerkleRepository } from '../store/merkle-repository.js';
import type { TsaService } from '../tsa/tsa-service.js';
import { checkpointImprint, signCheckpoint } from './checkpoint.js';
import type { CheckpointLog, Page, StoredCheckpoint } from './types.js';

export const CheckpointLogCodes = {
  /** No checkpoint of that tree size (404). */
  CHECKPOINT_NOT_FOUND: 'CHECKPOINT_NOT_FOUND',
  /** The TSA refused to stamp the checkpoint (clock not synchronised …): none made this round (503). */
  CHECKPOINT_TIMESTAMP_REFUSED: 'CHECKPOINT_TIMESTAMP_REFUSED',
  /** A paging cursor or limit that this log did not hand out (400). */
  CHECKPOINT_PAGE_INVALID: 'CHECKPOINT_PAGE_INVALID',
} as const;

export const EVIDENCE_LOG_KEY_LABEL = 'evidence-log';
const META_KEY = 'evidence.checkpoint-signer';
/** A new certificate is issued for the key when the current one has less than this left. */
const RENEW_BEFORE_MS = 30 * 86_400_000;
const MAX_PAGE = 200;
const DEFAULT_PAGE = 50;

interface SignerMeta {
  origin: string;
  keyId: string;
  certSerial: string;
}

/** The outcome of one checkpointNow(): made, nothing to do, or refused by the TSA (retried later). */
export type CheckpointOutcome =
  | { made: true; checkpoint: StoredCheckpoint }
  | { made: false; reason: 'unchanged' | 'empty'; latest?: StoredCheckpoint };

export interface EvidenceCheckpointLog extends CheckpointLog {
  /**
   * Signs and stamps a checkpoint of the tree as it is now, if it grew since the latest one.
   * Calls overlapping a running one share its result. CHECKPOINT_TIMESTAMP_REFUSED (503) when
   * the TSA refuses: nothing is stored.
   */
  checkpointNow(): Promise<CheckpointOutcome>;
  /** The origin (log identity) and the certificate that signs checkpoints (made at first use). */
  signer(): Promise<{ origin: string; certificate: Buffer; chain: Buffer[]; publicKeyInfo: Buffer }>;
}

export interface CheckpointLogDeps {
  checkpoints: CheckpointRepository;
  merkle: Pick<MerkleRepository, 'size' | 'root'>;
  meta: MetaRepository;
  custody: Pick<KeyCustody, 'generate' | 'signer' | 'list'>;
  certificates: Pick<CertificateService, 'issueForAppliance' | 'get' | 'chainPem'>;
  tsa: Pick<TsaService, 'stamp'>;
  /** Origin used when the log signs its first checkpoint (later ones keep the stored one). */
  origin: string;
  /** Which TSA identity stamps checkpoints: 'sm2' (default, GM/T 0033 profile) or 'ecdsa' (verifiable by `openssl ts`). */
  tsaIdentity?: 'sm2' | 'ecdsa';
  /** O of the signer certificate's subject (default: the CA's configured organisation). */
  organisation?: string;
  clock?: () => Date;
  log?: Logger;
}

/** The default origin: the host of the public base URL, then /yiqian/evidence (a key name: no spaces, no '+'). */
export function defaultOrigin(publicBaseUrl: string): string {
  let host = 'yiqian.local';
  try {
    host = new URL(publicBaseUrl).host || host;
  } catch {
    // keep the fallback
  }
  return `${host}/yiqian/evidence`;
}

function pageInvalid(en: string, zh: string): never {
  throw new YiqianError(CheckpointLogCodes.CHECKPOINT_PAGE_INVALID, 400, { zh, en });
}

export function createCheckpointLog(deps: CheckpointLogDeps): EvidenceCheckpointLog {
  const clock = deps.clock ?? (() => new Date());
  const log = (deps.log ?? rootLog).child({ component: 'evidence-checkpoints' });

  interface Loaded {
    origin: string;
    signer: Signer;
    record: CertificateRecord;
    certificate: Buffer;
    chain: Buffer[];
    notAfter: number;
  }
  let loaded: Promise<Loaded> | undefined;
  let running: Promise<CheckpointOutcome> | undefined;

  async function issue(keyId: string, publicKeyInfo: Buffer): Promise<CertificateRecord> {
    const issued = await deps.certificates.issueForAppliance(
      {
        profile: 'organisation',
        hierarchy: 'ecdsa',
        commonName: 'yiqian evidence log checkpoint signer',
        ...(deps.organisation !== undefined ? { organisation: deps.organisation } : {}),
        keyRef: keyId,
        publicKeyInfo,
        keyAlgorithm: 'ecdsa-p256',
      },
      'system:evidence-log',
    );
    return issued.record;
  }

  async function load(): Promise<Loaded> {
    let meta = await deps.meta.get<SignerMeta>(META_KEY);
    if (meta === undefined) {
      // A crash between key generation and this record leaves the key: take it up again.
      const existing = (await deps.custody.list()).find((k) => k.label === EVIDENCE_LOG_KEY_LABEL);
      const key =
        existing ??
        (await deps.custody.generate({
          algorithm: 'ecdsa-p256',
          label: EVIDENCE_LOG_KEY_LABEL,
          purpose: 'signs the checkpoints of the evidence Merkle log (issue 6; C2SP signed note, ECDSA P-256)',
          mode: 'hsm',
        }));
      const record = await issue(key.id, key.publicKeyInfo);
      meta = { origin: deps.origin, keyId: key.id, certSerial: record.serial };
      await deps.meta.set(META_KEY, meta);
      log.info({ origin: meta.origin, keyId: key.id, serial: record.serial }, 'evidence log signer created');
    }
    let record = await deps.certificates.get(meta.certSerial);
    if (record.status !== 'good' || Date.parse(record.notAfter) - clock().getTime() < RENEW_BEFORE_MS) {
      // Same key, new certificate: earlier checkpoints stay verifiable under the old one.
      record = await issue(meta.keyId, Buffer.from(record.publicKeyInfo, 'base64'));
      meta = { ...meta, certSerial: record.serial };
      await deps.meta.set(META_KEY, meta);
      log.info({ serial: record.serial }, 'evidence log signer certificate renewed');
    }
    const signer = await deps.custody.signer(meta.keyId);
    const chain = fromPem(await deps.certificates.chainPem(record)).map((p) => p.der);
    return { origin: meta.origin, signer, record, certificate: Buffer.from(record.certificate, 'base64'), chain, notAfter: Date.parse(record.notAfter) };
  }

  function current(): Promise<Loaded> {
    const p = (loaded ??= load());
    return p.then(
      (l) => {
        if (l.notAfter - clock().getTime() < RENEW_BEFORE_MS) {
          loaded = undefined;
          return current();
        }
        return l;
      },
      (e: unknown) => {
        loaded = undefined; // HSM away, CA missing …: try again next time
        throw e;
      },
    );
  }

  async function make(): Promise<CheckpointOutcome> {
    const latest = await deps.checkpoints.latest();
    const size = await deps.merkle.size();
    if (size === 0) return { made: false, reason: 'empty' };
    if (latest !== undefined && latest.treeSize >= size) return { made: false, reason: 'unchanged', latest };
    const root = await deps.merkle.root(size);
    const l = await current();
    const signed = await signCheckpoint({ origin: l.origin, treeSize: size, rootHash: root, time: clock().toISOString() }, l.signer);
    const { hash, hashedMessage } = checkpointImprint(signed.body);
    // By default the SM2 TSA for the SM3 imprint (GM/T 0033 profile).
    const stamp = await deps.tsa.stamp(hash, hashedMessage, deps.tsaIdentity ?? 'sm2', { address: 'in-process', app: 'evidence-log' });
    if (!stamp.ok) {
      log.warn({ treeSize: size, failInfo: stamp.failInfo, reason: stamp.reason }, 'checkpoint not made: the TSA refused the time-stamp; retried next round');
      throw new YiqianError(
        CheckpointLogCodes.CHECKPOINT_TIMESTAMP_REFUSED,
        503,
        { zh: `时间戳服务拒绝为检查点加盖时间戳（${stamp.failInfo}），本轮不生成检查点`, en: `the TSA refused to time-stamp the checkpoint (${stamp.failInfo}): ${stamp.reason}; no checkpoint this round` },
        { failInfo: stamp.failInfo, treeSize: size },
      );
    }
    const cp: StoredCheckpoint = {
      treeSize: size,
      rootHash: root.toString('hex'),
      time: signed.checkpoint.time,
      note: signed.note,
      signerCertificate: l.certificate.toString('base64'),
      signerChain: l.chain.map((c) => c.toString('base64')),
      timestampToken: stamp.token.toString('base64'),
    };
    const inserted = await deps.checkpoints.insert(cp);
    if (!inserted) {
      // Another writer (a second process on the same store) made this size first: answer that one.
      const other = await deps.checkpoints.get(size);
      return other ? { made: false, reason: 'unchanged', latest: other } : { made: false, reason: 'unchanged' };
    }
    log.info({ treeSize: size, rootHash: cp.rootHash, tsaSerial: stamp.serial }, 'evidence checkpoint');
    return { made: true, checkpoint: cp };
  }

  return {
    checkpointNow() {
      running ??= make().finally(() => {
        running = undefined;
      });
      return running;
    },

    async signer() {
      const l = await current();
      return { origin: l.origin, certificate: l.certificate, chain: l.chain, publicKeyInfo: l.signer.publicKeyInfo };
    },

    latest: () => deps.checkpoints.latest(),

    async covering(leafIndex) {
      return deps.checkpoints.firstAbove(leafIndex);
    },

    get: (treeSize) => deps.checkpoints.get(treeSize),

    async list(page = {}): Promise<Page<StoredCheckpoint>> {
      const limit = page.limit ?? DEFAULT_PAGE;
      if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE) pageInvalid(`limit must be 1–${MAX_PAGE}`, `limit 须为 1–${MAX_PAGE}`);
      let below: number | undefined;
      if (page.cursor !== undefined) {
        if (!/^[1-9][0-9]{0,15}$/.test(page.cursor)) pageInvalid('the cursor is not one this log handed out', '分页游标无效');
        below = Number(page.cursor);
      }
      return deps.checkpoints.list(limit, below);
    },
  };
}
