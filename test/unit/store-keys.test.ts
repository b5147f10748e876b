// KeyRegistry on LMDB: put/get/getByLabel/list/delete, unique labels, durable across reopen.
import t, { type Test } from 'tap';
import type { KeyRecord } from '../../appliance/src/crypto/interfaces.js';
import { newId, nowIso } from '../../appliance/src/store/ids.js';
import { openStore } from '../../appliance/src/store/open-store.js';
import { freshStore, rejection } from '../helpers/store-fixture.js';

const fresh = (t: Test) => freshStore(t, 'yq-keys-');


function key(label: string, extra: Partial<KeyRecord> = {}): KeyRecord {
  return {
    id: newId(),
    uri: `pkcs11:token=yiqian;object=${label};type=private`,
    label,
    algorithm: 'sm2',
    mode: 'wrapped',
    token: 'yiqian',
    kekUri: 'pkcs11:token=yiqian;object=kek;type=secret-key',
    mechanism: 'in-process SM2 (addon)',
    createdAt: nowIso(),
    purpose: `test key ${label}`,
    publicKeyInfo: Buffer.from(`spki-${label}`).toString('base64'),
    wrappedKey: Buffer.from(`wrapped-${label}`).toString('base64'),
    ...extra,
  };
}

t.test('put, get, getByLabel, list; survives a reopen', async (t) => {
  const { store, dataDir } = await fresh(t);
  const a = key('device-tls', { algorithm: 'ecdsa-p256', mode: 'hsm', kekUri: undefined, wrappedKey: undefined, mechanism: 'CKM_ECDSA' });
  const b = key('ca-root-sm2');
  await store.keys.put(a);
  await store.keys.put(b);
  const { kekUri: _k, wrappedKey: _w, ...aStored } = a;
  t.same(await store.keys.get(a.id), aStored, 'undefined optional fields are simply absent');
  t.same(await store.keys.getByLabel('ca-root-sm2'), b);
  t.equal(await store.keys.getByLabel('nope'), undefined);
  t.equal(await store.keys.get(newId()), undefined);
  t.same((await store.keys.list()).map((k) => k.label), ['device-tls', 'ca-root-sm2']);
  await store.close();
  const again = await openStore(dataDir);
  t.same(await again.keys.getByLabel('ca-root-sm2'), b);
  await again.close();
});

t.test('a label belongs to one key: KEY_EXISTS 409', async (t) => {
  const { store } = await fresh(t);
  await store.keys.put(key('device-identity'));
  const e = await rejection(store.keys.put(key('device-identity')));
  t.equal(e.code, 'KEY_EXISTS');
  t.equal(e.status, 409);
  t.equal((await store.keys.list()).length, 1);
});

t.test('put with the same id replaces the record and moves its label', async (t) => {
  const { store } = await fresh(t);
  const a = key('old-label');
  await store.keys.put(a);
  await store.keys.put({ ...a, label: 'new-label', purpose: 'renamed' });
  t.equal(await store.keys.getByLabel('old-label'), undefined);
  t.equal((await store.keys.getByLabel('new-label'))?.purpose, 'renamed');
  t.equal((await store.keys.list()).length, 1);
  await store.keys.put(key('old-label')); // the old label is free again
});

t.test('delete removes record and label; deleting again is a no-op', async (t) => {
  const { store } = await fresh(t);
  const a = key('temp');
  await store.keys.put(a);
  await store.keys.delete(a.id);
  t.equal(await store.keys.get(a.id), undefined);
  t.equal(await store.keys.getByLabel('temp'), undefined);
  await store.keys.delete(a.id);
  t.same(await store.keys.list(), []);
});

t.test('malformed records are BAD_REQUEST', async (t) => {
  const { store } = await fresh(t);
  t.equal((await rejection(store.keys.put(key('')))).code, 'BAD_REQUEST');
  t.equal((await rejection(store.keys.put({ ...key('x'), id: '' }))).code, 'BAD_REQUEST');
});
