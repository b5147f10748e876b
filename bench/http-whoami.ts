// Authenticated `GET /api/v1/whoami` over HTTPS at 32 connections against a real appliance
// (`yiqian serve` in a child process, its own SoftHSM2 token). Every request carries a fresh
// YQ1-SM2-SM3 signature, so the server does one SM2 verify per request: the baseline is
// `openssl speed sm2` verify/s on one core, measured in the same run.
import { Agent, request } from 'node:https';
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { cli, serve, tempDataDir } from '../test/helpers/appliance.js';
import { signRequest } from '../appliance/src/http/yq1-scheme.js';
import { createSoftwareSigner } from '../appliance/src/crypto/software-signer.js';
import type { BenchRow } from './table.js';
import { opensslSpeedSm2 } from './openssl-speed.js';

const CONNECTIONS = 32;
const SECONDS = 5;

export async function benchHttp(): Promise<BenchRow[]> {
  const data = tempDataDir();
  if (cli(['init', '--data', data]).code !== 0) throw new Error('init failed');
  const keyFile = join(dirname(data), 'bench.key');
  const created = cli(['app', 'create', '--data', data, '--name', 'bench', '--key-out', keyFile]);
  if (created.code !== 0) throw new Error(created.stderr);
  const appId = created.stdout.trim();
  const signer = createSoftwareSigner(readFileSync(keyFile, 'utf8'));
  const server = await serve(data, { YIQIAN_LOG_LEVEL: 'warn' });
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS, rejectUnauthorized: false });
  const url = new URL(`${server.httpsUrl}/api/v1/whoami`);
  const once = async (): Promise<number> => {
    const auth = await signRequest(signer, appId, 'GET', '/api/v1/whoami');
    return new Promise((resolve, reject) => {
      const req = request(url, { agent, headers: { Authorization: auth } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });
  };
  try {
    for (let i = 0; i < 200; i++) if ((await once()) !== 200) throw new Error('whoami did not answer 200');
    let ok = 0;
    let failed = 0;
    const end = Date.now() + SECONDS * 1000;
    const start = Date.now();
    await Promise.all(Array.from({ length: CONNECTIONS }, async () => {
      while (Date.now() < end) {
        if ((await once()) === 200) ok++;
        else failed++;
      }
    }));
    const rps = ok / ((Date.now() - start) / 1000);
    if (failed) console.log(`whoami: ${failed} non-200 answers during the run`);
    const speed = await opensslSpeedSm2();
    return [{ name: `HTTPS whoami, SM2-authenticated, ${CONNECTIONS} conns`, opsPerSec: rps, baseline: 'openssl speed sm2 verify (1 core)', baselineOpsPerSec: speed.verify }];
  } finally {
    agent.destroy();
    await server.stop('SIGTERM');
    rmSync(dirname(data), { recursive: true, force: true });
  }
}
