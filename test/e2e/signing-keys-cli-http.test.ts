// Held signing keys as an admin and the hospital systems meet them (needs `make build`): `yiqian
// init`, two apps, `yiqian signing-key create` with a grant to one app and an access code read
// from standard input, then `yiqian serve`: the granted app lists and reads the key and fetches
// its certificate chain (checked by `openssl verify` against `yiqian ca export`), the other app
// gets 403 KEY_NOT_GRANTED; CLI grant / disable beside the running server take effect at once.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CLI, cli, fetchRaw, serve, tempDataDir, type Served } from '../helpers/appliance.js';
import { signRequest } from '../../appliance/src/http/yq1-scheme.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';

const data = tempDataDir();
const work = dirname(data);
let server: Served | undefined;
const apps: Record<'his' | 'lis', { id: string; signer: Signer }> = {} as never;

t.teardown(async () => {
  if (server && server.proc.exitCode === null) await server.stop('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

/** The CLI with bytes on standard input. */
function cliWithInput(args: string[], input: string): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, NODE_ENV: 'test' }, input, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

async function api(who: 'his' | 'lis', path: string): Promise<{ status: number; json: any; body: string; type?: string }> {
  const app = apps[who];
  const auth = await signRequest(app.signer, app.id, 'GET', `/api/v1${path}`, undefined);
  const r = await fetchRaw(`${server!.httpsUrl}/api/v1${path}`, { headers: { Authorization: auth } });
  let json: any;
  try {
    json = JSON.parse(r.body);
  } catch {
    json = undefined;
  }
  return { status: r.status, json, body: r.body, type: r.headers['content-type'] as string | undefined };
}

t.test('admin: init, two apps, held keys created from the CLI', async (t) => {
  const init = cli(['init', '--data', data, '--json']);
  t.equal(init.code, 0, init.stderr);
  for (const who of ['his', 'lis'] as const) {
    const keyFile = join(work, `${who}.key`);
    const created = cli(['app', 'create', '--data', data, '--name', who.toUpperCase(), '--key-out', keyFile, '--json']);
    t.equal(created.code, 0, created.stderr);
    apps[who] = { id: JSON.parse(created.stdout).id, signer: createSoftwareSigner(readFileSync(keyFile, 'utf8')) };
  }

  const help = cli(['signing-key', 'create', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /--access-code-file/);
  t.notMatch(help.stdout, /--access-code /, 'no way to pass the code in argv');

  const sm2 = cliWithInput(
    ['signing-key', 'create', '--data', data, '--label', 'dept-cardiology-sign', '--kind', 'department', '--cn', '心内科', '--ou', '心血管内科', '--department-id', '0302', '--grant', apps.his.id, '--access-code-file', '-', '--json'],
    'cardio-2026\n',
  );
  t.equal(sm2.code, 0, sm2.stderr);
  t.match(JSON.parse(sm2.stdout), { label: 'dept-cardiology-sign', kind: 'department', usage: 'sign', algorithm: 'sm2', grants: [apps.his.id], accessCodeRequired: true });
  t.notOk(sm2.stdout.includes('cardio-2026') || sm2.stderr.includes('cardio-2026'), 'the code is never printed');

  const ec = cli(['signing-key', 'create', '--data', data, '--label', 'seal-contract', '--kind', 'seal', '--alg', 'ecdsa-p256', '--cn', '合同专用章', '--grant', apps.his.id]);
  t.equal(ec.code, 0, ec.stderr);
  t.match(ec.stdout.trim(), /^[0-9A-Z]{26}$/, 'prints the new id');

  const unknownApp = cli(['signing-key', 'create', '--data', data, '--label', 'org-x', '--kind', 'organisation', '--cn', 'X', '--grant', '01ARZ3NDEKTSV4RRFFQ69G5FAV']);
  t.equal(unknownApp.code, 1);
  t.match(unknownApp.stderr, /APP_NOT_FOUND/);
  const dup = cli(['signing-key', 'create', '--data', data, '--label', 'seal-contract', '--kind', 'seal', '--cn', 'again']);
  t.equal(dup.code, 1);
  t.match(dup.stderr, /HELD_KEY_EXISTS/);
  t.equal(cli(['signing-key', 'create', '--data', data, '--kind', 'seal', '--cn', 'no label']).code, 2, 'missing --label is a usage error');

  const list = cli(['signing-key', 'list', '--data', data, '--json']);
  t.equal(list.code, 0, list.stderr);
  t.same(JSON.parse(list.stdout).map((k: any) => k.label), ['dept-cardiology-sign', 'seal-contract'], 'refused creations left nothing');
  const keys = cli(['keys', 'list', '--data', data, '--json']);
  t.notOk(keys.stdout.includes('held-org-x'), 'no custody key left by the refused creation');
  const show = cli(['signing-key', 'show', 'seal-contract', '--data', data, '--json']);
  t.match(JSON.parse(show.stdout), { label: 'seal-contract', certificateStatus: 'good', disabled: false });
});

t.test('apps over HTTPS: the granted app sees and fetches the key, the other gets 403', async (t) => {
  server = await serve(data);
  const list = await api('his', '/signing-keys');
  t.equal(list.status, 200, list.body);
  t.same(list.json.items.map((k: any) => k.label), ['dept-cardiology-sign', 'seal-contract']);
  t.notOk('disabled' in list.json.items[0], 'apps do not see admin fields');
  t.notOk(list.body.includes('pbkdf2') || list.body.includes('salt'), 'no verifier in the answer');

  const one = await api('his', '/signing-keys/seal-contract');
  t.equal(one.status, 200);
  t.match(one.json, { label: 'seal-contract', kind: 'seal', algorithm: 'ecdsa-p256', hierarchy: 'ecdsa', accessCodeRequired: false });
  const byId = await api('his', `/signing-keys/${one.json.id}`);
  t.equal(byId.json.label, 'seal-contract', 'by id as well');

  const pem = await api('his', '/signing-keys/seal-contract/certificate');
  t.equal(pem.status, 200);
  t.match(pem.type, /^application\/pem-certificate-chain/);
  const blocks = pem.body.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
  t.equal(blocks.length, 2, 'leaf and issuing CA');
  const [leafPem = '', caPem = ''] = blocks;
  t.equal(new X509Certificate(leafPem).serialNumber.toLowerCase().replace(/^0+/, ''), one.json.certSerial.replace(/^0+/, ''));
  const roots = join(work, 'roots.pem');
  t.equal(cli(['ca', 'export', '--data', data, '--out', roots]).code, 0);
  const leaf = join(work, 'leaf.pem');
  const chain = join(work, 'chain.pem');
  writeFileSync(leaf, leafPem);
  writeFileSync(chain, caPem);
  t.match(execFileSync('openssl', ['verify', '-CAfile', roots, '-untrusted', chain, leaf]).toString(), /leaf\.pem: OK/, 'openssl verifies the chain to our root');

  for (const path of ['/signing-keys/seal-contract', '/signing-keys/seal-contract/certificate']) {
    const denied = await api('lis', path);
    t.equal(denied.status, 403, path);
    t.equal(denied.json.code, 'KEY_NOT_GRANTED');
    t.match(denied.type, /application\/problem\+json/);
    t.ok(denied.json.message['zh-CN'] && denied.json.message.en, 'zh and en');
  }
  t.same((await api('lis', '/signing-keys')).json.items, [], 'nothing listed for the other app');
  const missing = await api('his', '/signing-keys/no-such-key');
  t.equal(missing.status, 404);
  t.equal(missing.json.code, 'KEY_NOT_FOUND');
});

t.test('CLI beside the running server: grant and disable count at once', async (t) => {
  const granted = cli(['signing-key', 'grant', 'seal-contract', '--app', apps.lis.id, '--data', data, '--json']);
  t.equal(granted.code, 0, granted.stderr);
  t.same(JSON.parse(granted.stdout).grants, [apps.his.id, apps.lis.id]);
  t.equal((await api('lis', '/signing-keys/seal-contract')).status, 200, 'now granted');

  const code = cli(['signing-key', 'access-code', 'seal-contract', '--data', data]);
  t.equal(code.code, 2, 'access-code needs --access-code-file or --clear');
  const setCode = cliWithInput(['signing-key', 'access-code', 'seal-contract', '--access-code-file', '-', '--data', data], 'seal-code-1\n');
  t.equal(setCode.code, 0, setCode.stderr);
  t.equal((await api('his', '/signing-keys/seal-contract')).json.accessCodeRequired, true);

  const disabled = cli(['signing-key', 'disable', 'seal-contract', '--data', data]);
  t.equal(disabled.code, 0, disabled.stderr);
  const gone = await api('his', '/signing-keys/seal-contract');
  t.equal(gone.status, 404);
  t.equal(gone.json.code, 'KEY_NOT_FOUND');
  t.same((await api('his', '/signing-keys')).json.items.map((k: any) => k.label), ['dept-cardiology-sign']);
  const again = cli(['signing-key', 'disable', 'seal-contract', '--data', data]);
  t.equal(again.code, 1);
  t.match(again.stderr, /HELD_KEY_DISABLED/);

  const audit = cli(['signing-key', 'show', 'seal-contract', '--data', data, '--json']);
  t.match(JSON.parse(audit.stdout), { disabled: true });
});
