// AppRepository: create/get/list/filters/status/delete, one name per project (also under
// concurrency), and audit entries committed in the same transaction as the change.
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type YiqianError } from '../../appliance/src/errors.js';
import type { AppRecord } from '../../appliance/src/store/app-repository.js';
import { newId, nowIso } from '../../appliance/src/store/ids.js';
import { openStore } from '../../appliance/src/store/open-store.js';
import { withRawDatabase } from '../../appliance/src/store/raw-access.js';
import { freshStore, rejection } from '../helpers/store-fixture.js';

const fresh = (t: Test) => freshStore(t, 'yq-apps-');


function app(name: string, project = 'default', extra: Partial<AppRecord> = {}): AppRecord {
  const now = nowIso();
  return { id: newId(), name, project, algorithm: 'sm2', publicKeyInfo: Buffer.from(name).toString('base64'), status: 'active', createdAt: now, updatedAt: now, ...extra };
}

t.test('create, get, list in creation order, and persistence across reopen', async (t) => {
  const { store, dataDir } = await fresh(t);
  const a = await store.apps.create(app('HIS'));
  const b = await store.apps.create(app('LIS'));
  const c = await store.apps.create(app('HIS', 'branch-2'));
  t.same(await store.apps.get(a.id), a);
  t.equal(await store.apps.get(newId()), undefined);
  t.equal(await store.apps.get('x'.repeat(5000)), undefined, 'absurd ids are simply not found');
  t.same((await store.apps.list()).map((r) => r.id), [a.id, b.id, c.id]);
  t.same((await store.apps.list({ project: 'default' })).map((r) => r.id), [a.id, b.id]);
  t.same((await store.apps.list({ project: 'branch-2' })).map((r) => r.id), [c.id]);
  t.same(await store.apps.list({ project: 'branch' }), [], 'a project is matched exactly, not as a prefix');
  await store.close();
  const again = await openStore(dataDir);
  t.same(await again.apps.get(b.id), b);
  await again.close();
});

t.test('only AppRecord fields are stored', async (t) => {
  const { store } = await fresh(t);
  const rec = { ...app('PACS'), privateKeyPem: 'must never be stored' } as AppRecord;
  await store.apps.create(rec);
  t.notOk('privateKeyPem' in ((await store.apps.get(rec.id)) as object));
});

t.test('one name per project: APP_EXISTS 409, other projects and deleted names are free', async (t) => {
  const { store } = await fresh(t);
  const first = await store.apps.create(app('EMR'));
  const e = await rejection(store.apps.create(app('EMR')));
  t.equal(e.code, 'APP_EXISTS');
  t.equal(e.status, 409);
  t.same(e.detail, { project: 'default', name: 'EMR' });
  await store.apps.create(app('EMR', 'other'));
  t.equal((await store.apps.list()).length, 2, 'the refused app left nothing behind');
  t.ok(await store.apps.delete(first.id));
  await store.apps.create(app('EMR'));
  t.equal((await store.apps.list({ project: 'default' })).length, 1);
});

t.test('concurrent creates with the same name: exactly one wins', async (t) => {
  const { store } = await fresh(t);
  const results = await Promise.allSettled(Array.from({ length: 20 }, () => store.apps.create(app('RACE'))));
  const won = results.filter((r) => r.status === 'fulfilled');
  t.equal(won.length, 1);
  for (const r of results) if (r.status === 'rejected') t.equal((r.reason as YiqianError).code, 'APP_EXISTS');
  t.equal((await store.apps.list()).length, 1);
});

