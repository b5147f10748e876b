// docs/openapi.json against the code: every (method, path) the appliance's koa routers register
// — the API app built by createApiApp with main.ts's own apiRouters(), the public app, and the
// OCSP/CRL and TSA apps — is an operation of the document, and every operation is a route.
// Also the document's own structure: JSON, OpenAPI 3.1, every $ref resolves, every operation
// has operationId / summary / responses / an example, every named error code exists in the
// code, and docs/api-reference.md has a worked example (an anchor) per operation. The GB/T 38629
// binding (/svs/<reqType>, one koa catch-all route) is checked by its request types instead: one
// operation per request type the binding implements, each with the respValue the code answers.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type Koa from 'koa';
import { apiRouters } from '../../appliance/src/main.js';
import { createApiApp } from '../../appliance/src/http/create-api-app.js';
import { createPublicApp } from '../../appliance/src/http/create-public-app.js';
import { devicePkiRouter } from '../../appliance/src/http/device-pki-routes.js';
import { pkiPublicRouter } from '../../appliance/src/http/pki-public-routes.js';
import { createRevocationPublicApp } from '../../appliance/src/http/revocation-routes.js';
import { TSA_NOT_ALLOWED } from '../../appliance/src/http/tsa-routes.js';
import { TSA_PUBLIC_PATHS } from '../../appliance/src/http/tsa-handler.js';
import { OPENAPI_PATH, findOpenApiFile } from '../../appliance/src/http/openapi-route.js';
import { createMetrics } from '../../appliance/src/metrics.js';
import { Codes } from '../../appliance/src/errors.js';
import { IssuanceCodes } from '../../appliance/src/pki/issuance-errors.js';
import { RevocationCodes } from '../../appliance/src/pki/revocation.js';
import { StaffCodes } from '../../appliance/src/staff/staff-errors.js';
import { CSR_ALGORITHM_UNSUPPORTED, CSR_MALFORMED, CSR_SIGNATURE_INVALID, KEY_UNSUPPORTED } from '../../appliance/src/asn1/csr.js';
import { EXTENSION_INVALID } from '../../appliance/src/asn1/certificate.js';
import { HeldKeyCodes } from '../../appliance/src/signing/held-keys.js';
import { SigningCodes } from '../../appliance/src/signing/sign-service.js';
import { ReportCodes, VerifyRequestCodes } from '../../appliance/src/signing/report-codes.js';
import { TrustCodes } from '../../appliance/src/signing/trust-store.js';
import { CHECK_LABELS } from '../../appliance/src/signing/verify-service.js';
import { EnvelopeCodes } from '../../appliance/src/signing/envelope.js';
import { SVS_REQUEST_TYPES, SvsCodes, respValueOf } from '../../appliance/src/signing/svs-codes.js';
import { OPERATIONS as SVS_OPERATIONS, SVS_PREFIX } from '../../appliance/src/http/svs-binding.js';
import { createEvidenceDownloadApp, evidenceFileRouter } from '../../appliance/src/http/evidence-file-routes.js';
import { EvidenceCodes } from '../../appliance/src/evidence/ingest.js';
import { FileIngestCodes } from '../../appliance/src/evidence/file-ingest.js';
import { DownloadUrlCodes } from '../../appliance/src/evidence/signed-url.js';
import { BlobCodes } from '../../appliance/src/evidence/blob-store.js';
import { ProjectCodes } from '../../appliance/src/evidence/projects.js';
import { CheckpointLogCodes } from '../../appliance/src/evidence/checkpoint-log.js';
import { MerkleCodes } from '../../appliance/src/evidence/merkle.js';
import { EvidenceReportCodes } from '../../appliance/src/http/evidence-report-routes.js';
import { EvidenceLogRouteCodes } from '../../appliance/src/http/evidence-log-routes.js';
import { EvidenceAccessCodes } from '../../appliance/src/http/evidence-project-routes.js';
import { StatsCodes } from '../../appliance/src/http/evidence-stats-routes.js';
import { JobRouteCodes } from '../../appliance/src/http/job-routes.js';
import { JobCodes } from '../../appliance/src/jobs/scheduler.js';

