// Apps: the hospital systems (HIS, LIS, PACS, EMR …) that call the API. Each has a key pair,
// SM2 by default (ECDSA P-256 allowed); the appliance keeps only the public key and hands the
// private key to the app once, at creation. Every state change is written to the audit log
// in the same transaction as the change, and resolves only once durable.
import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import type { AuditEntry } from '../audit/audit-log.js';
import { Codes, YiqianError, fail, isYiqianError } from '../errors.js';
import { log } from '../log.js';
import { APP_PERMISSIONS, type AppAlgorithm, type AppFilter, type AppRecord, type AppStatus } from '../store/app-repository.js';
import { newId, nowIso } from '../store/ids.js';
import type { Store } from '../store/open-store.js';
import { ProjectCodes, checkId as checkProjectId } from '../evidence/projects.js';
import type { ProjectDirectory } from '../evidence/types.js';

export type { AppAlgorithm, AppFilter, AppRecord, AppStatus } from '../store/app-repository.js';

export interface CreateAppInput {
  /** 1–64 characters, no control or format characters, no surrounding whitespace. */
  name: string;
  /** 1–64 of [A-Za-z0-9_.-]; default 'default'. With AppServiceOptions.projects: an existing project's id (a-z 0-9 _ -). */
  project?: string;
  /** Default 'sm2'. */
  algorithm?: AppAlgorithm;
  /** Who asks, for the audit log: 'cli:root', 'user:<id>' … */
  actor: string;
}

export interface CreatedApp {
  app: AppRecord;
  /** PKCS#8 PEM. Shown once; the appliance does not keep it. */
  privateKeyPem: string;
}

export interface AppService {
  create(input: CreateAppInput): Promise<CreatedApp>;
  /** APP_NOT_FOUND (404) if there is no such app. */
  get(id: string): Promise<AppRecord>;
  list(filter?: AppFilter): Promise<AppRecord[]>;
  /** Frozen apps' requests are refused (APP_FROZEN). Freezing a frozen app changes nothing but is audited. */
  freeze(id: string, actor: string): Promise<AppRecord>;
  unfreeze(id: string, actor: string): Promise<AppRecord>;
  delete(id: string, actor: string): Promise<void>;
  /** Gives the app a permission (APP_PERMISSIONS, e.g. evidence-admin); APP_PERMISSION_UNKNOWN (400) otherwise. Audited. */
  permit(id: string, permission: string, actor: string): Promise<AppRecord>;
  /** Takes a permission away (nothing changes if the app does not hold it, but the act is audited). */
  unpermit(id: string, permission: string, actor: string): Promise<AppRecord>;
}

export interface AppServiceOptions {
  /**
   * The evidence projects (evidence/projects.ts). Given, create() takes only the id of a project
   * that exists ('default' always does): an app in any other project would be refused
   * PROJECT_NOT_FOUND on every ingestion. Project ids follow the projects' rule (a-z 0-9 _ -):
   * PROJECT_ID_INVALID (400), PROJECT_NOT_FOUND (404).
   */
  projects?: Pick<ProjectDirectory, 'get'>;
}

/** A permission name that is not in APP_PERMISSIONS. */
export const APP_PERMISSION_UNKNOWN = 'APP_PERMISSION_UNKNOWN';

const PROJECT = /^[A-Za-z0-9_.-]{1,64}$/;
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const ALGORITHMS: readonly AppAlgorithm[] = ['sm2', 'ecdsa-p256'];
const STATUSES: readonly AppStatus[] = ['active', 'frozen'];
const CURVE: Record<AppAlgorithm, string> = { sm2: 'SM2', 'ecdsa-p256': 'prime256v1' };

const generateEcKeyPair = promisify(generateKeyPair);

