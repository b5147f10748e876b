// Signature/verification service over HTTPS at 32 keep-alive connections against a served
// appliance (`yiqian serve` in its own process, its own SoftHSM2 token), issue 4:
//   raw SM2 sign, SM2 CMS sign, SM2 CMS verify at level 2 (chain + revocation), raw ECDSA sign
//   through the HSM, and a batch of 100 raw SM2 signs — each as a ratio to the raw rate of the
//   same operation in this process (SM2 engine on both cores / HSM C_Sign), measured in the same run.
// The calling app authenticates with YQ1-ECDSA-SHA256 (an SM2-authenticated app would spend one
// SM2 verify per request on the server, on the same two cores as the signing being measured).
// The load generator (wrk, bench/wrk.ts) runs on the same two cores as the server, so its YQ1
// headers are signed BEFORE each measurement (fresh nonces, well inside the 5-minute window): in
// production the clients are other machines, and their signing is not the appliance's cost.
// Alone, after `make build`: `node dist/bench/signing.js`.
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createSoftwareSigner } from '../appliance/src/crypto/software-signer.js';
import { createSm2Signer, generateSm2KeyPair, sm2Verify } from '../appliance/src/crypto/sm2.js';
import { canonicalString, signRequest } from '../appliance/src/http/yq1-scheme.js';
import { verifySignature } from '../appliance/src/crypto/verify.js';
import { openAppliance } from '../appliance/src/main.js';
import type { Signer } from '../appliance/src/crypto/interfaces.js';
import { cli, serve, tempDataDir } from '../test/helpers/appliance.js';
import { measure, printTable, type BenchRow } from './table.js';
import { httpsFloor, processCpuMicros } from './https-floor.js';
import { wrk } from './wrk.js';

const CONNECTIONS = 32;
const SECONDS = 4;
const BATCH = 100;

function must(r: { code: number; stdout: string; stderr: string }, what: string): string {
  if (r.code !== 0) throw new Error(`bench setup: ${what} failed: ${r.stderr}`);
  return r.stdout.trim();
}

interface Client {
  post(path: string, body: unknown): Promise<{ status: number; json: any }>;
  /** YQ1 headers for `n` requests with this body, signed now (each with its own nonce). */
  presign(path: string, body: unknown, n: number): Promise<{ bytes: Buffer; auths: string[] }>;
  close(): void;
}

function client(base: string, appId: string, signer: Signer): Client {
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS, rejectUnauthorized: false });
  const send = (path: string, bytes: Buffer, auth: string): Promise<{ status: number; json: any }> =>
    new Promise((resolve, reject) => {
      const req = request(new URL(path, base), { method: 'POST', agent, headers: { Authorization: auth, 'Content-Type': 'application/json', 'Content-Length': String(bytes.length) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : undefined });
        });
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(bytes);
    });
  return {
    async post(path, body) {
      const bytes = Buffer.from(JSON.stringify(body));
      return send(path, bytes, await signRequest(signer, appId, 'POST', path, bytes));
    },
    async presign(path, body, n) {
      const bytes = Buffer.from(JSON.stringify(body));
      const auths: string[] = [];
      for (let i = 0; i < n; i += 256) {
        auths.push(...(await Promise.all(Array.from({ length: Math.min(256, n - i) }, () => signRequest(signer, appId, 'POST', path, bytes)))));
      }
      return { bytes, auths };
    },
    close: () => agent.destroy(),
  };
}

/**
 * Requests per second from wrk at CONNECTIONS in flight (after a 1 s warm-up), and the served
 * process's CPU per request (all its threads) over the measured run; every answer must be 200
 * and contain `expect`.
 */
async function rate(c: Client, serverPid: number, url: string, path: string, body: unknown, expect = '', expectedPerSecond = 5000): Promise<{ perSec: number; cpuMicros: number; wrkCpuMicros: number }> {
  const load = async (seconds: number): Promise<{ perSec: number; cpuMicros: number; wrkCpuMicros: number }> => {
    const { bytes, auths } = await c.presign(path, body, Math.ceil(expectedPerSecond * seconds * 1.5));
    const before = processCpuMicros(serverPid);
    const r = await wrk({ url: url + path, body: bytes, auths, expect, seconds, connections: CONNECTIONS });
    const used = processCpuMicros(serverPid) - before;
    if (r.bad) throw new Error(`${path}: ${r.bad} of ${r.requests} answers were not 200 or lacked ${JSON.stringify(expect)}`);
    return { perSec: r.requestsPerSec, cpuMicros: used / r.requests, wrkCpuMicros: r.cpuMicrosPerRequest };
  };
  await load(1);
  return load(SECONDS);
}

