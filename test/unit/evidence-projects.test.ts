// Evidence projects (evidence/projects.ts) over a real store: the lifecycle, every code, the
// 'default' project, retention kept at ingestion, deletion (refused, forced, after retention,
// resumed after a crash) with records stored through the real records repository (E1) and
// blobs in the real blob store, counters and audit records.
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freshStore, rejection } from '../helpers/store-fixture.js';
import { createProjects, ProjectCodes, type ProjectDataRemover } from '../../appliance/src/evidence/projects.js';
import { openEvidenceRepository, type EvidenceRepository } from '../../appliance/src/store/evidence-repository.js';
import { openColdTierForRemoval, tieredProjectRemover } from '../../appliance/src/store/evidence-project-removal.js';
import { addYears } from '../../appliance/src/store/evidence-counters.js';
import { openBlobStore } from '../../appliance/src/evidence/blob-store.js';
import { newId } from '../../appliance/src/store/ids.js';
import type { Store } from '../../appliance/src/store/open-store.js';

const ACTOR = 'cli:test';

async function setup(t: Test, opts: { clock?: () => Date; withRecords?: boolean } = {}) {
  const { store } = await freshStore(t, 'yq-evp-');
  const extra = mkdtempSync(join(tmpdir(), 'yq-evp-x-'));
  t.teardown(() => rmSync(extra, { recursive: true, force: true }));
  const repo = await openEvidenceRepository({ hot: store.evidenceHot, merkle: store.merkle, counters: store.evidenceCounters, coldPath: join(extra, 'cold') });
  t.teardown(() => repo.close());
  const blobs = await openBlobStore(join(extra, 'blobs'));
  const records: ProjectDataRemover = tieredProjectRemover([store.evidenceHot], blobs);
  const projects = createProjects({
    projects: store.evidenceProjects,
    counters: store.evidenceCounters,
    audit: store.audit,
    defaultRetentionYears: 25,
    ...(opts.withRecords === false ? {} : { records }),
    ...(opts.clock ? { clock: opts.clock } : {}),
  });
  return { store, repo, blobs, projects, records };
}

/** Stores one record the way ingestion does: retainUntil from the project's retention at receipt. */
async function ingest(store: Store, repo: EvidenceRepository, project: string, appId: string, blobId?: string) {
  const p = await store.evidenceProjects.get(project);
  if (!p) throw new Error(`no project ${project}`);
  const receivedAt = new Date().toISOString();
  return repo.append(
    {
      id: newId(),
      kind: 'digest',
      project,
      appId,
      receivedAt,
      contentDigest: { algorithm: 'sm3', value: 'ab'.repeat(32) },
      ...(blobId ? { original: { blobId, bytes: 3 } } : {}),
      retainUntil: addYears(receivedAt, p.retentionYears),
    },
    Buffer.from(`leaf ${project} ${receivedAt} ${Math.random()}`),
  );
}

t.test("the 'default' project exists from the start with evidence.defaultRetentionYears", async (t) => {
  const { projects, store } = await setup(t);
  const d = await projects.writable('default');
  t.match(d, { id: 'default', retentionYears: 25, frozen: false });
  t.same((await projects.list()).map((p) => p.id), ['default']);
  t.equal((await store.audit.list({ action: 'evidence.project.create' })).length, 1, 'created once, audited once');
  await projects.get('default');
  t.equal((await store.audit.list({ action: 'evidence.project.create' })).length, 1);
});

