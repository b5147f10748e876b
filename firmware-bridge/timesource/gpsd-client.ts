// A gpsd client over its JSON protocol (gpsd_json(5), protocol 3.x): connect, send
// `?WATCH={"enable":true,"json":true,"pps":true}` and read one JSON object per line.
// Used here: TPV (fix mode, time, ept), PPS (GPS time vs system clock at the pulse edge, when
// the receiver has a PPS line) and TOFF (the same for the serial time stream). gpsd sends
// PPS/TOFF only to watchers that ask for "pps":true. Every other class is ignored.
//
// When gpsd goes away the client reconnects by itself, with a backoff that doubles from
// `initialMs` to `maxMs` and goes back to `initialMs` once a connection delivers a message.
import { Socket } from 'node:net';
import { type Clocks, systemClocks } from './time-source.js';

export const GPSD_WATCH = '?WATCH={"enable":true,"json":true,"pps":true}\n';

export type GpsdMessage =
  | { class: 'TPV'; device: string | null; mode: number; time: string | null; timeMs: number | null; ept: number | null }
  | {
      class: 'PPS' | 'TOFF';
      device: string | null;
      /** (real − clock) in ms: GPS time minus system clock at the same instant. */
      offsetMs: number;
      realSec: number;
      realNsec: number;
      clockSec: number;
      clockNsec: number;
      /** NTP-style precision (log2 seconds), PPS only. */
      precision: number | null;
    }
  | { class: 'VERSION'; release: string; protoMajor: number; protoMinor: number }
  | { class: 'ERROR'; message: string }
  | { class: 'OTHER'; name: string };

/**
 * gpsd's UTC time "2026-11-23T02:22:01.950Z" (fraction optional, up to ns) → ms since the
 * epoch, keeping sub-millisecond digits; undefined when it is not such a time.
 */
export function parseGpsdTime(s: string): number | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z$/.exec(s);
  if (!m) return undefined;
  const [y, mo, d, h, mi, sec] = m.slice(1, 7).map(Number);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return undefined;
  const whole = Date.UTC(y, mo - 1, d, h, mi, sec);
  if (!Number.isFinite(whole)) return undefined;
  const frac = m[7] ? Number(`0.${m[7]}`) * 1000 : 0;
  return whole + frac;
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** One line from gpsd → a typed message; throws an Error with a one-line reason. */
export function parseGpsdMessage(line: string): GpsdMessage {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch {
    throw new Error(`gpsd sent a line that is not JSON: ${line.slice(0, 80)}`);
  }
  if (typeof o !== 'object' || o === null || typeof (o as { class?: unknown }).class !== 'string') {
    throw new Error(`gpsd sent an object without a class: ${line.slice(0, 80)}`);
  }
  const m = o as Record<string, unknown>;
  const device = typeof m.device === 'string' ? m.device : null;
  switch (m.class) {
    case 'TPV': {
      const mode = Number.isInteger(m.mode) && (m.mode as number) >= 0 && (m.mode as number) <= 3 ? (m.mode as number) : 0;
      const time = typeof m.time === 'string' ? m.time : null;
      const timeMs = time === null ? null : parseGpsdTime(time) ?? null;
      return { class: 'TPV', device, mode, time: timeMs === null ? null : time, timeMs, ept: finite(m.ept) && m.ept >= 0 ? m.ept : null };
    }
    case 'PPS':
    case 'TOFF': {
      const { real_sec: rs, real_nsec: rn, clock_sec: cs, clock_nsec: cn } = m;
      if (!finite(rs) || !finite(rn) || !finite(cs) || !finite(cn)) throw new Error(`gpsd ${m.class} without real/clock times: ${line.slice(0, 80)}`);
      return {
        class: m.class,
        device,
        offsetMs: (rs - cs) * 1000 + (rn - cn) / 1e6,
        realSec: rs,
        realNsec: rn,
        clockSec: cs,
        clockNsec: cn,
        precision: m.class === 'PPS' && finite(m.precision) ? m.precision : null,
      };
    }
    case 'VERSION':
      return { class: 'VERSION', release: String(m.release ?? ''), protoMajor: Number(m.proto_major ?? 0), protoMinor: Number(m.proto_minor ?? 0) };
    case 'ERROR':
      return { class: 'ERROR', message: String(m.message ?? '') };
    default:
      return { class: 'OTHER', name: m.class as string };
  }
}

