// The addon verifies SM2 with its own arithmetic for the SM2 curve (appliance/native/sm2p256-verify.c).
// Every answer must equal OpenSSL's generic EC code (sm2VerifyWithOpenssl) and the pure-TypeScript
// path: random keys, IDs and messages, each signature also corrupted, e at the edges of [0, 2^256),
// keys whose multiples collide inside the ladder (d = 1, 2, n − 2), and a signature whose sum
// s·G + t·P is the point at infinity.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { integer, seq } from '../../appliance/src/crypto/der.js';
import { SM2P256V1, toBytes } from '../../appliance/src/crypto/ec-curve.js';
import { SM2_DEFAULT_ID, SM2_MAX_ID_BYTES, sm2Backend, sm2Digest, sm2PublicKeyFromPrivate, sm2Sign, sm2Verify, sm2VerifyWithOpenssl } from '../../appliance/src/crypto/sm2.js';
import { decodeSm2Signature } from '../../appliance/src/crypto/sm2-der.js';
import * as pure from '../../appliance/src/crypto/sm2-pure.js';

const N = SM2P256V1.n;
const mod = (a: bigint): bigint => ((a % N) + N) % N;
const inv = (a: bigint): bigint => {
  // n is prime: a^(n−2)
  let r = 1n;
  let b = mod(a);
  for (let e = N - 2n; e > 0n; e >>= 1n, b = (b * b) % N) if (e & 1n) r = (r * b) % N;
  return r;
};

