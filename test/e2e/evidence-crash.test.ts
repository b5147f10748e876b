// Durability of the evidence store (issue 6 item 9): a served appliance ingests signed records
// over HTTPS from many concurrent clients while the hot→cold migration runs every second with
// afterDays 0 (every record is due at once) and checkpoints are made every second; it is killed
// with SIGKILL at a random moment, restarted on the same data directory, and killed again —
// several rounds. Then, on a last start, every record that was acknowledged (201) must be:
//   present      GET /evidence/records/:id, with the leaf index and hash it was acknowledged with,
//                and its leaf hash recomputed from the detail (evidence/leaf.ts);
//   verifiable   POST /evidence/records/:id/verify: the stored and a fresh verdict are valid;
//   in the tree  its inclusion proof verifies against a later signed checkpoint's root;
//   counted      GET /evidence/stats total ≥ the number acknowledged;
// no two acknowledged records share a leaf, and the migration did run (records in the cold tier).
// Signatures are ECDSA P-256 made here over SHA-256 digests with a key certified by the
// appliance's own CA (POST /certs with an OpenSSL-made request), so each record is fully verified
// (signature, path, revocation) before it is acknowledged.
import t from 'tap';
import { createPrivateKey, randomBytes, sign as nodeSign, createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cli, fetchRaw, serve, tempDataDir, type Served } from '../helpers/appliance.js';
import { signRequest } from '../../appliance/src/http/yq1-scheme.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';
import { merkleHasher, verifyInclusion } from '../../appliance/src/evidence/merkle.js';
import { leafData } from '../../appliance/src/evidence/leaf.js';
import { opensslCsr } from '../helpers/pki-hierarchy.js';

const ROUNDS = 4;
const CLIENTS = 24;
const h = merkleHasher('sm3');

const data = tempDataDir();
const tmp = dirname(data);
let server: Served | undefined;
let app: { id: string; signer: Signer };

