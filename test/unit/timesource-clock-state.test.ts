// The clock state as a pure function of (inputs, bounds, now), the monitor's events (state
// changes, clock steps from chrony offsets, GPS offsets and the wall vs monotonic clock), the
// fail-closed gate and the development source. Time here is given, not waited for.
import t from 'tap';
import { ClockMonitor, evaluateClock, serialErrorMs, wallStepMs, type ChronyInputs, type ClockInputs, type GpsInputs } from '../../firmware-bridge/timesource/clock-state.js';
import type { ChronyReading, ChronyTracking } from '../../firmware-bridge/timesource/chrony-reader.js';
import { ClockGate } from '../../firmware-bridge/timesource/clock-gate.js';
import { clockAuditEntry, clockReadiness } from '../../firmware-bridge/timesource/clock-report.js';
import { SystemTrustedTimeSource, SYSTEM_TRUSTED_ACCURACY_MICROS } from '../../firmware-bridge/timesource/system-trusted.js';
import { DEVELOPMENT_NOTICE, type ClockBounds, type ClockEvent, type Clocks } from '../../firmware-bridge/timesource/time-source.js';

const B: ClockBounds = { maxOffsetMs: 1000, maxAgeMs: 3000, degradedOffsetMs: 250, maxRefAgeMs: 60_000 };
const NOW = 100_000; // monotonic ms
const WALL = Date.UTC(2026, 10, 23, 2, 0, 0); // wall ms at monotonic NOW

function tracking(over: Partial<ChronyTracking> = {}): ChronyTracking {
  return {
    refId: '7F000001', refName: '127.0.0.1', stratum: 6, refTime: (WALL - 1000) / 1000, systemTimeOffset: 0.0002, lastOffset: 0, rmsOffset: 0,
    frequencyPpm: 0, residualFrequencyPpm: 0, skewPpm: 0.1, rootDelay: 0.0002, rootDispersion: 0.0001, updateInterval: 1, leap: 'Normal', ...over,
  };
}
/** A chrony reading taken `ageMs` before NOW. */
function chrony(over: Partial<ChronyTracking> = {}, ageMs = 100, lastError: ChronyInputs['lastError'] = null): ChronyInputs {
  const r: ChronyReading = { atMono: NOW - ageMs, atWall: WALL - ageMs, tracking: tracking(over) };
  return { endpoint: '127.0.0.1:323', last: r, lastError };
}
/** A GPS that reported `ageMs` before NOW with a TOFF offset (ms). */
function gps(over: { mode?: number; ageMs?: number; toffMs?: number | null; ppsMs?: number | null; ppsAgeMs?: number; requireFix?: boolean; minMode?: 2 | 3; connected?: boolean } = {}): GpsInputs {
  const age = over.ageMs ?? 200;
  return {
    settings: { endpoint: '127.0.0.1:2947', requireFix: over.requireFix ?? true, minMode: over.minMode ?? 2, serialLatencyMs: 100 },
    connected: over.connected ?? true,
    lastTpv: { mode: over.mode ?? 3, time: '2026-11-23T02:00:00.000Z', timeMs: WALL - age - 5, ept: 0.005, atWall: WALL - age, atMono: NOW - age },
    lastPps: over.ppsMs == null ? null : { offsetMs: over.ppsMs, precision: -20, atMono: NOW - (over.ppsAgeMs ?? age) },
    lastToff: over.toffMs === null ? null : { offsetMs: over.toffMs ?? -5, atMono: NOW - age },
    lastError: over.connected === false ? 'gpsd 127.0.0.1:2947: ECONNREFUSED' : null,
  };
}
const micros = (ms: number): number => Math.max(1, Math.ceil(ms * 1000));

