// Signing keys the appliance holds for apps (docs/signing-keys.md), mounted under /api/v1 behind
// app authentication. Read-only: creating, granting, access codes and disabling are admin acts
// on the box (`yiqian signing-key …`), not an app's. An app sees only the keys granted to it.
//
//   GET /signing-keys                    keys granted to the calling app      {items: [...]}
//   GET /signing-keys/:ref               one key (id or label)                 403 KEY_NOT_GRANTED
//   GET /signing-keys/:ref/certificate   its certificate and chain, PEM        application/pem-certificate-chain
import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import { toPem } from '../crypto/der.js';
import { Codes, YiqianError } from '../errors.js';
import type { HeldKeyView } from '../signing/types.js';
import { callingApp } from './app-auth.js';
import type { HttpState } from './state.js';

type Ctx = ParameterizedContext<HttpState>;

/** What the routes need of signing/held-keys.ts (views may carry `disabled`). */
export interface HeldKeyRouteDeps {
  heldKeys: {
    list(appId?: string): Promise<(HeldKeyView & { disabled?: boolean })[]>;
    get(ref: string): Promise<HeldKeyView & { disabled?: boolean }>;
    /** DER of the key's certificate and its chain (issuing CA up to, not including, the root). */
    certificateChain(ref: string): Promise<{ certificate: Buffer; chain: Buffer[] }>;
  };
}

/** RFC 8555 §9.1: PEM certificate chain, leaf first. */
export const PEM_CHAIN_TYPE = 'application/pem-certificate-chain';

const appIdOf = (ctx: Ctx): string => callingApp(ctx).id;

/** The app's view: no disabled flag (a disabled key is simply not there for apps). */
function appView(k: HeldKeyView & { disabled?: boolean; disabledAt?: string }): HeldKeyView {
  const { disabled: _d, disabledAt: _a, ...rest } = k as HeldKeyView & { disabled?: boolean; disabledAt?: string };
  return rest;
}

function notGranted(label: string): YiqianError {
  return new YiqianError('KEY_NOT_GRANTED', 403, { zh: `应用无权使用托管密钥 ${label}`, en: `the app is not granted held key ${label}` }, { key: label });
}

export function heldKeyRouter(deps: HeldKeyRouteDeps): Router<HttpState> {
  const r = new Router<HttpState>({ sensitive: true });

  /** The key if it is usable by the calling app: 404 when absent or disabled, 403 when not granted. */
  async function granted(ctx: Ctx): Promise<HeldKeyView> {
    const appId = appIdOf(ctx);
    const ref = ctx.params.ref;
    const key = await deps.heldKeys.get(ref);
    if (key.disabled) throw new YiqianError(Codes.KEY_NOT_FOUND, 404, { zh: `没有托管密钥 ${ref.slice(0, 64)}`, en: `no held key ${ref.slice(0, 64)}` }, { key: ref.slice(0, 64) });
    if (!key.grants.includes(appId)) throw notGranted(key.label);
    return key;
  }

  r.get('/signing-keys', async (ctx) => {
    ctx.body = { items: (await deps.heldKeys.list(appIdOf(ctx))).map(appView) };
  });

  r.get('/signing-keys/:ref', async (ctx) => {
    ctx.body = appView(await granted(ctx));
  });

  r.get('/signing-keys/:ref/certificate', async (ctx) => {
    const key = await granted(ctx);
    const { certificate, chain } = await deps.heldKeys.certificateChain(key.id);
    ctx.type = PEM_CHAIN_TYPE;
    ctx.body = [certificate, ...chain].map((der) => toPem('CERTIFICATE', der)).join('');
  });

  return r;
}
