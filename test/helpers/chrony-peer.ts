// A real chronyd pair for tests (../shared/PEERS.md): a private NTP server (local stratum 5)
// and a client that follows it with an injected `offset` (a clock error chronyd then reports
// in `chronyc tracking`). Both run with -x (never touch the system clock), -u root, in the
// foreground (-n) so that the test holds their process, on free loopback ports, with every
// file (configs, pid, drift, logs, command sockets) under one temporary directory (mode 700).
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stopChild, tempDir, trackChild } from './gpsd-peer.js';

/** A UDP port that was free on 127.0.0.1 a moment ago. */
export function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** `chronyc -h 127.0.0.1 -p PORT -n -c tracking`: the CSV line, or the failure. */
export function chronycTracking(cmdPort: number): Promise<{ ok: boolean; out: string }> {
  return new Promise((resolve) => {
    execFile('chronyc', ['-h', '127.0.0.1', '-p', String(cmdPort), '-n', '-c', 'tracking'], { timeout: 3000, encoding: 'utf8' }, (err, stdout) =>
      resolve({ ok: !err, out: stdout.trim() }),
    );
  });
}

function startChronyd(conf: string, logFile: string): ChildProcess {
  // -x: do not set the clock. -n: stay in the foreground. -u root: files stay ours.
  const p = spawn('chronyd', ['-x', '-n', '-u', 'root', '-f', conf, '-L', '0', '-l', logFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  trackChild(p);
  return p;
}

export interface ChronyPeers {
  dir: string;
  /** The server's NTP port (UDP, 127.0.0.1). */
  serverPort: number;
  /** The client's command port (UDP, 127.0.0.1) for chronyc. */
  cmdPort: number;
  /** The offset (s) the client runs with now. */
  offset: number;
  /** Starts the client with an offset, and waits until it reports a synchronised reference. */
  startClient(offset: number): Promise<string>;
  stopClient(): Promise<void>;
  startServer(): Promise<void>;
  stopServer(): Promise<void>;
  /** Both logs, for failure messages. */
  logs(): string;
  close(): Promise<void>;
}

/**
 * Starts the server and a client with `offset` seconds and waits until the client is
 * synchronised (≈ 1 s with iburst, minpoll -2).
 */
export async function startChronyPeers(offset: number): Promise<ChronyPeers> {
  const dir = tempDir('yq-chrony-');
  chmodSync(dir, 0o700);
  const serverPort = await freeUdpPort();
  const cmdPort = await freeUdpPort();
  const serverConf = join(dir, 'server.conf');
  const clientConf = join(dir, 'client.conf');
  writeFileSync(
    serverConf,
    [
      `port ${serverPort}`,
      'bindaddress 127.0.0.1',
      'allow 127.0.0.1',
      'local stratum 5',
      'cmdport 0',
      `bindcmdaddress ${join(dir, 'server.sock')}`,
      `pidfile ${join(dir, 'server.pid')}`,
      `driftfile ${join(dir, 'server.drift')}`,
      '',
    ].join('\n'),
  );
  const writeClientConf = (off: number): void =>
    writeFileSync(
      clientConf,
      [
        `server 127.0.0.1 port ${serverPort} iburst minpoll -2 maxpoll 0 offset ${off}`,
        'port 0',
        'bindcmdaddress 127.0.0.1',
        `bindcmdaddress ${join(dir, 'client.sock')}`,
        `cmdport ${cmdPort}`,
        'cmdallow 127.0.0.1',
        `pidfile ${join(dir, 'client.pid')}`,
        `driftfile ${join(dir, 'client.drift')}`,
        '',
      ].join('\n'),
    );
  let server: ChildProcess | undefined;
  let client: ChildProcess | undefined;
  let stderr = '';
  const watch = (p: ChildProcess): void => void p.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const running = (p: ChildProcess | undefined): boolean => !!p && p.exitCode === null && p.signalCode === null;
  const logs = (): string =>
    ['server.log', 'client.log'].map((f) => (existsSync(join(dir, f)) ? `--- ${f}\n${readFileSync(join(dir, f), 'utf8')}` : '')).join('\n') + stderr;

  const peers: ChronyPeers = {
    dir,
    serverPort,
    cmdPort,
    offset,
    async startServer() {
      if (running(server)) return;
      server = startChronyd(serverConf, join(dir, 'server.log'));
      watch(server);
    },
    async stopServer() {
      if (server) await stopChild(server);
    },
    async startClient(off: number) {
      if (running(client)) throw new Error('chronyd client already running');
      writeClientConf(off);
      peers.offset = off;
      client = startChronyd(clientConf, join(dir, 'client.log'));
      watch(client);
      const until = Date.now() + 10_000;
      for (;;) {
        const r = await chronycTracking(cmdPort);
        if (r.ok && r.out.endsWith(',Normal') && !r.out.startsWith('00000000')) return r.out;
        if (!running(client)) throw new Error(`chronyd client exited\n${logs()}`);
        if (Date.now() > until) throw new Error(`chronyd client not synchronised after 10 s (${r.out})\n${logs()}`);
        await new Promise((res) => setTimeout(res, 100));
      }
    },
    async stopClient() {
      if (client) await stopChild(client);
    },
    logs,
    async close() {
      await Promise.all([peers.stopClient(), peers.stopServer()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await peers.startServer();
    await peers.startClient(offset);
  } catch (e) {
    await peers.close();
    throw e;
  }
  return peers;
}
