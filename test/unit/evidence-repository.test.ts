// The evidence records repository (store/evidence-repository.ts) on real LMDB: a hot tier in the
// appliance store (with the Merkle log) and a cold env of its own. Append = record + indexes +
// leaf + counts in one transaction (a failing counter rolls all of it back); queries by every
// index and by time across both tiers with pagination; moveBatchToCold idempotent, including a
// crash between its two steps (and a restart), with no duplicate in any query meanwhile.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monotonicFactory } from 'ulid';
import { leafData } from '../../appliance/src/evidence/leaf.js';
import { MemoryTree } from '../../appliance/src/evidence/merkle.js';
import { recordSummary } from '../../appliance/src/evidence/record-summary.js';
import type { EvidenceRecord, EvidenceRejection } from '../../appliance/src/evidence/types.js';
import { openEvidenceRepository, receivedAtOf, type EvidenceRecordFields, type EvidenceRepository } from '../../appliance/src/store/evidence-repository.js';
import { openStore, type Store } from '../../appliance/src/store/open-store.js';
import { rejection } from '../helpers/store-fixture.js';

const DAY = 86_400_000;

interface Counted {
  records: string[];
  rejections: string[];
  fail: boolean;
  /** Records per recordsStoredInTxn call (one call per transaction). */
  calls?: number[];
}

async function open(dir: string, counted: Counted): Promise<{ store: Store; repo: EvidenceRepository }> {
  const store = await openStore(join(dir, 'data'));
  const repo = await openEvidenceRepository({
    hot: store.evidenceHot,
    merkle: store.merkle,
    coldPath: join(dir, 'cold'),
    // A recording double of the counters (E2's store/evidence-counters.ts has its own tests):
    // it lets this test see the call happen inside the transaction and fail it on demand.
    counters: {
      recordsStoredInTxn: (rs) => {
        if (counted.fail) throw new Error('counter failure');
        counted.calls?.push(rs.length);
        for (const r of rs) counted.records.push((r as EvidenceRecord).id);
      },
      rejectionInTxn: (r) => void counted.rejections.push(r.id),
    },
  });
  return { store, repo };
}

function fields(id: string, over: Partial<EvidenceRecordFields> = {}): EvidenceRecordFields {
  return {
    id,
    kind: 'digest',
    project: 'emr',
    appId: 'APP1',
    receivedAt: receivedAtOf(id),
    contentDigest: { algorithm: 'sm3', value: 'ab'.repeat(32) },
    retainUntil: new Date(Date.parse(receivedAtOf(id)) + 30 * 365 * DAY).toISOString(),
    ...over,
  };
}

