// Evidence projects (issue 6 item 5, 项目管理): logical isolation of evidence, each with its
// retention period. Ingestion asks ProjectDirectory.writable(); admins (the CLI on the box, or
// apps holding the `evidence-admin` permission over HTTP) create, update, freeze and delete.
//
// Retention: a record's retainUntil is fixed at ingestion (receivedAt + the project's
// retentionYears then), so changing retentionYears later never shortens what stored records
// were promised; deletion waits for the latest of those promises (the counters' retention
// horizon) unless an admin forces it from the CLI.
//
// Deletion is resumable: the project is first marked (frozen, with `deletion`) so nothing new
// is written, then its records are removed from both tiers with their blobs, then — in one
// transaction — the project record, its counters and the audit record (who, what, how many).
// A crash in between leaves a marked project; deleting it again finishes the job. Merkle leaves
// stay: the log is append-only (RFC 9162 §2.1) and holds only hashes.
//
// The project 'default' (what `yiqian app create` assigns) exists from the start: it is created,
// with evidence.defaultRetentionYears, the first time anyone looks for it.
import type { AuditEntry, AuditLog } from '../audit/audit-log.js';
import { Codes, YiqianError, isYiqianError } from '../errors.js';
import { log } from '../log.js';
import type { EvidenceProjectRepository, StoredProject } from '../store/evidence-project-repository.js';
import type { Project, ProjectDirectory } from './types.js';

export const ProjectCodes = {
  PROJECT_NOT_FOUND: 'PROJECT_NOT_FOUND',
  PROJECT_FROZEN: 'PROJECT_FROZEN',
  PROJECT_EXISTS: 'PROJECT_EXISTS',
  PROJECT_RETENTION_ACTIVE: 'PROJECT_RETENTION_ACTIVE',
  /** A deletion is in progress: only deleting it again (which resumes) is possible. */
  PROJECT_DELETING: 'PROJECT_DELETING',
  PROJECT_ID_INVALID: 'PROJECT_ID_INVALID',
  PROJECT_NAME_INVALID: 'PROJECT_NAME_INVALID',
  PROJECT_DESCRIPTION_INVALID: 'PROJECT_DESCRIPTION_INVALID',
  RETENTION_YEARS_INVALID: 'RETENTION_YEARS_INVALID',
  /** A body field that is not a project setting, or a body that is not an object. */
  PROJECT_FIELD_INVALID: 'PROJECT_FIELD_INVALID',
  /** PATCH with nothing to change. */
  PROJECT_UPDATE_EMPTY: 'PROJECT_UPDATE_EMPTY',
  /** The project has records but this process cannot remove them (no records repository wired). */
  PROJECT_DATA_REMOVAL_UNAVAILABLE: 'PROJECT_DATA_REMOVAL_UNAVAILABLE',
} as const;

export const DEFAULT_PROJECT = 'default';
export const MIN_RETENTION_YEARS = 1;
export const MAX_RETENTION_YEARS = 100;
const ID = /^[a-z0-9_-]{1,64}$/;
const MAX_NAME = 64;
const MAX_DESCRIPTION = 500;

export interface CreateProjectInput {
  id: string;
  name: string;
  description?: string;
  /** 1–100; default evidence.defaultRetentionYears. */
  retentionYears?: number;
}

export interface UpdateProjectInput {
  name?: string;
  /** null clears it. */
  description?: string | null;
  retentionYears?: number;
}

export interface ProjectDeletion {
  id: string;
  records: number;
  blobs: number;
  forced: boolean;
  /** The latest retainUntil of the removed records, if any were stored. */
  retainUntil?: string;
}

/** Removes a project's records from both tiers and their blobs (the records repository, E1). Idempotent. */
export interface ProjectDataRemover {
  removeProject(project: string): Promise<{ records: number; blobs: number }>;
}

export interface ProjectAdmin extends ProjectDirectory {
  list(): Promise<Project[]>;
  /** PROJECT_NOT_FOUND 404. */
  show(id: string): Promise<Project>;
  create(input: CreateProjectInput, actor: string): Promise<Project>;
  update(id: string, patch: UpdateProjectInput, actor: string): Promise<Project>;
  freeze(id: string, actor: string): Promise<Project>;
  unfreeze(id: string, actor: string): Promise<Project>;
  /** PROJECT_RETENTION_ACTIVE 409 while a record's retainUntil lies ahead, unless `force` (CLI only). */
  delete(id: string, actor: string, opts?: { force?: boolean }): Promise<ProjectDeletion>;
  /** The latest retainUntil promised to a stored record of the project. */
  retainUntil(id: string): Promise<string | undefined>;
}

