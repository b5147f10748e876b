// MetaRepository: small named values, durable, with the store's own keys protected.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../appliance/src/store/open-store.js';
import { rejection } from '../helpers/store-fixture.js';


t.test('set, get, overwrite, delete, and persistence', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'yq-meta-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const store = await openStore(dataDir);
  t.equal(await store.meta.get('schema'), undefined);
  await store.meta.set('schema', 3);
  await store.meta.set('device', { serial: 'YQ-1', initialisedAt: '2025-01-02T03:04:05.678Z', keys: ['a', 'b'] });
  await store.meta.set('schema', 4);
  t.equal(await store.meta.get<number>('schema'), 4);
  await store.meta.set('when', new Date('2025-01-02T03:04:05.678Z'));
  t.equal(await store.meta.get('when'), '2025-01-02T03:04:05.678Z', 'values are stored as JSON: a Date reads back as its ISO string');
  t.equal(await store.meta.delete('when'), true);
  t.equal(await store.meta.delete('when'), false);
  await store.close();

  const again = await openStore(dataDir);
  t.same(await again.meta.get('device'), { serial: 'YQ-1', initialisedAt: '2025-01-02T03:04:05.678Z', keys: ['a', 'b'] });
  t.equal(await again.meta.get('schema'), 4);
  t.equal(await again.meta.get('when'), undefined);
  await again.close();
});

t.test('the store\'s own keys and bad values are refused', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'yq-meta-'));
  const store = await openStore(dataDir);
  t.teardown(async () => {
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  t.same(await store.meta.get('store.format'), { version: 1, encoding: 'json' }, 'readable');
  t.equal((await rejection(store.meta.set('store.format', { version: 2 }))).code, 'BAD_REQUEST');
  t.equal((await rejection(store.meta.delete('store.audit.head'))).code, 'BAD_REQUEST');
  t.equal((await rejection(store.meta.set('x', undefined))).code, 'BAD_REQUEST');
  t.equal((await rejection(store.meta.set('x', () => 1))).code, 'BAD_REQUEST');
  t.equal((await rejection(store.meta.set('', 1))).code, 'BAD_REQUEST');
  t.same(await store.meta.get('store.format'), { version: 1, encoding: 'json' });
});
