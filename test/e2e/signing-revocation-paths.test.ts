// Revocation in verification, end to end over HTTP (issue 4, "Verified by real peers": a
// certificate revoked in our CA verifies as revoked on the CRL and the OCSP path, and a signature
// time-stamped before the revocation still verifies as valid at that time). Needs `make build`.
//
// Appliance A is the hospital's signer: `yiqian init`, an app, SM2 and ECDSA held keys from
// `yiqian signing-key create`, `serve`; it signs CMS with and without a CAdES-T time-stamp and a
// raw signature, then the held keys' certificates are revoked through
// POST /api/v1/certs/{serial}/revoke (keyCompromise) — more than a second later, so the
// revocation time (whole seconds in CRL and OCSP, RFC 5280 §5.1.2.6 UTCTime) is after genTime.
// A judges from its own records (source 'appliance-ca').
//
// Appliance B is another site that trusts A as an external CA: A's roots and issuing CAs,
// fetched from A's public /pki/ca/<id>.crt, imported through POST /api/v1/trust/cas — without
// revocation source (→ REVOCATION_UNKNOWN), with ocspUrl = A's /ocsp (source 'ocsp') and with
// crlUrl = A's /pki/crl/<id>.crl over plain HTTP (source 'crl'). The same CMS verify valid on B
// before the revocation and CERT_REVOKED after it (the status changes, it is not a constant);
// the time-stamped ones stay valid, judged at genTime (RFC 5280 §6.3, ETSI EN 319 102-1 §5.6.2).
//
// Peers: `openssl verify -crl_check` with A's CRL and `openssl ocsp` against A's responder give
// the same verdict for the ECDSA leaf, before (good) and after (revoked).
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { dirname, join } from 'node:path';
import { toPem } from '../../appliance/src/crypto/der.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import { signRequest } from '../../appliance/src/http/yq1-scheme.js';
import { cli, fetchRaw, serve, tempDataDir, type Served } from '../helpers/appliance.js';
import { startCa, type RunningCa } from '../helpers/revocation-client.js';

const DOC = Buffer.from('医嘱 YZ-2026-0419-113 / medication order, ward 7', 'utf8');
const b64 = (b: Buffer | string): string => Buffer.from(b).toString('base64');
const CA_IDS = ['sm2-root', 'sm2-issuing', 'ecdsa-root', 'ecdsa-issuing'] as const;
type CaId = (typeof CA_IDS)[number];

// ---------- appliance A: the signer ----------

const dataA = tempDataDir();
const workA = dirname(dataA);
let serverA: Served | undefined;
let appA: { id: string; signer: Signer };
let b: RunningCa;

t.teardown(async () => {
  if (serverA && serverA.proc.exitCode === null) await serverA.stop('SIGKILL');
  rmSync(workA, { recursive: true, force: true });
});

interface Res {
  status: number;
  json: any;
  body: string;
}

async function apiA(method: string, path: string, body?: unknown): Promise<Res> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  const auth = await signRequest(appA.signer, appA.id, method, `/api/v1${path}`, text);
  const r = await fetchRaw(`${serverA!.httpsUrl}/api/v1${path}`, {
    method,
    headers: { Authorization: auth, ...(text !== undefined ? { 'Content-Type': 'application/json' } : {}) },
    ...(text !== undefined ? { body: text } : {}),
  });
  let json: any;
  try {
    json = JSON.parse(r.body);
  } catch {
    json = undefined;
  }
  return { status: r.status, json, body: r.body };
}

/** A public GET on A's plain-HTTP listener whose body stays bytes (DER). */
function getA(path: string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    httpGet(`${serverA!.httpUrl}${path}`, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    }).on('error', reject);
  });
}

