// Envelopes end to end in process: seal to certificates made by the OpenSSL CLI, open with a
// Decrypter over the same keys (Node's OpenSSL for RSA/ECDH, our SM2), and every bad input
// with its own code. The HSM path is in test/unit/pkcs11-decrypt.test.ts and the peers in
// test/interop/signing-envelope-peers.test.ts.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { constants, createPrivateKey, createPublicKey, diffieHellman, privateDecrypt, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromPem } from '../../appliance/src/crypto/der.js';
import type { Decrypter } from '../../appliance/src/crypto/interfaces.js';
import { sm2Decrypt, sm2PrivateKeyFromPem } from '../../appliance/src/crypto/sm2.js';
import { isYiqianError } from '../../appliance/src/errors.js';
import { openEnvelope, sealEnvelope } from '../../appliance/src/signing/envelope.js';
import { parseEnvelope } from '../../appliance/src/asn1/cms-enveloped-data.js';

const dir = mkdtempSync(join(tmpdir(), 'yq-env-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

interface Party {
  cert: Buffer;
  keyPem: string;
}

/** A self-signed certificate made by the OpenSSL CLI with the given key and keyUsage. */
function party(name: string, keyArgs: string[], keyUsage: string): Party {
  const key = join(dir, `${name}.key`);
  const crt = join(dir, `${name}.pem`);
  execFileSync('openssl', ['genpkey', ...keyArgs, '-out', key], { stdio: 'ignore' });
  const sm2 = keyArgs.includes('SM2');
  execFileSync('openssl', ['req', '-new', '-x509', '-key', key, ...(sm2 ? ['-sm3', '-sigopt', 'distid:1234567812345678'] : ['-sha256']), '-subj', `/CN=${name}`, '-days', '2', '-addext', `keyUsage=critical,${keyUsage}`, '-out', crt], { stdio: 'ignore' });
  return { cert: fromPem(readFileSync(crt, 'utf8'))[0].der, keyPem: readFileSync(key, 'utf8') };
}

const rsa = party('rsa', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'], 'keyEncipherment');
const ec = party('ec', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'keyAgreement');
const ec384 = party('ec384', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'], 'keyAgreement');
const sm2 = party('sm2', ['-algorithm', 'SM2'], 'keyEncipherment,dataEncipherment');
const signOnly = party('ecsign', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'digitalSignature');
const rsaSignOnly = party('rsasign', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'], 'digitalSignature');

/** A Decrypter over PEM keys with Node's OpenSSL and our SM2 (a real implementation, not a stub). */
function softwareDecrypter(keys: Record<string, string>): Decrypter {
  const key = (ref: string): KeyObject => createPrivateKey(keys[ref]);
  return {
    async decrypt(ref, alg, ct) {
      if (alg.kind === 'sm2') return sm2Decrypt(sm2PrivateKeyFromPem(keys[ref]), ct);
      if (alg.kind === 'rsa-pkcs1') return privateDecrypt({ key: key(ref), padding: constants.RSA_PKCS1_PADDING }, ct);
      return privateDecrypt({ key: key(ref), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: alg.hash }, ct);
    },
    async deriveEcdh(ref, point) {
      const priv = key(ref);
      const curve = priv.asymmetricKeyDetails?.namedCurve === 'prime256v1' ? '3059301306072a8648ce3d020106082a8648ce3d030107034200' : '3076301006072a8648ce3d020106052b81040022036200';
      return diffieHellman({ privateKey: priv, publicKey: createPublicKey({ key: Buffer.concat([Buffer.from(curve, 'hex'), point]), format: 'der', type: 'spki' }) });
    },
  };
}

const decrypter = softwareDecrypter({ rsa: rsa.keyPem, ec: ec.keyPem, ec384: ec384.keyPem, sm2: sm2.keyPem });
const content = Buffer.from('病历 #42: 过敏史青霉素 — '.repeat(50));

async function rejects(tt: Test, p: Promise<unknown>, code: string, msg: string): Promise<void> {
  try {
    await p;
    tt.fail(`${msg}: expected ${code}`);
  } catch (e) {
    tt.ok(isYiqianError(e), `${msg}: a YiqianError`);
    tt.equal((e as { code?: string }).code, code, msg);
    tt.notMatch(String((e as Error).message), /\n\s+at /, `${msg}: no stack in the message`);
  }
}

t.test('round trip for each recipient kind, in the form its key chooses', async (tt) => {
  const cases = [
    ['rsa', rsa, 'rfc5083', 'AES-256-GCM', 'RSAES-OAEP-SHA256'],
    ['ec', ec, 'rfc5083', 'AES-256-GCM', 'ECDH-SHA256KDF-AES256WRAP'],
    ['ec384', ec384, 'rfc5083', 'AES-256-GCM', 'ECDH-SHA256KDF-AES256WRAP'],
    ['sm2', sm2, 'gmt0010', 'SM4-CBC', 'SM2'],
  ] as const;
  for (const [ref, p, form, enc, kek] of cases) {
    const sealed = await sealEnvelope({ recipientCertificate: p.cert, content });
    tt.equal(sealed.form, form, `${ref}: form`);
    tt.equal(sealed.contentEncryption, enc, `${ref}: content encryption`);
    tt.equal(sealed.keyEncryption, kek, `${ref}: key encryption`);
    const opened = await openEnvelope({ envelope: sealed.envelope, keyUri: ref, certificate: p.cert, decrypter });
    tt.same(opened.content, content, `${ref}: content back`);
    tt.equal(opened.form, form);
  }
  const empty = await sealEnvelope({ recipientCertificate: sm2.cert, content: Buffer.alloc(0) });
  tt.same((await openEnvelope({ envelope: empty.envelope, keyUri: 'sm2', certificate: sm2.cert, decrypter })).content, Buffer.alloc(0), 'empty content');
});

t.test('GM/T 0010 structure: version 1, SM2-3 key encryption, SM4-CBC with the IV as parameter', async (tt) => {
  const sealed = await sealEnvelope({ recipientCertificate: sm2.cert, content });
  const env = parseEnvelope(sealed.envelope);
  tt.equal(env.version, 1);
  tt.equal(env.contentType, '1.2.156.10197.6.1.4.2.1');
  tt.equal(env.contentEncryption.oid, '1.2.156.10197.1.104.2');
  tt.equal(env.contentEncryption.params?.value.length, 16, '16-byte IV');
  const ri = env.recipients[0];
  tt.equal(ri.kind, 'ktri');
  if (ri.kind === 'ktri') {
    tt.equal(ri.version, 1);
    tt.equal(ri.keyEncryptionAlgorithm.oid, '1.2.156.10197.1.301.3');
    tt.equal(ri.encryptedKey[0], 0x30, 'encryptedKey is a DER SM2Cipher');
  }
});

t.test('bad input: each failure has its own code', async (tt) => {
  const sealed = await sealEnvelope({ recipientCertificate: ec.cert, content });
  const open = (envelope: Buffer, ref = 'ec', cert = ec.cert) => openEnvelope({ envelope, keyUri: ref, certificate: cert, decrypter });
  await rejects(tt, open(Buffer.from('not an envelope at all')), 'ENVELOPE_MALFORMED', 'garbage');
  await rejects(tt, open(sealed.envelope.subarray(0, sealed.envelope.length - 5)), 'ENVELOPE_MALFORMED', 'truncated');
  await rejects(tt, open(Buffer.alloc(0)), 'ENVELOPE_MALFORMED', 'empty');
  // A signedData ContentInfo is well-formed DER but not an envelope.
  await rejects(tt, open(Buffer.from('3011060a2a811ccf550601040202a003020100', 'hex')), 'ENVELOPE_MALFORMED', 'another content type');
  await rejects(tt, open(sealed.envelope, 'ec384', ec384.cert), 'ENVELOPE_NOT_FOR_KEY', 'an envelope for another key');

  const tagFlipped = Buffer.from(sealed.envelope);
  tagFlipped[tagFlipped.length - 1] ^= 1;
  await rejects(tt, open(tagFlipped), 'DECRYPTION_FAILED', 'tampered GCM tag');
  const ctFlipped = Buffer.from(sealed.envelope);
  ctFlipped[ctFlipped.length - 40] ^= 1;
  await rejects(tt, open(ctFlipped), 'DECRYPTION_FAILED', 'tampered ciphertext');

  // Unsupported content cipher: aes-256-gcm (…01 2e) → an unknown arc (…01 2f).
  const gcmOid = Buffer.from('060960864801650304012e', 'hex');
  const at = sealed.envelope.indexOf(gcmOid);
  tt.ok(at > 0, 'the GCM OID is in the envelope');
  const otherCipher = Buffer.from(sealed.envelope);
  otherCipher[at + gcmOid.length - 1] = 0x2f;
  await rejects(tt, open(otherCipher), 'UNSUPPORTED_ALGORITHM', 'unknown content encryption');

  const sm2Sealed = await sealEnvelope({ recipientCertificate: sm2.cert, content });
  const sm2Bad = Buffer.from(sm2Sealed.envelope);
  sm2Bad[sm2Bad.length - 1] ^= 0x55; // the last SM4-CBC block: padding breaks
  await rejects(tt, openEnvelope({ envelope: sm2Bad, keyUri: 'sm2', certificate: sm2.cert, decrypter }), 'DECRYPTION_FAILED', 'SM4-CBC bad padding');

  await rejects(tt, sealEnvelope({ recipientCertificate: signOnly.cert, content }), 'ENVELOPE_RECIPIENT_UNSUITABLE', 'EC certificate without keyAgreement');
  await rejects(tt, sealEnvelope({ recipientCertificate: rsaSignOnly.cert, content }), 'ENVELOPE_RECIPIENT_UNSUITABLE', 'RSA certificate without keyEncipherment');
  await rejects(tt, sealEnvelope({ recipientCertificate: ec.cert, content, at: new Date(Date.now() + 10 * 86_400_000) }), 'ENVELOPE_RECIPIENT_UNSUITABLE', 'an expired certificate');
  await rejects(tt, sealEnvelope({ recipientCertificate: Buffer.from('3003020101', 'hex'), content }), 'BAD_REQUEST', 'not a certificate');
  await rejects(tt, sealEnvelope({ recipientCertificate: ec.cert, content, maxContentBytes: 100 }), 'ENVELOPE_TOO_LARGE', 'content over the limit');
});
