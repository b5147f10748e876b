// `timesource: system-trusted` — the development source: the system clock, believed without
// any check. Always SYNCED, always marked `development: true` so that /readyz, the log and
// every TSA status string say "development only". It still watches the system clock against
// the monotonic clock and reports steps of ≥ 1 s, as the monitored source does.
import { STEP_THRESHOLD_SECONDS, wallStepMs } from './clock-state.js';
import { type ClockEvent, type ClockStatus, type ClockStepInfo, type Clocks, type OpenTimeSource, type TimeReading, DEVELOPMENT_NOTICE, systemClocks } from './time-source.js';

/**
 * The accuracy declared for the unchecked system clock: the 1 s that GB/T 20520 allows. It is
 * a declaration, not a measurement — which is why this source is for development only.
 */
export const SYSTEM_TRUSTED_ACCURACY_MICROS = 1_000_000;

export class SystemTrustedTimeSource implements OpenTimeSource {
  private readonly clocks: Clocks;
  private readonly since: string;
  private readonly onEvent?: (e: ClockEvent) => void;
  private readonly timer: NodeJS.Timeout | undefined;
  private last: { wall: number; mono: number };
  private steps = 0;
  private lastStep: ClockStepInfo | null = null;

  constructor(opts: { onEvent?: (e: ClockEvent) => void; clocks?: Clocks; tickMs?: number; watchSteps?: boolean } = {}) {
    this.clocks = opts.clocks ?? systemClocks;
    this.onEvent = opts.onEvent;
    this.since = new Date(this.clocks.wall()).toISOString();
    this.last = { wall: this.clocks.wall(), mono: this.clocks.mono() };
    if (opts.watchSteps ?? true) {
      this.timer = setInterval(() => this.tick(), opts.tickMs ?? 250);
      this.timer.unref();
    }
  }

  /** Checks the system clock against the monotonic clock once. */
  tick(): void {
    const cur = { wall: this.clocks.wall(), mono: this.clocks.mono() };
    const stepMs = wallStepMs(this.last, cur);
    this.last = cur;
    if (Math.abs(stepMs) >= STEP_THRESHOLD_SECONDS * 1000) {
      this.lastStep = { at: new Date(cur.wall).toISOString(), input: 'system', stepSeconds: stepMs / 1000 };
      this.steps += 1;
      try {
        this.onEvent?.({ type: 'step', ...this.lastStep, detail: `system clock moved ${Math.round(stepMs)} ms against the monotonic clock` });
      } catch {
        // A listener's failure must not stop the clock.
      }
    }
  }

  now(): TimeReading {
    return { time: new Date(this.clocks.wall()), accuracyMicros: SYSTEM_TRUSTED_ACCURACY_MICROS, synced: true, state: 'SYNCED', source: 'system-trusted', development: true };
  }

  status(): ClockStatus {
    return {
      state: 'SYNCED',
      source: 'system-trusted',
      development: true,
      accuracyMicros: SYSTEM_TRUSTED_ACCURACY_MICROS,
      inputs: {},
      bounds: null,
      since: this.since,
      reasons: [],
      notice: DEVELOPMENT_NOTICE,
      steps: this.steps,
      lastStep: this.lastStep,
    };
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
  }
}