/** An openssl command in A's work directory: exit status 0, and stdout + stderr (openssl ocsp says "Response verify OK" on stderr). */
function openssl(args: string[]): { ok: boolean; out: string } {
  const r = spawnSync('openssl', args, { cwd: workA, encoding: 'utf8', timeout: 30_000 });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}` };
}

// ---------- what A signed, before the revocation ----------

interface Signed {
  cms: string;
  genTime?: string;
}
const sigs: Record<'sm2' | 'sm2T' | 'ec' | 'ecT', Signed> = {} as never;
const leaf: Record<'sm2' | 'ec', { serial: string; pem: string; rawSig: string }> = {} as never;
const caDer = {} as Record<CaId, Buffer>;
let revokedAt: Record<'sm2' | 'ec', string> = {} as never;
/** B's trust ids of A's CAs imported with crlUrl. */
let crlIds: Record<CaId, string>;

t.before(async () => {
  const init = cli(['init', '--data', dataA]);
  if (init.code !== 0) throw new Error(init.stderr);
  const keyFile = join(workA, 'his.key');
  const created = cli(['app', 'create', '--data', dataA, '--name', 'HIS', '--key-out', keyFile]);
  if (created.code !== 0) throw new Error(created.stderr);
  appA = { id: created.stdout.trim(), signer: createSoftwareSigner(readFileSync(keyFile, 'utf8')) };
  for (const [label, alg] of [['org-sm2', 'sm2'], ['seal-ecdsa', 'ecdsa-p256']] as const) {
    const r = cli(['signing-key', 'create', '--data', dataA, '--label', label, '--kind', 'organisation', '--alg', alg, '--cn', `某某医院 ${alg}`, '--grant', appA.id]);
    if (r.code !== 0) throw new Error(r.stderr);
  }
  serverA = await serve(dataA);
  b = await startCa(t);
  for (const id of CA_IDS) {
    const r = await getA(`/pki/ca/${id}.crt`);
    if (r.status !== 200) throw new Error(`A /pki/ca/${id}.crt: ${r.status}`);
    caDer[id] = r.body;
    writeFileSync(join(workA, `${id}.pem`), toPem('CERTIFICATE', r.body));
  }
  writeFileSync(join(workA, 'ecdsa-chain.pem'), [readFileSync(join(workA, 'ecdsa-issuing.pem'), 'utf8'), readFileSync(join(workA, 'ecdsa-root.pem'), 'utf8')].join(''));
});

const KEYS = { sm2: 'org-sm2', ec: 'seal-ecdsa' } as const;

t.test('A signs: CMS with and without CAdES-T (SM2, ECDSA), raw; all valid on A before the revocation', async (t) => {
  for (const k of ['sm2', 'ec'] as const) {
    const plain = await apiA('POST', '/sign/cms', { key: KEYS[k], content: b64(DOC) });
    t.equal(plain.status, 200, `${k}: CMS signed (${plain.status === 200 ? plain.json.form : plain.body})`);
    const stamped = await apiA('POST', '/sign/cms', { key: KEYS[k], content: b64(DOC), timestamp: true });
    t.equal(stamped.status, 200, `${k}: CAdES-T CMS signed (${stamped.status === 200 ? stamped.json.form : stamped.body})`);
    t.match(stamped.json.timestamp, { genTime: /Z$/ }, `${k}: CAdES-T time-stamp`);
    sigs[k] = { cms: plain.json.cms };
    sigs[`${k}T`] = { cms: stamped.json.cms, genTime: stamped.json.timestamp.genTime };
    const raw = await apiA('POST', '/sign/raw', { key: KEYS[k], data: b64(DOC) });
    t.equal(raw.status, 200, `${k}: raw signature (${raw.status === 200 ? raw.json.algorithm : raw.body})`);
    leaf[k] = { serial: raw.json.certSerial, pem: raw.json.certificate, rawSig: raw.json.signature };
    t.equal(plain.json.certSerial, leaf[k].serial);
  }
  writeFileSync(join(workA, 'ec-leaf.pem'), leaf.ec.pem);
  for (const name of ['sm2', 'sm2T', 'ec', 'ecT'] as const) {
    const r = await apiA('POST', '/verify/cms', { cms: sigs[name].cms });
    t.match(r.json, { valid: true, code: 'OK', level: 2 }, `${name} valid on A before the revocation`);
    t.ok(r.json.revocation.certificates.every((c: any) => c.status === 'good' && c.source === 'appliance-ca'), `${name}: every certificate good [appliance-ca]`);
  }
  for (const k of ['sm2', 'ec'] as const) {
    t.match((await apiA('POST', '/verify/raw', { certSerial: leaf[k].serial, data: b64(DOC), signature: leaf[k].rawSig })).json, { valid: true, code: 'OK' }, `${k} raw valid before`);
  }
});

// ---------- B: another site that trusts A ----------

/** Removes A's CAs from B's trust store and imports them again with these options per CA. */
async function importA(t: Test, opts: (id: CaId) => Record<string, unknown>): Promise<Record<CaId, string>> {
  const list = await b.api('GET', '/trust/cas');
  for (const item of list.json.items as any[]) {
    if (item.source === 'imported') t.equal((await b.api('DELETE', `/trust/cas/${item.id}`)).status, 204, `removed ${item.subject}`);
  }
  const ids = {} as Record<CaId, string>;
  for (const id of CA_IDS) {
    const r = await b.api('POST', '/trust/cas', { certificate: b64(caDer[id]), ...opts(id) });
    t.equal(r.status, 201, `B imports A's ${id}${r.status === 201 ? '' : `: ${JSON.stringify(r.json)}`}`);
    ids[id] = r.json.id;
  }
  return ids;
}

