// Deleting an evidence project over HTTPS once its retention has passed (issue 6 item 5), on a
// served appliance (needs `npx tsc -p tsconfig.json`). The records must be old for that: the
// minimum retention is a year, so the test writes the project's history before serving — through
// the real records repository, blob store and counters, records received three years ago with a
// one-year retention (a receipt time is the instant in the record's ULID) — and moves the oldest
// to the cold tier as the migration job would. Then `DELETE /evidence/projects/old` from an
// evidence-admin app removes its records from BOTH tiers, its rejections, the blobs only it used
// (not the one another project's record shares) and its counts, and audits the deletion.
import t from 'tap';
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { monotonicFactory } from 'ulid';
import { cli, fetchRaw, serve, tempDataDir, type Served } from '../helpers/appliance.js';
import { signRequest } from '../../appliance/src/http/yq1-scheme.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';
import { openStore, type Store } from '../../appliance/src/store/open-store.js';
import { openEvidenceRepository, receivedAtOf, type EvidenceRecordFields, type EvidenceRepository } from '../../appliance/src/store/evidence-repository.js';
import { openBlobStore, type FsBlobStore } from '../../appliance/src/evidence/blob-store.js';
import { leafData } from '../../appliance/src/evidence/leaf.js';
import { addYears } from '../../appliance/src/store/evidence-counters.js';

const data = tempDataDir();
const work = dirname(data);
let server: Served | undefined;
let admin: { id: string; signer: Signer };
const YEAR = 365.25 * 86_400_000;

