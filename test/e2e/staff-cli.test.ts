// The staff directory from the built `yiqian` CLI and the served appliance (needs `make
// build`): `dept add|list`, `staff import` (GBK file, then a refused file, exit 1, nothing
// imported), `staff list` masked — and the same data over HTTPS from `yiqian serve`, whose
// routers main.ts wires, including an audited reveal and a CLI run beside the server.
import t from 'tap';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cli, fetchRaw, serve, tempDataDir, type Served } from '../helpers/appliance.js';
import { signRequest } from '../../appliance/src/http/yq1-scheme.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import { openStore } from '../../appliance/src/store/open-store.js';
import { csvZh, people, toGbk, withBadCheck } from '../helpers/staff-data.js';

const data = tempDataDir();
const work = dirname(data);
let server: Served | undefined;

t.teardown(async () => {
  if (server && server.proc.exitCode === null) await server.stop('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

const staff = people(8, ['0301', '0302'], 'C');

t.test('CLI: departments, a GBK import, a refused import, a masked list', async (t) => {
  const init = cli(['init', '--data', data]);
  t.equal(init.code, 0, init.stderr);
  t.equal(cli(['dept', 'add', '--data', data, '--id', '03', '--name', '内科']).code, 0);
  const added = cli(['dept', 'add', '--data', data, '--id', '0301', '--name', '心内科', '--parent', '03', '--json']);
  t.equal(added.code, 0, added.stderr);
  t.match(JSON.parse(added.stdout), { hisDeptId: '0301', name: '心内科', parentId: '03' });
  t.equal(cli(['dept', 'add', '--data', data, '--id', '0302', '--name', '神经内科']).code, 0);
  const dup = cli(['dept', 'add', '--data', data, '--id', '0302', '--name', 'again']);
  t.equal(dup.code, 1);
  t.match(dup.stderr, /DEPARTMENT_EXISTS/);
  t.same(JSON.parse(cli(['dept', 'list', '--data', data, '--json']).stdout).map((d: { hisDeptId: string }) => d.hisDeptId), ['03', '0301', '0302']);

  const gbkFile = join(work, 'staff-gbk.csv');
  writeFileSync(gbkFile, toGbk(csvZh(staff)));
  const imported = cli(['staff', 'import', '--data', data, '--file', gbkFile, '--json']);
  t.equal(imported.code, 0, imported.stderr);
  t.match(JSON.parse(imported.stdout), { rows: 8, imported: 8, file: { encoding: 'gbk' } });

  const bad = [...people(3, ['0301'], 'D')];
  bad[1] = { ...bad[1], nationalId: withBadCheck(bad[1].nationalId) };
  const badFile = join(work, 'bad.csv');
  writeFileSync(badFile, csvZh(bad));
  const refused = cli(['staff', 'import', '--data', data, '--file', badFile]);
  t.equal(refused.code, 1, 'a refused import exits 1');
  t.match(refused.stdout, /NATIONAL_ID_CHECKSUM/);
  t.match(refused.stdout, /nothing imported: 1 of 3 rows rejected/);
  t.equal(cli(['staff', 'import', '--data', data, '--file', join(work, 'missing.csv')]).code, 2, 'an unreadable file is a usage error');

  const list = cli(['staff', 'list', '--data', data, '--json']);
  t.equal(list.code, 0, list.stderr);
  const rows = JSON.parse(list.stdout) as { employeeId: string; nationalId: string; mobile: string }[];
  t.same(rows.map((r) => r.employeeId), staff.map((s) => s.employeeId), 'the refused file added nobody');
  for (const s of staff) {
    t.notOk(list.stdout.includes(s.nationalId) || list.stdout.includes(s.mobile!), `${s.employeeId} masked`);
  }
  t.match(rows[0].nationalId, /^\d{3}\*{11}[\dX]{4}$/);
  const human = cli(['staff', 'list', '--data', data, '--department', '0302', '--status', 'active']);
  t.match(human.stdout, /C0002/);
  t.notMatch(human.stdout, /C0001/);
});

t.test('served: the same directory over HTTPS, reveal audited, and the CLI beside the server', async (t) => {
  const created = cli(['app', 'create', '--data', data, '--name', 'HIS', '--key-out', join(work, 'his.key'), '--json']);
  t.equal(created.code, 0, created.stderr);
  const appId = JSON.parse(created.stdout).id as string;
  const signer = createSoftwareSigner(readFileSync(join(work, 'his.key'), 'utf8'));
  server = await serve(data);
  const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: any; body: string }> => {
    const bytes = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string> = { Authorization: await signRequest(signer, appId, method, path, bytes) };
    if (bytes) headers['Content-Type'] = 'application/json';
    const r = await fetchRaw(`${server!.httpsUrl}${path}`, { method, headers, body: bytes });
    return { status: r.status, json: r.body ? JSON.parse(r.body) : undefined, body: r.body };
  };
  const page = await call('GET', '/api/v1/staff?departmentId=0301');
  t.equal(page.status, 200, page.body);
  t.same(page.json.items.map((s: { employeeId: string }) => s.employeeId), ['C0001', 'C0003', 'C0005', 'C0007']);
  t.notOk(page.body.includes(staff[0].nationalId));
  const reveal = await call('POST', '/api/v1/staff/C0001/reveal', { reason: '核对执业信息' });
  t.equal(reveal.status, 200, reveal.body);
  t.equal(reveal.json.nationalId, staff[0].nationalId, 'the server unwraps the data key the CLI made');
  const stats = await call('GET', '/api/v1/stats/certificates');
  t.equal(stats.status, 200, stats.body);
  t.match(stats.json.byDepartment.find((d: { departmentId: string }) => d.departmentId === '0302'), { name: '神经内科', staff: { active: 4, left: 0 } });

  // A CLI import while the server runs (two processes, one LMDB environment, one token).
  const more = join(work, 'more.csv');
  writeFileSync(more, csvZh(people(2, ['0302'], 'M')));
  const side = cli(['staff', 'import', '--data', data, '--file', more]);
  t.equal(side.code, 0, side.stderr);
  const seen = await call('GET', '/api/v1/staff/M0002');
  t.equal(seen.status, 200, seen.body);
  t.equal(seen.json.departmentId, '0302');
  t.equal(await server.stop(), 0);

  const store = await openStore(data, { readOnly: true });
  try {
    const reveals = await store.audit.list({ action: 'staff.reveal' });
    t.same(reveals.map((r) => [r.actor, r.target, r.detail]), [[`app:${appId}`, 'C0001', { reason: '核对执业信息', fields: ['nationalId', 'mobile'] }]]);
    t.same((await store.audit.list({ action: 'staff.import' })).map((r) => [r.actor.startsWith('cli:'), r.outcome, r.detail?.rows]), [[true, 'ok', 8], [true, 'denied', 3], [true, 'ok', 2]]);
    t.same(await store.audit.verifyChain(), { ok: true, count: (await store.audit.list({ limit: 1000 })).length }, 'the audit chain is intact');
  } finally {
    await store.close();
  }
});