const crlUrl = (id: CaId): string => `${serverA!.httpUrl}/pki/crl/${id}.crl`;
const ocspUrl = (): string => `${serverA!.httpUrl}/ocsp`;

async function fetchCrls(t: Test, ids: Record<CaId, string>): Promise<void> {
  for (const id of CA_IDS) {
    const r = await b.api('POST', `/trust/cas/${ids[id]}/crl/fetch`);
    t.equal(r.status, 200, `B fetches A's ${id} CRL${r.status === 200 ? ` (number ${r.json.crl?.number})` : `: ${JSON.stringify(r.json)}`}`);
  }
}

async function verifyB(body: Record<string, unknown>, path = '/verify/cms'): Promise<any> {
  const r = await b.api('POST', path, body);
  if (r.status !== 200) throw new Error(`B ${path}: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json;
}

t.test('B without any CRL or OCSP for A: REVOCATION_UNKNOWN at level 2, valid at level 1', async (t) => {
  await importA(t, () => ({}));
  for (const name of ['sm2', 'ec'] as const) {
    const r = await verifyB({ cms: sigs[name].cms });
    t.match(r, { valid: false, code: 'REVOCATION_UNKNOWN', level: 2 }, `${name}: REVOCATION_UNKNOWN`);
    t.match(r.revocation.certificates[0], { serial: leaf[name].serial, status: 'unknown', source: 'crl', detail: /no CRL is held/ });
    t.match(await verifyB({ cms: sigs[name].cms, level: 1 }), { valid: true, code: 'OK' }, `${name}: chain to A's root is valid`);
  }
});

t.test('B before the revocation: valid through OCSP and through the CRL', async (t) => {
  await importA(t, () => ({ ocspUrl: ocspUrl() }));
  for (const name of ['sm2', 'ec', 'sm2T', 'ecT'] as const) {
    const r = await verifyB({ cms: sigs[name].cms });
    t.match(r, { valid: true, code: 'OK' }, `${name} valid on B [ocsp]`);
    t.same(
      r.revocation.certificates.map((c: any) => [c.status, c.source]),
      [
        ['good', 'ocsp'],
        ['good', 'ocsp'],
      ],
      `${name}: leaf and issuing CA good from A's responder`,
    );
  }
  crlIds = await importA(t, (id) => ({ crlUrl: crlUrl(id) }));
  await fetchCrls(t, crlIds);
  for (const name of ['sm2', 'ec', 'sm2T', 'ecT'] as const) {
    const r = await verifyB({ cms: sigs[name].cms });
    t.match(r, { valid: true, code: 'OK' }, `${name} valid on B [crl]`);
    t.same(
      r.revocation.certificates.map((c: any) => [c.status, c.source]),
      [
        ['good', 'crl'],
        ['good', 'crl'],
      ],
      `${name}: leaf and issuing CA good on A's CRLs`,
    );
  }
  t.match(await verifyB({ certificate: leaf.ec.pem, data: b64(DOC), signature: leaf.ec.rawSig }, '/verify/raw'), { valid: true }, 'raw ECDSA valid on B [crl]');

  // The peers agree, before.
  const crl = await getA('/pki/crl/ecdsa-issuing.crl');
  writeFileSync(join(workA, 'before.crl'), crl.body);
  openssl(['crl', '-inform', 'DER', '-in', 'before.crl', '-out', 'before.crl.pem']);
  const v = openssl(['verify', '-crl_check', '-CRLfile', 'before.crl.pem', '-CAfile', 'ecdsa-chain.pem', 'ec-leaf.pem']);
  t.ok(v.ok && /ec-leaf\.pem: OK/.test(v.out), `openssl verify -crl_check before: ${v.out.trim()}`);
  const o = openssl(['ocsp', '-issuer', 'ecdsa-issuing.pem', '-cert', 'ec-leaf.pem', '-url', ocspUrl(), '-CAfile', 'ecdsa-chain.pem']);
  t.ok(o.ok && /Response verify OK/.test(o.out) && /ec-leaf\.pem: good/.test(o.out), `openssl ocsp before: ${o.out.trim()}`);
});