t.test('evaluation table', async (t) => {
  const cases: Array<{ name: string; inputs: ClockInputs; bounds?: Partial<ClockBounds>; state: string; accuracyMicros?: number | null; reasons?: RegExp[] }> = [
    { name: 'nothing configured', inputs: {}, state: 'UNSYNCED', accuracyMicros: null, reasons: [/^no time input configured$/] },
    { name: 'chrony good', inputs: { chrony: chrony() }, state: 'SYNCED', accuracyMicros: micros(0.2 + 0.1 + 0.1), reasons: [] },
    { name: 'chrony negative offset counts by magnitude', inputs: { chrony: chrony({ systemTimeOffset: -0.0002 }) }, state: 'SYNCED', accuracyMicros: micros(0.4) },
    { name: 'chrony 0.3 s: degraded', inputs: { chrony: chrony({ systemTimeOffset: 0.3 }) }, state: 'DEGRADED', accuracyMicros: micros(300.2), reasons: [/^accuracy 300\.2 ms is worse than 250 ms$/] },
    { name: 'chrony exactly at max (1000 ms error) still usable', inputs: { chrony: chrony({ systemTimeOffset: 0.9998, rootDispersion: 0.0001, rootDelay: 0.0002 }) }, state: 'DEGRADED' },
    { name: 'chrony 1.5 s', inputs: { chrony: chrony({ systemTimeOffset: 1.5 }) }, state: 'UNSYNCED', accuracyMicros: null, reasons: [/^chrony: offset 1500 ms \(error 1500\.2 ms with dispersion and delay\) exceeds bound 1000 ms$/] },
    { name: 'chrony −1.5 s', inputs: { chrony: chrony({ systemTimeOffset: -1.5 }) }, state: 'UNSYNCED', reasons: [/offset -1500 ms/] },
    { name: 'chrony dispersion pushes it out', inputs: { chrony: chrony({ systemTimeOffset: 0.9, rootDispersion: 0.2 }) }, state: 'UNSYNCED', reasons: [/error 1100\.1 ms/] },
    { name: 'chrony reading exactly maxAge old', inputs: { chrony: chrony({}, 3000) }, state: 'SYNCED' },
    { name: 'chrony reading too old', inputs: { chrony: chrony({}, 3001) }, state: 'UNSYNCED', reasons: [/^chrony: last reading 3 s ago \(bound 3 s\)$/] },
    {
      name: 'chrony too old, with the failure that followed',
      inputs: { chrony: chrony({}, 4000, { message: 'chronyc 127.0.0.1:323: 506 Cannot talk to daemon', atMono: NOW - 50 }) },
      state: 'UNSYNCED',
      reasons: [/^chrony: last reading 4 s ago \(bound 3 s\): chronyc 127\.0\.0\.1:323: 506 Cannot talk to daemon$/],
    },
    { name: 'chrony fresh despite an older failure', inputs: { chrony: chrony({}, 100, { message: 'x', atMono: NOW - 2000 }) }, state: 'SYNCED' },
    { name: 'chrony never read', inputs: { chrony: { endpoint: '127.0.0.1:323', last: null, lastError: { message: 'chronyc not found', atMono: NOW } } }, state: 'UNSYNCED', reasons: [/^chrony: no reading from chronyd 127\.0\.0\.1:323 yet: chronyc not found$/] },
    { name: 'chronyd not synchronised', inputs: { chrony: chrony({ leap: 'Not synchronised', stratum: 0, refTime: 0, refId: '00000000' }) }, state: 'UNSYNCED', reasons: [/not synchronised \(leap status Not synchronised, stratum 0\)/] },
    { name: 'chronyd stratum 16', inputs: { chrony: chrony({ stratum: 16 }) }, state: 'UNSYNCED' },
    { name: 'leap second pending is still synced', inputs: { chrony: chrony({ leap: 'Insert second' }) }, state: 'SYNCED' },
    { name: 'chronyd reference too old', inputs: { chrony: chrony({ refTime: (WALL - 61_000) / 1000 }) }, state: 'UNSYNCED', reasons: [/^chrony: last reference update 61 s ago \(bound 60 s\)$/] },
    { name: 'reference time is on chronyd’s corrected timescale', inputs: { chrony: chrony({ systemTimeOffset: 0.5, refTime: (WALL - 59_000 + 500) / 1000 }) }, state: 'DEGRADED' },
    { name: 'gps TOFF', inputs: { gps: gps() }, state: 'SYNCED', accuracyMicros: micros(serialErrorMs(-5, 100) + 5), reasons: [] },
    { name: 'gps TPV only (no TOFF)', inputs: { gps: gps({ toffMs: null }) }, state: 'SYNCED', accuracyMicros: micros(serialErrorMs(-5, 100) + 5) },
    { name: 'gps PPS beats TOFF', inputs: { gps: gps({ ppsMs: 0.002 }) }, state: 'SYNCED', accuracyMicros: micros(0.002 + 2 ** -20 * 1000) },
    { name: 'stale PPS falls back to TOFF', inputs: { gps: gps({ ppsMs: 0.002, ppsAgeMs: 3500 }) }, state: 'SYNCED', accuracyMicros: micros(95 + 5) },
    { name: 'gps no fix (required)', inputs: { gps: gps({ mode: 1 }) }, state: 'UNSYNCED', reasons: [/^gps: no fix \(mode 1, need 2\)$/] },
    { name: 'gps 2D fix when 3D is required', inputs: { gps: gps({ mode: 2, minMode: 3 }) }, state: 'UNSYNCED', reasons: [/need 3/] },
    { name: 'gps stale, gpsd gone', inputs: { gps: gps({ ageMs: 3200, connected: false }) }, state: 'UNSYNCED', reasons: [/^gps: last report 3\.2 s ago \(bound 3 s\); gpsd not connected \(gpsd 127\.0\.0\.1:2947: ECONNREFUSED\)$/] },
    { name: 'gps disagrees with the system clock', inputs: { gps: gps({ toffMs: 2500 }) }, state: 'UNSYNCED', reasons: [/^gps: system clock differs from GPS \(toff\) by 2500 ms; error 2605 ms exceeds bound 1000 ms$/] },
    { name: 'optional gps without fix, chrony good', inputs: { gps: gps({ mode: 1, requireFix: false }), chrony: chrony() }, state: 'DEGRADED', accuracyMicros: micros(0.4), reasons: [/^gps: no fix/] },
    { name: 'optional gps stale, chrony good', inputs: { gps: gps({ ageMs: 5000, requireFix: false }), chrony: chrony() }, state: 'DEGRADED' },
    { name: 'optional gps that disagrees still fails closed', inputs: { gps: gps({ toffMs: -1500, requireFix: false }), chrony: chrony() }, state: 'UNSYNCED' },
    { name: 'optional gps alone, without fix', inputs: { gps: gps({ mode: 1, requireFix: false }) }, state: 'UNSYNCED', reasons: [/^no time input is usable$/, /^gps: no fix/] },
    { name: 'required chrony down, gps good', inputs: { gps: gps(), chrony: chrony({}, 9000) }, state: 'UNSYNCED', reasons: [/^chrony: last reading 9 s ago/] },
    { name: 'both good: the worse bound wins', inputs: { gps: gps(), chrony: chrony() }, state: 'SYNCED', accuracyMicros: micros(100) },
    { name: 'both good: tighter degraded bound', inputs: { gps: gps(), chrony: chrony() }, bounds: { degradedOffsetMs: 50 }, state: 'DEGRADED', reasons: [/^accuracy 100 ms is worse than 50 ms$/] },
  ];
  for (const c of cases) {
    const ev = evaluateClock(c.inputs, { ...B, ...c.bounds }, NOW);
    t.equal(ev.state, c.state, `${c.name}: ${c.state}`);
    if (c.accuracyMicros !== undefined) t.equal(ev.accuracyMicros, c.accuracyMicros, `${c.name}: accuracy`);
    if (c.reasons) {
      t.equal(ev.reasons.length, c.reasons.length, `${c.name}: ${c.reasons.length} reason(s) ${JSON.stringify(ev.reasons)}`);
      c.reasons.forEach((re, i) => t.match(ev.reasons[i] ?? '', re, `${c.name}: reason ${i}`));
    }
    if (ev.state === 'SYNCED') t.same(ev.reasons, [], `${c.name}: no reasons when SYNCED`);
  }
});

