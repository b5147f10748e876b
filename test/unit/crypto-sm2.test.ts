// Public SM2 API (crypto/sm2.ts): the addon is really used, it agrees with the pure-JS path,
// and every kind of bad signature is refused. Peers (OpenSSL, BouncyCastle, sm-crypto) are in
// test/interop/crypto-*.test.ts.
import t from 'tap';
import { execFile } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { bitString, derNull, integer, oid as derOid, seq, tlv, toPem } from '../../appliance/src/crypto/der.js';
import { SM2P256V1, toBytes } from '../../appliance/src/crypto/ec-curve.js';
import { OID } from '../../appliance/src/crypto/oids.js';
import {
  SM2_DEFAULT_ID,
  createSm2Signer,
  generateSm2KeyPair,
  sm2Backend,
  sm2Decrypt,
  sm2Digest,
  sm2Encrypt,
  sm2PrivateKeyFromPem,
  sm2PrivateKeyToPem,
  sm2PublicKeyFromPrivate,
  sm2PublicKeyFromSpki,
  sm2Sign,
  sm2SpkiFromPublicKey,
  sm2Verify,
  sm2Za,
} from '../../appliance/src/crypto/sm2.js';
import { decodeSm2Signature, encodeSm2Sec1 } from '../../appliance/src/crypto/sm2-der.js';
import * as pure from '../../appliance/src/crypto/sm2-pure.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const N = SM2P256V1.n;
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

const V3 = {
  d: hex('6c5a0a0b2eed3cbec3e4f1252bfe0e28c504a1c6bf1999eebb0af9ef0f8e6c85'),
  pub: hex(`04 8356e642a40ebd18d29ba3532fbd9f3bbee8f027c3f6f39a5ba2f870369f9988
               981f5efe55d1c5cdf6c0ef2b070847a14f7fdf4272a8df09c442f3058af94ba1`),
  msg: Buffer.from('ShangMi SM2 Sign Standard'),
  sig: hex(`3044 0220 5b3a799bd94c9063120d7286769220af6b0fa127009af3e873c0e8742edc5f89
                 0220 097968a4c8b040fd548d1456b33f470cabd8456bfea53e8a828f92f6d4bdcd77`),
};

const big = (b: Buffer): bigint => BigInt('0x' + b.toString('hex'));

/** SEQUENCE { r, s } with each INTEGER's content given raw, to build non-canonical forms. */
const rawSig = (r: Buffer, s: Buffer): Buffer => seq(tlv(0x02, r), tlv(0x02, s));

t.test('the addon is the backend (YIQIAN_ALLOW_NO_ADDON=1 to run without it)', async (t) => {
  if (process.env.YIQIAN_ALLOW_NO_ADDON === '1') {
    t.ok(['addon', 'pure-js'].includes(sm2Backend()));
  } else {
    t.equal(sm2Backend(), 'addon', 'build/Release/yiqian_sm2.node loads (npx node-gyp rebuild)');
  }
});

t.test('vector 3 (sm2p256v1, default ID) on the active backend and on the pure-JS path', async (t) => {
  t.same(sm2PublicKeyFromPrivate(V3.d), V3.pub, 'public key from d');
  t.equal(await sm2Verify(V3.pub, V3.msg, V3.sig), true, `${sm2Backend()} verifies`);
  t.equal(await sm2Verify(V3.pub, V3.msg, V3.sig, { id: SM2_DEFAULT_ID }), true, 'explicit default ID');
  t.equal(await sm2Verify(sm2SpkiFromPublicKey(V3.pub), V3.msg, V3.sig), true, 'key given as SPKI');
  t.equal(pure.verify(V3.pub, V3.msg, big(V3.sig.subarray(4, 36)), big(V3.sig.subarray(38))), true, 'pure-JS verifies');
  t.equal(await sm2Verify(V3.pub, sm2Digest(V3.pub, V3.msg), V3.sig, { prehashed: true }), true, 'prehashed e');
});

t.test('vector 4: Z_A with the default ID', async (t) => {
  const P = Buffer.concat([Buffer.from([4]), hex('D69C2F1EEC3BFB6B95B30C28085C77B125D77A9C39525D8190768F37D6B205B5'), hex('89DCD316BBE7D89A9DC21917F17799E698531F5E6E3E10BD31370B259C3F81C3')]);
  t.equal(sm2Za(P).toString('hex').toUpperCase(), '4D38D2958CA7FD2CFAE3AF04486959CF92C8EF48E8B83A05C112E739D5F181D0');
});

