// The clock state: SYNCED | DEGRADED | UNSYNCED from the gpsd and chrony inputs and the
// configured bounds. `evaluateClock` is a pure function of (inputs, bounds, now); the
// ClockMonitor holds the latest inputs, re-evaluates on every input and on a timer (so a
// source that goes silent turns UNSYNCED within maxAgeMs + tickMs), reports state changes
// and clock steps, and answers now(). The rules are in docs/timesource.md; in short:
//
// - an input is GOOD when its last reading is younger than maxAgeMs, says it is synchronised
//   (GPS: TPV mode ≥ minMode with a time; chrony: leap status not "Not synchronised", stratum
//   1..15, reference updated within maxRefAgeMs) and its error bound is ≤ maxOffsetMs;
// - error bound, ms:  chrony  |offset| + root dispersion + root delay / 2
//                     GPS     |offset| + 2^precision                        with a fresh PPS
//                             max(|offset|, |offset + serialLatencyMs|) + ept  otherwise
//                             (TOFF, else TPV: serial time arrives up to serialLatencyMs late,
//                             so the measured offset is −latency − clock error)
// - UNSYNCED when chrony is configured and not good, when GPS is required (requireFix) and not
//   good, when a fresh GPS fix disagrees with the system clock by more than maxOffsetMs, or
//   when no input is good;
// - DEGRADED when an optional GPS (requireFix false) is not good, or when the accuracy (the
//   largest error bound of the good inputs) is above degradedOffsetMs;
// - SYNCED otherwise. The accuracy is that largest error bound.
import type { ChronyReading } from './chrony-reader.js';
import type { GpsdMessage } from './gpsd-client.js';
import {
  type ChronyInputStatus,
  type ClockBounds,
  type ClockEvent,
  type ClockState,
  type ClockStatus,
  type ClockStepInfo,
  type Clocks,
  type GpsInputStatus,
  type TimeReading,
  type TimeSource,
  systemClocks,
} from './time-source.js';

export interface GpsSettings {
  endpoint: string;
  requireFix: boolean;
  minMode: 2 | 3;
  serialLatencyMs: number;
}

/** What the monitor knows about gpsd. All `atMono` are monotonic ms. */
export interface GpsInputs {
  settings: GpsSettings;
  connected: boolean;
  lastTpv: { mode: number; time: string | null; timeMs: number | null; ept: number | null; atWall: number; atMono: number } | null;
  lastPps: { offsetMs: number; precision: number | null; atMono: number } | null;
  lastToff: { offsetMs: number; atMono: number } | null;
  lastError: string | null;
}

export interface ChronyInputs {
  endpoint: string;
  last: ChronyReading | null;
  lastError: { message: string; atMono: number } | null;
}

export interface ClockInputs {
  gps?: GpsInputs;
  chrony?: ChronyInputs;
}

export interface ClockEvaluation {
  state: ClockState;
  /** Largest error bound of the good inputs, µs (rounded up); null when none is good. */
  accuracyMicros: number | null;
  reasons: string[];
  source: string;
  gps?: GpsInputStatus;
  chrony?: ChronyInputStatus;
}

const ms1 = (v: number): string => `${Math.round(v * 10) / 10} ms`;
const s1 = (v: number): string => `${Math.round(v / 100) / 10} s`;
const iso = (wall: number): string => new Date(wall).toISOString();

/** The GPS offset to trust now: a fresh PPS, else a fresh TOFF, else the last TPV with a time. */
export function gpsOffset(g: GpsInputs, bounds: ClockBounds, now: number): { offsetMs: number; from: 'pps' | 'toff' | 'tpv'; errorMs: number } | null {
  const fresh = (at: number): boolean => now - at <= bounds.maxAgeMs;
  const eptMs = (g.lastTpv?.ept ?? 0) * 1000;
  if (g.lastPps && fresh(g.lastPps.atMono)) {
    const precisionMs = g.lastPps.precision === null ? 0.001 : 2 ** g.lastPps.precision * 1000;
    return { offsetMs: g.lastPps.offsetMs, from: 'pps', errorMs: Math.abs(g.lastPps.offsetMs) + precisionMs };
  }
  if (g.lastToff && fresh(g.lastToff.atMono)) {
    return { offsetMs: g.lastToff.offsetMs, from: 'toff', errorMs: serialErrorMs(g.lastToff.offsetMs, g.settings.serialLatencyMs) + eptMs };
  }
  const t = g.lastTpv;
  if (t && t.timeMs !== null) {
    const offsetMs = t.timeMs - t.atWall;
    return { offsetMs, from: 'tpv', errorMs: serialErrorMs(offsetMs, g.settings.serialLatencyMs) + eptMs };
  }
  return null;
}

