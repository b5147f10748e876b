// Evidence records on LMDB, in two tiers (issue 6 items 1, 2, 7, 9).
//
// Hot tier: DBs in the appliance store (open-store.ts) — the same environment as the Merkle log
// and the statistics counters, so a record, its indexes, its leaf and its counts commit in ONE
// durable transaction (ARCHITECTURE.md §5: the ack leaves only after the fsync).
// Cold tier: a second LMDB environment at config evidence.coldPath (possibly another disk), with
// the same pinned options and the same DB names for records and indexes. Rejections and the
// Merkle tree stay hot: leaves never move, proofs are answered the same for both tiers.
//
//   evidence-records        id (ULID) → EvidenceRecord (JSON)
//   evidence-index          [project, field, value, id] → 1   field ∈ INDEXED_FIELDS
//   evidence-by-project     [project, id] → EvidenceRecordSummary (ids are time-ordered: the receivedAt
//                           index; the value is what a list page shows, so pages read no record —
//                           stores written before it hold 1 there, and those pages read the record)
//   evidence-rejections     id → EvidenceRejection              (hot only)
//   evidence-rejections-by-project [project, id] → 1            (hot only)
//
// receivedAt is the instant in the id (ULID time part, ms), so a time range is an id range.
//
// Moving to cold (moveBatchToCold) copies records to the cold env (durable), THEN removes them
// from hot (durable). Each step is idempotent: a crash between them leaves a record in both
// tiers, the next run copies it again (same bytes) and removes it. Readers look in hot FIRST and
// cold second and merge by id, so during a move a record is never missed (if hot no longer has
// it, the cold copy was durable before the removal began) and never shown twice (dedup by id).
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { asBinary, open, type Database, type RootDatabase, type RootDatabaseOptionsWithPath } from 'lmdb';
import { decodeTime, encodeTime } from 'ulid';
import { Codes, YiqianError, fail } from '../errors.js';
import { recordSummary } from '../evidence/record-summary.js';
import type { EvidenceCounters, EvidenceKind, EvidenceQuery, EvidenceRecord, EvidenceRecordSummary, EvidenceRejection, Page, Tier } from '../evidence/types.js';
import { STORE_PAGE_SIZE, Writer, type StoreState } from './durable.js';
import { environmentFileProblem } from './file-check.js';
import { turnBatch } from './turn-batch.js';
import type { MerkleLeaf } from './merkle-repository.js';

export const EVIDENCE_DB_NAMES = ['evidence-records', 'evidence-index', 'evidence-by-project'] as const;
export const EVIDENCE_HOT_ONLY_DB_NAMES = ['evidence-rejections', 'evidence-rejections-by-project'] as const;

/** Metadata fields with an index (the query filters of EvidenceQuery, patient through its HMAC index). */
export const INDEXED_FIELDS = ['appId', 'departmentId', 'patientIdIndex', 'businessSerial', 'documentType', 'kind'] as const;
type IndexedField = (typeof INDEXED_FIELDS)[number];

export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 500;
const COLD_FORMAT = { version: 1, encoding: 'json', role: 'evidence-cold' } as const;
const COLD_FORMAT_KEY = 'store.format';

const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

/** The DBs of one tier. */
export interface EvidenceTierDbs {
  records: Database<any, any>;
  index: Database<any, any>;
  byProject: Database<any, any>;
}

/** One tier's DBs and the Writer of its environment: what project removal works on (store/evidence-project-removal.ts). */
export interface EvidenceTier {
  dbs: EvidenceTierDbs;
  writer: Writer;
}

/** The hot tier as open-store.ts hands it out: its DBs and the store's Writer (one env with the Merkle log). */
export interface EvidenceHotTier {
  dbs: EvidenceTierDbs & { rejections: Database<any, any>; rejectionsByProject: Database<any, any> };
  writer: Writer;
}

export function evidenceHotTier(dbs: EvidenceHotTier['dbs'], writer: Writer): EvidenceHotTier {
  return { dbs, writer };
}