t.test('input status as /readyz and the time API show it', async (t) => {
  const ev = evaluateClock({ gps: gps({ ppsMs: 0.002 }), chrony: chrony({ systemTimeOffset: -0.02 }) }, B, NOW);
  t.equal(ev.source, 'gpsd+chrony');
  t.match(ev.gps, { connected: true, mode: 3, offsetMs: 0.002, offsetFrom: 'pps', pps: true, ageMs: 200, good: true, receivedAt: new Date(WALL - 200).toISOString() });
  t.match(ev.chrony, { refId: '7F000001', stratum: 6, leap: 'Normal', offsetMs: -20, ageMs: 100, refAgeMs: 1000 - 20, good: true });
  t.equal(ev.chrony!.lastUpdate, new Date(WALL - 1000).toISOString());
  const bad = evaluateClock({ chrony: chrony({ systemTimeOffset: 2 }) }, B, NOW);
  t.equal(bad.chrony!.good, false);
  t.equal(bad.chrony!.errorMs, null, 'no error bound for an input that is not good');
  t.equal(bad.chrony!.offsetMs, 2000, 'but its offset is still shown');
});

t.test('serial GPS error bound', async (t) => {
  t.equal(serialErrorMs(-100, 100), 100, 'arrives 100 ms late, clock right: up to 100 ms');
  t.equal(serialErrorMs(0, 100), 100, 'arrives at once: the clock may be 100 ms fast');
  t.equal(serialErrorMs(-250, 100), 250);
  t.equal(serialErrorMs(300, 100), 400);
  t.equal(wallStepMs({ wall: 1000, mono: 10 }, { wall: 3250, mono: 260 }), 2000);
  t.equal(wallStepMs({ wall: 1000, mono: 10 }, { wall: 1250, mono: 260 }), 0);
});

