// The part of a PKCS#11 module the custody uses, and how it is loaded. pkcs11js's PKCS11
// class satisfies this interface; a test double (test/helpers/sm2-hsm-test-double.ts) can
// stand in through Pkcs11Options.loadModule. Nothing outside firmware-bridge/pkcs11 imports
// pkcs11js (ARCHITECTURE.md §2).
import pkcs11js from 'pkcs11js';
import type { Attribute, Mechanism, Template, TemplateResult, KeyPair, ModuleInfo, TokenInfo, SessionInfo, InitializationOptions } from 'pkcs11js';

export type { Attribute, Mechanism, Template, TemplateResult, KeyPair };

/** The pkcs11js constants (CKA_*, CKM_*, CKR_*, …). */
export const ck = pkcs11js;

/** What the custody calls. Synchronous calls are cheap look-ups; key work uses the *Async forms (libuv pool). */
export interface Pkcs11Module {
  C_Initialize(options?: InitializationOptions): void;
  C_Finalize(): void;
  C_GetInfo(): ModuleInfo;
  C_GetSlotList(tokenPresent?: boolean): Buffer[];
  C_GetTokenInfo(slot: Buffer): TokenInfo;
  C_OpenSession(slot: Buffer, flags: number): Buffer;
  C_CloseSession(session: Buffer): void;
  C_GetSessionInfo(session: Buffer): SessionInfo;
  C_Login(session: Buffer, userType: number, pin?: string): void;
  C_FindObjectsInit(session: Buffer, template: Template): void;
  C_FindObjects(session: Buffer, maxObjectCount: number): Buffer[];
  C_FindObjectsFinal(session: Buffer): void;
  C_GetAttributeValue(session: Buffer, object: Buffer, template: Template): TemplateResult;
  C_CreateObject(session: Buffer, template: Template): Buffer;
  C_DestroyObject(session: Buffer, object: Buffer): void;
  C_CopyObject(session: Buffer, object: Buffer, template: Template): Buffer;
  C_SignInit(session: Buffer, mechanism: Mechanism, key: Buffer): void;
  C_Sign(session: Buffer, inData: Buffer, outData: Buffer): Buffer;
  C_SignAsync(session: Buffer, inData: Buffer, outData: Buffer): Promise<Buffer>;
  C_GenerateKeyAsync(session: Buffer, mechanism: Mechanism, template: Template): Promise<Buffer>;
  C_GenerateKeyPairAsync(session: Buffer, mechanism: Mechanism, publicTmpl: Template, privateTmpl: Template): Promise<KeyPair>;
  C_WrapKeyAsync(session: Buffer, mechanism: Mechanism, wrappingKey: Buffer, key: Buffer, wrappedKey: Buffer): Promise<Buffer>;
  C_UnwrapKeyAsync(session: Buffer, mechanism: Mechanism, unwrappingKey: Buffer, wrappedKey: Buffer, template: Template): Promise<Buffer>;
  /** Unloads the library (dlclose). */
  close(): void;
}

/** Loads a PKCS#11 library with pkcs11js (dlopen + C_GetFunctionList). */
export function loadPkcs11Module(path: string): Pkcs11Module {
  const p = new pkcs11js.PKCS11();
  p.load(path);
  return p;
}

const CKR_NAMES = new Map<number, string>();
for (const [k, v] of Object.entries(pkcs11js)) {
  if (k.startsWith('CKR_') && typeof v === 'number' && !CKR_NAMES.has(v)) CKR_NAMES.set(v, k);
}

/** The CK_RV carried by a pkcs11js error (Pkcs11Error: name in message, value in code), if any. */
export function ckrOf(e: unknown): { code: number; name: string } | undefined {
  if (typeof e !== 'object' || e === null) return undefined;
  const { code, message } = e as { code?: unknown; message?: unknown };
  if (typeof code !== 'number' || typeof message !== 'string') return undefined;
  const m = /^(CKR_[A-Z0-9_]+)/.exec(message);
  if (!m && !CKR_NAMES.has(code)) return undefined;
  return { code, name: m ? m[1] : (CKR_NAMES.get(code) as string) };
}

/** Name of a CK_RV value ("CKR_PIN_INCORRECT"), or hex for vendor values. */
export function ckrName(code: number): string {
  return CKR_NAMES.get(code) ?? `CKR_0x${code.toString(16).toUpperCase()}`;
}

/** Builds an error shaped like pkcs11js's Pkcs11Error (for code that fakes a module or wraps a native result). */
export function pkcs11Error(code: number, method = ''): Error {
  return new pkcs11js.Pkcs11Error(`${ckrName(code)}:${code}`, code, method);
}

/** Trims the blank padding of PKCS#11 fixed-length strings. */
export function ckString(s: string): string {
  return s.replace(/[\s\0]+$/, '');
}

/** C_FindObjectsInit / C_FindObjects / C_FindObjectsFinal, leaving no search active. */
export function findObjects(p11: Pkcs11Module, session: Buffer, template: Template, max = 16): Buffer[] {
  p11.C_FindObjectsInit(session, template);
  try {
    return p11.C_FindObjects(session, max);
  } finally {
    p11.C_FindObjectsFinal(session);
  }
}

/** One attribute's value as bytes (undefined when the token reports it empty). */
export function readAttribute(p11: Pkcs11Module, session: Buffer, object: Buffer, type: number): Buffer | undefined {
  const [r] = p11.C_GetAttributeValue(session, object, [{ type }]);
  return r?.value && r.value.length > 0 ? r.value : undefined;
}

// CK_STATE (PKCS#11 v2.40 §5.5); pkcs11js does not export these.
const CKS_RO_USER_FUNCTIONS = 1;
const CKS_RW_USER_FUNCTIONS = 3;

/** Whether the session's token is logged in as the normal user. */
export function isLoggedIn(p11: Pkcs11Module, session: Buffer): boolean {
  const state = p11.C_GetSessionInfo(session).state;
  return state === CKS_RO_USER_FUNCTIONS || state === CKS_RW_USER_FUNCTIONS;
}
