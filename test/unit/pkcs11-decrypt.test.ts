// The custody's Decrypter against a real SoftHSM2 token: 'decrypt' keys are made with the
// attributes that allow only decryption (RSA) or derivation (EC), sign-only keys refuse to
// decrypt, and every operation gives what an independent implementation (Node's OpenSSL,
// sm-crypto for SM2) expects.
import t, { type Test } from 'tap';
import { constants, createPublicKey, diffieHellman, generateKeyPairSync, publicEncrypt } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import type { PKCS11 } from 'pkcs11js';
import smCrypto from 'sm-crypto';
import { makeTestToken } from '../helpers/softhsm.js';
import { InMemoryKeyRegistry } from '../helpers/in-memory-key-registry.js';
import { openPkcs11Custody, type Pkcs11Custody } from '../../firmware-bridge/pkcs11/pkcs11-custody.js';
import { oaepDecode } from '../../firmware-bridge/pkcs11/decrypt.js';
import { createSm2Signer, generateSm2KeyPair, sm2Decrypt, sm2Digest, sm2Encrypt, sm2PublicKeyFromSpki, sm2SpkiFromPublicKey } from '../../appliance/src/crypto/sm2.js';
import { sm2CiphertextRawToDer } from '../../appliance/src/crypto/sm2-der.js';
import { isYiqianError } from '../../appliance/src/errors.js';

const token = makeTestToken();
let module: PKCS11 | undefined;
let custody: Pkcs11Custody;

async function rejectsCode(tt: Test, p: Promise<unknown>, code: string, msg: string): Promise<void> {
  try {
    await p;
    tt.fail(`${msg}: expected ${code}, resolved`);
  } catch (e) {
    tt.ok(isYiqianError(e), `${msg}: a YiqianError`);
    tt.equal((e as { code?: string }).code, code, msg);
  }
}

/** CKA_* booleans of the private key with this label, read on a session of our own. */
function privateFlags(label: string): Record<string, boolean> {
  const p = module as PKCS11;
  const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trim() === token.label) as Buffer;
  const s = p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
  try {
    p.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_LABEL, value: label }]);
    const [h] = p.C_FindObjects(s, 1);
    p.C_FindObjectsFinal(s);
    const names = ['CKA_SIGN', 'CKA_DECRYPT', 'CKA_DERIVE', 'CKA_SENSITIVE', 'CKA_EXTRACTABLE'] as const;
    const r = p.C_GetAttributeValue(s, h, names.map((n) => ({ type: pkcs11js[n] })));
    return Object.fromEntries(names.map((n, i) => [n, (r[i].value as Buffer)[0] === 1]));
  } finally {
    p.C_CloseSession(s);
  }
}

t.before(async () => {
  custody = await openPkcs11Custody(
    {
      module: token.module,
      tokenLabel: token.label,
      pin: token.pin,
      softwareSm2: { generate: generateSm2KeyPair, signer: (d) => createSm2Signer(d), spki: sm2SpkiFromPublicKey, digest: sm2Digest, decrypt: (d, c) => sm2Decrypt(d, c, 'der') },
      loadModule: (path) => {
        const p = new pkcs11js.PKCS11();
        p.load(path);
        module = p;
        return p;
      },
    },
    new InMemoryKeyRegistry(),
  );
});
t.teardown(() => custody.close());