/** ops/s of `op` at CONNECTIONS in flight, and this process's CPU per op (µs). */
async function measureCpu(op: () => Promise<unknown>): Promise<{ perSec: number; cpuMicros: number }> {
  let n = 0;
  const counted = async (): Promise<void> => {
    await op();
    n++;
  };
  await measure(op, 0.3, CONNECTIONS);
  const u0 = process.cpuUsage();
  const perSec = await measure(counted, SECONDS, CONNECTIONS);
  const u = process.cpuUsage(u0);
  return { perSec, cpuMicros: (u.user + u.system) / n };
}

export async function benchSigning(): Promise<BenchRow[]> {
  const data = tempDataDir();
  const root = dirname(data);
  const rows: BenchRow[] = [];
  try {
    must(cli(['init', '--data', data]), 'init');
    const keyFile = join(root, 'bench-app.key');
    const appId = must(cli(['app', 'create', '--data', data, '--name', 'bench-signing', '--alg', 'ecdsa-p256', '--key-out', keyFile]), 'app create');
    must(cli(['signing-key', 'create', '--data', data, '--label', 'bench-sm2', '--kind', 'organisation', '--cn', '医签压测 SM2', '--grant', appId]), 'sm2 key');
    const ecKey = JSON.parse(must(cli(['signing-key', 'create', '--data', data, '--label', 'bench-ecdsa', '--kind', 'organisation', '--cn', 'yiqian bench ECDSA', '--alg', 'ecdsa-p256', '--grant', appId, '--json']), 'ecdsa key'));

    // Baselines, in this process before the server starts: the SM2 engine on both cores (a fresh
    // key, 32 in flight on the libuv pool) and C_Sign by the held ECDSA key through the custody.
    const msg = randomBytes(64);
    const { privateKey, publicKey } = generateSm2KeyPair();
    const engine = createSm2Signer(privateKey);
    const engineSignCpu = await measureCpu(() => engine.sign(msg));
    const engineSign = engineSignCpu.perSec;
    const sig = await engine.sign(msg);
    const engineVerify = await measure(() => sm2Verify(publicKey, msg, sig), SECONDS, CONNECTIONS);
    let hsmSign: number;
    const a = await openAppliance(data);
    try {
      const hsm = await a.custody.signer(ecKey.keyUri);
      const digest = randomBytes(32);
      hsmSign = await measure(() => hsm.sign(digest, { prehashed: true, hash: 'sha256' }), SECONDS, CONNECTIONS);
    } finally {
      await a.close();
    }

    // What YQ1 authentication costs the server per request at least: one ECDSA P-256 verify of
    // the canonical string (app-auth.ts), in process, 32 in flight.
    const appSigner = createSoftwareSigner(readFileSync(keyFile, 'utf8'));
    const tbs = Buffer.from(canonicalString('POST', '/api/v1/sign/raw', Date.now(), randomBytes(16).toString('hex'), randomBytes(32).toString('hex')));
    const tbsSig = await appSigner.sign(tbs, { hash: 'sha256' });
    const authVerify = await measureCpu(() => verifySignature('ecdsa-p256', appSigner.publicKeyInfo, tbs, tbsSig, { hash: 'sha256' }));

    const server = await serve(data, { YIQIAN_LOG_LEVEL: 'error' });
    const c = client(server.httpsUrl, appId, appSigner);
    try {
      const content = randomBytes(256).toString('base64');
      const data64 = msg.toString('base64');
      const cms = await c.post('/api/v1/sign/cms', { key: 'bench-sm2', content });
      if (cms.status !== 200) throw new Error(`bench setup: sign/cms answered ${cms.status} ${JSON.stringify(cms.json)}`);
      const verified = await c.post('/api/v1/verify/cms', { cms: cms.json.cms, level: 2 });
      if (verified.status !== 200 || verified.json.valid !== true) throw new Error(`bench setup: verify/cms: ${JSON.stringify(verified.json)}`);

      const engineRow = `SM2 engine sign in process, both cores, ${CONNECTIONS} in flight`;
      const u = server.httpsUrl.replace(/\/$/, '');
      const pid = server.proc.pid!;
      const raw = await rate(c, pid, u, '/api/v1/sign/raw', { key: 'bench-sm2', data: data64 }, '"signature"');
      rows.push({ name: `HTTPS POST /sign/raw SM2, ${CONNECTIONS} conns`, opsPerSec: raw.perSec, baseline: engineRow, baselineOpsPerSec: engineSign });
      const cmsSign = await rate(c, pid, u, '/api/v1/sign/cms', { key: 'bench-sm2', content }, '"cms"');
      rows.push({ name: `HTTPS POST /sign/cms SM2 attached, ${CONNECTIONS} conns`, opsPerSec: cmsSign.perSec, baseline: engineRow, baselineOpsPerSec: engineSign });
      const verify = await rate(c, pid, u, '/api/v1/verify/cms', { cms: cms.json.cms, level: 2 }, '"valid":true');
      rows.push({
        name: `HTTPS POST /verify/cms SM2 level 2 (chain + revocation), ${CONNECTIONS} conns`,
        opsPerSec: verify.perSec,
        baseline: `SM2 engine verify in process, both cores, ${CONNECTIONS} in flight`,
        baselineOpsPerSec: engineVerify,
      });
      const ecdsa = await rate(c, pid, u, '/api/v1/sign/raw', { key: 'bench-ecdsa', data: data64 }, '"signature"');
      rows.push({ name: `HTTPS POST /sign/raw ECDSA P-256 (SoftHSM2), ${CONNECTIONS} conns`, opsPerSec: ecdsa.perSec, baseline: `C_Sign by the same key, ${CONNECTIONS} in flight`, baselineOpsPerSec: hsmSign });
      const items = Array.from({ length: BATCH }, () => ({ type: 'raw', key: 'bench-sm2', data: data64 }));
      const batches = await rate(c, pid, u, '/api/v1/sign/batch', { items }, '"failed":0', 100);
      rows.push({ name: `HTTPS POST /sign/batch of ${BATCH} SM2, items/s, ${CONNECTIONS} conns`, opsPerSec: batches.perSec * BATCH, baseline: engineRow, baselineOpsPerSec: engineSign });

      // Where the time goes, per request (µs of CPU in the ops/s column; lower is better): the
      // served process on /sign/raw, against the engine's own CPU per sign, and the floor that
      // any HTTPS answer costs this Node (bench/https-floor.ts). From those two, the best ratio an
      // HTTPS API could reach here if it added nothing to TLS + HTTP but the sign.
      const cpuEngine = `SM2 engine sign, CPU µs per signature (in process)`;
      rows.push({ name: `server CPU µs per HTTPS POST /sign/raw SM2 (all threads)`, opsPerSec: raw.cpuMicros, baseline: cpuEngine, baselineOpsPerSec: engineSignCpu.cpuMicros });
      const floor = await httpsFloor(SECONDS, CONNECTIONS, Buffer.from(JSON.stringify({ key: 'bench-sm2', data: data64 })));
      rows.push({
        name: `server CPU µs per request, bare node:https fixed answer (no app, no auth), ${CONNECTIONS} conns, ${Math.round(floor.requestsPerSec)} req/s`,
        opsPerSec: floor.cpuMicrosPerRequest,
        baseline: cpuEngine,
        baselineOpsPerSec: engineSignCpu.cpuMicros,
      });
      rows.push({ name: `YQ1 auth: ECDSA P-256 verify CPU µs per request (in process)`, opsPerSec: authVerify.cpuMicros, baseline: cpuEngine, baselineOpsPerSec: engineSignCpu.cpuMicros });
      // The first two leave out the load generator's own CPU (on the same cores): upper bounds.
      const sign = engineSignCpu.cpuMicros;
      rows.push({
        name: `computed ceiling for /sign/raw SM2: engine rate × sign CPU / (sign CPU + bare HTTPS CPU)`,
        opsPerSec: (engineSign * sign) / (sign + floor.cpuMicrosPerRequest),
        baseline: engineRow,
        baselineOpsPerSec: engineSign,
      });
      rows.push({
        name: `computed ceiling with YQ1 auth: engine rate × sign CPU / (sign CPU + bare HTTPS CPU + ECDSA verify CPU)`,
        opsPerSec: (engineSign * sign) / (sign + floor.cpuMicrosPerRequest + authVerify.cpuMicros),
        baseline: engineRow,
        baselineOpsPerSec: engineSign,
      });
      rows.push({ name: `load generator (wrk) CPU µs per /sign/raw request, on the same cores`, opsPerSec: raw.wrkCpuMicros, baseline: cpuEngine, baselineOpsPerSec: sign });
      rows.push({
        name: `computed ceiling with YQ1 auth and the load generator: … / (sign + bare HTTPS + ECDSA verify + wrk CPU)`,
        opsPerSec: (engineSign * sign) / (sign + floor.cpuMicrosPerRequest + authVerify.cpuMicros + raw.wrkCpuMicros),
        baseline: engineRow,
        baselineOpsPerSec: engineSign,
      });
    } finally {
      c.close();
      await server.stop('SIGTERM');
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  printTable(await benchSigning());
}