/** Clocks the test moves by hand. */
function handClocks(): Clocks & { advance(ms: number): void; stepWall(ms: number): void } {
  let mono = NOW;
  let wall = WALL;
  return { wall: () => wall, mono: () => mono, advance: (ms) => ((mono += ms), (wall += ms)), stepWall: (ms) => void (wall += ms) };
}
const reading = (c: Clocks, over: Partial<ChronyTracking> = {}): ChronyReading => ({ atMono: c.mono(), atWall: c.wall(), tracking: tracking({ refTime: (c.wall() - 500) / 1000, ...over }) });

t.test('monitor: state events, ages that run out, clock steps', async (t) => {
  const clocks = handClocks();
  const events: ClockEvent[] = [];
  const m = new ClockMonitor({ bounds: B, chrony: { endpoint: '127.0.0.1:323' }, clocks, onEvent: (e) => events.push(e) });
  t.equal(m.status().state, 'UNSYNCED', 'starts UNSYNCED');
  t.same(events, [], 'no event for the initial state');

  m.chronyReading(reading(clocks, { systemTimeOffset: 0.2 }));
  t.equal(m.status().state, 'SYNCED');
  t.match(events.at(-1), { type: 'state', from: 'UNSYNCED', to: 'SYNCED', source: 'chrony', accuracyMicros: micros(200.2) });
  const r = m.now();
  t.same(r, { time: new Date(WALL), accuracyMicros: micros(200.2), synced: true, state: 'SYNCED', source: 'chrony', development: false });

  clocks.advance(2000);
  m.tick();
  t.equal(m.status().state, 'SYNCED', 'two seconds without a reading: still SYNCED');
  clocks.advance(1001);
  m.tick();
  t.equal(m.status().state, 'UNSYNCED', 'past maxAgeMs the timer turns it UNSYNCED');
  t.match(events.at(-1), { type: 'state', from: 'SYNCED', to: 'UNSYNCED', reasons: [/^chrony: last reading 3 s ago/], accuracyMicros: null });
  t.equal(m.status().since, new Date(clocks.wall()).toISOString(), 'since: when the state changed');
  const u = m.now();
  t.equal(u.synced, false);
  t.equal(u.accuracyMicros, Number.POSITIVE_INFINITY);

  // chrony's offset jumps by ≥ 1 s → a step; smaller changes are not.
  m.chronyReading(reading(clocks, { systemTimeOffset: 1.5 }));
  t.match(events.filter((e) => e.type === 'step'), [{ type: 'step', input: 'chrony', stepSeconds: 1.3, at: new Date(clocks.wall()).toISOString() }]);
  t.match(m.status().lastStep, { input: 'chrony', stepSeconds: 1.3 });
  m.chronyReading(reading(clocks, { leap: 'Not synchronised', stratum: 0, systemTimeOffset: 0 }));
  m.chronyReading(reading(clocks, { systemTimeOffset: 0.6 }));
  t.equal(events.filter((e) => e.type === 'step').length, 1, 'unsynchronised readings are no baseline; 1.5 → 0.6 is not a step');
  m.chronyReading(reading(clocks, { systemTimeOffset: -0.5 }));
  t.match(events.at(-1), { type: 'step', input: 'chrony', stepSeconds: -1.1 });
  t.equal(m.status().steps, 2);

  // The system clock steps against the monotonic clock.
  clocks.advance(250);
  m.tick();
  clocks.stepWall(-1500);
  clocks.advance(250);
  m.tick();
  t.match(events.at(-1), { type: 'step', input: 'system', stepSeconds: -1.5 });
  clocks.stepWall(900);
  clocks.advance(250);
  m.tick();
  t.equal(m.status().steps, 3, 'a 0.9 s move is not a step');
});