t.test('RSA decrypt key: CKA_DECRYPT only; OAEP-SHA-1 (token), OAEP-SHA-256 (raw RSA + host decoding), PKCS#1 v1.5', async (tt) => {
  const info = await custody.generate({ algorithm: 'rsa-2048', label: 'env-rsa', purpose: 'envelope test', usage: 'decrypt' });
  tt.match(info.mechanism, /\(decrypt\)/, 'the inventory says it is a decryption key');
  tt.same(privateFlags('env-rsa'), { CKA_SIGN: false, CKA_DECRYPT: true, CKA_DERIVE: false, CKA_SENSITIVE: true, CKA_EXTRACTABLE: false });
  const pub = createPublicKey({ key: info.publicKeyInfo, format: 'der', type: 'spki' });
  const secret = Buffer.from('0123456789abcdef0123456789abcdef');
  for (const hash of ['sha1', 'sha256'] as const) {
    const ct = publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, secret);
    tt.same(await custody.decrypt(info.uri, { kind: 'rsa-oaep', hash }, ct), secret, `OAEP-${hash}`);
    // The same ciphertext under the other hash is not a valid OAEP block.
    await rejectsCode(tt, custody.decrypt(info.uri, { kind: 'rsa-oaep', hash: hash === 'sha1' ? 'sha256' : 'sha1' }, ct), 'DECRYPTION_FAILED', `OAEP-${hash} ciphertext under the other hash`);
  }
  const v15 = publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_PADDING }, secret);
  tt.same(await custody.decrypt(info.id, { kind: 'rsa-pkcs1' }, v15), secret, 'PKCS#1 v1.5, by inventory id');
  await rejectsCode(tt, custody.decrypt(info.uri, { kind: 'rsa-oaep', hash: 'sha256' }, v15.subarray(1)), 'DECRYPTION_FAILED', 'a ciphertext one byte short');
  await rejectsCode(tt, custody.decrypt(info.uri, { kind: 'rsa-oaep', hash: 'sha256' }, Buffer.alloc(256, 0x42)), 'DECRYPTION_FAILED', 'random bytes');
  await rejectsCode(tt, custody.decrypt(info.uri, { kind: 'sm2' }, v15), 'UNSUPPORTED_ALGORITHM', 'SM2 decryption with an RSA key');
  await rejectsCode(tt, custody.signer(info.uri), 'KEY_USAGE_MISMATCH', 'a decryption key does not sign');
});

t.test('EC decrypt key: CKA_DERIVE only; ECDH Z equals an independent computation', async (tt) => {
  for (const [alg, curve] of [['ecdsa-p256', 'P-256'], ['ecdsa-p384', 'P-384']] as const) {
    const label = `env-${alg}`;
    const info = await custody.generate({ algorithm: alg, label, purpose: 'envelope test', usage: 'decrypt' });
    tt.same(privateFlags(label), { CKA_SIGN: false, CKA_DECRYPT: false, CKA_DERIVE: true, CKA_SENSITIVE: true, CKA_EXTRACTABLE: false }, `${alg} attributes`);
    const eph = generateKeyPairSync('ec', { namedCurve: curve });
    const point = eph.publicKey.export({ format: 'der', type: 'spki' }).subarray(-(alg === 'ecdsa-p256' ? 65 : 97));
    const z = await custody.deriveEcdh(info.uri, point);
    tt.same(z, diffieHellman({ privateKey: eph.privateKey, publicKey: createPublicKey({ key: info.publicKeyInfo, format: 'der', type: 'spki' }) }), `${alg}: Z`);
    await rejectsCode(tt, custody.deriveEcdh(info.uri, point.subarray(1)), 'DECRYPTION_FAILED', `${alg}: not an uncompressed point`);
    const offCurve = Buffer.from(point);
    offCurve[offCurve.length - 1] ^= 1;
    await rejectsCode(tt, custody.deriveEcdh(info.uri, offCurve), 'DECRYPTION_FAILED', `${alg}: a point off the curve`);
    await rejectsCode(tt, custody.decrypt(info.uri, { kind: 'rsa-pkcs1' }, Buffer.alloc(32)), 'UNSUPPORTED_ALGORITHM', `${alg}: RSA decryption with an EC key`);
  }
});

