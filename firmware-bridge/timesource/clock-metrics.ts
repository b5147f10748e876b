// Prometheus view of the clock, read from the time source at scrape time (nothing to update):
//   yiqian_clock_state{state}               1 for the current state, 0 for the others
//   yiqian_clock_offset_seconds{input}      reference − system clock per input (gps, chrony)
//   yiqian_clock_input_age_seconds{input}   age of the input's last reading
//   yiqian_clock_accuracy_seconds           the accuracy now (+Inf while UNSYNCED)
//   yiqian_clock_development                1 when the source is system-trusted
//   yiqian_clock_steps_total                clock steps of ≥ 1 s since start
// Alert examples: `yiqian_clock_state{state="UNSYNCED"} == 1`, `yiqian_clock_development == 1`.
import { Counter, Gauge, type Registry } from 'prom-client';
import { CLOCK_STATES, type TimeSource } from './time-source.js';

/** Registers the clock metrics on `registry` (once per registry). */
export function registerClockMetrics(registry: Registry, source: TimeSource): void {
  const registers = [registry];
  let seenSteps = 0;
  new Gauge({
    name: 'yiqian_clock_state',
    help: 'Clock state: 1 for the current one of SYNCED, DEGRADED, UNSYNCED.',
    labelNames: ['state'] as const,
    registers,
    collect() {
      const s = source.status().state;
      for (const st of CLOCK_STATES) this.set({ state: st }, st === s ? 1 : 0);
    },
  });
  new Gauge({
    name: 'yiqian_clock_offset_seconds',
    help: 'Reference time minus system clock, per input (positive: the system clock is slow).',
    labelNames: ['input'] as const,
    registers,
    collect() {
      this.reset();
      const { gps, chrony } = source.status().inputs;
      if (gps?.offsetMs != null) this.set({ input: 'gps' }, gps.offsetMs / 1000);
      if (chrony?.offsetMs != null) this.set({ input: 'chrony' }, chrony.offsetMs / 1000);
    },
  });
  new Gauge({
    name: 'yiqian_clock_input_age_seconds',
    help: 'Seconds since the last reading of each time input (gps: last TPV; chrony: last chronyc tracking).',
    labelNames: ['input'] as const,
    registers,
    collect() {
      this.reset();
      const { gps, chrony } = source.status().inputs;
      if (gps?.ageMs != null) this.set({ input: 'gps' }, gps.ageMs / 1000);
      if (chrony?.ageMs != null) this.set({ input: 'chrony' }, chrony.ageMs / 1000);
    },
  });
  new Gauge({
    name: 'yiqian_clock_accuracy_seconds',
    help: 'Bound on the system clock error declared now; +Inf while UNSYNCED.',
    registers,
    collect() {
      const a = source.status().accuracyMicros;
      this.set(a !== null && Number.isFinite(a) ? a / 1e6 : Number.POSITIVE_INFINITY);
    },
  });
  new Gauge({
    name: 'yiqian_clock_development',
    help: '1 when the time source is system-trusted (development only), else 0.',
    registers,
    collect() {
      this.set(source.status().development ? 1 : 0);
    },
  });
  new Counter({
    name: 'yiqian_clock_steps_total',
    help: 'Clock steps of 1 s or more seen since start (chrony offset jumps, GPS offset jumps, system clock vs monotonic clock).',
    registers,
    collect() {
      const n = source.status().steps;
      if (n > seenSteps) this.inc(n - seenSteps);
      seenSteps = n;
    },
  });
}