t.test('create, show, list, update, freeze, unfreeze — and their codes', async (t) => {
  const { projects, store } = await setup(t);
  const p = await projects.create({ id: 'emr-2024', name: '电子病历', description: '住院电子病历\n签名', retentionYears: 30 }, ACTOR);
  t.match(p, { id: 'emr-2024', name: '电子病历', retentionYears: 30, frozen: false });
  t.same(await projects.show('emr-2024'), p);
  t.equal((await projects.create({ id: 'lis', name: 'LIS' }, ACTOR)).retentionYears, 25, 'default retention');
  t.same((await projects.list()).map((x) => x.id), ['default', 'emr-2024', 'lis']);

  const codes: [() => Promise<unknown>, string, number][] = [
    [() => projects.create({ id: 'emr-2024', name: 'again' }, ACTOR), ProjectCodes.PROJECT_EXISTS, 409],
    [() => projects.create({ id: 'default', name: 'again' }, ACTOR), ProjectCodes.PROJECT_EXISTS, 409],
    [() => projects.create({ id: 'EMR', name: 'x' }, ACTOR), ProjectCodes.PROJECT_ID_INVALID, 400],
    [() => projects.create({ id: 'a'.repeat(65), name: 'x' }, ACTOR), ProjectCodes.PROJECT_ID_INVALID, 400],
    [() => projects.create({ id: 'x', name: '' }, ACTOR), ProjectCodes.PROJECT_NAME_INVALID, 400],
    [() => projects.create({ id: 'x', name: ' padded' }, ACTOR), ProjectCodes.PROJECT_NAME_INVALID, 400],
    [() => projects.create({ id: 'x', name: 'a\u202eb' }, ACTOR), ProjectCodes.PROJECT_NAME_INVALID, 400],
    [() => projects.create({ id: 'x', name: 'x', description: 'd'.repeat(501) }, ACTOR), ProjectCodes.PROJECT_DESCRIPTION_INVALID, 400],
    [() => projects.create({ id: 'x', name: 'x', description: 'bell\u0007' }, ACTOR), ProjectCodes.PROJECT_DESCRIPTION_INVALID, 400],
    [() => projects.create({ id: 'x', name: 'x', retentionYears: 0 }, ACTOR), ProjectCodes.RETENTION_YEARS_INVALID, 400],
    [() => projects.create({ id: 'x', name: 'x', retentionYears: 101 }, ACTOR), ProjectCodes.RETENTION_YEARS_INVALID, 400],
    [() => projects.create({ id: 'x', name: 'x', retentionYears: 2.5 }, ACTOR), ProjectCodes.RETENTION_YEARS_INVALID, 400],
    [() => projects.create({ id: 'x', name: 'x', retentionYears: '30' as unknown as number }, ACTOR), ProjectCodes.RETENTION_YEARS_INVALID, 400],
    [() => projects.create({ id: 'x', name: 'x', frozen: true } as never, ACTOR), ProjectCodes.PROJECT_FIELD_INVALID, 400],
    [() => projects.create([] as never, ACTOR), ProjectCodes.PROJECT_FIELD_INVALID, 400],
    [() => projects.update('emr-2024', {}, ACTOR), ProjectCodes.PROJECT_UPDATE_EMPTY, 400],
    [() => projects.update('emr-2024', { retentionYears: 0 }, ACTOR), ProjectCodes.RETENTION_YEARS_INVALID, 400],
    [() => projects.update('emr-2024', { id: 'y' } as never, ACTOR), ProjectCodes.PROJECT_FIELD_INVALID, 400],
    [() => projects.update('nope', { name: 'x' }, ACTOR), ProjectCodes.PROJECT_NOT_FOUND, 404],
    [() => projects.show('nope'), ProjectCodes.PROJECT_NOT_FOUND, 404],
    [() => projects.show('NOPE'), ProjectCodes.PROJECT_ID_INVALID, 400],
    [() => projects.writable('nope'), ProjectCodes.PROJECT_NOT_FOUND, 404],
    [() => projects.freeze('nope', ACTOR), ProjectCodes.PROJECT_NOT_FOUND, 404],
    [() => projects.delete('nope', ACTOR), ProjectCodes.PROJECT_NOT_FOUND, 404],
  ];
  for (const [call, code, status] of codes) {
    const e = await rejection(call());
    t.equal(e.code, code, `${code}: ${e.text.en}`);
    t.equal(e.status, status);
    t.ok(e.text.zh.length > 0 && e.text.en.length > 0, 'zh and en');
  }
  t.equal(await projects.get('nope'), undefined);
  t.equal(await projects.get('NOT VALID'), undefined);

  const u = await projects.update('emr-2024', { name: 'EMR', description: null, retentionYears: 15 }, ACTOR);
  t.match(u, { id: 'emr-2024', name: 'EMR', retentionYears: 15 });
  t.notOk('description' in u, 'description cleared');
  t.ok(u.updatedAt >= p.updatedAt);

  const f = await projects.freeze('emr-2024', ACTOR);
  t.equal(f.frozen, true);
  const frozen = await rejection(projects.writable('emr-2024'));
  t.match(frozen, { code: ProjectCodes.PROJECT_FROZEN, status: 409 });
  t.equal((await projects.show('emr-2024')).frozen, true, 'readable while frozen');
  t.equal((await projects.unfreeze('emr-2024', ACTOR)).frozen, false);
  t.equal((await projects.writable('emr-2024')).id, 'emr-2024');

  const actions = (await store.audit.list({ action: 'evidence.project.', limit: 1000 })).map((a) => `${a.action}:${a.outcome}`);
  t.ok(actions.includes('evidence.project.update:ok') && actions.includes('evidence.project.freeze:ok') && actions.includes('evidence.project.unfreeze:ok'));
  t.ok(actions.includes('evidence.project.create:denied'), 'the refused duplicate is audited');
});

