// The API reference as an integrator meets it: GET /api/openapi.json from a served appliance
// without app authentication (200 application/json, the file byte for byte, ETag → 304), and
// the worked examples of docs/api-reference.md — curl, openssl and docs/examples/yq1-request.sh —
// run as written, top to bottom in one directory, against `yiqian serve` on a fresh data dir.
// Only the setup block's placeholders (where the appliance is, which app calls) are replaced.
import t from 'tap';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { cli, fetchRaw, serve, tempDataDir, type Served } from '../helpers/appliance.js';

const ROOT = resolve(import.meta.dirname, '../..');
const DOC = readFileSync(join(ROOT, 'docs/openapi.json'));
const REFERENCE = readFileSync(join(ROOT, 'docs/api-reference.md'), 'utf8');

const data = tempDataDir();
const tmp = dirname(data);
const work = join(tmp, 'work');
let server: Served | undefined;
let appId: string;

t.teardown(async () => {
  if (server && server.proc.exitCode === null) await server.stop('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

t.before(async () => {
  const init = cli(['init', '--data', data, '--json']);
  if (init.code !== 0) throw new Error(init.stderr);
  server = await serve(data);
  mkdirSync(work);
  const created = cli(['app', 'create', '--data', data, '--name', 'EMR 电子病历', '--key-out', join(tmp, 'app.key'), '--json']);
  if (created.code !== 0) throw new Error(created.stderr);
  appId = JSON.parse(created.stdout).id;
  copyFileSync(join(tmp, 'app.key'), join(work, 'app.key'));
});

t.test('GET /api/openapi.json: public, the file byte for byte, conditional GET', async (t) => {
  const r = await fetchRaw(`${server!.httpsUrl}/api/openapi.json`);
  t.equal(r.status, 200, 'no Authorization needed');
  t.match(String(r.headers['content-type']), /^application\/json/);
  t.equal(r.body, DOC.toString('utf8'), 'docs/openapi.json as it is in the repository');
  t.match(JSON.parse(r.body).openapi, /^3\.1\./);
  const etag = r.headers.etag as string;
  t.match(etag, /^"[A-Za-z0-9_-]{43}"$/, 'strong ETag (SHA-256)');
  t.equal(r.headers['cache-control'], 'public, no-cache');

  const again = await fetchRaw(`${server!.httpsUrl}/api/openapi.json`, { headers: { 'If-None-Match': etag } });
  t.equal(again.status, 304);
  t.equal(again.body, '');
  const changed = await fetchRaw(`${server!.httpsUrl}/api/openapi.json`, { headers: { 'If-None-Match': '"something-else"' } });
  t.equal(changed.status, 200, 'another ETag gets the document');

  const post = await fetchRaw(`${server!.httpsUrl}/api/openapi.json`, { method: 'POST' });
  t.equal(post.status, 405, 'only GET');
  t.equal(JSON.parse(post.body).code, 'METHOD_NOT_ALLOWED');
  const unsigned = await fetchRaw(`${server!.httpsUrl}/api/v1/whoami`);
  t.equal(unsigned.status, 401, 'the rest of /api still needs the YQ1 signature');
  t.equal(JSON.parse(unsigned.body).code, 'MISSING_AUTH');
  const plain = await fetchRaw(`${server!.httpUrl}/api/openapi.json`);
  t.equal(plain.status, 403, 'not on the plain-HTTP listener');
  t.equal(JSON.parse(plain.body).code, 'HTTPS_REQUIRED');
});

/** The first ```sh block after <a id="name"></a>, up to the next anchor. */
function block(name: string): string {
  const at = REFERENCE.indexOf(`<a id="${name}"></a>`);
  if (at < 0) throw new Error(`docs/api-reference.md has no section ${name}`);
  const end = REFERENCE.indexOf('<a id=', at + 1);
  const code = /```sh\n([^]*?)```/.exec(REFERENCE.slice(at, end < 0 ? undefined : end))?.[1];
  if (!code) throw new Error(`section ${name} has no sh block`);
  return code;
}

/** The setup block with its placeholders pointed at this appliance and app. */
function setup(): string {
  return block('setup')
    .replace(/^BASE=.*$/m, `BASE=${server!.httpsUrl}`)
    .replace(/^PUB=.*$/m, `PUB=${server!.httpUrl}`)
    .replace(/^APP=.*$/m, `APP=${appId}`)
    .replace(/^YQ1=.*$/m, `YQ1=${join(ROOT, 'docs/examples/yq1-request.sh')}`);
}

function runExample(name: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const script = `${setup()}\n${block(name)}`;
  return new Promise((done) =>
    execFile('bash', ['-euo', 'pipefail', '-c', script], { cwd: work, timeout: 60_000, env: { ...process.env, CONTENT_TYPE: '' } }, (err, stdout, stderr) =>
      done({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    ),
  );
}

// Every section of docs/api-reference.md, in its order (each may use files an earlier one made),
// with what its output must show beyond a zero exit status.
const EXAMPLES: Array<[operationId: string, ...expect: RegExp[]]> = [
  ['getHealthz', /"status":"alive"/],
  ['getReadyz', /"checks"/],
  ['getMetrics', /^yiqian_/m],
  ['getOpenApi', /^304$/m],
  ['getWhoami', /"appId"/],
  ['getRoots', /subject=.*SM2 Root CA/, /subject=.*ECDSA Root CA/],
  ['getCaCertificate', /ecdsa-issuing\.pem: OK/],
  ['getDeviceCertificate', /device\.pem: OK/],
  ['issueCertificate', /zhang\.pem: OK/, /lis\.pem: OK/],
  ['issueCertificateWithKeygen', /key matches/],
  ['listCertificates', /张三/],
  ['listExpiringCertificates', /"days":30/],
  ['getCertificate', /SM2 Issuing CA/],
  ['renewCertificate', /same key/],
  ['ocspPost', /Response verify OK/, /lis\.pem: good/],
  ['ocspGet', /Response verify OK/, /lis\.pem: good/],
  ['suspendCertificate', /"suspended"[^]*certificateHold/],
  ['resumeCertificate', /^good$/m],
  ['revokeCertificate', /"status": "revoked"/, /lis\.pem: revoked/, /Reason: keyCompromise/],
  ['getCrl', /verify OK/, /Revoked Certificates:[^]*Key Compromise/],
  ['createDepartment', /"hisDeptId":"TMP-1"/],
  ['listDepartments', /0301\t心内科/],
  ['getDepartment', /"name":"心内科"/],
  ['updateDepartment', /"name":"心血管内科"/],
  ['deleteDepartment'],
  ['createStaff', /"nationalId":"110\*{11}002X"/],
  ['listStaff', /10023\t李四/],
  ['getStaff', /"employeeId":"10023"/],
  ['updateStaff', /"titleLevel":"副主任医师"/],
  ['lookupStaff', /^10023$/m],
  ['revealStaff', /"nationalId":"11010519491231002X"/],
  ['staffLeave', /^left$/m],
  ['staffReinstate', /^active$/m],
  ['importStaff', /"imported": 1/],
  ['getCertificateStatistics', /"total"/],
  ['timeStampEcdsa', /Verification: OK/],
  ['timeStamp', /Verification: OK/],
  ['timeStampSm2', /Status: Granted/, /Hash Algorithm: sm3/],
  ['getTimeStampToken', /"identity": "ecdsa"/],
  ['getTimeStatus', /"state"/],
];

t.test('every worked example of docs/api-reference.md runs against the appliance', async (t) => {
  const methods = new Set(['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace']);
  const paths = JSON.parse(DOC.toString('utf8')).paths as Record<string, Record<string, { operationId: string }>>;
  const ops = Object.values(paths).flatMap((item) => Object.entries(item).filter(([m]) => methods.has(m)).map(([, op]) => op.operationId));
  t.same(EXAMPLES.map(([id]) => id).sort(), ops.sort(), 'one example run per operation of openapi.json');
  for (const [name, ...expect] of EXAMPLES) {
    const r = await runExample(name);
    t.equal(r.code, 0, `${name} exits 0${r.code !== 0 ? `\n${r.stderr}\n${r.stdout}` : ''}`);
    // openssl reports verification on stderr, results on stdout.
    for (const e of expect) t.match(`${r.stdout}\n${r.stderr}`, e, `${name} shows ${e}`);
  }
});