t.test('addon and pure-JS agree: each verifies the other, Z_A is the same', async (t) => {
  const ids = [SM2_DEFAULT_ID, Buffer.from('ALICE123@YAHOO.COM'), Buffer.alloc(0), Buffer.alloc(1000, 0x41)];
  {
    const { privateKey, publicKey } = generateSm2KeyPair();
    const empty = Buffer.alloc(0);
    const p = pure.sign(big(privateKey), empty);
    t.ok(pure.verify(publicKey, empty, p.r, p.s), 'pure: empty message');
    t.ok(await sm2Verify(publicKey, empty, await sm2Sign(privateKey, empty)), `${sm2Backend()}: empty message`);
  }
  for (let i = 0; i < 4; i++) {
    const { privateKey, publicKey } = generateSm2KeyPair();
    const d = big(privateKey);
    t.same(pure.publicKeyFromPrivate(d), publicKey, 'same public key');
    for (const id of ids) {
      const msg = Buffer.from(`agreement ${i} ${id.length}`);
      const ours = await sm2Sign(privateKey, msg, { id });
      const rs = decodeSm2Signature(ours);
      t.ok(pure.verify(publicKey, msg, rs.r, rs.s, id), `pure verifies ${sm2Backend()} (id ${id.length} bytes)`);
      const p = pure.sign(d, msg, id);
      t.ok(await sm2Verify(publicKey, msg, seq(integer(p.r), integer(p.s)), { id }), `${sm2Backend()} verifies pure (id ${id.length} bytes)`);
      // Z_A computed in TypeScript, signature made over e by OpenSSL, checked by OpenSSL
      // hashing Z_A itself: passes only if both compute the same Z_A.
      const e = sm2Digest(publicKey, msg, id);
      t.same(e, pure.digestE(publicKey, msg, id));
      const overE = await sm2Sign(privateKey, e, { prehashed: true });
      t.ok(await sm2Verify(publicKey, msg, overE, { id }), `Z_A agrees (id ${id.length} bytes)`);
    }
  }
});

t.test('rejections resolve false', async (t) => {
  const { privateKey, publicKey } = generateSm2KeyPair();
  const msg = Buffer.from('prescription #1');
  const sig = await sm2Sign(privateKey, msg);
  t.equal(await sm2Verify(publicKey, msg, sig), true, 'the good one verifies');
  const { r, s } = decodeSm2Signature(sig);
  const rb = toBytes(r, 32);
  const sb = toBytes(s, 32);
  const cases: [string, Buffer, Buffer?, Buffer?][] = [
    ['wrong ID', sig, msg, Buffer.from('1234567812345679')],
    ['empty ID instead of default', sig, msg, Buffer.alloc(0)],
    ['tampered message', sig, Buffer.from('prescription #2')],
    ['empty signature', Buffer.alloc(0)],
    ['truncated DER', sig.subarray(0, sig.length - 1)],
    ['trailing byte', Buffer.concat([sig, Buffer.from([0])])],
    ['trailing SEQUENCE', Buffer.concat([sig, Buffer.from('3000', 'hex')])],
    ['wrong outer tag', Buffer.concat([Buffer.from([0x31]), sig.subarray(1)])],
    ['long-form length', Buffer.concat([Buffer.from([0x30, 0x81, sig[1]]), sig.subarray(2)])],
    ['non-minimal INTEGER (leading 00)', rawSig(Buffer.concat([Buffer.from([0, 0]), rb]), Buffer.concat([Buffer.from([0]), sb]))],
    ['negative INTEGER form', rawSig(Buffer.from(rb.map((b, i) => (i === 0 ? b | 0x80 : b))), sb)],
    ['three INTEGERs', seq(integer(r), integer(s), integer(1))],
    ['r = 0', seq(integer(0), integer(s))],
    ['s = 0', seq(integer(r), integer(0))],
    ['s = n', seq(integer(r), integer(N))],
    ['s = n + s', seq(integer(r), integer(N + s))],
    ['r = n', seq(integer(N), integer(s))],
    ['r + n', seq(integer(r + N), integer(s))],
    ['r + s = n', seq(integer(r), integer(N - r))],
    ['raw r‖s instead of DER', Buffer.concat([rb, sb])],
    ['swapped r and s', seq(integer(s), integer(r))],
  ];
  for (const [why, bad, m, id] of cases) {
    t.equal(await sm2Verify(publicKey, m ?? msg, bad, { id }), false, why);
  }
  t.equal(await sm2Verify(publicKey, sm2Digest(publicKey, Buffer.from('x'), SM2_DEFAULT_ID), sig, { prehashed: true }), false, 'prehashed, other e');
  const other = generateSm2KeyPair().publicKey;
  t.equal(await sm2Verify(other, msg, sig), false, 'other key');
  await t.rejects(sm2Verify(publicKey, Buffer.alloc(31), sig, { prehashed: true }), { code: 'BAD_REQUEST' }, 'e of 31 bytes');
  const offCurve = Buffer.from(publicKey);
  offCurve[64] ^= 1;
  await t.rejects(sm2Verify(offCurve, msg, sig), { code: 'INVALID_KEY' }, 'point off the curve is a key error');
});