t.test('evidence repository', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'yq-evidence-repo-'));
  const counted: Counted = { records: [], rejections: [], fail: false };
  let { store, repo } = await open(dir, counted);
  t.teardown(async () => {
    await repo.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  // Ids from 40 days ago onwards, one a minute apart: time-ordered like newId().
  const t0 = Date.now() - 40 * DAY;
  const ulid = monotonicFactory();
  const ids: string[] = [];
  const mk = (i: number): string => ulid(t0 + i * 60_000);

  await t.test('append: record, indexes, Merkle leaf and counts in one durable transaction', async (t) => {
    for (let i = 0; i < 30; i++) {
      const id = mk(i);
      ids.push(id);
      const f = fields(id, {
        appId: i % 3 === 0 ? 'APP3' : 'APP1',
        departmentId: i % 2 === 0 ? 'D-icu' : 'D-er',
        patientIdIndex: i % 5 === 0 ? 'aa'.repeat(32) : 'bb'.repeat(32),
        businessSerial: `BS-${i}`,
        documentType: i < 10 ? 'order' : 'note',
        kind: i % 4 === 0 ? 'signature' : 'digest',
        project: i === 29 ? 'lis' : 'emr',
      });
      const rec = await repo.append(f, leafData(f));
      t.equal(rec.leafIndex, i, 'leaves in order');
      t.equal(rec.tier, 'hot');
      t.equal(rec.leafHash, store.merkle.hasher.leaf(leafData(f)).toString('hex'));
    }
    t.equal(await store.merkle.size(), 30);
    t.same(counted.records, ids, 'counted in the same transaction');
    t.same(await repo.get(ids[3]), { ...fields(ids[3]), appId: 'APP3', departmentId: 'D-er', patientIdIndex: 'bb'.repeat(32), businessSerial: 'BS-3', documentType: 'order', kind: 'digest', leafIndex: 3, leafHash: (await repo.get(ids[3]))!.leafHash, tier: 'hot' });

    // A counter that fails rolls the whole append back: no record, no leaf.
    counted.fail = true;
    const id = ulid(t0 + 31 * 60_000);
    const f = fields(id);
    await t.rejects(repo.append(f, leafData(f)));
    counted.fail = false;
    t.equal(await repo.get(id), undefined, 'no record');
    t.equal(await store.merkle.size(), 30, 'no leaf');
    // The same id twice is refused.
    const again = fields(ids[0]);
    t.equal((await rejection(repo.append(again, leafData(again)))).code, 'INTERNAL');
    t.equal(await store.merkle.size(), 30);
  });

  await t.test('query: each index, time range, pagination', async (t) => {
    const all = async (q: Parameters<EvidenceRepository['query']>[0], limit = 7): Promise<string[]> => {
      const out: string[] = [];
      let cursor: string | undefined;
      for (let n = 0; n < 100; n++) {
        const p = await repo.query(q, { limit, ...(cursor ? { cursor } : {}) });
        // The list page the API answers: the same items as summaries, the same cursor.
        t.same(await repo.summaries(q, { limit, ...(cursor ? { cursor } : {}) }), { items: p.items.map(recordSummary), ...(p.next ? { next: p.next } : {}) });
        out.push(...p.items.map((r) => r.id));
        t.ok(p.items.length <= limit);
        if (!p.next) break;
        cursor = p.next;
      }
      return out;
    };
    const emr = ids.slice(0, 29);
    t.same(await all({ project: 'emr' }), emr, 'the project, in id order over pages');
    t.same(await all({ project: 'lis' }), [ids[29]], 'another project is apart');
    t.same(await all({ project: 'nope' }), []);
    t.same(await all({ project: 'emr', appId: 'APP3' }), emr.filter((_, i) => i % 3 === 0));
    t.same(await all({ project: 'emr', departmentId: 'D-icu' }), emr.filter((_, i) => i % 2 === 0));
    t.same(await all({ project: 'emr', patientIdIndex: 'aa'.repeat(32) }), emr.filter((_, i) => i % 5 === 0));
    t.same(await all({ project: 'emr', businessSerial: 'BS-7' }), [ids[7]]);
    t.same(await all({ project: 'emr', documentType: 'order' }), ids.slice(0, 10));
    t.same(await all({ project: 'emr', kind: 'signature' }), emr.filter((_, i) => i % 4 === 0));
    t.same(await all({ project: 'emr', documentType: 'note', departmentId: 'D-icu', appId: 'APP3' }), emr.filter((_, i) => i >= 10 && i % 2 === 0 && i % 3 === 0), 'filters combine');
    const from = new Date(t0 + 5 * 60_000).toISOString();
    const to = new Date(t0 + 12 * 60_000).toISOString();
    t.same(await all({ project: 'emr', from, to }, 3), ids.slice(5, 12), 'from inclusive, to exclusive');
    t.same(await all({ project: 'emr', from, to, departmentId: 'D-er' }, 2), ids.slice(5, 12).filter((_, i) => (i + 5) % 2 === 1), 'time range on an index');
    t.same(await all({ project: 'emr', from: to, to: from }), []);
    // A store written before summaries were kept in the by-project index holds 1 there: its pages read the record.
    await store.evidenceHot.dbs.byProject.put(['emr', ids[4]], 1);
    t.same((await repo.summaries({ project: 'emr', from: receivedAtOf(ids[4]) }, { limit: 1 })).items, [recordSummary((await repo.get(ids[4]))!)], 'summary of an older store');
    t.same(await all({ project: 'emr', documentType: 'order' }), ids.slice(0, 10));
    for (const [q, page, field] of [
      [{ project: 'emr', from: 'yesterday' }, {}, 'from'],
      [{ project: 'emr' }, { limit: 0 }, 'limit'],
      [{ project: 'emr' }, { limit: 501 }, 'limit'],
      [{ project: 'emr' }, { cursor: 'not-a-cursor' }, 'cursor'],
      [{ project: 'emr', kind: 'photo' }, {}, 'kind'],
      [{ project: '' }, {}, 'project'],
    ] as const) {
      const e = await rejection(repo.query(q as never, page));
      t.equal(e.code, 'EVIDENCE_QUERY_INVALID', field);
      t.equal(e.status, 400);
      t.equal(e.detail?.field, field);
    }
  });

  await t.test('rejections: stored, counted, listed per project', async (t) => {
    const rs: EvidenceRejection[] = [];
    for (let i = 0; i < 5; i++) {
      const r: EvidenceRejection = { id: ulid(), at: new Date().toISOString(), project: i < 4 ? 'emr' : 'lis', appId: 'APP1', departmentId: 'D-icu', kind: 'signature', code: 'SIGNATURE_INVALID', reason: 'the signature does not verify' };
      rs.push(await repo.rejection(r));
    }
    t.same(counted.rejections, rs.map((r) => r.id));
    const p1 = await repo.rejections('emr', { limit: 3 });
    t.equal(p1.items.length, 3);
    const p2 = await repo.rejections('emr', { limit: 3, cursor: p1.next });
    t.same([...p1.items, ...p2.items].map((r) => r.id), rs.slice(0, 4).map((r) => r.id));
    t.notOk(p2.next);
    t.same((await repo.rejections('lis')).items, [rs[4]]);
  });

  await t.test('moveBatchToCold: oldest first, resumable after a crash between the steps, never duplicated', async (t) => {
    const cutoff = new Date(t0 + 20 * 60_000).toISOString(); // ids[0..19] are older
    t.equal(await repo.moveBatchToCold(cutoff, 8), 8);
    t.same(await repo.countByTier(), { hot: 22, cold: 8 });
    const moved = (await repo.get(ids[0]))!;
    t.equal(moved.tier, 'cold');
    t.equal(moved.leafIndex, 0, 'the leaf stays where it was');
    t.equal((await repo.get(ids[8]))!.tier, 'hot');

    // Crash after the copy (the hook throws before the hot removal), then a restart.
    let copied: string[] = [];
    await t.rejects(
      repo.moveBatchToCold(cutoff, 8, {
        afterCopy: (list) => {
          copied = list;
          throw new Error('simulated crash');
        },
      }),
    );
    t.same(copied, ids.slice(8, 16));
    t.same(await repo.countByTier(), { hot: 22, cold: 16 }, 'eight records in both tiers now');
    const page = await repo.query({ project: 'emr' }, { limit: 500 });
    t.same(page.items.map((r) => r.id), ids.slice(0, 29), 'a query shows each record once');
    const listed = await repo.summaries({ project: 'emr' }, { limit: 500 });
    t.same(listed.items.map((r) => [r.id, r.tier]), ids.slice(0, 29).map((id, i) => [id, i < 16 ? 'cold' : 'hot']), 'a list page too, the cold copy winning');
    t.same(
      (await repo.query({ project: 'emr', departmentId: 'D-icu' }, { limit: 500 })).items.map((r) => r.id),
      ids.slice(0, 29).filter((_, i) => i % 2 === 0),
      'an index query too',
    );
    t.equal((await repo.get(ids[9]))!.id, ids[9]);

    await repo.close();
    await store.close();
    ({ store, repo } = await open(dir, counted));
    t.same(await repo.countByTier(), { hot: 22, cold: 16 }, 'both copies survived the restart');
    t.equal(await repo.moveBatchToCold(cutoff, 8), 8, 'the next run finishes the interrupted batch');
    t.same(await repo.countByTier(), { hot: 14, cold: 16 });
    t.equal(await repo.moveBatchToCold(cutoff, 8), 4);
    t.equal(await repo.moveBatchToCold(cutoff, 8), 0, 'nothing older than the cutoff is left');
    t.same(await repo.countByTier(), { hot: 10, cold: 20 });

    // Queries and pagination merge both tiers in id order.
    const got: string[] = [];
    let cursor: string | undefined;
    do {
      const p = await repo.query({ project: 'emr' }, { limit: 6, ...(cursor ? { cursor } : {}) });
      got.push(...p.items.map((r) => r.id));
      cursor = p.next;
    } while (cursor);
    t.same(got, ids.slice(0, 29), 'pages across the tier boundary');
    t.same((await repo.query({ project: 'emr', businessSerial: 'BS-3' })).items.map((r) => [r.id, r.tier]), [[ids[3], 'cold']]);
    t.same(
      (await repo.query({ project: 'emr', from: new Date(t0 + 18 * 60_000).toISOString(), to: new Date(t0 + 22 * 60_000).toISOString() })).items.map((r) => r.tier),
      ['cold', 'cold', 'hot', 'hot'],
    );
    t.equal(await store.merkle.size(), 30, 'the tree did not change');

    // New appends continue the log; the cold tier keeps answering.
    const f = fields(ulid());
    t.equal((await repo.append(f, leafData(f))).leafIndex, 30);
    t.equal((await repo.get(ids[1]))!.tier, 'cold');
    t.equal((await rejection(repo.moveBatchToCold('not a time', 5))).code, 'EVIDENCE_QUERY_INVALID');
  });
});

