// The app service as the CLI and admin API use it: key pairs handed out once, validation with
// clear reasons, and every state change (and failed attempt) in the audit log.
import t, { type Test } from 'tap';
import { createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAppService, type AppService } from '../../appliance/src/identity/app-service.js';
import { openStore, type Store } from '../../appliance/src/store/open-store.js';
import { rejection } from '../helpers/store-fixture.js';
import { createProjects } from '../../appliance/src/evidence/projects.js';

async function fresh(t: Test): Promise<{ store: Store; svc: AppService }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'yq-appsvc-'));
  const store = await openStore(dataDir);
  t.teardown(async () => {
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return { store, svc: createAppService(store) };
}


const ACTOR = 'cli:root';

t.test('create (SM2 by default): the private key PEM matches the stored public key and signs', async (t) => {
  const { store, svc } = await fresh(t);
  const { app, privateKeyPem } = await svc.create({ name: '医院信息系统 HIS', actor: ACTOR });
  t.equal(app.algorithm, 'sm2');
  t.equal(app.project, 'default');
  t.equal(app.status, 'active');
  t.match(app.id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
  t.equal(app.createdAt, app.updatedAt);
  t.match(privateKeyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  const priv = createPrivateKey(privateKeyPem);
  const spki = Buffer.from(app.publicKeyInfo, 'base64');
  // Node 20 reports parsed SM2 keys with asymmetricKeyType undefined; the SPKI names the curve:
  // id-ecPublicKey with parameters sm2p256v1 (1.2.156.10197.1.301, GB/T 32918 / GM/T 0006).
  t.ok(spki.includes(Buffer.from('06082a811ccf5501822d', 'hex')), 'SPKI names the SM2 curve');
  t.ok(createPublicKey(priv).export({ type: 'spki', format: 'der' }).equals(spki), 'PEM and stored SPKI are one key pair');
  const pub = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  const sig = sign('sm3', Buffer.from('hello'), priv);
  t.ok(verify('sm3', Buffer.from('hello'), pub, sig), 'a signature by the handed-out key verifies with the stored key');
  t.same(await store.apps.get(app.id), app, 'stored as returned');
  t.notOk(JSON.stringify(await store.apps.list()).includes('PRIVATE'), 'the private key is not kept');
  const [rec] = await store.audit.list();
  t.match(rec, { actor: ACTOR, action: 'app.create', target: app.id, outcome: 'ok', detail: { name: '医院信息系统 HIS', project: 'default', algorithm: 'sm2' } });
  t.notOk(JSON.stringify(rec).includes('PRIVATE'), 'nor does the audit log see it');
});

t.test('create with ECDSA P-256 in a project', async (t) => {
  const { svc } = await fresh(t);
  const { app, privateKeyPem } = await svc.create({ name: 'LIS', project: 'branch.east_2', algorithm: 'ecdsa-p256', actor: ACTOR });
  t.equal(app.algorithm, 'ecdsa-p256');
  t.equal(app.project, 'branch.east_2');
  const priv = createPrivateKey(privateKeyPem);
  t.equal(priv.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  const pub = createPublicKey({ key: Buffer.from(app.publicKeyInfo, 'base64'), format: 'der', type: 'spki' });
  t.ok(verify('sha256', Buffer.from('x'), pub, sign('sha256', Buffer.from('x'), priv)));
});

t.test('bad input is BAD_REQUEST with a reason, and nothing is stored', async (t) => {
  const { store, svc } = await fresh(t);
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ name: '', actor: ACTOR }, /1–64/],
    [{ name: 'x'.repeat(65), actor: ACTOR }, /1–64/],
    [{ name: 'line\nbreak', actor: ACTOR }, /control/],
    [{ name: 'tab\there', actor: ACTOR }, /control/],
    [{ name: 'evil\u202Egnp.exe', actor: ACTOR }, /format/],
    [{ name: ' padded', actor: ACTOR }, /whitespace/],
    [{ name: 42, actor: ACTOR }, /string/],
    [{ name: 'ok', project: 'has space', actor: ACTOR }, /project/],
    [{ name: 'ok', project: '', actor: ACTOR }, /project/],
    [{ name: 'ok', project: 'p'.repeat(65), actor: ACTOR }, /project/],
    [{ name: 'ok', algorithm: 'rsa-2048', actor: ACTOR }, /algorithm/],
    [{ name: 'ok', actor: '' }, /actor/],
  ];
  for (const [input, reason] of cases) {
    const e = await rejection(svc.create(input as never));
    t.equal(e.code, 'BAD_REQUEST', JSON.stringify(input));
    t.equal(e.status, 400);
    t.match(e.text.en, reason);
  }
  t.same(await store.apps.list(), []);
  t.ok(await svc.create({ name: '六十四'.padEnd(64, '字'), actor: ACTOR }), '64 characters (not bytes) are fine');
});

t.test('a duplicate name is APP_EXISTS, and the failed attempt is audited', async (t) => {
  const { store, svc } = await fresh(t);
  await svc.create({ name: 'PACS', actor: ACTOR });
  const e = await rejection(svc.create({ name: 'PACS', actor: 'cli:other' }));
  t.equal(e.code, 'APP_EXISTS');
  t.equal(e.status, 409);
  const log = await store.audit.list();
  t.equal(log.length, 2);
  t.match(log[1], { actor: 'cli:other', action: 'app.create', outcome: 'error', detail: { code: 'APP_EXISTS' } });
  t.equal((await svc.list()).length, 1);
});

t.test('get and unknown ids', async (t) => {
  const { svc } = await fresh(t);
  const { app } = await svc.create({ name: 'EMR', actor: ACTOR });
  t.same(await svc.get(app.id), app);
  t.same(await svc.get(app.id.toLowerCase()), app, 'ULIDs are case-insensitive');
  for (const id of ['01ARZ3NDEKTSV4RRFFQ69G5FAV', 'not-an-id', '', 'x'.repeat(10_000)]) {
    const e = await rejection(svc.get(id));
    t.equal(e.code, 'APP_NOT_FOUND');
    t.equal(e.status, 404);
  }
});

t.test('freeze, unfreeze, delete: each audited with actor, action and target', async (t) => {
  const { store, svc } = await fresh(t);
  const { app } = await svc.create({ name: 'HIS', actor: ACTOR });
  const frozen = await svc.freeze(app.id, 'user:admin1');
  t.equal(frozen.status, 'frozen');
  t.equal((await svc.get(app.id)).status, 'frozen');
  t.same((await svc.list({ status: 'frozen' })).map((a) => a.id), [app.id]);
  t.equal((await svc.unfreeze(app.id, 'user:admin2')).status, 'active');
  await svc.delete(app.id, 'user:admin3');
  t.equal((await rejection(svc.get(app.id))).code, 'APP_NOT_FOUND');
  const log = (await store.audit.list()).map(({ actor, action, target, outcome, detail }) => ({ actor, action, target, outcome, detail }));
  t.same(log, [
    { actor: ACTOR, action: 'app.create', target: app.id, outcome: 'ok', detail: { name: 'HIS', project: 'default', algorithm: 'sm2' } },
    { actor: 'user:admin1', action: 'app.freeze', target: app.id, outcome: 'ok', detail: { status: 'frozen' } },
    { actor: 'user:admin2', action: 'app.unfreeze', target: app.id, outcome: 'ok', detail: { status: 'active' } },
    { actor: 'user:admin3', action: 'app.delete', target: app.id, outcome: 'ok', detail: { name: 'HIS', project: 'default' } },
  ]);
  t.same(await store.audit.verifyChain(), { ok: true, count: 4 });
});

t.test('changing an unknown app is APP_NOT_FOUND and audited as an error', async (t) => {
  const { store, svc } = await fresh(t);
  const ghost = '01ARZ3NDEKTSV4RRFFQ69G5FAV';
  t.equal((await rejection(svc.freeze(ghost, ACTOR))).code, 'APP_NOT_FOUND');
  t.equal((await rejection(svc.unfreeze(ghost, ACTOR))).code, 'APP_NOT_FOUND');
  t.equal((await rejection(svc.delete(ghost, ACTOR))).code, 'APP_NOT_FOUND');
  const log = await store.audit.list();
  t.same(log.map((r) => [r.action, r.target, r.outcome, r.detail?.code]), [
    ['app.freeze', ghost, 'error', 'APP_NOT_FOUND'],
    ['app.unfreeze', ghost, 'error', 'APP_NOT_FOUND'],
    ['app.delete', ghost, 'error', 'APP_NOT_FOUND'],
  ]);
});

t.test('list validates its filter', async (t) => {
  const { svc } = await fresh(t);
  await svc.create({ name: 'A', project: 'p1', actor: ACTOR });
  await svc.create({ name: 'B', project: 'p2', actor: ACTOR });
  t.same((await svc.list({ project: 'p2' })).map((a) => a.name), ['B']);
  t.equal((await rejection(svc.list({ project: 'bad project' }))).code, 'BAD_REQUEST');
  t.equal((await rejection(svc.list({ status: 'deleted' as never }))).code, 'BAD_REQUEST');
});

t.test('with the evidence projects given (as the CLI does): only an existing project, by its id rule', async (t) => {
  const { store } = await fresh(t);
  const projects = createProjects({ projects: store.evidenceProjects, counters: store.evidenceCounters, audit: store.audit, defaultRetentionYears: 30 });
  const svc = createAppService(store, { projects });
  t.equal((await svc.create({ name: 'HIS', actor: ACTOR })).app.project, 'default', "'default' always exists");
  await projects.create({ id: 'emr-2024', name: '电子病历' }, ACTOR);
  t.equal((await svc.create({ name: 'EMR', project: 'emr-2024', actor: ACTOR })).app.project, 'emr-2024');
  const cases: [string, string, number, RegExp][] = [
    ['nope', 'PROJECT_NOT_FOUND', 404, /create it first/],
    ['EMR-2024', 'PROJECT_ID_INVALID', 400, /a-z 0-9 _ -/],
    ['branch.east', 'PROJECT_ID_INVALID', 400, /a-z 0-9 _ -/],
    ['has space', 'PROJECT_ID_INVALID', 400, /a-z 0-9 _ -/],
    ['', 'PROJECT_ID_INVALID', 400, /a-z 0-9 _ -/],
  ];
  for (const [project, code, status, reason] of cases) {
    const e = await rejection(svc.create({ name: 'LIS', project, actor: ACTOR }));
    t.same([e.code, e.status], [code, status], `project ${JSON.stringify(project)}: ${code}`);
    t.match(e.text.en, reason);
    t.ok(e.text.zh, 'and in Chinese');
  }
  t.same((await svc.list()).map((a) => a.name), ['HIS', 'EMR'], 'no app made for a refused project');
  const refused = await store.audit.list({ action: 'app.create', limit: 100 });
  t.equal(refused.filter((r) => r.outcome === 'error').length, cases.length, 'each refusal audited');
});
