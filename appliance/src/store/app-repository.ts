// Apps (hospital systems that call the API) on LMDB: db 'apps' keyed by id (ULID, so new
// apps append at the right end), db 'apps-by-name' keyed [project, name] → id, which makes
// "one name per project" a check inside the write transaction rather than a race.
import type { Database } from 'lmdb';
import type { AuditEntry } from '../audit/audit-log.js';
import { sealer } from '../audit/chain.js';
import { Codes, YiqianError, fail } from '../errors.js';
import type { LmdbAuditStorage } from './audit-storage.js';
import type { Writer } from './durable.js';
import { nowIso } from './ids.js';

export type AppAlgorithm = 'sm2' | 'ecdsa-p256';
export type AppStatus = 'active' | 'frozen';

export interface AppRecord {
  /** ULID */
  id: string;
  name: string;
  project: string;
  algorithm: AppAlgorithm;
  /** base64 of the SubjectPublicKeyInfo DER */
  publicKeyInfo: string;
  status: AppStatus;
  /** ISO 8601 UTC with milliseconds */
  createdAt: string;
  updatedAt: string;
  /** What the app may do beyond its own project's API, e.g. 'evidence-admin' (APP_PERMISSIONS); absent = none. */
  permissions?: string[];
}

/** Permissions an app can be given (`yiqian app permit`). */
export const APP_PERMISSIONS = ['evidence-admin'] as const;
export type AppPermission = (typeof APP_PERMISSIONS)[number];

export interface AppFilter {
  project?: string;
  status?: AppStatus;
}

/** Appends `audit` to the audit log in the same transaction as the change. */
export interface AuditedWrite {
  audit?: AuditEntry;
}

/** Defined next to the repository that raises it (errors.ts: capability codes live with their code). */
export const APP_EXISTS = 'APP_EXISTS';

export interface AppRepository {
  /** Stores a new app; APP_EXISTS (409) when its id, or its name within its project, is taken. */
  create(record: AppRecord, opts?: AuditedWrite): Promise<AppRecord>;
  get(id: string): Promise<AppRecord | undefined>;
  /** In creation (id) order. */
  list(filter?: AppFilter): Promise<AppRecord[]>;
  /** The updated record, or undefined if there is no such app (then nothing is written, not even the audit entry). */
  setStatus(id: string, status: AppStatus, opts?: AuditedWrite): Promise<AppRecord | undefined>;
  /** The deleted record, or undefined if there was none (then nothing is written). */
  delete(id: string, opts?: AuditedWrite): Promise<AppRecord | undefined>;
  /**
   * Sets the app's permissions to change(current) inside the write transaction (kept sorted, no
   * duplicates; empty removes the field); undefined if there is no such app (nothing written).
   */
  setPermissions(id: string, change: (current: string[]) => string[], opts?: AuditedWrite): Promise<AppRecord | undefined>;
}

type NameKey = [string, string];

/** Longer strings cannot be keys we wrote (ids are 26 chars, names ≤ 64): answer "none". */
const MAX_LOOKUP = 256;

export class LmdbAppRepository implements AppRepository {
  constructor(
    private readonly apps: Database<AppRecord, string>,
    private readonly byName: Database<string, NameKey>,
    private readonly audit: LmdbAuditStorage,
    private readonly writer: Writer,
  ) {}

  async create(record: AppRecord, opts: AuditedWrite = {}): Promise<AppRecord> {
    const rec = copy(record);
    const seal = opts.audit && sealer(opts.audit);
    const outcome = await this.writer.durable(() => {
      if (this.apps.doesExist(rec.id)) return 'id-taken' as const;
      const nameKey: NameKey = [rec.project, rec.name];
      if (this.byName.doesExist(nameKey)) return 'name-taken' as const;
      void this.apps.put(rec.id, rec);
      void this.byName.put(nameKey, rec.id);
      if (seal) this.audit.appendInTransaction(seal);
      return 'created' as const;
    });
    if (outcome !== 'created') {
      throw new YiqianError(
        APP_EXISTS,
        409,
        outcome === 'name-taken'
          ? { zh: `项目 ${rec.project} 中已有名为「${rec.name}」的应用`, en: `project ${rec.project} already has an app named "${rec.name}"` }
          : { zh: `应用 ${rec.id} 已存在`, en: `app ${rec.id} already exists` },
        { project: rec.project, name: rec.name },
      );
    }
    return rec;
  }

