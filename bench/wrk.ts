// HTTP load from wrk (Debian's `wrk`, C + LuaJIT, one thread) instead of a Node client: on this
// 2-core machine the load generator shares the cores with the server, and a Node HTTPS client
// costs about as much CPU per request as the server does, which would hide the server's rate.
// Per-request Authorization values (YQ1 headers, each with its own nonce) are signed before the
// run and read from a file by the Lua script; every answer must have the expected status (200)
// and contain `expect`, else it is counted as bad.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface WrkLoad {
  url: string;
  method?: 'POST' | 'GET';
  contentType?: string;
  body?: Buffer;
  /** One Authorization value per request, used once each; none → no Authorization header. */
  auths?: string[];
  /** The status every answer must have; default 200. */
  okStatus?: number;
  /** Bytes every answer must contain (e.g. '"valid":true', or the DER of PKIStatus granted). */
  expect?: string | Buffer;
  seconds: number;
  connections: number;
}

export interface WrkResult {
  requestsPerSec: number;
  requests: number;
  p50Ms: number;
  p99Ms: number;
  /** Answers without the expected status or `expect`, plus socket errors and timeouts. */
  bad: number;
  /** wrk's own CPU per request over the whole run (it shares the machine), µs; NaN if unknown. */
  cpuMicrosPerRequest: number;
}

// One thread: the whole load generator then costs at most one core, usually far less.
const SCRIPT = String.raw`
-- Each wrk thread runs its own Lua state: request() and response() count in that state's global
-- "bad", and done() (in the main state) collects it from the threads kept by setup().
local threads = {}
function setup(thread) table.insert(threads, thread) end
bad = 0
local auths, n, idx, expect, fixed, ctype, okStatus = {}, 0, 0, "", nil, nil, 200
function init(args)
  local method, path, bodyFile, authFile = args[1], args[2], args[4], args[5]
  ctype = args[3]
  okStatus = tonumber(args[7] or "200")
  expect = (args[6] or ""):gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
  local f = io.open(bodyFile, "rb"); local body = f:read("*a"); f:close()
  wrk.method, wrk.path, wrk.body = method, path, body
  wrk.headers["Content-Type"] = ctype
  if authFile ~= "" then
    for line in io.lines(authFile) do n = n + 1; auths[n] = line end
  else
    fixed = wrk.format()
  end
end
function request()
  if fixed then return fixed end
  idx = idx + 1
  if idx > n then idx = 1; bad = bad + 1 end  -- ran out: a replayed nonce, counted as bad
  -- wrk.format replaces wrk.headers with the table it is given (keeping only Host)
  return wrk.format(nil, nil, { ["Content-Type"] = ctype, Authorization = auths[idx] })
end
function response(status, headers, body)
  if status ~= okStatus or (expect ~= "" and not string.find(body, expect, 1, true)) then bad = bad + 1 end
end
function done(summary, latency, requests)
  local e, b = summary.errors, 0
  for _, t in ipairs(threads) do b = b + (t:get("bad") or 0) end
  io.write(string.format("YQ-WRK %d %d %.3f %.3f %d\n", summary.requests, summary.duration,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    b + e.connect + e.read + e.write + e.timeout))
  -- wrk's own CPU (all its threads, proc(5) fields 14 and 15, clock ticks): it shares the cores.
  local f = io.open("/proc/self/stat", "r")
  if f then
    local stat = f:read("*a"); f:close()
    local rest = stat:match("%) (.*)")
    local fields = {}
    for x in rest:gmatch("%S+") do fields[#fields + 1] = x end
    io.write(string.format("YQ-WRK-CPU %s %s\n", fields[12], fields[13]))
  end
end
`;

function run(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('wrk', args, { maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`wrk failed (is Debian's wrk installed? make deps installs it): ${err.message} ${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Runs `load` for load.seconds at load.connections; the Authorization values are used in order. */
export async function wrk(load: WrkLoad): Promise<WrkResult> {
  const dir = mkdtempSync(join(tmpdir(), 'yq-wrk-'));
  try {
    const script = join(dir, 'load.lua');
    const bodyFile = join(dir, 'body');
    const authFile = load.auths?.length ? join(dir, 'auths') : '';
    writeFileSync(script, SCRIPT);
    writeFileSync(bodyFile, load.body ?? Buffer.alloc(0));
    if (authFile) writeFileSync(authFile, load.auths!.join('\n') + '\n');
    const u = new URL(load.url);
    const out = await run([
      '-t1', `-c${load.connections}`, `-d${load.seconds}s`, '--timeout', '10s', '-s', script,
      `${u.protocol}//${u.host}`, '--',
      load.method ?? 'POST', u.pathname + u.search, load.contentType ?? 'application/json', bodyFile, authFile,
      Buffer.from(load.expect ?? '').toString('hex'), // hex: an argument cannot carry DER's zero bytes
      String(load.okStatus ?? 200),
    ]);
    const m = /YQ-WRK (\d+) (\d+) ([\d.]+) ([\d.]+) (\d+)/.exec(out);
    if (!m) throw new Error(`wrk printed no result: ${out}`);
    const requests = Number(m[1]);
    const cpu = /YQ-WRK-CPU (\d+) (\d+)/.exec(out);
    // Clock ticks of USER_HZ (100 on Linux) → µs.
    const cpuMicrosPerRequest = cpu ? ((Number(cpu[1]) + Number(cpu[2])) * 10_000) / requests : NaN;
    return { requests, requestsPerSec: requests / (Number(m[2]) / 1e6), p50Ms: Number(m[3]), p99Ms: Number(m[4]), bad: Number(m[5]), cpuMicrosPerRequest };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