t.test('A revokes the held keys’ certificates (keyCompromise) after the signatures', async (t) => {
  const latest = Math.max(Date.parse(sigs.sm2T.genTime!), Date.parse(sigs.ecT.genTime!));
  // Past the next whole second: CRL and OCSP carry revocation times in whole seconds.
  await new Promise((r) => setTimeout(r, Math.max(0, latest + 1_500 - Date.now())));
  for (const k of ['sm2', 'ec'] as const) {
    const r = await apiA('POST', `/certs/${leaf[k].serial}/revoke`, { reason: 'keyCompromise' });
    t.equal(r.status, 200, `${k}: revoked through the API${r.status === 200 ? '' : `: ${r.body}`}`);
    t.match(r.json, { serial: leaf[k].serial, status: 'revoked', revocation: { reason: 'keyCompromise' } });
    revokedAt = { ...revokedAt, [k]: r.json.revocation.time };
    t.ok(Date.parse(r.json.revocation.time) > Date.parse(sigs[`${k}T`].genTime!), `${k}: revoked at ${r.json.revocation.time}, after genTime ${sigs[`${k}T`].genTime}`);
  }
});

t.test('A after the revocation (appliance-ca): untimestamped CERT_REVOKED at level 2, time-stamped valid at genTime, the key refuses to sign', async (t) => {
  for (const k of ['sm2', 'ec'] as const) {
    const r = await apiA('POST', '/verify/cms', { cms: sigs[k].cms });
    t.match(r.json, { valid: false, code: 'CERT_REVOKED', level: 2, judgedAtSource: 'now' }, `${k}: CERT_REVOKED`);
    t.match(r.json.revocation.certificates[0], { serial: leaf[k].serial, status: 'revoked', source: 'appliance-ca', reason: 'keyCompromise' });
    t.match((await apiA('POST', '/verify/cms', { cms: sigs[k].cms, level: 1 })).json, { valid: true, code: 'OK' }, `${k}: valid at level 1`);
    t.match((await apiA('POST', '/verify/cms', { cms: sigs[k].cms, level: 0 })).json, { valid: true, code: 'OK' }, `${k}: valid at level 0`);

    const ts = await apiA('POST', '/verify/cms', { cms: sigs[`${k}T`].cms });
    t.match(ts.json, { valid: true, code: 'OK', judgedAtSource: 'timestamp', judgedAt: sigs[`${k}T`].genTime, timestamp: { ok: true } }, `${k}T: valid at genTime`);
    const entry = ts.json.revocation.certificates[0];
    t.match(entry, { serial: leaf[k].serial, status: 'good', source: 'appliance-ca', reason: 'keyCompromise', detail: /after the time judged at/ });
    t.ok(Date.parse(entry.revokedAt) > Date.parse(ts.json.judgedAt), `${k}T: revokedAt ${entry.revokedAt} after genTime ${ts.json.judgedAt}`);

    t.match((await apiA('POST', '/verify/raw', { certSerial: leaf[k].serial, data: b64(DOC), signature: leaf[k].rawSig })).json, { valid: false, code: 'CERT_REVOKED' }, `${k} raw: CERT_REVOKED now`);
    const before = new Date(Date.parse(revokedAt[k]) - 1_000).toISOString();
    t.match((await apiA('POST', '/verify/raw', { certSerial: leaf[k].serial, data: b64(DOC), signature: leaf[k].rawSig, at: before })).json, { valid: true, judgedAtSource: 'request' }, `${k} raw: valid at a vouched time before`);

    const refused = await apiA('POST', '/sign/cms', { key: KEYS[k], content: b64(DOC) });
    t.equal(refused.status, 403, `${k}: signing refused`);
    t.equal(refused.json?.code, 'HELD_KEY_CERT_REVOKED');
    t.ok(refused.json?.message?.['zh-CN'] && refused.json?.message?.en, 'zh and en message');
  }
});

