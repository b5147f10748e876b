// SM2 against two independent JavaScript implementations, sm-crypto 0.5 and sm-crypto-v2:
// signatures (SM3 with Z_A, DER, userId) and C1C3C2 encryption, both directions, on the
// engine's backend and on the pure-JS path.
import t from 'tap';
import smCrypto from 'sm-crypto';
import { sm2 as smV2 } from 'sm-crypto-v2';
import { generateSm2KeyPair, sm2Backend, sm2Decrypt, sm2Encrypt, sm2Sign, sm2Verify, sm2Za } from '../../appliance/src/crypto/sm2.js';
import * as pure from '../../appliance/src/crypto/sm2-pure.js';
import { encodeSm2Signature, decodeSm2Signature } from '../../appliance/src/crypto/sm2-der.js';

const sm05 = smCrypto.sm2;
const IDS = ['1234567812345678', 'ALICE123@YAHOO.COM'];

const keys = Array.from({ length: 4 }, () => generateSm2KeyPair());

t.test(`signatures: engine (${sm2Backend()}) ⇄ sm-crypto 0.5 / sm-crypto-v2`, async (t) => {
  for (const [i, { privateKey, publicKey }] of keys.entries()) {
    const dHex = privateKey.toString('hex');
    const pHex = publicKey.toString('hex');
    for (const userId of IDS) {
      const id = Buffer.from(userId);
      const msg = Buffer.from(`处方 ${i} / ${userId}`);
      const opts = { hash: true, der: true, userId };
      const ours = await sm2Sign(privateKey, msg, { id });
      t.ok(sm05.doVerifySignature(Array.from(msg), ours.toString('hex'), pHex, opts), `sm-crypto 0.5 verifies ours (${userId})`);
      t.ok(smV2.doVerifySignature(msg, ours.toString('hex'), pHex, opts), `sm-crypto-v2 verifies ours (${userId})`);
      const theirs05 = Buffer.from(sm05.doSignature(Array.from(msg), dHex, { ...opts, publicKey: pHex }), 'hex');
      const theirsV2 = Buffer.from(smV2.doSignature(msg, dHex, { ...opts, publicKey: pHex }), 'hex');
      t.ok(await sm2Verify(publicKey, msg, theirs05, { id }), `we verify sm-crypto 0.5 (${userId})`);
      t.ok(await sm2Verify(publicKey, msg, theirsV2, { id }), `we verify sm-crypto-v2 (${userId})`);
      t.notOk(await sm2Verify(publicKey, msg, theirsV2, { id: Buffer.from(userId + 'x') }), 'and not under another ID');
      // pure-JS path against the same peers
      const { r, s } = decodeSm2Signature(theirs05);
      t.ok(pure.verify(publicKey, msg, r, s, id), 'pure-JS verifies sm-crypto 0.5');
      const p = pure.sign(BigInt('0x' + dHex), msg, id);
      t.ok(smV2.doVerifySignature(msg, encodeSm2Signature(p.r, p.s).toString('hex'), pHex, opts), 'sm-crypto-v2 verifies pure-JS');
      t.equal(sm2Za(publicKey, id).toString('hex'), Buffer.from(smV2.getZ(pHex, userId)).toString('hex'), 'Z_A equals sm-crypto-v2 getZ');
    }
  }
});

t.test('encryption C1C3C2 (cipherMode 1): engine ⇄ sm-crypto 0.5 / sm-crypto-v2', async (t) => {
  for (const { privateKey, publicKey } of keys) {
    const dHex = privateKey.toString('hex');
    const pHex = publicKey.toString('hex');
    for (const len of [1, 31, 32, 33, 200]) {
      const pt = Buffer.from(Array.from({ length: len }, (_, i) => (i * 7 + len) & 0xff));
      // sm-crypto writes C1 without the 04 prefix and expects it so.
      const ours = await sm2Encrypt(publicKey, pt, 'c1c3c2');
      const oursNo04 = ours.subarray(1).toString('hex');
      t.same(Buffer.from(sm05.doDecrypt(oursNo04, dHex, 1, { output: 'array' }) as unknown as number[]), pt, `sm-crypto 0.5 decrypts ours (${len})`);
      t.same(Buffer.from(smV2.doDecrypt(oursNo04, dHex, 1, { output: 'array' }) as unknown as Uint8Array), pt, `sm-crypto-v2 decrypts ours (${len})`);
      const t05 = Buffer.from('04' + sm05.doEncrypt(Array.from(pt), pHex, 1), 'hex');
      const tV2 = Buffer.from('04' + smV2.doEncrypt(pt, pHex, 1), 'hex');
      // Neither peer draws k again when KDF gives all zeros (GB/T 32918.4 §6.1 A5), so 1 in
      // 256 of their 1-octet ciphertexts is one the standard (§7.1 B4) says to refuse.
      for (const [name, c] of [['sm-crypto 0.5', t05], ['sm-crypto-v2', tV2]] as const) {
        if (kdfWasAllZero(c, pt)) await t.rejects(sm2Decrypt(privateKey, c, 'c1c3c2'), { code: 'DECRYPTION_FAILED' }, `we refuse ${name}'s all-zero-KDF ciphertext (${len})`);
        else t.same(await sm2Decrypt(privateKey, c, 'c1c3c2'), pt, `we decrypt ${name} (${len})`);
      }
      if (!kdfWasAllZero(tV2, pt)) t.same(pure.decrypt(BigInt('0x' + dHex), tV2), pt, 'pure-JS decrypts sm-crypto-v2');
    }
  }
});

/** C2 = M ⊕ t (raw C1‖C3‖C2): C2 equal to M means t was all zeros. */
function kdfWasAllZero(c1c3c2: Buffer, pt: Buffer): boolean {
  return c1c3c2.subarray(65 + 32).equals(pt);
}

t.test('a ciphertext whose KDF output is all zeros is refused (GB/T 32918.4 §7.1 B4), ours never is one', async (t) => {
  const { privateKey, publicKey } = keys[0];
  const pt = Buffer.from([0x5a]);
  // sm-crypto-v2 does not redraw k: about 1 in 256 of its 1-octet ciphertexts has t = 0.
  let bad: Buffer | undefined;
  for (let i = 0; i < 20_000 && !bad; i++) {
    const c = Buffer.from('04' + smV2.doEncrypt(pt, publicKey.toString('hex'), 1), 'hex');
    if (kdfWasAllZero(c, pt)) bad = c;
  }
  if (!bad) return t.fail('sm-crypto-v2 gave no all-zero-KDF ciphertext in 20,000 tries');
  await t.rejects(sm2Decrypt(privateKey, bad, 'c1c3c2'), { code: 'DECRYPTION_FAILED' }, 'engine refuses it');
  t.throws(() => pure.decrypt(BigInt('0x' + privateKey.toString('hex')), bad), /all-zero KDF/, 'pure-JS refuses it');
  let ours = 0;
  for (let i = 0; i < 2_000; i++) if (kdfWasAllZero(await sm2Encrypt(publicKey, pt, 'c1c3c2'), pt)) ours++;
  t.equal(ours, 0, 'none of 2,000 of our 1-octet ciphertexts has t = 0 (k is drawn again)');
});
