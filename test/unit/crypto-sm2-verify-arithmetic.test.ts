// The addon verifies SM2 with its own arithmetic for the SM2 curve (appliance/native/sm2p256-verify.c).
// Every answer must equal OpenSSL's generic EC code (sm2VerifyWithOpenssl) and the pure-TypeScript
// path: random keys, IDs and messages, each signature also corrupted, e at the edges of [0, 2^256),
// keys whose multiples collide inside the ladder (d = 1, 2, n − 2), and a signature whose sum
// s·G + t·P is the point at infinity. A key verified again and again gets a fixed-base table
// (from its KEY_TABLE_AFTER-th verification): the same answers through the table, for keys
// verified concurrently and for two keys that take turns in one cache slot.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { integer, seq } from '../../appliance/src/crypto/der.js';
import { SM2P256V1, toBytes } from '../../appliance/src/crypto/ec-curve.js';
import { SM2_DEFAULT_ID, SM2_MAX_ID_BYTES, sm2Backend, sm2Digest, sm2PublicKeyFromPrivate, sm2Sign, sm2Verify, sm2VerifyTableReset, sm2VerifyTableStats, sm2VerifyWithOpenssl } from '../../appliance/src/crypto/sm2.js';
import { decodeSm2Signature } from '../../appliance/src/crypto/sm2-der.js';
import * as pure from '../../appliance/src/crypto/sm2-pure.js';

const N = SM2P256V1.n;
/** A key's verifications before its fixed-base table is used (KEY_TABLE_AFTER in sm2p256-verify.c). */
const TABLE_AFTER = 4;

const randomKey = (): Buffer => {
  const d = randomBytes(32);
  d[0] &= 0x7f;
  if (d.every((b) => b === 0)) d[31] = 1;
  return d;
};