/**
 * Error bound of serial (NMEA) time. The measured offset m = GPS label − system clock at
 * arrival = −latency − e, where e is the clock error (positive: fast) and the latency is in
 * [0, L]; so e ∈ [−m − L, −m] and |e| ≤ max(|m|, |m + L|).
 */
export function serialErrorMs(offsetMs: number, latencyMs: number): number {
  return Math.max(Math.abs(offsetMs), Math.abs(offsetMs + latencyMs));
}

interface Judged<S> {
  status: S;
  /** Problems that make the state UNSYNCED. */
  fatal: string[];
  /** Problems that make it DEGRADED at worst. */
  soft: string[];
}

function judgeGps(g: GpsInputs, b: ClockBounds, now: number): Judged<GpsInputStatus> {
  const t = g.lastTpv;
  const age = t ? now - t.atMono : null;
  const fresh = age !== null && age <= b.maxAgeMs;
  const hasFix = !!t && t.mode >= g.settings.minMode && t.timeMs !== null;
  const off = gpsOffset(g, b, now);
  const conn = g.connected ? '' : `; gpsd not connected${g.lastError ? ` (${g.lastError})` : ''}`;
  const problems: string[] = [];
  const fatal: string[] = [];
  if (!t) problems.push(`gps: no report from gpsd ${g.settings.endpoint} yet${conn}`);
  else if (!fresh) problems.push(`gps: last report ${s1(age!)} ago (bound ${s1(b.maxAgeMs)})${conn}`);
  else if (!hasFix) problems.push(`gps: no fix (mode ${t.mode}, need ${g.settings.minMode})`);
  else if (off && off.errorMs > b.maxOffsetMs) {
    // A fresh fix that disagrees with the system clock is never just "degraded": one of them is wrong.
    fatal.push(`gps: system clock differs from GPS (${off.from}) by ${ms1(off.offsetMs)}; error ${ms1(off.errorMs)} exceeds bound ${b.maxOffsetMs} ms`);
  }
  const good = fresh && hasFix && !!off && off.errorMs <= b.maxOffsetMs;
  if (g.settings.requireFix) fatal.push(...problems);
  const ppsFresh = !!g.lastPps && now - g.lastPps.atMono <= b.maxAgeMs;
  return {
    status: {
      endpoint: g.settings.endpoint,
      connected: g.connected,
      mode: t ? t.mode : null,
      time: t?.time ?? null,
      receivedAt: t ? iso(t.atWall) : null,
      ageMs: age === null ? null : Math.round(age),
      offsetMs: off ? off.offsetMs : null,
      offsetFrom: off ? off.from : null,
      errorMs: good && off ? off.errorMs : null,
      pps: ppsFresh,
      lastError: g.lastError,
      good,
    },
    fatal,
    soft: g.settings.requireFix ? [] : problems,
  };
}

export function chronyErrorMs(r: ChronyReading): number {
  const t = r.tracking;
  return (Math.abs(t.systemTimeOffset) + t.rootDispersion + t.rootDelay / 2) * 1000;
}