t.test('monitor: GPS offset steps compare like with like', async (t) => {
  const clocks = handClocks();
  const events: ClockEvent[] = [];
  const m = new ClockMonitor({ bounds: B, gps: { endpoint: 'g', requireFix: true, minMode: 2, serialLatencyMs: 100 }, clocks, onEvent: (e) => events.push(e) });
  const tpv = (): void => m.gpsMessage({ class: 'TPV', device: null, mode: 3, time: 'x', timeMs: clocks.wall(), ept: 0.005 }, clocks.wall(), clocks.mono());
  const toff = (offsetMs: number): void => m.gpsMessage({ class: 'TOFF', device: null, offsetMs, realSec: 0, realNsec: 0, clockSec: 0, clockNsec: 0, precision: null }, clocks.wall(), clocks.mono());
  const pps = (offsetMs: number): void => m.gpsMessage({ class: 'PPS', device: null, offsetMs, realSec: 0, realNsec: 0, clockSec: 0, clockNsec: 0, precision: -20 }, clocks.wall(), clocks.mono());
  m.gpsConnection(true);
  tpv();
  toff(-5);
  t.equal(m.status().state, 'SYNCED');
  clocks.advance(1000);
  toff(-600);
  tpv();
  t.equal(events.filter((e) => e.type === 'step').length, 0, '595 ms is not a step');
  clocks.advance(1000);
  pps(-1700);
  t.equal(events.filter((e) => e.type === 'step').length, 0, 'TOFF → PPS is a change of measurement, not a step');
  clocks.advance(1000);
  pps(0.01);
  t.match(events.filter((e) => e.type === 'step'), [{ input: 'gps', stepSeconds: 1.70001 }]);
  m.gpsConnection(false, 'gpsd g closed the connection');
  t.equal(m.status().inputs.gps!.connected, false);
  t.equal(m.status().inputs.gps!.lastError, 'gpsd g closed the connection');
});