t.teardown(async () => {
  if (server && server.proc.exitCode === null) await server.stop('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

function json(args: string[]): any {
  const r = cli([...args, '--data', data, '--json']);
  if (r.code !== 0) throw new Error(`yiqian ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

async function api(method: string, path: string): Promise<{ status: number; json: any }> {
  const auth = await signRequest(admin.signer, admin.id, method, `/api/v1${path}`);
  const r = await fetchRaw(`${server!.httpsUrl}/api/v1${path}`, { method, headers: { Authorization: auth } });
  return { status: r.status, json: JSON.parse(r.body) };
}

/** The appliance's own store, records repository (cold tier at the default <data>/evidence-cold) and blobs, in this process while no server runs. */
async function openEvidence(): Promise<{ store: Store; repo: EvidenceRepository; blobs: FsBlobStore; close(): Promise<void> }> {
  const store = await openStore(data);
  const repo = await openEvidenceRepository({ hot: store.evidenceHot, merkle: store.merkle, counters: store.evidenceCounters, coldPath: join(data, 'evidence-cold') });
  const blobs = await openBlobStore(join(data, 'blobs'));
  return { store, repo, blobs, close: async () => { await repo.close(); await store.close(); } };
}

const ids = { old: [] as string[], keep: [] as string[] };
const blob = { oldOnly: '', shared: '' };

t.test('projects, an admin app, and three-year-old history in both tiers', async (t) => {
  t.equal(cli(['init', '--data', data, '--json']).code, 0);
  t.match(json(['evidence', 'project', 'create', 'old', '--name', '旧项目', '--retention-years', '1']), { id: 'old', retentionYears: 1 });
  t.match(json(['evidence', 'project', 'create', 'keep', '--name', '保留', '--retention-years', '30']), { id: 'keep' });
  const keyFile = join(work, 'admin.key');
  const app = json(['app', 'create', '--name', 'ADMIN', '--key-out', keyFile]);
  admin = { id: app.id, signer: createSoftwareSigner(readFileSync(keyFile, 'utf8')) };
  json(['app', 'permit', admin.id, 'evidence-admin']);

  const ev = await openEvidence();
  try {
    const a = await ev.blobs.putBuffer(Buffer.from('住院病历 PDF: only project old has it'));
    const s = await ev.blobs.putBuffer(Buffer.from('化验单: a record of old and one of keep share it'));
    blob.oldOnly = a.blobId;
    blob.shared = s.blobId;
    const t0 = Date.now() - 3 * YEAR;
    const ulid = monotonicFactory();
    // minute i: old, old, keep, old, old, old, keep, old — each with its own Merkle leaf and counts.
    const plan: [project: 'old' | 'keep', blobId?: { blobId: string; bytes: number }][] = [['old', a], ['old', s], ['keep', s], ['old'], ['old', a], ['old'], ['keep'], ['old']];
    for (const [i, [project, original]] of plan.entries()) {
      const id = ulid(t0 + i * 60_000);
      const receivedAt = receivedAtOf(id);
      const f: EvidenceRecordFields = {
        id,
        kind: original ? 'file' : 'digest',
        project,
        appId: admin.id,
        businessSerial: `BS-${i}`,
        receivedAt,
        contentDigest: { algorithm: 'sm3', value: (original?.blobId ?? `${i}`.padStart(64, '0')) },
        ...(original ? { original: { blobId: original.blobId, bytes: original.bytes, mediaType: 'application/pdf' } } : {}),
        retainUntil: addYears(receivedAt, project === 'old' ? 1 : 30),
      };
      await ev.repo.append(f, leafData(f));
      ids[project].push(id);
    }
    await ev.repo.rejection({ id: ulid(t0 + 9 * 60_000), at: new Date(t0 + 9 * 60_000).toISOString(), project: 'old', appId: admin.id, kind: 'digest', code: 'DIGEST_LENGTH_INVALID', reason: 'a sm3 digest has 32 bytes, got 20' });
    // The migration job's move: the first four minutes go cold.
    t.equal(await ev.repo.moveBatchToCold(new Date(t0 + 3.5 * 60_000).toISOString(), 100), 4);
    t.same(await ev.repo.countByTier(), { hot: 4, cold: 4 });
    const tiers = (await ev.repo.query({ project: 'old' })).items.map((r) => r.tier);
    t.same(tiers, ['cold', 'cold', 'cold', 'hot', 'hot', 'hot'], "project old has records in both tiers");
  } finally {
    await ev.close();
  }
});

t.test('serve', async () => {
  server = await serve(data);
});

t.test('over HTTPS: a project past its retention is deleted from both tiers', async (t) => {
  const before = await api('GET', '/evidence/stats?scope=project&project=old');
  t.match(before.json, { total: 6, rejections: { total: 1 } }, 'the counters know the history');
  t.match((await api('GET', '/evidence/stats?scope=all')).json, { total: 8 });

  const r = await api('DELETE', '/evidence/projects/old');
  t.equal(r.status, 200, JSON.stringify(r.json));
  t.match(r.json, { id: 'old', records: 6, blobs: 1, forced: false });
  t.ok(Date.parse(r.json.retainUntil) < Date.now() - YEAR, 'its records were promised to be kept until about two years ago');

  t.equal((await api('GET', '/evidence/projects/old')).json.code, 'PROJECT_NOT_FOUND');
  t.match((await api('GET', '/evidence/stats?scope=all')).json, { total: 2, rejections: { total: 0 } }, "only keep's two records are counted");
  t.match((await api('GET', '/evidence/projects/keep')).json, { id: 'keep' }, 'the other project stays');
  const again = await api('DELETE', '/evidence/projects/old');
  t.equal(again.json.code, 'PROJECT_NOT_FOUND', 'deleting again: gone');
});

t.test('stop', async (t) => {
  t.equal(await server!.stop(), 0);
});

t.test('on disk: no record, rejection or blob of old in either tier; keep whole; the deletion audited', async (t) => {
  const ev = await openEvidence();
  try {
    t.same(await ev.repo.countByTier(), { hot: 1, cold: 1 }, "keep's records only: one hot, one cold");
    t.same((await ev.repo.query({ project: 'old' })).items, []);
    t.same((await ev.repo.rejections('old')).items, []);
    for (const id of ids.old) t.equal(await ev.repo.get(id), undefined, `${id} gone`);
    t.same((await ev.repo.query({ project: 'keep' })).items.map((r) => r.id), ids.keep);
    t.same((await ev.repo.query({ project: 'old', businessSerial: 'BS-0' })).items, [], 'index entries gone too');
    t.notOk(await ev.blobs.has(blob.oldOnly), 'the blob only old used is removed');
    t.ok(await ev.blobs.has(blob.shared), "the blob keep's record shares stays");
    const audit = await ev.store.audit.list({ action: 'evidence.project.delete', limit: 1000 });
    t.match(audit, [{ action: 'evidence.project.delete', target: 'old', outcome: 'ok', detail: { records: 6, blobs: 1, forced: false } }]);
    t.match(audit[0].actor, new RegExp(admin.id), 'by the admin app');
    t.ok((await ev.store.audit.verifyChain()).ok, 'the audit chain is intact');
    t.equal(await ev.store.evidenceCounters.retentionHorizon('old'), undefined, 'no retention horizon left');
  } finally {
    await ev.close();
  }
});
