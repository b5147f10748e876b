// The evidence log as an integrator and an auditor meet it over HTTPS (issue 6 items 3, 7): digest
// records pushed to a served appliance become leaves; the evidence-checkpoint job (every second
// here) signs and time-stamps checkpoints; the checkpoint's note verifies under the certificate it
// carries (which chains to /pki/roots), its SM2 token verifies against our SM2 CA; a record's
// leaf hash recomputed from its detail (evidence/leaf.ts) is in the tree by the inclusion proof
// the API answers; consistency between two checkpoints verifies; bad parameters get their codes;
// another project's record is not found. Jobs: listed, stop/start/run need evidence-admin, a
// stopped job stays stopped across a restart.
import t from 'tap';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { createHash, X509Certificate } from 'node:crypto';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cli, fetchRaw, serve, tempDataDir, type Served } from '../helpers/appliance.js';
import { signRequest } from '../../appliance/src/http/yq1-scheme.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';
import { noteBody, verifyCheckpoint, verifyCheckpointToken } from '../../appliance/src/evidence/checkpoint.js';
import { merkleHasher, verifyConsistency, verifyInclusion } from '../../appliance/src/evidence/merkle.js';
import { leafData } from '../../appliance/src/evidence/leaf.js';

const data = tempDataDir();
const tmp = dirname(data);
let server: Served | undefined;
type App = { id: string; signer: Signer };
let emr: App;
let other: App;
const h = merkleHasher('sm3');

