// Node's TLS with a private key that stays in the HSM: registers the OpenSSL ENGINE
// "yiqian-pkcs11" (native/hsm-tls-engine.c) inside Node's own OpenSSL, for
//   https.createServer({ cert, privateKeyEngine, privateKeyIdentifier: privateKeyIdentifier('device-tls') })
// The key must be an ECDSA P-256 or P-384 key in hsm custody (a token object with a public key
// object of the same label and CKA_ID, as openPkcs11Custody makes them).
//
// The engine shares the PKCS#11 library with pkcs11js in this process. If the custody has to
// re-initialise the module (device error), every session handle becomes void: wire the custody's
// Pkcs11Options.onReinitialize to invalidateSessions(). Without it the engine still recovers on
// the next handshake (it re-opens on session errors), but could for a moment use a handle number
// that the module has given to a new session.
import { createRequire } from 'node:module';
import { YiqianError, Codes } from '../../appliance/src/errors.js';
import { findNativeAddon } from '../../appliance/src/native-addon.js';
import { formatPkcs11Uri } from './pkcs11-uri.js';
import { pkcs11Error } from './pkcs11-module.js';
import { toYiqianError } from './pkcs11-errors.js';

export interface HsmTlsEngineStats {
  /** Signatures the engine made in the token (one per full TLS handshake). */
  signs: number;
  signFailures: number;
  /** Times the engine replaced its session (session, login or device lost). */
  reopens: number;
  /** Last failing CK_RV (0 if none). */
  lastError: number;
}

export interface HsmTlsEngine {
  /** For createSecureContext / https.createServer: the ENGINE id. */
  privateKeyEngine: string;
  /** For createSecureContext: the key's RFC 7512 URI on the engine's token. */
  privateKeyIdentifier: (label: string) => string;
  /** Forget the engine's session (the module was re-initialised underneath). */
  invalidateSessions: () => void;
  stats: () => HsmTlsEngineStats;
}

interface HsmTlsAddon {
  register(modulePath: string, tokenLabel: string, pin: string): string;
  invalidateSessions(): void;
  stats(): HsmTlsEngineStats;
}

const ADDON = 'yiqian_hsm_tls.node';
let addon: HsmTlsAddon | undefined;

function loadAddon(): HsmTlsAddon {
  if (addon) return addon;
  const path = findNativeAddon(ADDON, import.meta.url);
  if (!path) {
    throw new YiqianError(
      Codes.INTERNAL,
      500,
      { zh: `未找到 TLS 引擎原生模块 ${ADDON}（请运行 npx node-gyp rebuild）`, en: `native addon ${ADDON} not built (run npx node-gyp rebuild)` },
    );
  }
  addon = createRequire(import.meta.url)(path) as HsmTlsAddon;
  return addon;
}

/**
 * Loads the module in the engine, logs in to the token, and registers the ENGINE. Idempotent for
 * the same module; throws HSM_UNAVAILABLE / HSM_PIN_INCORRECT / HSM_TOKEN_NOT_FOUND-like errors
 * as the custody does.
 */
export function registerHsmTlsEngine(opts: { module: string; tokenLabel: string; pin: string }): HsmTlsEngine {
  const a = loadAddon();
  let engineId: string;
  try {
    engineId = a.register(opts.module, opts.tokenLabel, opts.pin);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const rv = /CK_RV 0x([0-9a-f]+)/i.exec(msg);
    if (rv) {
      const code = parseInt(rv[1], 16);
      if (code === 0xe0) {
        // CKR_TOKEN_NOT_PRESENT from the engine's slot search: no token with that label.
        throw new YiqianError(Codes.HSM_TOKEN_NOT_FOUND, 500, { zh: `TLS 引擎找不到标签为 "${opts.tokenLabel}" 的令牌`, en: `TLS engine: no token labelled "${opts.tokenLabel}"` }, { token: opts.tokenLabel });
      }
      throw toYiqianError(pkcs11Error(code, 'hsm-tls-engine'), { token: opts.tokenLabel, op: 'TLS engine registration' });
    }
    throw new YiqianError(Codes.HSM_UNAVAILABLE, 503, { zh: `TLS 引擎无法使用密码设备：${msg}`, en: `TLS engine cannot use the HSM: ${msg}` }, { token: opts.tokenLabel }, { cause: e });
  }
  return {
    privateKeyEngine: engineId,
    privateKeyIdentifier: (label: string) => formatPkcs11Uri({ token: opts.tokenLabel, object: label, type: 'private' }),
    invalidateSessions: () => a.invalidateSessions(),
    stats: () => a.stats(),
  };
}