t.test('private keys are range-checked', async (t) => {
  for (const [why, d] of [
    ['0', Buffer.alloc(32)],
    ['n-1', toBytes(N - 1n, 32)],
    ['n', toBytes(N, 32)],
    ['31 bytes', Buffer.alloc(31, 1)],
  ] as const) {
    await t.rejects(sm2Sign(d, Buffer.from('x')), { code: 'INVALID_KEY' }, why);
  }
  t.ok(await sm2Sign(toBytes(N - 2n, 32), Buffer.from('x')), 'n-2 is fine');
  await t.rejects(sm2Sign(generateSm2KeyPair().privateKey, Buffer.from('x'), { id: Buffer.alloc(8192) }), { code: 'BAD_REQUEST' }, 'ID over 8190 bytes');
});

t.test('encryption: both formats, both backends, failures are DECRYPTION_FAILED', async (t) => {
  const { privateKey, publicKey } = generateSm2KeyPair();
  const d = big(privateKey);
  for (const len of [1, 32, 33, 1000]) {
    const pt = Buffer.alloc(len, len & 0xff);
    const der = await sm2Encrypt(publicKey, pt);
    t.equal(der[0], 0x30, 'DER SEQUENCE');
    t.same(await sm2Decrypt(privateKey, der), pt, `${len} bytes DER round trip`);
    const raw = await sm2Encrypt(publicKey, pt, 'c1c3c2');
    t.equal(raw.length, 97 + len);
    t.same(await sm2Decrypt(privateKey, raw, 'c1c3c2'), pt, `${len} bytes C1C3C2 round trip`);
    t.same(pure.decrypt(d, raw), pt, `pure-JS decrypts ${sm2Backend()}`);
    t.same(await sm2Decrypt(privateKey, pure.encrypt(publicKey, pt), 'c1c3c2'), pt, `${sm2Backend()} decrypts pure-JS`);
  }
  const ct = await sm2Encrypt(publicKey, Buffer.from('secret'));
  const raw = await sm2Encrypt(publicKey, Buffer.from('secret'), 'c1c3c2');
  const altered = Buffer.from(ct);
  altered[altered.length - 1] ^= 1;
  await t.rejects(sm2Decrypt(privateKey, altered), { code: 'DECRYPTION_FAILED', status: 400 }, 'altered C2');
  const alteredC3 = Buffer.from(raw);
  alteredC3[70] ^= 1;
  await t.rejects(sm2Decrypt(privateKey, alteredC3, 'c1c3c2'), { code: 'DECRYPTION_FAILED' }, 'altered C3');
  const offCurve = Buffer.from(raw);
  offCurve[64] ^= 1;
  await t.rejects(sm2Decrypt(privateKey, offCurve, 'c1c3c2'), { code: 'DECRYPTION_FAILED' }, 'C1 off the curve');
  await t.rejects(sm2Decrypt(generateSm2KeyPair().privateKey, ct), { code: 'DECRYPTION_FAILED' }, 'other key');
  await t.rejects(sm2Decrypt(privateKey, ct.subarray(0, ct.length - 1)), { code: 'DECRYPTION_FAILED' }, 'truncated');
  await t.rejects(sm2Decrypt(privateKey, Buffer.concat([ct, Buffer.from([0])])), { code: 'DECRYPTION_FAILED' }, 'trailing byte');
  await t.rejects(sm2Decrypt(privateKey, raw), { code: 'DECRYPTION_FAILED' }, 'raw given as DER');
  await t.rejects(sm2Encrypt(publicKey, Buffer.alloc(0)), { code: 'BAD_REQUEST' }, 'empty plaintext');
});

