// store/reparse-on-change.ts: the answer is always what the store holds now; the parse is skipped
// only while the bytes are unchanged; the shared value cannot be changed by a caller.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { reparseOnChange } from '../../appliance/src/store/reparse-on-change.js';

t.test('fresh on every read, parsed once per distinct bytes, frozen', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'yq-reparse-'));
  const env = open({ path: dir, maxDbs: 2, encoding: 'json' });
  t.teardown(async () => {
    await env.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const db = env.openDB({ name: 'certs', encoding: 'json' });
  const read = reparseOnChange<{ serial: string; status: string; detail?: { reason: string } }>(db, 3);

  t.equal(read('01'), undefined, 'nothing stored');
  await db.put('01', { serial: '01', status: 'good', detail: { reason: '证书有效' } });
  const a = read('01');
  t.same(a, db.get('01'), 'what db.get answers');
  t.equal(read('01'), a, 'the same bytes: the same (already parsed) value');
  t.ok(Object.isFrozen(a) && Object.isFrozen(a?.detail), 'frozen, nested objects too');
  t.throws(() => {
    (a as { status: string }).status = 'revoked';
  }, TypeError, 'a caller cannot change what others are handed');

  await db.put('01', { serial: '01', status: 'revoked', detail: { reason: 'keyCompromise' } });
  const b = read('01');
  t.equal(b?.status, 'revoked', 'a change is seen at the next read');
  t.not(b, a);
  t.equal(a?.status, 'good', 'the value handed out before is untouched');

  await db.remove('01');
  t.equal(read('01'), undefined, 'a removal is seen too');
  await db.put('01', { serial: '01', status: 'good' });
  t.equal(read('01')?.status, 'good', 'and a record put back');

  // Past `max` entries the cache starts over; answers stay right.
  for (const k of ['02', '03', '04', '05']) await db.put(k, { serial: k, status: 'good' });
  for (const k of ['01', '02', '03', '04', '05', '01']) t.equal(read(k)?.serial, k, `key ${k}`);
});
