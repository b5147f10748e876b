// The TimeSource interface (ARCHITECTURE.md §3) and the status it reports: what the TSA, the
// clock gate, /readyz, /metrics and GET /api/v1/time/status read. See docs/timesource.md.
//
// Sign convention everywhere in this folder: an offset is REFERENCE − SYSTEM CLOCK, so a
// positive offset means the system clock is slow (chronyc's "System time … slow of NTP time"
// is printed as a positive number in its CSV; gpsd's PPS/TOFF give real − clock).

/**
 * SYNCED: every required input is fresh and within the bounds.
 * DEGRADED: still within the max offset (time may be issued, with a wider accuracy), but worse
 *   than `degradedOffsetMs` or an optional input is lost.
 * UNSYNCED: no trustworthy time — fail closed.
 */
export type ClockState = 'SYNCED' | 'DEGRADED' | 'UNSYNCED';

export const CLOCK_STATES: readonly ClockState[] = ['SYNCED', 'DEGRADED', 'UNSYNCED'];

export interface ClockBounds {
  /** Largest error (|offset| + the input's own error, see docs) still accepted; ≤ 1000 (GB/T 20520). */
  maxOffsetMs: number;
  /** Largest age of an input's last good reading (monotonic time since it arrived). */
  maxAgeMs: number;
  /** Above this error (and at most maxOffsetMs) the state is DEGRADED. */
  degradedOffsetMs: number;
  /** Largest age of chrony's last reference update (its "Ref time"); above it chrony is stale. */
  maxRefAgeMs: number;
}

/** One reading of time, as a TSA stamps it. */
export interface TimeReading {
  /** The system clock (never corrected by an offset: the offset counts into the accuracy). */
  time: Date;
  /** Bound on |time − UTC| in microseconds; derived from the live inputs (docs/timesource.md). */
  accuracyMicros: number;
  /** state !== 'UNSYNCED'. */
  synced: boolean;
  state: ClockState;
  /** 'system-trusted', 'gpsd', 'chrony' or 'gpsd+chrony'. */
  source: string;
  /** True only for the system-trusted development source. */
  development: boolean;
}

export interface GpsInputStatus {
  /** gpsd address, HOST:PORT. */
  endpoint: string;
  connected: boolean;
  /** Last TPV's fix mode: 0 unknown, 1 no fix, 2 2D, 3 3D; null before the first TPV. */
  mode: number | null;
  /** Last TPV's time as gpsd sent it (UTC ISO 8601). */
  time: string | null;
  /** Wall-clock time the last TPV arrived (ISO). */
  receivedAt: string | null;
  /** Milliseconds since the last TPV arrived (monotonic); null before the first. */
  ageMs: number | null;
  /** Reference − system clock from the best fresh GPS measurement (PPS, else TOFF, else TPV). */
  offsetMs: number | null;
  /** Which measurement `offsetMs` comes from. */
  offsetFrom: 'pps' | 'toff' | 'tpv' | null;
  /** This input's error bound (|offset| + its own error) in ms; null when not usable. */
  errorMs: number | null;
  /** A PPS message arrived within maxAgeMs. */
  pps: boolean;
  /** Last connection or protocol error, if any since the last connect. */
  lastError: string | null;
  /** True when this input counts for the state now. */
  good: boolean;
}

export interface ChronyInputStatus {
  endpoint: string;
  /** Reference id (hex, e.g. 7F000001) and its address/name as chronyc printed it. */
  refId: string | null;
  refName: string | null;
  stratum: number | null;
  /** 'Normal', 'Insert second', 'Delete second' or 'Not synchronised'. */
  leap: string | null;
  /** chronyd's "System time": reference − system clock, ms. */
  offsetMs: number | null;
  rootDelayMs: number | null;
  rootDispersionMs: number | null;
  /** chronyd's last reference update ("Ref time", ISO). */
  lastUpdate: string | null;
  /** Milliseconds since chronyd's last reference update, now. */
  refAgeMs: number | null;
  /** When our last successful chronyc reading was taken (ISO). */
  readAt: string | null;
  /** Milliseconds since our last successful chronyc reading (monotonic). */
  ageMs: number | null;
  /** |offset| + root dispersion + root delay / 2, ms; null when not usable. */
  errorMs: number | null;
  lastError: string | null;
  good: boolean;
}

export interface ClockStepInfo {
  at: string;
  input: 'chrony' | 'gps' | 'system';
  /** Size of the step, seconds (signed: positive = the reference moved ahead of the clock). */
  stepSeconds: number;
}

export interface ClockStatus {
  state: ClockState;
  source: string;
  development: boolean;
  /** Current accuracy bound, µs; null while UNSYNCED. */
  accuracyMicros: number | null;
  inputs: { gps?: GpsInputStatus; chrony?: ChronyInputStatus };
  /** null for the system-trusted source (nothing is checked). */
  bounds: ClockBounds | null;
  /** ISO time the current state began. */
  since: string;
  /** Why the state is not SYNCED (empty when SYNCED); short English lines. */
  reasons: string[];
  /** DEVELOPMENT_NOTICE for the system-trusted source, else null. */
  notice: string | null;
  /** Clock steps of ≥ 1 s seen since start. */
  steps: number;
  lastStep: ClockStepInfo | null;
}

export interface TimeSource {
  now(): TimeReading;
  status(): ClockStatus;
}

/** Recorded for audit by whoever receives them (deps.onEvent in open-time-source.ts). */
export type ClockEvent =
  | { type: 'state'; at: string; from: ClockState; to: ClockState; reasons: string[]; accuracyMicros: number | null; source: string }
  | ({ type: 'step'; detail: string } & ClockStepInfo);

/** A closable source, as openTimeSource returns it. */
export interface OpenTimeSource extends TimeSource {
  close(): Promise<void>;
}

/** Development notice used by /readyz, the log and the TSA's status strings. */
export const DEVELOPMENT_NOTICE = 'development only: system clock trusted without GPS/NTP checks';

/**
 * The two clocks every part of the bridge reads: wall (the system clock, ms since the epoch,
 * may step) and mono (monotonic ms, never steps — all ages are measured on it).
 */
export interface Clocks {
  wall(): number;
  mono(): number;
}

export const systemClocks: Clocks = { wall: () => Date.now(), mono: () => performance.now() };
