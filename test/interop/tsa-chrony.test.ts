// The TSA on a real chronyd (PEERS.md recipe): with an injected offset inside the bound the
// clock is SYNCED and tokens are granted with the live accuracy; restarting chronyd with an
// offset past the bound makes the TSA refuse with timeNotAvailable; an offset inside the bound
// again resumes issuing by itself.
import t from 'tap';
import { createHash } from 'node:crypto';
import { pino } from 'pino';
import { buildTimeStampReq, parseTimeStampResp } from '../../appliance/src/asn1/tsp.js';
import { TsaService } from '../../appliance/src/tsa/tsa-service.js';
import { openTimeSource } from '../../firmware-bridge/timesource/open-time-source.js';
import { parseTimesourceConfig } from '../../firmware-bridge/timesource/config-shape.js';
import { ClockGate } from '../../firmware-bridge/timesource/clock-gate.js';
import { startChronyPeers } from '../helpers/chrony-peer.js';
import { makePkiFixture } from '../helpers/pki-hierarchy.js';

const POLICY = '1.2.3.4.5';
const quiet = pino({ level: 'silent' });

t.test('TSA on a real chronyd: offset inside → tokens, past the bound → timeNotAvailable, back → tokens', async (t) => {
  const fx = await makePkiFixture();
  t.teardown(() => fx.close());
  const peers = await startChronyPeers(0.25);
  t.teardown(() => peers.close());
  const clock = await openTimeSource(
    parseTimesourceConfig({
      kind: 'monitored',
      chrony: { host: '127.0.0.1', port: peers.cmdPort, pollMs: 250 },
      bounds: { maxOffsetMs: 1000, maxAgeMs: 3000, degradedOffsetMs: 500, maxRefAgeMs: 4000 },
    }),
    { log: quiet, waitForSyncMs: 5000 },
  );
  t.teardown(() => clock.close());
  const tsa = new TsaService({ certs: fx.store.certs, custody: fx.custody, tokens: fx.store.tsaTokens, gate: new ClockGate(clock), policies: { policies: [{ oid: POLICY }] } });
  const req = buildTimeStampReq({ hash: 'sha256', hashedMessage: createHash('sha256').update('病历').digest(), certReq: true });
  const ask = async () => parseTimeStampResp((await tsa.respond(req, 'ecdsa', { address: '127.0.0.1' })).der);
  const until = async (want: (r: Awaited<ReturnType<typeof ask>>) => boolean, ms: number) => {
    const end = Date.now() + ms;
    for (;;) {
      const r = await ask();
      if (want(r)) return r;
      if (Date.now() > end) return r;
      await new Promise((res) => setTimeout(res, 200));
    }
  };

  const granted = await until((r) => r.status === 0, 10_000);
  t.equal(granted.status, 0, `granted with a 0.25 s offset (state ${clock.status().state})`);
  const acc = granted.tstInfo!.accuracyMicros!;
  t.ok(acc >= 250_000 && acc <= 1_000_000, `accuracy ${acc} µs includes chronyd's 0.25 s offset and stays within 1 s`);

  await peers.stopClient();
  await peers.startClient(1.5);
  const refused = await until((r) => r.status === 2 && r.failInfo === 'timeNotAvailable', 15_000);
  t.equal(refused.status, 2, 'rejection once the offset is 1.5 s (bound 1 s)');
  t.equal(refused.failInfo, 'timeNotAvailable');

  await peers.stopClient();
  await peers.startClient(0.1);
  const again = await until((r) => r.status === 0, 15_000);
  t.equal(again.status, 0, 'issuing resumes by itself when the offset is back inside the bound');
});