  async get(id: string): Promise<AppRecord | undefined> {
    if (!lookupable(id)) return undefined;
    return this.writer.read(() => this.apps.get(id));
  }

  async list(filter: AppFilter = {}): Promise<AppRecord[]> {
    return this.writer.read(() => {
      let all: AppRecord[];
      if (filter.project !== undefined) {
        if (!lookupable(filter.project)) return [];
        const ids: string[] = [];
        for (const { key, value } of this.byName.getRange({ start: [filter.project] })) {
          if (key[0] !== filter.project) break;
          ids.push(value);
        }
        all = ids
          .sort()
          .map((id) => this.apps.get(id))
          .filter((r): r is AppRecord => r !== undefined);
      } else {
        all = [...this.apps.getRange().map(({ value }) => value)];
      }
      return filter.status === undefined ? all : all.filter((r) => r.status === filter.status);
    });
  }

  async setStatus(id: string, status: AppStatus, opts: AuditedWrite = {}): Promise<AppRecord | undefined> {
    if (!lookupable(id)) return undefined;
    const seal = opts.audit && sealer(opts.audit);
    return this.writer.durable(() => {
      const current = this.apps.get(id);
      if (current === undefined) return undefined;
      let result = current;
      if (current.status !== status) {
        result = { ...current, status, updatedAt: nowIso() };
        void this.apps.put(id, result);
      }
      if (seal) this.audit.appendInTransaction(seal);
      return result;
    });
  }

  async setPermissions(id: string, change: (current: string[]) => string[], opts: AuditedWrite = {}): Promise<AppRecord | undefined> {
    if (!lookupable(id)) return undefined;
    const seal = opts.audit && sealer(opts.audit);
    return this.writer.durable(() => {
      const current = this.apps.get(id);
      if (current === undefined) return undefined;
      const { permissions: old, ...rest } = current;
      const perms = [...new Set(change(old ?? []))].sort();
      const result: AppRecord = { ...rest, ...(perms.length ? { permissions: perms } : {}), updatedAt: nowIso() };
      void this.apps.put(id, result);
      if (seal) this.audit.appendInTransaction(seal);
      return result;
    });
  }

  async delete(id: string, opts: AuditedWrite = {}): Promise<AppRecord | undefined> {
    if (!lookupable(id)) return undefined;
    const seal = opts.audit && sealer(opts.audit);
    return this.writer.durable(() => {
      const current = this.apps.get(id);
      if (current === undefined) return undefined;
      void this.apps.remove(id);
      if (this.byName.get([current.project, current.name]) === id) void this.byName.remove([current.project, current.name]);
      if (seal) this.audit.appendInTransaction(seal);
      return current;
    });
  }
}

function lookupable(s: string): boolean {
  return typeof s === 'string' && s.length > 0 && s.length <= MAX_LOOKUP;
}

/** Only the AppRecord fields, so nothing a caller tacked on ends up on disk. */
function copy(r: AppRecord): AppRecord {
  for (const field of ['id', 'name', 'project'] as const) {
    if (!lookupable(r[field])) {
      fail(Codes.BAD_REQUEST, 400, `应用的 ${field} 无效`, `app ${field} must be a string of 1–${MAX_LOOKUP} characters`);
    }
  }
  return {
    id: r.id,
    name: r.name,
    project: r.project,
    algorithm: r.algorithm,
    publicKeyInfo: r.publicKeyInfo,
    status: r.status,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    ...(Array.isArray(r.permissions) && r.permissions.length ? { permissions: r.permissions.filter((x) => typeof x === 'string') } : {}),
  };
}