/**
 * Routes that exist but are not described yet, as "METHOD /path/{param}", while a capability
 * lands. Keep it empty otherwise: a route in this list that is also documented, or no longer
 * exists, fails.
 */
const UNDOCUMENTED_FOR_NOW: string[] = [];

const DOC_FILE = resolve(import.meta.dirname, '../../docs/openapi.json');
const REFERENCE_FILE = resolve(import.meta.dirname, '../../docs/api-reference.md');
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

const raw = readFileSync(DOC_FILE, 'utf8');
const doc = JSON.parse(raw) as any;

/**
 * A stand-in for any service a router factory takes: every property and call yields another
 * stand-in, so factories can be built to read their routes without an HSM or a store. Nothing
 * is ever called through it — only route registration runs.
 */
function anything(): any {
  const target = function stub(): void {};
  return new Proxy(target, {
    get: (_t, p) => (p === 'then' ? undefined : p === Symbol.toPrimitive ? () => '' : p === Symbol.iterator ? function* () {} : anything()),
    apply: () => anything(),
  });
}

interface RouteLayer { path: string; methods: string[] }
type Dispatch = { router?: { stack: RouteLayer[] } };

/** "METHOD /path/{param}" for every route of a koa app's routers (HEAD of GET and router.all() 405 handlers left out). */
function routesOf(app: Koa<any>): string[] {
  const out: string[] = [];
  for (const mw of app.middleware as Dispatch[]) {
    for (const layer of mw.router?.stack ?? []) {
      if (layer.methods.length === 0) continue; // router.use() middleware
      if (layer.methods.includes('ACL')) continue; // router.all(): the 405 answer of the signed-object apps
      const path = layer.path.replace(/[:*]([A-Za-z0-9_]+)/g, '{$1}');
      for (const m of layer.methods) {
        if (m === 'HEAD' && layer.methods.includes('GET')) continue;
        out.push(`${m} ${path}`);
      }
    }
  }
  return out;
}

function registeredRoutes(): string[] {
  const metrics = createMetrics({ defaultMetrics: false });
  const api = createApiApp({
    apps: anything(),
    nonces: anything(),
    readiness: async () => ({ ready: true, checks: {} }),
    // main.ts mounts the evidence file router it built (buildEvidenceFiles) among apiRouters'.
    routers: [...apiRouters(anything()), evidenceFileRouter({ files: anything(), records: anything(), urls: anything() })],
    metrics,
  });
  // The public download app (signed URLs) on the HTTPS listener, dispatched by startServer.
  const download = createEvidenceDownloadApp({ urls: anything(), records: anything(), blobs: anything(), metrics });
  const publicApp = createPublicApp({ routers: [devicePkiRouter(''), pkiPublicRouter({ authorities: anything() })], httpsBase: 'https://127.0.0.1:8443', metrics });
  const revocation = createRevocationPublicApp({ crls: anything(), ocsp: anything(), metrics });
  // The TSA paths are a plain node:http handler (no koa router): POST on each of its paths.
  const tsa = TSA_PUBLIC_PATHS.map((p) => `POST ${p}`);
  return [...new Set([...[api, publicApp, revocation, download].flatMap(routesOf), ...tsa])].sort();
}

function documentedOperations(): Array<{ key: string; path: string; method: string; op: any; pathItem: any }> {
  const ops = [];
  for (const [path, item] of Object.entries<any>(doc.paths)) {
    for (const method of METHODS) if (item[method]) ops.push({ key: `${method.toUpperCase()} ${path}`, path, method, op: item[method], pathItem: item });
  }
  return ops;
}

/** RFC 6901 JSON pointer inside the document. */
function pointer(ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  let node: any = doc;
  for (const part of ref.slice(2).split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))) {
    if (node === null || typeof node !== 'object' || !(part in node)) return undefined;
    node = node[part];
  }
  return node;
}

