// gpsd and chrony together, as an appliance with a GPS receiver and an NTP upstream runs:
// the accuracy is the worse of the two inputs' error bounds; with requireFix false the GPS is
// a cross-check, so losing gpsd leaves the clock DEGRADED (time still issued, on chrony)
// instead of UNSYNCED; and a chronyd that goes away still stops time-stamping.
import t from 'tap';
import { startGpsdPeer } from '../helpers/gpsd-peer.js';
import { startChronyPeers } from '../helpers/chrony-peer.js';
import { openTimeSource } from '../../firmware-bridge/timesource/open-time-source.js';
import { parseTimesourceConfig } from '../../firmware-bridge/timesource/config-shape.js';
import { ClockGate } from '../../firmware-bridge/timesource/clock-gate.js';
import type { ClockState, OpenTimeSource } from '../../firmware-bridge/timesource/time-source.js';

const quiet = { info() {}, warn() {}, error() {}, debug() {} };

async function waitForState(src: OpenTimeSource, want: ClockState, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (src.status().state === want) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) throw new Error(`state is ${src.status().state}, not ${want}, after ${timeoutMs} ms: ${JSON.stringify(src.status())}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

t.test('gpsd + chrony: worst error bound wins; optional GPS lost → DEGRADED; chrony lost → UNSYNCED', async (t) => {
  const gpsd = await startGpsdPeer();
  t.teardown(() => gpsd.close());
  const chrony = await startChronyPeers(0.02);
  t.teardown(() => chrony.close());
  const cfg = parseTimesourceConfig({
    kind: 'monitored',
    gpsd: { host: '127.0.0.1', port: gpsd.port, requireFix: false },
    chrony: { host: '127.0.0.1', port: chrony.cmdPort, pollMs: 250 },
    bounds: { maxOffsetMs: 1000, maxAgeMs: 2000, degradedOffsetMs: 250 },
  });
  const src = await openTimeSource(cfg, { log: quiet, gpsdBackoff: { initialMs: 100, maxMs: 500 } });
  t.teardown(() => src.close());
  const gate = new ClockGate(src);
  await waitForState(src, 'SYNCED', 5000);
  const s = src.status();
  t.equal(s.source, 'gpsd+chrony');
  t.ok(s.inputs.gps!.good && s.inputs.chrony!.good, 'both inputs good');
  t.equal(s.accuracyMicros, Math.ceil(Math.max(s.inputs.gps!.errorMs!, s.inputs.chrony!.errorMs!) * 1000), 'accuracy = the larger error bound');
  t.ok(s.inputs.gps!.errorMs! > s.inputs.chrony!.errorMs!, `serial GPS (${s.inputs.gps!.errorMs} ms) is the looser input here (chrony ${s.inputs.chrony!.errorMs} ms)`);

  await gpsd.stop();
  const lost = await waitForState(src, 'DEGRADED', 5000);
  t.ok(lost <= 4000, `DEGRADED ${Math.round(lost)} ms after gpsd stopped`);
  t.match(src.status().reasons, [/^gps: last report .* ago \(bound 2 s\); gpsd not connected/]);
  const g = gate.check();
  t.ok(g.ok, 'time is still issued on chrony alone');
  if (g.ok) t.ok(g.accuracyMicros < 50_000, `with chrony's accuracy ${g.accuracyMicros} µs`);

  await chrony.stopClient();
  await waitForState(src, 'UNSYNCED', 5000);
  t.notOk(gate.check().ok, 'chrony is required: without it nothing is issued');

  await Promise.all([gpsd.start(), chrony.startClient(0.02)]);
  await waitForState(src, 'SYNCED', 8000);
  t.ok(gate.check().ok, 'both back → SYNCED, by itself');
});
