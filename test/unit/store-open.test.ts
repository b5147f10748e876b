// Opening the store: where it lives, what happens when it cannot, read-only use, readiness
// checks, backups and the format pin.
import t, { type Test } from 'tap';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeTime } from 'ulid';
import { openStore, type Store } from '../../appliance/src/store/open-store.js';
import { newId, nowIso } from '../../appliance/src/store/ids.js';
import { STORE_PAGE_SIZE } from '../../appliance/src/store/durable.js';
import { withRawDatabase } from '../../appliance/src/store/raw-access.js';
import { rejection } from '../helpers/store-fixture.js';

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'yq-store-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}


t.test('creates <dataDir>/db and keeps what was written across a reopen', async (t) => {
  const dataDir = join(tempDir(t), 'data', 'nested');
  const store = await openStore(dataDir);
  t.ok(existsSync(join(dataDir, 'db', 'data.mdb')), 'one LMDB environment at <dataDir>/db');
  await store.meta.set('device', { serial: 'YQ-0001' });
  await store.check();
  await store.close();
  await store.close(); // idempotent

  const again = await openStore(dataDir);
  t.same(await again.meta.get('device'), { serial: 'YQ-0001' });
  await again.close();
});

t.test('a data dir under a regular file is DATA_DIR_UNWRITABLE with the path and a reason', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'not-a-dir');
  writeFileSync(file, 'x');
  const target = join(file, 'data');
  const e = await rejection(openStore(target));
  t.equal(e.code, 'DATA_DIR_UNWRITABLE');
  t.equal(e.status, 500);
  t.equal(e.detail?.path, target);
  t.match(String(e.detail?.reason), /ENOTDIR/);
  t.notMatch(String(e.detail?.reason), /\n/, 'one line');
  t.match(e.text.en, target);
  t.ok(e.text.zh.length > 0);
});

t.test('a data dir that is itself a file is DATA_DIR_UNWRITABLE', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'data');
  writeFileSync(file, 'x');
  const e = await rejection(openStore(file));
  t.equal(e.code, 'DATA_DIR_UNWRITABLE');
});

t.test('an environment that cannot open is STORE_UNAVAILABLE (503)', async (t) => {
  const dataDir = tempDir(t);
  const store = await openStore(dataDir);
  await store.close();
  writeFileSync(join(dataDir, 'db', 'data.mdb'), Buffer.alloc(64 * 1024, 0x5a)); // garbage where the file was
  rmSync(join(dataDir, 'db', 'lock.mdb'), { force: true });
  const e = await rejection(openStore(dataDir));
  t.equal(e.code, 'STORE_UNAVAILABLE');
  t.equal(e.status, 503);
});

t.test('a truncated environment file is STORE_UNAVAILABLE, not a crash', async (t) => {
  const dataDir = tempDir(t);
  const store = await openStore(dataDir);
  for (let i = 0; i < 200; i++) await store.meta.set(`filler.${i}`, 'x'.repeat(500));
  await store.close();
  const file = join(dataDir, 'db', 'data.mdb');
  t.ok(statSync(file).size > 3 * STORE_PAGE_SIZE, 'the tree spans more than the two meta pages');
  truncateSync(file, 2 * STORE_PAGE_SIZE); // both meta pages intact, the tree cut off (LMDB would SIGBUS)
  const e = await rejection(openStore(dataDir));
  t.equal(e.code, 'STORE_UNAVAILABLE');
  t.match(String(e.detail?.reason), /truncated/);
});

t.test('read-only: refuses a missing store, reads an existing one, refuses writes', async (t) => {
  const dataDir = tempDir(t);
  t.equal((await rejection(openStore(join(dataDir, 'none'), { readOnly: true }))).code, 'STORE_UNAVAILABLE');
  t.notOk(existsSync(join(dataDir, 'none')), 'read-only open creates nothing');

  const w = await openStore(dataDir);
  await w.meta.set('k', 1);
  await w.close();

  const r = await openStore(dataDir, { readOnly: true });
  t.equal(await r.meta.get('k'), 1);
  await r.check();
  const e = await rejection(r.meta.set('k', 2));
  t.equal(e.code, 'STORE_UNAVAILABLE');
  t.equal(await r.meta.get('k'), 1);
  await r.close();
});

t.test('check() and every operation fail with STORE_UNAVAILABLE once closed', async (t) => {
  const store = await openStore(tempDir(t));
  await store.check();
  await store.close();
  t.equal((await rejection(store.check())).code, 'STORE_UNAVAILABLE');
  t.equal((await rejection(store.meta.get('x'))).code, 'STORE_UNAVAILABLE');
  t.equal((await rejection(store.audit.append({ actor: 'system', action: 'x.y', outcome: 'ok' }))).code, 'STORE_UNAVAILABLE');
  t.equal((await rejection(store.nonces.remember('a', 'n', Date.now() + 1000))).code, 'STORE_UNAVAILABLE');
});

t.test('check() notices the database file disappearing', async (t) => {
  const dataDir = tempDir(t);
  const store = await openStore(dataDir);
  t.teardown(() => store.close());
  await store.check();
  rmSync(join(dataDir, 'db'), { recursive: true, force: true });
  t.equal((await rejection(store.check())).code, 'STORE_UNAVAILABLE');
});

t.test('backup makes a copy that openStore opens, and refuses a non-empty target', async (t) => {
  const dir = tempDir(t);
  const store: Store = await openStore(join(dir, 'live'));
  await store.meta.set('device', { serial: 'YQ-0002' });
  await store.audit.append({ actor: 'system', action: 'test.backup', outcome: 'ok' });
  await store.backup(join(dir, 'copy'));
  t.same(readdirSync(join(dir, 'copy', 'db')), ['data.mdb']);
  t.equal((await rejection(store.backup(join(dir, 'copy')))).code, 'BAD_REQUEST');
  // later writes do not reach the copy
  await store.meta.set('device', { serial: 'changed' });
  await store.close();

  const copy = await openStore(join(dir, 'copy'));
  t.same(await copy.meta.get('device'), { serial: 'YQ-0002' });
  t.same(await copy.audit.verifyChain(), { ok: true, count: 1 });
  await copy.close();
});

t.test('a store written in an unknown format is refused, not misread', async (t) => {
  const dataDir = tempDir(t);
  await (await openStore(dataDir)).close();
  await withRawDatabase(dataDir, 'meta', (db) => {
    t.same(db.get('store.format'), { version: 1, encoding: 'json' });
    db.put('store.format', { version: 99, encoding: 'json' });
  });
  const e = await rejection(openStore(dataDir));
  t.equal(e.code, 'STORE_UNAVAILABLE');
  t.match(e.text.en, /format 99/);
});

t.test('ids are ULIDs in creation order, dates are ISO UTC with milliseconds', async (t) => {
  const ids = Array.from({ length: 2000 }, () => newId());
  t.same([...ids].sort(), ids, 'monotonic even within one millisecond');
  t.equal(new Set(ids).size, ids.length);
  t.match(ids[0], /^[0-9A-HJKMNP-TV-Z]{26}$/);
  t.ok(Math.abs(decodeTime(ids[0]) - Date.now()) < 5000);
  t.match(nowIso(), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});
