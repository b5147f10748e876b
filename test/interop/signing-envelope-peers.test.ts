// Envelopes against independent peers:
//  - `openssl cms -decrypt` opens our RSA-OAEP and ECDH AES-256-GCM envelopes (keys made by OpenSSL,
//    certificates from the OpenSSL test hierarchy);
//  - we open, through the custody (SoftHSM2), what `openssl cms -encrypt` made for keys held in the
//    token: RSA (PKCS#1 v1.5 with the default 3DES, AES-256-CBC, AES-256-GCM, OAEP-SHA-1, OAEP-SHA-256)
//    and EC (AES-256-GCM, AES-128-CBC);
//  - SM2: our GM/T 0010 envelope is decoded by asn1js, its key decrypted by sm-crypto and its content
//    by Node's sm4-cbc; an envelope assembled by hand with asn1js + sm-crypto + Node opens through
//    the custody.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import smCrypto from 'sm-crypto';
import { makeTestHierarchy, type TestHierarchy } from '../helpers/openssl-pki.js';
import { makeTestToken } from '../helpers/softhsm.js';
import { InMemoryKeyRegistry } from '../helpers/in-memory-key-registry.js';
import { openPkcs11Custody, type Pkcs11Custody } from '../../firmware-bridge/pkcs11/pkcs11-custody.js';
import { createSm2Signer, generateSm2KeyPair, sm2Decrypt, sm2Digest, sm2PublicKeyFromSpki, sm2SpkiFromPublicKey } from '../../appliance/src/crypto/sm2.js';
import { fromPem, toPem } from '../../appliance/src/crypto/der.js';
import { isYiqianError } from '../../appliance/src/errors.js';
import { openEnvelope, sealEnvelope } from '../../appliance/src/signing/envelope.js';

const token = makeTestToken();
const ecdsa = makeTestHierarchy('ecdsa');
const sm2h = makeTestHierarchy('sm2');
t.teardown(() => {
  ecdsa.remove();
  sm2h.remove();
});
let custody: Pkcs11Custody;
const content = Buffer.from('电子病历 — discharge summary '.repeat(40));

function openssl(args: string[], cwd: string, input?: Buffer): Buffer {
  return execFileSync('openssl', args, { cwd, input, stdio: ['pipe', 'pipe', 'pipe'] });
}

let serialNo = 0x7000;
/** A certificate of the hierarchy's issuing CA for a public key (PEM file), with this keyUsage (openssl x509 -force_pubkey). */
function issueFor(h: TestHierarchy, pubPemFile: string, keyUsage: string): { der: Buffer; pemFile: string } {
  const n = (serialNo++).toString(16);
  const sm2 = h.kind === 'sm2';
  const sig = sm2 ? ['-sm3', '-sigopt', 'distid:1234567812345678'] : ['-sha256'];
  writeFileSync(join(h.dir, `ext-${n}.cnf`), `[e]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,${keyUsage}\nsubjectKeyIdentifier=hash\n`);
  // The CSR only carries the subject: its own key is replaced by -force_pubkey.
  openssl(['req', '-new', '-key', h.issuing.keyFile, ...sig, '-subj', `/CN=envelope ${n}`, '-config', 'openssl.cnf', '-out', `env-${n}.csr`], h.dir);
  openssl(['x509', '-req', '-in', `env-${n}.csr`, '-force_pubkey', pubPemFile, '-CA', h.issuing.pemFile, '-CAkey', h.issuing.keyFile, ...sig, ...(sm2 ? ['-vfyopt', 'distid:1234567812345678'] : []), '-extfile', `ext-${n}.cnf`, '-extensions', 'e', '-set_serial', `0x${n}`, '-days', '5', '-out', `env-${n}.pem`], h.dir);
  const pemFile = join(h.dir, `env-${n}.pem`);
  return { der: fromPem(readFileSync(pemFile, 'utf8'))[0].der, pemFile };
}