function deref<T = any>(node: any): T {
  let n = node;
  for (let i = 0; n && typeof n === 'object' && typeof n.$ref === 'string' && i < 10; i++) n = pointer(n.$ref);
  return n as T;
}

function hasExample(media: any): boolean {
  const m = deref(media);
  return m !== undefined && (m.example !== undefined || (m.examples !== undefined && Object.keys(m.examples).length > 0));
}

t.test('the document is OpenAPI 3.1 JSON with the YQ1 scheme and the Problem schema', async (t) => {
  t.match(doc.openapi, /^3\.1\.\d+$/);
  t.ok(doc.info?.title && doc.info?.version, 'info.title and info.version');
  t.equal(doc.components.securitySchemes.YQ1.name, 'Authorization');
  t.same(doc.security, [{ YQ1: [] }], 'signed by default');
  t.same(doc.components.schemas.Problem.required, ['type', 'title', 'status', 'code', 'detail', 'message', 'instance']);
  t.equal(findOpenApiFile(), DOC_FILE, 'the route serves this very file');
});

t.test('every $ref resolves', async (t) => {
  const refs: string[] = [];
  const walk = (n: unknown): void => {
    if (Array.isArray(n)) n.forEach(walk);
    else if (n && typeof n === 'object') {
      for (const [k, v] of Object.entries(n)) {
        if (k === '$ref' && typeof v === 'string') refs.push(v);
        else walk(v);
      }
    }
  };
  walk(doc);
  t.ok(refs.length > 50, `${refs.length} references`);
  const broken = refs.filter((r) => pointer(r) === undefined);
  t.same(broken, [], 'no dangling $ref');
});

t.test('every operation: unique operationId, summary, responses, examples, declared path parameters', async (t) => {
  const ids = new Set<string>();
  for (const { key, path, op, pathItem } of documentedOperations()) {
    t.match(op.operationId, /^[a-z][A-Za-z0-9]+$/, `${key}: operationId`);
    t.notOk(ids.has(op.operationId), `${key}: operationId ${op.operationId} is unique`);
    ids.add(op.operationId);
    t.ok(typeof op.summary === 'string' && op.summary.length > 5, `${key}: summary`);
    const responses = Object.entries<any>(op.responses ?? {});
    t.ok(responses.length > 0, `${key}: responses`);
    for (const [status, r] of responses) {
      t.match(status, /^[1-5]\d\d$/, `${key}: status ${status}`);
      const resp = deref(r);
      t.ok(resp?.description, `${key} ${status}: description`);
      if (/^2/.test(status)) for (const [type, media] of Object.entries<any>(resp.content ?? {})) t.ok(hasExample(media), `${key} ${status} ${type}: example`);
    }
    const body = deref(op.requestBody);
    for (const [type, media] of Object.entries<any>(body?.content ?? {})) t.ok(hasExample(media), `${key} request ${type}: example`);
    const params = [...(pathItem.parameters ?? []), ...(op.parameters ?? [])].map((p: any) => deref(p));
    const inPath = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
    t.same(params.filter((p) => p.in === 'path').map((p) => p.name).sort(), inPath, `${key}: path parameters declared`);
    for (const p of params) t.ok(p.example !== undefined || p.examples !== undefined, `${key}: parameter ${p.name} has an example`);
    const secured = op.security === undefined ? doc.security.length > 0 : op.security.length > 0;
    if (secured) t.ok(op.responses['401'], `${key}: a signed operation documents 401`);
    else t.notOk(path.startsWith('/api/v1/'), `${key}: only operations outside /api/v1 are unsigned`);
  }
  t.ok(ids.size >= 30, `${ids.size} operations`);
});