/** A query as the repository runs it: the patient id already turned into its HMAC index. */
export type EvidenceIndexQuery = Omit<EvidenceQuery, 'patientId'> & { patientIdIndex?: string };

/** What the caller gives append(): everything but the leaf position (assigned in the transaction) and the tier. */
export type EvidenceRecordFields = Omit<EvidenceRecord, 'leafIndex' | 'leafHash' | 'tier'>;

export interface EvidenceRepository {
  /**
   * Stores a record, its indexes, its Merkle leaf (`leafData`) and its counts in ONE durable
   * transaction of the hot env (shared with the other appends of the same event-loop
   * iteration); resolves (with leafIndex / leafHash filled in) only once durable.
   */
  append(fields: EvidenceRecordFields, leafData: Buffer): Promise<EvidenceRecord>;
  /**
   * Stores several records (each as append() would) and rejections (each as rejection() would)
   * in ONE durable transaction, leaves in the given order; resolves with the records once durable.
   */
  appendBatch(records: readonly { fields: EvidenceRecordFields; leafData: Buffer }[], rejections: readonly EvidenceRejection[]): Promise<EvidenceRecord[]>;
  /** Stores a rejection and counts it, in one durable transaction. */
  rejection(r: EvidenceRejection): Promise<EvidenceRejection>;
  /** From either tier (hot first). */
  get(id: string): Promise<EvidenceRecord | undefined>;
  /** Matching records of q.project in id (= receipt) order across both tiers, each once. */
  query(q: EvidenceIndexQuery, page?: { limit?: number; cursor?: string }): Promise<Page<EvidenceRecord>>;
  /** The same page as query() (same items, same cursor), as summaries (recordSummary) read from the by-project index. */
  summaries(q: EvidenceIndexQuery, page?: { limit?: number; cursor?: string }): Promise<Page<EvidenceRecordSummary>>;
  /** Rejections of a project, in id order. */
  rejections(project: string, page?: { limit?: number; cursor?: string }): Promise<Page<EvidenceRejection>>;
  /**
   * Moves up to `limit` of the oldest hot records received before `cutoffIso` to the cold env:
   * copy (durable), then remove from hot (durable). Idempotent and resumable; resolves with how
   * many it moved (fewer than `limit`: none left). `hooks.afterCopy` runs between the two steps
   * (tests simulate a crash there).
   */
  moveBatchToCold(cutoffIso: string, limit: number, hooks?: { afterCopy?: (ids: string[]) => void | Promise<void> }): Promise<number>;
  /** Records per tier (hot, cold), counted by scanning: for tests and operators, not statistics. */
  countByTier(): Promise<Record<Tier, number>>;
  /**
   * The cold tier as this repository opened it, for removing a deleted project's records in this
   * process (tieredProjectRemover in store/evidence-project-removal.ts): lmdb.h Caveats, "Do not
   * have open an LMDB database twice in the same process at the same time", so the served
   * appliance removes through this one. Its writes fail (STORE_UNAVAILABLE) once closed.
   */
  readonly coldTier: EvidenceTier;
  /** Closes the cold env (the hot one belongs to the store). */
  close(): Promise<void>;
}

export interface EvidenceRepositoryDeps {
  hot: EvidenceHotTier;
  /** The store's Merkle log: appendManyInTransaction runs inside the records' transaction. */
  merkle: { appendManyInTransaction(leaves: readonly Uint8Array[]): MerkleLeaf[] };
  /** Statistics counters (store/evidence-counters.ts), called inside the same transaction. */
  counters: Pick<EvidenceCounters, 'recordsStoredInTxn' | 'rejectionInTxn'>;
  /** Directory of the cold LMDB environment (created if missing). */
  coldPath: string;
  /** Open the cold env as after a power loss (crash tests), as OpenStoreOptions.safeRestore. */
  safeRestore?: boolean;
}

/** A record checked for append: a shallow copy of its fields and its JSON (checkedFields). */
interface Checked {
  fields: EvidenceRecordFields;
  json: string;
}