t.test('SPKI and PEM', async (t) => {
  const { privateKey, publicKey } = generateSm2KeyPair();
  const spki = sm2SpkiFromPublicKey(publicKey);
  t.equal(spki.subarray(0, 27).toString('hex'), '3059301306072a8648ce3d020106082a811ccf5501822d03420004', 'id-ecPublicKey + sm2p256v1');
  t.same(createPublicKey({ key: spki, format: 'der', type: 'spki' }).export({ type: 'spki', format: 'der' }), spki, 'OpenSSL (in Node) re-encodes it identically');
  t.same(sm2PublicKeyFromSpki(spki), publicKey);
  const withSm2Oid = (params: Buffer[]): Buffer => seq(seq(derOid(OID.sm2), ...params), bitString(publicKey));
  t.same(sm2PublicKeyFromSpki(withSm2Oid([])), publicKey, 'GM/T 0015-2023: SM2 OID, no parameters');
  t.same(sm2PublicKeyFromSpki(withSm2Oid([derNull()])), publicKey, 'SM2 OID, NULL');
  t.same(sm2PublicKeyFromSpki(withSm2Oid([derOid(OID.sm2p256v1)])), publicKey, 'SM2 OID, curve OID');
  const compressed = Buffer.concat([Buffer.from([2 + (publicKey[64] & 1)]), publicKey.subarray(1, 33)]);
  t.same(sm2PublicKeyFromSpki(seq(seq(derOid(OID.idEcPublicKey), derOid(OID.sm2p256v1)), bitString(compressed))), publicKey, 'compressed point');
  t.throws(() => sm2PublicKeyFromSpki(seq(seq(derOid(OID.idEcPublicKey), derOid(OID.secp256r1)), bitString(publicKey))), { code: 'INVALID_KEY' }, 'P-256 curve');
  t.throws(() => sm2PublicKeyFromSpki(Buffer.concat([spki, Buffer.from([0])])), { code: 'INVALID_KEY' }, 'trailing byte');

  const pem = sm2PrivateKeyToPem(privateKey);
  t.match(pem, /^-----BEGIN PRIVATE KEY-----\n/);
  t.same(sm2PrivateKeyFromPem(pem), privateKey, 'PKCS#8 round trip');
  const sec1 = toPem('EC PRIVATE KEY', encodeSm2Sec1(privateKey, publicKey, true));
  t.same(sm2PrivateKeyFromPem(sec1), privateKey, 'SEC1 EC PRIVATE KEY');
  const mismatched = toPem('EC PRIVATE KEY', encodeSm2Sec1(privateKey, generateSm2KeyPair().publicKey, true));
  t.throws(() => sm2PrivateKeyFromPem(mismatched), { code: 'INVALID_KEY' }, 'stored public key must match');
  t.throws(() => sm2PrivateKeyFromPem('-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n'), { code: 'INVALID_KEY' });
});

t.test('createSm2Signer', async (t) => {
  const { privateKey, publicKey } = generateSm2KeyPair();
  const signer = createSm2Signer(privateKey);
  t.equal(signer.algorithm, 'sm2');
  t.same(signer.publicKeyInfo, sm2SpkiFromPublicKey(publicKey));
  const msg = Buffer.from('tbs');
  t.ok(await sm2Verify(publicKey, msg, await signer.sign(msg)), 'default ID');
  const id = Buffer.from('doctor-007@hospital.cn');
  const withId = await signer.sign(msg, { sm2Id: id });
  t.ok(await sm2Verify(publicKey, msg, withId, { id }), 'sm2Id honoured');
  t.notOk(await sm2Verify(publicKey, msg, withId), 'and it is not the default ID');
  const signerWithId = createSm2Signer(privateKey, { id });
  t.ok(await sm2Verify(publicKey, msg, await signerWithId.sign(msg), { id }), 'signer-level ID');
  const e = sm2Digest(publicKey, msg);
  t.ok(await sm2Verify(publicKey, msg, await signer.sign(e, { prehashed: true })), 'prehashed e');
  await t.rejects(signer.sign(msg, { hash: 'sha256' }), { code: 'UNSUPPORTED_ALGORITHM' });
  // Many in flight at once (the addon runs them on the libuv pool).
  const sigs = await Promise.all(Array.from({ length: 64 }, (_, i) => signer.sign(Buffer.from(`m${i}`))));
  const oks = await Promise.all(sigs.map((s, i) => sm2Verify(publicKey, Buffer.from(`m${i}`), s)));
  t.ok(oks.every(Boolean), '64 concurrent signatures verify');
});

