// The signing addon (firmware-bridge/pkcs11/native/sign-async.c: C_SignInit + C_Sign in one
// libuv-pool job) against a real SoftHSM2 token, on the sessions and handles pkcs11js opened:
// signatures verify with node:crypto, failures carry the CK_RV like pkcs11js errors, a failed
// C_Sign leaves no operation active, and the custody uses it (and recovers from stale handles).
import t from 'tap';
import { constants, createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import type { PKCS11 } from 'pkcs11js';
import { makeTestToken } from '../helpers/softhsm.js';
import { openPkcs11Custody, type Pkcs11Custody, type Pkcs11Options } from '../../firmware-bridge/pkcs11/pkcs11-custody.js';
import { loadNativeSign, type NativeSign } from '../../firmware-bridge/pkcs11/sign-async.js';
import { ckrOf } from '../../firmware-bridge/pkcs11/pkcs11-module.js';
import { recoveryFor } from '../../firmware-bridge/pkcs11/pkcs11-errors.js';
import { createSm2Signer, generateSm2KeyPair, sm2SpkiFromPublicKey } from '../../appliance/src/crypto/sm2.js';
import { InMemoryKeyRegistry } from '../helpers/in-memory-key-registry.js';

const token = makeTestToken();
let module: PKCS11 | undefined;
/** pkcs11js C_SignInit calls made by the custody (the addon path makes none). */
let pkcs11jsSignInits = 0;
/** HSM operations the custody's pool ran, by op name ('sign', 'sign-batch', …). */
const ops: Record<string, number> = {};
const options: Pkcs11Options = {
  observer: (e) => void (ops[e.op] = (ops[e.op] ?? 0) + 1),
  module: token.module,
  tokenLabel: token.label,
  pin: token.pin,
  poolSize: 8,
  softwareSm2: { generate: generateSm2KeyPair, signer: (d) => createSm2Signer(d), spki: sm2SpkiFromPublicKey },
  loadModule: (path) => {
    const p = new pkcs11js.PKCS11();
    p.load(path);
    const init = p.C_SignInit.bind(p);
    p.C_SignInit = (...args: Parameters<PKCS11['C_SignInit']>) => {
      pkcs11jsSignInits++;
      init(...args);
    };
    module = p;
    return p;
  },
};

const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');
const message = Buffer.from('检验报告 #7781 — signed off the main thread');
const digest256 = createHash('sha256').update(message).digest();
const digest384 = createHash('sha384').update(message).digest();

let custody: Pkcs11Custody;
let native: NativeSign;
const pub: Record<string, KeyObject> = {};

t.before(async () => {
  custody = await openPkcs11Custody(options, new InMemoryKeyRegistry());
  for (const [label, algorithm] of [['p256', 'ecdsa-p256'], ['p384', 'ecdsa-p384'], ['rsa', 'rsa-2048']] as const) {
    const info = await custody.generate({ algorithm, label, purpose: 'sign-async test' });
    pub[label] = createPublicKey({ key: info.publicKeyInfo, format: 'der', type: 'spki' });
  }
  const n = loadNativeSign(token.module);
  if (!n) throw new Error('yiqian_pkcs11_sign.node is not built (npm_config_nodedir=/usr npx node-gyp rebuild)');
  native = n;
});
t.teardown(() => custody.close());

/** A session of our own on the custody's (initialised, logged-in) module. */
function session(): { p: PKCS11; s: Buffer; key: (label: string) => Buffer; close: () => void } {
  const p = module as PKCS11;
  const slot = p.C_GetSlotList(true).find((x) => p.C_GetTokenInfo(x).label.trim() === token.label) as Buffer;
  const s = p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  const key = (label: string): Buffer => {
    p.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_LABEL, value: label }]);
    const [k] = p.C_FindObjects(s, 1);
    p.C_FindObjectsFinal(s);
    return k;
  };
  return { p, s, key, close: () => p.C_CloseSession(s) };
}

async function rejection(p: Promise<unknown>): Promise<Error & { code?: number; method?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: number; method?: string };
  }
  throw new Error('expected a rejection');
}

