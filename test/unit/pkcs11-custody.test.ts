// Key custody against a real SoftHSM2 token: every algorithm, both custody modes, the key
// inventory, and what a record may and may not contain.
import t, { type Test } from 'tap';
import { constants, createPublicKey, createHash, verify } from 'node:crypto';
import { execFile, execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pkcs11js from 'pkcs11js';
import type { PKCS11 } from 'pkcs11js';
import { makeTestToken } from '../helpers/softhsm.js';
import { openPkcs11Custody, type Pkcs11Custody, type Pkcs11Options, type SoftwareSm2 } from '../../firmware-bridge/pkcs11/pkcs11-custody.js';
import { parsePkcs11Uri } from '../../firmware-bridge/pkcs11/pkcs11-uri.js';
import type { KeyRecord } from '../../appliance/src/crypto/interfaces.js';
import { createSm2Signer, generateSm2KeyPair, sm2Digest, sm2SpkiFromPublicKey, sm2Verify } from '../../appliance/src/crypto/sm2.js';
import { isYiqianError } from '../../appliance/src/errors.js';
import { InMemoryKeyRegistry } from '../helpers/in-memory-key-registry.js';

/** Tiny in-memory KeyRegistry (the LMDB one lives in appliance/src/store). Stores copies, like a database. */

const token = makeTestToken();
const registry = new InMemoryKeyRegistry();
/** Copies of every SM2 scalar the software side generated, to look for them where they must not be. */
const generatedScalars: Buffer[] = [];
const handedOut: Buffer[] = [];
const softwareSm2: SoftwareSm2 = {
  generate: () => {
    const kp = generateSm2KeyPair();
    generatedScalars.push(Buffer.from(kp.privateKey));
    handedOut.push(kp.privateKey);
    return kp;
  },
  signer: (d) => createSm2Signer(d),
  spki: sm2SpkiFromPublicKey,
  digest: sm2Digest,
};
let module: PKCS11 | undefined;
const events: Array<{ op: string; ok: boolean; seconds: number }> = [];
const options: Pkcs11Options = {
  module: token.module,
  tokenLabel: token.label,
  pin: token.pin,
  softwareSm2,
  observer: (e) => events.push(e),
  loadModule: (path) => {
    const p = new pkcs11js.PKCS11();
    p.load(path);
    module = p;
    return p;
  },
};

async function rejectsCode(tt: Test, p: Promise<unknown>, code: string, msg: string): Promise<void> {
  try {
    await p;
    tt.fail(`${msg}: expected ${code}, resolved`);
  } catch (e) {
    tt.ok(isYiqianError(e), `${msg}: a YiqianError`);
    tt.equal((e as { code?: string }).code, code, msg);
  }
}

/** A session of our own on the custody's (already initialised) module, to read objects back. */
function inspect<T>(fn: (p: PKCS11, s: Buffer) => T): T {
  const p = module as PKCS11;
  const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trim() === token.label) as Buffer;
  const s = p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  try {
    return fn(p, s);
  } finally {
    p.C_CloseSession(s);
  }
}

function findByLabel(p: PKCS11, s: Buffer, label: string, cls: number): Buffer[] {
  p.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_CLASS, value: cls }, { type: pkcs11js.CKA_LABEL, value: label }]);
  const r = p.C_FindObjects(s, 10);
  p.C_FindObjectsFinal(s);
  return r;
}

function bool(p: PKCS11, s: Buffer, o: Buffer, type: number): boolean {
  return p.C_GetAttributeValue(s, o, [{ type }])[0].value[0] === 1;
}

let custody: Pkcs11Custody;

t.before(async () => {
  custody = await openPkcs11Custody(options, registry);
});
t.teardown(async () => {
  await custody?.close();
  rmSync(token.dir, { recursive: true, force: true });
});

const data = Buffer.from('处方单 2024-0001: amoxicillin 500 mg, tid × 7 d');

