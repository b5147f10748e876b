// The audit log: append-only, SM3-chained, durable; verifyChain finds tampering that is done
// straight to the stored records (as an intruder with disk access would, via raw access).
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditRecord } from '../../appliance/src/audit/audit-log.js';
import { canonicalJson, recomputeHash } from '../../appliance/src/audit/chain.js';
import { openStore, type Store } from '../../appliance/src/store/open-store.js';
import { withRawDatabase } from '../../appliance/src/store/raw-access.js';
import { rejection } from '../helpers/store-fixture.js';

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'yq-audit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function fresh(t: Test): Promise<{ store: Store; dataDir: string }> {
  const dataDir = tempDir(t);
  const store = await openStore(dataDir);
  t.teardown(() => store.close());
  return { store, dataDir };
}


/** A store with n records, closed, ready for raw tampering. */
async function closedLog(t: Test, n: number): Promise<string> {
  const dataDir = tempDir(t);
  const store = await openStore(dataDir);
  for (let i = 1; i <= n; i++) await store.audit.append({ actor: 'cli:root', action: 'app.create', target: `APP${i}`, outcome: 'ok', detail: { i } });
  await store.close();
  return dataDir;
}

async function verdictAfter(dataDir: string) {
  const store = await openStore(dataDir);
  try {
    return await store.audit.verifyChain();
  } finally {
    await store.close();
  }
}

