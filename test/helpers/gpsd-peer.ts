// A real gpsd for tests (../shared/PEERS.md): the test serves NMEA over TCP itself and runs
// `gpsd -N -n -b -S PORT -F $T/gpsd.ctl tcp://127.0.0.1:NMEA_PORT` on a free loopback port.
// The feed writes $GPRMC + $GPGGA (correct XOR checksums) once per interval, stamped with the
// current UTC time (plus an injectable offset); it can lose its fix or fall silent. gpsd is
// stopped with SIGTERM; every process started here is killed when the test process exits.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Registers a child so that it is killed even if the test dies before its teardown. */
export function trackChild(c: ChildProcess): void {
  live.add(c);
  c.once('exit', () => live.delete(c));
}

/** A temporary directory that is removed when the test process exits, whatever happens. */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.add(d);
  return d;
}

/** Sends SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
export function stopChild(c: ChildProcess, graceMs = 3000): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => c.kill('SIGKILL'), graceMs);
    c.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    c.kill('SIGTERM');
  });
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** XOR of the bytes between '$' and '*', as two upper-case hex digits (NMEA 0183). */
export function nmeaChecksum(body: string): string {
  let x = 0;
  for (const b of Buffer.from(body, 'ascii')) x ^= b;
  return x.toString(16).toUpperCase().padStart(2, '0');
}

/** `$BODY*CS\r\n`. */
export function nmeaSentence(body: string): string {
  return `$${body}*${nmeaChecksum(body)}\r\n`;
}

const p2 = (n: number): string => String(n).padStart(2, '0');

/** One fix cycle: $GPRMC (status A or V) and $GPGGA (quality 1 or 0) for the given UTC time. */
export function nmeaCycle(at: Date, fix: boolean): string {
  const hms = `${p2(at.getUTCHours())}${p2(at.getUTCMinutes())}${p2(at.getUTCSeconds())}.${p2(Math.floor(at.getUTCMilliseconds() / 10))}`;
  const dmy = `${p2(at.getUTCDate())}${p2(at.getUTCMonth() + 1)}${p2(at.getUTCFullYear() % 100)}`;
  const pos = fix ? '3954.6000,N,11623.4000,E' : ',,,';
  return (
    nmeaSentence(`GPRMC,${hms},${fix ? 'A' : 'V'},${pos},0.0,0.0,${dmy},,,${fix ? 'A' : 'N'}`) +
    nmeaSentence(`GPGGA,${hms},${pos},${fix ? 1 : 0},${fix ? '08' : '00'},${fix ? '0.9' : ''},${fix ? '50.0' : ''},M,-8.0,M,,`)
  );
}

export interface NmeaFeed {
  port: number;
  setFix(fix: boolean): void;
  /** GPS time = system clock + offset (ms): a system clock that is off by −offset. */
  setTimeOffsetMs(ms: number): void;
  /** Stop / start writing (the connection stays open: a receiver that fell silent). */
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

export function startNmeaFeed(opts: { intervalMs?: number } = {}): Promise<NmeaFeed> {
  const clients = new Set<Socket>();
  let fix = true;
  let offsetMs = 0;
  let paused = false;
  const write = (s: Socket): void => {
    if (!paused) s.write(nmeaCycle(new Date(Date.now() + offsetMs), fix));
  };
  const server: Server = createServer((s) => {
    clients.add(s);
    s.on('error', () => undefined);
    s.on('close', () => clients.delete(s));
    write(s);
  });
  const timer = setInterval(() => clients.forEach(write), opts.intervalMs ?? 1000);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      resolve({
        port: (server.address() as { port: number }).port,
        setFix: (f) => void (fix = f),
        setTimeOffsetMs: (ms) => void (offsetMs = ms),
        pause: () => void (paused = true),
        resume: () => void (paused = false),
        close: () =>
          new Promise<void>((r) => {
            clearInterval(timer);
            clients.forEach((c) => c.destroy());
            server.close(() => r());
          }),
      });
    });
  });
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port; rejects after timeoutMs. */
export async function waitForTcp(port: number, timeoutMs: number, alive: () => boolean = () => true): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        r(true);
      });
      s.once('error', () => r(false));
    });
    if (ok) return;
    if (!alive()) throw new Error(`process for port ${port} exited`);
    if (Date.now() > until) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface GpsdPeer {
  /** gpsd's client port on 127.0.0.1. */
  port: number;
  feed: NmeaFeed;
  dir: string;
  /** (Re)starts gpsd on the same port. */
  start(): Promise<void>;
  /** SIGTERM; resolves when gpsd has exited. */
  stop(): Promise<void>;
  /** Stops gpsd and the feed, removes the temporary directory. */
  close(): Promise<void>;
  /** gpsd's stdout + stderr so far (a DBUS error there is harmless). */
  output(): string;
}

export async function startGpsdPeer(opts: { intervalMs?: number } = {}): Promise<GpsdPeer> {
  const dir = tempDir('yq-gpsd-');
  const feed = await startNmeaFeed(opts);
  const port = await freeTcpPort();
  let proc: ChildProcess | undefined;
  let out = '';
  const start = async (): Promise<void> => {
    if (proc && proc.exitCode === null && proc.signalCode === null) return;
    const p = spawn('gpsd', ['-N', '-n', '-b', '-S', String(port), '-F', join(dir, 'gpsd.ctl'), `tcp://127.0.0.1:${feed.port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(p);
    proc = p;
    p.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.stderr!.setEncoding('utf8').on('data', (d: string) => (out += d));
    await waitForTcp(port, 5000, () => p.exitCode === null && p.signalCode === null).catch((e: Error) => {
      p.kill('SIGKILL');
      throw new Error(`gpsd did not start: ${e.message}\n${out}`);
    });
  };
  const stop = async (): Promise<void> => {
    if (proc) await stopChild(proc);
  };
  try {
    await start();
  } catch (e) {
    await feed.close();
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    port,
    feed,
    dir,
    start,
    stop,
    output: () => out,
    async close() {
      await stop();
      await feed.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