/** The verdicts on B after the revocation, from `source`. */
async function revokedOnB(t: Test, source: 'crl' | 'ocsp'): Promise<void> {
  for (const k of ['sm2', 'ec'] as const) {
    const r = await verifyB({ cms: sigs[k].cms });
    t.match(r, { valid: false, code: 'CERT_REVOKED', level: 2, judgedAtSource: 'now' }, `${k}: CERT_REVOKED on B [${source}]`);
    t.match(r.revocation.certificates[0], { serial: leaf[k].serial, status: 'revoked', source, reason: 'keyCompromise' });
    t.equal(Date.parse(r.revocation.certificates[0].revokedAt), Math.floor(Date.parse(revokedAt[k]) / 1000) * 1000, `${k}: the revocation time A recorded (whole seconds)`);
    t.match(r.revocation.certificates[1], { status: 'good', source }, `${k}: A's issuing CA good`);
    t.match(await verifyB({ cms: sigs[k].cms, level: 1 }), { valid: true }, `${k}: valid at level 1 on B`);

    const ts = await verifyB({ cms: sigs[`${k}T`].cms });
    t.match(ts, { valid: true, code: 'OK', judgedAtSource: 'timestamp', judgedAt: sigs[`${k}T`].genTime }, `${k}T: valid on B at genTime [${source}]`);
    t.match(ts.revocation.certificates[0], { status: 'good', source, reason: 'keyCompromise', detail: /after the time judged at/ });
    t.ok(Date.parse(ts.revocation.certificates[0].revokedAt) > Date.parse(ts.judgedAt), `${k}T: revokedAt after genTime`);
  }
  const raw = await verifyB({ certificate: leaf.ec.pem, data: b64(DOC), signature: leaf.ec.rawSig }, '/verify/raw');
  t.match(raw, { valid: false, code: 'CERT_REVOKED' }, `raw ECDSA CERT_REVOKED on B [${source}]`);
}

t.test('B after the revocation, CRL path: the CRL held says good until B fetches A’s new CRL, then CERT_REVOKED', async (t) => {
  // B still holds the CRLs fetched before the revocation: what it knows until the next download.
  t.match(await verifyB({ cms: sigs.ec.cms }), { valid: true, code: 'OK' }, 'the CRL held predates the revocation');
  await fetchCrls(t, crlIds);
  const held = await b.api('GET', `/trust/cas/${crlIds['ecdsa-issuing']}`);
  t.ok(held.json.crl.entries >= 1, `B holds A's new ECDSA issuing CRL (number ${held.json.crl.number}, ${held.json.crl.entries} entries)`);
  await revokedOnB(t, 'crl');
});

t.test('B after the revocation, OCSP path: cached answers until their nextUpdate; asked afresh, CERT_REVOKED', async (t) => {
  await importA(t, () => ({ ocspUrl: ocspUrl() }));
  // docs/trust-store.md: answers are cached until their nextUpdate (RFC 5019 §6) — B asked about
  // these certificates before the revocation, so until that answer expires it says good.
  const cached = await verifyB({ cms: sigs.ec.cms });
  t.match(cached, { valid: true }, 'the cached pre-revocation OCSP answer');
  t.match(cached.revocation.certificates[0], { status: 'good', source: 'ocsp' });
  // A restarted verifier (the cache is in memory) asks A's responder again.
  await b.restart();
  await revokedOnB(t, 'ocsp');
});

t.test('peers agree: openssl verify -crl_check with A’s CRL and openssl ocsp against A say revoked', async (t) => {
  const crl = await getA('/pki/crl/ecdsa-issuing.crl');
  t.equal(crl.status, 200);
  writeFileSync(join(workA, 'after.crl'), crl.body);
  openssl(['crl', '-inform', 'DER', '-in', 'after.crl', '-out', 'after.crl.pem']);
  const v = openssl(['verify', '-crl_check', '-CRLfile', 'after.crl.pem', '-CAfile', 'ecdsa-chain.pem', 'ec-leaf.pem']);
  t.notOk(v.ok, 'openssl verify fails');
  t.match(v.out, /certificate revoked/, `openssl verify -crl_check after: ${v.out.trim()}`);
  const text = openssl(['crl', '-in', 'after.crl.pem', '-noout', '-text']).out;
  t.match(text, new RegExp(`Serial Number: ${leaf.ec.serial}`, 'i'), 'the leaf is listed');
  t.match(text, /Key Compromise/, 'reason keyCompromise');

  const o = openssl(['ocsp', '-issuer', 'ecdsa-issuing.pem', '-cert', 'ec-leaf.pem', '-url', ocspUrl(), '-CAfile', 'ecdsa-chain.pem']);
  t.ok(o.ok, 'openssl ocsp ran');
  t.match(o.out, /Response verify OK/, 'the response verifies to A’s ECDSA root');
  t.match(o.out, /ec-leaf\.pem: revoked/, `openssl ocsp after: ${o.out.trim()}`);
  t.match(o.out, /Reason: keyCompromise/);
});
