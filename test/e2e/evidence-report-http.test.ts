// Evidence reports end to end over a served appliance (issue 6 items 4, 7): a held SM2 key signs
// a CMS through POST /api/v1/sign/cms, the app pushes it to /evidence/signatures; before any
// checkpoint the bundle and the report are 409 EVIDENCE_NOT_ANCHORED; an evidence-admin app
// (`yiqian app permit … evidence-admin`) runs the evidence-checkpoint job over the API; then
//   - GET …/bundle.json → ops/verify-evidence (the offline verifier, its own process) exits 0,
//     and with one changed byte it exits non-zero naming the part;
//   - GET …/report.pdf → poppler's pdfsig says "Signature is Valid." and "Total document signed";
//   - the evidence-migration job (afterDays 0) moves the record to the cold tier, and the bundle
//     fetched then still verifies.
// The checkpoint job is slowed to once an hour here so that "not anchored" is observable.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { cli, fetchRaw, serve, tempDataDir, type Served } from '../helpers/appliance.js';
import { signRequest } from '../../appliance/src/http/yq1-scheme.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';
import { request as httpsRequest } from 'node:https';

const ROOT = resolve(import.meta.dirname, '../..');
const VERIFIER = join(ROOT, 'ops/verify-evidence');
const data = tempDataDir();
const tmp = dirname(data);
let server: Served | undefined;
type App = { id: string; signer: Signer };
let emr: App;
let admin: App;