/**
 * One child Node (with the same TypeScript loader) runs every backend scenario: each imports a
 * fresh instance of sm2.ts (a distinct ?scenario= URL) after setting the environment, so the
 * once-per-process backend choice is made anew. Prints one JSON line per scenario.
 */
async function runScenarios(scenarios: { name: string; env: Record<string, string | null> }[]): Promise<string[]> {
  const loader = process.execArgv.filter((a) => a.includes('@tapjs/typescript') || a.includes('ts-node'));
  const execArgv = loader.length > 0 ? loader : [`--import=${join(ROOT, 'node_modules/@tapjs/typescript/dist/esm/import.mjs')}`];
  const modUrl = pathToFileURL(join(ROOT, 'appliance/src/crypto/sm2.ts')).href;
  const code = `
    const scenarios = ${JSON.stringify(scenarios)};
    for (const sc of scenarios) {
      for (const [k, v] of Object.entries(sc.env)) { if (v === null) delete process.env[k]; else process.env[k] = v; }
      try {
        const m = await import(${JSON.stringify(modUrl)} + '?scenario=' + sc.name);
        const v3 = await m.sm2Verify(Buffer.from('${V3.pub.toString('hex')}', 'hex'), Buffer.from('${V3.msg.toString()}'), Buffer.from('${V3.sig.toString('hex')}', 'hex'));
        const k = m.generateSm2KeyPair();
        const sig = await m.sm2Sign(k.privateKey, Buffer.from('x'));
        const ok = await m.sm2Verify(k.publicKey, Buffer.from('x'), sig);
        const pt = await m.sm2Decrypt(k.privateKey, await m.sm2Encrypt(k.publicKey, Buffer.from('hi')));
        console.log(JSON.stringify({ scenario: sc.name, backend: m.sm2Backend(), v3, ok, pt: pt.toString() }));
      } catch (e) {
        console.log(JSON.stringify({ scenario: sc.name, error: e.message }));
      }
    }`;
  const { stdout } = await promisify(execFile)(process.execPath, [...execArgv, '--input-type=module', '-e', code], {
    cwd: ROOT,
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1', YIQIAN_LOG_LEVEL: 'warn' },
  });
  return stdout.split('\n').filter(Boolean);
}

t.test('backend selection: YIQIAN_SM2_BACKEND=pure-js switches, a missing addon falls back (child process)', async (t) => {
  const missing = join(ROOT, 'build', 'no-such-addon.node');
  const withAddon = process.env.YIQIAN_ALLOW_NO_ADDON !== '1';
  const lines = await runScenarios([
    { name: 'forced-pure', env: { YIQIAN_SM2_BACKEND: 'pure-js', YIQIAN_SM2_ADDON: null } },
    { name: 'missing-addon', env: { YIQIAN_SM2_BACKEND: null, YIQIAN_SM2_ADDON: missing } },
    { name: 'addon-required-missing', env: { YIQIAN_SM2_BACKEND: 'addon', YIQIAN_SM2_ADDON: missing } },
    ...(withAddon ? [{ name: 'addon-required', env: { YIQIAN_SM2_BACKEND: 'addon', YIQIAN_SM2_ADDON: null } }] : []),
  ]);
  const result = (name: string): unknown => JSON.parse(lines.find((l) => l.includes(`"scenario":"${name}"`)) ?? '{}');
  t.same(result('forced-pure'), { scenario: 'forced-pure', backend: 'pure-js', v3: true, ok: true, pt: 'hi' }, 'YIQIAN_SM2_BACKEND=pure-js switches');
  t.match(result('missing-addon'), { backend: 'pure-js', v3: true, ok: true, pt: 'hi' }, 'a missing addon falls back');
  t.match(result('addon-required-missing'), { error: /SM2 addon cannot be loaded/ }, 'YIQIAN_SM2_BACKEND=addon refuses to fall back');
  if (withAddon) t.match(result('addon-required'), { backend: 'addon', v3: true, ok: true, pt: 'hi' }, 'YIQIAN_SM2_BACKEND=addon loads it');
  const warns = lines.filter((l) => l.includes('"level":40'));
  t.equal(warns.filter((l) => l.includes('YIQIAN_SM2_BACKEND=pure-js')).length, 1, 'forced fallback logged once (despite several calls)');
  t.equal(warns.filter((l) => l.includes('addon not loaded')).length, 1, 'missing addon logged once');
});