if (sm2Backend() !== 'addon') {
  t.pass('skipped: the curve-specific verification is in the addon, which is not loaded (YIQIAN_ALLOW_NO_ADDON)');
} else {
  t.test('random keys, IDs and messages: valid and corrupted signatures, same answer as OpenSSL', async (t) => {
    const ids = [SM2_DEFAULT_ID, Buffer.alloc(0), Buffer.from('ALICE123@YAHOO.COM'), Buffer.alloc(300, 0x5a)];
    let compared = 0;
    let valid = 0;
    const differ: string[] = [];
    for (let i = 0; i < 120; i++) {
      const d = randomBytes(32);
      d[0] &= 0x7f;
      if (d.every((b) => b === 0)) d[31] = 1;
      const pub = sm2PublicKeyFromPrivate(d);
      const id = ids[i % ids.length];
      const msg = randomBytes(i % 97);
      const sig = await sm2Sign(d, msg, { id });
      const flipped = Buffer.from(sig);
      flipped[sig.length - 1 - (i % 32)] ^= 1 << (i % 8);
      const cases: [string, Buffer, Buffer, Buffer][] = [
        ['valid', msg, sig, id],
        ['a flipped bit in s or r', msg, flipped, id],
        ['another message', Buffer.concat([msg, Buffer.from([i])]), sig, id],
        ['another ID', msg, sig, Buffer.concat([id, Buffer.from('x')])],
      ];
      for (const [why, m, s, idv] of cases) {
        const ours = await sm2Verify(pub, m, s, { id: idv });
        const openssl = await sm2VerifyWithOpenssl(pub, m, s, { id: idv });
        compared++;
        if (ours) valid++;
        if (ours !== openssl) differ.push(`${i} ${why}: ours ${ours}, OpenSSL ${openssl}`);
        if (why === 'valid' && !ours) differ.push(`${i}: a valid signature refused`);
      }
    }
    t.same(differ, [], `${compared} verifications agree with OpenSSL`);
    t.equal(valid, 120, 'exactly the 120 untouched signatures verify');
  });

  t.test('a given e: 0, n − 1, n, 2^256 − 1 and random, signed by OpenSSL, checked by both and by pure-JS', async (t) => {
    const d = randomBytes(32);
    d[0] &= 0x7f;
    const pub = sm2PublicKeyFromPrivate(d);
    const es = [Buffer.alloc(32), toBytes(N - 1n, 32), toBytes(N, 32), Buffer.alloc(32, 0xff), randomBytes(32)];
    for (const e of es) {
      const sig = await sm2Sign(d, e, { prehashed: true });
      const { r, s } = decodeSm2Signature(sig);
      t.equal(await sm2Verify(pub, e, sig, { prehashed: true }), true, `e = ${e.toString('hex').slice(0, 8)}…: ours`);
      t.equal(await sm2VerifyWithOpenssl(pub, e, sig, { prehashed: true }), true, 'OpenSSL');
      t.equal(pure.verifyDigest(pub, e, r, s, SM2P256V1), true, 'pure-JS');
      const other = Buffer.from(e);
      other[31] ^= 1;
      t.equal(await sm2Verify(pub, other, sig, { prehashed: true }), false, 'another e is refused');
    }
    // e and e + n are the same modulo n (GB/T 32918.2 B7 reduces e + x1): both verify or neither.
    const e = Buffer.alloc(32);
    const sig = await sm2Sign(d, e, { prehashed: true });
    const ePlusN = toBytes(N, 32);
    t.equal(await sm2Verify(pub, ePlusN, sig, { prehashed: true }), await sm2VerifyWithOpenssl(pub, ePlusN, sig, { prehashed: true }), 'e = n against a signature over 0');
  });

  t.test('keys d = 1, 2 and n − 2: multiples of P and of G meet inside the ladder', async (t) => {
    for (const dv of [1n, 2n, 3n, N - 2n]) {
      const d = toBytes(dv, 32);
      const pub = sm2PublicKeyFromPrivate(d);
      for (let i = 0; i < 40; i++) {
        const msg = Buffer.from(`collide ${dv} ${i}`);
        const sig = await sm2Sign(d, msg);
        const ours = await sm2Verify(pub, msg, sig);
        t.equal(ours, true, `d = ${dv > 3n ? 'n − 2' : dv}, message ${i}`);
        const bad = Buffer.from(sig);
        bad[bad.length - 1] ^= 0x10;
        t.equal(await sm2Verify(pub, msg, bad), await sm2VerifyWithOpenssl(pub, msg, bad), 'a corrupted one: same as OpenSSL');
      }
    }
  });

  t.test('s·G + t·P at infinity is refused (B6), as OpenSSL refuses it', async (t) => {
    const dv = 0x1234567890abcdefn;
    const pub = sm2PublicKeyFromPrivate(toBytes(dv, 32));
    // s + (r + s)·d ≡ 0  ⇔  s = −r·d / (1 + d)  (mod n)
    const r = 0x42n;
    const s = mod(-r * dv * inv(1n + dv));
    t.equal(mod(s + mod(r + s) * dv), 0n, 'the sum is s·G + t·d·G = 0·G');
    const sig = seq(integer(r), integer(s));
    const e = Buffer.alloc(32);
    t.equal(await sm2Verify(pub, e, sig, { prehashed: true }), false, 'ours refuses');
    t.equal(await sm2VerifyWithOpenssl(pub, e, sig, { prehashed: true }), false, 'OpenSSL refuses');
    t.equal(pure.verifyDigest(pub, e, r, s, SM2P256V1), false, 'pure-JS refuses');
  });

  t.test('the digest form agrees with the message form (Z_A and e computed in the addon)', async (t) => {
    const d = randomBytes(32);
    d[0] &= 0x7f;
    const pub = sm2PublicKeyFromPrivate(d);
    for (const id of [SM2_DEFAULT_ID, Buffer.alloc(0), Buffer.alloc(SM2_MAX_ID_BYTES, 1)]) {
      const msg = randomBytes(64);
      const sig = await sm2Sign(d, msg, { id });
      t.equal(await sm2Verify(pub, sm2Digest(pub, msg, id), sig, { prehashed: true }), true, `id of ${id.length} bytes, as e`);
      t.equal(await sm2Verify(pub, msg, sig, { id }), true, `id of ${id.length} bytes, as the message`);
    }
    const tooLong = Buffer.alloc(SM2_MAX_ID_BYTES + 1, 1);
    await t.rejects(sm2Sign(d, Buffer.from('x'), { id: tooLong }), { code: 'BAD_REQUEST' }, 'an ID OpenSSL cannot sign with is the caller\'s error, not a 500');
    await t.rejects(sm2Verify(pub, Buffer.from('x'), Buffer.alloc(8), { id: tooLong }), { code: 'BAD_REQUEST' }, 'the same limit for verification');
  });
}