t.test('ECDSA P-256 and P-384 in the token; node:crypto verifies; private key not extractable', async (tt) => {
  for (const [algorithm, defaultHash] of [['ecdsa-p256', 'sha256'], ['ecdsa-p384', 'sha384']] as const) {
    const info = await custody.generate({ algorithm, label: `ec-${algorithm}`, purpose: 'test signing key' });
    tt.equal(info.mode, 'hsm');
    tt.equal(info.mechanism, 'CKM_ECDSA');
    tt.match(info.id, /^[0-9A-HJKMNP-TV-Z]{26}$/, 'ULID');
    tt.match(info.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'ISO UTC with ms');
    const u = parsePkcs11Uri(info.uri);
    tt.same([u.token, u.object, u.type], [token.label, `ec-${algorithm}`, 'private']);
    tt.equal(u.id?.length, 16, 'URI carries the CKA_ID');
    const key = createPublicKey({ key: info.publicKeyInfo, format: 'der', type: 'spki' });
    tt.equal(key.asymmetricKeyDetails?.namedCurve, algorithm === 'ecdsa-p256' ? 'prime256v1' : 'secp384r1');

    const signer = await custody.signer(info.uri);
    tt.ok(signer.publicKeyInfo.equals(info.publicKeyInfo));
    const sig = await signer.sign(data);
    tt.equal(sig[0], 0x30, 'DER signature');
    tt.ok(verify(defaultHash, data, key, sig), `default hash ${defaultHash} verifies`);
    tt.notOk(verify(defaultHash, Buffer.concat([data, Buffer.from('x')]), key, sig), 'fails for other data');
    const sig512 = await signer.sign(data, { hash: 'sha512' });
    tt.ok(verify('sha512', data, key, sig512), 'hash override sha512');
    const digest = createHash('sha384').update(data).digest();
    const sigPre = await signer.sign(digest, { prehashed: true, hash: 'sha384' });
    tt.ok(verify('sha384', data, key, sigPre), 'prehashed digest');
    await rejectsCode(tt, signer.sign(data, { hash: 'sm3' }), 'UNSUPPORTED_ALGORITHM', 'ECDSA with SM3 refused');
    await rejectsCode(tt, signer.sign(Buffer.alloc(20), { prehashed: true }), 'BAD_REQUEST', 'digest of no SHA-2 length refused');

    // Read the attributes back from the token.
    inspect((p, s) => {
      const [priv] = findByLabel(p, s, `ec-${algorithm}`, pkcs11js.CKO_PRIVATE_KEY);
      tt.ok(priv, 'private key object exists');
      tt.equal(bool(p, s, priv, pkcs11js.CKA_TOKEN), true, 'CKA_TOKEN');
      tt.equal(bool(p, s, priv, pkcs11js.CKA_PRIVATE), true, 'CKA_PRIVATE');
      tt.equal(bool(p, s, priv, pkcs11js.CKA_SENSITIVE), true, 'CKA_SENSITIVE');
      tt.equal(bool(p, s, priv, pkcs11js.CKA_EXTRACTABLE), false, 'CKA_EXTRACTABLE false');
      tt.equal(bool(p, s, priv, pkcs11js.CKA_NEVER_EXTRACTABLE), true, 'CKA_NEVER_EXTRACTABLE');
      tt.throws(() => p.C_GetAttributeValue(s, priv, [{ type: pkcs11js.CKA_VALUE }]), /CKR_ATTRIBUTE_SENSITIVE/, 'CKA_VALUE cannot be read');
      const id = p.C_GetAttributeValue(s, priv, [{ type: pkcs11js.CKA_ID }])[0].value;
      tt.ok(id.equals(u.id as Buffer), 'CKA_ID matches the URI');
    });
  }
  // An independent reader: OpenSC's pkcs11-tool lists the key as never extractable.
  const listing = execFileSync('pkcs11-tool', ['--module', token.module, '--token-label', token.label, '--login', '--pin', token.pin, '--list-objects', '--type', 'privkey'], {
    env: { ...process.env, SOFTHSM2_CONF: token.conf },
    encoding: 'utf8',
  });
  tt.match(listing, /label:\s+ec-ecdsa-p256[\s\S]*?Access:\s+sensitive, always sensitive, never extractable/, 'pkcs11-tool: sensitive, never extractable');
});