t.test('SM2 decrypt key (wrapped): recorded as a decryption key; opens sm-crypto ciphertexts', async (tt) => {
  const info = await custody.generate({ algorithm: 'sm2', label: 'env-sm2', purpose: 'envelope test', usage: 'decrypt' });
  tt.equal(info.mode, 'wrapped');
  tt.equal(info.mechanism, 'in-process SM2 decryption (decrypt) under CKM_AES_KEY_WRAP_PAD');
  const pubHex = sm2PublicKeyFromSpki(info.publicKeyInfo).toString('hex');
  const secret = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  // sm-crypto, mode 1 = C1C3C2, hex without the 04 prefix: an independent SM2 encryption.
  const raw = Buffer.from('04' + smCrypto.sm2.doEncrypt(Array.from(secret) as unknown as string, pubHex, 1), 'hex');
  tt.same(await custody.decrypt(info.uri, { kind: 'sm2' }, sm2CiphertextRawToDer(raw)), secret, 'sm-crypto ciphertext');
  const ours = await sm2Encrypt(sm2PublicKeyFromSpki(info.publicKeyInfo), secret, 'der');
  tt.same(await custody.decrypt(info.uri, { kind: 'sm2' }, ours), secret, 'our ciphertext');
  const tampered = Buffer.from(ours);
  tampered[tampered.length - 1] ^= 1;
  await rejectsCode(tt, custody.decrypt(info.uri, { kind: 'sm2' }, tampered), 'DECRYPTION_FAILED', 'tampered C2');
  await rejectsCode(tt, custody.decrypt(info.uri, { kind: 'sm2' }, Buffer.from('3000', 'hex')), 'DECRYPTION_FAILED', 'not an SM2Cipher');
  await rejectsCode(tt, custody.signer(info.uri), 'KEY_USAGE_MISMATCH', 'an SM2 decryption key does not sign');
});

t.test('sign keys keep their templates and refuse to decrypt', async (tt) => {
  const rsa = await custody.generate({ algorithm: 'rsa-2048', label: 'sign-rsa', purpose: 'signing test' });
  tt.same(privateFlags('sign-rsa'), { CKA_SIGN: true, CKA_DECRYPT: false, CKA_DERIVE: false, CKA_SENSITIVE: true, CKA_EXTRACTABLE: false });
  tt.equal(rsa.mechanism, 'CKM_RSA_PKCS / CKM_RSA_PKCS_PSS');
  const ec = await custody.generate({ algorithm: 'ecdsa-p256', label: 'sign-ec', purpose: 'signing test', usage: 'sign' });
  // Today's EC template (CKA_DECRYPT is SoftHSM2's default, meaningless for EC); no CKA_DERIVE.
  tt.match(privateFlags('sign-ec'), { CKA_SIGN: true, CKA_DERIVE: false, CKA_SENSITIVE: true, CKA_EXTRACTABLE: false });
  const sm2 = await custody.generate({ algorithm: 'sm2', label: 'sign-sm2', purpose: 'signing test' });
  tt.equal(sm2.mechanism, 'in-process SM2 under CKM_AES_KEY_WRAP_PAD');
  const v15 = publicEncrypt({ key: createPublicKey({ key: rsa.publicKeyInfo, format: 'der', type: 'spki' }), padding: constants.RSA_PKCS1_PADDING }, Buffer.alloc(32, 7));
  await rejectsCode(tt, custody.decrypt(rsa.uri, { kind: 'rsa-pkcs1' }, v15), 'KEY_USAGE_MISMATCH', 'RSA sign key');
  await rejectsCode(tt, custody.deriveEcdh(ec.uri, Buffer.alloc(65, 4)), 'KEY_USAGE_MISMATCH', 'EC sign key');
  await rejectsCode(tt, custody.decrypt(sm2.uri, { kind: 'sm2' }, Buffer.alloc(120)), 'KEY_USAGE_MISMATCH', 'SM2 sign key');
  // Still signs.
  tt.ok((await (await custody.signer(ec.uri)).sign(Buffer.from('x'))).length > 0, 'the EC sign key signs');
  await rejectsCode(tt, custody.generate({ algorithm: 'rsa-2048', label: 'bad-usage', purpose: 'x', usage: 'wrap' as 'sign' }), 'BAD_REQUEST', 'unknown usage');
});

t.test('host OAEP decoding (RFC 8017 §7.1.2) rejects every malformed block', async (tt) => {
  const k = 256;
  tt.throws(() => oaepDecode(Buffer.alloc(k), 'sha256'), { code: 'DECRYPTION_FAILED' }, 'all zeros');
  tt.throws(() => oaepDecode(Buffer.alloc(40), 'sha256'), { code: 'DECRYPTION_FAILED' }, 'too short');
});