t.test('every error code the document names is a code the appliance has, with a response for its status', async (t) => {
  const known = new Set<string>([
    ...Object.values(Codes),
    ...Object.values(IssuanceCodes),
    ...Object.values(RevocationCodes),
    ...Object.values(StaffCodes),
    ...Object.values(HeldKeyCodes),
    ...Object.values(SigningCodes),
    ...Object.values(VerifyRequestCodes),
    ...Object.values(TrustCodes),
    ...Object.values(EnvelopeCodes),
    ...Object.values(SvsCodes),
    CSR_MALFORMED, CSR_SIGNATURE_INVALID, CSR_ALGORITHM_UNSUPPORTED, KEY_UNSUPPORTED, EXTENSION_INVALID, TSA_NOT_ALLOWED,
    ...Object.values(ReportCodes),
    ...Object.values(EvidenceCodes),
    ...Object.values(FileIngestCodes),
    ...Object.values(DownloadUrlCodes),
    ...Object.values(BlobCodes),
    ...Object.values(ProjectCodes),
    ...Object.values(CheckpointLogCodes),
    ...Object.values(MerkleCodes),
    ...Object.values(EvidenceReportCodes),
    ...Object.values(EvidenceLogRouteCodes),
    ...Object.values(EvidenceAccessCodes),
    ...Object.values(StatsCodes),
    ...Object.values(JobRouteCodes),
    ...Object.values(JobCodes),
  ]);
  // The records routes and service throw EVIDENCE_QUERY_INVALID as a literal (no const object).
  for (const f of ['http/evidence-record-routes.ts', 'evidence/records.ts']) {
    if (readFileSync(resolve(import.meta.dirname, '../../appliance/src', f), 'utf8').includes("'EVIDENCE_QUERY_INVALID'")) known.add('EVIDENCE_QUERY_INVALID');
  }
  const check = (where: string, codes: Record<string, number> | undefined, responses: Record<string, unknown> | undefined): void => {
    for (const [code, status] of Object.entries(codes ?? {})) {
      t.ok(known.has(code), `${where}: ${code} is a code in the source`);
      if (responses) t.ok(responses[String(status)], `${where}: ${code} → ${status} has a response`);
    }
  };
  for (const { key, op } of documentedOperations()) check(key, op['x-error-codes'], op.responses);
  for (const [name, r] of Object.entries<any>(doc.components.responses)) check(`components.responses.${name}`, r['x-error-codes'], undefined);
  // Problem examples name real codes too.
  for (const [name, r] of Object.entries<any>(doc.components.responses)) {
    const ex = r.content?.['application/problem+json']?.example;
    if (ex) {
      t.ok(known.has(ex.code), `${name}: example code ${ex.code}`);
      t.equal(ex.type, `urn:yiqian:problem:${String(ex.code).toLowerCase()}`, `${name}: type follows the code`);
      t.same(ex.message, { 'zh-CN': ex.detail, en: ex.title }, `${name}: message mirrors detail/title as problem.ts writes them`);
    }
  }
});

t.test('the VerificationReport schema follows signing/: every verdict code, check name and label', async (t) => {
  const report = doc.components.schemas.VerificationReport;
  t.same([...report.properties.code.enum].sort(), Object.values(ReportCodes).sort(), 'code: the ReportCodes of report-codes.ts');
  const check = doc.components.schemas.ReportCheck;
  t.same([...check.properties.name.enum].sort(), Object.keys(CHECK_LABELS).sort(), 'check names: CHECK_LABELS of verify-service.ts');
  for (const label of Object.values(CHECK_LABELS)) t.ok(check.properties.label.description.includes(label), `label ${label} listed`);
  t.same([...report.required].sort(), ['checks', 'code', 'form', 'gbtCode', 'judgedAt', 'judgedAtSource', 'level', 'valid'], 'the fields every report has');
});

t.test('every registered route is documented, and every documented operation is a route', async (t) => {
  const registered = registeredRoutes();
  const documented = documentedOperations().map((o) => o.key).sort();
  t.ok(registered.includes(`GET ${OPENAPI_PATH}`), 'the document itself is served');
  t.ok(registered.includes('GET /api/v1/whoami') && registered.includes('POST /tsa/sm2') && registered.includes('GET /ocsp/{request}'), 'routes of every app were found');
  const svs = (k: string): boolean => k.split(' ')[1].startsWith(`${SVS_PREFIX}/`);
  const waiting = new Set(UNDOCUMENTED_FOR_NOW);
  t.same(registered.filter((r) => !documented.includes(r) && !waiting.has(r)), [], 'registered but not in docs/openapi.json');
  t.same(documented.filter((d) => !registered.includes(d) && !svs(d)), [], 'in docs/openapi.json but no such route');
  t.same(UNDOCUMENTED_FOR_NOW.filter((r) => documented.includes(r) || !registered.includes(r)), [], 'UNDOCUMENTED_FOR_NOW holds only real, undocumented routes');
});