t.test('RSA 2048/3072/4096 in the token; PKCS#1 v1.5 and PSS verify with node:crypto', async (tt) => {
  for (const bits of [2048, 3072, 4096] as const) {
    const algorithm = `rsa-${bits}` as const;
    const info = await custody.generate({ algorithm, label: `rsa-${bits}`, purpose: 'test signing key' });
    tt.equal(info.mechanism, 'CKM_RSA_PKCS / CKM_RSA_PKCS_PSS');
    const key = createPublicKey({ key: info.publicKeyInfo, format: 'der', type: 'spki' });
    tt.equal(key.asymmetricKeyDetails?.modulusLength, bits);
    tt.equal(key.asymmetricKeyDetails?.publicExponent, 65537n);
    const signer = await custody.signer(info.id);
    const sig = await signer.sign(data);
    tt.equal(sig.length, bits / 8);
    tt.ok(verify('sha256', data, key, sig), `RSA-${bits} PKCS#1 v1.5 sha256`);
    tt.notOk(verify('sha256', Buffer.from('other'), key, sig), 'fails for other data');
    const pss = await signer.sign(data, { rsaPadding: 'pss', hash: 'sha384' });
    tt.ok(verify('sha384', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }, pss), `RSA-${bits} PSS sha384, sLen 48`);
    tt.notOk(verify('sha384', data, { key, padding: constants.RSA_PKCS1_PADDING }, pss), 'PSS signature is not PKCS#1');
    if (bits === 2048) {
      const pss256 = await signer.sign(createHash('sha256').update(data).digest(), { rsaPadding: 'pss', prehashed: true });
      tt.ok(verify('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, pss256), 'PSS over a prehashed sha256');
      inspect((p, s) => {
        const [priv] = findByLabel(p, s, 'rsa-2048', pkcs11js.CKO_PRIVATE_KEY);
        tt.equal(bool(p, s, priv, pkcs11js.CKA_SENSITIVE), true, 'RSA CKA_SENSITIVE');
        tt.equal(bool(p, s, priv, pkcs11js.CKA_EXTRACTABLE), false, 'RSA CKA_EXTRACTABLE false');
      });
    }
  }
});

let sm2Record: KeyRecord;

t.test('SM2 wrapped under the token KEK: ciphertext only, verifies with sm2Verify', async (tt) => {
  const info = await custody.generate({ algorithm: 'sm2', label: 'sm2-signing', purpose: 'test SM2 signing key' });
  tt.equal(info.mode, 'wrapped', 'SM2 without a vendor profile is wrapped');
  tt.equal(info.mechanism, 'in-process SM2 under CKM_AES_KEY_WRAP_PAD');
  tt.equal(info.kekUri, `pkcs11:token=${token.label};object=yiqian-kek;type=secret-key`);
  sm2Record = (await registry.get(info.id)) as KeyRecord;
  const d = generatedScalars.at(-1) as Buffer;
  tt.equal(d.length, 32);
  tt.ok(handedOut.at(-1)?.equals(Buffer.alloc(32)), 'the custody zero-filled the plaintext scalar it was given');
  const wrapped = Buffer.from(sm2Record.wrappedKey as string, 'base64');
  tt.equal(wrapped.length, 40, 'RFC 5649 output: 32 bytes + 8');
  tt.notOk(wrapped.includes(d), 'ciphertext does not contain the scalar');
  const row = registry.rows.get(info.id) as string;
  for (const enc of ['hex', 'base64', 'base64url'] as const) tt.notOk(row.toLowerCase().includes(d.toString(enc).toLowerCase()), `no plaintext scalar (${enc}) in the stored record`);

  const signer = await custody.signer(info.uri);
  tt.ok(signer.publicKeyInfo.equals(info.publicKeyInfo));
  const sig = await signer.sign(data);
  tt.ok(await sm2Verify(info.publicKeyInfo, data, sig), 'sm2Verify with the default ID');
  tt.notOk(await sm2Verify(info.publicKeyInfo, Buffer.from('tampered'), sig), 'fails for other data');
  tt.equal(await custody.signer(info.id), signer, 'signer is unwrapped once and cached');

  inspect((p, s) => {
    const [kek] = findByLabel(p, s, 'yiqian-kek', pkcs11js.CKO_SECRET_KEY);
    tt.ok(kek, 'KEK is a token object');
    tt.equal(p.C_GetAttributeValue(s, kek, [{ type: pkcs11js.CKA_VALUE_LEN }])[0].value.readUInt32LE(0), 32, 'AES-256');
    for (const [a, want] of [[pkcs11js.CKA_TOKEN, true], [pkcs11js.CKA_SENSITIVE, true], [pkcs11js.CKA_EXTRACTABLE, false], [pkcs11js.CKA_WRAP, true], [pkcs11js.CKA_UNWRAP, true]] as const) {
      tt.equal(bool(p, s, kek, a), want, `KEK attribute 0x${a.toString(16)} = ${want}`);
    }
    tt.equal(findByLabel(p, s, 'sm2-signing', pkcs11js.CKO_SECRET_KEY).length, 0, 'no session object with the scalar left behind');
  });
  const second = await custody.generate({ algorithm: 'sm2', label: 'sm2-second', purpose: 'second SM2 key under the same KEK' });
  inspect((p, s) => tt.equal(findByLabel(p, s, 'yiqian-kek', pkcs11js.CKO_SECRET_KEY).length, 1, 'one KEK for all wrapped keys'));
  tt.notOk((await custody.publicKey(second.id)).equals(info.publicKeyInfo));
});

t.test('many signatures in flight share the session pool', async (tt) => {
  const signer = await custody.signer(`pkcs11:token=${token.label};object=ec-ecdsa-p256`);
  const key = createPublicKey({ key: signer.publicKeyInfo, format: 'der', type: 'spki' });
  const msgs = Array.from({ length: 64 }, (_, i) => Buffer.from(`message ${i}`));
  const sigs = await Promise.all(msgs.map((m) => signer.sign(m)));
  tt.ok(sigs.every((s, i) => verify('sha256', msgs[i], key, s)), '64 concurrent signatures verify');
  tt.ok(events.some((e) => e.op === 'sign' && e.ok && e.seconds > 0), 'observer saw sign operations');
  tt.ok(events.some((e) => e.op === 'generate' && e.ok), 'observer saw generate operations');
});

t.test('reopened custody (a new object, same registry) signs with the wrapped key and the token keys', async (tt) => {
  await custody.close();
  tt.equal((await custody.health()).ok, false, 'a closed custody is not healthy');
  custody = await openPkcs11Custody(options, registry);
  const signer = await custody.signer(sm2Record.uri);
  const sig = await signer.sign(data);
  tt.ok(await sm2Verify(Buffer.from(sm2Record.publicKeyInfo, 'base64'), data, sig), 'wrapped SM2 key works after reopening');
  const ec = await custody.signer(`pkcs11:object=ec-ecdsa-p256;type=private`);
  tt.ok(verify('sha256', data, createPublicKey({ key: ec.publicKeyInfo, format: 'der', type: 'spki' }), await ec.sign(data)), 'token key found again');
  const h = await custody.health();
  tt.equal(h.ok, true);
  tt.equal(h.token, token.label);
  tt.match(h.module, /SoftHSM.*token model SoftHSM v2/);
});

t.test('another process, given only the stored record, signs with the wrapped key', async (tt) => {
  const registryFile = join(token.dir, 'registry.json');
  writeFileSync(registryFile, JSON.stringify(await registry.list()));
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const script = `
    import { readFileSync } from 'node:fs';
    import { openPkcs11Custody } from '${root}firmware-bridge/pkcs11/pkcs11-custody.js';
    import { createSm2Signer, generateSm2KeyPair, sm2SpkiFromPublicKey } from '${root}appliance/src/crypto/sm2.js';
    const rows = JSON.parse(readFileSync(process.env.REGISTRY, 'utf8'));
    const registry = { put: async () => {}, get: async (id) => rows.find((r) => r.id === id), getByLabel: async (l) => rows.find((r) => r.label === l), list: async () => rows, delete: async () => {} };
    const custody = await openPkcs11Custody({ module: process.env.MODULE, tokenLabel: process.env.LABEL, pin: process.env.PIN,
      softwareSm2: { generate: generateSm2KeyPair, signer: (d) => createSm2Signer(d), spki: sm2SpkiFromPublicKey } }, registry);
    const signer = await custody.signer(process.env.REF);
    process.stdout.write((await signer.sign(Buffer.from(process.env.DATA, 'hex'))).toString('hex'));
    await custody.close();
  `;
  const { stdout } = await promisify(execFile)(process.execPath, [`--import=${root}node_modules/@tapjs/typescript/dist/esm/import.mjs`, '--input-type=module', '-e', script], {
    env: { ...process.env, TS_NODE_TRANSPILE_ONLY: '1', YIQIAN_LOG_LEVEL: 'error', SOFTHSM2_CONF: token.conf, REGISTRY: registryFile, MODULE: token.module, LABEL: token.label, PIN: token.pin, REF: sm2Record.uri, DATA: data.toString('hex') },
    cwd: root,
  });
  tt.ok(await sm2Verify(Buffer.from(sm2Record.publicKeyInfo, 'base64'), data, Buffer.from(stdout.trim(), 'hex')), 'the other process unwrapped the key with the token KEK and signed');
});

t.test('duplicate labels, unknown keys, bad references', async (tt) => {
  await rejectsCode(tt, custody.generate({ algorithm: 'ecdsa-p256', label: 'ec-ecdsa-p256', purpose: 'x' }), 'KEY_EXISTS', 'label in the inventory');
  await rejectsCode(tt, custody.generate({ algorithm: 'sm2', label: 'sm2-signing', purpose: 'x' }), 'KEY_EXISTS', 'wrapped label in the inventory');
  await rejectsCode(tt, custody.generate({ algorithm: 'ecdsa-p256', label: 'yiqian-kek', purpose: 'x' }), 'KEY_EXISTS', 'the KEK label');
  // An object made on the token by someone else (a key ceremony with pkcs11-tool).
  execFileSync('pkcs11-tool', ['--module', token.module, '--token-label', token.label, '--login', '--pin', token.pin, '--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'ceremony-key'], {
    env: { ...process.env, SOFTHSM2_CONF: token.conf },
    stdio: 'ignore',
  });
  await rejectsCode(tt, custody.generate({ algorithm: 'ecdsa-p256', label: 'ceremony-key', purpose: 'x' }), 'KEY_EXISTS', 'label of a token object outside the inventory');
  const two = await Promise.allSettled([0, 1].map(() => custody.generate({ algorithm: 'ecdsa-p256', label: 'raced', purpose: 'x' })));
  tt.same(two.map((r) => r.status).sort(), ['fulfilled', 'rejected'], 'concurrent generate with one label: one wins');
  tt.equal((two.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason.code, 'KEY_EXISTS');

  await rejectsCode(tt, custody.signer('01HZZZZZZZZZZZZZZZZZZZZZZZ'), 'KEY_NOT_FOUND', 'unknown id');
  await rejectsCode(tt, custody.signer(`pkcs11:token=${token.label};object=nope`), 'KEY_NOT_FOUND', 'unknown label');
  await rejectsCode(tt, custody.publicKey('pkcs11:token=other;object=ec-ecdsa-p256'), 'KEY_NOT_FOUND', 'other token');
  await rejectsCode(tt, custody.signer('pkcs11:object=ec-ecdsa-p256;id=%00%01'), 'KEY_NOT_FOUND', 'label right, CKA_ID wrong');
  await rejectsCode(tt, custody.signer('pkcs11:object=ceremony-key'), 'KEY_NOT_FOUND', 'token object not in the inventory');
  await rejectsCode(tt, custody.signer('pkcs11:token=yiqian;object=a b'), 'INVALID_KEY_URI', 'unencoded space');
  await rejectsCode(tt, custody.signer('pkcs11:token=yiqian'), 'INVALID_KEY_URI', 'no object or id');
  await rejectsCode(tt, custody.generate({ algorithm: 'ed25519' as never, label: 'x', purpose: 'x' }), 'UNSUPPORTED_ALGORITHM', 'unknown algorithm');
  await rejectsCode(tt, custody.generate({ algorithm: 'ecdsa-p256', label: 'x', purpose: 'x', mode: 'wrapped' }), 'UNSUPPORTED_ALGORITHM', 'wrapped ECDSA');
  await rejectsCode(tt, custody.generate({ algorithm: 'sm2', label: 'x', purpose: 'x', mode: 'hsm' }), 'HSM_MECHANISM_UNSUPPORTED', 'hsm SM2 without a profile');
  await rejectsCode(tt, custody.generate({ algorithm: 'ecdsa-p256', label: ' padded', purpose: 'x' }), 'BAD_REQUEST', 'label with blanks');
  await rejectsCode(tt, custody.generate({ algorithm: 'ecdsa-p256', label: 'no-purpose', purpose: ' ' }), 'BAD_REQUEST', 'purpose required');
});

t.test('list, a record whose token object vanished, destroy', async (tt) => {
  const before = await custody.list();
  tt.same(before.map((k) => k.label).sort(), ['ec-ecdsa-p256', 'ec-ecdsa-p384', 'raced', 'rsa-2048', 'rsa-3072', 'rsa-4096', 'sm2-second', 'sm2-signing']);
  tt.ok(before.every((k) => Buffer.isBuffer(k.publicKeyInfo)), 'KeyInfo carries SPKI bytes');
  tt.same(await custody.checkInventory(), [], 'inventory consistent');

  // Remove the token objects of one key behind the custody's back.
  // (The custody's sessions keep the token logged in, so our session sees private objects.)
  inspect((p, s) => {
    for (const cls of [pkcs11js.CKO_PRIVATE_KEY, pkcs11js.CKO_PUBLIC_KEY]) for (const o of findByLabel(p, s, 'rsa-3072', cls)) p.C_DestroyObject(s, o);
  });
  const listed = await custody.list();
  tt.ok(listed.some((k) => k.label === 'rsa-3072'), 'list still returns the record (and logs a warning)');
  const problems = await custody.checkInventory();
  tt.same(problems.map((p) => [p.label, p.problem]), [['rsa-3072', 'token-object-missing']], 'checkInventory reports it');
  const rsa3072 = listed.find((k) => k.label === 'rsa-3072');
  await rejectsCode(tt, custody.signer(rsa3072?.id as string), 'KEY_NOT_FOUND', 'signer for the vanished key');

  const victim = listed.find((k) => k.label === 'raced');
  await custody.destroy(victim?.uri as string);
  await rejectsCode(tt, custody.publicKey(victim?.id as string), 'KEY_NOT_FOUND', 'destroyed key is gone from the inventory');
  inspect((p, s) => {
    tt.equal(findByLabel(p, s, 'raced', pkcs11js.CKO_PRIVATE_KEY).length + findByLabel(p, s, 'raced', pkcs11js.CKO_PUBLIC_KEY).length, 0, 'and from the token');
  });
  await custody.destroy(rsa3072?.id as string);
  tt.same(await custody.checkInventory(), [], 'destroying the dangling record cleans the inventory');
  await custody.destroy(((await registry.getByLabel('sm2-second')) as KeyRecord).id);
  tt.notOk(await registry.getByLabel('sm2-second'), 'wrapped key record removed');
});

t.test('signing uses a session-object copy of the token key; a key destroyed on the token stops signing within a second', async (tt) => {
  const objectsOf = (label: string, onToken: boolean) =>
    inspect((p, s) => {
      p.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_LABEL, value: label }, { type: pkcs11js.CKA_TOKEN, value: onToken }]);
      const r = p.C_FindObjects(s, 10);
      p.C_FindObjectsFinal(s);
      return r;
    });
  const info = await custody.generate({ algorithm: 'ecdsa-p256', label: 'copied', purpose: 'test signing copy' });
  const key = createPublicKey({ key: info.publicKeyInfo, format: 'der', type: 'spki' });
  const signer = await custody.signer(info.id);
  for (let i = 0; i < 20; i++) tt.ok(verify('sha256', data, key, await signer.sign(data)), `signature ${i} verifies`);
  tt.equal(objectsOf('copied', false).length, 1, 'one session-object copy, made once');
  tt.equal(objectsOf('copied', true).length, 1, 'the token object stays');
  inspect((p, s) => tt.ok(bool(p, s, objectsOf('copied', false)[0], pkcs11js.CKA_SENSITIVE), 'the copy is sensitive'));
  inspect((p, s) => tt.notOk(bool(p, s, objectsOf('copied', false)[0], pkcs11js.CKA_EXTRACTABLE), 'the copy is not extractable'));

  // Destroy only the token objects, behind the custody's back (as another process could).
  inspect((p, s) => {
    for (const o of objectsOf('copied', true)) p.C_DestroyObject(s, o);
  });
  await new Promise((r) => setTimeout(r, 1100));
  await rejectsCode(tt, signer.sign(data), 'KEY_NOT_FOUND', 'after the recheck interval the copy no longer signs');
  tt.equal(objectsOf('copied', false).length, 0, 'and the copy is destroyed');

  // destroy() takes the copy with the token objects.
  const second = await custody.generate({ algorithm: 'ecdsa-p256', label: 'copied-2', purpose: 'test signing copy' });
  await (await custody.signer(second.id)).sign(data);
  tt.equal(objectsOf('copied-2', false).length, 1, 'copy made');
  await custody.destroy(second.id);
  tt.equal(objectsOf('copied-2', false).length + objectsOf('copied-2', true).length, 0, 'destroy removes the copy and the token object');
  await custody.destroy(info.id);
});