function judgeChrony(c: ChronyInputs, b: ClockBounds, now: number): Judged<ChronyInputStatus> {
  const r = c.last;
  const t = r?.tracking;
  const age = r ? now - r.atMono : null;
  // chronyd keeps its reference time on its corrected timescale (system clock + offset).
  const refAge = r && t && t.refTime > 0 ? Math.max(0, r.atWall + t.systemTimeOffset * 1000 - t.refTime * 1000 + (now - r.atMono)) : null;
  const err = r ? chronyErrorMs(r) : null;
  const why = c.lastError && (!r || c.lastError.atMono > r.atMono) ? `: ${c.lastError.message}` : '';
  const fatal: string[] = [];
  if (!r || !t) fatal.push(`chrony: no reading from chronyd ${c.endpoint} yet${why}`);
  else if (age! > b.maxAgeMs) fatal.push(`chrony: last reading ${s1(age!)} ago (bound ${s1(b.maxAgeMs)})${why}`);
  else if (t.leap === 'Not synchronised' || t.stratum < 1 || t.stratum > 15) fatal.push(`chrony: chronyd is not synchronised (leap status ${t.leap}, stratum ${t.stratum})`);
  else if (refAge === null || refAge > b.maxRefAgeMs) fatal.push(`chrony: last reference update ${refAge === null ? 'never' : `${s1(refAge)} ago`} (bound ${s1(b.maxRefAgeMs)})`);
  else if (err! > b.maxOffsetMs) {
    fatal.push(`chrony: offset ${ms1(t.systemTimeOffset * 1000)} (error ${ms1(err!)} with dispersion and delay) exceeds bound ${b.maxOffsetMs} ms`);
  }
  const good = fatal.length === 0;
  return {
    status: {
      endpoint: c.endpoint,
      refId: t ? t.refId : null,
      refName: t ? t.refName : null,
      stratum: t ? t.stratum : null,
      leap: t ? t.leap : null,
      offsetMs: t ? t.systemTimeOffset * 1000 : null,
      rootDelayMs: t ? t.rootDelay * 1000 : null,
      rootDispersionMs: t ? t.rootDispersion * 1000 : null,
      lastUpdate: t && t.refTime > 0 ? iso(t.refTime * 1000) : null,
      refAgeMs: refAge === null ? null : Math.round(refAge),
      readAt: r ? iso(r.atWall) : null,
      ageMs: age === null ? null : Math.round(age),
      errorMs: good ? err : null,
      lastError: c.lastError?.message ?? null,
      good,
    },
    fatal,
    soft: [],
  };
}

export function sourceName(inputs: ClockInputs): string {
  return [inputs.gps ? 'gpsd' : '', inputs.chrony ? 'chrony' : ''].filter(Boolean).join('+') || 'none';
}

/** The clock state now (monotonic ms), from the inputs and the bounds. Pure. */
export function evaluateClock(inputs: ClockInputs, bounds: ClockBounds, now: number): ClockEvaluation {
  const fatal: string[] = [];
  const soft: string[] = [];
  const errors: number[] = [];
  const out: Omit<ClockEvaluation, 'state' | 'accuracyMicros' | 'reasons'> = { source: sourceName(inputs) };
  if (inputs.chrony) {
    const j = judgeChrony(inputs.chrony, bounds, now);
    out.chrony = j.status;
    fatal.push(...j.fatal);
    if (j.status.good) errors.push(j.status.errorMs!);
  }
  if (inputs.gps) {
    const j = judgeGps(inputs.gps, bounds, now);
    out.gps = j.status;
    fatal.push(...j.fatal);
    soft.push(...j.soft);
    if (j.status.good) errors.push(j.status.errorMs!);
  }
  if (!inputs.gps && !inputs.chrony) fatal.push('no time input configured');
  else if (errors.length === 0 && fatal.length === 0) fatal.push('no time input is usable');
  const accuracyMs = errors.length ? Math.max(...errors) : null;
  const accuracyMicros = accuracyMs === null ? null : Math.max(1, Math.ceil(accuracyMs * 1000));
  if (fatal.length) return { ...out, state: 'UNSYNCED', accuracyMicros: null, reasons: [...fatal, ...soft] };
  if (accuracyMs! > bounds.degradedOffsetMs) soft.push(`accuracy ${ms1(accuracyMs!)} is worse than ${bounds.degradedOffsetMs} ms`);
  return { ...out, state: soft.length ? 'DEGRADED' : 'SYNCED', accuracyMicros, reasons: soft };
}

