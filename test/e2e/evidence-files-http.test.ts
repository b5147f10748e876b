// Evidence files as an integrator meets them over HTTPS (issue 6 items 1–2): a served appliance,
// an SM2 app (YQ1-SM2-SM3, so the declared X-YQ1-Body-Hash is the SM3 of the body):
//   - a 50 MiB streamed upload: the record's SM3 equals `openssl dgst -sm3` of the file, and the
//     server's peak RSS (VmHWM of /proc/<pid>/status) grows well under the file size;
//   - refusals keep nothing (no blob, no temp file, no record): oversize (evidence.maxFileBytes set
//     small) → 413, an aborted upload, bytes that differ from the signed body hash → 401;
//   - a file with a detached CMS made by POST /api/v1/sign/cms is stored with its verdict, a CMS
//     over other bytes is refused 422 (and counted as a rejection);
//   - the signed download URL: Content-Disposition (RFC 6266/8187), X-Content-SM3, the bytes;
//     an expired URL (evidence.downloadUrlSeconds short) and a tampered one → 403.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createHash, randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cli, fetchRaw, serve, tempDataDir, type Served } from '../helpers/appliance.js';
import { canonicalString, formatAuthorization, signRequest } from '../../appliance/src/http/yq1-scheme.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';

const data = tempDataDir();
const tmp = dirname(data);
const blobDir = join(data, 'blobs');
const MiB = 1024 * 1024;
const BIG = 50 * MiB;
/**
 * Measured here: the peak grows by 33–43 MiB whether 50 or 150 MiB are sent — TLS record buffers
 * waiting for a GC, which V8 starts at its 64 MiB external-allocation soft limit — never with the size.
 */
const RSS_SLACK = 64 * MiB;
let server: Served | undefined;
let app: { id: string; signer: Signer };

t.teardown(async () => {
  if (server && server.proc.exitCode === null) await server.stop('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

function setConfig(evidence: Record<string, unknown>): void {
  const file = join(data, 'config.json');
  const cfg = JSON.parse(readFileSync(file, 'utf8'));
  cfg.evidence = { ...(cfg.evidence ?? {}), ...evidence };
  writeFileSync(file, JSON.stringify(cfg, null, 2));
}

async function restart(evidence: Record<string, unknown>): Promise<void> {
  if (server) await server.stop('SIGTERM');
  setConfig(evidence);
  server = await serve(data);
}

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: any; headers: Record<string, unknown> }> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  const auth = await signRequest(app.signer, app.id, method, `/api/v1${path}`, text);
  const r = await fetchRaw(`${server!.httpsUrl}/api/v1${path}`, {
    method,
    headers: { Authorization: auth, ...(text !== undefined ? { 'Content-Type': 'application/json' } : {}) },
    ...(text !== undefined ? { body: text } : {}),
  });
  let json: any;
  try {
    json = JSON.parse(r.body);
  } catch {
    json = r.body;
  }
  return { status: r.status, json, headers: r.headers };
}

const sm3Hex = (b: Buffer | string): string => createHash('sm3').update(b).digest('hex');

interface Upload {
  /** The query (metadata) after /api/v1/evidence/files. */
  query?: string;
  /** What is declared in X-YQ1-Body-Hash (default: the SM3 of the body). */
  declaredHash?: string;
  contentType?: string;
  /** The body: bytes, or a file streamed from disk. */
  body: Buffer | { file: string; bytes: number; sm3: string };
  /** Send only this many bytes, then destroy the connection. */
  abortAfter?: number;
  /** Send in 256 KiB pieces, this many ms apart (a slow link). */
  paceMs?: number;
  /** Send only this many bytes, then nothing (keep the connection) until the server answers. */
  stallAfter?: number;
}

/** One streamed upload, signed over the declared body hash (docs/api-auth.md, X-YQ1-Body-Hash). */
async function upload(u: Upload): Promise<{ status: number; json: any; aborted?: boolean }> {
  const path = `/api/v1/evidence/files${u.query ?? ''}`;
  const isFile = !Buffer.isBuffer(u.body);
  const length = Buffer.isBuffer(u.body) ? u.body.length : u.body.bytes;
  const hash = u.declaredHash ?? (Buffer.isBuffer(u.body) ? sm3Hex(u.body) : u.body.sm3);
  const ts = Date.now();
  const nonce = randomBytes(16).toString('hex');
  const sig = await app.signer.sign(Buffer.from(canonicalString('POST', path, ts, nonce, hash), 'utf8'));
  const auth = formatAuthorization({ scheme: 'YQ1-SM2-SM3', appId: app.id, ts, nonce, signature: sig });
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      `${server!.httpsUrl}${path}`,
      {
        method: 'POST',
        rejectUnauthorized: false,
        agent: false,
        headers: { Authorization: auth, 'X-YQ1-Body-Hash': hash, 'Content-Type': u.contentType ?? 'application/octet-stream', 'Content-Length': String(length) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: any = text;
          try {
            json = JSON.parse(text);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, json });
        });
      },
    );
    req.on('error', (e: NodeJS.ErrnoException) => (u.abortAfter !== undefined ? resolve({ status: 0, json: e.code, aborted: true }) : reject(e)));
    if (u.stallAfter !== undefined) {
      req.write((u.body as Buffer).subarray(0, u.stallAfter));
    } else if (u.paceMs !== undefined) {
      const bytes = u.body as Buffer;
      void (async () => {
        for (let at = 0; at < bytes.length; at += 256 * 1024) {
          if (at > 0) await sleep(u.paceMs!);
          req.write(bytes.subarray(at, at + 256 * 1024));
        }
        req.end();
      })();
    } else if (u.abortAfter !== undefined) {
      const bytes = Buffer.isBuffer(u.body) ? u.body : readFileSync((u.body as { file: string }).file);
      req.write(bytes.subarray(0, u.abortAfter), () => setTimeout(() => req.destroy(), 200));
    } else if (isFile) {
      createReadStream((u.body as { file: string }).file).pipe(req);
    } else {
      req.end(u.body);
    }
  });
}