t.test('wrapped key: corrupted ciphertext or a missing KEK is KEY_UNWRAP_FAILED', async (tt) => {
  const rec = (await registry.get(sm2Record.id)) as KeyRecord;
  const bad = Buffer.from(rec.wrappedKey as string, 'base64');
  bad[5] ^= 0x01;
  await registry.put({ ...rec, id: rec.id.slice(0, -1) + (rec.id.endsWith('0') ? '1' : '0'), label: 'sm2-corrupt', uri: rec.uri.replace('sm2-signing', 'sm2-corrupt'), wrappedKey: bad.toString('base64') });
  await rejectsCode(tt, custody.signer('pkcs11:object=sm2-corrupt'), 'KEY_UNWRAP_FAILED', 'tampered ciphertext');

  inspect((p, s) => {
    for (const o of findByLabel(p, s, 'yiqian-kek', pkcs11js.CKO_SECRET_KEY)) p.C_DestroyObject(s, o);
  });
  await custody.close(); // forget the unwrapped signer
  custody = await openPkcs11Custody(options, registry);
  await rejectsCode(tt, custody.signer(sm2Record.id), 'KEY_UNWRAP_FAILED', 'KEK gone from the token');
  const problems = await custody.checkInventory();
  tt.ok(problems.some((p) => p.label === 'sm2-signing' && p.problem === 'kek-missing'), 'inventory reports the missing KEK');
});
