// Encrypt-then-MAC at rest (STANDARDS.md §8): round trips, the documented byte format rebuilt
// independently from node:crypto, and every kind of tampering → INTEGRITY_CHECK_FAILED.
import t from 'tap';
import { createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { openSm4, sealSm4, sealedKeyId } from '../../appliance/src/crypto/sealed-sm4.js';

const master = randomBytes(32);

t.test('round trip, keyId, fresh IV per seal', async (t) => {
  for (const len of [0, 1, 15, 16, 17, 4096]) {
    const pt = randomBytes(len);
    const sealed = sealSm4(master, 'kek-2026-01', pt);
    t.same(openSm4(master, sealed), pt, `${len} bytes`);
    t.equal(sealedKeyId(sealed), 'kek-2026-01');
  }
  const aad = Buffer.from('record:patient/42');
  t.same(openSm4(master, sealSm4(master, '密钥-1', Buffer.from('x'), aad), aad), Buffer.from('x'), 'AAD and a UTF-8 keyId');
  t.equal(sealedKeyId(sealSm4(master, '密钥-1', Buffer.from('x'))), '密钥-1');
  const a = sealSm4(master, 'k', Buffer.from('same'));
  const b = sealSm4(master, 'k', Buffer.from('same'));
  t.notSame(a, b, 'two seals of the same plaintext differ (random IV)');
  // IVs come from a pooled block refilled every 256 seals: across several refills none repeats
  // and none is the zero bytes a wiped pool slot holds.
  const ivs = new Set<string>();
  for (let i = 0; i < 1000; i++) ivs.add(sealSm4(master, 'k', Buffer.from('x')).subarray(5, 21).toString('hex'));
  t.equal(ivs.size, 1000, '1,000 seals, 1,000 distinct IVs');
  t.notOk(ivs.has('00'.repeat(16)), 'no zero IV');
});

t.test('the byte format is the documented one', async (t) => {
  const pt = Buffer.from('plaintext of thirty-three bytes!!');
  const aad = Buffer.from('aad');
  const sealed = sealSm4(master, 'kid', pt, aad);
  t.equal(sealed[0], 1, 'version 1');
  t.equal(sealed[1], 1, 'alg 1 = SM4-CBC + HMAC-SM3');
  t.equal(sealed.readUInt16BE(2), 3, 'keyId length');
  t.equal(sealed.subarray(4, 7).toString(), 'kid');
  const iv = sealed.subarray(7, 23);
  const c = sealed.subarray(23, sealed.length - 32);
  const tag = sealed.subarray(sealed.length - 32);
  t.equal(c.length, 48, 'PKCS#7-padded SM4-CBC');
  const okm = Buffer.from(hkdfSync('sm3', master, Buffer.alloc(0), Buffer.from('yiqian sealed-sm4 v1 alg 1: K_enc(16) || K_mac(32)'), 48));
  const aadLen = Buffer.alloc(8);
  aadLen.writeBigUInt64BE(3n);
  const expected = createHmac('sm3', okm.subarray(16)).update(sealed.subarray(0, 23)).update(aadLen).update(aad).update(c).digest();
  t.same(tag, expected, 'T = HMAC-SM3(K_mac, version ‖ alg ‖ L ‖ keyId ‖ IV ‖ len64(AAD) ‖ AAD ‖ C)');
  const d = createDecipheriv('sm4-cbc', okm.subarray(0, 16), iv);
  t.same(Buffer.concat([d.update(c), d.final()]), pt, 'C = SM4-CBC(K_enc, IV, P)');
});

t.test('every single-byte tamper, truncation, wrong AAD and wrong key fail the integrity check', async (t) => {
  const aad = Buffer.from('ctx');
  const sealed = sealSm4(master, 'kid', Buffer.from('the quick brown fox'), aad);
  let failures = 0;
  for (let i = 0; i < sealed.length; i++) {
    for (const flip of [0x01, 0x80]) {
      const bad = Buffer.from(sealed);
      bad[i] ^= flip;
      try {
        openSm4(master, bad, aad);
      } catch (e) {
        if ((e as { code?: string; status?: number }).code === 'INTEGRITY_CHECK_FAILED' && (e as { status?: number }).status === 400) failures++;
      }
    }
  }
  t.equal(failures, sealed.length * 2, `all ${sealed.length * 2} single-bit tampers rejected with INTEGRITY_CHECK_FAILED`);
  const fail = { code: 'INTEGRITY_CHECK_FAILED', status: 400 };
  t.throws(() => openSm4(master, sealed, Buffer.from('cty')), fail, 'wrong AAD');
  t.throws(() => openSm4(master, sealed), fail, 'missing AAD');
  t.throws(() => openSm4(randomBytes(32), sealed, aad), fail, 'wrong key');
  t.throws(() => openSm4(master, sealed.subarray(0, sealed.length - 1), aad), fail, 'truncated');
  t.throws(() => openSm4(master, sealed.subarray(0, sealed.length - 48), aad), fail, 'a block dropped');
  t.throws(() => openSm4(master, Buffer.concat([sealed, Buffer.alloc(16)]), aad), fail, 'extended');
  t.throws(() => openSm4(master, Buffer.alloc(3), aad), fail, 'too short');
  t.throws(() => sealedKeyId(Buffer.from([9, 1, 0, 0])), fail, 'unknown version');
  t.throws(() => sealSm4(Buffer.alloc(16), 'k', Buffer.alloc(1)), { code: 'INVALID_KEY' }, 'master key must be 32 bytes');
});

t.test('AAD boundaries are unambiguous', async (t) => {
  // Moving bytes between AAD and keyId must not verify (lengths are bound into the MAC).
  const s1 = sealSm4(master, 'ab', Buffer.from('m'), Buffer.from('c'));
  t.throws(() => openSm4(master, s1, Buffer.from('bc')), { code: 'INTEGRITY_CHECK_FAILED' });
});
