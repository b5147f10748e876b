// The libuv pool threads that run our SM2 jobs mark themselves SCHED_BATCH (appliance/native/
// pool-thread.h), so that a woken pool thread does not preempt the event loop. Read back from
// /proc (proc(5): field 41 of /proc/self/task/<tid>/stat is the scheduling policy).
import t from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { generateSm2KeyPair, sm2Backend, sm2Sign, sm2Verify } from '../../appliance/src/crypto/sm2.js';

const SCHED_OTHER = 0;
const SCHED_BATCH = 3;

function policies(): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // rest[0] is field 3 (state)
    out.set(Number(tid), Number(rest[41 - 3]));
  }
  return out;
}

t.test('pool threads that ran SM2 jobs are SCHED_BATCH; the event loop is not', { skip: process.platform !== 'linux' || sm2Backend() !== 'addon' ? 'Linux with the SM2 addon only' : false }, async (t) => {
  const { privateKey, publicKey } = generateSm2KeyPair();
  const msg = Buffer.from('医嘱');
  // Enough jobs in flight that every pool thread runs at least one.
  const sigs = await Promise.all(Array.from({ length: 64 }, () => sm2Sign(privateKey, msg)));
  t.ok((await Promise.all(sigs.map((s) => sm2Verify(publicKey, msg, s)))).every(Boolean), 'the jobs did their work');
  const p = policies();
  t.equal(p.get(process.pid), SCHED_OTHER, 'the event-loop thread keeps SCHED_OTHER');
  t.ok([...p.values()].filter((x) => x === SCHED_BATCH).length >= 1, `at least one pool thread is SCHED_BATCH (${[...p.values()].join(',')})`);
});
