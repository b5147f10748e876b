// The floor under every HTTPS row: what one request costs the server when it does nothing but
// TLS and HTTP — a bare node:https server (no koa, no YQ1, no JSON work) answering a fixed
// ~300-byte JSON body, with the same P-256 TLS and the same wrk load. Its CPU per request plus
// the operation's own CPU (e.g. one SM2 sign) bounds what any HTTPS API on this Node can reach on
// these cores; printed so the API rows can be read against it.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { wrk } from './wrk.js';

/** CPU time (user + system, all threads) a process has used so far, in µs; Linux /proc. */
export function processCpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  // utime and stime are fields 14 and 15 of proc(5), in clock ticks (USER_HZ, 100 on Linux).
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

const SERVER = String.raw`
const https = require('node:https');
const fs = require('node:fs');
const answer = Buffer.from(JSON.stringify({ signature: 'A'.repeat(96), algorithm: 'sm2', keyId: '0'.repeat(26), certSerial: '0'.repeat(32), certificate: 'x'.repeat(100) }));
const s = https.createServer({ key: fs.readFileSync(process.argv[1]), cert: fs.readFileSync(process.argv[2]) }, (req, res) => {
  req.on('data', () => {});
  req.on('end', () => { res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': answer.length }); res.end(answer); });
});
s.keepAliveTimeout = 60000;
s.listen(0, '127.0.0.1', () => console.log('PORT ' + s.address().port));
`;

export interface FloorResult {
  requestsPerSec: number;
  /** Server CPU (all threads) per request, µs. */
  cpuMicrosPerRequest: number;
}

/** Runs the bare server in its own process under wrk (1 s warm-up, then `seconds`). */
export async function httpsFloor(seconds: number, connections: number, body: Buffer): Promise<FloorResult> {
  const dir = mkdtempSync(join(tmpdir(), 'yq-floor-'));
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  const proc = spawn(process.execPath, ['-e', SERVER, key, cert], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<string>((resolve, reject) => {
      proc.once('exit', (code) => reject(new Error(`bare https server exited (${code})`)));
      proc.stdout!.on('data', (d: Buffer) => {
        const m = /PORT (\d+)/.exec(String(d));
        if (m) resolve(m[1]);
      });
    });
    const url = `https://127.0.0.1:${port}/sign`;
    await wrk({ url, body, seconds: 1, connections });
    const before = processCpuMicros(proc.pid!);
    const r = await wrk({ url, body, seconds, connections });
    const used = processCpuMicros(proc.pid!) - before;
    if (r.bad) throw new Error(`bare https floor: ${r.bad} bad answers`);
    return { requestsPerSec: r.requestsPerSec, cpuMicrosPerRequest: used / r.requests };
  } finally {
    proc.removeAllListeners('exit');
    proc.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}
