// RFC 3161 tokens per second and p99 latency at 32 concurrent keep-alive connections over plain
// HTTP against a served appliance (own data dir and SoftHSM2 token, as `yiqian init` makes it),
// for the ECDSA TSA (P-256 key in the HSM, C_Sign) and the SM2 TSA (wrapped key, in process).
// Each is given as a ratio to the raw signing rate of the same TSA key through the custody's
// Signer (32 in flight), measured in the same run. Every token is stored durably before its reply.
// Alone, after `make build`: `node dist/bench/tsa.js`.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildTimeStampReq, parseTimeStampResp } from '../appliance/src/asn1/tsp.js';
import { initialise } from '../appliance/src/cli/init.js';
import { openAppliance } from '../appliance/src/main.js';
import { serve } from '../test/helpers/appliance.js';
import { log } from '../appliance/src/log.js';
import { applianceCertificate } from '../appliance/src/pki/hierarchy.js';
import { measure, printTable, type BenchRow } from './table.js';
import { wrk } from './wrk.js';

const SECONDS = 3;
const CONNECTIONS = 32;
// A granted TimeStampResp carries a token, a ContentInfo of type id-signedData (RFC 3161 §2.4.2);
// a rejection carries none, so the DER of that OID marks an answer that is a token.
const GRANTED = Buffer.from('06092a864886f70d010702', 'hex');

function post(agent: Agent, url: URL, body: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { 'Content-Type': 'application/timestamp-query', 'Content-Length': String(body.length) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks)));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

export async function benchTsa(): Promise<BenchRow[]> {
  const level = log.level;
  log.level = 'error';
  const root = mkdtempSync(join(tmpdir(), 'yq-bench-tsa-'));
  const dataDir = join(root, 'data');
  const rows: BenchRow[] = [];
  try {
    await initialise(dataDir, false);
    // Baseline: raw signing by each TSA key, in this process, before the server starts.
    const raw: Record<'ecdsa' | 'sm2', number> = { ecdsa: 0, sm2: 0 };
    const a = await openAppliance(dataDir);
    try {
      for (const h of ['ecdsa', 'sm2'] as const) {
        const rec = await applianceCertificate(a.store.certs, h, 'tsa');
        if (!rec?.keyRef) throw new Error(`bench setup: no ${h} TSA certificate`);
        const signer = await a.custody.signer(rec.keyRef);
        const attrs = randomBytes(220);
        raw[h] = await measure(() => signer.sign(attrs, h === 'ecdsa' ? { hash: 'sha256' } : {}), 2, CONNECTIONS);
      }
    } finally {
      await a.close();
    }
    // The appliance serves in its own process (as in production); this process is the client.
    const server = await serve(dataDir, { YIQIAN_LOG_LEVEL: 'error' });
    try {
      for (const h of ['ecdsa', 'sm2'] as const) {
        const agent = new Agent({ keepAlive: true, maxSockets: 1 });
        const url = `${server.httpUrl.replace(/\/$/, '')}/tsa/${h}`;
        const req = buildTimeStampReq({ hash: h === 'sm2' ? 'sm3' : 'sha256', hashedMessage: randomBytes(32), nonce: 1n, certReq: true });
        const first = parseTimeStampResp(await post(agent, new URL(url), req));
        agent.destroy();
        if (first.status !== 0) throw new Error(`bench setup: ${h} TSA refused: ${first.statusString.join(' ')}`);
        const load = { url, body: req, contentType: 'application/timestamp-query', expect: GRANTED, connections: CONNECTIONS };
        await wrk({ ...load, seconds: 1 });
        const r = await wrk({ ...load, seconds: SECONDS });
        if (r.bad) throw new Error(`bench: ${r.bad} of ${r.requests} ${h} TSA answers were not tokens`);
        rows.push({
          name: `TSA ${h === 'sm2' ? 'SM2 (wrapped)' : 'ECDSA P-256 (SoftHSM2)'} tokens over HTTP, ${CONNECTIONS} connections, p99 ${r.p99Ms.toFixed(1)} ms`,
          opsPerSec: r.requestsPerSec,
          baseline: `raw sign by the same TSA key, ${CONNECTIONS} in flight`,
          baselineOpsPerSec: raw[h],
        });
      }
    } finally {
      await server.stop('SIGTERM');
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
    log.level = level;
  }
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  printTable(await benchTsa());
}