t.test('gate: refuses while UNSYNCED, lets time through by itself after; accuracy cap', async (t) => {
  const clocks = handClocks();
  const m = new ClockMonitor({ bounds: B, chrony: { endpoint: '127.0.0.1:323' }, clocks });
  const gate = new ClockGate(m);
  const first = gate.check();
  t.equal(first.ok, false);
  if (!first.ok) t.equal(first.reason, 'clock UNSYNCED (chrony): chrony: no reading from chronyd 127.0.0.1:323 yet');
  t.throws(() => gate.require(), { code: 'CLOCK_UNSYNCED', status: 503, text: { en: /^trusted time not available: clock UNSYNCED/ } });
  m.chronyReading(reading(clocks, { systemTimeOffset: 0.3 }));
  const ok = gate.check();
  t.same(ok, { ok: true, time: new Date(clocks.wall()), accuracyMicros: micros(300.2), state: 'DEGRADED', source: 'chrony', development: false, notice: null });
  t.equal(gate.require().accuracyMicros, micros(300.2));
  clocks.advance(3100);
  t.equal(gate.check().ok, false, 'inputs older than the bound: refused even before the monitor’s timer runs');
  m.chronyReading(reading(clocks));
  t.equal(gate.check().ok, true, 'and accepted again with the next good reading');
  const strict = new ClockGate(m, { maxAccuracyMicros: 200 });
  const s = strict.check();
  t.equal(s.ok, false);
  if (!s.ok) t.match(s.reason, /^clock accuracy 400 µs is worse than the 200 µs allowed$/);
});

t.test('system-trusted: always SYNCED, development only, still watches for steps', async (t) => {
  const clocks = handClocks();
  const events: ClockEvent[] = [];
  const src = new SystemTrustedTimeSource({ clocks, watchSteps: false, onEvent: (e) => events.push(e) });
  t.same(src.now(), { time: new Date(WALL), accuracyMicros: SYSTEM_TRUSTED_ACCURACY_MICROS, synced: true, state: 'SYNCED', source: 'system-trusted', development: true });
  t.match(src.status(), { state: 'SYNCED', development: true, notice: DEVELOPMENT_NOTICE, bounds: null, inputs: {}, reasons: [] });
  const g = new ClockGate(src).check();
  t.match(g, { ok: true, development: true, notice: DEVELOPMENT_NOTICE, accuracyMicros: 1_000_000 });
  clocks.stepWall(3000);
  clocks.advance(250);
  src.tick();
  t.match(events, [{ type: 'step', input: 'system', stepSeconds: 3 }]);
  t.equal(src.status().steps, 1);
  await src.close();
});

t.test('readiness check and audit entries', async (t) => {
  const clocks = handClocks();
  const events: ClockEvent[] = [];
  const m = new ClockMonitor({ bounds: B, chrony: { endpoint: '127.0.0.1:323' }, clocks, onEvent: (e) => events.push(e) });
  t.match(clockReadiness(m), { ok: false, detail: { state: 'UNSYNCED', source: 'chrony', accuracyMicros: null, reasons: [/no reading/] } });
  m.chronyReading(reading(clocks, { systemTimeOffset: 0.4 }));
  t.match(clockReadiness(m), { ok: true, detail: { state: 'DEGRADED', inputs: { chrony: { offsetMs: 400 } } } });
  t.notOk('notice' in clockReadiness(m).detail);
  const dev = new SystemTrustedTimeSource({ watchSteps: false });
  t.match(clockReadiness(dev), { ok: true, detail: { state: 'SYNCED', source: 'system-trusted', notice: DEVELOPMENT_NOTICE } });
  m.chronyReading(reading(clocks, { systemTimeOffset: 1.6 }));
  const [toDegraded, step, toUnsynced] = events;
  t.same(clockAuditEntry(toDegraded), {
    actor: 'system', action: 'clock.state', target: 'chrony', outcome: 'ok',
    detail: { at: new Date(WALL).toISOString(), from: 'UNSYNCED', to: 'DEGRADED', reasons: ['accuracy 400.2 ms is worse than 250 ms'], accuracyMicros: micros(400.2) },
  });
  const stepEntry = clockAuditEntry(step);
  t.match(stepEntry, { actor: 'system', action: 'clock.step', target: 'chrony', outcome: 'error', detail: { input: 'chrony', detail: /from 400 ms to 1600 ms/ } });
  t.ok(Math.abs((stepEntry.detail.stepSeconds as number) - 1.2) < 1e-9, 'step of 1.2 s');
  t.match(clockAuditEntry(toUnsynced), { action: 'clock.state', outcome: 'error', detail: { from: 'DEGRADED', to: 'UNSYNCED' } });
  t.same(JSON.parse(JSON.stringify(clockAuditEntry(toUnsynced))), clockAuditEntry(toUnsynced), 'JSON values only');
});