// ---- step detection -------------------------------------------------------------------

/** Clock steps of at least this many seconds are reported (GB/T 20520 accuracy: 1 s). */
export const STEP_THRESHOLD_SECONDS = 1;

/**
 * A step of the system clock against the monotonic clock between two samples: how much the
 * wall clock moved beyond the time that passed (ms, signed). Slewing (≤ 0.5 ms/s in chronyd's
 * default, 83 ms/s at most) stays far below a second between two ticks.
 */
export function wallStepMs(prev: { wall: number; mono: number }, cur: { wall: number; mono: number }): number {
  return cur.wall - prev.wall - (cur.mono - prev.mono);
}

export interface ClockMonitorOptions {
  bounds: ClockBounds;
  gps?: GpsSettings;
  chrony?: { endpoint: string };
  /** Re-evaluation and wall-clock step check interval (default 250 ms). */
  tickMs?: number;
  stepThresholdSeconds?: number;
  onEvent?: (e: ClockEvent) => void;
  clocks?: Clocks;
}

/** The live clock: holds the inputs, re-evaluates, reports changes, answers now(). */
export class ClockMonitor implements TimeSource {
  private readonly o: ClockMonitorOptions;
  private readonly clocks: Clocks;
  private readonly inputs: ClockInputs;
  private current: ClockState = 'UNSYNCED';
  private sinceWall: number;
  private timer: NodeJS.Timeout | undefined;
  private lastTick: { wall: number; mono: number };
  private steps = 0;
  private lastStep: ClockStepInfo | null = null;
  private prevChronyOffset: number | null = null;
  private prevGpsOffset: { from: string; offsetMs: number } | null = null;

  constructor(opts: ClockMonitorOptions) {
    this.o = opts;
    this.clocks = opts.clocks ?? systemClocks;
    this.inputs = {
      ...(opts.gps ? { gps: { settings: opts.gps, connected: false, lastTpv: null, lastPps: null, lastToff: null, lastError: null } } : {}),
      ...(opts.chrony ? { chrony: { endpoint: opts.chrony.endpoint, last: null, lastError: null } } : {}),
    };
    this.sinceWall = this.clocks.wall();
    this.lastTick = { wall: this.sinceWall, mono: this.clocks.mono() };
  }

  get bounds(): ClockBounds {
    return this.o.bounds;
  }

  // ---- inputs ----

  gpsConnection(connected: boolean, error?: string): void {
    const g = this.inputs.gps;
    if (!g) return;
    g.connected = connected;
    g.lastError = connected ? null : error ?? 'disconnected';
    this.evaluate();
  }

  gpsMessage(m: GpsdMessage, atWall: number, atMono: number): void {
    const g = this.inputs.gps;
    if (!g) return;
    if (m.class === 'TPV') g.lastTpv = { mode: m.mode, time: m.time, timeMs: m.timeMs, ept: m.ept, atWall, atMono };
    else if (m.class === 'PPS') g.lastPps = { offsetMs: m.offsetMs, precision: m.precision, atMono };
    else if (m.class === 'TOFF') g.lastToff = { offsetMs: m.offsetMs, atMono };
    else if (m.class === 'ERROR') g.lastError = `gpsd: ${m.message}`;
    else return;
    if (m.class !== 'ERROR') this.checkGpsStep(g, atMono);
    this.evaluate();
  }

  chronyReading(r: ChronyReading): void {
    const c = this.inputs.chrony;
    if (!c) return;
    c.last = r;
    const t = r.tracking;
    if (t.leap !== 'Not synchronised' && t.stratum >= 1) {
      if (this.prevChronyOffset !== null) {
        const step = t.systemTimeOffset - this.prevChronyOffset;
        if (Math.abs(step) >= this.threshold()) {
          this.step('chrony', step, `chronyd's offset moved from ${ms1(this.prevChronyOffset * 1000)} to ${ms1(t.systemTimeOffset * 1000)}`, r.atWall);
        }
      }
      this.prevChronyOffset = t.systemTimeOffset;
    }
    this.evaluate();
  }

