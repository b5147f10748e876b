// The `timesource` config section: defaults, the old string form, and one-line problems.
import t from 'tap';
import { checkTimesourceConfig, parseTimesourceConfig, DEFAULT_BOUNDS, DEFAULT_CHRONY, DEFAULT_GPSD } from '../../firmware-bridge/timesource/config-shape.js';
import { YiqianError } from '../../appliance/src/errors.js';

t.test('development forms', async (t) => {
  t.same(parseTimesourceConfig('system-trusted'), { kind: 'system-trusted' }, 'the string used before the bridge');
  t.same(parseTimesourceConfig({ kind: 'system-trusted' }), { kind: 'system-trusted' });
  t.same(parseTimesourceConfig(undefined), { kind: 'system-trusted' }, 'absent → development default');
});

t.test('monitored: defaults filled in', async (t) => {
  t.same(parseTimesourceConfig({ kind: 'monitored', chrony: {} }), { kind: 'monitored', chrony: DEFAULT_CHRONY, bounds: DEFAULT_BOUNDS });
  t.same(parseTimesourceConfig({ kind: 'monitored', gpsd: {} }), { kind: 'monitored', gpsd: DEFAULT_GPSD, bounds: DEFAULT_BOUNDS });
  t.same(DEFAULT_BOUNDS, { maxOffsetMs: 1000, maxAgeMs: 3000, degradedOffsetMs: 250, maxRefAgeMs: 2_100_000 });
  t.same(
    parseTimesourceConfig({
      kind: 'monitored',
      gpsd: { host: '::1', port: 12947, requireFix: false, minMode: 3, serialLatencyMs: 40 },
      chrony: { host: '127.0.0.1', port: 11323, pollMs: 500, chronyc: '/usr/bin/chronyc' },
      bounds: { maxOffsetMs: 500, maxAgeMs: 2000, degradedOffsetMs: 50, maxRefAgeMs: 120_000 },
    }),
    {
      kind: 'monitored',
      gpsd: { host: '::1', port: 12947, requireFix: false, minMode: 3, serialLatencyMs: 40 },
      chrony: { host: '127.0.0.1', port: 11323, pollMs: 500, chronyc: '/usr/bin/chronyc' },
      bounds: { maxOffsetMs: 500, maxAgeMs: 2000, degradedOffsetMs: 50, maxRefAgeMs: 120_000 },
    },
  );
});

t.test('problems, one line each, with their path', async (t) => {
  const problems = (raw: unknown): string[] => checkTimesourceConfig(raw).problems;
  t.same(problems('gps'), ['timesource must be "system-trusted" or an object with kind "system-trusted" or "monitored"']);
  t.same(problems({ kind: 'ntp' }), ['timesource.kind must be "system-trusted" or "monitored"']);
  t.same(problems({ kind: 'monitored' }), ['timesource of kind "monitored" needs gpsd, chrony or both']);
  t.same(problems({ kind: 'system-trusted', gpsd: {} }), ['timesource.gpsd is not a known setting (allowed: kind)']);
  t.same(problems({ kind: 'monitored', chrony: { port: 0 } }), ['timesource.chrony.port must be an integer in 1..65535']);
  t.same(problems({ kind: 'monitored', chrony: 'localhost' }), ['timesource.chrony must be an object']);
  t.same(problems({ kind: 'monitored', chrony: { host: 'a b' } }), ['timesource.chrony.host must be an IP address or host name']);
  t.same(problems({ kind: 'monitored', chrony: { pollMs: 50 } }), ['timesource.chrony.pollMs must be an integer in 100..60000']);
  t.same(problems({ kind: 'monitored', gpsd: { minMode: 1, requireFix: 'yes' } }), ['timesource.gpsd.requireFix must be true or false', 'timesource.gpsd.minMode must be 2 (2D fix) or 3 (3D fix)']);
  t.same(problems({ kind: 'monitored', gpsd: {}, bounds: { maxOffsetMs: 2000 } }), ['timesource.bounds.maxOffsetMs must be an integer in 1..1000'], 'GB/T 20520: no more than 1 s');
  t.same(problems({ kind: 'monitored', gpsd: {}, bounds: { maxOfsetMs: 500 } }), [
    'timesource.bounds.maxOfsetMs is not a known setting (allowed: maxOffsetMs, maxAgeMs, degradedOffsetMs, maxRefAgeMs)',
  ], 'a misspelt bound is not silently ignored');
  t.same(problems({ kind: 'monitored', gpsd: {}, bounds: { maxOffsetMs: 100, degradedOffsetMs: 200 } }), ['timesource.bounds.degradedOffsetMs (200) must not exceed maxOffsetMs (100)']);
  t.same(problems({ kind: 'monitored', chrony: { pollMs: 5000 } }), ['timesource.bounds.maxAgeMs (3000) must be larger than timesource.chrony.pollMs (5000)']);
  t.same(checkTimesourceConfig({ kind: 'x' }, 'clock').problems, ['clock.kind must be "system-trusted" or "monitored"'], 'path prefix is configurable');
  for (const p of problems({ kind: 'monitored', gpsd: { port: -1, host: 7 }, chrony: { port: 'x' }, bounds: { maxAgeMs: 1 } })) t.notMatch(p, /\n/, `one line: ${p}`);
});

t.test('parse throws CONFIG_INVALID naming every problem', async (t) => {
  try {
    parseTimesourceConfig({ kind: 'monitored', gpsd: { port: 0 }, chrony: { pollMs: 1 } });
    t.fail('should throw');
  } catch (e) {
    t.ok(e instanceof YiqianError);
    const y = e as YiqianError;
    t.equal(y.code, 'CONFIG_INVALID');
    t.equal(y.text.en, 'invalid time-source configuration: timesource.gpsd.port must be an integer in 1..65535; timesource.chrony.pollMs must be an integer in 100..60000');
    t.same(y.detail, { problems: ['timesource.gpsd.port must be an integer in 1..65535', 'timesource.chrony.pollMs must be an integer in 100..60000'] });
  }
});