/** Every file under the blob directory (blobs and temp files), relative. */
function blobFiles(): string[] {
  const out: string[] = [];
  const walk = (d: string, rel: string): void => {
    if (!existsSync(d)) return;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name), join(rel, e.name));
      else out.push(join(rel, e.name));
    }
  };
  walk(blobDir, '');
  return out.sort();
}

async function fileRecords(): Promise<string[]> {
  const r = await api('GET', '/evidence/records?kind=file&limit=500');
  if (r.status !== 200) throw new Error(`query: ${r.status} ${JSON.stringify(r.json)}`);
  return r.json.items.map((x: { id: string }) => x.id);
}

/** kB → bytes from a /proc/<pid>/status line. */
function procStatus(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} for ${pid}`);
  return Number(m[1]) * 1024;
}

/** Nothing of a refused upload stays: the same blob files (no temp file) and the same file records. */
async function nothingKept(t: Test, before: { blobs: string[]; records: string[] }, what: string): Promise<void> {
  // The route discards its temp file as it answers; allow the unlink a moment.
  let blobs = blobFiles();
  for (let i = 0; i < 20 && blobs.join() !== before.blobs.join(); i++) {
    await sleep(100);
    blobs = blobFiles();
  }
  t.same(blobs, before.blobs, `${what}: no new blob or temp file`);
  t.same(await fileRecords(), before.records, `${what}: no new record`);
}

async function snapshot(): Promise<{ blobs: string[]; records: string[] }> {
  return { blobs: blobFiles(), records: await fileRecords() };
}

t.before(async () => {
  const init = cli(['init', '--data', data, '--json']);
  if (init.code !== 0) throw new Error(init.stderr);
  const keyFile = join(tmp, 'pacs.key');
  const created = cli(['app', 'create', '--data', data, '--name', 'PACS 影像', '--key-out', keyFile, '--json']);
  if (created.code !== 0) throw new Error(created.stderr);
  app = { id: JSON.parse(created.stdout).id, signer: createSoftwareSigner(readFileSync(keyFile, 'utf8')) };
  const key = cli(['signing-key', 'create', '--data', data, '--label', 'seal-ec', '--kind', 'seal', '--alg', 'ecdsa-p256', '--cn', '某某医院 影像科', '--grant', app.id]);
  if (key.code !== 0) throw new Error(key.stderr);
  setConfig({ downloadUrlSeconds: 3 });
  server = await serve(data);
});

t.test('a 50 MiB streamed upload: SM3 as openssl computes it, server memory well under the file size', async (t) => {
  const file = join(tmp, 'ct-series.bin');
  // 50 MiB of pseudo-random bytes, written in 1 MiB pieces (not held whole by the test either).
  const fd = openSync(file, 'w');
  const seed = randomBytes(MiB);
  for (let i = 0; i < BIG / MiB; i++) {
    seed[0] = i;
    writeSync(fd, seed);
  }
  closeSync(fd);
  t.equal(statSync(file).size, BIG);
  const opensslSm3 = /^([0-9a-f]{64}) /.exec(execFileSync('openssl', ['dgst', '-sm3', '-r', file], { encoding: 'utf8' }))![1];

  const pid = server!.proc.pid!;
  // Settle, then the peak RSS so far: the upload must not raise it by anything near 50 MiB.
  await api('GET', '/evidence/records?limit=1');
  const hwmBefore = procStatus(pid, 'VmHWM');
  const started = Date.now();
  const r = await upload({ query: '?fileName=%E5%BD%B1%E5%83%8F%E5%BA%8F%E5%88%97.bin&documentType=ct-series&departmentId=D-RAD', body: { file, bytes: BIG, sm3: opensslSm3 } });
  const seconds = (Date.now() - started) / 1000;
  t.equal(r.status, 201, `stored in ${seconds.toFixed(1)} s${r.status !== 201 ? `: ${JSON.stringify(r.json)}` : ''}`);
  const hwmAfter = procStatus(pid, 'VmHWM');
  const growth = hwmAfter - hwmBefore;
  t.ok(growth < BIG, `peak RSS grew by ${(growth / MiB).toFixed(1)} MiB for a ${BIG / MiB} MiB upload (VmHWM ${(hwmBefore / MiB).toFixed(0)} → ${(hwmAfter / MiB).toFixed(0)} MiB)`);

  const rec = r.json.record;
  t.equal(rec.kind, 'file');
  t.equal(rec.contentDigest.algorithm, 'sm3');
  t.equal(rec.contentDigest.value, opensslSm3, 'contentDigest = openssl dgst -sm3 of the file');
  t.equal(rec.original.blobId, opensslSm3, 'stored content-addressed under its SM3');
  t.equal(rec.original.bytes, BIG);
  t.equal(rec.original.fileName, '影像序列.bin');
  t.equal(statSync(join(blobDir, opensslSm3.slice(0, 2), opensslSm3.slice(2, 4), opensslSm3)).size, BIG, 'the blob on disk');
  t.equal(r.json.deduplicated, false);

  // The same bytes again: a second record sharing the blob.
  const again = await upload({ query: '?documentType=ct-series', body: { file, bytes: BIG, sm3: opensslSm3 } });
  t.equal(again.status, 201);
  t.equal(again.json.deduplicated, true, 'the same bytes are kept once');
  t.not(again.json.record.id, rec.id, 'but are a record of their own');

  // The signed download URL gives the bytes back.
  const url = await api('GET', `/evidence/records/${rec.id}/download-url`);
  t.equal(url.status, 200);
  const out = join(tmp, 'downloaded.bin');
  const dl = await new Promise<{ status: number; headers: Record<string, unknown> }>((resolve, reject) => {
    const req = httpsRequest(url.json.url, { rejectUnauthorized: false, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        writeFileSync(out, Buffer.concat(chunks));
        resolve({ status: res.statusCode ?? 0, headers: res.headers });
      });
    });
    req.on('error', reject);
    req.end();
  });
  t.equal(dl.status, 200);
  t.equal(dl.headers['x-content-sm3'], opensslSm3);
  t.match(execFileSync('openssl', ['dgst', '-sm3', '-r', out], { encoding: 'utf8' }), new RegExp(`^${opensslSm3} `), 'openssl dgst -sm3 of the download = X-Content-SM3');
  rmSync(out);

  // Bounded, not proportional: 100 MiB more (150 MiB in one upload) leaves the peak where it was.
  const more = openSync(file, 'a');
  for (let i = 0; i < 100; i++) {
    seed[1] = i;
    writeSync(more, seed);
  }
  closeSync(more);
  const bigger = /^([0-9a-f]{64}) /.exec(execFileSync('openssl', ['dgst', '-sm3', '-r', file], { encoding: 'utf8' }))![1];
  const r150 = await upload({ body: { file, bytes: BIG + 100 * MiB, sm3: bigger } });
  t.equal(r150.status, 201, '150 MiB stored');
  t.equal(r150.json.record?.contentDigest.value, bigger, 'its SM3 = openssl dgst -sm3');
  const growth2 = procStatus(pid, 'VmHWM') - hwmBefore;
  t.ok(growth2 < RSS_SLACK, `after 250 MiB uploaded in all (and 50 MiB downloaded), the peak RSS is ${(growth2 / MiB).toFixed(1)} MiB above where it started: bounded, not proportional`);
  rmSync(file);
});

t.test('wrong body hash → 401 BAD_SIGNATURE, aborted upload → nothing kept', async (t) => {
  const body = randomBytes(3 * MiB);
  const before = await snapshot();
  const wrong = await upload({ body, declaredHash: sm3Hex('something else') });
  t.equal(wrong.status, 401, 'bytes that differ from the signed hash');
  t.equal(wrong.json.code, 'BAD_SIGNATURE');
  t.match(wrong.json.message.en, /body hash/);
  await nothingKept(t, before, 'wrong body hash');

  const noHeader = await api('POST', '/evidence/files', undefined);
  t.equal(noHeader.status, 401, 'no X-YQ1-Body-Hash');
  t.equal(noHeader.json.code, 'MALFORMED_AUTH');

  const aborted = await upload({ body, abortAfter: MiB });
  t.ok(aborted.aborted || aborted.status === 0, 'the client went away mid-body');
  await nothingKept(t, before, 'aborted upload');

  const bad = await upload({ body: Buffer.from('x'), contentType: 'text/plain' });
  t.equal(bad.status, 415, 'neither octet-stream nor multipart');
  t.equal(bad.json.code, 'UNSUPPORTED_MEDIA_TYPE');
  const meta = await upload({ query: '?colour=blue', body: Buffer.from('x') });
  t.equal(meta.status, 400);
  t.equal(meta.json.code, 'FILE_METADATA_INVALID');
  await nothingKept(t, before, 'bad requests');
});

/** multipart/form-data with a "file" part and optionally a "signature" part (what curl -F sends). */
function multipart(file: Buffer, signature?: Buffer): { body: Buffer; type: string } {
  const boundary = `----yq${randomBytes(8).toString('hex')}`;
  const parts: Buffer[] = [
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="report.xml"\r\nContent-Type: application/xml\r\n\r\n`),
    file,
    Buffer.from('\r\n'),
  ];
  if (signature) parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="signature"\r\n\r\n${signature.toString('base64')}\r\n`));
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), type: `multipart/form-data; boundary=${boundary}` };
}

t.test('a file with a detached CMS from /sign/cms is stored; a CMS over other bytes is 422', async (t) => {
  const file = Buffer.from('<report><patient>ZY2026</patient><result>正常</result></report>\n');
  const signed = await api('POST', '/sign/cms', { key: 'seal-ec', content: file.toString('base64'), detached: true });
  t.equal(signed.status, 200, `sign/cms ${signed.status}`);
  const cms = Buffer.from(signed.json.cms, 'base64');

  const form = multipart(file, cms);
  const ok = await upload({ query: '?documentType=lab-report&mediaType=application%2Fxml&fileName=report.xml', body: form.body, contentType: form.type });
  t.equal(ok.status, 201, JSON.stringify(ok.json).slice(0, 300));
  t.equal(ok.json.record.contentDigest.value, sm3Hex(file), 'the file part, not the form, is the content');
  t.equal(ok.json.record.signature.format, 'cms');
  t.equal(ok.json.record.verification.valid, true);
  t.equal(ok.json.record.verification.code, 'OK');

  const rejectionsBefore = (await api('GET', '/evidence/rejections')).json.items.length;
  const before = await snapshot();
  const other = multipart(Buffer.from('<report><result>异常</result></report>\n'), cms);
  const refused = await upload({ body: other.body, contentType: other.type });
  t.equal(refused.status, 422, 'the signature does not cover these bytes');
  t.equal(refused.json.code, 'CONTENT_ALTERED');
  await nothingKept(t, before, 'a refused detached signature');
  const rejections = await api('GET', '/evidence/rejections');
  t.equal(rejections.json.items.length, rejectionsBefore + 1, 'kept as a rejection for supervision');
  t.equal(rejections.json.items.find((x: any) => x.kind === 'file')?.code, 'CONTENT_ALTERED');
});

t.test('signed download URLs: headers, expiry and tampering → 403', async (t) => {
  const file = Buffer.from('出院小结 discharge summary\n');
  const up = await upload({ query: `?fileName=${encodeURIComponent('出院小结 "2026".txt')}&mediaType=text%2Fplain`, body: file });
  t.equal(up.status, 201);
  const id = up.json.record.id;
  const url = await api('GET', `/evidence/records/${id}/download-url`);
  t.equal(url.status, 200);
  t.match(url.json.path, new RegExp(`^/evidence/download/${id}\\?exp=\\d+&sig=[0-9a-f]{64}$`));
  t.equal(url.headers['cache-control'], 'no-store');
  const dl = await fetchRaw(url.json.url);
  t.equal(dl.status, 200, 'no app signature needed: the URL is the authority');
  t.equal(dl.body, file.toString('utf8'));
  t.equal(dl.headers['x-content-sm3'], sm3Hex(file));
  t.equal(dl.headers['x-evidence-record'], id);
  t.match(String(dl.headers['content-type']), /^text\/plain/);
  t.equal(dl.headers['content-disposition'], `attachment; filename="____ _2026_.txt"; filename*=UTF-8''${encodeURIComponent('出院小结 "2026".txt')}`, 'RFC 6266 ASCII fallback and RFC 8187 UTF-8 name');

  const sig = /sig=([0-9a-f]+)/.exec(url.json.path)![1];
  const flipped = sig.slice(0, -1) + (sig.endsWith('0') ? '1' : '0');
  const tampered = await fetchRaw(url.json.url.replace(sig, flipped));
  t.equal(tampered.status, 403, 'a changed signature');
  t.equal(JSON.parse(tampered.body).code, 'DOWNLOAD_URL_INVALID');
  const exp = /exp=(\d+)/.exec(url.json.path)![1];
  const later = await fetchRaw(url.json.url.replace(`exp=${exp}`, `exp=${Number(exp) + 3600}`));
  t.equal(later.status, 403, 'a moved expiry');
  t.equal(JSON.parse(later.body).code, 'DOWNLOAD_URL_INVALID');
  const otherId = await fetchRaw(url.json.url.replace(id, up.json.record.id.slice(0, -1) + (id.endsWith('0') ? '1' : '0')));
  t.equal(otherId.status, 403, 'another record id under the same signature');

  await sleep(4500); // evidence.downloadUrlSeconds is 3 here (exp is in whole seconds)
  const expired = await fetchRaw(url.json.url);
  t.equal(expired.status, 403, 'after evidence.downloadUrlSeconds');
  t.equal(JSON.parse(expired.body).code, 'DOWNLOAD_URL_EXPIRED');
  const plain = await fetchRaw(`${server!.httpUrl}${url.json.path}`);
  t.not(plain.status, 200, 'not served on the plain-HTTP listener');

  const digest = await api('POST', '/evidence/digests', { digest: { algorithm: 'sm3', value: createHash('sm3').update('x').digest('base64') } });
  const none = await api('GET', `/evidence/records/${digest.json.id}/download-url`);
  t.equal(none.status, 404);
  t.equal(none.json.code, 'ORIGINAL_NOT_STORED', 'a digest-only record has nothing to download');
});

t.test('oversize (evidence.maxFileBytes small) → 413, nothing kept', async (t) => {
  await restart({ maxFileBytes: 64 * 1024 });
  const before = await snapshot();
  const body = randomBytes(256 * 1024);
  const declared = await upload({ body });
  t.equal(declared.status, 413, 'Content-Length over the limit: refused before a byte is read');
  t.equal(declared.json.code, 'BLOB_TOO_LARGE');
  await nothingKept(t, before, 'declared oversize');

  // multipart has no per-file Content-Length: refused while streaming, past the limit.
  const form = multipart(body);
  const streamed = await upload({ body: form.body, contentType: form.type });
  t.equal(streamed.status, 413, 'counted while streaming');
  t.equal(streamed.json.code, 'BLOB_TOO_LARGE');
  await nothingKept(t, before, 'streamed oversize');

  const small = await upload({ body: randomBytes(1000) });
  t.equal(small.status, 201, 'under the limit still stored');
});

t.test('an upload may outlast http.timeoutMs while bytes keep coming; one that stalls is ended (408 UPLOAD_STALLED), nothing kept', async (t) => {
  const file = join(data, 'config.json');
  const original = readFileSync(file, 'utf8');
  const cfg = JSON.parse(original);
  cfg.http = { ...cfg.http, timeoutMs: 1000 };
  writeFileSync(file, JSON.stringify(cfg, null, 2));
  await restart({ maxFileBytes: 200 * MiB });
  try {
    const body = randomBytes(2 * MiB);
    const started = Date.now();
    const slow = await upload({ body, paceMs: 350 });
    t.ok(Date.now() - started > 2000, `the upload took ${Date.now() - started} ms, over the 1 s API deadline`);
    t.equal(slow.status, 201, 'stored: an upload has its own deadline (http.uploadTimeoutMs)');
    t.equal(slow.json.record.contentDigest.value, sm3Hex(body), 'every byte arrived');

    const before = await snapshot();
    const stalled = await upload({ body: randomBytes(2 * MiB), stallAfter: MiB });
    t.equal(stalled.status, 408, 'no byte for http.timeoutMs');
    t.equal(stalled.json.code, 'UPLOAD_STALLED');
    t.match(stalled.json.message.en, /no data for 1000 ms/);
    await nothingKept(t, before, 'stalled upload');
    const api1 = await api('GET', '/whoami');
    t.equal(api1.status, 200, 'the server keeps serving');
  } finally {
    writeFileSync(file, original);
    await restart({});
  }
});
