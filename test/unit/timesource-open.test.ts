// openTimeSource without peers: the development source says so in the log; a monitored source
// whose gpsd/chronyc are not there stays UNSYNCED and says why (and logs each outage once).
import t from 'tap';
import { openTimeSource } from '../../firmware-bridge/timesource/open-time-source.js';
import { parseTimesourceConfig } from '../../firmware-bridge/timesource/config-shape.js';
import { DEVELOPMENT_NOTICE } from '../../firmware-bridge/timesource/time-source.js';
import { freeTcpPort } from '../helpers/gpsd-peer.js';

function captureLog(): { lines: Array<{ level: string; obj: object; msg?: string }>; log: Record<'info' | 'warn' | 'error' | 'debug', (obj: object, msg?: string) => void> } {
  const lines: Array<{ level: string; obj: object; msg?: string }> = [];
  const at = (level: string) => (obj: object, msg?: string) => void lines.push({ level, obj, msg });
  return { lines, log: { info: at('info'), warn: at('warn'), error: at('error'), debug: at('debug') } };
}

t.test('system-trusted: development only, in the log and the status', async (t) => {
  const { lines, log } = captureLog();
  const src = await openTimeSource(parseTimesourceConfig('system-trusted'), { log });
  t.teardown(() => src.close());
  t.match(lines, [{ level: 'warn', obj: { timesource: 'system-trusted', notice: DEVELOPMENT_NOTICE }, msg: /development only/ }]);
  t.match(src.status(), { state: 'SYNCED', development: true, notice: DEVELOPMENT_NOTICE });
  t.match(src.now(), { synced: true, development: true, source: 'system-trusted' });
});

t.test('monitored with nothing to talk to: UNSYNCED, with the reasons', async (t) => {
  const { lines, log } = captureLog();
  const port = await freeTcpPort(); // nothing listens there
  const src = await openTimeSource(
    parseTimesourceConfig({
      kind: 'monitored',
      gpsd: { host: '127.0.0.1', port },
      chrony: { host: '127.0.0.1', port: 9, pollMs: 100, chronyc: '/nonexistent/chronyc' },
      bounds: { maxAgeMs: 1000 },
    }),
    { log, waitForSyncMs: 700, gpsdBackoff: { initialMs: 50, maxMs: 100 } },
  );
  t.teardown(() => src.close());
  const s = src.status();
  t.equal(s.state, 'UNSYNCED');
  t.equal(s.source, 'gpsd+chrony');
  t.match(s.reasons, [/^chrony: no reading from chronyd 127\.0\.0\.1:9 yet: chronyc 127\.0\.0\.1:9: \/nonexistent\/chronyc not found$/, new RegExp(`^gps: no report from gpsd 127\\.0\\.0\\.1:${port} yet; gpsd not connected \\(gpsd 127\\.0\\.0\\.1:${port}: ECONNREFUSED\\)$`)]);
  t.equal(lines.filter((l) => l.msg === 'gpsd not reachable; reconnecting').length, 1, 'gpsd outage logged once despite several attempts');
  t.equal(lines.filter((l) => l.msg === 'chronyd does not answer').length, 1, 'chronyd outage logged once despite several polls');
  t.match(lines.at(-1), { level: 'info', msg: 'time source opened', obj: { state: 'UNSYNCED' } });
});
