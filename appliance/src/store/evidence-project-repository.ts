// Evidence projects (issue 6 item 5, 项目管理) on LMDB: db 'evidence-projects' keyed by project id
// → StoredProject (JSON). Few records (one per hospital project), so list() reads them all.
// Every change commits in one durable transaction with its audit record (the AppRepository
// pattern); removal also runs the caller's in-transaction step (the counters' projectRemovedInTxn),
// so a project and its counts disappear together.
import type { Database } from 'lmdb';
import type { AuditEntry } from '../audit/audit-log.js';
import { sealer } from '../audit/chain.js';
import { Codes, fail } from '../errors.js';
import type { Project } from '../evidence/types.js';
import type { LmdbAuditStorage } from './audit-storage.js';
import type { Writer } from './durable.js';

/** A project as kept: the Project plus the state of a deletion in progress (resumable after a crash). */
export interface StoredProject extends Project {
  deletion?: { startedAt: string; actor: string; force: boolean };
}

export interface ProjectWrite {
  audit?: AuditEntry;
}

export interface EvidenceProjectRepository {
  /** 'exists' when the id is taken (then nothing is written, not even the audit record). */
  create(p: StoredProject, opts?: ProjectWrite): Promise<'created' | 'exists'>;
  /** Creates `p` unless a project with its id exists; the stored one either way. */
  ensure(p: StoredProject, opts?: ProjectWrite): Promise<StoredProject>;
  get(id: string): Promise<StoredProject | undefined>;
  /** Synchronous read for use inside another write transaction of the same store. */
  getInTxn(id: string): StoredProject | undefined;
  /** In id order. */
  list(): Promise<StoredProject[]>;
  /**
   * Replaces the project by change(current) in one transaction; undefined if there is none
   * (then nothing is written). `change` may throw to refuse (the transaction rolls back).
   */
  update(id: string, change: (current: StoredProject) => StoredProject, opts?: ProjectWrite): Promise<StoredProject | undefined>;
  /** Removes the project, runs `inTxn` in the same transaction; undefined if there was none. */
  remove(id: string, inTxn: () => void, opts?: ProjectWrite): Promise<StoredProject | undefined>;
}

const MAX_ID = 64;

export function createEvidenceProjectRepository(db: Database<any, any>, audit: LmdbAuditStorage, writer: Writer): EvidenceProjectRepository {
  const projects = db as Database<StoredProject, string>;
  const ok = (id: unknown): id is string => typeof id === 'string' && id.length > 0 && id.length <= MAX_ID;

  return {
    async create(p, opts = {}) {
      const rec = copy(p);
      const seal = opts.audit && sealer(opts.audit);
      return writer.durable(() => {
        if (projects.doesExist(rec.id)) return 'exists' as const;
        void projects.put(rec.id, rec);
        if (seal) audit.appendInTransaction(seal);
        return 'created' as const;
      });
    },

    async ensure(p, opts = {}) {
      const rec = copy(p);
      const present = writer.read(() => projects.get(rec.id));
      if (present) return present;
      const seal = opts.audit && sealer(opts.audit);
      return writer.durable(() => {
        const current = projects.get(rec.id);
        if (current) return current;
        void projects.put(rec.id, rec);
        if (seal) audit.appendInTransaction(seal);
        return rec;
      });
    },

    async get(id) {
      if (!ok(id)) return undefined;
      return writer.read(() => projects.get(id));
    },

    getInTxn(id) {
      return ok(id) ? projects.get(id) : undefined;
    },

    async list() {
      return writer.read(() => [...projects.getRange().map(({ value }) => value)]);
    },

    async update(id, change, opts = {}) {
      if (!ok(id)) return undefined;
      const seal = opts.audit && sealer(opts.audit);
      return writer.durable(() => {
        const current = projects.get(id);
        if (current === undefined) return undefined;
        const next = copy(change(current));
        if (next.id !== id) fail(Codes.INTERNAL, 500, '项目更新改变了标识', `an update of project ${id} changed its id`);
        void projects.put(id, next);
        if (seal) audit.appendInTransaction(seal);
        return next;
      });
    },

    async remove(id, inTxn, opts = {}) {
      if (!ok(id)) return undefined;
      const seal = opts.audit && sealer(opts.audit);
      return writer.durable(() => {
        const current = projects.get(id);
        if (current === undefined) return undefined;
        void projects.remove(id);
        inTxn();
        if (seal) audit.appendInTransaction(seal);
        return current;
      });
    },
  };
}

/** Only the StoredProject fields, so nothing a caller tacked on ends up on disk. */
function copy(p: StoredProject): StoredProject {
  if (typeof p !== 'object' || p === null || typeof p.id !== 'string' || p.id.length === 0 || p.id.length > MAX_ID) {
    fail(Codes.BAD_REQUEST, 400, '项目记录无效', 'project record must have an id of 1–64 characters');
  }
  return {
    id: p.id,
    name: p.name,
    ...(p.description !== undefined ? { description: p.description } : {}),
    retentionYears: p.retentionYears,
    frozen: p.frozen === true,
    createdAt: p.createdAt,
    updatedAt: p.updatedAt,
    ...(p.deletion ? { deletion: { startedAt: p.deletion.startedAt, actor: p.deletion.actor, force: p.deletion.force === true } } : {}),
  };
}