t.teardown(async () => {
  if (server && server.proc.exitCode === null) await server.stop('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

async function api(app: App, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  const auth = await signRequest(app.signer, app.id, method, `/api/v1${path}`, text);
  const r = await fetchRaw(`${server!.httpsUrl}/api/v1${path}`, {
    method,
    headers: { Authorization: auth, ...(text !== undefined ? { 'Content-Type': 'application/json' } : {}) },
    ...(text !== undefined ? { body: text } : {}),
  });
  let json: any;
  try {
    json = JSON.parse(r.body);
  } catch {
    json = r.body;
  }
  return { status: r.status, json };
}

function makeApp(name: string, project?: string): App {
  const keyFile = join(tmp, `${name}.key`);
  const r = cli(['app', 'create', '--data', data, '--name', name, '--key-out', keyFile, '--json', ...(project ? ['--project', project] : [])]);
  if (r.code !== 0) throw new Error(r.stderr);
  return { id: JSON.parse(r.stdout).id, signer: createSoftwareSigner(readFileSync(keyFile, 'utf8')) };
}

async function pushDigest(app: App, n: number): Promise<{ id: string; leafIndex: number; leafHash: string }> {
  const value = createHash('sm3').update(`病历 ${n}`).digest();
  const r = await api(app, 'POST', '/evidence/digests', { digest: { algorithm: 'sm3', value: value.toString('base64') }, metadata: { businessSerial: `BS-${n}` } });
  if (r.status !== 201 && r.status !== 200) throw new Error(`ingest ${n}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

async function waitForCheckpoint(app: App, size: number): Promise<any> {
  for (let i = 0; i < 100; i++) {
    const r = await api(app, 'GET', '/evidence/log/checkpoints/latest');
    if (r.status === 200 && r.json.treeSize >= size) return r.json;
    await sleep(200);
  }
  throw new Error(`no checkpoint of size ≥ ${size}`);
}

/** A GET whose body stays bytes (DER). */
function getBytes(url: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    httpGet(url, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks)));
    }).on('error', reject);
  });
}

const der = (pem: string): Buffer[] => (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((p) => Buffer.from(new X509Certificate(p).raw));

t.before(async () => {
  const init = cli(['init', '--data', data, '--json']);
  if (init.code !== 0) throw new Error(init.stderr);
  const cfgFile = join(data, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
  cfg.evidence = { ...(cfg.evidence ?? {}), checkpointSeconds: 1 };
  writeFileSync(cfgFile, JSON.stringify(cfg, null, 2));
  const p = cli(['evidence', 'project', 'create', 'lab', '--data', data, '--name', 'LIS 检验', '--retention-years', '15']);
  if (p.code !== 0) throw new Error(`project create: ${p.stderr}`);
  emr = makeApp('EMR');
  other = makeApp('LIS', 'lab');
  server = await serve(data);
});

t.test('checkpoints: signed, time-stamped, consistent; inclusion of a record', async (t) => {
  t.equal((await api(emr, 'GET', '/evidence/log/checkpoints/latest')).json.code, 'CHECKPOINT_NOT_FOUND', 'none before the first record');
  const pushed = [];
  for (let i = 0; i < 5; i++) pushed.push(await pushDigest(emr, i));
  const cp = await waitForCheckpoint(emr, 5);
  t.equal(cp.treeSize, 5, 'one checkpoint over the five leaves');

  // The signature, under the certificate the checkpoint carries, which chains to our ECDSA root.
  const roots = der((await fetchRaw(`${server!.httpUrl}/pki/roots`)).body);
  const cert = new X509Certificate(Buffer.from(cp.signerCertificate, 'base64'));
  const issuing = new X509Certificate(Buffer.from(cp.signerChain[0], 'base64'));
  t.ok(cert.verify(issuing.publicKey), 'signer certificate issued by the chain CA');
  t.ok(roots.some((r) => issuing.verify(new X509Certificate(r).publicKey)), 'chain CA issued by a root of /pki/roots');
  const origin = cp.note.split('\n')[0];
  const v = await verifyCheckpoint(cp.note, [{ name: origin, publicKeyInfo: cert.publicKey.export({ type: 'spki', format: 'der' }) }], origin);
  t.ok(v.valid, `note verifies: ${v.valid ? 'ok' : v.reason}`);
  if (v.valid) t.equal(v.checkpoint.rootHash.toString('hex'), cp.rootHash);

  // The token, against the SM2 root and issuing CA.
  const sm2IssuingDer = await getBytes(`${server!.httpUrl}/pki/ca/sm2-issuing.crt`);
  const tok = await verifyCheckpointToken(Buffer.from(cp.timestampToken, 'base64'), noteBody(cp.note)!, { anchors: roots, intermediates: [sm2IssuingDer] });
  t.ok(tok.ok, `token verifies: ${tok.reason ?? 'ok'}`);

  // Inclusion of a record, its leaf recomputed from its detail.
  const rec = pushed[3];
  const detail = await api(emr, 'GET', `/evidence/records/${rec.id}`);
  t.equal(detail.status, 200, 'record detail');
  t.equal(h.leaf(leafData(detail.json)).toString('hex'), rec.leafHash, 'leaf hash = SM3 leaf of the record detail');
  const inc = await api(emr, 'GET', `/evidence/records/${rec.id}/inclusion`);
  t.equal(inc.status, 200);
  t.equal(inc.json.treeSize, 5, 'default: the covering checkpoint');
  t.equal(inc.json.checkpoint.treeSize, 5);
  t.equal(inc.json.leafIndex, rec.leafIndex);
  t.ok(verifyInclusion(h, Buffer.from(rec.leafHash, 'hex'), rec.leafIndex, 5, inc.json.proof.map((x: string) => Buffer.from(x, 'hex')), Buffer.from(cp.rootHash, 'hex')), 'inclusion proof verifies against the checkpoint root');

  // Growth: a second checkpoint, consistent with the first.
  for (let i = 5; i < 8; i++) pushed.push(await pushDigest(emr, i));
  const cp2 = await waitForCheckpoint(emr, 8);
  const cons = await api(emr, 'GET', `/evidence/log/consistency?from=5&to=${cp2.treeSize}`);
  t.equal(cons.status, 200);
  t.ok(verifyConsistency(h, 5, cp2.treeSize, Buffer.from(cp.rootHash, 'hex'), Buffer.from(cp2.rootHash, 'hex'), cons.json.proof.map((x: string) => Buffer.from(x, 'hex'))), 'consistency 5 → latest verifies');
  const latestInc = await api(emr, 'GET', `/evidence/records/${rec.id}/inclusion?treeSize=latest`);
  t.equal(latestInc.json.treeSize, cp2.treeSize);
  t.ok(verifyInclusion(h, Buffer.from(rec.leafHash, 'hex'), rec.leafIndex, cp2.treeSize, latestInc.json.proof.map((x: string) => Buffer.from(x, 'hex')), Buffer.from(cp2.rootHash, 'hex')), 'and against the latest');
  const list = await api(emr, 'GET', '/evidence/log/checkpoints?limit=1');
  t.equal(list.json.items[0].treeSize, cp2.treeSize, 'newest first');
  t.equal(list.json.next, String(cp2.treeSize));
  const page2 = await api(emr, 'GET', `/evidence/log/checkpoints?limit=10&cursor=${list.json.next}`);
  t.ok(page2.json.items.some((c: any) => c.treeSize === 5));
  t.same((await api(emr, 'GET', '/evidence/log/checkpoints/5')).json, cp);

  // Bad input.
  const bad: [string, number, string][] = [
    ['/evidence/log/checkpoints/abc', 400, 'MERKLE_SIZE_INVALID'],
    ['/evidence/log/checkpoints/05', 400, 'MERKLE_SIZE_INVALID'],
    ['/evidence/log/checkpoints/4', 404, 'CHECKPOINT_NOT_FOUND'],
    ['/evidence/log/checkpoints?limit=0', 400, 'CHECKPOINT_PAGE_INVALID'],
    ['/evidence/log/checkpoints?cursor=zz', 400, 'CHECKPOINT_PAGE_INVALID'],
    ['/evidence/log/consistency?from=8&to=5', 400, 'MERKLE_RANGE_INVALID'],
    ['/evidence/log/consistency?from=5', 400, 'EVIDENCE_LOG_PARAM_INVALID'],
    ['/evidence/log/consistency?from=5&to=6', 404, 'CHECKPOINT_NOT_FOUND'],
    ['/evidence/log/consistency?from=5&from=4&to=8', 400, 'EVIDENCE_LOG_PARAM_INVALID'],
    [`/evidence/records/${pushed[6].id}/inclusion?treeSize=5`, 400, 'MERKLE_INDEX_OUT_OF_RANGE'],
    [`/evidence/records/${rec.id}/inclusion?treeSize=x`, 400, 'MERKLE_SIZE_INVALID'],
    [`/evidence/records/${rec.id}/inclusion?treeSize=100000`, 400, 'MERKLE_SIZE_INVALID'],
    ['/evidence/records/01ARZ3NDEKTSV4RRFFQ69G5FAV/inclusion', 404, 'EVIDENCE_NOT_FOUND'],
    ['/evidence/records/not-an-id/inclusion', 404, 'EVIDENCE_NOT_FOUND'],
  ];
  for (const [path, status, code] of bad) {
    const r = await api(emr, 'GET', path);
    t.equal(r.status, status, `${path}: ${status}`);
    t.equal(r.json.code, code, `${path}: ${code}`);
    t.ok(r.json.message?.['zh-CN'] && r.json.message?.en, `${path}: zh and en`);
  }
  const foreign = await api(other, 'GET', `/evidence/records/${rec.id}/inclusion`);
  t.equal(foreign.status, 404, "another project's record is not found");
  t.equal(foreign.json.code, 'EVIDENCE_NOT_FOUND');
  t.equal((await api(other, 'GET', '/evidence/log/checkpoints/latest')).status, 200, 'checkpoints are public facts of the log');
});

t.test('jobs: listed, controlled with evidence-admin, stopped stays stopped', async (t) => {
  const list = await api(emr, 'GET', '/jobs');
  t.equal(list.status, 200);
  const names = list.json.items.map((j: any) => j.name);
  t.ok(names.includes('evidence-checkpoint') && names.includes('evidence-migration'), `jobs: ${names.join(', ')}`);
  const ck = list.json.items.find((j: any) => j.name === 'evidence-checkpoint');
  t.equal(ck.intervalSeconds, 1);
  t.equal(ck.enabled, true);
  t.ok(ck.runs >= 1 && ck.lastRun?.ok === true, 'it has run');

  const denied = await api(emr, 'POST', '/jobs/evidence-checkpoint/stop');
  t.equal(denied.status, 403);
  t.equal(denied.json.code, 'EVIDENCE_ADMIN_REQUIRED');
  t.equal((await api(emr, 'POST', '/jobs/nope/stop')).json.code, 'JOB_NOT_FOUND');
  const permit = cli(['app', 'permit', '--data', data, emr.id, 'evidence-admin']);
  t.equal(permit.code, 0, permit.stderr);

  const stopped = await api(emr, 'POST', '/jobs/evidence-checkpoint/stop');
  t.equal(stopped.status, 200);
  t.equal(stopped.json.enabled, false);
  t.equal(stopped.json.nextRunAt, undefined);
  await pushDigest(emr, 100);
  const size = (await api(emr, 'GET', '/evidence/log/checkpoints/latest')).json.treeSize;
  await sleep(2500);
  t.equal((await api(emr, 'GET', '/evidence/log/checkpoints/latest')).json.treeSize, size, 'no checkpoint while stopped');
  const run = await api(emr, 'POST', '/jobs/evidence-checkpoint/run');
  t.equal(run.status, 200);
  t.equal(run.json.run.ok, true);
  t.equal(run.json.run.result.made, true, 'run now made one');
  t.equal(run.json.job.enabled, false, 'still stopped');
  const again = await api(emr, 'POST', '/jobs/evidence-checkpoint/run');
  t.same(again.json.run.result, { made: false, reason: 'unchanged' }, 'nothing new: no checkpoint');

  // Stopped survives a restart.
  await server!.stop('SIGTERM');
  server = await serve(data);
  const after = await api(emr, 'GET', '/jobs/evidence-checkpoint');
  t.equal(after.json.enabled, false, 'stopped after a restart');
  const started = await api(emr, 'POST', '/jobs/evidence-checkpoint/start');
  t.equal(started.json.enabled, true);
  await pushDigest(emr, 101);
  const cp = await waitForCheckpoint(emr, size + 2);
  t.equal(cp.treeSize, size + 2, 'checkpoints resume');
});