export interface ProjectDeps {
  projects: EvidenceProjectRepository;
  counters: { projectRemovedInTxn(project: string): void; retentionHorizon(project: string): Promise<string | undefined> };
  /** Absent: the project's records cannot be removed, so a project that has any cannot be deleted. */
  records?: ProjectDataRemover;
  audit: Pick<AuditLog, 'append'>;
  defaultRetentionYears: number;
  clock?: () => Date;
}

export function createProjects(deps: ProjectDeps): ProjectAdmin {
  const clock = deps.clock ?? (() => new Date());
  let defaultReady: Promise<StoredProject> | undefined;

  function ensureDefault(): Promise<StoredProject> {
    defaultReady ??= (async () => {
      const now = clock().toISOString();
      return deps.projects.ensure(
        { id: DEFAULT_PROJECT, name: DEFAULT_PROJECT, retentionYears: deps.defaultRetentionYears, frozen: false, createdAt: now, updatedAt: now },
        { audit: { actor: 'system', action: 'evidence.project.create', target: DEFAULT_PROJECT, outcome: 'ok', detail: { retentionYears: deps.defaultRetentionYears } } },
      );
    })().finally(() => {
      // Re-check next time: 'default' may be deleted (and is then created afresh).
      defaultReady = undefined;
    });
    return defaultReady;
  }

  async function find(rawId: string): Promise<StoredProject | undefined> {
    const id = checkId(rawId);
    const p = await deps.projects.get(id);
    if (p === undefined && id === DEFAULT_PROJECT) return ensureDefault();
    return p;
  }

  async function existing(rawId: string): Promise<StoredProject> {
    return (await find(rawId)) ?? notFound(String(rawId));
  }

  async function audited<T>(actor: string, action: string, target: string | undefined, work: () => Promise<T>): Promise<T> {
    try {
      checkActor(actor);
      return await work();
    } catch (e) {
      if (isYiqianError(e) && validActor(actor)) {
        const entry: AuditEntry = { actor, action, ...(target ? { target } : {}), outcome: e.status === 409 ? 'denied' : 'error', detail: { code: e.code, reason: e.text.en } };
        await deps.audit.append(entry).catch((err: Error) => log.warn({ err: err.message, action }, 'could not audit a refused project operation'));
      }
      throw e;
    }
  }

  /** One audited change of an existing project that is not being deleted. */
  async function change(rawId: string, actor: string, action: string, detail: Record<string, unknown>, fn: (p: StoredProject, now: string) => StoredProject): Promise<Project> {
    const id = typeof rawId === 'string' ? rawId.slice(0, 64) : undefined;
    return audited(actor, action, id, async () => {
      await existing(rawId);
      const updated = await deps.projects.update(
        checkId(rawId),
        (current) => {
          if (current.deletion) deleting(current.id);
          return fn(current, clock().toISOString());
        },
        { audit: { actor, action, target: checkId(rawId), outcome: 'ok', detail } },
      );
      return view(updated ?? notFound(checkId(rawId)));
    });
  }

  return {
    async get(rawId) {
      if (typeof rawId !== 'string' || !ID.test(rawId)) return undefined;
      const p = await find(rawId);
      return p && view(p);
    },

    async writable(rawId) {
      const p = typeof rawId === 'string' && ID.test(rawId) ? await find(rawId) : undefined;
      if (p === undefined) notFound(String(rawId));
      if (p.frozen || p.deletion) {
        throw new YiqianError(ProjectCodes.PROJECT_FROZEN, 409, { zh: `项目 ${p.id} 已冻结，不接受写入`, en: `project ${p.id} is frozen and accepts no writes` }, { project: p.id });
      }
      return view(p);
    },

    async list() {
      await ensureDefault();
      return (await deps.projects.list()).map(view);
    },

    async show(rawId) {
      return view(await existing(rawId));
    },

    async create(input, actor) {
      return audited(actor, 'evidence.project.create', undefined, async () => {
        const i = checkFields(input, ['id', 'name', 'description', 'retentionYears']);
        const id = checkId(i.id);
        if (id === DEFAULT_PROJECT) await ensureDefault();
        const now = clock().toISOString();
        const project: StoredProject = {
          id,
          name: checkName(i.name),
          ...(i.description !== undefined ? { description: checkDescription(i.description) } : {}),
          retentionYears: i.retentionYears === undefined ? deps.defaultRetentionYears : checkYears(i.retentionYears),
          frozen: false,
          createdAt: now,
          updatedAt: now,
        };
        const outcome = await deps.projects.create(project, {
          audit: { actor, action: 'evidence.project.create', target: id, outcome: 'ok', detail: { name: project.name, retentionYears: project.retentionYears } },
        });
        if (outcome === 'exists') {
          throw new YiqianError(ProjectCodes.PROJECT_EXISTS, 409, { zh: `项目 ${id} 已存在`, en: `project ${id} already exists` }, { project: id });
        }
        return view(project);
      });
    },

    async update(rawId, patch, actor) {
      const p = checkFields(patch, ['name', 'description', 'retentionYears']);
      const next: UpdateProjectInput = {};
      if (p.name !== undefined) next.name = checkName(p.name);
      if (p.description !== undefined) next.description = p.description === null ? null : checkDescription(p.description);
      if (p.retentionYears !== undefined) next.retentionYears = checkYears(p.retentionYears);
      if (Object.keys(next).length === 0) {
        throw new YiqianError(ProjectCodes.PROJECT_UPDATE_EMPTY, 400, { zh: '没有要修改的字段（name、description、retentionYears）', en: 'nothing to update: give name, description or retentionYears' });
      }
      return change(rawId, actor, 'evidence.project.update', { ...next }, (current, now) => {
        const updated: StoredProject = { ...current, updatedAt: now };
        if (next.name !== undefined) updated.name = next.name;
        if (next.description === null) delete updated.description;
        else if (next.description !== undefined) updated.description = next.description;
        // Applies to records received from now on: stored records keep the retainUntil they got.
        if (next.retentionYears !== undefined) updated.retentionYears = next.retentionYears;
        return updated;
      });
    },

    freeze: (id, actor) => change(id, actor, 'evidence.project.freeze', { frozen: true }, (c, now) => (c.frozen ? c : { ...c, frozen: true, updatedAt: now })),
    unfreeze: (id, actor) => change(id, actor, 'evidence.project.unfreeze', { frozen: false }, (c, now) => (c.frozen ? { ...c, frozen: false, updatedAt: now } : c)),

    async retainUntil(rawId) {
      return deps.counters.retentionHorizon((await existing(rawId)).id);
    },

    async delete(rawId, actor, opts = {}) {
      const force = opts.force === true;
      const target = typeof rawId === 'string' ? rawId.slice(0, 64) : undefined;
      return audited(actor, 'evidence.project.delete', target, async () => {
        const current = await existing(rawId);
        const id = current.id;
        const horizon = await deps.counters.retentionHorizon(id);
        const retentionActive = horizon !== undefined && Date.parse(horizon) > clock().getTime();
        if (retentionActive && !force && !current.deletion?.force) {
          throw new YiqianError(
            ProjectCodes.PROJECT_RETENTION_ACTIVE,
            409,
            { zh: `项目 ${id} 中的记录须保存至 ${horizon}，保存期内不能删除`, en: `records of project ${id} must be kept until ${horizon}; the project cannot be deleted before then` },
            { project: id, retainUntil: horizon },
          );
        }
        if (horizon !== undefined && !deps.records) {
          throw new YiqianError(ProjectCodes.PROJECT_DATA_REMOVAL_UNAVAILABLE, 503, { zh: `项目 ${id} 有存证记录，但此处无法删除记录，未做任何改动`, en: `project ${id} has records but they cannot be removed here; nothing was changed` }, { project: id });
        }
        // 1. Mark: no writes from here on, and a crash leaves a deletion to resume.
        if (!current.deletion) {
          await deps.projects.update(id, (c) => ({ ...c, frozen: true, deletion: { startedAt: clock().toISOString(), actor, force } }), {
            audit: { actor, action: 'evidence.project.delete-start', target: id, outcome: 'ok', detail: { force, ...(horizon ? { retainUntil: horizon } : {}) } },
          });
        }
        // 2. Records of both tiers and their blobs.
        const removed = deps.records ? await deps.records.removeProject(id) : { records: 0, blobs: 0 };
        // 3. The project, its counters and the audit record, together.
        const forced = force || current.deletion?.force === true;
        const gone = await deps.projects.remove(id, () => deps.counters.projectRemovedInTxn(id), {
          audit: {
            actor,
            action: 'evidence.project.delete',
            target: id,
            outcome: 'ok',
            detail: { records: removed.records, blobs: removed.blobs, forced: forced && retentionActive, ...(horizon ? { retainUntil: horizon } : {}) },
          },
        });
        if (gone === undefined) notFound(id);
        return { id, records: removed.records, blobs: removed.blobs, forced: forced && retentionActive, ...(horizon ? { retainUntil: horizon } : {}) };
      });
    },
  };
}

