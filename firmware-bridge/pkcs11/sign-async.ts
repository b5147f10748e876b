// C_SignInit + C_Sign as one job on the libuv thread pool (native/sign-async.c), on the sessions
// and key handles pkcs11js opened. pkcs11js has no async C_SignInit, and SoftHSM2's C_SignInit
// (it decrypts and loads the key object) costs more than its C_Sign: run on Node's main thread it
// capped HSM signing at one core.
//
// The addon dlopen()s the module path pkcs11js loaded: one library instance in the process, so
// handles are shared; it never initialises or finalises the module (pkcs11js does). Errors are
// rethrown in pkcs11js's Pkcs11Error shape (pkcs11-module.ts pkcs11Error), so isCkr / recoveryFor
// treat them like pkcs11js's own.
//
// When the addon is not built, loadNativeSign returns undefined (logged once) and the custody
// keeps signing through pkcs11js.
import { createRequire } from 'node:module';
import { log } from '../../appliance/src/log.js';
import { findNativeAddon } from '../../appliance/src/native-addon.js';
import { pkcs11Error } from './pkcs11-module.js';

/** CK_RSA_PKCS_PSS_PARAMS (PKCS#11 v2.40 §2.1.15). */
export interface PssParams {
  hashAlg: number;
  mgf: number;
  sLen: number;
}

export interface NativeSign {
  /** The module path the addon loaded. */
  readonly module: string;
  /**
   * C_SignInit(session, {mechanismType, param}, keyHandle) then C_Sign(data) with an outLen-byte
   * buffer (grown once on CKR_BUFFER_TOO_SMALL), off the main thread. Rejects with a Pkcs11Error
   * whose method is "C_SignInit" or "C_Sign".
   */
  sign(session: Buffer, mechanismType: number, param: PssParams | null, keyHandle: Buffer, data: Buffer, outLen: number): Promise<Buffer>;
  /**
   * The same for 1..256 inputs in ONE job: each signed in turn on the session. Stops at the first
   * failure and rejects with its Pkcs11Error (whose `signed` says how many went before it).
   */
  signMany(session: Buffer, mechanismType: number, param: PssParams | null, keyHandle: Buffer, data: Buffer[], outLen: number): Promise<Buffer[]>;
}

interface SignAddon {
  signMany(module: number, session: Buffer, mechanismType: number, param: PssParams | null, keyHandle: Buffer, data: Buffer[], outLen: number): Promise<Buffer[]>;
  load(modulePath: string): number;
  sign(module: number, session: Buffer, mechanismType: number, param: PssParams | null, keyHandle: Buffer, data: Buffer, outLen: number): Promise<Buffer>;
}

const ADDON = 'yiqian_pkcs11_sign.node';
const slog = log.child({ component: 'pkcs11-sign-async' });
let addon: SignAddon | null | undefined;

function loadAddon(): SignAddon | null {
  if (addon !== undefined) return addon;
  const path = findNativeAddon(ADDON, import.meta.url);
  addon = null;
  if (!path) {
    slog.warn(`native addon ${ADDON} not built (npx node-gyp rebuild); HSM signing stays on pkcs11js (C_SignInit on the main thread)`);
    return addon;
  }
  try {
    addon = createRequire(import.meta.url)(path) as SignAddon;
  } catch (e) {
    slog.warn({ err: e instanceof Error ? e.message : String(e), path }, `cannot load ${ADDON}; HSM signing stays on pkcs11js (C_SignInit on the main thread)`);
  }
  return addon;
}

/** Pkcs11Error (code = CK_RV) from the addon's rejection; anything else passes through. */
function asPkcs11Error(e: unknown): unknown {
  if (e instanceof Error && typeof (e as { code?: unknown }).code === 'number') {
    const { code, method, signed } = e as Error & { code: number; method?: unknown; signed?: unknown };
    const err = pkcs11Error(code, typeof method === 'string' ? method : 'C_Sign');
    if (typeof signed === 'number') Object.assign(err, { signed });
    return err;
  }
  return e;
}

/**
 * The signing job for a PKCS#11 library, or undefined when the addon is missing or cannot load
 * the library (both logged once per cause; callers fall back to pkcs11js).
 */
export function loadNativeSign(modulePath: string): NativeSign | undefined {
  const a = loadAddon();
  if (!a) return undefined;
  let index: number;
  try {
    index = a.load(modulePath);
  } catch (e) {
    slog.warn({ err: e instanceof Error ? e.message : String(e), module: modulePath }, 'the signing addon cannot load the PKCS#11 module; HSM signing stays on pkcs11js');
    return undefined;
  }
  return {
    module: modulePath,
    sign: (session, mechanismType, param, keyHandle, data, outLen) => a.sign(index, session, mechanismType, param, keyHandle, data, outLen).catch((e: unknown) => Promise.reject(asPkcs11Error(e))),
    signMany: (session, mechanismType, param, keyHandle, data, outLen) => a.signMany(index, session, mechanismType, param, keyHandle, data, outLen).catch((e: unknown) => Promise.reject(asPkcs11Error(e))),
  };
}
