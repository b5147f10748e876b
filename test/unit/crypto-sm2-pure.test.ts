// The pure-TypeScript SM2 (crypto/sm2-pure.ts) on the GB/T 32918.2 Annex A test curve with the
// fixed k of the example, and on sm2p256v1 with the vectors of STANDARDS.md §1; the generic
// curve code also checked on P-256 / P-384 against OpenSSL's ECDSA.
import t from 'tap';
import { createHash, generateKeyPairSync, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { Curve, P256, P384, SM2P256V1 } from '../../appliance/src/crypto/ec-curve.js';
import { ecdsaSignDigest, ecdsaVerifyDigest } from '../../appliance/src/crypto/prehashed.js';
import * as pure from '../../appliance/src/crypto/sm2-pure.js';

const h = (s: string): bigint => BigInt('0x' + s.replace(/\s+/g, ''));
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// GB/T 32918.2-2016 Annex A.2, Example 1 (STANDARDS.md §1 vector 2).
const annex = new Curve({
  name: 'GB/T 32918.2 A.2',
  p: h('8542D69E4C044F18E8B92435BF6FF7DE457283915C45517D722EDB8B08F1DFC3'),
  a: h('787968B4FA32C3FD2417842E73BBFEFF2F3C848B6831D7E0EC65228B3937E498'),
  b: h('63E4C6D3B23B0C849CF84241484BFE48F61D59A5B16BA06E6E12D1DA27C5249A'),
  gx: h('421DEBD61B62EAB6746434EBC3CC315E32220B3BADD50BDC4C4E6C147FEDD43D'),
  gy: h('0680512BCBB42C07D47349D2153B70C4E5D7FDFCBFA36EA1A85841B9E46E09A2'),
  n: h('8542D69E4C044F18E8B92435BF6FF7DD297720630485628D5AE74EE7C32E79B7'),
});

t.test('GB/T 32918.2 Annex A.2 Example 1: Z_A, e, r, s exactly', async (t) => {
  const d = h('128B2FA8BD433C6C068C8D803DFF79792A519A55171B1B650C23661D15897263');
  const k = h('6CB28D99385C175C94F94E934817663FC176D925DD72B727260DBAAE1FB2F96F');
  const id = Buffer.from('ALICE123@YAHOO.COM');
  const msg = Buffer.from('message digest');
  const pub = pure.publicKeyFromPrivate(d, annex);
  const Z = pure.za(pub, id, annex);
  t.equal(Z.toString('hex').toUpperCase(), 'F4A38489E32B45B6F876E3AC2168CA392362DC8F23459C1D1146FC3DBFB7BC9A', 'Z_A');
  const e = pure.digestE(pub, msg, id, annex);
  t.equal(e.toString('hex').toUpperCase(), 'B524F552CD82B8B028476E005C377FB19A87E6FC682D48BB5D42E3D9B9EFFE76', 'e');
  const { r, s } = pure.signDigest(d, e, { curve: annex, k });
  t.equal(r, h('40F1EC59F793D9F49E09DCEF49130D4194F79FB1EED2CAA55BACDB49C4E755D1'), 'r');
  t.equal(s, h('6FC6DAC32C5D5CF10C77DFB20F7C2EB667A457872FB09EC56327A67EC7DEEBE7'), 's');
  t.equal(pure.verify(pub, msg, r, s, id, annex), true, 'verifies');
  t.equal(pure.verify(pub, Buffer.from('message digesT'), r, s, id, annex), false, 'altered message');
  t.equal(pure.verify(pub, msg, r, s, Buffer.from('ALICE123@YAHOO.CON'), annex), false, 'other ID');
  t.equal(pure.verify(pub, msg, r, s + 1n, id, annex), false, 'altered s');
});

t.test('sm2p256v1 vector 3 (default ID) verifies; vector 4 Z_A', async (t) => {
  const d = h('6c5a0a0b2eed3cbec3e4f1252bfe0e28c504a1c6bf1999eebb0af9ef0f8e6c85');
  const pub = pure.publicKeyFromPrivate(d);
  t.equal(pub.toString('hex'), '048356e642a40ebd18d29ba3532fbd9f3bbee8f027c3f6f39a5ba2f870369f9988981f5efe55d1c5cdf6c0ef2b070847a14f7fdf4272a8df09c442f3058af94ba1');
  const msg = Buffer.from('ShangMi SM2 Sign Standard');
  const r = h('5b3a799bd94c9063120d7286769220af6b0fa127009af3e873c0e8742edc5f89');
  const s = h('097968a4c8b040fd548d1456b33f470cabd8456bfea53e8a828f92f6d4bdcd77');
  t.equal(pure.verify(pub, msg, r, s), true);
  t.equal(pure.verify(pub, msg, r, s, Buffer.from('1234567812345679')), false, 'other ID');
  t.equal(pure.verify(pub, msg, 0n, s), false, 'r = 0');
  t.equal(pure.verify(pub, msg, r, SM2P256V1.n), false, 's = n');
  t.equal(pure.verify(pub, msg, r, SM2P256V1.n - r), false, 'r + s = n');
  const P4 = Buffer.concat([Buffer.from([4]), hex('D69C2F1EEC3BFB6B95B30C28085C77B125D77A9C39525D8190768F37D6B205B5'), hex('89DCD316BBE7D89A9DC21917F17799E698531F5E6E3E10BD31370B259C3F81C3')]);
  t.equal(pure.za(P4).toString('hex').toUpperCase(), '4D38D2958CA7FD2CFAE3AF04486959CF92C8EF48E8B83A05C112E739D5F181D0');
});

t.test('sign / verify / encrypt / decrypt round trips with random keys', async (t) => {
  for (let i = 0; i < 5; i++) {
    const d = pure.generatePrivate();
    const pub = pure.publicKeyFromPrivate(d);
    const msg = Buffer.from(`message ${i}`);
    const { r, s } = pure.sign(d, msg);
    t.ok(pure.verify(pub, msg, r, s), 'verifies');
    t.notOk(pure.verify(pub, msg, s, r), 'swapped r/s fails');
    const pt = Buffer.alloc(1 + i * 40, i + 1);
    const ct = pure.encrypt(pub, pt);
    t.equal(ct.length, 65 + 32 + pt.length, 'C1 ‖ C3 ‖ C2 length');
    t.same(pure.decrypt(d, ct), pt, 'decrypts');
    const bad = Buffer.from(ct);
    bad[bad.length - 1] ^= 1;
    t.throws(() => pure.decrypt(d, bad), pure.Sm2PureError, 'altered C2 is caught by C3');
    t.throws(() => pure.decrypt(pure.generatePrivate(), ct), pure.Sm2PureError, 'other key');
  }
  t.throws(() => pure.encrypt(pure.publicKeyFromPrivate(5n), Buffer.alloc(0)), pure.Sm2PureError, 'empty message');
});

t.test('KDF (GB/T 32918.4 §5.4.3) is SM3(Z ‖ ct) blocks', async (t) => {
  const z = Buffer.from('shared');
  const block = (c: number): Buffer => createHash('sm3').update(z).update(Buffer.from([0, 0, 0, c])).digest();
  t.same(pure.kdf(z, 70), Buffer.concat([block(1), block(2), block(3)]).subarray(0, 70));
});

t.test('private key range and point validation', async (t) => {
  t.throws(() => pure.publicKeyFromPrivate(0n), pure.Sm2PureError);
  t.throws(() => pure.publicKeyFromPrivate(SM2P256V1.n - 1n), pure.Sm2PureError, 'd = n-1 is not allowed (GB/T 32918.1 §6.1)');
  t.doesNotThrow(() => pure.publicKeyFromPrivate(SM2P256V1.n - 2n));
  const pub = pure.publicKeyFromPrivate(12345n);
  const off = Buffer.from(pub);
  off[64] ^= 1;
  t.throws(() => pure.decodePublic(off), pure.Sm2PureError, 'point off the curve');
  const compressed = Buffer.concat([Buffer.from([2 + (pub[64] & 1)]), pub.subarray(1, 33)]);
  t.same(SM2P256V1.encodePoint(pure.decodePublic(compressed)), pub, 'compressed point decodes to the same point');
  // (n − 1)·G = −G
  const neg = SM2P256V1.mulG(SM2P256V1.n - 1n);
  t.same(neg, { x: SM2P256V1.gx, y: SM2P256V1.p - SM2P256V1.gy });
  t.same(SM2P256V1.mul(3n, SM2P256V1.G), SM2P256V1.mulG(3n), 'variable-base and comb agree');
});

t.test('the same curve code does ECDSA that OpenSSL accepts (P-256, P-384)', async (t) => {
  for (const [curve, name, hash] of [[P256, 'prime256v1', 'sha256'], [P384, 'secp384r1', 'sha384']] as const) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: name });
    const jwk = privateKey.export({ format: 'jwk' });
    const d = BigInt('0x' + Buffer.from(jwk.d as string, 'base64url').toString('hex'));
    const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x as string, 'base64url'), Buffer.from(jwk.y as string, 'base64url')]);
    const msg = Buffer.from(`ecdsa on ${curve.name}`);
    const digest = createHash(hash).update(msg).digest();
    const ours = ecdsaSignDigest(curve, d, digest);
    t.ok(nodeVerify(hash, msg, { key: publicKey, dsaEncoding: 'der' }, ours), `${curve.name}: OpenSSL verifies ours`);
    const theirs = nodeSign(hash, msg, { key: privateKey, dsaEncoding: 'der' });
    t.ok(ecdsaVerifyDigest(curve, point, digest, theirs), `${curve.name}: we verify OpenSSL's`);
    t.notOk(ecdsaVerifyDigest(curve, point, createHash(hash).update('other').digest(), theirs), `${curve.name}: other digest fails`);
  }
});
