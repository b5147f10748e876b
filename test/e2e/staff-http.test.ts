// The staff directory as a hospital system sees it: createApiApp on 127.0.0.1:0 with the real
// LMDB store, real SoftHSM2 custody (PII data key wrapped by the token's KEK), services wired
// by main.ts's buildStaffDirectory, and every request signed with an app's SM2 key (YQ1).
import t, { type Test } from 'tap';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApiApp } from '../../appliance/src/http/create-api-app.js';
import { signRequest } from '../../appliance/src/http/yq1-scheme.js';
import { staffRouter } from '../../appliance/src/http/staff-routes.js';
import { statsRouter } from '../../appliance/src/http/stats-routes.js';
import { buildStaffDirectory } from '../../appliance/src/main.js';
import { openStore, type Store } from '../../appliance/src/store/open-store.js';
import { createAppService } from '../../appliance/src/identity/app-service.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';
import { openPkcs11Custody, type Pkcs11Custody } from '../../firmware-bridge/pkcs11/pkcs11-custody.js';
import { createSm2Signer, generateSm2KeyPair, sm2Digest, sm2SpkiFromPublicKey } from '../../appliance/src/crypto/sm2.js';
import { newId } from '../../appliance/src/store/ids.js';
import { makeTestToken } from '../helpers/softhsm.js';
import { csvZh, nationalId, people, toGbk, withBadCheck, type Person } from '../helpers/staff-data.js';

interface Res {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: any;
}

const token = makeTestToken();
const dir = mkdtempSync(join(tmpdir(), 'yq-staff-http-'));
let store: Store;
let custody: Pkcs11Custody;
let server: Server;
let port: number;
let app: { id: string; signer: Signer };
/** Every response body except reveals: none may contain a plaintext national id or mobile. */
const shown: string[] = [];
const secrets: string[] = [];

t.before(async () => {
  store = await openStore(dir);
  custody = await openPkcs11Custody(
    {
      module: token.module,
      tokenLabel: token.label,
      pin: token.pin,
      softwareSm2: { generate: generateSm2KeyPair, signer: (d) => createSm2Signer(d), spki: sm2SpkiFromPublicKey, digest: sm2Digest },
    },
    store.keys,
  );
  const { app: rec, privateKeyPem } = await createAppService(store).create({ name: 'HIS', project: 'his', algorithm: 'sm2', actor: 'test' });
  app = { id: rec.id, signer: createSoftwareSigner(privateKeyPem) };
  const directory = buildStaffDirectory({ store, custody });
  const api = createApiApp({
    apps: store.apps,
    nonces: store.nonces,
    readiness: async () => ({ ready: true, checks: {} }),
    routers: [staffRouter(directory), statsRouter({ certificates: directory.statistics })],
  });
  server = createServer(api.callback());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
});