function genKey(h: TestHierarchy, name: string, args: string[]): { keyFile: string; pubFile: string } {
  openssl(['genpkey', ...args, '-out', `${name}.key`], h.dir);
  openssl(['pkey', '-in', `${name}.key`, '-pubout', '-out', `${name}.pub`], h.dir);
  return { keyFile: join(h.dir, `${name}.key`), pubFile: join(h.dir, `${name}.pub`) };
}

/** A custody 'decrypt' key and its certificate. */
async function custodyRecipient(h: TestHierarchy, algorithm: 'rsa-2048' | 'ecdsa-p256' | 'sm2', keyUsage: string): Promise<{ uri: string; der: Buffer; pemFile: string; spki: Buffer }> {
  const info = await custody.generate({ algorithm, label: `env-${algorithm}`, purpose: 'envelope interop', usage: 'decrypt' });
  const pubFile = join(h.dir, `custody-${algorithm}.pub`);
  writeFileSync(pubFile, toPem('PUBLIC KEY', info.publicKeyInfo));
  return { uri: info.uri, spki: info.publicKeyInfo, ...issueFor(h, pubFile, keyUsage) };
}

async function rejects(tt: Test, p: Promise<unknown>, code: string, msg: string): Promise<void> {
  try {
    await p;
    tt.fail(`${msg}: expected ${code}`);
  } catch (e) {
    tt.ok(isYiqianError(e), `${msg}: a YiqianError`);
    tt.equal((e as { code?: string }).code, code, msg);
  }
}

t.before(async () => {
  custody = await openPkcs11Custody(
    {
      module: token.module,
      tokenLabel: token.label,
      pin: token.pin,
      softwareSm2: { generate: generateSm2KeyPair, signer: (d) => createSm2Signer(d), spki: sm2SpkiFromPublicKey, digest: sm2Digest, decrypt: (d, c) => sm2Decrypt(d, c, 'der') },
    },
    new InMemoryKeyRegistry(),
  );
});
t.teardown(() => custody.close());