/** The Project as answered: no deletion bookkeeping. */
function view(p: StoredProject): Project {
  return {
    id: p.id,
    name: p.name,
    ...(p.description !== undefined ? { description: p.description } : {}),
    retentionYears: p.retentionYears,
    frozen: p.frozen,
    createdAt: p.createdAt,
    updatedAt: p.updatedAt,
  };
}

function notFound(id: string): never {
  throw new YiqianError(ProjectCodes.PROJECT_NOT_FOUND, 404, { zh: `项目 ${id.slice(0, 64)} 不存在`, en: `no project ${id.slice(0, 64)}` }, { project: id.slice(0, 64) });
}

function deleting(id: string): never {
  throw new YiqianError(ProjectCodes.PROJECT_DELETING, 409, { zh: `项目 ${id} 正在删除，请再次执行删除以完成`, en: `project ${id} is being deleted; delete it again to finish` }, { project: id });
}

export function checkId(id: unknown): string {
  if (typeof id !== 'string' || !ID.test(id)) {
    throw new YiqianError(ProjectCodes.PROJECT_ID_INVALID, 400, { zh: '项目标识须为 1 到 64 个字符，只能包含 a-z 0-9 _ -', en: 'project id must be 1–64 characters of a-z 0-9 _ -' }, {
      project: typeof id === 'string' ? id.slice(0, 64) : typeof id,
    });
  }
  return id;
}