t.teardown(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  await custody.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

function call(method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<Res> {
  return new Promise((resolve, reject) => {
    const h = { ...headers, ...(body ? { 'Content-Length': String(body.length) } : {}) };
    const req = request({ host: '127.0.0.1', port, method, path, headers: h, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: any;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function api(method: string, path: string, body?: unknown, contentType?: string): Promise<Res> {
  const bytes = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
  const headers: Record<string, string> = { Authorization: await signRequest(app.signer, app.id, method, path, bytes) };
  if (bytes) headers['Content-Type'] = contentType ?? 'application/json';
  const res = await call(method, path, headers, bytes);
  if (!/\/reveal$/.test(path)) shown.push(res.text);
  return res;
}

function problem(t: Test, res: Res, status: number, code: string): void {
  t.equal(res.status, status, `${status} ${code}: ${res.text.slice(0, 300)}`);
  t.match(res.headers['content-type'], /^application\/problem\+json/);
  t.equal(res.json?.code, code);
  t.ok(res.json?.message?.['zh-CN'] && res.json?.message?.en, 'zh and en message');
}

function remember(...ps: Person[]): Person[] {
  for (const p of ps) secrets.push(p.nationalId, ...(p.mobile ? [p.mobile] : []));
  return ps;
}

t.test('app authentication guards the directory', async (t) => {
  const res = await call('GET', '/api/v1/staff', {});
  t.equal(res.status, 401);
  t.equal(res.json?.code, 'MISSING_AUTH');
});

t.test('departments: create, read, update, refuse what is wrong', async (t) => {
  const created = await api('POST', '/api/v1/departments', { hisDeptId: '03', name: '内科' });
  t.equal(created.status, 201, created.text);
  t.equal(created.headers.location, '/api/v1/departments/03');
  t.match(created.json, { hisDeptId: '03', name: '内科' });
  t.equal((await api('POST', '/api/v1/departments', { hisDeptId: '0301', name: '心内科', parentId: '03', code: 'A03.01' })).status, 201);
  t.equal((await api('POST', '/api/v1/departments', { hisDeptId: '0302', name: '神经内科', parentId: '03' })).status, 201);
  t.equal((await api('POST', '/api/v1/departments', { hisDeptId: 'TMP', name: '临时科室' })).status, 201);
  problem(t, await api('POST', '/api/v1/departments', { hisDeptId: '0301', name: '重复' }), 409, 'DEPARTMENT_EXISTS');
  problem(t, await api('POST', '/api/v1/departments', { hisDeptId: '0401', name: '无上级', parentId: 'NOPE' }), 422, 'DEPARTMENT_NOT_FOUND');
  problem(t, await api('POST', '/api/v1/departments', { hisDeptId: '0402', name: 'x', parentID: '03' }), 400, 'BAD_REQUEST');
  problem(t, await api('POST', '/api/v1/departments', { hisDeptId: '科室', name: 'x' }), 400, 'DEPARTMENT_ID_INVALID');
  problem(t, await api('POST', '/api/v1/departments', 'hisDeptId=1', 'application/x-www-form-urlencoded'), 415, 'UNSUPPORTED_MEDIA_TYPE');

  const list = await api('GET', '/api/v1/departments');
  t.same(list.json.items.map((d: { hisDeptId: string }) => d.hisDeptId), ['03', '0301', '0302', 'TMP']);
  t.equal((await api('GET', '/api/v1/departments/0301')).json.parentId, '03');
  problem(t, await api('GET', '/api/v1/departments/0999'), 404, 'DEPARTMENT_NOT_FOUND');
  const renamed = await api('PATCH', '/api/v1/departments/0301', { name: '心血管内科', code: null });
  t.equal(renamed.status, 200, renamed.text);
  t.equal(renamed.json.name, '心血管内科');
  t.equal(renamed.json.code, undefined);
  problem(t, await api('PATCH', '/api/v1/departments/03', { parentId: '0301' }), 422, 'DEPARTMENT_CYCLE');
});

const [zhang, li] = remember(
  { name: '张三', employeeId: 'Z001', departmentId: '0301', titleLevel: '主任医师', mobile: '13812345678', nationalId: nationalId('19750312', 17) },
  { name: '李四', employeeId: 'L002', departmentId: '0302', mobile: '13987654321', nationalId: nationalId('19880808', 21, '440305') },
);

t.test('staff: create masked, refuse duplicates, unknown departments and bad numbers', async (t) => {
  const res = await api('POST', '/api/v1/staff', zhang);
  t.equal(res.status, 201, res.text);
  t.equal(res.headers.location, '/api/v1/staff/Z001');
  t.equal(res.json.nationalId, `${zhang.nationalId.slice(0, 3)}***********${zhang.nationalId.slice(-4)}`);
  t.equal(res.json.mobile, '138****5678');
  t.equal((await api('POST', '/api/v1/staff', li)).status, 201);
  problem(t, await api('POST', '/api/v1/staff', { ...li, nationalId: nationalId('19900101', 9) }), 409, 'STAFF_EXISTS');
  problem(t, await api('POST', '/api/v1/staff', { ...li, employeeId: 'N1', departmentId: '7777' }), 422, 'DEPARTMENT_NOT_FOUND');
  const bad = await api('POST', '/api/v1/staff', { ...li, employeeId: 'N2', nationalId: withBadCheck(li.nationalId) });
  problem(t, bad, 400, 'NATIONAL_ID_CHECKSUM');
  t.equal(bad.json.field, 'nationalId');
  problem(t, await api('POST', '/api/v1/staff', { ...li, employeeId: 'N3', nationalId: '440305880808211' }), 400, 'NATIONAL_ID_LEGACY');
  problem(t, await api('POST', '/api/v1/staff', { ...li, employeeId: 'N4', mobile: '12345' }), 400, 'MOBILE_INVALID');
  problem(t, await api('GET', '/api/v1/staff/NOBODY'), 404, 'STAFF_NOT_FOUND');
});

t.test('CSV import over HTTP: GBK with charset, UTF-8 detected, broken files refused whole', async (t) => {
  const gbkPeople = remember(...people(30, ['0301', '0302'], 'G'));
  const gbk = await api('POST', '/api/v1/staff/import', toGbk(csvZh(gbkPeople)), 'text/csv; charset=GBK');
  t.equal(gbk.status, 200, gbk.text.slice(0, 300));
  t.match(gbk.json, { rows: 30, accepted: 30, rejected: 0, imported: 30, file: { encoding: 'gbk' } });
  const utf8People = remember(...people(12, ['0302'], 'U'));
  const utf8 = await api('POST', '/api/v1/staff/import', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(csvZh(utf8People))]), 'text/csv');
  t.match(utf8.json, { imported: 12, file: { encoding: 'utf-8', bom: true } });
  t.equal((await api('GET', '/api/v1/staff/G0002')).json.name, '测试员1', 'GBK names arrive intact');

  const broken = remember(...people(4, ['0301'], 'X'));
  broken[1] = { ...broken[1], nationalId: withBadCheck(broken[1].nationalId) };
  broken[2] = { ...broken[2], employeeId: 'G0001' }; // exists already
  broken[3] = { ...broken[3], departmentId: 'NOPE' };
  const refused = await api('POST', '/api/v1/staff/import', Buffer.from(csvZh(broken)), 'text/csv; charset=utf-8');
  problem(t, refused, 422, 'IMPORT_REJECTED');
  t.match(refused.json.report, { rows: 4, accepted: 1, rejected: 3, imported: 0 });
  t.same(
    refused.json.report.results.map((r: { row: number; status: string; reasons?: { code: string }[] }) => [r.row, r.status, r.reasons?.[0]?.code]),
    [[2, 'accepted', undefined], [3, 'rejected', 'NATIONAL_ID_CHECKSUM'], [4, 'rejected', 'STAFF_EXISTS'], [5, 'rejected', 'DEPARTMENT_NOT_FOUND']],
  );
  problem(t, await api('GET', '/api/v1/staff/X0001'), 404, 'STAFF_NOT_FOUND');

  problem(t, await api('POST', '/api/v1/staff/import', Buffer.from(csvZh(broken)), 'text/plain'), 415, 'UNSUPPORTED_MEDIA_TYPE');
  problem(t, await api('POST', '/api/v1/staff/import', Buffer.from('a,b\n'), 'text/csv; charset=big5'), 415, 'UNSUPPORTED_MEDIA_TYPE');
  problem(t, await api('POST', '/api/v1/staff/import', Buffer.concat([Buffer.from('姓名,工号\n'), randomBytes(64), Buffer.from([0xff])]), 'text/csv'), 400, 'IMPORT_BAD_FILE');
  problem(t, await api('POST', '/api/v1/staff/import', Buffer.from('工号,部门\n1,2\n'), 'text/csv'), 400, 'IMPORT_BAD_FILE');
  const audits = await store.audit.list({ action: 'staff.import' });
  t.same(audits.map((a) => [a.actor, a.outcome]), [[`app:${app.id}`, 'ok'], [`app:${app.id}`, 'ok'], [`app:${app.id}`, 'denied']]);
});

t.test('list with pagination and filters, get, update, leave — masked throughout', async (t) => {
  const ids: string[] = [];
  let path = '/api/v1/staff?limit=7';
  for (;;) {
    const page = await api('GET', path);
    t.equal(page.status, 200, page.text.slice(0, 200));
    ids.push(...page.json.items.map((s: { employeeId: string }) => s.employeeId));
    if (!page.json.next) break;
    path = `/api/v1/staff?limit=7&cursor=${page.json.next}`;
  }
  t.equal(ids.length, 44, '2 created + 30 + 12 imported');
  t.equal(new Set(ids).size, 44);
  const inDept = await api('GET', '/api/v1/staff?departmentId=0302&limit=500');
  t.ok(inDept.json.items.every((s: { departmentId: string }) => s.departmentId === '0302'));
  t.equal(inDept.json.items.length, 1 + 15 + 12);
  problem(t, await api('GET', '/api/v1/staff?status=gone'), 400, 'FIELD_INVALID');
  problem(t, await api('GET', '/api/v1/staff?limit=x'), 400, 'BAD_REQUEST');

  const upd = await api('PATCH', '/api/v1/staff/L002', { titleLevel: '副主任医师', mobile: '13700001111' });
  t.equal(upd.status, 200, upd.text);
  t.equal(upd.json.mobile, '137****1111');
  secrets.push('13700001111');
  const left = await api('POST', '/api/v1/staff/L002/leave');
  t.equal(left.json.status, 'left');
  const leftList = await api('GET', '/api/v1/staff?status=left');
  t.same(leftList.json.items.map((s: { employeeId: string }) => s.employeeId), ['L002']);
  t.equal((await api('POST', '/api/v1/staff/L002/reinstate')).json.status, 'active');
});

t.test('reveal: plaintext only here, with a reason, audited with the app as actor', async (t) => {
  const none = await api('POST', '/api/v1/staff/Z001/reveal', {});
  problem(t, none, 400, 'MISSING_FIELD');
  const r = await api('POST', '/api/v1/staff/Z001/reveal', { reason: '医务科核对执业注册' });
  t.equal(r.status, 200, r.text);
  t.same(r.json, { employeeId: 'Z001', nationalId: zhang.nationalId, mobile: zhang.mobile });
  t.equal(r.headers['cache-control'], 'no-store');
  const entry = (await store.audit.list({ action: 'staff.reveal' }))[0];
  t.match(entry, { actor: `app:${app.id}`, target: 'Z001', outcome: 'ok', detail: { reason: '医务科核对执业注册', fields: ['nationalId', 'mobile'] } });
  t.notOk(JSON.stringify(entry).includes(zhang.nationalId));
});

t.test('lookup by national id through the blind index', async (t) => {
  const res = await api('POST', '/api/v1/staff/lookup', { nationalId: li.nationalId });
  t.equal(res.status, 200, res.text);
  t.same(res.json.items.map((s: { employeeId: string }) => s.employeeId), ['L002']);
  problem(t, await api('POST', '/api/v1/staff/lookup', {}), 400, 'BAD_REQUEST');
});

t.test('a department in use cannot be deleted; an empty one can', async (t) => {
  problem(t, await api('DELETE', '/api/v1/departments/0301'), 409, 'DEPARTMENT_IN_USE');
  problem(t, await api('DELETE', '/api/v1/departments/03'), 409, 'DEPARTMENT_IN_USE');
  const del = await api('DELETE', '/api/v1/departments/TMP');
  t.equal(del.status, 204);
  problem(t, await api('DELETE', '/api/v1/departments/TMP'), 404, 'DEPARTMENT_NOT_FOUND');
});

t.test('certificate statistics with staff counts', async (t) => {
  const base = { caId: 'sm2-issuing', hierarchy: 'sm2', subject: 'CN=x', commonName: 'x', keyAlgorithm: 'sm2', keyOrigin: 'csr', publicKeyInfo: 'AA==', notBefore: '2026-01-01T00:00:00.000Z', notAfter: '2099-01-01T00:00:00.000Z', certificate: 'AA==', issuedBy: 'test', updatedAt: '2026-01-01T00:00:00.000Z' } as const;
  await store.certs.insert({ ...base, serial: '0a01', id: newId(), profile: 'personal', status: 'good', departmentId: '0301', employeeId: 'Z001', issuedAt: '2026-04-30T16:30:00.000Z' });
  await store.certs.insert({ ...base, serial: '0a02', id: newId(), profile: 'personal', status: 'revoked', departmentId: '0302', issuedAt: '2026-04-02T00:00:00.000Z', revocation: { time: '2026-04-03T00:00:00.000Z', reason: 'keyCompromise', by: 'test' } });
  const res = await api('GET', '/api/v1/stats/certificates');
  t.equal(res.status, 200, res.text);
  t.match(res.json, { total: 2, timeZone: 'Asia/Shanghai', byStatus: { good: 1, revoked: 1 }, byProfile: [{ profile: 'personal', count: 2 }] });
  t.same(res.json.byMonth, [{ month: '2026-04', count: 1 }, { month: '2026-05', count: 1 }]);
  const d0301 = res.json.byDepartment.find((d: { departmentId: string }) => d.departmentId === '0301');
  t.match(d0301, { name: '心血管内科', certificates: 1, staff: { active: 16, left: 0 } });
});

t.test('no response except a reveal ever carried a plaintext national id or mobile', async (t) => {
  const all = shown.join('\n');
  t.ok(shown.length > 40, `${shown.length} responses checked`);
  t.ok(secrets.length > 80, `${secrets.length} secrets looked for`);
  for (const s of secrets) if (all.includes(s)) t.fail(`plaintext ${s.slice(0, 3)}… appeared in a response`);
  t.match(all, /\*\*\*\*/, 'masks did appear');
});
