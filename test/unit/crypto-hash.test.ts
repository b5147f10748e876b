// SM3 / SHA-2 digests, HMAC and HKDF of crypto/hash.ts against published vectors and against
// their RFC definitions built from the bare hash.
import t from 'tap';
import { createHash } from 'node:crypto';
import { digest, hashLength, hkdf, hmac } from '../../appliance/src/crypto/hash.js';

const hex = (s: string): Buffer => Buffer.from(s, 'hex');

t.test('SM3 vectors (GB/T 32905-2016 Annex A, STANDARDS.md §1 vector 1)', async (t) => {
  t.equal(digest('sm3', Buffer.from('abc')).toString('hex'), '66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0');
  t.equal(digest('sm3', Buffer.from('abcd'.repeat(16))).toString('hex'), 'debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732');
  t.equal(digest('sm3', [Buffer.from('ab'), Buffer.from(''), Buffer.from('c')]).toString('hex'), digest('sm3', Buffer.from('abc')).toString('hex'), 'parts hash as their concatenation');
});

t.test('SHA-2 vectors (FIPS 180-4 examples)', async (t) => {
  t.equal(digest('sha256', Buffer.from('abc')).toString('hex'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  t.equal(digest('sha384', Buffer.from('abc')).toString('hex').slice(0, 16), 'cb00753f45a35e8b');
  t.equal(digest('sha512', Buffer.from('abc')).toString('hex').slice(0, 16), 'ddaf35a193617aba');
  t.same([hashLength('sm3'), hashLength('sha256'), hashLength('sha384'), hashLength('sha512')], [32, 32, 48, 64]);
  t.throws(() => digest('md5' as never, Buffer.alloc(1)), { code: 'UNSUPPORTED_ALGORITHM' });
});

/** HMAC by its definition (RFC 2104 §2) on the bare hash, block size 64 for SM3/SHA-256. */
function hmacByDefinition(alg: string, block: number, key: Buffer, data: Buffer): Buffer {
  const k = Buffer.alloc(block);
  (key.length > block ? createHash(alg).update(key).digest() : key).copy(k);
  const ipad = Buffer.from(k.map((b) => b ^ 0x36));
  const opad = Buffer.from(k.map((b) => b ^ 0x5c));
  return createHash(alg).update(opad).update(createHash(alg).update(ipad).update(data).digest()).digest();
}

t.test('HMAC-SM3', async (t) => {
  // Same value from OpenSSL `openssl mac -digest SM3`, node:crypto and sm-crypto 0.5 [V].
  t.equal(hmac('sm3', Buffer.from('Jefe'), Buffer.from('what do ya want for nothing?')).toString('hex'), '2e87f1d16862e6d964b50a5200bf2b10b764faa9680a296a2405f24bec39f882');
  for (const keyLen of [0, 16, 64, 65, 200]) {
    const key = Buffer.alloc(keyLen, 0xab);
    const data = Buffer.from('yiqian hmac check');
    t.same(hmac('sm3', key, data), hmacByDefinition('sm3', 64, key, data), `key of ${keyLen} bytes`);
  }
  t.same(hmac('sm3', Buffer.from('k'), [Buffer.from('a'), Buffer.from('b')]), hmac('sm3', Buffer.from('k'), Buffer.from('ab')));
  // RFC 4231 test case 2 for HMAC-SHA-256
  t.equal(hmac('sha256', Buffer.from('Jefe'), Buffer.from('what do ya want for nothing?')).toString('hex'), '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
});

t.test('HKDF (RFC 5869): test case 1 with SHA-256, and HKDF-SM3 by its definition', async (t) => {
  const ikm = Buffer.alloc(22, 0x0b);
  const salt = hex('000102030405060708090a0b0c');
  const info = hex('f0f1f2f3f4f5f6f7f8f9');
  t.equal(hkdf('sha256', ikm, salt, info, 42).toString('hex'), '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865');
  // Extract-then-expand by hand with HMAC-SM3.
  const prk = hmacByDefinition('sm3', 64, salt, ikm);
  let tPrev: Buffer = Buffer.alloc(0);
  const okm: Buffer[] = [];
  for (let i = 1; okm.length * 32 < 80; i++) {
    tPrev = hmacByDefinition('sm3', 64, prk, Buffer.concat([tPrev, info, Buffer.from([i])]));
    okm.push(tPrev);
  }
  t.same(hkdf('sm3', ikm, salt, info, 80), Buffer.concat(okm).subarray(0, 80));
  t.throws(() => hkdf('sm3', ikm, salt, info, 255 * 32 + 1), { code: 'BAD_REQUEST' });
});