interface PendingAppend {
  checked: Checked;
  leafData: Buffer;
  resolve: (r: EvidenceRecord) => void;
  reject: (e: unknown) => void;
}

/**
 * One buffer for the JSON of each record stored inside a write transaction. There a put runs at
 * once (lmdb-js writes in a transaction callback synchronously; mdb_put copies the value into the
 * page), so the bytes can be overwritten by the next record: no 7 KB Buffer is made and collected
 * per record (3 instead of 8 µs). Only for puts inside a transaction callback.
 */
let scratch = Buffer.allocUnsafe(64 * 1024);
/** UTF-8 of the JSON object `json` with `members` (",…" text) added at its end, in the scratch buffer. */
function jsonInScratch(json: string, members: string): Buffer {
  if ((json.length + members.length) * 3 > scratch.length) scratch = Buffer.allocUnsafe((json.length + members.length) * 3);
  // Written in two parts, over the closing brace: no concatenated copy of a 7 KB string to flatten.
  const at = scratch.write(json) - 1;
  return scratch.subarray(0, at + scratch.write(`${members}}`, at));
}

/** The smallest id of a millisecond: ids of records received at or after `ms` sort at or after it. */
export function idFloor(ms: number): string {
  return `${encodeTime(ms, 10)}0000000000000000`;
}

/** receivedAt of an id (the ULID's time part) as ISO 8601 UTC with ms. */
export function receivedAtOf(id: string): string {
  return new Date(decodeTime(id)).toISOString();
}

function isoMs(field: string, v: string): number {
  const ms = Date.parse(v);
  if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}T/.test(v) || Number.isNaN(ms)) {
    fail(EvidenceStoreCodes.EVIDENCE_QUERY_INVALID, 400, `${field} 必须是 ISO 8601 时间`, `${field} must be an ISO 8601 time`, { field });
  }
  // ULID time is 48 bits of ms since 1970.
  return Math.min(Math.max(ms, 0), 2 ** 48 - 1);
}

export const EvidenceStoreCodes = {
  /** A filter, limit or cursor that cannot be used (400). */
  EVIDENCE_QUERY_INVALID: 'EVIDENCE_QUERY_INVALID',
} as const;

/** Opens the cold env with the pinned options of open-store.ts (lmdb-js 3.5; ARCHITECTURE.md §4). */
function openColdEnv(path: string, safeRestore: boolean): RootDatabase {
  try {
    mkdirSync(path, { recursive: true });
  } catch (e) {
    throw new YiqianError(Codes.DATA_DIR_UNWRITABLE, 500, { zh: `冷存储目录 ${path} 不可写`, en: `cold evidence directory ${path} is not writable` }, { path }, { cause: e });
  }
  const problem = existsSync(join(path, 'data.mdb')) ? environmentFileProblem(join(path, 'data.mdb')) : undefined;
  if (problem !== undefined) {
    fail(Codes.STORE_UNAVAILABLE, 503, `无法打开冷存储：${problem}`, `cannot open the cold evidence store in ${path}: ${problem}`, { path, reason: problem });
  }
  // Same as open-store.ts, option by option (keep them in step).
  const options: RootDatabaseOptionsWithPath & { safeRestore?: boolean } = {
    path,
    readOnly: false,
    maxDbs: 8,
    pageSize: STORE_PAGE_SIZE,
    encoding: 'json',
    compression: false,
    cache: false,
    useVersions: false,
    eventTurnBatching: true,
    commitDelay: 0,
    strictAsyncOrder: true,
    overlappingSync: true,
    noSync: false,
    noMetaSync: false,
    useWritemap: false,
    safeRestore,
  };
  try {
    return open(options);
  } catch (e) {
    throw new YiqianError(Codes.STORE_UNAVAILABLE, 503, { zh: '无法打开冷存储', en: `cannot open the cold evidence store in ${path}: ${(e as Error).message?.split('\n')[0]}` }, { path }, { cause: e });
  }
}

