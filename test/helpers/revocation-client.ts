// A running appliance (the built CLI: `yiqian init`, `app create`, `serve` on free ports) and
// the calls the revocation tests make to it: signed API requests (YQ1), certificates issued
// through the API, CA certificates, CRLs and OCSP over plain HTTP.
import type { Test } from 'tap';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { signRequest } from '../../appliance/src/http/yq1-scheme.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import { fromPem, toPem } from '../../appliance/src/crypto/der.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';
import { cli, fetchRaw, serve, tempDataDir, type Served } from './appliance.js';

export interface Issued {
  serial: string;
  pem: string;
  der: Buffer;
  /** PEM file of the certificate in the work directory. */
  file: string;
}

export interface RunningCa {
  data: string;
  /** A scratch directory for files handed to peers. */
  work: string;
  server: Served;
  /** Signed JSON call to /api/v1…; returns the status and parsed body. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any; headers: Record<string, unknown> }>;
  issue(algorithm: 'ecdsa-p256' | 'sm2', commonName: string): Promise<Issued>;
  /** CA certificate (DER) from GET /pki/ca/<id>.crt, also written to <work>/<id>.pem. */
  ca(id: string): Promise<{ der: Buffer; file: string }>;
  /** Raw bytes of a public GET or POST on the plain-HTTP listener. */
  publicCall(path: string, opts?: { method?: string; body?: Buffer; headers?: Record<string, string>; https?: boolean }): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }>;
  restart(): Promise<void>;
}

/** fetchRaw returns text; revocation objects are binary. */
async function binaryCall(url: string, opts: { method?: string; body?: Buffer; headers?: Record<string, string> }): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  const { request: httpRequest } = await import('node:http');
  const { request: httpsRequest } = await import('node:https');
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(
      u,
      { method: opts.method ?? 'GET', headers: { ...(opts.body ? { 'Content-Length': String(opts.body.length) } : {}), ...opts.headers }, rejectUnauthorized: false, agent: false } as never,
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

export async function startCa(t: Test, env: NodeJS.ProcessEnv = {}): Promise<RunningCa> {
  const data = tempDataDir();
  const work = join(dirname(data), 'work');
  mkdirSync(work, { recursive: true });
  const init = cli(['init', '--data', data]);
  if (init.code !== 0) throw new Error(`init failed: ${init.stderr}`);
  const keyFile = join(work, 'app.key');
  const created = cli(['app', 'create', '--data', data, '--name', 'revocation test', '--key-out', keyFile]);
  if (created.code !== 0) throw new Error(`app create failed: ${created.stderr}`);
  const appId = created.stdout.trim();
  const signer: Signer = createSoftwareSigner(readFileSync(keyFile, 'utf8'));
  let server = await serve(data, env);
  t.teardown(async () => {
    if (server.proc.exitCode === null) await server.stop('SIGKILL');
    rmSync(dirname(data), { recursive: true, force: true });
  });

  const ca: RunningCa = {
    data,
    work,
    get server() {
      return server;
    },
    async api(method, path, body) {
      const text = body === undefined ? undefined : JSON.stringify(body);
      const auth = await signRequest(signer, appId, method, `/api/v1${path}`, text);
      const r = await fetchRaw(`${server.httpsUrl}/api/v1${path}`, {
        method,
        headers: { Authorization: auth, ...(text !== undefined ? { 'Content-Type': 'application/json' } : {}) },
        body: text,
      });
      let json: any;
      try {
        json = JSON.parse(r.body);
      } catch {
        json = r.body;
      }
      return { status: r.status, json, headers: r.headers };
    },
    async issue(algorithm, commonName) {
      const r = await ca.api('POST', '/certs/keygen', { profile: 'personal', algorithm, password: 'correct horse battery', commonName, employeeId: `E-${commonName}` });
      if (r.status !== 201) throw new Error(`issue failed: ${r.status} ${JSON.stringify(r.json)}`);
      const der = fromPem(r.json.certificate)[0].der;
      const file = join(work, `${r.json.serial}.pem`);
      writeFileSync(file, r.json.certificate);
      return { serial: r.json.serial, pem: r.json.certificate, der, file };
    },
    async ca(id) {
      const r = await binaryCall(`${server.httpUrl}/pki/ca/${id}.crt`, {});
      if (r.status !== 200) throw new Error(`no CA ${id}: ${r.status}`);
      const file = join(work, `${id}.pem`);
      writeFileSync(file, toPem('CERTIFICATE', r.body));
      return { der: r.body, file };
    },
    publicCall(path, opts = {}) {
      return binaryCall(`${opts.https ? server.httpsUrl : server.httpUrl}${path}`, opts);
    },
    async restart() {
      await server.stop('SIGTERM');
      server = await serve(data, env);
    },
  };
  return ca;
}