t.teardown(async () => {
  if (server && server.proc.exitCode === null) await server.stop('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

/** One signed call; the body of the answer as bytes (PDF) and, when it is JSON, parsed. */
async function call(app: App, method: string, path: string, body?: unknown): Promise<{ status: number; bytes: Buffer; json: any; headers: Record<string, unknown> }> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  const auth = await signRequest(app.signer, app.id, method, `/api/v1${path}`, text);
  return new Promise((done, reject) => {
    const req = httpsRequest(
      `${server!.httpsUrl}/api/v1${path}`,
      { method, rejectUnauthorized: false, agent: false, headers: { Authorization: auth, ...(text !== undefined ? { 'Content-Type': 'application/json' } : {}) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const bytes = Buffer.concat(chunks);
          let json: any;
          try {
            json = JSON.parse(bytes.toString('utf8'));
          } catch {
            json = undefined;
          }
          done({ status: res.statusCode ?? 0, bytes, json, headers: res.headers });
        });
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

function makeApp(name: string): App {
  const keyFile = join(tmp, `${name}.key`);
  const r = cli(['app', 'create', '--data', data, '--name', name, '--key-out', keyFile, '--json']);
  if (r.code !== 0) throw new Error(r.stderr);
  return { id: JSON.parse(r.stdout).id, signer: createSoftwareSigner(readFileSync(keyFile, 'utf8')) };
}

function verify(file: string): { code: number; out: string } {
  const r = spawnSync(process.execPath, [VERIFIER, file], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

function pdfsig(file: string): string {
  const r = spawnSync('pdfsig', [file], { encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`; // pdfsig exits 0 whatever it finds: its text is the answer
}

t.before(async () => {
  const init = cli(['init', '--data', data, '--json']);
  if (init.code !== 0) throw new Error(init.stderr);
  const cfgFile = join(data, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
  // Checkpoints only when asked (run), migration of every record (afterDays 0) only when asked.
  cfg.evidence = { ...(cfg.evidence ?? {}), checkpointSeconds: 3600, migration: { afterDays: 0, batchSize: 100, everySeconds: 604800 } };
  writeFileSync(cfgFile, JSON.stringify(cfg, null, 2));
  emr = makeApp('EMR 电子病历');
  admin = makeApp('运维');
  const permit = cli(['app', 'permit', admin.id, 'evidence-admin', '--data', data]);
  if (permit.code !== 0) throw new Error(permit.stderr);
  const key = spawnSync(process.execPath, [join(ROOT, 'dist/appliance/src/cli/main.js'), 'signing-key', 'create', '--data', data, '--label', 'dr-sm2', '--kind', 'department', '--cn', '李医生', '--grant', emr.id], {
    encoding: 'utf8',
    env: { ...process.env, NODE_ENV: 'test' },
  });
  if (key.status !== 0) throw new Error(key.stderr);
  server = await serve(data);
});

let recordId: string;

t.test('a CMS made by a held SM2 key is pushed; no report before a checkpoint', async (t) => {
  const content = Buffer.from('出院小结：患者张三，诊断明确，准予出院。\n');
  const signed = await call(emr, 'POST', '/sign/cms', { key: 'dr-sm2', content: content.toString('base64') });
  t.equal(signed.status, 200, 'signed by the held SM2 key');
  t.equal(signed.json.form, 'gbt35275');
  const pushed = await call(emr, 'POST', '/evidence/signatures', { signature: { format: 'cms', value: signed.json.cms }, metadata: { departmentId: 'D-CARD', patientId: 'ZY2026112301', documentType: 'discharge-summary' } });
  t.equal(pushed.status, 201, JSON.stringify(pushed.json).slice(0, 300));
  t.equal(pushed.json.verdict.valid, true);
  recordId = pushed.json.id;

  for (const what of ['bundle.json', 'report.pdf']) {
    const r = await call(emr, 'GET', `/evidence/records/${recordId}/${what}`);
    t.equal(r.status, 409, `${what} before any checkpoint`);
    t.equal(r.json.code, 'EVIDENCE_NOT_ANCHORED');
  }
  const refused = await call(emr, 'POST', '/jobs/evidence-checkpoint/run');
  t.equal(refused.status, 403, 'running a job needs evidence-admin');
  t.equal(refused.json.code, 'EVIDENCE_ADMIN_REQUIRED');
});

t.test('after the checkpoint job: the bundle verifies offline, the PDF is signed', async (t) => {
  const run = await call(admin, 'POST', '/jobs/evidence-checkpoint/run');
  t.equal(run.status, 200);
  t.equal(run.json.run.ok, true, JSON.stringify(run.json.run));

  const bundle = await call(emr, 'GET', `/evidence/records/${recordId}/bundle.json`);
  t.equal(bundle.status, 200);
  t.match(String(bundle.headers['content-disposition']), new RegExp(`evidence-${recordId}\\.json`));
  t.equal(bundle.json.record.id, recordId);
  const file = join(tmp, 'bundle.json');
  writeFileSync(file, bundle.bytes);
  const ok = verify(file);
  t.equal(ok.code, 0, `ops/verify-evidence passes\n${ok.out}`);

  // One changed byte (a hex digit of the checkpoint root, inside the signed note) fails it.
  const text = bundle.bytes.toString('utf8');
  const root = bundle.json.checkpoint?.rootHash ?? bundle.json.inclusion?.rootHash;
  const pos = root ? text.indexOf(root) : text.indexOf('"leafHash":"') + 12;
  t.ok(pos > 0, 'a byte to change');
  const changed = Buffer.from(text);
  changed[pos] = changed[pos] === 0x30 ? 0x31 : 0x30;
  const bad = join(tmp, 'bundle-changed.json');
  writeFileSync(bad, changed);
  const fails = verify(bad);
  t.not(fails.code, 0, `one changed byte → exit ${fails.code}`);

  const pdf = await call(emr, 'GET', `/evidence/records/${recordId}/report.pdf`);
  t.equal(pdf.status, 200);
  t.match(String(pdf.headers['content-type']), /^application\/pdf/);
  t.equal(pdf.bytes.subarray(0, 5).toString('latin1'), '%PDF-');
  const pdfFile = join(tmp, 'report.pdf');
  writeFileSync(pdfFile, pdf.bytes);
  const sig = pdfsig(pdfFile);
  t.match(sig, /Signature Validation: Signature is Valid\./, 'pdfsig: valid');
  t.match(sig, /Total document signed/, 'pdfsig: the whole document');
  // One changed byte inside the signed range (a letter of the Info dictionary's /Producer value).
  const latin = pdf.bytes.toString('latin1');
  const byteRange = /\/ByteRange \[(\d+) (\d+) (\d+) (\d+)\]/.exec(latin)!;
  const at = latin.indexOf('/Producer');
  t.ok(at > 0 && at < Number(byteRange[2]), 'the changed byte lies in the signed range');
  const flipped = Buffer.from(pdf.bytes);
  flipped[at + 2] ^= 0x01;
  writeFileSync(join(tmp, 'report-changed.pdf'), flipped);
  t.match(pdfsig(join(tmp, 'report-changed.pdf')), /Digest Mismatch\./, 'pdfsig: a changed byte is a digest mismatch');

  const other = await call(emr, 'GET', `/evidence/records/${recordId}/bundle.json?original=maybe`);
  t.equal(other.status, 400);
  t.equal(other.json.code, 'EVIDENCE_REPORT_PARAM_INVALID');
  const missing = await call(emr, 'GET', `/evidence/records/01ARZ3NDEKTSV4RRFFQ69G5FAV/report.pdf`);
  t.equal(missing.status, 404);
  t.equal(missing.json.code, 'EVIDENCE_NOT_FOUND');
});

t.test('moved to the cold tier by the migration job, the bundle still verifies', async (t) => {
  const run = await call(admin, 'POST', '/jobs/evidence-migration/run');
  t.equal(run.status, 200);
  t.equal(run.json.run.ok, true, JSON.stringify(run.json.run));
  const detail = await call(emr, 'GET', `/evidence/records/${recordId}`);
  t.equal(detail.json.tier, 'cold', 'the record is in the cold tier');

  const bundle = await call(emr, 'GET', `/evidence/records/${recordId}/bundle.json`);
  t.equal(bundle.status, 200);
  const file = join(tmp, 'bundle-cold.json');
  writeFileSync(file, bundle.bytes);
  const ok = verify(file);
  t.equal(ok.code, 0, `ops/verify-evidence passes on the cold record's bundle\n${ok.out}`);
  const pdf = await call(emr, 'GET', `/evidence/records/${recordId}/report.pdf`);
  t.equal(pdf.status, 200);
  writeFileSync(join(tmp, 'report-cold.pdf'), pdf.bytes);
  t.match(pdfsig(join(tmp, 'report-cold.pdf')), /Signature is Valid\./, 'and the report of a cold record is signed');
  t.ok((await fetchRaw(`${server!.httpsUrl}/healthz`)).status === 200);
});