export interface GpsdClientOptions {
  host: string;
  port: number;
  /** Every parsed message, with the wall and monotonic time its line arrived. */
  onMessage(m: GpsdMessage, atWall: number, atMono: number): void;
  /** Connection up (after the WATCH was sent) or down, with the reason it went down. */
  onConnection?(connected: boolean, error?: string): void;
  /** A line that could not be used (not JSON, bad PPS); the connection stays. */
  onProtocolError?(message: string): void;
  backoff?: { initialMs?: number; maxMs?: number };
  /** A connect that takes longer is abandoned (default 3000 ms). */
  connectTimeoutMs?: number;
  clocks?: Clocks;
}

/** Longest line accepted; gpsd's largest reports (SKY with many satellites) are a few KB. */
const MAX_LINE = 256 * 1024;

export class GpsdClient {
  private readonly o: GpsdClientOptions;
  private readonly clocks: Clocks;
  private socket: Socket | undefined;
  private retry: NodeJS.Timeout | undefined;
  private delay: number;
  private closed = false;
  private started = false;
  private up = false;

  constructor(opts: GpsdClientOptions) {
    this.o = opts;
    this.clocks = opts.clocks ?? systemClocks;
    this.delay = opts.backoff?.initialMs ?? 250;
  }

  get endpoint(): string {
    return `${this.o.host.includes(':') ? `[${this.o.host}]` : this.o.host}:${this.o.port}`;
  }

  get connected(): boolean {
    return this.up;
  }

  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.connect();
  }

  private connect(): void {
    this.retry = undefined;
    if (this.closed) return;
    const s = new Socket();
    this.socket = s;
    let buf = '';
    let gotMessage = false;
    let downReason: string | undefined;
    s.setEncoding('utf8');
    s.setNoDelay(true);
    s.setTimeout(this.o.connectTimeoutMs ?? 3000, () => {
      downReason = `connect to gpsd ${this.endpoint} timed out`;
      s.destroy();
    });
    s.on('connect', () => {
      s.setTimeout(0);
      s.write(GPSD_WATCH);
      this.up = true;
      this.o.onConnection?.(true);
    });
    s.on('data', (chunk: string) => {
      const atMono = this.clocks.mono();
      const atWall = this.clocks.wall();
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        let m: GpsdMessage;
        try {
          m = parseGpsdMessage(line);
        } catch (e) {
          this.o.onProtocolError?.((e as Error).message);
          continue;
        }
        if (!gotMessage) {
          gotMessage = true;
          this.delay = this.o.backoff?.initialMs ?? 250;
        }
        if (m.class === 'VERSION' && m.protoMajor !== 3) this.o.onProtocolError?.(`gpsd protocol ${m.protoMajor}.${m.protoMinor} is not 3.x`);
        this.o.onMessage(m, atWall, atMono);
      }
      if (buf.length > MAX_LINE) {
        downReason = `gpsd ${this.endpoint} sent a line longer than ${MAX_LINE} bytes`;
        s.destroy();
      }
    });
    s.on('error', (e: NodeJS.ErrnoException) => {
      downReason ??= `gpsd ${this.endpoint}: ${e.code ?? e.message}`;
    });
    s.on('close', () => {
      if (this.socket === s) this.socket = undefined;
      const wasUp = this.up;
      this.up = false;
      if (this.closed) return;
      const reason = downReason ?? `gpsd ${this.endpoint} closed the connection`;
      if (wasUp || downReason) this.o.onConnection?.(false, reason);
      const wait = this.delay;
      this.delay = Math.min(this.delay * 2, this.o.backoff?.maxMs ?? 2000);
      this.retry = setTimeout(() => this.connect(), wait);
      this.retry.unref();
    });
    s.connect(this.o.port, this.o.host);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    const s = this.socket;
    this.up = false;
    if (s && !s.destroyed) {
      await new Promise<void>((r) => {
        s.once('close', () => r());
        s.destroy();
      });
    }
  }
}