  chronyError(message: string, atMono: number): void {
    const c = this.inputs.chrony;
    if (!c) return;
    c.lastError = { message, atMono };
    this.evaluate();
  }

  // ---- evaluation ----

  private threshold(): number {
    return this.o.stepThresholdSeconds ?? STEP_THRESHOLD_SECONDS;
  }

  private checkGpsStep(g: GpsInputs, atMono: number): void {
    if (!g.lastTpv || g.lastTpv.mode < g.settings.minMode) return;
    const off = gpsOffset(g, this.o.bounds, atMono);
    if (!off) return;
    const prev = this.prevGpsOffset;
    this.prevGpsOffset = { from: off.from, offsetMs: off.offsetMs };
    // Only compare like with like: PPS → TOFF is a change of measurement, not of the clock.
    if (!prev || prev.from !== off.from) return;
    const stepMs = off.offsetMs - prev.offsetMs;
    if (Math.abs(stepMs) >= this.threshold() * 1000) {
      this.step('gps', stepMs / 1000, `GPS (${off.from}) offset moved from ${ms1(prev.offsetMs)} to ${ms1(off.offsetMs)}`, this.clocks.wall());
    }
  }

  private step(input: ClockStepInfo['input'], stepSeconds: number, detail: string, atWall: number): void {
    const info: ClockStepInfo = { at: iso(atWall), input, stepSeconds };
    this.steps += 1;
    this.lastStep = info;
    this.emit({ type: 'step', ...info, detail });
  }

  private emit(e: ClockEvent): void {
    try {
      this.o.onEvent?.(e);
    } catch {
      // A listener's failure must not stop the clock.
    }
  }

  /** Re-evaluates now; reports a state change. */
  evaluate(): ClockEvaluation {
    const ev = evaluateClock(this.inputs, this.o.bounds, this.clocks.mono());
    if (ev.state !== this.current) {
      const from = this.current;
      this.current = ev.state;
      this.sinceWall = this.clocks.wall();
      this.emit({ type: 'state', at: iso(this.sinceWall), from, to: ev.state, reasons: ev.reasons, accuracyMicros: ev.accuracyMicros, source: ev.source });
    }
    return ev;
  }

  /** One timer tick: a wall-clock step check, then a re-evaluation (ages grow without input). */
  tick(): void {
    const cur = { wall: this.clocks.wall(), mono: this.clocks.mono() };
    const stepMs = wallStepMs(this.lastTick, cur);
    this.lastTick = cur;
    if (Math.abs(stepMs) >= this.threshold() * 1000) {
      this.step('system', stepMs / 1000, `system clock moved ${ms1(stepMs)} against the monotonic clock`, cur.wall);
    }
    this.evaluate();
  }

  start(): void {
    if (this.timer) return;
    this.lastTick = { wall: this.clocks.wall(), mono: this.clocks.mono() };
    this.timer = setInterval(() => this.tick(), this.o.tickMs ?? 250);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  // ---- TimeSource ----

  now(): TimeReading {
    const ev = this.evaluate();
    return {
      time: new Date(this.clocks.wall()),
      accuracyMicros: ev.accuracyMicros ?? Number.POSITIVE_INFINITY,
      synced: ev.state !== 'UNSYNCED',
      state: ev.state,
      source: ev.source,
      development: false,
    };
  }

  status(): ClockStatus {
    const ev = this.evaluate();
    return {
      state: ev.state,
      source: ev.source,
      development: false,
      accuracyMicros: ev.accuracyMicros,
      inputs: { ...(ev.gps ? { gps: ev.gps } : {}), ...(ev.chrony ? { chrony: ev.chrony } : {}) },
      bounds: { ...this.o.bounds },
      since: iso(this.sinceWall),
      reasons: ev.reasons,
      notice: null,
      steps: this.steps,
      lastStep: this.lastStep,
    };
  }
}