t.test('openssl cms -decrypt opens our RSA-OAEP and ECDH AES-256-GCM envelopes', async (tt) => {
  for (const [name, args, ku, kek] of [
    ['ossl-rsa', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'], 'keyEncipherment', 'RSAES-OAEP-SHA256'],
    ['ossl-ec', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'keyAgreement', 'ECDH-SHA256KDF-AES256WRAP'],
  ] as const) {
    const k = genKey(ecdsa, name, [...args]);
    const cert = issueFor(ecdsa, k.pubFile, ku);
    const sealed = await sealEnvelope({ recipientCertificate: cert.der, content });
    tt.equal(sealed.keyEncryption, kek);
    writeFileSync(join(ecdsa.dir, `${name}.env`), sealed.envelope);
    const out = openssl(['cms', '-decrypt', '-binary', '-inform', 'DER', '-in', `${name}.env`, '-recip', cert.pemFile, '-inkey', k.keyFile], ecdsa.dir);
    tt.same(out, content, `${name}: openssl recovers the content`);
    const asn1 = openssl(['cms', '-cmsout', '-print', '-inform', 'DER', '-in', `${name}.env`], ecdsa.dir).toString();
    tt.match(asn1, /id-smime-ct-authEnvelopedData/, `${name}: OpenSSL reads AuthEnvelopedData`);
    tt.match(asn1, /aes-256-gcm/);
  }
});

t.test('we open what openssl cms -encrypt made for keys held in SoftHSM2', async (tt) => {
  const rsa = await custodyRecipient(ecdsa, 'rsa-2048', 'keyEncipherment');
  const ec = await custodyRecipient(ecdsa, 'ecdsa-p256', 'keyAgreement');
  writeFileSync(join(ecdsa.dir, 'content.bin'), content);
  const oaep = ['-keyopt', 'rsa_padding_mode:oaep'];
  const oaep256 = [...oaep, '-keyopt', 'rsa_oaep_md:sha256', '-keyopt', 'rsa_mgf1_md:sha256'];
  // [name, recipient, cipher option, -keyopt options (after -recip), content encryption, key encryption]
  const cases: [string, typeof rsa, string[], string[], string, string][] = [
    ['RSA default (3DES, PKCS#1 v1.5)', rsa, [], [], 'DES-EDE3-CBC', 'RSAES-PKCS1-v1_5'],
    ['RSA AES-256-CBC', rsa, ['-aes-256-cbc'], [], 'AES-256-CBC', 'RSAES-PKCS1-v1_5'],
    ['RSA AES-256-GCM', rsa, ['-aes-256-gcm'], [], 'AES-256-GCM', 'RSAES-PKCS1-v1_5'],
    ['RSA OAEP-SHA-1 AES-256-CBC', rsa, ['-aes-256-cbc'], oaep, 'AES-256-CBC', 'RSAES-OAEP-SHA1'],
    ['RSA OAEP-SHA-256 AES-256-GCM', rsa, ['-aes-256-gcm'], oaep256, 'AES-256-GCM', 'RSAES-OAEP-SHA256'],
    ['EC AES-256-GCM', ec, ['-aes-256-gcm'], [], 'AES-256-GCM', 'ECDH-SHA1KDF-AES256WRAP'],
    ['EC AES-128-CBC', ec, ['-aes-128-cbc'], [], 'AES-128-CBC', 'ECDH-SHA1KDF-AES128WRAP'],
  ];
  for (const [name, who, cipherOpt, keyOpts, enc, kek] of cases) {
    const env = openssl(['cms', '-encrypt', '-binary', ...cipherOpt, '-in', 'content.bin', '-outform', 'DER', '-recip', who.pemFile, ...keyOpts], ecdsa.dir);
    const opened = await openEnvelope({ envelope: env, keyUri: who.uri, certificate: who.der, decrypter: custody });
    tt.same(opened.content, content, `${name}: content`);
    tt.equal(opened.contentEncryption, enc, `${name}: ${enc}`);
    tt.equal(opened.keyEncryption, kek, `${name}: ${kek}`);
  }
  // OpenSSL's default for EC recipients wraps with 3DES (RFC 3217): refused by name.
  const env3des = openssl(['cms', '-encrypt', '-binary', '-in', 'content.bin', '-outform', 'DER', ec.pemFile], ecdsa.dir);
  await rejects(tt, openEnvelope({ envelope: env3des, keyUri: ec.uri, certificate: ec.der, decrypter: custody }), 'UNSUPPORTED_ALGORITHM', 'EC with the 3DES key wrap');
  // Our own envelopes to the same keys round-trip through the token.
  for (const who of [rsa, ec]) {
    const sealed = await sealEnvelope({ recipientCertificate: who.der, content });
    tt.same((await openEnvelope({ envelope: sealed.envelope, keyUri: who.uri, certificate: who.der, decrypter: custody })).content, content, `our ${sealed.keyEncryption} envelope through the token`);
  }
  // An envelope for the RSA key offered to the EC key, and tampering, through the token.
  const forRsa = openssl(['cms', '-encrypt', '-binary', '-aes-256-gcm', '-in', 'content.bin', '-outform', 'DER', rsa.pemFile], ecdsa.dir);
  await rejects(tt, openEnvelope({ envelope: forRsa, keyUri: ec.uri, certificate: ec.der, decrypter: custody }), 'ENVELOPE_NOT_FOR_KEY', 'an envelope for another key');
  const tampered = Buffer.from(forRsa);
  tampered[tampered.length - 1] ^= 1;
  await rejects(tt, openEnvelope({ envelope: tampered, keyUri: rsa.uri, certificate: rsa.der, decrypter: custody }), 'DECRYPTION_FAILED', 'GCM tag tampered');
});

// ---- SM2: independent decoding with asn1js, sm-crypto and Node's SM4 ----

/** 32-byte big-endian value of an asn1js INTEGER. */
function int32(i: asn1js.Integer): Buffer {
  const v = Buffer.from(i.valueBlock.valueHexView);
  const s = v.subarray(Math.max(0, v.length - 32));
  return Buffer.concat([Buffer.alloc(32 - s.length), s]);
}

/** Minimal DER INTEGER contents of an unsigned big-endian value. */
function uint(b: Buffer): asn1js.Integer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const v = b.subarray(i);
  return new asn1js.Integer({ valueHex: v[0] & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v });
}