t.test('the addon signs on pkcs11js sessions; node:crypto verifies', async (tt) => {
  const { s, key, close } = session();
  try {
    const p256 = await native.sign(s, pkcs11js.CKM_ECDSA, null, key('p256'), digest256, 64);
    tt.equal(p256.length, 64, 'P-256: raw r‖s');
    tt.ok(verify('sha256', message, { key: pub.p256, dsaEncoding: 'ieee-p1363' }, p256), 'ECDSA P-256 verifies');
    const p384 = await native.sign(s, pkcs11js.CKM_ECDSA, null, key('p384'), digest384, 96);
    tt.ok(verify('sha384', message, { key: pub.p384, dsaEncoding: 'ieee-p1363' }, p384), 'ECDSA P-384 verifies');
    const v15 = await native.sign(s, pkcs11js.CKM_RSA_PKCS, null, key('rsa'), Buffer.concat([SHA256_DIGEST_INFO, digest256]), 256);
    tt.ok(verify('sha256', message, pub.rsa, v15), 'RSA PKCS#1 v1.5 verifies');
    const pss = await native.sign(s, pkcs11js.CKM_RSA_PKCS_PSS, { hashAlg: pkcs11js.CKM_SHA256, mgf: pkcs11js.CKG_MGF1_SHA256, sLen: 32 }, key('rsa'), digest256, 256);
    tt.ok(verify('sha256', message, { key: pub.rsa, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, pss), 'RSA-PSS (sLen 32) verifies');
    tt.notOk(verify('sha256', message, { key: pub.rsa, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 20 }, pss), 'and not with another salt length');

    // Output buffer too small: the job asks again with the size the token reports (§5.2).
    const grown = await native.sign(s, pkcs11js.CKM_ECDSA, null, key('p256'), digest256, 1);
    tt.equal(grown.length, 64, 'CKR_BUFFER_TOO_SMALL → buffer grown to 64 bytes');
    tt.ok(verify('sha256', message, { key: pub.p256, dsaEncoding: 'ieee-p1363' }, grown), 'and the signature verifies');
  } finally {
    close();
  }
});

t.test('failures carry the CK_RV like pkcs11js errors and leave no operation active', async (tt) => {
  const { p, s, key, close } = session();
  try {
    // A handle that was valid and is no more: a copy replaces the key object.
    const copy = p.C_CopyObject(s, key('p256'), [{ type: pkcs11js.CKA_LABEL, value: 'p256-copy' }]);
    p.C_DestroyObject(s, copy);
    const stale = await rejection(native.sign(s, pkcs11js.CKM_ECDSA, null, copy, digest256, 64));
    tt.same(ckrOf(stale), { code: pkcs11js.CKR_OBJECT_HANDLE_INVALID, name: 'CKR_OBJECT_HANDLE_INVALID' }, 'destroyed key handle → CKR_OBJECT_HANDLE_INVALID');
    tt.ok(stale instanceof pkcs11js.Pkcs11Error, 'a pkcs11js Pkcs11Error');
    tt.equal(stale.method, 'C_SignInit', 'names the failing call');
    tt.equal(recoveryFor(stale), 'none', 'not a session or device error');

    const badSession = Buffer.alloc(8);
    badSession.writeBigUInt64LE(0xdead_beefn);
    const gone = await rejection(native.sign(badSession, pkcs11js.CKM_ECDSA, null, key('p256'), digest256, 64));
    tt.equal(ckrOf(gone)?.name, 'CKR_SESSION_HANDLE_INVALID', 'unknown session → CKR_SESSION_HANDLE_INVALID');
    tt.equal(recoveryFor(gone), 'session', 'which the pool recovers as a session error');

    const mech = await rejection(native.sign(s, pkcs11js.CKM_RSA_PKCS_PSS, null, key('rsa'), digest256, 256));
    tt.equal(mech.method, 'C_SignInit', 'PSS without parameters fails in C_SignInit');
    tt.ok(ckrOf(mech), `with a CK_RV (${ckrOf(mech)?.name})`);

    // C_Sign fails after a good C_SignInit: the token ended the operation (PKCS#11 v2.40 §5.12).
    const tooLong = await rejection(native.sign(s, pkcs11js.CKM_RSA_PKCS, null, key('rsa'), Buffer.alloc(300, 1), 256));
    tt.equal(tooLong.method, 'C_Sign', 'over-long PKCS#1 input fails in C_Sign');
    // SoftHSM2 answers CKR_GENERAL_ERROR here (the spec's CKR_DATA_LEN_RANGE would do as well): the same as through pkcs11js.
    p.C_SignInit(s, { mechanism: pkcs11js.CKM_RSA_PKCS }, key('rsa'));
    let viaPkcs11js: unknown;
    try {
      p.C_Sign(s, Buffer.alloc(300, 1), Buffer.alloc(256));
    } catch (e) {
      viaPkcs11js = e;
    }
    tt.ok(ckrOf(tooLong), `with a CK_RV (${ckrOf(tooLong)?.name})`);
    tt.same(ckrOf(tooLong), ckrOf(viaPkcs11js), 'the CK_RV pkcs11js reports for the same call');
    const after = await native.sign(s, pkcs11js.CKM_ECDSA, null, key('p256'), digest256, 64);
    tt.ok(verify('sha256', message, { key: pub.p256, dsaEncoding: 'ieee-p1363' }, after), 'the session signs again (no operation left active)');
    p.C_SignInit(s, { mechanism: pkcs11js.CKM_ECDSA }, key('p256'));
    tt.ok(verify('sha256', message, { key: pub.p256, dsaEncoding: 'ieee-p1363' }, p.C_Sign(s, digest256, Buffer.alloc(64))), 'and so does pkcs11js on it');

    tt.throws(() => void native.sign(Buffer.alloc(3), pkcs11js.CKM_ECDSA, null, key('p256'), digest256, 64), TypeError, 'a session Buffer of the wrong size is a TypeError');
    tt.throws(() => void native.sign(s, pkcs11js.CKM_RSA_PKCS_PSS, { hashAlg: pkcs11js.CKM_SHA256, mgf: -1, sLen: 32 }, key('rsa'), digest256, 256), TypeError, 'a bad PSS parameter is a TypeError');
    tt.throws(() => void native.sign(s, pkcs11js.CKM_ECDSA, null, key('p256'), digest256, 0), TypeError, 'outLen 0 is a TypeError');
  } finally {
    close();
  }
});

t.test('signMany: one job signs every input in turn; a failure says how many were signed', async (tt) => {
  const { p, s, key, close } = session();
  try {
    const messages = Array.from({ length: 40 }, (_, i) => Buffer.from(`医嘱 ${i}`));
    const digests = messages.map((m) => createHash('sha256').update(m).digest());
    const sigs = await native.signMany(s, pkcs11js.CKM_ECDSA, null, key('p256'), digests, 64);
    tt.equal(sigs.length, 40, 'one signature per input, in order');
    tt.ok(sigs.every((sig, i) => verify('sha256', messages[i], { key: pub.p256, dsaEncoding: 'ieee-p1363' }, sig)), 'each verifies over its own message');
    tt.notOk(verify('sha256', messages[1], { key: pub.p256, dsaEncoding: 'ieee-p1363' }, sigs[0]), 'and not over another');
    const v15 = await native.signMany(s, pkcs11js.CKM_RSA_PKCS, null, key('rsa'), [Buffer.concat([SHA256_DIGEST_INFO, digest256]), Buffer.concat([SHA256_DIGEST_INFO, digest256])], 256);
    tt.ok(v15.every((sig) => verify('sha256', message, pub.rsa, sig)), 'RSA PKCS#1 v1.5 too');

    // The third input is too long for PKCS#1 v1.5: two signed, then C_Sign fails and the job stops.
    const good = Buffer.concat([SHA256_DIGEST_INFO, digest256]);
    const failed = await rejection(native.signMany(s, pkcs11js.CKM_RSA_PKCS, null, key('rsa'), [good, good, Buffer.alloc(300, 1), good], 256));
    tt.equal(failed.method, 'C_Sign', 'the failing call is named');
    tt.ok(ckrOf(failed), `with a CK_RV (${ckrOf(failed)?.name})`);
    tt.equal((failed as Error & { signed?: number }).signed, 2, 'signed: 2 went before it');
    const again = await native.signMany(s, pkcs11js.CKM_ECDSA, null, key('p256'), [digest256], 64);
    tt.ok(verify('sha256', message, { key: pub.p256, dsaEncoding: 'ieee-p1363' }, again[0]), 'the session signs again (no operation left active)');
    p.C_SignInit(s, { mechanism: pkcs11js.CKM_ECDSA }, key('p256'));
    tt.ok(verify('sha256', message, { key: pub.p256, dsaEncoding: 'ieee-p1363' }, p.C_Sign(s, digest256, Buffer.alloc(64))), 'and so does pkcs11js on it');

    tt.throws(() => void native.signMany(s, pkcs11js.CKM_ECDSA, null, key('p256'), [], 64), TypeError, 'no inputs is a TypeError');
    tt.throws(() => void native.signMany(s, pkcs11js.CKM_ECDSA, null, key('p256'), Array.from({ length: 257 }, () => digest256), 64), TypeError, 'more than 256 is a TypeError');
    tt.throws(() => void native.signMany(s, pkcs11js.CKM_ECDSA, null, key('p256'), [digest256, 'x' as unknown as Buffer], 64), TypeError, 'a non-Buffer input is a TypeError');
  } finally {
    close();
  }
});

t.test('the custody batches the ECDSA signatures of one event-loop iteration into one job', async (tt) => {
  const signer = await custody.signer('pkcs11:object=p256');
  await signer.sign(message);
  const before = { sign: ops.sign ?? 0, batch: ops['sign-batch'] ?? 0 };
  const messages = Array.from({ length: 12 }, (_, i) => Buffer.from(`处方 ${i}`));
  const sigs = await Promise.all(messages.map((m) => signer.sign(m)));
  tt.ok(sigs.every((sig, i) => verify('sha256', messages[i], pub.p256, sig)), '12 signatures, each over its own message');
  tt.equal((ops['sign-batch'] ?? 0) - before.batch, 1, 'one signMany job');
  tt.equal((ops.sign ?? 0) - before.sign, 0, 'no single-signature job');
  const many = Array.from({ length: 40 }, (_, i) => Buffer.from(`医嘱 ${i}`));
  const manySigs = await Promise.all(many.map((m) => signer.sign(m)));
  tt.ok(manySigs.every((sig, i) => verify('sha256', many[i], pub.p256, sig)), '40 signatures, each over its own message');
  tt.equal((ops['sign-batch'] ?? 0) - before.batch, 1 + 3, 'in jobs of at most 16 (16 + 16 + 8)');
  const lone = await signer.sign(message);
  tt.ok(verify('sha256', message, pub.p256, lone), 'a lone signature');
  tt.equal((ops.sign ?? 0) - before.sign, 1, 'goes as a single job');
});

t.test('the custody signs through the addon for ECDSA and RSA (PKCS#1 v1.5, PSS)', async (tt) => {
  const before = pkcs11jsSignInits;
  const p256 = await custody.signer('pkcs11:object=p256');
  tt.ok(verify('sha256', message, pub.p256, await p256.sign(message)), 'P-256 (DER) verifies');
  tt.ok(verify('sha256', message, pub.p256, await p256.sign(digest256, { prehashed: true, hash: 'sha256' })), 'P-256 over a prehashed digest verifies');
  const p384 = await custody.signer('pkcs11:object=p384');
  tt.ok(verify('sha384', message, pub.p384, await p384.sign(message)), 'P-384 verifies');
  const rsa = await custody.signer('pkcs11:object=rsa');
  tt.ok(verify('sha256', message, pub.rsa, await rsa.sign(message)), 'RSA PKCS#1 v1.5 verifies');
  const pss = await rsa.sign(message, { rsaPadding: 'pss' });
  tt.ok(verify('sha256', message, { key: pub.rsa, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, pss), 'RSA-PSS verifies');
  tt.equal(pkcs11jsSignInits, before, 'no pkcs11js C_SignInit on the main thread');
});

t.test('a stale cached key handle: the custody looks the key up again', async (tt) => {
  const signer = await custody.signer('pkcs11:object=p256');
  await signer.sign(message); // the handle is cached
  // Replace the key object behind the custody's back (same label and CKA_ID, new handle).
  const { p, s, key, close } = session();
  try {
    const old = key('p256');
    p.C_CopyObject(s, old, []);
    p.C_DestroyObject(s, old);
    tt.notOk(key('p256').equals(old), 'the key object has a new handle');
  } finally {
    close();
  }
  const sigs = await Promise.all(Array.from({ length: 8 }, () => signer.sign(message)));
  tt.ok(sigs.every((sig) => verify('sha256', message, pub.p256, sig)), 'signs with the re-found key after CKR_OBJECT_HANDLE_INVALID');
});

t.test('a failed batch: its inputs are signed one by one, with the recovery', async (tt) => {
  const signer = await custody.signer('pkcs11:object=p256');
  await signer.sign(message); // the session copy of the key exists
  // Destroy the custody's session copy (session objects are shared by the sessions of a process).
  const { p, s, close } = session();
  try {
    p.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_LABEL, value: 'p256' }, { type: pkcs11js.CKA_TOKEN, value: false }]);
    const copies = p.C_FindObjects(s, 10);
    p.C_FindObjectsFinal(s);
    tt.ok(copies.length >= 1, `the signing copy found (${copies.length})`);
    for (const c of copies) p.C_DestroyObject(s, c);
  } finally {
    close();
  }
  const before = { sign: ops.sign ?? 0, batch: ops['sign-batch'] ?? 0 };
  const messages = Array.from({ length: 8 }, (_, i) => Buffer.from(`会诊记录 ${i}`));
  const sigs = await Promise.all(messages.map((m) => signer.sign(m)));
  tt.ok(sigs.every((sig, i) => verify('sha256', messages[i], pub.p256, sig)), 'all 8 verify');
  tt.equal((ops['sign-batch'] ?? 0) - before.batch, 1, 'the batch ran (and failed on the destroyed copy)');
  tt.equal((ops.sign ?? 0) - before.sign, 8, 'then each input was signed alone, the first making a new copy');
});

