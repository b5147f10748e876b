// startServer in process (main.ts): a start that fails after the evidence store opened its cold
// LMDB environment closes it again (lmdb.h Caveats: one open of an environment per process), and
// the listener, timers and jobs it had started; the appliance (store, HSM) stays the caller's.
import t from 'tap';
import { connect, createServer } from 'node:net';
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initialise } from '../../appliance/src/cli/init.js';
import { evidenceColdPath, openAppliance, startServer } from '../../appliance/src/main.js';
import { openColdTierForRemoval } from '../../appliance/src/store/evidence-project-removal.js';

function freePort(): Promise<number> {
  const s = createServer();
  return new Promise((r) => s.listen(0, '127.0.0.1', () => {
    const p = (s.address() as { port: number }).port;
    s.close(() => r(p));
  }));
}

function connects(port: number): Promise<boolean> {
  return new Promise((r) => {
    const c = connect(port, '127.0.0.1');
    c.once('connect', () => { c.destroy(); r(true); });
    c.once('error', () => r(false));
  });
}

/** Files this process holds open (Linux /proc). */
function openFiles(): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      out.push(readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // closed while listing
    }
  }
  return out;
}

t.test('a failed start closes the evidence cold env it opened', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'yq-start-fail-')), 'data');
  t.teardown(() => rmSync(join(dir, '..'), { recursive: true, force: true }));
  await initialise(dir, false);
  const a = await openAppliance(dir);
  t.teardown(() => a.close());
  const coldFile = join(evidenceColdPath(a), 'data.mdb');

  // The plain-HTTP port is taken: the HTTPS listener is up by then, the cold env long open.
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => busy.close(() => r())));
  const port = (busy.address() as { port: number }).port;
  const httpsPort = await freePort();
  t.ok(openFiles().includes(coldFile) === false, 'the cold env is not open before the start');
  await t.rejects(startServer(a, { listen: `127.0.0.1:${httpsPort}`, listenHttp: `127.0.0.1:${port}` }), /cannot listen/);
  t.notOk(openFiles().includes(coldFile), 'the cold env is closed after the failed start');
  t.equal(await connects(httpsPort), false, 'the HTTPS listener it had opened is closed');

  // The appliance is still whole: its store and HSM work, and the cold env opens again.
  t.ok(await a.store.meta.get('device'), 'the store is still open');
  t.ok((await a.custody.health()).ok, 'the HSM is still open');
  const cold = openColdTierForRemoval(evidenceColdPath(a));
  t.ok(cold, 'the cold env opens again in this process');
  await cold?.close();
});
