// NonceRepository: first use wins, replays lose (also when they race), expiry and purging.
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open, type RootDatabase } from 'lmdb';
import { LmdbNonceRepository } from '../../appliance/src/store/nonce-repository.js';
import { openStore } from '../../appliance/src/store/open-store.js';
import { withRawDatabase } from '../../appliance/src/store/raw-access.js';
import { freshStore, rejection } from '../helpers/store-fixture.js';

const fresh = (t: Test) => freshStore(t, 'yq-nonce-');


const soon = () => Date.now() + 60_000;

t.test('first use is true, a replay is false, other apps are separate', async (t) => {
  const { store } = await fresh(t);
  t.equal(await store.nonces.remember('APP1', 'n-1', soon()), true);
  t.equal(await store.nonces.remember('APP1', 'n-1', soon()), false);
  t.equal(await store.nonces.remember('APP2', 'n-1', soon()), true);
  t.equal(await store.nonces.remember('APP1', 'n-2', soon()), true);
});

t.test('concurrent requests with one nonce: exactly one passes', async (t) => {
  const { store } = await fresh(t);
  const exp = soon();
  const results = await Promise.all(Array.from({ length: 200 }, () => store.nonces.remember('APP1', 'racy', exp)));
  t.equal(results.filter(Boolean).length, 1);
  // many distinct nonces at once all pass
  const distinct = await Promise.all(Array.from({ length: 500 }, (_, i) => store.nonces.remember('APP1', `d-${i}`, exp)));
  t.ok(distinct.every(Boolean));
});

t.test('two stores on one environment (two processes\' view) still let only one pass', async (t) => {
  const { store, dataDir } = await fresh(t);
  const second = await openStore(dataDir);
  t.teardown(() => second.close());
  const exp = soon();
  const results = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? store : second).nonces.remember('APP1', 'shared', exp)));
  t.equal(results.filter(Boolean).length, 1);
});

t.test('an expired nonce may be used again', async (t) => {
  const { store } = await fresh(t);
  t.equal(await store.nonces.remember('APP1', 'old', Date.now() - 1), true);
  t.equal(await store.nonces.remember('APP1', 'old', soon()), true, 'the earlier use had expired');
  t.equal(await store.nonces.remember('APP1', 'old', soon()), false);
});

t.test('purgeExpired drops exactly the expired nonces and their index entries', async (t) => {
  const { store, dataDir } = await fresh(t);
  const now = Date.now();
  for (let i = 0; i < 30; i++) await store.nonces.remember('APP1', `past-${i}`, now - 1000 + i); // all ≤ now
  for (let i = 0; i < 20; i++) await store.nonces.remember('APP1', `future-${i}`, now + 60_000 + i);
  t.equal(await store.nonces.purgeExpired(now), 30);
  t.equal(await store.nonces.purgeExpired(now), 0);
  t.equal(await store.nonces.remember('APP1', 'future-3', soon()), false, 'unexpired nonces are kept');
  await store.close();
  const counts = await withRawDatabase(dataDir, 'nonces', (db) => db.keys().length);
  const indexCounts = await withRawDatabase(dataDir, 'nonces-by-expiry', (db) => db.keys().length);
  t.equal(counts, 20);
  t.equal(indexCounts, 20);
});

t.test('purging more than one batch', async (t) => {
  const { store } = await fresh(t);
  const exp = Date.now() - 10;
  await Promise.all(Array.from({ length: 12_000 }, (_, i) => store.nonces.remember('APP1', `bulk-${i}`, exp)));
  t.equal(await store.nonces.purgeExpired(Date.now()), 12_000);
});

t.test('bad input is BAD_REQUEST', async (t) => {
  const { store } = await fresh(t);
  t.equal((await rejection(store.nonces.remember('', 'n', soon()))).code, 'BAD_REQUEST');
  t.equal((await rejection(store.nonces.remember('APP1', '', soon()))).code, 'BAD_REQUEST');
  t.equal((await rejection(store.nonces.remember('APP1', 'n'.repeat(129), soon()))).code, 'BAD_REQUEST');
  t.equal((await rejection(store.nonces.remember('APP1', 'n', Number.NaN))).code, 'BAD_REQUEST');
});

t.test('the calls of one event-loop iteration share one transaction, checked in call order; a failed one fails them all', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'yq-nonce-group-'));
  const env = open({ path: dir, maxDbs: 4, encoding: 'json', noSync: true });
  t.teardown(async () => {
    await env.close();
    rmSync(dir, { recursive: true, force: true });
  });
  let transactions = 0;
  let failNext = false;
  const counted = Object.create(env) as RootDatabase;
  counted.transactionSync = <T>(action: () => T): T => {
    transactions++;
    if (failNext) throw new Error('disk gone');
    return env.transactionSync(action);
  };
  const nonces = new LmdbNonceRepository(env.openDB({ name: 'nonces', encoding: 'json' }), env.openDB({ name: 'nonces-by-expiry', encoding: 'json' }), counted);
  const exp = soon();
  const group = await Promise.all(['a', 'b', 'a', 'c', 'b'].map((n) => nonces.remember('APP1', n, exp)));
  t.same(group, [true, true, false, true, false], 'the first of each pair passes, in call order');
  t.equal(transactions, 1, 'five calls, one transaction');
  t.equal(await nonces.remember('APP1', 'c', exp), false, 'and it was committed');
  t.equal(transactions, 2);
  failNext = true;
  const failed = await Promise.allSettled([nonces.remember('APP1', 'd', exp), nonces.remember('APP1', 'e', exp)]);
  t.same(failed.map((r) => r.status === 'rejected' && (r.reason as { code?: string }).code), ['STORE_UNAVAILABLE', 'STORE_UNAVAILABLE']);
  failNext = false;
  t.equal(await nonces.remember('APP1', 'd', exp), true, 'nothing of the failed group was kept');
});