function ber(der: Buffer): asn1js.AsnType {
  const r = asn1js.fromBER(new Uint8Array(der));
  if (r.offset === -1) throw new Error(r.result.error);
  return r.result;
}

t.test('SM2: sm-crypto and Node open our GM/T 0010 envelope; we open one assembled by hand', async (tt) => {
  // (1) Our envelope to an OpenSSL-made SM2 key, opened without our code.
  const k = genKey(sm2h, 'ossl-sm2', ['-algorithm', 'SM2']);
  const cert = issueFor(sm2h, k.pubFile, 'keyEncipherment,dataEncipherment');
  const sealed = await sealEnvelope({ recipientCertificate: cert.der, content });
  tt.equal(sealed.form, 'gmt0010');
  const ci = ber(sealed.envelope) as asn1js.Sequence;
  tt.equal((ci.valueBlock.value[0] as asn1js.ObjectIdentifier).valueBlock.toString(), '1.2.156.10197.6.1.4.2.3', 'GM/T 0010 envelopedData');
  const ed = (ci.valueBlock.value[1] as asn1js.Constructed).valueBlock.value[0] as asn1js.Sequence;
  const [version, ris, eci] = ed.valueBlock.value as [asn1js.Integer, asn1js.Set, asn1js.Sequence];
  tt.equal(version.valueBlock.valueDec, 1, 'version 1');
  const ri = (ris.valueBlock.value[0] as asn1js.Sequence).valueBlock.value;
  tt.equal(((ri[2] as asn1js.Sequence).valueBlock.value[0] as asn1js.ObjectIdentifier).valueBlock.toString(), '1.2.156.10197.1.301.3', 'SM2-3 key encryption');
  const cipher = ber(Buffer.from((ri[3] as asn1js.OctetString).valueBlock.valueHexView)) as asn1js.Sequence;
  const [x, y, c3, c2] = cipher.valueBlock.value as [asn1js.Integer, asn1js.Integer, asn1js.OctetString, asn1js.OctetString];
  const c1c3c2 = Buffer.concat([int32(x), int32(y), Buffer.from(c3.valueBlock.valueHexView), Buffer.from(c2.valueBlock.valueHexView)]).toString('hex');
  const dHex = /priv:\s*([\s\S]*?)pub:/.exec(openssl(['pkey', '-in', k.keyFile, '-noout', '-text'], sm2h.dir).toString())?.[1].replace(/[\s:]/g, '').replace(/^00(?=[0-9a-f]{64}$)/, '');
  const cek = Buffer.from(smCrypto.sm2.doDecrypt(c1c3c2, dHex as string, 1, { output: 'array' }) as unknown as number[]);
  tt.equal(cek.length, 16, 'sm-crypto recovers a 16-byte SM4 key');
  const [, alg, enc] = eci.valueBlock.value as [asn1js.ObjectIdentifier, asn1js.Sequence, asn1js.Primitive];
  tt.equal((alg.valueBlock.value[0] as asn1js.ObjectIdentifier).valueBlock.toString(), '1.2.156.10197.1.104.2', 'SM4-CBC');
  const iv = Buffer.from((alg.valueBlock.value[1] as asn1js.OctetString).valueBlock.valueHexView);
  const d = createDecipheriv('sm4-cbc', cek, iv);
  tt.same(Buffer.concat([d.update(Buffer.from(enc.valueBlock.valueHexView)), d.final()]), content, "Node's sm4-cbc recovers the content");

  // (2) An envelope assembled by hand for a custody SM2 key, opened through the token.
  const who = await custodyRecipient(sm2h, 'sm2', 'keyEncipherment,dataEncipherment');
  const key = randomBytes(16);
  const iv2 = randomBytes(16);
  const c = createCipheriv('sm4-cbc', key, iv2);
  const ct = Buffer.concat([c.update(content), c.final()]);
  const raw = Buffer.from(smCrypto.sm2.doEncrypt(Array.from(key) as unknown as string, sm2PublicKeyFromSpki(who.spki).toString('hex'), 1), 'hex'); // C1(x‖y) C3 C2
  const sm2Cipher = new asn1js.Sequence({ value: [uint(raw.subarray(0, 32)), uint(raw.subarray(32, 64)), new asn1js.OctetString({ valueHex: raw.subarray(64, 96) }), new asn1js.OctetString({ valueHex: raw.subarray(96) })] });
  const tbs = ((ber(who.der) as asn1js.Sequence).valueBlock.value[0] as asn1js.Sequence).valueBlock.value;
  const [serial, issuer] = [tbs[1], tbs[3]]; // tbs[0] is [0] version, tbs[2] the signature algorithm
  const recipient = new asn1js.Sequence({
    value: [
      new asn1js.Integer({ value: 1 }),
      new asn1js.Sequence({ value: [issuer, serial] }),
      new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: '1.2.156.10197.1.301.3' }), new asn1js.Null()] }),
      new asn1js.OctetString({ valueHex: sm2Cipher.toBER(false) }),
    ],
  });
  const envelope = new asn1js.Sequence({
    value: [
      new asn1js.ObjectIdentifier({ value: '1.2.156.10197.6.1.4.2.3' }),
      new asn1js.Constructed({
        idBlock: { tagClass: 3, tagNumber: 0 },
        value: [
          new asn1js.Sequence({
            value: [
              new asn1js.Integer({ value: 1 }),
              new asn1js.Set({ value: [recipient] }),
              new asn1js.Sequence({
                value: [
                  new asn1js.ObjectIdentifier({ value: '1.2.156.10197.6.1.4.2.1' }),
                  new asn1js.Sequence({ value: [new asn1js.ObjectIdentifier({ value: '1.2.156.10197.1.104.2' }), new asn1js.OctetString({ valueHex: iv2 })] }),
                  new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 0 }, valueHex: ct }),
                ],
              }),
            ],
          }),
        ],
      }),
    ],
  });
  const opened = await openEnvelope({ envelope: Buffer.from(envelope.toBER(false)), keyUri: who.uri, certificate: who.der, decrypter: custody });
  tt.same(opened.content, content, 'the hand-made GM/T 0010 envelope opens through the custody');
  tt.equal(opened.contentEncryption, 'SM4-CBC');
  // And our own SM2 envelope to the custody key.
  const ours = await sealEnvelope({ recipientCertificate: who.der, content });
  tt.same((await openEnvelope({ envelope: ours.envelope, keyUri: who.uri, certificate: who.der, decrypter: custody })).content, content, 'our SM2 envelope through the custody');

  // A sign-only custody key refuses to open an envelope addressed to its certificate.
  const signKey = await custody.generate({ algorithm: 'sm2', label: 'sign-only-sm2', purpose: 'envelope interop' });
  const pubFile = join(sm2h.dir, 'sign-only.pub');
  writeFileSync(pubFile, toPem('PUBLIC KEY', signKey.publicKeyInfo));
  const signCert = issueFor(sm2h, pubFile, 'keyEncipherment');
  const toSignKey = await sealEnvelope({ recipientCertificate: signCert.der, content });
  await rejects(tt, openEnvelope({ envelope: toSignKey.envelope, keyUri: signKey.uri, certificate: signCert.der, decrypter: custody }), 'KEY_USAGE_MISMATCH', 'a sign-only key refuses to decrypt');
});
