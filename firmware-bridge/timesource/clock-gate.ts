// The fail-closed gate every time-stamping use goes through (the RFC 3161 TSA answers
// `rejection` / `timeNotAvailable` when it says no; REST callers get CLOCK_UNSYNCED, 503).
// It asks the time source afresh on every call — the source evaluates the ages of its inputs
// at that moment — so it refuses as soon as an input is older than the bound, and lets time
// through again by itself when the inputs are good again. Nothing here is cached.
import { YiqianError } from '../../appliance/src/errors.js';
import type { ClockState, TimeSource } from './time-source.js';
import { DEVELOPMENT_NOTICE } from './time-source.js';

export const CLOCK_UNSYNCED = 'CLOCK_UNSYNCED';

export type ClockGateResult =
  | {
      ok: true;
      time: Date;
      accuracyMicros: number;
      state: Exclude<ClockState, 'UNSYNCED'>;
      source: string;
      development: boolean;
      /** DEVELOPMENT_NOTICE when the source is system-trusted: put it into status strings. */
      notice: string | null;
    }
  | { ok: false; reason: string; state: ClockState; source: string };

export interface ClockGateOptions {
  /** Refuse when the live accuracy is worse than this (e.g. the accuracy a TSA policy declares). */
  maxAccuracyMicros?: number;
}

export class ClockGate {
  private readonly source: TimeSource;
  private readonly maxAccuracyMicros: number;

  constructor(source: TimeSource, opts: ClockGateOptions = {}) {
    this.source = source;
    this.maxAccuracyMicros = opts.maxAccuracyMicros ?? Number.POSITIVE_INFINITY;
  }

  check(): ClockGateResult {
    const r = this.source.now();
    if (!r.synced || r.state === 'UNSYNCED') {
      const reasons = this.source.status().reasons;
      return { ok: false, reason: `clock ${r.state} (${r.source}): ${reasons.join('; ') || 'no trustworthy time'}`, state: r.state, source: r.source };
    }
    if (!Number.isFinite(r.accuracyMicros) || r.accuracyMicros > this.maxAccuracyMicros) {
      return { ok: false, reason: `clock accuracy ${r.accuracyMicros} µs is worse than the ${this.maxAccuracyMicros} µs allowed`, state: r.state, source: r.source };
    }
    return {
      ok: true,
      time: r.time,
      accuracyMicros: r.accuracyMicros,
      state: r.state,
      source: r.source,
      development: r.development,
      notice: r.development ? DEVELOPMENT_NOTICE : null,
    };
  }

  /** check(), or throw CLOCK_UNSYNCED (503) naming the reason. */
  require(): Extract<ClockGateResult, { ok: true }> {
    const r = this.check();
    if (!r.ok) {
      throw new YiqianError(CLOCK_UNSYNCED, 503, { zh: `可信时间不可用：${r.reason}`, en: `trusted time not available: ${r.reason}` }, { state: r.state, source: r.source, reason: r.reason });
    }
    return r;
  }
}
