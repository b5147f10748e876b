// Encrypted PKCS#8 (PBES2: PBKDF2-HMAC-SHA256, AES-256-CBC): `openssl pkcs8` opens what we write
// for SM2, ECDSA and RSA keys, we open what OpenSSL writes, and a wrong password or a damaged
// file is DECRYPTION_FAILED.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decryptPrivateKeyInfo, encryptPrivateKeyInfo, encryptPrivateKeyInfoPem } from '../../appliance/src/asn1/pkcs8-encrypted.js';
import { generateSm2KeyPair } from '../../appliance/src/crypto/sm2.js';
import { encodeSm2Pkcs8 } from '../../appliance/src/crypto/sm2-der.js';
import { rejection } from '../helpers/store-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'yq-p8-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const PASSWORD = '口令 correct horse';
const FAST = { iterations: 2048 };

function keys(): [string, Buffer][] {
  const sm2 = generateSm2KeyPair();
  return [
    ['sm2', encodeSm2Pkcs8(sm2.privateKey, sm2.publicKey)],
    ['ecdsa-p256', generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'der' })],
    ['rsa-2048', generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'der' })],
  ];
}

t.test('openssl pkcs8 opens ours: SM2, ECDSA, RSA', async (t) => {
  for (const [name, pkcs8] of keys()) {
    const file = join(dir, `${name}.p8`);
    writeFileSync(file, await encryptPrivateKeyInfoPem(pkcs8, PASSWORD, FAST));
    const opened = execFileSync('openssl', ['pkcs8', '-in', file, '-passin', `pass:${PASSWORD}`]).toString();
    t.match(opened, /-----BEGIN (EC |SM2 |RSA )?PRIVATE KEY-----/);
    // The key OpenSSL recovered is ours: same public key as the plaintext PrivateKeyInfo gives.
    const pub = (args: string[], input: string | Buffer): string => execFileSync('openssl', ['pkey', ...args, '-pubout'], { input }).toString();
    t.equal(pub([], opened), pub(['-inform', 'DER'], pkcs8), `${name}: openssl pkcs8 recovers the same key`);
    const text = execFileSync('openssl', ['asn1parse', '-in', file]).toString();
    t.match(text, /PBES2/);
    t.match(text, /PBKDF2/);
    t.match(text, /hmacWithSHA256/);
    t.match(text, /aes-256-cbc/);
    t.throws(() => execFileSync('openssl', ['pkcs8', '-in', file, '-passin', 'pass:wrong'], { stdio: 'pipe' }), `${name}: not with a wrong password`);
  }
});

t.test('default iteration count, and what OpenSSL writes opens here', async (t) => {
  const [, pkcs8] = keys()[1];
  const der = await encryptPrivateKeyInfo(pkcs8, PASSWORD);
  t.match(execFileSync('openssl', ['asn1parse', '-inform', 'DER'], { input: der }).toString(), /INTEGER\s+:0927C0/, '600,000 PBKDF2 iterations');
  const plain = join(dir, 'plain.der');
  writeFileSync(plain, pkcs8);
  const theirs = execFileSync('openssl', ['pkcs8', '-topk8', '-inform', 'DER', '-in', plain, '-v2', 'aes-256-cbc', '-v2prf', 'hmacWithSHA256', '-passout', `pass:${PASSWORD}`]).toString();
  t.same(await decryptPrivateKeyInfo(theirs, PASSWORD), pkcs8);
});

t.test('wrong password, damaged data, foreign schemes → DECRYPTION_FAILED', async (t) => {
  const [, pkcs8] = keys()[0];
  const der = await encryptPrivateKeyInfo(pkcs8, PASSWORD, FAST);
  t.same(await decryptPrivateKeyInfo(der, PASSWORD), pkcs8);
  t.equal((await rejection(decryptPrivateKeyInfo(der, 'wrong'))).code, 'DECRYPTION_FAILED');
  const damaged = Buffer.from(der);
  damaged[damaged.length - 5] ^= 0xff;
  t.equal((await rejection(decryptPrivateKeyInfo(damaged, PASSWORD))).code, 'DECRYPTION_FAILED');
  t.equal((await rejection(decryptPrivateKeyInfo('not pem', PASSWORD))).code, 'DECRYPTION_FAILED');
  const plain = join(dir, 'plain3.der');
  writeFileSync(plain, pkcs8);
  const des = execFileSync('openssl', ['pkcs8', '-topk8', '-inform', 'DER', '-in', plain, '-v2', 'des3', '-passout', 'pass:x', '-outform', 'DER'], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.equal((await rejection(decryptPrivateKeyInfo(des, 'x'))).code, 'DECRYPTION_FAILED', '3DES is not a scheme we read');
});
