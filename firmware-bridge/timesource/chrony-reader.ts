// chronyd's tracking report, read with `chronyc -h HOST -p PORT -n -c tracking` on an interval.
// `-c` gives one CSV line (chrony 4.x, the fields of `chronyc tracking` in order):
//   0 reference id (hex)       1 reference name/address   2 stratum
//   3 ref time (epoch seconds) 4 system time offset (s; positive = system clock slow)
//   5 last offset (s)          6 RMS offset (s)           7 frequency (ppm)
//   8 residual frequency (ppm) 9 skew (ppm)              10 root delay (s)
//  11 root dispersion (s)     12 update interval (s)     13 leap status
// `-n` keeps chronyc from resolving names (an offline appliance must not wait on DNS).
// Each reading is stamped with the wall and monotonic time it was taken; a failed run is
// reported as an error and leaves the last good reading to age (clock-state.ts judges it).
import { execFile } from 'node:child_process';
import { type Clocks, systemClocks } from './time-source.js';

export interface ChronyTracking {
  refId: string;
  refName: string;
  stratum: number;
  /** chronyd's last reference update, seconds since the epoch (0 when never synchronised). */
  refTime: number;
  /** Reference − system clock, seconds (chronyc: "System time … slow/fast of NTP time"). */
  systemTimeOffset: number;
  lastOffset: number;
  rmsOffset: number;
  frequencyPpm: number;
  residualFrequencyPpm: number;
  skewPpm: number;
  rootDelay: number;
  /** Grows with the time since the last update (chronyd adds skew × elapsed). */
  rootDispersion: number;
  updateInterval: number;
  leap: string;
}

export const LEAP_STATUSES = ['Normal', 'Insert second', 'Delete second', 'Not synchronised'] as const;

/** Parses the first line of `chronyc -c tracking`; throws an Error with a one-line reason. */
export function parseChronyTracking(output: string): ChronyTracking {
  const line = output.split('\n').find((l) => l.trim().length > 0)?.trim() ?? '';
  const f = line.split(',');
  if (f.length !== 14) throw new Error(`chronyc tracking: expected 14 CSV fields, got ${f.length}: ${line.slice(0, 120)}`);
  const num = (i: number, name: string): number => {
    const s = f[i];
    if (!/^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`chronyc tracking: ${name} is not a number: ${s.slice(0, 40)}`);
    return Number(s);
  };
  if (!/^[0-9A-Fa-f]{8}$/.test(f[0])) throw new Error(`chronyc tracking: reference id is not 8 hex digits: ${f[0].slice(0, 40)}`);
  const leap = f[13];
  if (!(LEAP_STATUSES as readonly string[]).includes(leap)) throw new Error(`chronyc tracking: unknown leap status: ${leap.slice(0, 40)}`);
  const stratum = num(2, 'stratum');
  if (!Number.isInteger(stratum) || stratum < 0 || stratum > 16) throw new Error(`chronyc tracking: stratum out of range: ${f[2]}`);
  return {
    refId: f[0].toUpperCase(),
    refName: f[1],
    stratum,
    refTime: num(3, 'ref time'),
    systemTimeOffset: num(4, 'system time offset'),
    lastOffset: num(5, 'last offset'),
    rmsOffset: num(6, 'RMS offset'),
    frequencyPpm: num(7, 'frequency'),
    residualFrequencyPpm: num(8, 'residual frequency'),
    skewPpm: num(9, 'skew'),
    rootDelay: num(10, 'root delay'),
    rootDispersion: num(11, 'root dispersion'),
    updateInterval: num(12, 'update interval'),
    leap,
  };
}

export interface ChronyReading {
  /** Wall clock (ms) and monotonic clock (ms) when chronyc answered. */
  atWall: number;
  atMono: number;
  tracking: ChronyTracking;
}

export interface ChronyReaderOptions {
  host: string;
  port: number;
  pollMs: number;
  chronyc?: string;
  /** A chronyc run that takes longer is killed and counts as a failure (default min(pollMs, 3000)). */
  timeoutMs?: number;
  onReading(r: ChronyReading): void;
  onError(message: string, atMono: number): void;
  clocks?: Clocks;
}

/** Polls chronyd; one chronyc at a time, never overlapping. */
export class ChronyReader {
  private readonly o: ChronyReaderOptions;
  private readonly clocks: Clocks;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private wake: (() => void) | undefined;
  private loopDone: Promise<void> | undefined;

  constructor(opts: ChronyReaderOptions) {
    this.o = opts;
    this.clocks = opts.clocks ?? systemClocks;
  }

  get endpoint(): string {
    return `${this.o.host.includes(':') ? `[${this.o.host}]` : this.o.host}:${this.o.port}`;
  }

  /** One chronyc run. Rejects with a one-line Error. */
  readOnce(): Promise<ChronyReading> {
    const args = ['-h', this.o.host, '-p', String(this.o.port), '-n', '-c', 'tracking'];
    const timeout = this.o.timeoutMs ?? Math.min(this.o.pollMs, 3000);
    return new Promise((resolve, reject) => {
      execFile(this.o.chronyc ?? 'chronyc', args, { timeout, killSignal: 'SIGKILL', encoding: 'utf8', maxBuffer: 64 * 1024 }, (err, stdout, stderr) => {
        const atMono = this.clocks.mono();
        const atWall = this.clocks.wall();
        if (err) {
          const said = `${stdout}\n${stderr}`.split('\n').map((l) => l.trim()).find((l) => l.length > 0);
          const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? `${this.o.chronyc ?? 'chronyc'} not found` : err.killed ? `no answer within ${timeout} ms` : (said ?? err.message);
          reject(new Error(`chronyc ${this.endpoint}: ${why.slice(0, 200)}`));
          return;
        }
        try {
          resolve({ atWall, atMono, tracking: parseChronyTracking(stdout) });
        } catch (e) {
          reject(e as Error);
        }
      });
    });
  }

  start(): void {
    if (this.loopDone || this.closed) return;
    this.loopDone = this.loop();
  }

  private async loop(): Promise<void> {
    while (!this.closed) {
      const started = this.clocks.mono();
      try {
        const r = await this.readOnce();
        if (!this.closed) this.o.onReading(r);
      } catch (e) {
        if (!this.closed) this.o.onError((e as Error).message, this.clocks.mono());
      }
      if (this.closed) break;
      const wait = Math.max(0, this.o.pollMs - (this.clocks.mono() - started));
      await new Promise<void>((r) => {
        this.wake = r;
        this.timer = setTimeout(r, wait);
        this.timer.unref();
      });
    }
  }

  /** Stops polling; resolves after a running chronyc has finished. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
    await this.loopDone;
  }
}