t.test('2,000 signatures, 32 in flight, all verify', async (tt) => {
  const signers = await Promise.all(['p256', 'p384', 'rsa'].map((l) => custody.signer(`pkcs11:object=${l}`)));
  const hashes = ['sha256', 'sha384', 'sha256'] as const;
  let next = 0;
  const bad: number[] = [];
  const before = pkcs11jsSignInits;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (next < 2000) {
        const i = next++;
        const k = i % 10 === 9 ? 2 : i % 2; // mostly ECDSA, every tenth RSA
        const msg = Buffer.from(`document ${i}`);
        const sig = await signers[k].sign(msg, k === 2 && i % 20 === 19 ? { rsaPadding: 'pss' } : undefined);
        const key = pub[['p256', 'p384', 'rsa'][k]];
        const ok = k === 2 && i % 20 === 19 ? verify('sha256', msg, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig) : verify(hashes[k], msg, key, sig);
        if (!ok) bad.push(i);
      }
    }),
  );
  tt.same(bad, [], 'every signature verifies');
  tt.equal(pkcs11jsSignInits, before, 'all through the addon');
});

t.test('nativeSign: false keeps the pkcs11js path', async (tt) => {
  // Same token and module, second custody over the same registry-less key: open by label.
  const other = await openPkcs11Custody({ ...options, nativeSign: false }, new InMemoryKeyRegistry());
  try {
    const info = await other.generate({ algorithm: 'ecdsa-p256', label: 'plain', purpose: 'sign-async test' });
    const before = pkcs11jsSignInits;
    const sig = await (await other.signer('pkcs11:object=plain')).sign(message);
    tt.ok(verify('sha256', message, createPublicKey({ key: info.publicKeyInfo, format: 'der', type: 'spki' }), sig), 'verifies');
    tt.equal(pkcs11jsSignInits, before + 1, 'through pkcs11js C_SignInit');
  } finally {
    await other.close();
  }
});