t.teardown(async () => {
  if (server && server.proc.exitCode === null) await server.stop('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

async function api(method: string, path: string, body?: unknown, base = server!.httpsUrl): Promise<{ status: number; json: any }> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  const auth = await signRequest(app.signer, app.id, method, `/api/v1${path}`, text);
  const r = await fetchRaw(`${base}/api/v1${path}`, {
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

interface Acked {
  id: string;
  leafIndex: number;
  leafHash: string;
}

t.test('SIGKILL during ingestion and migration loses no acknowledged record', async (t) => {
  t.ok(cli(['init', '--data', data, '--json']).code === 0, 'init');
  const cfgFile = join(data, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
  cfg.evidence = { ...(cfg.evidence ?? {}), checkpointSeconds: 1, migration: { afterDays: 0, batchSize: 25, everySeconds: 1 } };
  writeFileSync(cfgFile, JSON.stringify(cfg, null, 2));
  const keyFile = join(tmp, 'his.key');
  const created = cli(['app', 'create', '--data', data, '--name', 'HIS', '--key-out', keyFile, '--json']);
  t.equal(created.code, 0, created.stderr);
  app = { id: JSON.parse(created.stdout).id, signer: createSoftwareSigner(readFileSync(keyFile, 'utf8')) };

  server = await serve(data);
  // The signer: an ECDSA P-256 key made by OpenSSL, certified by the appliance's CA.
  const csr = opensslCsr(tmp, 'ecdsa-p256', '/CN=张医生/O=Test Hospital', 'doctor');
  const issued = await api('POST', '/certs', { profile: 'personal', csr: csr.csrPem, employeeId: 'E1001' });
  t.equal(issued.status, 201, `signer certificate issued${issued.status === 201 ? '' : `: ${JSON.stringify(issued.json).slice(0, 300)}`}`);
  const certificate = issued.json.certificate as string;
  const key = createPrivateKey(readFileSync(csr.keyFile));

  const acked: Acked[] = [];
  let attempts = 0;
  for (let round = 1; round <= ROUNDS; round++) {
    if (round > 1) server = await serve(data); // restart on what the kill left
    const base = server.httpsUrl;
    let stop = false;
    const client = async (): Promise<void> => {
      while (!stop) {
        const doc = randomBytes(64);
        const digest = createHash('sha256').update(doc).digest();
        const sig = nodeSign('sha256', doc, key);
        attempts++;
        try {
          const r = await api('POST', '/evidence/signatures', {
            digest: { algorithm: 'sha256', value: digest.toString('base64') },
            signature: { format: 'raw', algorithm: 'ECDSA-SHA256', value: sig.toString('base64'), certificate },
            metadata: { businessSerial: `R${round}-${attempts}` },
          }, base);
          if (r.status === 201) acked.push({ id: r.json.id, leafIndex: r.json.leafIndex, leafHash: r.json.leafHash });
          else if (r.status < 500) throw new Error(`refused: ${r.status} ${JSON.stringify(r.json).slice(0, 300)}`);
          else failures.set(`${r.status} ${r.json?.code ?? ''}`, (failures.get(`${r.status} ${r.json?.code ?? ''}`) ?? 0) + 1);
        } catch (e) {
          if ((e as Error).message.startsWith('refused')) throw e;
          failures.set(`error ${(e as Error).message.slice(0, 80)}`, (failures.get(`error ${(e as Error).message.slice(0, 80)}`) ?? 0) + 1);
          return; // connection gone: the server was killed; this request was never acknowledged
        }
      }
    };
    const before = acked.length;
    const failures = new Map<string, number>();
    const clients = Array.from({ length: CLIENTS }, () => client());
    const killAt = 2000 + Math.floor(Math.random() * 3000);
    await sleep(killAt);
    const killed = server.stop('SIGKILL');
    stop = true;
    const code = await killed;
    await Promise.all(clients);
    t.equal(code, null, `round ${round}: killed after ${killAt} ms with SIGKILL; ${acked.length - before} acknowledged this round${failures.size ? `; not acknowledged: ${JSON.stringify([...failures])}` : ''}`);
  }
  t.ok(acked.length >= ROUNDS * 5, `${acked.length} acknowledged of ${attempts} attempts`);

  server = await serve(data);
  // A checkpoint covering every acknowledged record.
  const top = Math.max(...acked.map((a) => a.leafIndex));
  let cp: any;
  for (let i = 0; i < 100 && !(cp && cp.treeSize > top); i++) {
    cp = (await api('GET', '/evidence/log/checkpoints/latest')).json;
    if (!(cp && cp.treeSize > top)) await sleep(200);
  }
  t.ok(cp && cp.treeSize > top, `checkpoint ${cp?.treeSize} covers leaf ${top}`);

  t.equal(new Set(acked.map((a) => a.leafIndex)).size, acked.length, 'no two acknowledged records share a leaf');
  let missing = 0;
  let wrongLeaf = 0;
  let unverifiable = 0;
  let notIncluded = 0;
  const tiers = { hot: 0, cold: 0 };
  for (const a of acked) {
    const d = await api('GET', `/evidence/records/${a.id}`);
    if (d.status !== 200) {
      missing++;
      continue;
    }
    tiers[d.json.tier as 'hot' | 'cold']++;
    if (d.json.leafIndex !== a.leafIndex || d.json.leafHash !== a.leafHash || h.leaf(leafData(d.json)).toString('hex') !== a.leafHash) wrongLeaf++;
    const inc = await api('GET', `/evidence/records/${a.id}/inclusion?treeSize=${cp.treeSize}`);
    const proof = inc.status === 200 ? inc.json.proof.map((x: string) => Buffer.from(x, 'hex')) : [];
    if (inc.status !== 200 || !verifyInclusion(h, Buffer.from(a.leafHash, 'hex'), a.leafIndex, cp.treeSize, proof, Buffer.from(cp.rootHash, 'hex'))) notIncluded++;
  }
  // Re-verification is a full verification each: a sample of 50 (and every one of the last round's).
  const sample = [...acked].sort(() => Math.random() - 0.5).slice(0, 50);
  for (const a of sample) {
    const v = await api('POST', `/evidence/records/${a.id}/verify`);
    if (v.status !== 200 || v.json.fresh?.valid !== true || v.json.stored?.valid !== true) unverifiable++;
  }
  t.equal(missing, 0, 'every acknowledged record is present');
  t.equal(wrongLeaf, 0, 'each at the leaf it was acknowledged with');
  t.equal(notIncluded, 0, 'each in the tree of a later checkpoint');
  t.equal(unverifiable, 0, `re-verified: ${sample.length} valid`);
  t.ok(tiers.cold > 0, `migration ran during the test (${tiers.cold} cold, ${tiers.hot} hot)`);
  const stats = await api('GET', '/evidence/stats');
  t.equal(stats.status, 200, 'statistics answered');
  t.ok(stats.json.total >= acked.length, `counted: total ${stats.json.total} ≥ ${acked.length} acknowledged`);
  await server.stop('SIGTERM');
});