t.test('records are chained with SM3 over a canonical encoding', async (t) => {
  const { store } = await fresh(t);
  t.same(await store.audit.verifyChain(), { ok: true, count: 0 }, 'an empty log verifies');
  const r1 = await store.audit.append({ actor: 'cli:root', action: 'app.create', target: 'X', outcome: 'ok', detail: { b: 1, a: 'x' } });
  t.equal(r1.seq, 1);
  t.equal(r1.prevHash, '0'.repeat(64));
  t.match(r1.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  // Independent of the implementation: the documented encoding, written out by hand.
  const expected = `yiqian.audit.v1\n{"action":"app.create","actor":"cli:root","alg":"sm3","detail":{"a":"x","b":1},"outcome":"ok","prevHash":"${'0'.repeat(64)}","seq":1,"target":"X","time":"${r1.time}"}`;
  t.equal(r1.hash, createHash('sm3').update(expected, 'utf8').digest('hex'));
  const r2 = await store.audit.append({ actor: 'system', action: 'appliance.start', outcome: 'ok' });
  t.equal(r2.seq, 2);
  t.equal(r2.prevHash, r1.hash);
  t.notOk('target' in r2 || 'detail' in r2, 'absent optional fields stay absent');
  t.same(await store.audit.verifyChain(), { ok: true, count: 2 });
});

t.test('detail is normalised through JSON so the stored record verifies', async (t) => {
  const { store } = await fresh(t);
  const r = await store.audit.append({ actor: 'system', action: 'x.y', outcome: 'error', detail: { when: new Date(0), gone: undefined, n: 1.5 } });
  t.same(r.detail, { when: '1970-01-01T00:00:00.000Z', n: 1.5 });
  const [stored] = await store.audit.list();
  t.same(stored, r);
  t.equal(recomputeHash(stored), stored.hash);
});

t.test('concurrent appends get contiguous seqs and one valid chain', async (t) => {
  const { store } = await fresh(t);
  const records = await Promise.all(Array.from({ length: 300 }, (_, i) => store.audit.append({ actor: `app:${i % 7}`, action: 'sign.raw', outcome: 'ok', detail: { i } })));
  t.same(records.map((r) => r.seq).sort((a, b) => a - b), Array.from({ length: 300 }, (_, i) => i + 1));
  t.same(await store.audit.verifyChain(), { ok: true, count: 300 });
});

t.test('list: fromSeq, limit, exact action and action prefix', async (t) => {
  const { store } = await fresh(t);
  for (const action of ['app.create', 'app.freeze', 'key.generate', 'app.create', 'appliance.start', 'app.delete']) {
    await store.audit.append({ actor: 'cli:root', action, outcome: 'ok' });
  }
  t.same((await store.audit.list()).map((r) => r.seq), [1, 2, 3, 4, 5, 6]);
  t.same((await store.audit.list({ fromSeq: 3, limit: 2 })).map((r) => r.seq), [3, 4]);
  t.same((await store.audit.list({ action: 'app.create' })).map((r) => r.seq), [1, 4]);
  t.same((await store.audit.list({ action: 'app.' })).map((r) => r.seq), [1, 2, 4, 6], "'app.' does not match 'appliance.start'");
  t.same((await store.audit.list({ action: 'app.', fromSeq: 3, limit: 2 })).map((r) => r.seq), [4, 6]);
  t.same(await store.audit.list({ fromSeq: 99 }), []);
  t.equal((await rejection(store.audit.list({ limit: 0 }))).code, 'BAD_REQUEST');
  t.equal((await rejection(store.audit.list({ fromSeq: 0 }))).code, 'BAD_REQUEST');
});

t.test('invalid entries are refused', async (t) => {
  const { store } = await fresh(t);
  const bad = [
    { actor: '', action: 'a.b', outcome: 'ok' },
    { actor: 'x\ny', action: 'a.b', outcome: 'ok' },
    { actor: 'x', action: 'Not An Action', outcome: 'ok' },
    { actor: 'x', action: 'a.b', outcome: 'maybe' },
    { actor: 'x', action: 'a.b', outcome: 'ok', detail: [1, 2] },
    { actor: 'x', action: 'a.b', outcome: 'ok', detail: { big: 'x'.repeat(20_000) } },
  ];
  for (const entry of bad) t.equal((await rejection(store.audit.append(entry as never))).code, 'INTERNAL', JSON.stringify(entry).slice(0, 60));
  t.same(await store.audit.verifyChain(), { ok: true, count: 0 });
});

t.test('changing a stored record is found at that record', async (t) => {
  const dataDir = await closedLog(t, 10);
  await withRawDatabase(dataDir, 'audit', (db) => {
    const r = db.get(6) as AuditRecord;
    db.put(6, { ...r, outcome: 'denied' });
  });
  t.same(await verdictAfter(dataDir), { ok: false, count: 5, brokenAt: 6 });
});

t.test('re-hashing a changed record only moves the break to the next record', async (t) => {
  const dataDir = await closedLog(t, 10);
  await withRawDatabase(dataDir, 'audit', (db) => {
    const r = db.get(4) as AuditRecord;
    const forged = { ...r, target: 'SOMEONE-ELSE' };
    db.put(4, { ...forged, hash: recomputeHash(forged) });
  });
  t.same(await verdictAfter(dataDir), { ok: false, count: 4, brokenAt: 5 });
});

t.test('removing a record in the middle is found', async (t) => {
  const dataDir = await closedLog(t, 10);
  await withRawDatabase(dataDir, 'audit', (db) => db.remove(7));
  t.same(await verdictAfter(dataDir), { ok: false, count: 6, brokenAt: 7 });
});

t.test('cutting records off the end is found, and appending is refused until investigated', async (t) => {
  const dataDir = await closedLog(t, 10);
  await withRawDatabase(dataDir, 'audit', (db) => {
    db.remove(10);
    db.remove(9);
  });
  const store = await openStore(dataDir);
  t.teardown(() => store.close());
  t.same(await store.audit.verifyChain(), { ok: false, count: 8, brokenAt: 9 });
  const e = await rejection(store.audit.append({ actor: 'system', action: 'x.y', outcome: 'ok' }));
  t.equal(e.code, 'INTEGRITY_CHECK_FAILED');
  t.equal((await store.audit.list({ fromSeq: 9 })).length, 0, 'nothing was appended over the gap');
});

t.test('removing the head record is found', async (t) => {
  const dataDir = await closedLog(t, 3);
  await withRawDatabase(dataDir, 'meta', (db) => db.remove('store.audit.head'));
  t.same(await verdictAfter(dataDir), { ok: false, count: 3, brokenAt: 3 });
});

t.test('verification walks long logs in batches', async (t) => {
  const { store } = await fresh(t);
  await Promise.all(Array.from({ length: 2500 }, (_, i) => store.audit.append({ actor: 'system', action: 'bulk.write', outcome: 'ok', detail: { i } })));
  t.same(await store.audit.verifyChain(), { ok: true, count: 2500 });
});

t.test('canonicalJson sorts members, drops undefined, refuses what JSON cannot hold', async (t) => {
  t.equal(canonicalJson({ b: [3, { d: 1, c: null }], a: 'é\n', u: undefined, t: true }), '{"a":"é\\n","b":[3,{"c":null,"d":1}],"t":true}');
  t.throws(() => canonicalJson({ x: Number.POSITIVE_INFINITY }));
  t.throws(() => canonicalJson({ x: 1n }));
});