t.test('appends of one event-loop iteration: one transaction, leaves in call order; a bad one fails alone; stored as given at append time', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'yq-evidence-group-'));
  const counted: Counted = { records: [], rejections: [], fail: false };
  const { store, repo } = await open(dir, counted);
  t.teardown(async () => {
    await repo.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const ulid = monotonicFactory();
  const first = fields(ulid());
  await repo.append(first, leafData(first));
  const calls: number[] = [];
  counted.calls = calls;

  const group = Array.from({ length: 6 }, (_, i) => fields(ulid(), { businessSerial: `G-${i}`, verification: { valid: true, checks: [{ name: 'x', ok: true }] } } as Partial<EvidenceRecordFields>));
  const taken = fields(first.id);
  const pending = [...group.slice(0, 3), taken, ...group.slice(3)].map((f) => repo.append(f, leafData(f)));
  // Changed by the caller after append() returned, before the transaction ran: not what is stored.
  group[0].businessSerial = 'CHANGED';
  (group[1] as unknown as { verification: { valid: boolean } }).verification.valid = false;
  const results = await Promise.allSettled(pending);

  t.equal(results[3].status, 'rejected', 'the taken id is refused');
  t.equal((results[3] as PromiseRejectedResult).reason.code, 'INTERNAL');
  const ok = results.filter((r): r is PromiseFulfilledResult<EvidenceRecord> => r.status === 'fulfilled').map((r) => r.value);
  t.same(ok.map((r) => r.leafIndex), [1, 2, 3, 4, 5, 6], 'the others stored, leaves in call order');
  t.equal(await store.merkle.size(), 7);
  t.same(counted.records.slice(1), group.map((f) => f.id), 'each counted once');
  const stored = await repo.get(group[0].id);
  t.equal(stored?.businessSerial, 'G-0', 'a later change to the caller’s object is not stored');
  t.same((await repo.query({ project: 'emr', businessSerial: 'G-0' })).items.map((r) => r.id), [group[0].id], 'nor indexed');
  t.same((await repo.query({ project: 'emr', businessSerial: 'CHANGED' })).items, []);
  t.equal((await repo.get(group[1].id) as unknown as { verification: { valid: boolean } }).verification.valid, true, 'nor one in a nested member');
  t.same(stored, { ...fields(group[0].id), businessSerial: 'G-0', verification: { valid: true, checks: [{ name: 'x', ok: true }] }, leafIndex: 1, leafHash: ok[0].leafHash, tier: 'hot' });

  // Without a failure, a group is one counted call (one transaction).
  calls.length = 0;
  const clean = Array.from({ length: 5 }, () => fields(ulid()));
  await Promise.all(clean.map((f) => repo.append(f, leafData(f))));
  t.same(calls, [5], 'five appends of one iteration: one recordsStoredInTxn call');
  // Their JSON went through one reused buffer (jsonInScratch): each must still be its own.
  const read = await Promise.all(clean.map((f) => repo.get(f.id)));
  t.same(read.map((r) => r?.id), clean.map((f) => f.id), 'each record of the group holds its own bytes');
  t.equal(new Set(read.map((r) => r?.leafIndex)).size, 5, 'and its own leaf');

  // One new id twice in one iteration: the first is stored, the second refused, one leaf.
  const twice = fields(ulid());
  const [a, b] = await Promise.allSettled([repo.append(twice, leafData(twice)), repo.append({ ...twice, businessSerial: 'SECOND' }, leafData(twice))]);
  t.equal(a.status, 'fulfilled');
  t.equal(b.status === 'rejected' && (b.reason as { code?: string }).code, 'INTERNAL', 'the second of one id is refused');
  t.equal((await repo.get(twice.id))?.businessSerial, undefined, 'the first is what is stored');
  t.equal(await store.merkle.size(), 13, 'one leaf for it');
  // The leaves a group appended are those a fresh tree over the same leaf data has.
  const reference = new MemoryTree(store.merkle.hasher);
  for (let i = 0; i < 13; i++) reference.appendLeafHash((await store.merkle.leafHash(i))!);
  t.same(await store.merkle.root(), reference.root(), 'the stored tree is the tree of its leaves');
});
