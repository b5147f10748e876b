// Evidence projects and statistics as the admin on the box and the hospital systems meet them
// (needs `npx tsc -p tsconfig.json`): `yiqian init`, `yiqian evidence project create|list|show|
// update|freeze|unfreeze|delete`, apps in two projects, `yiqian app permit … evidence-admin`, then
// `yiqian serve`: an admin app manages projects over HTTPS, other apps read only their own project
// (403 EVIDENCE_ADMIN_REQUIRED otherwise), a frozen project refuses ingestion (409 PROJECT_FROZEN),
// statistics count what the apps stored and what was refused, deletion inside the retention period
// is refused over HTTP, and `app unpermit` beside the running server takes effect at once.
import t from 'tap';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cli, fetchRaw, serve, tempDataDir, type Served } from '../helpers/appliance.js';
import { signRequest } from '../../appliance/src/http/yq1-scheme.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';

const data = tempDataDir();
const work = dirname(data);
let server: Served | undefined;
type Who = 'admin' | 'emr' | 'lis';
const apps: Record<Who, { id: string; signer: Signer }> = {} as never;

t.teardown(async () => {
  if (server && server.proc.exitCode === null) await server.stop('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

async function api(who: Who, method: string, path: string, body?: unknown): Promise<{ status: number; json: any; type?: string }> {
  const app = apps[who];
  const text = body === undefined ? undefined : JSON.stringify(body);
  const auth = await signRequest(app.signer, app.id, method, `/api/v1${path}`, text);
  const r = await fetchRaw(`${server!.httpsUrl}/api/v1${path}`, {
    method,
    headers: { Authorization: auth, ...(text !== undefined ? { 'Content-Type': 'application/json' } : {}) },
    ...(text !== undefined ? { body: text } : {}),
  });
  let json: any;
  try {
    json = JSON.parse(r.body);
  } catch {
    json = undefined;
  }
  return { status: r.status, json, type: r.headers['content-type'] as string | undefined };
}

function json(args: string[]): any {
  const r = cli([...args, '--data', data, '--json']);
  if (r.code !== 0) throw new Error(`yiqian ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** A 32-byte SM3-sized digest, base64 as the ingestion API takes it. */
function sm3Hex(i: number): string {
  return Buffer.from(i.toString(16).padStart(64, '0'), 'hex').toString('base64');
}

t.test('admin on the box: projects and apps from the CLI', async (t) => {
  t.equal(cli(['init', '--data', data, '--json']).code, 0);
  t.match(json(['evidence', 'project', 'list']), [{ id: 'default', retentionYears: 30, frozen: false }], "'default' exists from the start");
  t.match(json(['evidence', 'project', 'create', 'emr', '--name', '电子病历', '--retention-years', '30']), { id: 'emr', name: '电子病历', retentionYears: 30 });
  t.match(json(['evidence', 'project', 'create', 'lis', '--name', 'LIS', '--description', '检验']), { id: 'lis', retentionYears: 30, description: '检验' });
  t.match(json(['evidence', 'project', 'update', 'lis', '--retention-years', '15', '--clear-description']), { id: 'lis', retentionYears: 15 });
  t.notOk('description' in json(['evidence', 'project', 'show', 'lis']));
  t.match(json(['evidence', 'project', 'freeze', 'lis']), { frozen: true });
  t.match(json(['evidence', 'project', 'unfreeze', 'lis']), { frozen: false });
  const table = cli(['evidence', 'project', 'list', '--data', data]);
  t.match(table.stdout, /emr\s+电子病历\s+30\s+no/);

  const dup = cli(['evidence', 'project', 'create', 'emr', '--name', 'again', '--data', data]);
  t.equal(dup.code, 1);
  t.match(dup.stderr, /PROJECT_EXISTS/);
  t.match(cli(['evidence', 'project', 'create', 'Bad Id', '--name', 'x', '--data', data]).stderr, /PROJECT_ID_INVALID/);
  t.match(cli(['evidence', 'project', 'create', 'x', '--name', 'x', '--retention-years', '101', '--data', data]).stderr, /RETENTION_YEARS_INVALID/);
  t.equal(cli(['evidence', 'project', 'create', 'x', '--data', data]).code, 2, 'missing --name is a usage error');
  t.equal(cli(['evidence', 'project', 'show', '--data', data]).code, 2, 'missing id is a usage error');
  t.match(cli(['evidence', 'project', 'show', 'nope', '--data', data]).stderr, /PROJECT_NOT_FOUND/);
  t.match(cli(['evidence', 'project', 'create', '--help']).stdout, /--retention-years/);

  for (const [who, project] of [['admin', 'default'], ['emr', 'emr'], ['lis', 'lis']] as const) {
    const keyFile = join(work, `${who}.key`);
    const app = json(['app', 'create', '--name', who.toUpperCase(), '--project', project, '--key-out', keyFile]);
    apps[who] = { id: app.id, signer: createSoftwareSigner(readFileSync(keyFile, 'utf8')) };
  }
  // An app goes only into an existing project, named by a valid project id.
  for (const [project, code] of [['nope', 'PROJECT_NOT_FOUND'], ['Emr', 'PROJECT_ID_INVALID'], ['branch.east', 'PROJECT_ID_INVALID']] as const) {
    const keyFile = join(work, `refused-${project}.key`);
    const r = cli(['app', 'create', '--name', 'X', '--project', project, '--key-out', keyFile, '--data', data]);
    t.equal(r.code, 1, `--project ${project} refused`);
    t.match(r.stderr, new RegExp(code));
    t.notOk(existsSync(keyFile), 'no key file left behind');
  }
  t.match(cli(['app', 'create', '--help']).stdout, /must exist/);
  t.equal(json(['app', 'list', '--project', 'nope']).length, 0);
  t.same(json(['app', 'permit', apps.admin.id, 'evidence-admin']).permissions, ['evidence-admin']);
  const unknown = cli(['app', 'permit', apps.admin.id, 'root', '--data', data]);
  t.equal(unknown.code, 1);
  t.match(unknown.stderr, /APP_PERMISSION_UNKNOWN/);
  t.equal(cli(['app', 'permit', apps.admin.id, '--data', data]).code, 2);
});

t.test('serve', async () => {
  server = await serve(data);
});

t.test('over HTTPS: the evidence-admin app manages projects, other apps see only their own', async (t) => {
  const created = await api('admin', 'POST', '/evidence/projects', { id: 'pacs', name: '影像', retentionYears: 20 });
  t.equal(created.status, 201);
  t.match(created.json, { id: 'pacs', name: '影像', retentionYears: 20, frozen: false });
  t.same((await api('admin', 'GET', '/evidence/projects')).json.items.map((p: any) => p.id), ['default', 'emr', 'lis', 'pacs']);
  t.match((await api('admin', 'PATCH', '/evidence/projects/pacs', { description: '放射科', retentionYears: 25 })).json, { description: '放射科', retentionYears: 25 });
  t.match((await api('admin', 'GET', '/evidence/projects/emr')).json, { id: 'emr' });

  const bad: [Who, string, string, unknown, number, string][] = [
    ['admin', 'POST', '/evidence/projects', { id: 'pacs', name: 'again' }, 409, 'PROJECT_EXISTS'],
    ['admin', 'POST', '/evidence/projects', { id: 'x', name: 'x', retentionYears: 0 }, 400, 'RETENTION_YEARS_INVALID'],
    ['admin', 'POST', '/evidence/projects', { id: 'x', name: 'x', frozen: true }, 400, 'PROJECT_FIELD_INVALID'],
    ['admin', 'POST', '/evidence/projects', ['x'], 400, 'PROJECT_FIELD_INVALID'],
    ['admin', 'POST', '/evidence/projects', { id: '../x', name: 'x' }, 400, 'PROJECT_ID_INVALID'],
    ['admin', 'PATCH', '/evidence/projects/pacs', {}, 400, 'PROJECT_UPDATE_EMPTY'],
    ['admin', 'PATCH', '/evidence/projects/nope', { name: 'x' }, 404, 'PROJECT_NOT_FOUND'],
    ['admin', 'GET', '/evidence/projects/nope', undefined, 404, 'PROJECT_NOT_FOUND'],
    ['emr', 'GET', '/evidence/projects', undefined, 403, 'EVIDENCE_ADMIN_REQUIRED'],
    ['emr', 'GET', '/evidence/projects/lis', undefined, 403, 'EVIDENCE_ADMIN_REQUIRED'],
    ['emr', 'POST', '/evidence/projects', { id: 'mine', name: 'x' }, 403, 'EVIDENCE_ADMIN_REQUIRED'],
    ['emr', 'PATCH', '/evidence/projects/emr', { retentionYears: 1 }, 403, 'EVIDENCE_ADMIN_REQUIRED'],
    ['emr', 'POST', '/evidence/projects/emr/freeze', undefined, 403, 'EVIDENCE_ADMIN_REQUIRED'],
    ['emr', 'DELETE', '/evidence/projects/emr', undefined, 403, 'EVIDENCE_ADMIN_REQUIRED'],
    ['emr', 'GET', '/evidence/stats?scope=project&project=lis', undefined, 403, 'EVIDENCE_ADMIN_REQUIRED'],
    ['emr', 'GET', `/evidence/stats?scope=app&app=${'0'.repeat(26)}`, undefined, 403, 'EVIDENCE_ADMIN_REQUIRED'],
    ['emr', 'GET', '/evidence/stats?scope=all', undefined, 403, 'EVIDENCE_ADMIN_REQUIRED'],
    ['emr', 'GET', '/evidence/stats?scope=everything', undefined, 400, 'STATS_QUERY_INVALID'],
    ['emr', 'GET', '/evidence/stats?since=2020', undefined, 400, 'STATS_QUERY_INVALID'],
    ['emr', 'GET', '/evidence/stats?scope=project&app=x', undefined, 400, 'STATS_QUERY_INVALID'],
  ];
  for (const [who, method, path, body, status, code] of bad) {
    const r = await api(who, method, path, body);
    t.equal(r.status, status, `${who} ${method} ${path}: ${status}`);
    t.equal(r.json?.code, code, `${who} ${method} ${path}: ${code}`);
    t.match(r.type, /application\/problem\+json/);
    t.ok(r.json?.message?.['zh-CN'] && r.json?.message?.en, 'zh and en');
  }
  t.match((await api('emr', 'GET', '/evidence/projects/emr')).json, { id: 'emr', name: '电子病历' }, 'its own project');
});

t.test('statistics count what was stored and refused; a frozen project refuses writes', async (t) => {
  for (let i = 0; i < 3; i++) {
    const r = await api('emr', 'POST', '/evidence/digests', { digest: { algorithm: 'sm3', value: sm3Hex(i + 1) }, metadata: { departmentId: '0302' } });
    t.equal(r.status, 201, JSON.stringify(r.json));
  }
  const lis = await api('lis', 'POST', '/evidence/digests', { digest: { algorithm: 'sm3', value: sm3Hex(99) } });
  t.equal(lis.status, 201);

  const own = await api('emr', 'GET', '/evidence/stats');
  t.equal(own.status, 200);
  t.match(own.json, { scope: { project: 'emr' }, total: 3, today: 3, last3Months: 3 });
  t.equal(own.json.perDay.length, 30);
  t.equal(own.json.perDay.at(-1).count, 3);
  t.equal(own.json.perMonth.length, 12);
  t.equal(own.json.perYear.length, 3);
  t.match((await api('emr', 'GET', '/evidence/stats?scope=app')).json, { scope: { project: 'emr', appId: apps.emr.id }, total: 3 });
  t.match((await api('admin', 'GET', '/evidence/stats?scope=all')).json, { scope: {}, total: 4 });
  t.match((await api('admin', 'GET', '/evidence/stats?scope=project&project=lis')).json, { total: 1 });
  t.match((await api('admin', 'GET', `/evidence/stats?scope=app&app=${apps.emr.id.toLowerCase()}`)).json, { scope: { appId: apps.emr.id }, total: 3 });

  t.match((await api('admin', 'POST', '/evidence/projects/emr/freeze')).json, { frozen: true });
  const refused = await api('emr', 'POST', '/evidence/digests', { digest: { algorithm: 'sm3', value: sm3Hex(7) } });
  t.equal(refused.status, 409);
  t.equal(refused.json.code, 'PROJECT_FROZEN');
  t.match((await api('admin', 'POST', '/evidence/projects/emr/unfreeze')).json, { frozen: false });
  t.equal((await api('emr', 'POST', '/evidence/digests', { digest: { algorithm: 'sm3', value: sm3Hex(8) } })).status, 201, 'writable again');

  // A digest of the wrong length is refused by ingestion and kept as a rejection.
  const wrong = await api('emr', 'POST', '/evidence/digests', { digest: { algorithm: 'sm3', value: Buffer.alloc(20).toString('base64') } });
  t.equal(wrong.status, 400);
  const after = (await api('emr', 'GET', '/evidence/stats')).json;
  t.equal(after.total, 4, 'the refused writes are not counted as records');
  t.match(after.rejections, { total: 1, byCode: { DIGEST_LENGTH_INVALID: 1 }, byApp: { [apps.emr.id]: 1 } }, 'the rejection kept by ingestion is counted by code and app');

  const cliStats = json(['evidence', 'stats', '--project', 'emr']);
  t.equal(cliStats.total, 4, 'the CLI reads the same counters beside the running server');
});

t.test('deletion: refused within retention over HTTP, no force over HTTP; an empty project goes', async (t) => {
  const r = await api('admin', 'DELETE', '/evidence/projects/emr');
  t.equal(r.status, 409);
  t.equal(r.json.code, 'PROJECT_RETENTION_ACTIVE');
  t.ok(Date.parse(r.json.retainUntil) > Date.now() + 29 * 365 * 86_400_000, 'retainUntil about 30 years ahead');
  const forced = await api('admin', 'DELETE', '/evidence/projects/emr?force=true');
  t.equal(forced.status, 403);
  t.equal(forced.json.code, 'PROJECT_FORCE_CLI_ONLY');
  t.equal((await api('admin', 'GET', '/evidence/projects/emr')).status, 200, 'still there');

  const gone = await api('admin', 'DELETE', '/evidence/projects/pacs');
  t.equal(gone.status, 200);
  t.match(gone.json, { id: 'pacs', records: 0, forced: false });
  t.equal((await api('admin', 'GET', '/evidence/projects/pacs')).json.code, 'PROJECT_NOT_FOUND');
  const shown = cli(['evidence', 'project', 'show', 'emr', '--data', data, '--json']);
  t.ok(JSON.parse(shown.stdout).retainUntil, 'show names until when records must be kept');

  // The admin on the box forces it, beside the running server: records, counts and the project go.
  const plain = cli(['evidence', 'project', 'delete', 'emr', '--data', data]);
  t.equal(plain.code, 1);
  t.match(plain.stderr, /PROJECT_RETENTION_ACTIVE/);
  t.match(json(['evidence', 'project', 'delete', 'emr', '--force']), { id: 'emr', records: 4, forced: true });
  t.equal((await api('emr', 'GET', '/evidence/projects/emr')).json.code, 'PROJECT_NOT_FOUND');
  t.equal((await api('emr', 'GET', '/evidence/records')).json?.items?.length ?? 0, 0, 'no records left to read');
  const write = await api('emr', 'POST', '/evidence/digests', { digest: { algorithm: 'sm3', value: sm3Hex(9) } });
  t.equal(write.json.code, 'PROJECT_NOT_FOUND', 'no writes into a deleted project');
  t.match((await api('admin', 'GET', '/evidence/stats?scope=all')).json, { total: 1, rejections: { total: 0 } }, "the project's counts are gone");
  t.match(json(['evidence', 'stats']), { total: 1 });
});

t.test('app unpermit beside the running server takes effect at once', async (t) => {
  t.same(json(['app', 'unpermit', apps.admin.id, 'evidence-admin']).permissions, undefined);
  const r = await api('admin', 'GET', '/evidence/projects');
  t.equal(r.status, 403);
  t.equal(r.json.code, 'EVIDENCE_ADMIN_REQUIRED');
  t.match((await api('admin', 'GET', '/evidence/projects/default')).json, { id: 'default' }, 'its own project still');
});

t.test('stop', async (t) => {
  t.equal(await server!.stop(), 0);
});