t.test('retention: stored records keep their retainUntil; deletion waits for it unless forced', async (t) => {
  const { projects, store, repo, blobs } = await setup(t);
  await projects.create({ id: 'emr', name: 'EMR', retentionYears: 30 }, ACTOR);
  await projects.create({ id: 'lis', name: 'LIS', retentionYears: 10 }, ACTOR);
  const shared = await blobs.putBuffer(Buffer.from('abc'));
  const own = await blobs.putBuffer(Buffer.from('only emr'));
  const stored = [
    await ingest(store, repo, 'emr', 'APP1', shared.blobId),
    await ingest(store, repo, 'emr', 'APP1', own.blobId),
    await ingest(store, repo, 'emr', 'APP2'),
  ];
  await ingest(store, repo, 'lis', 'APP3', shared.blobId);
  await repo.rejection({ id: newId(), at: new Date().toISOString(), project: 'emr', appId: 'APP1', kind: 'signature', code: 'SIGNATURE_INVALID', reason: 'x' });

  const horizon = await projects.retainUntil('emr');
  t.equal(horizon, stored.map((r) => r.retainUntil).sort().at(-1), 'the latest retainUntil of the stored records');
  t.ok(Date.parse(horizon ?? '') > Date.now() + 29 * 365 * 86_400_000, '30 years ahead');
  await projects.update('emr', { retentionYears: 1 }, ACTOR);
  t.equal(await projects.retainUntil('emr'), horizon, 'shortening retention does not shorten what stored records were promised');

  const refused = await rejection(projects.delete('emr', ACTOR));
  t.match(refused, { code: ProjectCodes.PROJECT_RETENTION_ACTIVE, status: 409 });
  t.equal(refused.detail?.retainUntil, horizon);
  t.equal((await projects.writable('emr')).id, 'emr', 'a refused deletion changes nothing');
  t.equal((await store.evidenceCounters.statistics({ project: 'emr' })).total, 3);

  const d = await projects.delete('emr', ACTOR, { force: true });
  t.same(d, { id: 'emr', records: 3, blobs: 1, forced: true, retainUntil: horizon });
  t.equal(await projects.get('emr'), undefined);
  t.match(await rejection(projects.writable('emr')), { code: ProjectCodes.PROJECT_NOT_FOUND });
  t.equal((await repo.query({ project: 'emr' })).items.length, 0, 'records gone');
  t.equal((await repo.rejections('emr')).items.length, 0, 'rejections gone');
  t.equal((await repo.query({ project: 'lis' })).items.length, 1, 'other projects untouched');
  t.ok(await blobs.has(shared.blobId), 'a blob another project still uses stays');
  t.notOk(await blobs.has(own.blobId), "the project's own blob is removed");
  const all = await store.evidenceCounters.statistics({});
  t.equal(all.total, 1, 'counts of the project are gone from the totals');
  t.equal(all.rejections.total, 0);
  const audit = (await store.audit.list({ action: 'evidence.project.delete', limit: 1000 })).filter((a) => a.outcome === 'ok');
  t.equal(audit.length, 1);
  t.match(audit[0], { actor: ACTOR, target: 'emr', detail: { records: 3, blobs: 1, forced: true, retainUntil: horizon } });
  t.ok((await store.audit.list({ action: 'evidence.project.delete', limit: 1000 })).some((a) => a.outcome === 'denied'), 'the refusal is audited');
  t.same(await store.audit.verifyChain().then((v) => v.ok), true, 'audit chain intact');
});

t.test('after the retention period a project is deleted without force', async (t) => {
  let now = new Date();
  const { projects, store, repo } = await setup(t, { clock: () => now });
  await projects.create({ id: 'short', name: 'Short', retentionYears: 1 }, ACTOR);
  await ingest(store, repo, 'short', 'APP');
  t.match(await rejection(projects.delete('short', ACTOR)), { code: ProjectCodes.PROJECT_RETENTION_ACTIVE });
  now = new Date(Date.now() + 367 * 86_400_000);
  t.match(await projects.delete('short', ACTOR), { id: 'short', records: 1, forced: false });
});

