// verifySignature / keyAlgorithmOfSpki / createSoftwareSigner for every algorithm of the suite,
// cross-checked with node:crypto (OpenSSL) where it can sign or verify the same thing.
import t from 'tap';
import { constants, createHash, createPublicKey, generateKeyPairSync, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { bitString, oid, seq } from '../../appliance/src/crypto/der.js';
import type { KeyAlgorithm } from '../../appliance/src/crypto/interfaces.js';
import { OID } from '../../appliance/src/crypto/oids.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import { generateSm2KeyPair, sm2PrivateKeyToPem, sm2SpkiFromPublicKey, sm2Verify } from '../../appliance/src/crypto/sm2.js';
import { keyAlgorithmOfSpki, verifySignature } from '../../appliance/src/crypto/verify.js';

interface Fixture {
  algorithm: KeyAlgorithm;
  pem: string;
  publicKey: KeyObject;
  spki: Buffer;
  hash: 'sha256' | 'sha384';
}

function nodeKey(algorithm: KeyAlgorithm): Fixture {
  const pair =
    algorithm === 'ecdsa-p256'
      ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
      : algorithm === 'ecdsa-p384'
        ? generateKeyPairSync('ec', { namedCurve: 'secp384r1' })
        : generateKeyPairSync('rsa', { modulusLength: Number(algorithm.slice(4)) });
  return {
    algorithm,
    pem: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    publicKey: pair.publicKey,
    spki: pair.publicKey.export({ type: 'spki', format: 'der' }),
    hash: algorithm === 'ecdsa-p384' ? 'sha384' : 'sha256',
  };
}

const fixtures = (['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072'] as const).map(nodeKey);
const msg = Buffer.from('GET /api/v1/whoami\n2026-01-01T00:00:00.000Z\nnonce');

t.test('keyAlgorithmOfSpki', async (t) => {
  for (const f of fixtures) t.equal(keyAlgorithmOfSpki(f.spki), f.algorithm, f.algorithm);
  const { publicKey } = generateSm2KeyPair();
  t.equal(keyAlgorithmOfSpki(sm2SpkiFromPublicKey(publicKey)), 'sm2', 'SM2 as OpenSSL writes it');
  t.equal(keyAlgorithmOfSpki(seq(seq(oid(OID.sm2)), bitString(publicKey))), 'sm2', 'SM2 OID as algorithm (GM/T 0015-2023)');
  const p521 = generateKeyPairSync('ec', { namedCurve: 'secp521r1' }).publicKey.export({ type: 'spki', format: 'der' });
  t.throws(() => keyAlgorithmOfSpki(p521), { code: 'UNSUPPORTED_ALGORITHM' });
  const ed = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' });
  t.throws(() => keyAlgorithmOfSpki(ed), { code: 'UNSUPPORTED_ALGORITHM' });
  t.throws(() => keyAlgorithmOfSpki(Buffer.from('3000', 'hex')), { code: 'INVALID_KEY' });
  t.throws(() => keyAlgorithmOfSpki(Buffer.from('3000', 'hex')), { code: 'INVALID_KEY' }, 'a refusal is not remembered as a key');
});

t.test('a parsed key is kept by its bytes, as a copy: reusing the caller’s buffer changes nothing', async (t) => {
  const f = nodeKey('ecdsa-p256'); // a key no other test has shown the cache
  const sig = nodeSign(f.hash, msg, { key: f.pem, dsaEncoding: 'der' });
  const digest = createHash(f.hash).update(msg).digest();
  const buf = Buffer.from(f.spki);
  t.equal(await verifySignature(f.algorithm, buf, digest, sig, { prehashed: true }), true, 'verifies (and is now cached)');
  const other = nodeKey('ecdsa-p256');
  other.spki.copy(buf); // the same bytes buffer now holds another key
  t.equal(await verifySignature(f.algorithm, buf, digest, sig, { prehashed: true }), false, 'the other key, read from the reused buffer, does not verify it');
  t.equal(await verifySignature(f.algorithm, Buffer.from(f.spki), digest, sig, { prehashed: true }), true, 'the first key still does');
});

t.test('software signers and the verifier agree with OpenSSL', async (t) => {
  for (const f of fixtures) {
    const signer = createSoftwareSigner(f.pem);
    t.equal(signer.algorithm, f.algorithm);
    t.same(signer.publicKeyInfo, f.spki, `${f.algorithm}: SPKI`);
    const paddings = f.algorithm.startsWith('rsa') ? (['pkcs1', 'pss'] as const) : ([undefined] as const);
    for (const rsaPadding of paddings) {
      const label = `${f.algorithm}${rsaPadding ? '/' + rsaPadding : ''}`;
      const nodeOpts = rsaPadding === 'pss' ? { key: f.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : { key: f.publicKey, dsaEncoding: 'der' as const };
      const sig = await signer.sign(msg, { rsaPadding });
      t.ok(nodeVerify(f.hash, msg, nodeOpts, sig), `${label}: OpenSSL verifies the software signer`);
      t.equal(await verifySignature(f.algorithm, f.spki, msg, sig, { rsaPadding }), true, `${label}: verifySignature`);
      t.equal(await verifySignature(f.algorithm, f.spki, Buffer.from('other'), sig, { rsaPadding }), false, `${label}: other data`);
      const bad = Buffer.from(sig);
      bad[bad.length - 5] ^= 1;
      t.equal(await verifySignature(f.algorithm, f.spki, msg, bad, { rsaPadding }), false, `${label}: altered signature`);
      t.equal(await verifySignature(f.algorithm, f.spki, msg, Buffer.concat([sig, Buffer.from([0])]), { rsaPadding }), false, `${label}: trailing byte`);
      // prehashed: sign a digest, verify as a message with OpenSSL, and the other way round
      const digest = createHash(f.hash).update(msg).digest();
      const overDigest = await signer.sign(digest, { prehashed: true, rsaPadding });
      t.ok(nodeVerify(f.hash, msg, nodeOpts, overDigest), `${label}: prehashed signature verifies over the message`);
      t.equal(await verifySignature(f.algorithm, f.spki, digest, sig, { prehashed: true, rsaPadding }), true, `${label}: prehashed verify`);
      t.equal(await verifySignature(f.algorithm, f.spki, createHash(f.hash).update('x').digest(), sig, { prehashed: true, rsaPadding }), false, `${label}: prehashed, other digest`);
    }
    await t.rejects(signer.sign(msg, { hash: 'sm3' }), { code: 'UNSUPPORTED_ALGORITHM' }, `${f.algorithm}: no SM3`);
  }
  const p256 = fixtures[0];
  const sha512sig = nodeSign('sha512', msg, { key: p256.pem, dsaEncoding: 'der' });
  t.equal(await verifySignature('ecdsa-p256', p256.spki, msg, sha512sig, { hash: 'sha512' }), true, 'P-256 with SHA-512');
  await t.rejects(verifySignature('ecdsa-p384', p256.spki, msg, sha512sig), { code: 'INVALID_KEY' }, 'algorithm must match the key');
});

t.test('SM2 through the verifier and the software signer', async (t) => {
  const { privateKey, publicKey } = generateSm2KeyPair();
  const signer = createSoftwareSigner(sm2PrivateKeyToPem(privateKey));
  t.equal(signer.algorithm, 'sm2');
  const spki = sm2SpkiFromPublicKey(publicKey);
  t.same(signer.publicKeyInfo, spki);
  const sig = await signer.sign(msg);
  t.ok(await sm2Verify(publicKey, msg, sig), 'default ID');
  t.equal(await verifySignature('sm2', spki, msg, sig), true);
  t.equal(await verifySignature('sm2', spki, msg, sig, { sm2Id: Buffer.from('other') }), false, 'other ID');
  const withId = await signer.sign(msg, { sm2Id: Buffer.from('app-1') });
  t.equal(await verifySignature('sm2', spki, msg, withId, { sm2Id: Buffer.from('app-1') }), true, 'sm2Id');
  await t.rejects(verifySignature('sm2', spki, msg, sig, { hash: 'sha256' }), { code: 'UNSUPPORTED_ALGORITHM' });
  await t.rejects(verifySignature('ecdsa-p256', spki, msg, sig), { code: 'INVALID_KEY' });
  // An SM2 key read back by Node is of no asymmetricKeyType, yet the signer recognises it.
  t.equal(createPublicKey(sm2PrivateKeyToPem(privateKey)).asymmetricKeyType, undefined);
});
