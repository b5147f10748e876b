// Opens the appliance's one LMDB environment (<dataDir>/db) and hands out the typed
// repositories. Nothing outside store/ imports lmdb (ARCHITECTURE.md §2).
//
// Pinned behaviour (lmdb-js 3.5, ARCHITECTURE.md §4): every option that matters is spelled
// out below instead of taken from defaults that could move between versions, and the
// on-disk format is recorded in meta ('store.format'); a store written by a newer format is
// refused rather than misread.
import { accessSync, constants as fsc, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { access, mkdir, open as openFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { open, type Database, type Key, type RootDatabase, type RootDatabaseOptionsWithPath } from 'lmdb';
import { createAuditLog, type AuditLog, type AuditRecord } from '../audit/audit-log.js';
import type { KeyRecord, KeyRegistry } from '../crypto/interfaces.js';
import { Codes, YiqianError, fail } from '../errors.js';
import { LmdbAppRepository, type AppRecord, type AppRepository } from './app-repository.js';
import { LmdbAuditStorage } from './audit-storage.js';
import { STORE_PAGE_SIZE, Writer, assertOpen, unavailable, type StoreState } from './durable.js';
import { environmentFileProblem } from './file-check.js';
import { LmdbKeyRegistry } from './key-registry.js';
import { LmdbMetaRepository, type MetaRepository } from './meta-repository.js';
import { LmdbNonceRepository, NONCE_ENV_DIR, type NonceRepository } from './nonce-repository.js';
import { createCertificateRepository } from './certificate-repository.js';
import { createCaRepository } from './ca-repository.js';
import { createDepartmentRepository, createStaffRepository } from './staff-repository.js';
import { createTsaTokenRepository } from './tsa-token-repository.js';
import { createTrustRepository } from './trust-repository.js';
import type { TrustRepository } from '../signing/trust-store.js';
import { createHeldKeyRepository, type HeldKeyRepository } from './held-key-repository.js';
import { LmdbMerkleRepository } from './merkle-repository.js';
import { evidenceHotTier, type EvidenceHotTier } from './evidence-repository.js';
import { createEvidenceProjectRepository, type EvidenceProjectRepository } from './evidence-project-repository.js';
import { LmdbEvidenceCounters } from './evidence-counters.js';
import { createCheckpointRepository, type CheckpointRepository } from './checkpoint-repository.js';
import type { TsaTokenRepository } from '../tsa/types.js';
import type { CaRepository, CertificateRepository } from '../pki/types.js';
import type { DepartmentRepository, StaffRepository } from '../staff/types.js';

export interface Store {
  apps: AppRepository;
  certs: CertificateRepository;
  cas: CaRepository;
  departments: DepartmentRepository;
  staff: StaffRepository;
  /** Issued RFC 3161 tokens (tsa-token-repository.ts). */
  tsaTokens: TsaTokenRepository;
  /** Imported CA certificates and their CRLs (trust-repository.ts). */
  trustCas: TrustRepository;
  /** Signing keys held for apps (held-key-repository.ts). */
  heldKeys: HeldKeyRepository;
  /** The evidence Merkle log (merkle-repository.ts); appendInTransaction for same-transaction appends. */
  merkle: LmdbMerkleRepository;
  /** Evidence records, hot tier (evidence-repository.ts): openEvidenceRepository adds the cold env. */
  evidenceHot: EvidenceHotTier;
  /** Evidence projects (evidence-project-repository.ts). */
  evidenceProjects: EvidenceProjectRepository;
  /** Evidence statistics counters, updated inside record/rejection transactions (evidence-counters.ts). */
  evidenceCounters: LmdbEvidenceCounters;
  /** Signed, time-stamped checkpoints of the evidence log (checkpoint-repository.ts). */
  evidenceCheckpoints: CheckpointRepository;
  keys: KeyRegistry;
  nonces: NonceRepository;
  audit: AuditLog;
  meta: MetaRepository;
  /** For /readyz: resolves if the store is open and readable, else STORE_UNAVAILABLE. */
  check(): Promise<void>;
  /**
   * A consistent snapshot copy made by LMDB's copy API (never `cp` of a live environment)
   * into `<path>/db`; `openStore(path)` opens it. `path` must not already hold a store.
   */
  backup(path: string): Promise<void>;
  /** Waits for pending writes to be flushed, then closes. Later calls fail with STORE_UNAVAILABLE. */
  close(): Promise<void>;
}

export interface OpenStoreOptions {
  /** Open without writing anything; writes fail with STORE_UNAVAILABLE. */
  readOnly?: boolean;
  /**
   * Start from the last transaction that was flushed to disk, as after a power loss, even
   * when the machine did not reboot (LMDB otherwise resumes at the last committed one after a
   * process crash). For recovery tools and crash tests.
   */
  safeRestore?: boolean;
}

/** Format of what this code writes; bump on any change to keys or values, with a migration. */
export const STORE_FORMAT = { version: 1, encoding: 'json' } as const;
const FORMAT_KEY = 'store.format';

const DB_NAMES = [
  // (replay nonces live in their own environment: nonce-repository.ts)
  'apps', 'apps-by-name', 'keys', 'keys-by-label', 'audit', 'meta',
  // CA capability (certificate-repository.ts, ca-repository.ts)
  'certs', 'certs-by-id', 'cas',
  // staff directory (staff-repository.ts)
  'departments', 'staff', 'staff-by-department',
  // time-stamp authority (tsa-token-repository.ts)
  'tsa-tokens',
  // trust store of the signature service (trust-repository.ts)
  'trust-cas',
  // signing keys held for apps (held-key-repository.ts)
  'held-keys', 'held-keys-by-label', 'held-keys-by-cert',
  // evidence Merkle log (merkle-repository.ts)
  'merkle-nodes',
  // evidence records, hot tier (evidence-repository.ts; the cold tier has its own env)
  'evidence-records', 'evidence-index', 'evidence-by-project', 'evidence-rejections', 'evidence-rejections-by-project',
  // evidence projects and statistics counters (evidence-project-repository.ts, evidence-counters.ts)
  'evidence-projects', 'evidence-counters',
  // signed, time-stamped checkpoints of the evidence log (checkpoint-repository.ts)
  'evidence-checkpoints',
] as const;
type DbName = (typeof DB_NAMES)[number];

export async function openStore(dataDir: string, opts: OpenStoreOptions = {}): Promise<Store> {
  const readOnly = opts.readOnly === true;
  const root = resolve(dataDir);
  const path = join(root, 'db');
  if (readOnly) {
    if (!existsSync(join(path, 'data.mdb'))) {
      fail(Codes.STORE_UNAVAILABLE, 503, `${root} 中没有存储`, `no store in ${root} (nothing at ${path}/data.mdb)`, { dataDir: root });
    }
  } else {
    prepareDir(root, path);
  }
  const problem = environmentFileProblem(join(path, 'data.mdb'));
  if (problem !== undefined) {
    fail(Codes.STORE_UNAVAILABLE, 503, `无法打开 ${root} 中的存储：${problem}`, `cannot open the store in ${root}: ${problem}`, { dataDir: root, reason: problem });
  }

  let env: RootDatabase;
  // safeRestore is an lmdb-js 3.5 open option (open.js) missing from its .d.ts.
  const options: RootDatabaseOptionsWithPath & { safeRestore?: boolean } = {
    path,
    readOnly,
    maxDbs: 64, // a runtime limit (not on disk): room for the evidence store's indexes
    pageSize: STORE_PAGE_SIZE,
    // Values are JSON: stable across msgpackr versions, readable by any tool, and the shape
    // a PostgreSQL (jsonb) implementation of the same repositories will keep.
    encoding: 'json',
    compression: false,
    cache: false,
    useVersions: false,
    // One transaction per event turn; a resolved write is committed, `flushed` = fsynced
    // (durable.ts). overlappingSync only exists for writers.
    eventTurnBatching: true,
    commitDelay: 0,
    strictAsyncOrder: true,
    ...(readOnly ? {} : { overlappingSync: true }),
    noSync: false,
    noMetaSync: false,
    useWritemap: false,
    safeRestore: opts.safeRestore === true,
  };
  try {
    env = open(options);
  } catch (e) {
    throw openError(root, e);
  }

  const state: StoreState = { dataDir: root, readOnly, closed: false };
  let nonceEnv: RootDatabase | undefined;
  try {
    nonceEnv = openNonceEnv(root, readOnly);
    const dbs = {} as Record<DbName, Database<any, any>>;
    for (const name of DB_NAMES) {
      const db = env.openDB({ name, encoding: 'json', ...(name === 'audit' ? { keyEncoding: 'uint32' as const } : {}) });
      if (!db) throw new Error(`database "${name}" is missing (store never initialised by a writer)`);
      dbs[name] = db;
    }
    const format = dbs.meta.get(FORMAT_KEY) as { version: number } | undefined;
    if (format === undefined) {
      if (readOnly) throw new Error('store format record is missing');
      await dbs.meta.put(FORMAT_KEY, STORE_FORMAT);
      await env.flushed;
    } else if (format.version !== STORE_FORMAT.version) {
      throw new Error(`store format ${format.version} is not supported by this build (expects ${STORE_FORMAT.version})`);
    }

    const writer = new Writer(env, state);
    const auditStorage = new LmdbAuditStorage(dbs.audit as Database<AuditRecord, number>, dbs.meta, writer);
    const evidenceProjects = createEvidenceProjectRepository(dbs['evidence-projects'], auditStorage, writer);
    const store: Store = {
      apps: new LmdbAppRepository(dbs.apps as Database<AppRecord, string>, dbs['apps-by-name'], auditStorage, writer),
      keys: new LmdbKeyRegistry(dbs.keys as Database<KeyRecord, string>, dbs['keys-by-label'], writer),
      nonces: nonceRepository(nonceEnv, readOnly),
      audit: createAuditLog(auditStorage),
      meta: new LmdbMetaRepository(dbs.meta, writer),
      certs: createCertificateRepository({ certs: dbs.certs, byId: dbs['certs-by-id'] }, auditStorage, writer),
      cas: createCaRepository(dbs.cas, auditStorage, writer),
      departments: createDepartmentRepository(dbs.departments, auditStorage, writer),
      staff: createStaffRepository({ staff: dbs.staff, byDepartment: dbs['staff-by-department'] }, auditStorage, writer),
      tsaTokens: createTsaTokenRepository(dbs['tsa-tokens'], writer),
      trustCas: createTrustRepository(dbs['trust-cas'], auditStorage, writer),
      heldKeys: createHeldKeyRepository({ keys: dbs['held-keys'], byLabel: dbs['held-keys-by-label'], byCert: dbs['held-keys-by-cert'] }, auditStorage, writer),
      merkle: new LmdbMerkleRepository(dbs['merkle-nodes'], writer),
      evidenceHot: evidenceHotTier(
        { records: dbs['evidence-records'], index: dbs['evidence-index'], byProject: dbs['evidence-by-project'], rejections: dbs['evidence-rejections'], rejectionsByProject: dbs['evidence-rejections-by-project'] },
        writer,
      ),
      evidenceProjects,
      evidenceCounters: new LmdbEvidenceCounters(dbs['evidence-counters'], writer, { retentionYearsInTxn: (p) => evidenceProjects.getInTxn(p)?.retentionYears }),
      evidenceCheckpoints: createCheckpointRepository(dbs['evidence-checkpoints'], writer),

      async check() {
        assertOpen(state);
        try {
          await access(join(path, 'data.mdb'), readOnly ? fsc.R_OK : fsc.R_OK | fsc.W_OK);
          if (dbs.meta.get(FORMAT_KEY) === undefined) throw new Error('store format record is missing');
        } catch (e) {
          throw unavailable(state, 'check failed', e);
        }
      },

      async backup(target: string) {
        assertOpen(state);
        const targetRoot = resolve(target);
        const targetDb = join(targetRoot, 'db');
        if (targetDb === path) fail(Codes.BAD_REQUEST, 400, '不能备份到存储自身', 'cannot back up a store onto itself');
        try {
          await mkdir(targetDb, { recursive: true });
        } catch (e) {
          throw unwritable(targetRoot, e);
        }
        if (readdirSync(targetDb).length > 0) {
          fail(Codes.BAD_REQUEST, 400, `${targetDb} 不是空目录`, `backup target ${targetDb} is not empty`, { path: targetRoot });
        }
        try {
          await env.backup(targetDb, true);
          // Make the copy itself durable before saying it exists: the file, then its name.
          for (const [p, flags] of [[join(targetDb, 'data.mdb'), 'r+'], [targetDb, 'r']] as const) {
            const fh = await openFile(p, flags);
            try {
              await fh.sync();
            } finally {
              await fh.close();
            }
          }
        } catch (e) {
          throw unavailable(state, `backup to ${targetDb} failed`, e);
        }
      },

      async close() {
        if (state.closed) return;
        state.closed = true;
        try {
          if (!readOnly) await env.flushed;
        } finally {
          await env.close();
          await nonceEnv?.close();
        }
      },
    };
    return store;
  } catch (e) {
    state.closed = true;
    await env.close().catch(() => undefined);
    await nonceEnv?.close().catch(() => undefined);
    if (e instanceof YiqianError) throw e;
    throw openError(root, e);
  }
}

/**
 * The replay-nonce environment (nonce-repository.ts): synchronous commits without fsync, its own
 * write lock. Read-only opens use it only if a writer made it (nothing to check otherwise).
 * Written through the map (MDB_WRITEMAP): a commit then copies no pages, which took a remember()
 * from ≈ 9.3 to ≈ 5.6 µs of CPU with 300,000 nonces held. What WRITEMAP gives up — protection
 * from wild pointer writes by the process, and fsync ordering — matters little to a store that
 * is never fsynced and whose loss costs only a few minutes of replay memory. Every process opens
 * it with this same function, so writers never mix WRITEMAP and non-WRITEMAP (LMDB's rule).
 */
function openNonceEnv(root: string, readOnly: boolean): RootDatabase | undefined {
  const path = join(root, NONCE_ENV_DIR);
  if (readOnly && !existsSync(join(path, 'data.mdb'))) return undefined;
  if (!readOnly) prepareDir(root, path);
  return open({ path, readOnly, maxDbs: 4, pageSize: 4096, encoding: 'json', cache: false, useVersions: false, noSync: true, noMetaSync: true, useWritemap: true });
}

function nonceRepository(env: RootDatabase | undefined, readOnly: boolean): NonceRepository {
  if (!env) return new LmdbNonceRepository(undefined as never, undefined as never, undefined);
  const db = <K extends Key>(name: string) => env.openDB<number, K>({ name, encoding: 'json' });
  return new LmdbNonceRepository(db<[string, string]>('nonces'), db<[number, string, string]>('nonces-by-expiry'), readOnly ? undefined : env);
}

function prepareDir(root: string, path: string): void {
  try {
    mkdirSync(path, { recursive: true });
    if (!statSync(path).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    // Root passes any mode check; this catches the non-root service user and read-only mounts
    // are caught when LMDB opens the file (EROFS → openError).
    accessSync(path, fsc.W_OK | fsc.X_OK);
  } catch (e) {
    throw unwritable(root, e);
  }
}

function unwritable(root: string, e: unknown): YiqianError {
  const reason = reasonOf(e);
  return new YiqianError(
    Codes.DATA_DIR_UNWRITABLE,
    500,
    { zh: `数据目录 ${root} 不可写：${reason}`, en: `data directory ${root} is not writable: ${reason}` },
    { path: root, reason },
    { cause: e },
  );
}

function openError(root: string, e: unknown): YiqianError {
  const code = (e as { code?: unknown }).code;
  const msg = e instanceof Error ? e.message : String(e);
  if (code === 'EACCES' || code === 'EROFS' || code === 'EPERM' || /permission denied|read-only file system/i.test(msg)) {
    return unwritable(root, e);
  }
  const reason = msg.split('\n')[0];
  return new YiqianError(
    Codes.STORE_UNAVAILABLE,
    503,
    { zh: `无法打开 ${root} 中的存储：${reason}`, en: `cannot open the store in ${root}: ${reason}` },
    { dataDir: root, reason },
    { cause: e },
  );
}

function reasonOf(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  switch (code) {
    case 'ENOTDIR':
      return 'ENOTDIR: a component of the path is a regular file, not a directory';
    case 'EEXIST':
      return 'EEXIST: the path exists and is not a directory';
    case 'EACCES':
    case 'EPERM':
      return `${code}: permission denied`;
    case 'EROFS':
      return 'EROFS: read-only file system';
    case 'ENOSPC':
      return 'ENOSPC: no space left on device';
    default:
      return e instanceof Error ? e.message.split('\n')[0] : String(e);
  }
}