t.test('a deletion interrupted after the records went is finished by deleting again', async (t) => {
  const { projects, store, repo } = await setup(t);
  await projects.create({ id: 'p', name: 'P', retentionYears: 1 }, ACTOR);
  await ingest(store, repo, 'p', 'APP');
  await ingest(store, repo, 'p', 'APP');
  // The same project service, but the process "dies" right after the records were removed.
  const crashing = createProjects({
    projects: store.evidenceProjects,
    counters: store.evidenceCounters,
    audit: store.audit,
    defaultRetentionYears: 25,
    records: {
      async removeProject(id) {
        await tieredProjectRemover([store.evidenceHot]).removeProject(id);
        throw new Error('power lost');
      },
    },
  });
  await t.rejects(crashing.delete('p', ACTOR, { force: true }), /power lost/);
  t.match(await rejection(projects.writable('p')), { code: ProjectCodes.PROJECT_FROZEN }, 'marked: no writes');
  t.match(await rejection(projects.unfreeze('p', ACTOR)), { code: ProjectCodes.PROJECT_DELETING, status: 409 });
  t.match(await rejection(projects.update('p', { name: 'Q' }, ACTOR)), { code: ProjectCodes.PROJECT_DELETING });
  // Resumes as forced (the first request was), without asking for force again.
  t.match(await projects.delete('p', ACTOR), { id: 'p', records: 0, forced: true });
  t.equal(await projects.get('p'), undefined);
  t.equal((await store.evidenceCounters.statistics({ project: 'p' })).total, 0, 'counters removed with the project');
});

t.test('without a records repository a project with records is not deleted', async (t) => {
  const { projects, store, repo } = await setup(t, { withRecords: false });
  await projects.create({ id: 'p', name: 'P' }, ACTOR);
  await projects.create({ id: 'empty', name: 'E' }, ACTOR);
  await ingest(store, repo, 'p', 'APP');
  const e = await rejection(projects.delete('p', ACTOR, { force: true }));
  t.match(e, { code: ProjectCodes.PROJECT_DATA_REMOVAL_UNAVAILABLE, status: 503 });
  t.equal((await projects.writable('p')).frozen, false, 'nothing changed');
  t.match(await projects.delete('empty', ACTOR), { id: 'empty', records: 0, blobs: 0, forced: false });
});

t.test("deleting 'default' brings it back fresh on next use", async (t) => {
  const { projects } = await setup(t);
  await projects.update('default', { retentionYears: 40 }, ACTOR);
  await projects.delete('default', ACTOR);
  t.equal((await projects.writable('default')).retentionYears, 25);
});

t.test('deletion reaches the cold tier (opened for removal, as the CLI does) and keeps shared blobs', async (t) => {
  const { store } = await freshStore(t, 'yq-evp-cold-');
  const extra = mkdtempSync(join(tmpdir(), 'yq-evp-cold-x-'));
  t.teardown(() => rmSync(extra, { recursive: true, force: true }));
  const coldPath = join(extra, 'cold');
  const blobs = await openBlobStore(join(extra, 'blobs'));
  let repo = await openEvidenceRepository({ hot: store.evidenceHot, merkle: store.merkle, counters: store.evidenceCounters, coldPath });
  const projects = createProjects({ projects: store.evidenceProjects, counters: store.evidenceCounters, audit: store.audit, defaultRetentionYears: 25 });
  await projects.create({ id: 'old', name: 'Old', retentionYears: 1 }, ACTOR);
  await projects.create({ id: 'keep', name: 'Keep' }, ACTOR);
  const shared = await blobs.putBuffer(Buffer.from('shared between projects'));
  const coldOnly = await blobs.putBuffer(Buffer.from('only in a cold record of old'));
  await ingest(store, repo, 'old', 'APP', coldOnly.blobId);
  await ingest(store, repo, 'old', 'APP', shared.blobId);
  await ingest(store, repo, 'keep', 'APP', shared.blobId);
  // Everything received so far goes cold; then one more hot record of 'old'.
  t.equal(await repo.moveBatchToCold(new Date(Date.now() + 1000).toISOString(), 100), 3);
  await new Promise((r) => setTimeout(r, 1100));
  await ingest(store, repo, 'old', 'APP');
  t.same(await repo.countByTier(), { hot: 1, cold: 3 });
  await repo.close();

  const cold = openColdTierForRemoval(coldPath);
  t.ok(cold, 'the cold environment exists');
  const remover = tieredProjectRemover([store.evidenceHot, cold!], blobs);
  const deleting = createProjects({ projects: store.evidenceProjects, counters: store.evidenceCounters, audit: store.audit, defaultRetentionYears: 25, records: remover });
  t.match(await deleting.delete('old', ACTOR, { force: true }), { id: 'old', records: 3, blobs: 1, forced: true });
  await cold!.close();

  repo = await openEvidenceRepository({ hot: store.evidenceHot, merkle: store.merkle, counters: store.evidenceCounters, coldPath });
  t.teardown(() => repo.close());
  t.same(await repo.countByTier(), { hot: 0, cold: 1 }, "only 'keep' is left, in cold");
  t.equal((await repo.query({ project: 'keep' })).items.length, 1);
  t.ok(await blobs.has(shared.blobId), "the blob 'keep' still refers to stays");
  t.notOk(await blobs.has(coldOnly.blobId));
  t.equal(openColdTierForRemoval(join(extra, 'never-made')), undefined, 'no cold env, nothing to open');
});