/** Signatures of one key, each valid, with a flipped bit, and over another message: [msg, sig, expected]. */
async function casesOf(d: Buffer, count: number, tag: string): Promise<[Buffer, Buffer, boolean][]> {
  const out: [Buffer, Buffer, boolean][] = [];
  for (let i = 0; i < count; i++) {
    const msg = Buffer.from(`${tag} ${i} ${randomBytes(8).toString('hex')}`);
    const sig = await sm2Sign(d, msg);
    const flipped = Buffer.from(sig);
    flipped[sig.length - 1 - (i % 32)] ^= 1 << (i % 8);
    out.push([msg, sig, true], [msg, flipped, false], [Buffer.concat([msg, Buffer.from('!')]), sig, false]);
  }
  return out;
}
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

  t.test('keys d = 1, 2 and n − 2: multiples of P and of G meet inside the ladder and in the tables', async (t) => {
    const before = sm2VerifyTableStats()!;
    for (const dv of [1n, 2n, 3n, N - 2n]) {
      sm2VerifyTableReset(); // earlier keys hold slots (2G and (n − 2)G = −2G even share one: same X)
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
    const after = sm2VerifyTableStats()!;
    t.ok(after.uses - before.uses >= 4 * (80 - TABLE_AFTER), `the keys' own tables answered most of them (${after.uses - before.uses})`);
  });

  t.test('a returning key: its fixed-base table gives the same answers as OpenSSL', async (t) => {
    sm2VerifyTableReset();
    const d = randomKey();
    const pub = sm2PublicKeyFromPrivate(d);
    const before = sm2VerifyTableStats()!;
    const cases = await casesOf(d, 40, 'returning');
    const differ: string[] = [];
    for (const [i, [msg, sig, expected]] of cases.entries()) {
      const ours = await sm2Verify(pub, msg, sig);
      const openssl = await sm2VerifyWithOpenssl(pub, msg, sig);
      if (ours !== expected || openssl !== expected) differ.push(`${i}: expected ${expected}, ours ${ours}, OpenSSL ${openssl}`);
    }
    t.same(differ, [], `${cases.length} verifications of one key`);
    const after = sm2VerifyTableStats()!;
    t.equal(after.built - before.built, 1, 'one table built for the key');
    // From the TABLE_AFTER-th verification on, each one that reaches B6 uses the table: every valid
    // one and every one over another message; a flipped bit may already fail B1–B5 (or the DER).
    const used = after.uses - before.uses;
    t.ok(used >= (cases.length * 2) / 3 - TABLE_AFTER && used <= cases.length - TABLE_AFTER + 1, `used from the ${TABLE_AFTER}th verification on (${used} of ${cases.length})`);
    // The point at infinity through the table: s + (r + s)·d ≡ 0 (mod n).
    const dv = BigInt(`0x${d.toString('hex')}`);
    const r = 0x42n;
    const s = mod(-r * dv * inv(1n + dv));
    const sig = seq(integer(r), integer(s));
    t.equal(await sm2Verify(pub, Buffer.alloc(32), sig, { prehashed: true }), false, 's·G + t·P = O through the table is refused');
    t.equal(sm2VerifyTableStats()!.uses - after.uses, 1, 'and that went through the table');
  });

  t.test('keys verified concurrently, and two keys that take turns in one cache slot', async (t) => {
    sm2VerifyTableReset();
    const keys = Array.from({ length: 6 }, randomKey);
    const all = await Promise.all(keys.map((d, k) => casesOf(d, 12, `key ${k}`)));
    const before = sm2VerifyTableStats()!;
    const answers = await Promise.all(all.flatMap((cases, k) => cases.map(async ([msg, sig, expected]) => (await sm2Verify(sm2PublicKeyFromPrivate(keys[k]), msg, sig)) === expected)));
    t.equal(answers.filter((ok) => !ok).length, 0, `${answers.length} verifications in flight together, all as expected`);
    t.ok(sm2VerifyTableStats()!.built - before.built >= 1, 'tables were built meanwhile');

    // The table cache is direct-mapped by byte 24 of X (slot_of in sm2p256-verify.c: pub[25] of 04‖X‖Y).
    const byByte = new Map<number, Buffer>();
    let pair: [Buffer, Buffer] | undefined;
    while (!pair) {
      const d = randomKey();
      const b = sm2PublicKeyFromPrivate(d)[25];
      const other = byByte.get(b);
      if (other) pair = [other, d];
      else byByte.set(b, d);
    }
    const turns = await Promise.all(pair.map((d, k) => casesOf(d, 10, `slot ${k}`)));
    const pubs = pair.map((d) => sm2PublicKeyFromPrivate(d));
    const differ: string[] = [];
    const check = async (k: number, i: number): Promise<void> => {
      const [msg, sig, expected] = turns[k][i];
      const ours = await sm2Verify(pubs[k], msg, sig);
      if (ours !== expected) differ.push(`key ${k} case ${i}: expected ${expected}, got ${ours}`);
    };
    sm2VerifyTableReset();
    const mid = sm2VerifyTableStats()!;
    for (let i = 0; i < 15; i++) for (const k of [0, 1]) for (let rep = 0; rep < TABLE_AFTER; rep++) await check(k, i % turns[k].length);
    const busy = sm2VerifyTableStats()!;
    t.equal(busy.built - mid.built, 1, 'while both keys are busy the first keeps the slot: one build, not one per turn');
    // Once the first key has been idle for TABLE_IDLE_NS (2 s), the second takes the slot.
    await new Promise((r) => setTimeout(r, 2100));
    await check(1, 0);
    const taken = sm2VerifyTableStats()!;
    t.equal(taken.built - busy.built, 1, 'the second key got the slot after the first went idle');
    t.equal(taken.uses - busy.uses, 1, 'and used it at once');
    for (let i = 0; i < 10; i++) for (const k of [0, 1]) await check(k, i);
    t.same(differ, [], 'each answer right, through the table or the ladder, while the keys share the slot');
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
