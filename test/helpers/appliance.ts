// Drives the built `yiqian` CLI as a user would: init a data dir, serve it on free ports,
// talk to it over HTTPS/HTTP. Needs `make build` (dist/) first — `make test` does that.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TLSSocket } from 'node:tls';

/** The repository root, found upwards from here so that it works from source and from dist/. */
function findRoot(dir: string): string {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(join(d, 'package.json')) && existsSync(join(d, 'Makefile'))) return d;
    if (dirname(d) === d) throw new Error(`no repository root above ${dir}`);
  }
}
export const ROOT = findRoot(import.meta.dirname);
export const CLI = join(ROOT, 'dist/appliance/src/cli/main.js');

function requireBuild(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`make build\` first`);
}

export interface CliResult { code: number; stdout: string; stderr: string }

export function cli(args: string[], env: NodeJS.ProcessEnv = {}): CliResult {
  requireBuild();
  const r = spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, NODE_ENV: 'test', ...env }, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function tempDataDir(): string {
  return join(mkdtempSync(join(tmpdir(), 'yq-e2e-')), 'data');
}

export interface Served {
  proc: ChildProcess;
  httpsUrl: string;
  httpUrl: string;
  output: () => string;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * `yiqian serve` on free loopback ports; resolves once it prints its URLs. YIQIAN_SERVE_NODE_FLAGS
 * (space-separated, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p") go to that node process: flags such
 * as --cpu-prof are refused in NODE_OPTIONS, and benches profile the served process this way.
 */
export function serve(dataDir: string, env: NodeJS.ProcessEnv = {}): Promise<Served> {
  requireBuild();
  const flags = (process.env.YIQIAN_SERVE_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const proc = spawn(process.execPath, [...flags, CLI, 'serve', '--data', dataDir, '--listen', '127.0.0.1:0', '--listen-http', '127.0.0.1:0'], {
    env: { ...process.env, NODE_ENV: 'test', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return new Promise((resolveServe, reject) => {
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`serve did not start in time:\n${out}`)); }, 60_000);
    const onData = (d: Buffer): void => {
      out += d.toString();
      const https = /HTTPS API:\s+(https:\/\/\S+?)\/api\/v1\//.exec(out);
      const http = /public HTTP:\s+(http:\/\/\S+?)\/\s/.exec(out);
      if (https && http) {
        clearTimeout(timer);
        resolveServe({
          proc, httpsUrl: https[1], httpUrl: http[1], output: () => out,
          stop: (signal = 'SIGTERM') => { proc.kill(signal); return exited; },
        });
      }
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    void exited.then((code) => { clearTimeout(timer); reject(new Error(`serve exited (${code}) before it was ready:\n${out}`)); });
  });
}

export interface Reply { status: number; headers: Record<string, string | string[] | undefined>; body: string; peerCertificateDer?: Buffer }

/** One request; `url` https: or http:. TLS is not verified (the test checks the certificate itself). */
export function fetchRaw(url: string, opts: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {}): Promise<Reply> {
  const u = new URL(url);
  const isHttps = u.protocol === 'https:';
  return new Promise((resolveReq, reject) => {
    const req = (isHttps ? httpsRequest : httpRequest)(u, { method: opts.method ?? 'GET', headers: opts.headers, rejectUnauthorized: false, agent: false } as never, (res) => {
      const cert = isHttps ? (res.socket as TLSSocket).getPeerCertificate() : undefined;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        resolveReq({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), peerCertificateDer: cert?.raw });
      });
    });
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}
