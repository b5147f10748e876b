// SM2 in hsm mode through a vendor profile. SoftHSM2 has no SM2, so the vendor's mechanisms
// come from TestDoubleSm2Pkcs11 (test/helpers/sm2-hsm-test-double.ts): SoftHSM2 underneath,
// a made-up vendor's SM2 keygen/sign (0x80000A01/0x80000A02) in software on top.
import t, { type Test } from 'tap';
import { rmSync } from 'node:fs';
import { makeTestToken } from '../helpers/softhsm.js';
import { TestDoubleSm2Pkcs11, TEST_DOUBLE_MECHANISMS, testDoubleProfile } from '../helpers/sm2-hsm-test-double.js';
import { openPkcs11Custody, type Pkcs11Options, type SoftwareSm2 } from '../../firmware-bridge/pkcs11/pkcs11-custody.js';
import { createSm2Signer, sm2Digest, sm2SpkiFromPublicKey, sm2Verify, sm2PublicKeyFromSpki } from '../../appliance/src/crypto/sm2.js';
import { isYiqianError } from '../../appliance/src/errors.js';
import { InMemoryKeyRegistry } from '../helpers/in-memory-key-registry.js';


const token = makeTestToken();
t.teardown(() => rmSync(token.dir, { recursive: true, force: true }));
const softwareSm2: SoftwareSm2 = {
  generate: () => {
    throw new Error('hsm-mode SM2 must not generate keys in process');
  },
  signer: (d) => createSm2Signer(d),
  spki: sm2SpkiFromPublicKey,
  digest: sm2Digest,
};

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return isYiqianError(e) ? e.code : String(e);
  }
}

for (const signInput of ['message', 'digest-e'] as const) {
  t.test(`vendor profile, signInput '${signInput}': keygen → sign → sm2Verify (default ID)`, async (tt: Test) => {
    const double = new TestDoubleSm2Pkcs11(token.module, signInput);
    const registry = new InMemoryKeyRegistry();
    const opts: Pkcs11Options = { module: token.module, tokenLabel: token.label, pin: token.pin, softwareSm2, sm2Profile: testDoubleProfile(signInput), loadModule: () => double };
    const custody = await openPkcs11Custody(opts, registry);
    tt.teardown(() => custody.close());

    const label = `sm2-hsm-${signInput}`;
    const info = await custody.generate({ algorithm: 'sm2', label, purpose: 'SM2 key inside the vendor HSM' });
    tt.equal(info.mode, 'hsm', 'a profile makes SM2 an hsm-mode key');
    tt.equal(info.kekUri, undefined);
    tt.match(info.mechanism, /^test-double SM2 .*0x80000A02/, 'inventory names the profile and its sign mechanism');
    tt.notOk((await registry.get(info.id))?.wrappedKey, 'no wrapped key in the record');
    const pub = sm2PublicKeyFromSpki(info.publicKeyInfo);

    const signer = await custody.signer(info.uri);
    const msg = Buffer.from(`电子病历签名 (${signInput})`);
    const sig = await signer.sign(msg);
    tt.equal(sig[0], 0x30, 'DER signature');
    tt.ok(await sm2Verify(info.publicKeyInfo, msg, sig), 'sm2Verify with the default ID accepts it');
    tt.notOk(await sm2Verify(info.publicKeyInfo, Buffer.from('other'), sig), 'and rejects other data');
    const handed = double.signInputs.at(-1) as Buffer;
    if (signInput === 'message') tt.ok(handed.equals(msg), 'C_Sign got the message');
    else tt.ok(handed.equals(sm2Digest(pub, msg)), 'C_Sign got e = SM3(Z_A ‖ M) computed on the host');

    if (signInput === 'digest-e') {
      const id = Buffer.from('doctor-0042@hospital');
      const sigId = await signer.sign(msg, { sm2Id: id });
      tt.ok(await sm2Verify(info.publicKeyInfo, msg, sigId, { id }), 'a non-default ID goes into Z_A');
      tt.notOk(await sm2Verify(info.publicKeyInfo, msg, sigId), 'and is not the default ID');
      const e = sm2Digest(pub, msg);
      tt.ok(await sm2Verify(info.publicKeyInfo, msg, await signer.sign(e, { prehashed: true })), 'prehashed e');
    } else {
      tt.equal(await code(signer.sign(msg, { sm2Id: Buffer.from('x') })), 'HSM_MECHANISM_UNSUPPORTED', 'message mode: non-default ID refused');
      tt.equal(await code(signer.sign(sm2Digest(pub, msg), { prehashed: true })), 'HSM_MECHANISM_UNSUPPORTED', 'message mode: prehashed refused');
    }
    tt.equal(await code(signer.sign(msg, { hash: 'sha256' })), 'UNSUPPORTED_ALGORITHM', 'SM2 with SHA-256 refused');

    tt.same(await custody.checkInventory(), [], 'the vendor key is found on the "token"');
    tt.equal(await code(custody.generate({ algorithm: 'sm2', label, purpose: 'x' })), 'KEY_EXISTS');
    // Wrapped SM2 is still available on request.
    const wrapped = await code(custody.generate({ algorithm: 'sm2', label: 'sm2-wrapped', purpose: 'x', mode: 'wrapped' }));
    tt.match(wrapped, /must not generate keys in process/, 'mode: wrapped asks the software side (which this test forbids)');
    await custody.destroy(info.id);
    tt.equal(await code(custody.signer(info.uri)), 'KEY_NOT_FOUND', 'destroyed');
  });
}

t.test('the custody uses the profile numbers, not fixed ones', async (tt) => {
  const double = new TestDoubleSm2Pkcs11(token.module, 'message');
  const profile = { ...testDoubleProfile('message'), keyGenMechanism: TEST_DOUBLE_MECHANISMS.keyGen + 0x100 };
  const custody = await openPkcs11Custody({ module: token.module, tokenLabel: token.label, pin: token.pin, softwareSm2, sm2Profile: profile, loadModule: () => double }, new InMemoryKeyRegistry());
  tt.teardown(() => custody.close());
  tt.equal(await code(custody.generate({ algorithm: 'sm2', label: 'wrong-numbers', purpose: 'x' })), 'HSM_MECHANISM_UNSUPPORTED', 'a mechanism SoftHSM2 does not know is refused by the token');
  const noDigest = await code(openPkcs11Custody({ module: token.module, tokenLabel: token.label, pin: token.pin, softwareSm2: { ...softwareSm2, digest: undefined }, sm2Profile: testDoubleProfile('digest-e'), loadModule: () => new TestDoubleSm2Pkcs11(token.module, 'digest-e') }, new InMemoryKeyRegistry()));
  tt.equal(noDigest, 'CONFIG_INVALID', "'digest-e' needs softwareSm2.digest");
});