function checkName(name: unknown): string {
  const n = typeof name === 'string' ? name.normalize('NFC') : undefined;
  const length = n === undefined ? 0 : [...n].length;
  // Cc/Cf: controls and invisible format characters (bidi overrides) that make names look alike.
  if (n === undefined || length < 1 || length > MAX_NAME || /[\p{Cc}\p{Cf}]/u.test(n) || n.trim() !== n) {
    throw new YiqianError(ProjectCodes.PROJECT_NAME_INVALID, 400, { zh: `项目名称须为 1 到 ${MAX_NAME} 个字符，不含控制字符，首尾无空白`, en: `project name must be 1–${MAX_NAME} characters, no control characters, no surrounding whitespace` });
  }
  return n;
}

function checkDescription(d: unknown): string {
  const s = typeof d === 'string' ? d.normalize('NFC') : undefined;
  // Line breaks are fine in a description; other controls are not.
  if (s === undefined || [...s].length > MAX_DESCRIPTION || /[\p{Cf}]|(?![\n\t])\p{Cc}/u.test(s)) {
    throw new YiqianError(ProjectCodes.PROJECT_DESCRIPTION_INVALID, 400, { zh: `项目说明须为不超过 ${MAX_DESCRIPTION} 个字符的文本`, en: `project description must be text of at most ${MAX_DESCRIPTION} characters` });
  }
  return s;
}

function checkYears(y: unknown): number {
  if (typeof y !== 'number' || !Number.isInteger(y) || y < MIN_RETENTION_YEARS || y > MAX_RETENTION_YEARS) {
    throw new YiqianError(ProjectCodes.RETENTION_YEARS_INVALID, 400, { zh: `保存年限须为 ${MIN_RETENTION_YEARS} 到 ${MAX_RETENTION_YEARS} 的整数`, en: `retentionYears must be an integer from ${MIN_RETENTION_YEARS} to ${MAX_RETENTION_YEARS}` }, {
      retentionYears: typeof y === 'number' || typeof y === 'string' ? String(y).slice(0, 20) : typeof y,
    });
  }
  return y;
}

function checkFields(input: unknown, allowed: string[]): Record<string, unknown> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new YiqianError(ProjectCodes.PROJECT_FIELD_INVALID, 400, { zh: '项目数据必须是 JSON 对象', en: 'project data must be a JSON object' });
  }
  const unknown = Object.keys(input).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    throw new YiqianError(ProjectCodes.PROJECT_FIELD_INVALID, 400, { zh: `不是项目设置：${unknown.slice(0, 5).join('、').slice(0, 200)}`, en: `not a project setting: ${unknown.slice(0, 5).join(', ').slice(0, 200)}` }, {
      fields: unknown.slice(0, 5).map((k) => k.slice(0, 64)),
      allowed,
    });
  }
  return input as Record<string, unknown>;
}

function validActor(actor: unknown): actor is string {
  return typeof actor === 'string' && actor.length > 0 && actor.length <= 200 && !/\p{Cc}/u.test(actor);
}

function checkActor(actor: unknown): void {
  if (!validActor(actor)) throw new YiqianError(Codes.BAD_REQUEST, 400, { zh: '操作者无效', en: 'actor must be 1–200 printable characters' });
}