export function createAppService(store: Store, opts: AppServiceOptions = {}): AppService {
  /** Records a refused or failed state change; the original error is what the caller gets. */
  async function auditFailure(actor: string, action: string, target: string | undefined, err: unknown): Promise<void> {
    if (!isYiqianError(err) || !validActor(actor)) return;
    const entry: AuditEntry = {
      actor,
      action,
      ...(target !== undefined ? { target } : {}),
      outcome: 'error',
      detail: { code: err.code, reason: err.text.en },
    };
    await store.audit.append(entry).catch((e: Error) => log.warn({ err: e.message, action }, 'could not audit a failed operation'));
  }

  async function changeStatus(rawId: string, actor: string, status: AppStatus): Promise<AppRecord> {
    const action = status === 'frozen' ? 'app.freeze' : 'app.unfreeze';
    const id = normaliseId(rawId);
    try {
      checkActor(actor);
      const app = await store.apps.setStatus(id, status, { audit: { actor, action, target: id, outcome: 'ok', detail: { status } } });
      return app ?? notFound(id);
    } catch (e) {
      await auditFailure(actor, action, id, e);
      throw e;
    }
  }

  async function changePermission(rawId: string, permission: string, actor: string, grant: boolean): Promise<AppRecord> {
    const action = grant ? 'app.permit' : 'app.unpermit';
    const id = normaliseId(rawId);
    try {
      checkActor(actor);
      if (!(APP_PERMISSIONS as readonly string[]).includes(permission)) {
        throw new YiqianError(APP_PERMISSION_UNKNOWN, 400, { zh: `未知的权限 ${String(permission).slice(0, 40)}（可用：${APP_PERMISSIONS.join('、')}）`, en: `unknown permission ${String(permission).slice(0, 40)} (known: ${APP_PERMISSIONS.join(', ')})` }, { allowed: [...APP_PERMISSIONS] });
      }
      const app = await store.apps.setPermissions(id, (held) => (grant ? [...held, permission] : held.filter((p) => p !== permission)), { audit: { actor, action, target: id, outcome: 'ok', detail: { permission } } });
      return app ?? notFound(id);
    } catch (e) {
      await auditFailure(actor, action, id, e);
      throw e;
    }
  }

  return {
    async create(input) {
      const actor = input?.actor;
      let project: string | undefined;
      try {
        checkActor(actor);
        const name = checkName(input.name);
        project = opts.projects ? await existingProject(opts.projects, input.project ?? 'default') : checkProject(input.project ?? 'default');
        const algorithm = input.algorithm ?? 'sm2';
        if (!ALGORITHMS.includes(algorithm)) {
          badRequest(`算法必须是 ${ALGORITHMS.join(' 或 ')}`, `algorithm must be ${ALGORITHMS.join(' or ')}`);
        }
        const { publicKey, privateKey } = await generateEcKeyPair('ec', {
          namedCurve: CURVE[algorithm],
          publicKeyEncoding: { type: 'spki', format: 'der' },
          privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
        });
        const now = nowIso();
        const id = newId();
        const record: AppRecord = {
          id,
          name,
          project,
          algorithm,
          publicKeyInfo: publicKey.toString('base64'),
          status: 'active',
          createdAt: now,
          updatedAt: now,
        };
        const app = await store.apps.create(record, {
          audit: { actor, action: 'app.create', target: id, outcome: 'ok', detail: { name, project, algorithm } },
        });
        return { app, privateKeyPem: privateKey };
      } catch (e) {
        await auditFailure(actor, 'app.create', undefined, e);
        throw e;
      }
    },

    async get(rawId) {
      const id = normaliseId(rawId);
      return (await store.apps.get(id)) ?? notFound(id);
    },

    async list(filter = {}) {
      if (filter.project !== undefined) checkProject(filter.project);
      if (filter.status !== undefined && !STATUSES.includes(filter.status)) {
        badRequest(`状态必须是 ${STATUSES.join(' 或 ')}`, `status must be ${STATUSES.join(' or ')}`);
      }
      return store.apps.list(filter);
    },

    permit: (id, permission, actor) => changePermission(id, permission, actor, true),
    unpermit: (id, permission, actor) => changePermission(id, permission, actor, false),

    freeze: (id, actor) => changeStatus(id, actor, 'frozen'),
    unfreeze: (id, actor) => changeStatus(id, actor, 'active'),

    async delete(rawId, actor) {
      const id = normaliseId(rawId);
      try {
        checkActor(actor);
        // The audit detail names what was deleted, so the log still says which app it was.
        const current = (await store.apps.get(id)) ?? notFound(id);
        const gone = await store.apps.delete(id, {
          audit: { actor, action: 'app.delete', target: id, outcome: 'ok', detail: { name: current.name, project: current.project } },
        });
        if (gone === undefined) notFound(id); // deleted by someone else in between
      } catch (e) {
        await auditFailure(actor, 'app.delete', id, e);
        throw e;
      }
    },
  };
}

function badRequest(zh: string, en: string): never {
  fail(Codes.BAD_REQUEST, 400, zh, en);
}

function notFound(id: string): never {
  throw new YiqianError(Codes.APP_NOT_FOUND, 404, { zh: `应用 ${id} 不存在`, en: `no app ${id}` }, { id });
}

/** ULIDs are case-insensitive; we store upper case. Anything else cannot be an app id. */
function normaliseId(id: string): string {
  const upper = typeof id === 'string' ? id.toUpperCase() : '';
  if (!ULID.test(upper)) notFound(typeof id === 'string' ? id.slice(0, 64) : String(id));
  return upper;
}

function validActor(actor: unknown): actor is string {
  return typeof actor === 'string' && actor.length > 0 && actor.length <= 200 && !/\p{Cc}/u.test(actor);
}

function checkActor(actor: unknown): asserts actor is string {
  if (!validActor(actor)) badRequest('操作者无效', 'actor must be 1–200 printable characters');
}

function checkName(name: unknown): string {
  if (typeof name !== 'string') badRequest('应用名称必须是字符串', 'name must be a string');
  const n = name.normalize('NFC');
  const length = [...n].length;
  if (length < 1 || length > 64) badRequest('应用名称长度必须为 1 到 64 个字符', `name must be 1–64 characters (got ${length})`);
  // Cc: C0/C1 controls (newlines, escapes); Cf: invisible format characters such as bidi
  // overrides and zero-width joiners, which make different names look the same.
  if (/[\p{Cc}\p{Cf}]/u.test(n)) badRequest('应用名称不能包含控制字符或格式字符', 'name must not contain control or invisible format characters');
  if (n.trim() !== n) badRequest('应用名称首尾不能有空白', 'name must not start or end with whitespace');
  return n;
}

async function existingProject(projects: Pick<ProjectDirectory, 'get'>, raw: unknown): Promise<string> {
  const project = checkProjectId(raw);
  if ((await projects.get(project)) === undefined) {
    throw new YiqianError(
      ProjectCodes.PROJECT_NOT_FOUND,
      404,
      { zh: `项目 ${project} 不存在：请先用 yiqian evidence project create ${project} --name 名称 创建`, en: `no project ${project}: create it first (yiqian evidence project create ${project} --name NAME)` },
      { project },
    );
  }
  return project;
}

function checkProject(project: unknown): string {
  if (typeof project !== 'string' || !PROJECT.test(project)) {
    badRequest('项目名必须为 1 到 64 个字符，只能包含 A-Z a-z 0-9 _ . -', 'project must be 1–64 characters of A-Z a-z 0-9 _ . -');
  }
  return project;
}
