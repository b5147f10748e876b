// The time-source bridge against a real gpsd fed with NMEA over TCP (../shared/PEERS.md):
// SYNCED with a fix; gpsd stopped → UNSYNCED within a measured bound, and back to SYNCED by
// itself when gpsd returns; a receiver that falls silent or loses its fix → UNSYNCED; a GPS
// time that disagrees with the system clock → UNSYNCED and a clock-step event; the gate and
// the Prometheus gauges follow.
import t from 'tap';
import { Registry } from 'prom-client';
import { startGpsdPeer } from '../helpers/gpsd-peer.js';
import { openTimeSource } from '../../firmware-bridge/timesource/open-time-source.js';
import { parseTimesourceConfig } from '../../firmware-bridge/timesource/config-shape.js';
import { ClockGate } from '../../firmware-bridge/timesource/clock-gate.js';
import { registerClockMetrics } from '../../firmware-bridge/timesource/clock-metrics.js';
import type { ClockEvent, ClockState, OpenTimeSource } from '../../firmware-bridge/timesource/time-source.js';

const quiet = { info() {}, warn() {}, error() {}, debug() {} };

/** Polls until the state is `want`; resolves with the milliseconds it took. */
async function waitForState(src: OpenTimeSource, want: ClockState, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (src.status().state === want) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) {
      throw new Error(`state is ${src.status().state}, not ${want}, after ${timeoutMs} ms: ${JSON.stringify(src.status())}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

t.test('gpsd: fix → SYNCED, gpsd gone → UNSYNCED, back → SYNCED, silent/no fix/disagreement → UNSYNCED', async (t) => {
  const peer = await startGpsdPeer();
  t.teardown(() => peer.close());
  const events: ClockEvent[] = [];
  const cfg = parseTimesourceConfig({
    kind: 'monitored',
    gpsd: { host: '127.0.0.1', port: peer.port, requireFix: true, minMode: 2 },
    bounds: { maxOffsetMs: 1000, maxAgeMs: 3000, degradedOffsetMs: 500 },
  });
  const src = await openTimeSource(cfg, { log: quiet, onEvent: (e) => events.push(e), gpsdBackoff: { initialMs: 100, maxMs: 500 } });
  t.teardown(() => src.close());
  const gate = new ClockGate(src);
  const registry = new Registry();
  registerClockMetrics(registry, src);

  t.equal(src.status().state, 'UNSYNCED', 'UNSYNCED before the first report');
  t.notOk(gate.check().ok, 'the gate refuses before the first report');

  const toSync = await waitForState(src, 'SYNCED', 5000);
  t.ok(toSync < 5000, `SYNCED ${Math.round(toSync)} ms after opening`);
  const st = src.status();
  const gps = st.inputs.gps!;
  t.equal(st.source, 'gpsd');
  t.equal(st.development, false);
  t.ok(gps.connected, 'connected to gpsd');
  t.ok(gps.mode! >= 2, `fix mode ${gps.mode}`);
  t.ok(Math.abs(Date.parse(gps.time!) - Date.now()) < 3000, `TPV time ${gps.time} is now`);
  t.ok(gps.offsetMs !== null && Math.abs(gps.offsetMs) < 500, `offset ${gps.offsetMs} ms from ${gps.offsetFrom}`);
  // The first TPV can make it SYNCED before gpsd's first TOFF (one per second to a pps watcher):
  // the offset then comes from the TPV until the TOFF arrives.
  for (const t0 = performance.now(); src.status().inputs.gps?.offsetFrom !== 'toff' && performance.now() - t0 < 3000; ) await new Promise((r) => setTimeout(r, 25));
  t.equal(src.status().inputs.gps?.offsetFrom, 'toff', 'gpsd sends TOFF (serial time offset) to a pps watcher');
  t.equal(gps.pps, false, 'no PPS line on a TCP NMEA feed');
  t.ok(gps.ageMs !== null && gps.ageMs <= 3000, `age ${gps.ageMs} ms`);
  t.same(st.reasons, [], 'no reasons while SYNCED');
  const ok = gate.check();
  t.ok(ok.ok, 'the gate lets time through');
  if (ok.ok) {
    // max(|m|, |m + 100 ms|) + ept 5 ms, with a measured offset m of a few ms.
    t.ok(ok.accuracyMicros >= 50_000 && ok.accuracyMicros < 300_000, `accuracy ${ok.accuracyMicros} µs reflects the 100 ms serial latency allowance`);
    t.ok(Math.abs(ok.time.getTime() - Date.now()) < 100, 'time is the system clock');
    t.equal(ok.development, false);
  }
  t.ok(events.some((e) => e.type === 'state' && e.from === 'UNSYNCED' && e.to === 'SYNCED'), 'state event UNSYNCED → SYNCED');

  const metrics = await registry.metrics();
  t.match(metrics, /yiqian_clock_state\{state="SYNCED"\} 1/);
  t.match(metrics, /yiqian_clock_state\{state="UNSYNCED"\} 0/);
  t.match(metrics, /yiqian_clock_input_age_seconds\{input="gps"\} \d/);
  t.match(metrics, /yiqian_clock_offset_seconds\{input="gps"\} -?\d/);
  t.match(metrics, /yiqian_clock_development 0/);

  // gpsd goes away.
  await peer.stop();
  const toUnsynced = await waitForState(src, 'UNSYNCED', 6000);
  t.ok(toUnsynced <= 5000, `UNSYNCED ${Math.round(toUnsynced)} ms after gpsd stopped (bound 5 s)`);
  const down = gate.check();
  t.notOk(down.ok, 'the gate refuses while gpsd is gone');
  if (!down.ok) t.match(down.reason, /gps: last report .* ago \(bound 3 s\); gpsd not connected/);
  t.equal(src.status().inputs.gps!.connected, false);
  t.match(await registry.metrics(), /yiqian_clock_state\{state="UNSYNCED"\} 1/);
  t.match(await registry.metrics(), /yiqian_clock_accuracy_seconds \+Inf/, 'accuracy unbounded while UNSYNCED');

  // gpsd comes back: the client reconnects by itself.
  await peer.start();
  const back = await waitForState(src, 'SYNCED', 8000);
  t.pass(`SYNCED again ${Math.round(back)} ms after gpsd restarted`);
  t.ok(gate.check().ok, 'the gate lets time through again');

  // The receiver falls silent (gpsd stays up): the age bound catches it.
  peer.feed.pause();
  const silent = await waitForState(src, 'UNSYNCED', 6000);
  t.ok(silent <= 5000, `UNSYNCED ${Math.round(silent)} ms after the receiver fell silent`);
  t.equal(src.status().inputs.gps!.connected, true, 'gpsd is still connected');
  peer.feed.resume();
  await waitForState(src, 'SYNCED', 5000);

  // The receiver loses its fix.
  peer.feed.setFix(false);
  await waitForState(src, 'UNSYNCED', 5000);
  t.match(src.status().reasons.join('\n'), /gps: no fix \(mode [01], need 2\)/);
  t.notOk(gate.check().ok);
  peer.feed.setFix(true);
  await waitForState(src, 'SYNCED', 5000);

  // GPS time 2.5 s ahead of the system clock: a step, and the clock is out of bounds.
  const stepsBefore = src.status().steps;
  peer.feed.setTimeOffsetMs(2500);
  await waitForState(src, 'UNSYNCED', 5000);
  t.match(src.status().reasons.join('\n'), /system clock differs from GPS \(toff\) by 2\d{3}/);
  const step = events.find((e) => e.type === 'step' && e.input === 'gps');
  t.ok(step, 'a clock-step event from the GPS input');
  if (step?.type === 'step') t.ok(step.stepSeconds > 2 && step.stepSeconds < 3, `step of ${step.stepSeconds} s`);
  t.ok(src.status().steps > stepsBefore, 'the step is counted');
  t.match(await registry.metrics(), /yiqian_clock_steps_total [1-9]/);
  peer.feed.setTimeOffsetMs(0);
  await waitForState(src, 'SYNCED', 5000);
  t.ok(gate.check().ok, 'resumes by itself when GPS and the clock agree again');
});
