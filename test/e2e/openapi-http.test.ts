// The API reference as an integrator meets it: GET /api/openapi.json from a served appliance
// without app authentication (200 application/json, the file byte for byte, ETag → 304), and
// the worked examples of docs/api-reference.md — curl, openssl and docs/examples/yq1-request.sh —
// run as written, top to bottom in one directory, against `yiqian serve` on a fresh data dir.
// Only the setup block's placeholders (where the appliance is, which app calls) are replaced.
// The held keys the page says an administrator made (yiqian signing-key create) and svs.appId
// are set up here the same way before the appliance starts.
import t from 'tap';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  mkdirSync(work);
  const created = cli(['app', 'create', '--data', data, '--name', 'EMR 电子病历', '--key-out', join(tmp, 'app.key'), '--json']);
  if (created.code !== 0) throw new Error(created.stderr);
  appId = JSON.parse(created.stdout).id;
  copyFileSync(join(tmp, 'app.key'), join(work, 'app.key'));
  // The held keys the signing, envelope and GB/T 38629 examples use, made as the page says an
  // administrator makes them, and the binding pointed at the same app (svs.appId).
  writeFileSync(join(tmp, 'code.txt'), 'hospital-2026');
  const keys: string[][] = [
    ['--label', 'org-sm2', '--kind', 'organisation', '--cn', '某某市人民医院', '--access-code-file', join(tmp, 'code.txt')],
    ['--label', 'seal-ecdsa', '--kind', 'seal', '--alg', 'ecdsa-p256', '--cn', '某某市人民医院 电子公章'],
    ['--label', 'org-rsa', '--kind', 'organisation', '--alg', 'rsa-2048', '--cn', '某某市人民医院 RSA'],
    ['--label', 'records-enc', '--kind', 'department', '--usage', 'encrypt', '--alg', 'rsa-2048', '--cn', '病案室'],
  ];
  for (const k of keys) {
    const r = cli(['signing-key', 'create', '--data', data, '--grant', appId, ...k]);
    if (r.code !== 0) throw new Error(r.stderr);
  }
  // The evidence examples' project and job operations: the app holds evidence-admin, as the page says.
  const permit = cli(['app', 'permit', appId, 'evidence-admin', '--data', data]);
  if (permit.code !== 0) throw new Error(permit.stderr);
  const configFile = join(data, 'config.json');
  const config = JSON.parse(readFileSync(configFile, 'utf8'));
  config.svs = { enabled: true, appId, allow: ['127.0.0.0/8', '::1/128'] };
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  server = await serve(data);
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
    .replace(/^YQ1=.*$/m, `YQ1=${join(ROOT, 'docs/examples/yq1-request.sh')}`)
    .replace(/^VERIFY=.*$/m, `VERIFY=${join(ROOT, 'ops/verify-evidence')}`);
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
  ['listSigningKeys', /org-sm2\torganisation\tsign\tsm2\ttrue/, /records-enc\tdepartment\tencrypt\trsa-2048/],
  ['getSigningKey', /"label": "seal-ecdsa"/, /"hierarchy": "ecdsa"/],
  ['getSigningKeyCertificate', /org-rsa\.pem: OK/, /CN=某某市人民医院 RSA/],
  ['signRaw', /^ECDSA-SHA256$/m, /Verified OK[^]*Verified OK/],
  ['signCms', /CMS Verification successful[^]*CMS Verification successful/, /attached content intact/, /"form":"rfc5652".*"timestamp":\{"genTime"/, /:1\.2\.156\.10197\.6\.1\.4\.2\.2/],
  ['signBatch', /\{"succeeded":2,"failed":1\}/, /^2\tfalse\tKEY_NOT_FOUND$/m],
  ['importTrustedCa', /"source":"imported","anchor":true/],
  ['listTrustedCas', /^appliance\ttrue\t.*SM2 Root CA/m, /^imported\ttrue\tCN=Example Staff CA/m],
  ['getTrustedCa', /"crlFetchHours":12/],
  ['uploadTrustedCaCrl', /"number":"1".*"source":"upload"/],
  ['fetchTrustedCaCrl', /"number":"2".*"source":"fetch".*"lastFetchError":null/],
  ['removeTrustedCa', /^removed$/m, /^TRUST_CA_BUILTIN$/m, /HTTP 409/],
  ['verifyRaw', /\{"valid":true,"code":"OK","gbtCode":0/, /"code":"SIGNATURE_INVALID","gbtCode":67108876,"failed":\["签名未改"\]/],
  ['verifyCms', /"valid":true,"code":"OK","form":"rfc5652","judgedAtSource":"now","signer":"CN=王医生","revocation":\[\["good","crl"\]\]/, /^revocation\t证书状态\ttrue$/m, /original extracted/, /"valid":true,"code":"OK","form":"gbt35275".*"judgedAtSource":"request"/],
  ['verifyCertificate', /"valid":true,"code":"OK","level":2,"chain":\["CN=王医生"/, /"code":"CERT_REVOKED","gbtCode":67108875/],
  ['verifyBatch', /\{"count":4,"valid":2,"invalid":1,"errors":1\}/, /^2\tCERT_REVOKED$/m, /^3\tSIGNATURE_REQUIRED$/m],
  ['sealEnvelope', /"form":"rfc5083","contentEncryption":"AES-256-GCM","keyEncryption":"RSAES-OAEP-SHA256"/, /opened by openssl/],
  ['openEnvelope', /opened by the appliance/],
  ['svsExportCert', /^0$/m, /CN=某某市人民医院$/m],
  ['svsParseCert', /^某某市人民医院$/m, /serial matches openssl/],
  ['svsValidateCert', /respValue=0&state=0/],
  ['svsSignData', /Verified OK/],
  ['svsVerifySignedData', /^respValue=0$/m, /X-Yiqian-Code: SIGNATURE_INVALID/i],
  ['svsSignMessage', /CMS Verification successful/],
  ['svsVerifySignedMessage', /^respValue=0\nrespValue=0$/m],
  ['pushEvidenceSignature', /\{"valid":true,"code":"OK","judgedAtSource":"(request|now)","leafIndex":0\}/, /^HTTP 422$/m, /^CONTENT_ALTERED\n原文未改$/m],
  ['pushEvidenceDigest', /\{"id":"[0-9A-Z]{26}","leafIndex":1\}/, /^400\nDIGEST_LENGTH_INVALID$/m],
  ['uploadEvidenceFile', /server SM3: {2}([0-9a-f]{64})\nopenssl SM3: \1/, /\{"kind":"file","signature":"cms","valid":true\}/],
  ['listEvidenceRecords', /^[0-9A-Z]{26}\tsignature\tZY\*+01\thot$/m, /^2$/m],
  ['getEvidenceRecord', /"kind":"signature","departmentId":"0301","patientIdMasked":"ZY\*+01","contentDigest":\{"algorithm":"sm3"/, /"tier":"hot"/],
  ['reverifyEvidenceRecord', /\{"stored":"OK","fresh":"OK","judgedAt":"/],
  ['listEvidenceRejections', /^signature\tCONTENT_ALTERED\t0301$/m, /^digest\tDIGEST_LENGTH_INVALID\t-$/m],
  ['getEvidenceDownloadUrl', /^\/evidence\/download\/[0-9A-Z]{26}\?exp=\d+&sig=[0-9a-f]{64}$/m],
  ['downloadEvidenceFile', /content-disposition: attachment; filename="scan\.bin"/i, /^SM3 matches$/m, /^403$/m],
  ['runJob', /\{"ok":true,"made":true,"treeSize":4\}/],
  ['listCheckpoints', /^4\t[0-9a-f]{64}\t/m],
  ['getLatestCheckpoint', /^4$/m, /cp-signer\.pem: OK/, /Hash Algorithm: sm3/, /^token imprint = SM3\(note body\) = [0-9a-f]{64}$/m],
  ['getCheckpoint', /\{"treeSize":4,"rootHash":"[0-9a-f]{64}"\}/],
  ['getEvidenceInclusion', /\{"leafIndex":0,"treeSize":4,"rootHash":"[0-9a-f]{64}","proof":2,"anchored":true\}/],
  ['getEvidenceConsistency', /\{"from":4,"to":5,"proof":\d\}/],
  ['getEvidenceBundle', /"format":"yiqian-evidence-bundle","version":1/, /every check of the bundle passed/],
  ['getEvidenceReport', /Signature is Valid\./, /Total document signed/],
  ['listJobs', /^evidence-checkpoint\ttrue\t60$/m, /^evidence-migration\ttrue\t/m],
  ['getJob', /\{"name":"evidence-migration","enabled":true,"running":false\}/],
  ['stopJob', /\{"name":"evidence-migration","enabled":false\}/],
  ['startJob', /\{"name":"evidence-migration","enabled":true\}/],
  ['createEvidenceProject', /\{"id":"pacs","name":"影像归档 PACS","retentionYears":30,"frozen":false\}/],
  ['listEvidenceProjects', /^default\t/m, /^pacs\t影像归档 PACS\t30\tfalse$/m],
  ['getEvidenceProject', /\{"id":"default","retentionYears":\d+,"frozen":false\}/],
  ['updateEvidenceProject', /\{"name":"影像归档","description":null\}/],
  ['freezeEvidenceProject', /\{"id":"pacs","frozen":true\}/],
  ['unfreezeEvidenceProject', /\{"id":"pacs","frozen":false\}/],
  ['deleteEvidenceProject', /\{"id":"pacs","records":0,"blobs":0,"forced":false\}/],
  ['getEvidenceStatistics', /"total":5/, /"DIGEST_LENGTH_INVALID":1/, /\{"scope":\{\},"total":5\}/],
  // Last: it adds a leaf (index 5) and a rejection, which no example above may count.
  ['pushEvidenceSignatureBatch', /^\{"stored":1,"failed":1\}$/m, /^0\ttrue\tOK\t5$/m, /^1\tfalse\tCONTENT_ALTERED\t422$/m, /^signature\tCONTENT_ALTERED\t0301$/m, /^400\nEVIDENCE_BATCH_EMPTY$/m],
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