interface Tiered {
  tier: Tier;
  dbs: EvidenceTierDbs;
  writer: Writer;
}

export async function openEvidenceRepository(deps: EvidenceRepositoryDeps): Promise<EvidenceRepository> {
  const coldPath = resolve(deps.coldPath);
  const env = openColdEnv(coldPath, deps.safeRestore === true);
  const state: StoreState = { dataDir: coldPath, readOnly: false, closed: false };
  let cold: Tiered;
  try {
    const meta = env.openDB({ name: 'meta', encoding: 'json' });
    const [records, index, byProject] = EVIDENCE_DB_NAMES.map((name) => env.openDB({ name, encoding: 'json' }));
    const format = meta.get(COLD_FORMAT_KEY) as { version?: number; role?: string } | undefined;
    if (format === undefined) {
      await meta.put(COLD_FORMAT_KEY, COLD_FORMAT);
      await env.flushed;
    } else if (format.version !== COLD_FORMAT.version || format.role !== COLD_FORMAT.role) {
      throw new Error(`cold store format ${JSON.stringify(format)} is not supported by this build`);
    }
    cold = { tier: 'cold', dbs: { records, index, byProject }, writer: new Writer(env, state) };
  } catch (e) {
    state.closed = true;
    await env.close().catch(() => undefined);
    if (e instanceof YiqianError) throw e;
    throw new YiqianError(Codes.STORE_UNAVAILABLE, 503, { zh: '无法打开冷存储', en: `cannot open the cold evidence store: ${(e as Error).message}` }, { path: coldPath }, { cause: e });
  }
  const hot: Tiered = { tier: 'hot', dbs: deps.hot.dbs, writer: deps.hot.writer };
  const rejections = deps.hot.dbs.rejections as Database<EvidenceRejection, string>;
  const rejectionsByProject = deps.hot.dbs.rejectionsByProject;

  function putRecord(t: Tiered, rec: EvidenceRecord, json?: Buffer): void {
    void t.dbs.records.put(rec.id, json ? asBinary(json) : rec);
    void t.dbs.byProject.put([rec.project, rec.id], recordSummary(rec));
    for (const f of INDEXED_FIELDS) {
      const v = rec[f];
      if (typeof v === 'string' && v.length > 0) void t.dbs.index.put([rec.project, f, v, rec.id], 1);
    }
  }

  function removeRecord(t: Tiered, rec: EvidenceRecord): void {
    void t.dbs.records.remove(rec.id);
    void t.dbs.byProject.remove([rec.project, rec.id]);
    for (const f of INDEXED_FIELDS) {
      const v = rec[f];
      if (typeof v === 'string' && v.length > 0) void t.dbs.index.remove([rec.project, f, v, rec.id]);
    }
  }

  /** The index to walk for a query: the first given of the narrow fields, else the project's. */
  function plan(q: EvidenceIndexQuery): { field?: IndexedField; value?: string } {
    for (const f of ['patientIdIndex', 'businessSerial', 'departmentId', 'documentType', 'appId', 'kind'] as const) {
      const v = q[f];
      if (v !== undefined) return { field: f, value: v };
    }
    return {};
  }

  function matcher(q: EvidenceIndexQuery): (r: EvidenceRecord) => boolean {
    return (r) =>
      r.project === q.project &&
      (q.appId === undefined || r.appId === q.appId) &&
      (q.departmentId === undefined || r.departmentId === q.departmentId) &&
      (q.patientIdIndex === undefined || r.patientIdIndex === q.patientIdIndex) &&
      (q.businessSerial === undefined || r.businessSerial === q.businessSerial) &&
      (q.documentType === undefined || r.documentType === q.documentType) &&
      (q.kind === undefined || r.kind === q.kind);
  }

  /** The index plan() picks for q and its keys [...prefix, id] from the lower id (or the prefix itself) to the upper id (or just past the prefix). */
  function keyRange(t: Tiered, q: EvidenceIndexQuery, after: string | undefined, fromId: string | undefined, toId: string | undefined) {
    const p = plan(q);
    const prefix: string[] = p.field ? [q.project, p.field, p.value!] : [q.project];
    const lower = after !== undefined && (fromId === undefined || after >= fromId) ? after : fromId;
    return {
      db: p.field ? t.dbs.index : t.dbs.byProject,
      start: lower !== undefined ? [...prefix, lower] : prefix,
      end: toId !== undefined ? [...prefix, toId] : [...prefix, '\uffff'],
    };
  }

  /** Up to `want` matching records of one tier with id in (after, before), in id order. */
  function scanTier(t: Tiered, q: EvidenceIndexQuery, after: string | undefined, fromId: string | undefined, toId: string | undefined, want: number): EvidenceRecord[] {
    const match = matcher(q);
    const { db, start, end } = keyRange(t, q, after, fromId, toId);
    return t.writer.read(() => {
      const out: EvidenceRecord[] = [];
      for (const key of db.getKeys({ start, end }) as Iterable<unknown[]>) {
        const id = key[key.length - 1] as string;
        if (after !== undefined && id <= after) continue;
        const rec = t.dbs.records.get(id) as EvidenceRecord | undefined;
        if (!rec || !match(rec)) continue;
        out.push(rec);
        if (out.length >= want) break;
      }
      return out;
    });
  }

  /** True when the index plan() walks answers every filter of q (besides project and time): no record needs reading to match. */
  function indexOnly(q: EvidenceIndexQuery): boolean {
    return ['patientIdIndex', 'businessSerial', 'departmentId', 'documentType', 'appId', 'kind'].filter((f) => q[f as IndexedField] !== undefined).length <= 1;
  }

  /** Up to `want` ids of one tier from the index keys alone (for indexOnly queries), in id order. */
  function scanIds(t: Tiered, q: EvidenceIndexQuery, after: string | undefined, fromId: string | undefined, toId: string | undefined, want: number): string[] {
    const { db, start, end } = keyRange(t, q, after, fromId, toId);
    return t.writer.read(() => {
      const out: string[] = [];
      for (const key of db.getKeys({ start, end, limit: want + 1 }) as Iterable<unknown[]>) {
        const id = key[key.length - 1] as string;
        if (after !== undefined && id <= after) continue;
        out.push(id);
        if (out.length >= want) break;
      }
      return out;
    });
  }

  function checkLimit(limit: unknown): number {
    const l = limit ?? DEFAULT_PAGE;
    if (typeof l !== 'number' || !Number.isInteger(l) || l < 1 || l > MAX_PAGE) {
      fail(EvidenceStoreCodes.EVIDENCE_QUERY_INVALID, 400, `limit 必须在 1 到 ${MAX_PAGE} 之间`, `limit must be 1–${MAX_PAGE}`, { field: 'limit' });
    }
    return l;
  }

  function getFrom(t: Tiered, id: string): EvidenceRecord | undefined {
    return t.writer.read(() => t.dbs.records.get(id) as EvidenceRecord | undefined);
  }

  /**
   * One page of q (query and summaries): `one` reads an item of a tier by id (undefined: gone),
   * `fromRecord` makes one from a record the several-filter path has read anyway.
   */
  function pageOf<T extends { id: string; project: string }>(q: EvidenceIndexQuery, page: { limit?: number; cursor?: string }, one: (t: Tiered, id: string) => T | undefined, fromRecord: (r: EvidenceRecord) => T): Page<T> {
    if (typeof q?.project !== 'string' || q.project.length === 0) fail(EvidenceStoreCodes.EVIDENCE_QUERY_INVALID, 400, '缺少项目', 'a query needs its project', { field: 'project' });
    const kinds: EvidenceKind[] = ['signature', 'digest', 'file'];
    if (q.kind !== undefined && !kinds.includes(q.kind)) fail(EvidenceStoreCodes.EVIDENCE_QUERY_INVALID, 400, 'kind 必须是 signature、digest 或 file', 'kind must be signature, digest or file', { field: 'kind' });
    for (const f of ['appId', 'departmentId', 'patientIdIndex', 'businessSerial', 'documentType'] as const) {
      const v = q[f];
      if (v !== undefined && (typeof v !== 'string' || v.length === 0 || v.length > 128)) {
        fail(EvidenceStoreCodes.EVIDENCE_QUERY_INVALID, 400, `${f} 必须是 1 到 128 个字符`, `${f} must be 1–128 characters`, { field: f });
      }
    }
    const limit = checkLimit(page.limit);
    const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor);
    const fromId = q.from === undefined ? undefined : idFloor(isoMs('from', q.from));
    const toId = q.to === undefined ? undefined : idFloor(isoMs('to', q.to));
    if (fromId !== undefined && toId !== undefined && toId <= fromId) return { items: [] };
    if (indexOnly(q)) {
      // Ids from the index keys of both tiers (hot first, see the header), merged; then only the
      // page's items are read — a record is ~6 KB of JSON, its summary ~300 bytes, its index key a few dozen.
      const h = scanIds(hot, q, after, fromId, toId, limit + 1);
      const c = new Set(scanIds(cold, q, after, fromId, toId, limit + 1));
      const ids = [...new Set([...h, ...c])].sort();
      const pageIds = ids.slice(0, limit);
      const items: T[] = [];
      for (const id of pageIds) {
        // The cold copy wins (the hot one is on its way out); either may have gone meanwhile.
        const rec = c.has(id) ? (one(cold, id) ?? one(hot, id)) : (one(hot, id) ?? one(cold, id));
        if (rec && rec.project === q.project) items.push(rec);
      }
      const result: Page<T> = { items };
      if (ids.length > limit) result.next = encodeCursor(pageIds[pageIds.length - 1]);
      return result;
    }
    // Several filters: records are read to match the others. Each tier's first limit+1 matches, merged by id.
    const h = scanTier(hot, q, after, fromId, toId, limit + 1);
    const c = scanTier(cold, q, after, fromId, toId, limit + 1);
    const merged = new Map<string, EvidenceRecord>();
    for (const r of h) merged.set(r.id, r);
    for (const r of c) merged.set(r.id, r); // the cold copy wins: the hot one is on its way out
    const ids = [...merged.keys()].sort();
    const items = ids.slice(0, limit).map((id) => fromRecord(merged.get(id)!));
    const result: Page<T> = { items };
    if (ids.length > limit) result.next = encodeCursor(items[items.length - 1].id);
    return result;
  }

  /** A record's summary from the by-project index; a store written before summaries were kept there has 1: read the record. */
  function summaryFrom(t: Tiered, project: string, id: string): EvidenceRecordSummary | undefined {
    return t.writer.read(() => {
      const v = t.dbs.byProject.get([project, id]) as EvidenceRecordSummary | 1 | undefined;
      if (v === undefined) return undefined;
      if (typeof v === 'object') return v;
      const rec = t.dbs.records.get(id) as EvidenceRecord | undefined;
      return rec && recordSummary(rec);
    });
  }

  /**
   * A record's fields, checked and serialised at once: nothing the caller changes later alters
   * what is stored. `fields` is a shallow copy (its top-level strings are what the indexes and
   * counters read); `json` is the record as stored, without the three members the transaction adds.
   */
  function checkedFields(fields: EvidenceRecordFields, leafData: Buffer): Checked {
    if (typeof fields !== 'object' || fields === null || typeof fields.id !== 'string' || !ULID.test(fields.id)) {
      fail(Codes.BAD_REQUEST, 400, '存证记录标识无效', 'an evidence record id must be a ULID');
    }
    if (typeof fields.project !== 'string' || fields.project.length === 0) fail(Codes.BAD_REQUEST, 400, '缺少项目', 'an evidence record needs its project');
    if (!(leafData instanceof Uint8Array)) fail(Codes.BAD_REQUEST, 400, '叶子数据必须是字节串', 'leaf data must be bytes');
    if (getFrom(cold, fields.id)) fail(Codes.INTERNAL, 500, '存证记录标识重复', `evidence record id ${fields.id} is taken`);
    return { fields: { ...fields }, json: JSON.stringify(fields) };
  }

  /** Inside the hot env's write transaction: the records, their indexes, their leaves (in order) and their counts. */
  function storeInTxn(checked: readonly Checked[], leafData: readonly Buffer[]): EvidenceRecord[] {
    const ids = new Set<string>();
    for (const { fields } of checked) {
      if (ids.has(fields.id) || hot.dbs.records.doesExist(fields.id)) fail(Codes.INTERNAL, 500, '存证记录标识重复', `evidence record id ${fields.id} is taken`);
      ids.add(fields.id);
    }
    const leaves = deps.merkle.appendManyInTransaction(leafData);
    const out = checked.map(({ fields, json }, i) => {
      const leaf = leaves[i];
      const leafHash = leaf.leafHash.toString('hex');
      const rec: EvidenceRecord = { ...fields, leafIndex: leaf.index, leafHash, tier: 'hot' };
      // The stored JSON is the caller's, serialised once, with the members added here appended
      // (a later duplicate member wins in JSON.parse, as in the spread above).
      putRecord(hot, rec, jsonInScratch(json, `,"leafIndex":${leaf.index},"leafHash":"${leafHash}","tier":"hot"`));
      return rec;
    });
    if (out.length > 0) deps.counters.recordsStoredInTxn(out);
    return out;
  }

  /**
   * The appends of one event-loop iteration go as ONE durable transaction: one transaction
   * callback, counters summed per key (recordsStoredInTxn), one fsync. If that transaction fails
   * (say one id is taken), each is retried alone, so one bad record fails only itself.
   */
  const queueAppend = turnBatch<PendingAppend>((group) => {
    const alone = (p: PendingAppend): void => {
      hot.writer.durable(() => storeInTxn([p.checked], [p.leafData])[0]).then(p.resolve, p.reject);
    };
    if (group.length === 1) return alone(group[0]);
    hot.writer.durable(() => storeInTxn(group.map((p) => p.checked), group.map((p) => p.leafData))).then(
      (recs) => group.forEach((p, i) => p.resolve(recs[i])),
      () => group.forEach(alone),
    );
  });

  function checkedRejection(r: EvidenceRejection): EvidenceRejection {
    if (typeof r !== 'object' || r === null || typeof r.id !== 'string' || !ULID.test(r.id)) fail(Codes.BAD_REQUEST, 400, '拒收记录标识无效', 'a rejection id must be a ULID');
    return JSON.parse(JSON.stringify(r)) as EvidenceRejection;
  }

  function rejectionInTxn(rec: EvidenceRejection): void {
    void rejections.put(rec.id, rec);
    void rejectionsByProject.put([rec.project, rec.id], 1);
    deps.counters.rejectionInTxn(rec);
  }

  const repo: EvidenceRepository = {
    coldTier: { dbs: cold.dbs, writer: cold.writer },

    async append(fields, leafData) {
      const checked = checkedFields(fields, leafData);
      return new Promise<EvidenceRecord>((resolve, reject) => {
        queueAppend({ checked, leafData, resolve, reject });
      });
    },

    async appendBatch(records, rejectionList) {
      if (!Array.isArray(records) || !Array.isArray(rejectionList)) fail(Codes.BAD_REQUEST, 400, '批量记录必须是数组', 'records and rejections must be arrays');
      const checked = records.map((r) => checkedFields(r.fields, r.leafData));
      const rejs = rejectionList.map(checkedRejection);
      if (checked.length === 0 && rejs.length === 0) return [];
      return hot.writer.durable(() => {
        const out = storeInTxn(checked, records.map((r) => r.leafData));
        for (const r of rejs) rejectionInTxn(r);
        return out;
      });
    },

    async rejection(r) {
      const rec = checkedRejection(r);
      return hot.writer.durable(() => {
        rejectionInTxn(rec);
        return rec;
      });
    },

    async get(id) {
      if (typeof id !== 'string' || !ULID.test(id)) return undefined;
      // Hot first: a record moved meanwhile was durable in cold before it left hot.
      return getFrom(hot, id) ?? getFrom(cold, id);
    },

    async query(q, page = {}) {
      return pageOf(q, page, getFrom, (r) => r);
    },

    async summaries(q, page = {}) {
      return pageOf(q, page, (t, id) => summaryFrom(t, q.project, id), recordSummary);
    },

    async rejections(project, page = {}) {
      if (typeof project !== 'string' || project.length === 0) fail(EvidenceStoreCodes.EVIDENCE_QUERY_INVALID, 400, '缺少项目', 'a query needs its project', { field: 'project' });
      const limit = checkLimit(page.limit);
      const after = page.cursor === undefined ? undefined : decodeCursor(page.cursor);
      return hot.writer.read(() => {
        const items: EvidenceRejection[] = [];
        let more = false;
        for (const key of rejectionsByProject.getKeys({ start: after ? [project, after] : [project], end: [project, '\uffff'] }) as Iterable<unknown[]>) {
          const id = key[1] as string;
          if (after !== undefined && id <= after) continue;
          const r = rejections.get(id);
          if (!r) continue;
          if (items.length === limit) {
            more = true;
            break;
          }
          items.push(r);
        }
        const result: Page<EvidenceRejection> = { items };
        if (more) result.next = encodeCursor(items[items.length - 1].id);
        return result;
      });
    },

    async moveBatchToCold(cutoffIso, limit, hooks = {}) {
      const cutoff = idFloor(isoMs('cutoff', cutoffIso));
      if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) fail(Codes.BAD_REQUEST, 400, '批量大小必须在 1 到 100000 之间', 'batch size must be 1–100000');
      // The oldest hot records (ids are time-ordered), all received before the cutoff.
      const batch = hot.writer.read(() => {
        const out: EvidenceRecord[] = [];
        for (const { key, value } of hot.dbs.records.getRange({ end: cutoff }) as Iterable<{ key: string; value: EvidenceRecord }>) {
          if (key >= cutoff) break;
          out.push(value);
          if (out.length >= limit) break;
        }
        return out;
      });
      if (batch.length === 0) return 0;
      // Step 1: the cold copies, durable. Re-running after a crash writes the same bytes again.
      await cold.writer.durable(() => {
        for (const rec of batch) putRecord(cold, { ...rec, tier: 'cold' });
      });
      const ids = batch.map((r) => r.id);
      await hooks.afterCopy?.(ids);
      // Step 2: out of hot, durable — only what the cold env really holds now.
      await hot.writer.durable(() => {
        for (const rec of batch) {
          const copy = cold.dbs.records.get(rec.id) as EvidenceRecord | undefined;
          if (!copy || copy.leafHash !== rec.leafHash) {
            throw new YiqianError(Codes.INTEGRITY_CHECK_FAILED, 500, { zh: '冷存储副本缺失或不一致，未从热存储删除', en: `cold copy of ${rec.id} is missing or differs; not removed from hot` }, { id: rec.id });
          }
          const current = hot.dbs.records.get(rec.id) as EvidenceRecord | undefined;
          if (current) removeRecord(hot, current);
        }
      });
      return ids.length;
    },

    async countByTier() {
      const count = (t: Tiered): number => t.writer.read(() => t.dbs.records.getCount());
      return { hot: count(hot), cold: count(cold) };
    },

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
  return repo;
}

function encodeCursor(id: string): string {
  return Buffer.from(id, 'latin1').toString('base64url');
}

function decodeCursor(cursor: string): string {
  const id = typeof cursor === 'string' && cursor.length <= 64 ? Buffer.from(cursor, 'base64url').toString('latin1') : '';
  if (!ULID.test(id)) fail(EvidenceStoreCodes.EVIDENCE_QUERY_INVALID, 400, '分页游标无效', 'invalid cursor', { field: 'cursor' });
  return id;
}