t.test('the GB/T 38629 binding: one form-urlencoded operation per implemented request type, with the respValues the code answers', async (t) => {
  const implemented = Object.keys(SVS_OPERATIONS).sort();
  t.ok(implemented.length >= 7, `${implemented.length} request types implemented`);
  const ops = documentedOperations().filter((o) => o.path.startsWith(`${SVS_PREFIX}/`));
  t.same(ops.map((o) => o.key).sort(), implemented.map((n) => `POST ${SVS_PREFIX}/${n}`).sort(), 'exactly the implemented request types, POST only');
  for (const { key, path, op } of ops) {
    const name = path.slice(SVS_PREFIX.length + 1);
    t.ok((SVS_REQUEST_TYPES as readonly string[]).includes(name), `${key}: a GB/T 38629 request type`);
    t.equal(op.operationId, `svs${name[0].toUpperCase()}${name.slice(1)}`, `${key}: operationId`);
    t.ok(op.summary.startsWith(`${SVS_REQUEST_TYPES.indexOf(name as never)} ${name} `), `${key}: summary starts with the request type's number`);
    t.same(op.security, [], `${key}: no app signature (keys by keyIndex + keyValue)`);
    t.same(Object.keys(op.requestBody.content), ['application/x-www-form-urlencoded'], `${key}: form-urlencoded request`);
    t.ok(op.responses['200'].content['application/x-www-form-urlencoded'], `${key}: form-urlencoded answer`);
    t.match(op.responses['200'].content['application/x-www-form-urlencoded'].example, /^respValue=0(&|$)/, `${key}: the example answer succeeds`);
    // Each documented failure is answered with the respValue the binding's table gives its code.
    const values = Object.entries<number>(op['x-resp-values'] ?? {});
    t.ok(values.length > 0, `${key}: x-resp-values`);
    for (const [code, rv] of values) t.equal(respValueOf(code, 400), rv, `${key}: ${code} → 0x${rv.toString(16)}`);
  }
  // The request types left out answer SVS_REQUEST_TYPE_UNSUPPORTED, and the document says so.
  const missing = SVS_REQUEST_TYPES.filter((n) => !implemented.includes(n));
  for (const n of missing) t.notOk(doc.paths[`${SVS_PREFIX}/${n}`], `${n}: not implemented, not documented as an operation`);
  if (missing.length) t.match(doc.tags.find((x: any) => x.name === 'gbt38629')?.description ?? '', /SVS_REQUEST_TYPE_UNSUPPORTED/, 'the tag says what the multi-part types answer');
});

t.test('docs/api-reference.md has a worked example for every operation', async (t) => {
  const md = readFileSync(REFERENCE_FILE, 'utf8');
  for (const { key, op } of documentedOperations()) {
    const at = md.indexOf(`<a id="${op.operationId}"></a>`);
    t.ok(at >= 0, `${key}: anchor ${op.operationId}`);
    if (at < 0) continue;
    const section = md.slice(at, md.indexOf('<a id=', at + 1) === -1 ? undefined : md.indexOf('<a id=', at + 1));
    // A call through curl, the YQ1 scripts ($Y, $U for streamed uploads) or openssl pointed at the appliance ($PUB, $BASE).
    t.match(section, /```sh\n[^]*?(curl |\$Y |\$U |\$PUB|\$BASE)[^]*?```/, `${key}: a shell example that calls the appliance`);
    t.ok(section.includes(`### ${key}`), `${key}: the section's heading is "### ${key}"`);
  }
});
