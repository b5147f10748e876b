// Evidence records as an integrator meets them (issue 6 items 1–2): `yiqian init`, two apps in
// two projects, held keys made by `yiqian signing-key create`, `yiqian serve`; then over HTTPS with
// YQ1-signed requests: /api/v1/sign/cms (SM2 GB/T 35275, ECDSA CAdES-T) → /api/v1/evidence/signatures,
// raw signatures from /sign/raw, batch pushes, digests, detail, queries, re-verification, rejections, another
// project's ids (404), each bad input's code; and after a restart every acknowledged record is there.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';
import { signRequest } from '../../appliance/src/http/yq1-scheme.js';
import { CLI, cli, fetchRaw, serve, tempDataDir, type Served } from '../helpers/appliance.js';

const data = tempDataDir();
const work = dirname(data);
let server: Served | undefined;
const apps: Record<'emr' | 'lis', { id: string; signer: Signer }> = {} as never;
const DOC = Buffer.from('出院小结 #2026-1123：患者病情稳定，准予出院。', 'utf8');
const b64 = (b: Buffer): string => b.toString('base64');

t.teardown(async () => {
  if (server && server.proc.exitCode === null) await server.stop('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

interface Res {
  status: number;
  json: any;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

async function call(who: 'emr' | 'lis', method: string, path: string, body?: unknown, type = 'application/json'): Promise<Res> {
  const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  const auth = await signRequest(apps[who].signer, apps[who].id, method, `/api/v1${path}`, text);
  const r = await fetchRaw(`${server!.httpsUrl}/api/v1${path}`, { method, headers: { Authorization: auth, ...(text !== undefined ? { 'Content-Type': type } : {}) }, ...(text !== undefined ? { body: text } : {}) });
  let json: any;
  try {
    json = JSON.parse(r.body);
  } catch {
    json = undefined;
  }
  return { status: r.status, json, body: r.body, headers: r.headers };
}

t.before(async () => {
  const init = cli(['init', '--data', data, '--json']);
  if (init.code !== 0) throw new Error(init.stderr);
  const lis = cli(['evidence', 'project', 'create', 'lis', '--data', data, '--name', 'LIS']);
  if (lis.code !== 0) throw new Error(lis.stderr);
  for (const [who, project] of [['emr', undefined], ['lis', 'lis']] as const) {
    const keyFile = join(work, `${who}.key`);
    const created = cli(['app', 'create', '--data', data, '--name', who.toUpperCase(), '--key-out', keyFile, ...(project ? ['--project', project] : []), '--json']);
    if (created.code !== 0) throw new Error(created.stderr);
    apps[who] = { id: JSON.parse(created.stdout).id, signer: createSoftwareSigner(readFileSync(keyFile, 'utf8')) };
  }
  const sm2 = spawnSync(
    process.execPath,
    [CLI, 'signing-key', 'create', '--data', data, '--label', 'dr-sm2', '--kind', 'department', '--cn', '李医生', '--grant', apps.emr.id, '--access-code-file', '-'],
    { env: { ...process.env, NODE_ENV: 'test' }, input: 'code-2026\n', encoding: 'utf8', timeout: 120_000 },
  );
  if (sm2.status !== 0) throw new Error(sm2.stderr);
  const ec = cli(['signing-key', 'create', '--data', data, '--label', 'seal-ec', '--kind', 'seal', '--alg', 'ecdsa-p256', '--cn', '某某医院 病案章', '--grant', apps.emr.id]);
  if (ec.code !== 0) throw new Error(ec.stderr);
  server = await serve(data);
});

const acknowledged: string[] = [];

t.test('sign with held keys, push the signature, read it back, re-verify', async (t) => {
  const gm = await call('emr', 'POST', '/sign/cms', { key: 'dr-sm2', accessCode: 'code-2026', content: b64(DOC) });
  t.equal(gm.status, 200, gm.body);
  const meta = { system: 'EMR', departmentId: 'D-CARD', patientId: 'ZY2026112301', businessSerial: 'DS-1123', documentType: 'discharge-summary' };
  const pushed = await call('emr', 'POST', '/evidence/signatures', { signature: { format: 'cms', value: gm.json.cms, signingTime: gm.json.signingTime, statedSigner: { name: '李医生' } }, metadata: meta });
  t.equal(pushed.status, 201, pushed.body);
  t.match(pushed.json, { id: /^[0-9A-Z]{26}$/, verdict: { valid: true, code: 'OK', judgedAtSource: 'request' }, leafIndex: 0, receivedAt: /Z$/ });
  t.equal(pushed.headers.location, `/api/v1/evidence/records/${pushed.json.id}`);
  acknowledged.push(pushed.json.id);

  const ts = await call('emr', 'POST', '/sign/cms', { key: 'seal-ec', content: b64(DOC), detached: true, timestamp: true });
  t.equal(ts.status, 200, ts.body);
  const cadesT = await call('emr', 'POST', '/evidence/signatures', { original: b64(DOC), mediaType: 'text/plain', signature: { format: 'cms', value: ts.json.cms }, metadata: { ...meta, documentType: 'seal' } });
  t.equal(cadesT.status, 201, cadesT.body);
  t.equal(cadesT.json.verdict.judgedAtSource, 'timestamp', 'CAdES-T: judged at the genTime');
  t.equal(cadesT.json.leafIndex, 1);
  acknowledged.push(cadesT.json.id);

  const raw = await call('emr', 'POST', '/sign/raw', { key: 'seal-ec', data: b64(DOC) });
  t.equal(raw.status, 200, raw.body);
  const rawPush = await call('emr', 'POST', '/evidence/signatures', { original: b64(DOC), signature: { format: 'raw', value: raw.json.signature, algorithm: raw.json.algorithm, certificate: raw.json.certificate } });
  t.equal(rawPush.status, 201, rawPush.body);
  acknowledged.push(rawPush.json.id);

  const dg = await call('emr', 'POST', '/evidence/digests', { digest: { algorithm: 'sm3', value: b64(Buffer.alloc(32, 7)) }, metadata: { businessSerial: 'LAB-9' } });
  t.equal(dg.status, 201, dg.body);
  acknowledged.push(dg.json.id);

  const detail = await call('emr', 'GET', `/evidence/records/${pushed.json.id}`);
  t.equal(detail.status, 200, detail.body);
  t.match(detail.json, { id: pushed.json.id, kind: 'signature', project: 'default', appId: apps.emr.id, departmentId: 'D-CARD', patientIdMasked: 'ZY********01', tier: 'hot', signature: { format: 'cms' }, verification: { valid: true, signer: { commonName: '李医生' } } });
  t.notOk(detail.body.includes('ZY2026112301'), 'no plain patient id in the answer');
  t.notOk('patientIdSealed' in detail.json);

  const byPatient = await call('emr', 'GET', '/evidence/records?patientId=ZY2026112301&limit=1');
  t.equal(byPatient.status, 200, byPatient.body);
  t.same(byPatient.json.items.map((r: any) => r.id), [pushed.json.id], 'page 1 by patient');
  // A list item is a summary: the CMS and the report stay with the detail.
  for (const k of ['signature', 'verification', 'contentDigest', 'patientIdSealed', 'patientIdIndex']) t.notOk(k in byPatient.json.items[0], `no ${k} in a list item`);
  t.match(byPatient.json.items[0], { id: pushed.json.id, kind: 'signature', appId: apps.emr.id, departmentId: 'D-CARD', patientIdMasked: 'ZY********01', tier: 'hot', verdict: { valid: true, code: 'OK' }, signer: { subject: detail.json.verification.signer.subject, serial: detail.json.verification.signer.serial } });
  const page2 = await call('emr', 'GET', `/evidence/records?patientId=ZY2026112301&limit=1&cursor=${byPatient.json.next}`);
  t.same(page2.json.items.map((r: any) => r.id), [cadesT.json.id], 'page 2');
  t.notOk(page2.json.next);
  t.same((await call('emr', 'GET', '/evidence/records?documentType=seal')).json.items.map((r: any) => r.id), [cadesT.json.id]);
  t.same((await call('emr', 'GET', '/evidence/records?kind=digest')).json.items.map((r: any) => r.id), [dg.json.id]);
  const from = encodeURIComponent(new Date(Date.parse(pushed.json.receivedAt) + 1).toISOString());
  t.same((await call('emr', 'GET', `/evidence/records?from=${from}`)).json.items.map((r: any) => r.id), acknowledged.slice(1), 'time range');

  const v = await call('emr', 'POST', `/evidence/records/${cadesT.json.id}/verify`);
  t.equal(v.status, 200, v.body);
  t.match(v.json, { id: cadesT.json.id, stored: { valid: true }, fresh: { valid: true, judgedAtSource: 'timestamp' }, verifiedAt: /Z$/ });
  t.equal((await call('emr', 'POST', `/evidence/records/${dg.json.id}/verify`)).json.code, 'EVIDENCE_NOT_SIGNED');
});

t.test('another project: its ids are 404, its lists are its own', async (t) => {
  const other = await call('lis', 'GET', `/evidence/records/${acknowledged[0]}`);
  t.equal(other.status, 404);
  t.equal(other.json.code, 'EVIDENCE_NOT_FOUND');
  t.equal((await call('lis', 'POST', `/evidence/records/${acknowledged[0]}/verify`)).json.code, 'EVIDENCE_NOT_FOUND');
  t.same((await call('lis', 'GET', '/evidence/records')).json.items, []);
  t.equal((await call('emr', 'GET', '/evidence/records/not-an-id')).status, 404);
});

t.test('bad input: each its code; refusals kept as rejections', async (t) => {
  const raw = await call('emr', 'POST', '/sign/raw', { key: 'seal-ec', data: b64(DOC) });
  const cases: [unknown, number, string][] = [
    [{ original: b64(Buffer.from('altered')), signature: { format: 'raw', value: raw.json.signature, certificate: raw.json.certificate } }, 422, 'SIGNATURE_INVALID'],
    [{ digest: { algorithm: 'sha256', value: b64(Buffer.alloc(20)) }, signature: { format: 'raw', value: raw.json.signature, certificate: raw.json.certificate } }, 400, 'DIGEST_LENGTH_INVALID'],
    [{ signature: { format: 'raw', value: raw.json.signature, certificate: raw.json.certificate } }, 400, 'ORIGINAL_OR_DIGEST_REQUIRED'],
    [{ original: b64(DOC), signature: { format: 'raw', value: raw.json.signature } }, 400, 'CERTIFICATE_REQUIRED'],
    [{ original: '***', signature: { format: 'raw', value: raw.json.signature, certificate: raw.json.certificate } }, 400, 'EVIDENCE_REQUEST_INVALID'],
    [{ original: b64(DOC), signature: { format: 'pgp', value: 'AA==' } }, 400, 'EVIDENCE_REQUEST_INVALID'],
    [{ original: b64(DOC), signature: { format: 'cms', value: b64(Buffer.from('3003020101', 'hex')) } }, 422, 'CMS_MALFORMED'],
    [{ original: b64(DOC), extra: 1, signature: { format: 'raw', value: raw.json.signature, certificate: raw.json.certificate } }, 400, 'EVIDENCE_REQUEST_INVALID'],
    [[1, 2], 400, 'EVIDENCE_REQUEST_INVALID'],
  ];
  for (const [body, status, code] of cases) {
    const r = await call('emr', 'POST', '/evidence/signatures', body);
    t.equal(r.status, status, `${code}: ${r.body.slice(0, 200)}`);
    t.equal(r.json?.code, code);
    t.match(r.headers['content-type'], /application\/problem\+json/);
    t.notOk(/at .+\.js:\d+/.test(r.body), 'no stack');
    t.ok(r.json?.message?.['zh-CN'] && r.json?.message?.en, 'zh and en');
  }
  const notJson = await call('emr', 'POST', '/evidence/digests', 'digest=1', 'application/x-www-form-urlencoded');
  t.equal(notJson.status, 415);
  t.equal((await call('emr', 'GET', '/evidence/records?limit=0')).json.code, 'EVIDENCE_QUERY_INVALID');
  t.equal((await call('emr', 'GET', '/evidence/records?colour=red')).json.code, 'EVIDENCE_QUERY_INVALID');
  const rejections = await call('emr', 'GET', '/evidence/rejections');
  t.equal(rejections.status, 200);
  t.same(rejections.json.items.map((r: any) => r.code), ['SIGNATURE_INVALID', 'DIGEST_LENGTH_INVALID', 'CMS_MALFORMED'], 'refusals, not malformed requests');
  t.same((await call('lis', 'GET', '/evidence/rejections')).json.items, [], 'own project only');
});

t.test('batch push: each item answered alone, the good stored, the bad refused and counted', async (t) => {
  const stats0 = (await call('emr', 'GET', '/evidence/stats?scope=app')).json;
  const cms = await Promise.all([1, 2].map((n) => call('emr', 'POST', '/sign/cms', { key: 'dr-sm2', accessCode: 'code-2026', content: b64(Buffer.from(`病程记录 ${n}`)) })));
  const raw = await call('emr', 'POST', '/sign/raw', { key: 'seal-ec', data: b64(DOC) });
  const items = [
    { signature: { format: 'cms', value: cms[0].json.cms }, metadata: { departmentId: 'D-CARD', businessSerial: 'BATCH-1' } },
    { original: b64(Buffer.from('altered')), signature: { format: 'raw', value: raw.json.signature, certificate: raw.json.certificate }, metadata: { departmentId: 'D-CARD' } },
    { original: '***', signature: { format: 'raw', value: raw.json.signature, certificate: raw.json.certificate } },
    { signature: { format: 'cms', value: cms[1].json.cms }, metadata: { departmentId: 'D-CARD', businessSerial: 'BATCH-2' } },
  ];
  const r = await call('emr', 'POST', '/evidence/signatures/batch', { items });
  t.equal(r.status, 200, r.body);
  t.match(r.json, { stored: 2, failed: 2 });
  t.same(r.json.items.map((x: any) => [x.index, x.ok]), [[0, true], [1, false], [2, false], [3, true]]);
  t.match(r.json.items[0], { id: /^[0-9A-Z]{26}$/, verdict: { valid: true, code: 'OK' }, leafIndex: acknowledged.length });
  t.match(r.json.items[3], { verdict: { valid: true }, leafIndex: acknowledged.length + 1 });
  t.match(r.json.items[1].error, { code: 'SIGNATURE_INVALID', status: 422, rejectionId: /^[0-9A-Z]{26}$/ });
  t.ok(r.json.items[1].error.title && r.json.items[1].error.detail, 'en and zh');
  t.match(r.json.items[2].error, { code: 'EVIDENCE_REQUEST_INVALID', status: 400, field: 'original' });
  acknowledged.push(r.json.items[0].id, r.json.items[3].id);
  for (const i of [0, 3]) {
    const rec = await call('emr', 'GET', `/evidence/records/${r.json.items[i].id}`);
    t.match(rec.json, { businessSerial: `BATCH-${i === 0 ? 1 : 2}`, verification: { valid: true } });
  }
  const stats1 = (await call('emr', 'GET', '/evidence/stats?scope=app')).json;
  t.equal(stats1.total, stats0.total + 2, 'two records counted');
  t.equal(stats1.rejections.total, stats0.rejections.total + 1, 'one rejection counted (the unparseable item is not one)');
  const rejections = (await call('emr', 'GET', '/evidence/rejections')).json.items;
  t.equal(rejections[rejections.length - 1].id, r.json.items[1].error.rejectionId);

  const empty = await call('emr', 'POST', '/evidence/signatures/batch', { items: [] });
  t.equal(empty.status, 400);
  t.equal(empty.json.code, 'EVIDENCE_BATCH_EMPTY');
  const big = await call('emr', 'POST', '/evidence/signatures/batch', { items: Array.from({ length: 101 }, () => items[0]) });
  t.equal(big.status, 413);
  t.equal(big.json.code, 'EVIDENCE_BATCH_TOO_LARGE');
  t.equal((await call('emr', 'POST', '/evidence/signatures/batch', { items: {} })).json.code, 'EVIDENCE_REQUEST_INVALID');
});

t.test('after a restart every acknowledged record is there and in the tree', async (t) => {
  await server!.stop('SIGTERM');
  server = await serve(data);
  for (const [i, id] of acknowledged.entries()) {
    const r = await call('emr', 'GET', `/evidence/records/${id}`);
    t.equal(r.status, 200, id);
    t.equal(r.json.leafIndex, i);
  }
});
