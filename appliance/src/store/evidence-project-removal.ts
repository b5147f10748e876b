// Removing a deleted project's evidence from one tier (issue 6 item 5), against the DB layout of
// store/evidence-repository.ts: the record, its 'evidence-by-project' key and its index keys, and
// (hot tier) the project's rejections. In batches of durable transactions, so a project of
// millions of records never holds one huge write transaction and ingestion of other projects
// keeps going in between; idempotent, so a deletion interrupted by a crash is finished by running
// it again (evidence/projects.ts marks the project first, so nothing new arrives meanwhile).
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { open, type Database, type RootDatabaseOptionsWithPath } from 'lmdb';
import type { ProjectDataRemover } from '../evidence/projects.js';
import type { EvidenceRecord } from '../evidence/types.js';
import { STORE_PAGE_SIZE, Writer, type StoreState } from './durable.js';
import { EVIDENCE_DB_NAMES, INDEXED_FIELDS, type EvidenceTierDbs } from './evidence-repository.js';
import { environmentFileProblem } from './file-check.js';
import { Codes, fail } from '../errors.js';

export interface RemovableTier {
  dbs: EvidenceTierDbs & { rejections?: Database<any, any>; rejectionsByProject?: Database<any, any> };
  writer: Writer;
}

export interface TierRemoval {
  records: number;
  rejections: number;
  /** Blobs (originals, files) the removed records referred to: the caller decides whether another record still needs one. */
  blobIds: string[];
}

const BATCH = 500;

export async function removeProjectFromTier(tier: RemovableTier, project: string, batch = BATCH): Promise<TierRemoval> {
  const out: TierRemoval = { records: 0, rejections: 0, blobIds: [] };
  const blobs = new Set<string>();
  const { records, byProject, index, rejections, rejectionsByProject } = tier.dbs;
  for (;;) {
    const n = await tier.writer.durable(() => {
      let done = 0;
      const keys = [...(byProject.getKeys({ start: [project], end: [project, '\uffff'], limit: batch }) as Iterable<unknown[]>)];
      for (const key of keys) {
        if (!Array.isArray(key) || key[0] !== project) break;
        const id = String(key[1]);
        const rec = records.get(id) as EvidenceRecord | undefined;
        if (rec && rec.project === project) {
          void records.remove(id);
          for (const f of INDEXED_FIELDS) {
            const v = rec[f];
            if (typeof v === 'string' && v.length > 0) void index.remove([project, f, v, id]);
          }
          if (rec.original?.blobId) blobs.add(rec.original.blobId);
          out.records++;
        }
        void byProject.remove(key);
        done++;
      }
      return done;
    });
    if (n < batch) break;
  }
  if (rejections && rejectionsByProject) {
    for (;;) {
      const n = await tier.writer.durable(() => {
        const keys = [...(rejectionsByProject.getKeys({ start: [project], end: [project, '\uffff'], limit: batch }) as Iterable<unknown[]>)];
        for (const key of keys) {
          void rejections.remove(String(key[1]));
          void rejectionsByProject.remove(key);
        }
        out.rejections += keys.length;
        return keys.length;
      });
      if (n < batch) break;
    }
  }
  out.blobIds = [...blobs].sort();
  return out;
}

/**
 * Whether any record of the tier still refers to the blob (blobs are content-addressed, so two
 * records — of any project — can share one). A scan of the tier's records: project deletion is
 * rare, and a wrongly removed blob would destroy another project's evidence.
 */
export function blobStillUsedIn(tier: RemovableTier, blobIds: ReadonlySet<string>): Set<string> {
  return tier.writer.read(() => {
    const used = new Set<string>();
    for (const { value } of tier.dbs.records.getRange() as Iterable<{ value: EvidenceRecord }>) {
      const b = value?.original?.blobId;
      if (b && blobIds.has(b)) used.add(b);
      if (used.size === blobIds.size) break;
    }
    return used;
  });
}

/**
 * A project's data across tiers (hot and cold) and its blobs: records and rejections first, then
 * each blob that no remaining record of any tier refers to. Blob removal comes last, so a crash
 * leaves at worst an unreferenced blob, never a record without its blob. tiers[0] is the hot tier.
 */
export function tieredProjectRemover(tiers: RemovableTier[], blobs?: { remove(blobId: string): Promise<void> }): ProjectDataRemover {
  return {
    async removeProject(project) {
      let records = 0;
      const candidates = new Set<string>();
      // Cold, hot, cold again: a record that a running hot → cold migration copies while the hot
      // tier is being emptied is caught by the second cold pass.
      const passes = tiers.length > 1 ? [...tiers.slice(1), tiers[0], ...tiers.slice(1)] : tiers;
      for (const tier of passes) {
        const r = await removeProjectFromTier(tier, project);
        records += r.records;
        r.blobIds.forEach((b) => candidates.add(b));
      }
      let removedBlobs = 0;
      if (blobs && candidates.size > 0) {
        const used = new Set<string>();
        for (const tier of tiers) blobStillUsedIn(tier, candidates).forEach((b) => used.add(b));
        for (const b of candidates) {
          if (used.has(b)) continue;
          await blobs.remove(b);
          removedBlobs++;
        }
      }
      return { records, blobs: removedBlobs };
    },
  };
}

/**
 * The cold tier's DBs for a process that does not run the records repository (the CLI's
 * `evidence project delete`, beside a running server: LMDB serves several processes). Opened
 * with the options of evidence-repository.ts openColdEnv (keep them in step); undefined when
 * no cold environment was ever made (then no record was ever moved there).
 */
export function openColdTierForRemoval(coldPath: string): (RemovableTier & { close(): Promise<void> }) | undefined {
  const path = resolve(coldPath);
  if (!existsSync(join(path, 'data.mdb'))) return undefined;
  const problem = environmentFileProblem(join(path, 'data.mdb'));
  if (problem !== undefined) fail(Codes.STORE_UNAVAILABLE, 503, `无法打开冷存储：${problem}`, `cannot open the cold evidence store in ${path}: ${problem}`, { path, reason: problem });
  const options: RootDatabaseOptionsWithPath = {
    path, readOnly: false, maxDbs: 8, pageSize: STORE_PAGE_SIZE, encoding: 'json', compression: false, cache: false, useVersions: false,
    eventTurnBatching: true, commitDelay: 0, strictAsyncOrder: true, overlappingSync: true, noSync: false, noMetaSync: false, useWritemap: false,
  };
  const env = open(options);
  const state: StoreState = { dataDir: path, readOnly: false, closed: false };
  const [records, index, byProject] = EVIDENCE_DB_NAMES.map((name) => env.openDB({ name, encoding: 'json' }));
  return {
    dbs: { records, index, byProject },
    writer: new Writer(env, state),
    async close() {
      if (state.closed) return;
      state.closed = true;
      try {
        await env.flushed;
      } finally {
        await env.close();
      }
    },
  };
}