t.test('setStatus and the status filter', async (t) => {
  const { store } = await fresh(t);
  const a = await store.apps.create(app('A', 'p', { createdAt: '2020-01-01T00:00:00.000Z', updatedAt: '2020-01-01T00:00:00.000Z' }));
  const b = await store.apps.create(app('B', 'p'));
  const frozen = await store.apps.setStatus(a.id, 'frozen');
  t.equal(frozen?.status, 'frozen');
  t.not(frozen?.updatedAt, a.updatedAt, 'updatedAt moves');
  t.equal(frozen?.createdAt, a.createdAt);
  t.same((await store.apps.list({ status: 'frozen' })).map((r) => r.id), [a.id]);
  t.same((await store.apps.list({ project: 'p', status: 'active' })).map((r) => r.id), [b.id]);
  t.equal(await store.apps.setStatus(newId(), 'frozen'), undefined);
  const back = await store.apps.setStatus(a.id, 'active');
  t.equal(back?.status, 'active');
  t.equal((await store.apps.get(a.id))?.status, 'active');
});

t.test('delete removes the record and returns it; deleting twice returns undefined', async (t) => {
  const { store } = await fresh(t);
  const a = await store.apps.create(app('GONE'));
  t.same(await store.apps.delete(a.id), a);
  t.equal(await store.apps.get(a.id), undefined);
  t.equal(await store.apps.delete(a.id), undefined);
  t.same(await store.apps.list(), []);
});

t.test('audit entries commit with the change, and not without it', async (t) => {
  const { store } = await fresh(t);
  const entry = (action: string, target?: string) => ({ actor: 'cli:test', action, target, outcome: 'ok' as const });
  const a = await store.apps.create(app('AUD'), { audit: entry('app.create', 'x') });
  await rejection(store.apps.create(app('AUD'), { audit: entry('app.create') }));
  await store.apps.setStatus(a.id, 'frozen', { audit: entry('app.freeze', a.id) });
  await store.apps.setStatus(newId(), 'frozen', { audit: entry('app.freeze', 'missing') });
  await store.apps.delete(a.id, { audit: entry('app.delete', a.id) });
  await store.apps.delete(a.id, { audit: entry('app.delete', a.id) });
  const log = await store.audit.list();
  t.same(log.map((r) => r.action), ['app.create', 'app.freeze', 'app.delete'], 'refused and no-op changes wrote no audit record');
  t.same(await store.audit.verifyChain(), { ok: true, count: 3 });
});

t.test('an invalid audit entry is refused before anything is written', async (t) => {
  const { store } = await fresh(t);
  const rec = app('INVALID-AUDIT');
  const e = await rejection(store.apps.create(rec, { audit: { actor: '', action: 'app.create', outcome: 'ok' } }));
  t.equal(e.code, 'INTERNAL');
  t.equal(await store.apps.get(rec.id), undefined);
});

t.test('when the audit append fails inside the transaction, the change is rolled back', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'yq-apps-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  let store = await openStore(dataDir);
  await store.audit.append({ actor: 'system', action: 'test.one', outcome: 'ok' });
  await store.audit.append({ actor: 'system', action: 'test.two', outcome: 'ok' });
  await store.close();
  // Cut the newest record off, as an intruder hiding an entry would: the head no longer matches.
  await withRawDatabase(dataDir, 'audit', (db) => db.remove(2));
  store = await openStore(dataDir);
  t.teardown(() => store.close());
  const rec = app('ROLLBACK');
  const e = await rejection(store.apps.create(rec, { audit: { actor: 'cli:test', action: 'app.create', target: rec.id, outcome: 'ok' } }));
  t.equal(e.code, 'INTEGRITY_CHECK_FAILED');
  t.equal(await store.apps.get(rec.id), undefined, 'the app put in the same transaction was rolled back');
  t.same(await store.apps.list(), []);
  await store.apps.create(rec); // the name index was rolled back too
  t.equal((await store.apps.get(rec.id))?.name, 'ROLLBACK');
});

t.test('malformed records are BAD_REQUEST', async (t) => {
  const { store } = await fresh(t);
  t.equal((await rejection(store.apps.create(app('')))).code, 'BAD_REQUEST');
  t.equal((await rejection(store.apps.create(app('x', 'p'.repeat(300))))).code, 'BAD_REQUEST');
  t.same(await store.apps.list(), []);
});
