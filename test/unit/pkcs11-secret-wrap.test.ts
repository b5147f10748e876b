// SecretWrapper of the PKCS#11 custody against a real SoftHSM2 token: data keys wrapped under
// the token's non-extractable AES-256 KEK, across custody restarts, and refused when they are
// not what the token wrapped.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { makeTestToken } from '../helpers/softhsm.js';
import { openPkcs11Custody, type Pkcs11Custody, type Pkcs11Options } from '../../firmware-bridge/pkcs11/pkcs11-custody.js';
import { isSecretWrapper, type KeyRecord, type KeyRegistry } from '../../appliance/src/crypto/interfaces.js';
import { createSm2Signer, generateSm2KeyPair, sm2Digest, sm2SpkiFromPublicKey } from '../../appliance/src/crypto/sm2.js';
import { isYiqianError, type YiqianError } from '../../appliance/src/errors.js';

async function rejection(p: Promise<unknown>): Promise<YiqianError> {
  try {
    await p;
  } catch (e) {
    if (isYiqianError(e)) return e;
    throw e;
  }
  throw new Error('expected a rejection');
}

/** The custody needs a registry; this test stores no keys in it. */
class MemoryKeyRegistry implements KeyRegistry {
  private readonly rows = new Map<string, KeyRecord>();
  async put(r: KeyRecord): Promise<void> {
    this.rows.set(r.id, structuredClone(r));
  }
  async get(id: string): Promise<KeyRecord | undefined> {
    return this.rows.get(id);
  }
  async getByLabel(label: string): Promise<KeyRecord | undefined> {
    return [...this.rows.values()].find((r) => r.label === label);
  }
  async list(): Promise<KeyRecord[]> {
    return [...this.rows.values()];
  }
  async delete(id: string): Promise<void> {
    this.rows.delete(id);
  }
}

const token = makeTestToken();
// A second token under the same SoftHSM2 configuration, with its own KEK.
execFileSync('softhsm2-util', ['--init-token', '--free', '--label', 'other', '--so-pin', token.soPin, '--pin', token.pin], { stdio: 'ignore' });

function options(over: Partial<Pkcs11Options> = {}): Pkcs11Options {
  return {
    module: token.module,
    tokenLabel: token.label,
    pin: token.pin,
    softwareSm2: { generate: generateSm2KeyPair, signer: (d) => createSm2Signer(d), spki: sm2SpkiFromPublicKey, digest: sm2Digest },
    ...over,
  };
}

let custody: Pkcs11Custody;
t.before(async () => {
  custody = await openPkcs11Custody(options(), new MemoryKeyRegistry());
});
t.teardown(async () => {
  await custody.close();
});

t.test('round trip for every allowed length; the ciphertext hides the secret', async (t) => {
  t.ok(isSecretWrapper(custody), 'the PKCS#11 custody offers the SecretWrapper capability');
  for (const len of [16, 24, 32, 64, 1024]) {
    const secret = randomBytes(len);
    const wrapped = await custody.wrapSecret(secret);
    t.equal(wrapped[0], 1, 'format 1');
    t.equal(wrapped[1], 1, 'CKM_AES_KEY_WRAP_PAD by default');
    t.equal(wrapped.subarray(3, 3 + wrapped[2]).toString(), 'yiqian-kek', 'names the KEK');
    t.equal(wrapped.indexOf(secret), -1, `${len} bytes: the secret does not appear in the wrapped form`);
    t.same(await custody.unwrapSecret(wrapped), secret, `${len} bytes round trip`);
  }
  const s = randomBytes(32);
  t.notSame(await custody.wrapSecret(s), await custody.wrapSecret(randomBytes(32)), 'different secrets, different ciphertexts');
});

t.test('lengths SoftHSM2 cannot wrap correctly are refused before the token sees them', async (t) => {
  for (const len of [0, 8, 15, 33, 31, 1032]) {
    const e = await rejection(custody.wrapSecret(randomBytes(len)));
    t.equal(e.code, 'BAD_REQUEST', `${len} bytes refused`);
  }
});

t.test('a wrapped secret survives a custody restart (the KEK is a token object)', async (t) => {
  const secret = randomBytes(32);
  const wrapped = await custody.wrapSecret(secret);
  const again = await openPkcs11Custody(options({ poolSize: 1 }), new MemoryKeyRegistry());
  try {
    t.same(await again.unwrapSecret(wrapped), secret);
  } finally {
    await again.close();
  }
});

t.test('CKM_AES_KEY_WRAP custody and a padded-wrap custody read each other (the blob names its mechanism)', async (t) => {
  const kw = await openPkcs11Custody(options({ wrapMechanism: 'CKM_AES_KEY_WRAP', poolSize: 1 }), new MemoryKeyRegistry());
  try {
    const secret = randomBytes(32);
    const wrapped = await kw.wrapSecret(secret);
    t.equal(wrapped[1], 2, 'mechanism 2 = CKM_AES_KEY_WRAP');
    t.same(await custody.unwrapSecret(wrapped), secret);
    const back = await custody.wrapSecret(secret);
    t.same(await kw.unwrapSecret(back), secret);
  } finally {
    await kw.close();
  }
});

t.test('tampered, truncated or foreign blobs → KEY_UNWRAP_FAILED', async (t) => {
  const secret = randomBytes(32);
  const wrapped = await custody.wrapSecret(secret);
  const flipped = Buffer.from(wrapped);
  flipped[flipped.length - 5] ^= 0x01;
  t.equal((await rejection(custody.unwrapSecret(flipped))).code, 'KEY_UNWRAP_FAILED', 'one bit flipped in the ciphertext');
  t.equal((await rejection(custody.unwrapSecret(wrapped.subarray(0, wrapped.length - 8)))).code, 'KEY_UNWRAP_FAILED', 'truncated');
  t.equal((await rejection(custody.unwrapSecret(Buffer.from('not wrapped at all')))).code, 'KEY_UNWRAP_FAILED', 'garbage');
  const otherKek = Buffer.from(wrapped);
  otherKek.write('absent-kek', 3, 'utf8'); // same length as yiqian-kek
  t.equal((await rejection(custody.unwrapSecret(otherKek))).code, 'KEY_UNWRAP_FAILED', 'names a KEK that is not on the token');

  const other = await openPkcs11Custody(options({ tokenLabel: 'other', poolSize: 1 }), new MemoryKeyRegistry());
  try {
    const onOther = await other.wrapSecret(secret);
    t.same(await other.unwrapSecret(onOther), secret, 'the other token wraps with its own KEK');
    t.equal((await rejection(custody.unwrapSecret(onOther))).code, 'KEY_UNWRAP_FAILED', "another token's KEK (same label, different key) does not unwrap here");
  } finally {
    await other.close();
  }
});
