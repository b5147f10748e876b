// The custody against a token that misbehaves: wrong configuration at start, sessions closed
// underneath, the module finalised underneath, the token disappearing and coming back.
import t, { type Test } from 'tap';
import { renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createPublicKey, verify } from 'node:crypto';
import pkcs11js from 'pkcs11js';
import type { PKCS11 } from 'pkcs11js';
import { makeTestToken } from '../helpers/softhsm.js';
import { openPkcs11Custody, type Pkcs11Custody, type Pkcs11Options } from '../../firmware-bridge/pkcs11/pkcs11-custody.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';
import { createSm2Signer, generateSm2KeyPair, sm2SpkiFromPublicKey } from '../../appliance/src/crypto/sm2.js';
import { isYiqianError, type YiqianError } from '../../appliance/src/errors.js';
import { InMemoryKeyRegistry } from '../helpers/in-memory-key-registry.js';


const token = makeTestToken();
const registry = new InMemoryKeyRegistry();
let module: PKCS11 | undefined;
const events: Array<{ op: string; ok: boolean }> = [];
const options: Pkcs11Options = {
  module: token.module,
  tokenLabel: token.label,
  pin: token.pin,
  softwareSm2: { generate: generateSm2KeyPair, signer: (d) => createSm2Signer(d), spki: sm2SpkiFromPublicKey },
  reconnectIntervalMs: 200,
  // A renamed token directory is noticed by SoftHSM2 when it reads the token object; a signing
  // copy (a session object) is in memory, so look the token object up before every signature.
  signingCopyRecheckMs: 0,
  observer: (e) => events.push(e),
  loadModule: (path) => {
    const p = new pkcs11js.PKCS11();
    p.load(path);
    module = p;
    return p;
  },
};

async function failure(p: Promise<unknown>): Promise<YiqianError> {
  try {
    await p;
  } catch (e) {
    if (isYiqianError(e)) return e;
    throw e;
  }
  throw new Error('expected a failure');
}

function expectCode(tt: Test, e: YiqianError, code: string, status: number, msg: string): void {
  tt.equal(e.code, code, `${msg}: ${code}`);
  tt.equal(e.status, status, `${msg}: HTTP ${status}`);
  tt.notMatch(e.message, /\n/, `${msg}: one-line reason`);
}

t.test('wrong configuration at start is a typed error', async (tt) => {
  const pin = await failure(openPkcs11Custody({ ...options, pin: '000000' }, registry));
  expectCode(tt, pin, 'HSM_PIN_INCORRECT', 500, 'wrong PIN');
  tt.match(pin.text.en, /CKR_PIN_INCORRECT/);
  const pinLen = await failure(openPkcs11Custody({ ...options, pin: '1' }, registry));
  tt.equal(pinLen.code, 'HSM_PIN_INCORRECT', 'a PIN of the wrong length is HSM_PIN_INCORRECT too');
  const label = await failure(openPkcs11Custody({ ...options, tokenLabel: 'no-such-token' }, registry));
  expectCode(tt, label, 'HSM_TOKEN_NOT_FOUND', 500, 'unknown token label');
  tt.match(label.text.en, /present: "yiqian"/, 'names the tokens that are there');
  const mod = await failure(openPkcs11Custody({ ...options, module: join(token.dir, 'missing-libpkcs11.so'), loadModule: undefined }, registry));
  expectCode(tt, mod, 'HSM_UNAVAILABLE', 503, 'missing module');
  tt.match(mod.text.en, /missing-libpkcs11\.so/);
  const cfg = await failure(openPkcs11Custody({ ...options, sm2Profile: { name: 'x', keyGenMechanism: -1, signMechanism: 1, keyType: 1, signInput: 'message' } }, registry));
  tt.equal(cfg.code, 'CONFIG_INVALID', 'bad vendor profile');
});

let custody: Pkcs11Custody;
let signer: Signer;
const data = Buffer.from('检验报告 #7781');

async function signsAndVerifies(tt: Test, msg: string): Promise<void> {
  const key = createPublicKey({ key: signer.publicKeyInfo, format: 'der', type: 'spki' });
  const sigs = await Promise.all(Array.from({ length: 8 }, () => signer.sign(data)));
  tt.ok(sigs.every((s) => verify('sha256', data, key, s)), msg);
}

function slotOf(p: PKCS11): Buffer {
  return p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trim() === token.label) as Buffer;
}

t.test('sessions closed underneath: new sessions, login again, the signature still works', async (tt) => {
  custody = await openPkcs11Custody(options, registry);
  const info = await custody.generate({ algorithm: 'ecdsa-p256', label: 'device-tls', purpose: 'TLS server key' });
  signer = await custody.signer(info.uri);
  await signsAndVerifies(tt, 'before');
  const p = module as PKCS11;
  p.C_CloseAllSessions(slotOf(p)); // also logs the token out
  await signsAndVerifies(tt, 'concurrent signs after C_CloseAllSessions succeed');
  p.C_CloseAllSessions(slotOf(p));
  tt.equal((await custody.health()).ok, true, 'health recovers the login');
  await signsAndVerifies(tt, 'and once more');
});

t.test('module finalised underneath: re-initialise, find the token, log in again', async (tt) => {
  const p = module as PKCS11;
  p.C_Finalize();
  await signsAndVerifies(tt, 'sign works after C_Finalize underneath');
  tt.ok(events.some((e) => e.op === 'reconnect' && e.ok), 'observer saw a successful reconnect');
});

t.test('token removed → HSM_UNAVAILABLE; restored → works again', async (tt) => {
  const tokens = join(token.dir, 'tokens');
  renameSync(tokens, `${tokens}.away`);
  try {
    const e = await failure(signer.sign(data));
    expectCode(tt, e, 'HSM_UNAVAILABLE', 503, 'sign with the token gone');
    const h = await custody.health();
    tt.equal(h.ok, false, 'health reports the token missing');
    tt.ok(h.reason, `with a reason: ${h.reason}`);
    tt.ok(events.some((ev) => ev.op === 'reconnect' && !ev.ok), 'observer saw the failed reconnect');
    const reconnects = events.filter((ev) => ev.op === 'reconnect').length;
    const fast = await failure(signer.sign(data));
    tt.equal(fast.code, 'HSM_UNAVAILABLE', 'still unavailable while the token stays away');
    tt.equal(events.filter((ev) => ev.op === 'reconnect').length, reconnects, 'failing fast within reconnectIntervalMs, no new attempt');
  } finally {
    renameSync(`${tokens}.away`, tokens);
  }
  await new Promise((r) => setTimeout(r, 250)); // reconnectIntervalMs
  await signsAndVerifies(tt, 'signing works again once the token is back');
  tt.equal((await custody.health()).ok, true, 'healthy again');
  const again = await custody.generate({ algorithm: 'ecdsa-p384', label: 'after-restore', purpose: 'x' });
  tt.ok(again.id, 'and new keys can be made');
});

t.teardown(async () => {
  await custody?.close();
  rmSync(token.dir, { recursive: true, force: true });
});
