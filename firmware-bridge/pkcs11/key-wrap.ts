// Wrapped custody (ARCHITECTURE.md §3): a key the token cannot hold as a key (SM2 on SoftHSM2)
// is kept only as ciphertext under a non-extractable AES-256 key-encryption key (KEK) that
// never leaves the token.
//
// The raw 32-byte scalar is wrapped, not a PKCS#8 blob: SoftHSM2's CKM_AES_KEY_WRAP_PAD
// (RFC 5649) round-trips only lengths that are multiples of 8, and 32 is one. The scalar goes
// into the token as a session-only CKK_GENERIC_SECRET object, C_WrapKey encrypts it, the object
// is destroyed; unwrapping is the reverse (C_UnwrapKey to a session object, read CKA_VALUE,
// destroy it).
import { randomBytes } from 'node:crypto';
import { ck, findObjects, readAttribute, type Pkcs11Module, type Template } from './pkcs11-module.js';

export type WrapMechanismName = 'CKM_AES_KEY_WRAP_PAD' | 'CKM_AES_KEY_WRAP';

export const WRAP_MECHANISMS: Record<WrapMechanismName, number> = {
  CKM_AES_KEY_WRAP_PAD: ck.CKM_AES_KEY_WRAP_PAD, // 0x210A, RFC 5649
  CKM_AES_KEY_WRAP: ck.CKM_AES_KEY_WRAP, // 0x2109, RFC 3394 (input a multiple of 8 bytes)
};

/** The KEK's handle, or undefined when the token has no secret key with that label. */
export function findKek(p11: Pkcs11Module, session: Buffer, label: string): Buffer | undefined {
  const found = findObjects(p11, session, [
    { type: ck.CKA_CLASS, value: ck.CKO_SECRET_KEY },
    { type: ck.CKA_KEY_TYPE, value: ck.CKK_AES },
    { type: ck.CKA_LABEL, value: label },
  ], 2);
  return found[0];
}

/** Makes the KEK: AES-256 token object, sensitive, never extractable, wrap/unwrap only. */
export async function createKek(p11: Pkcs11Module, session: Buffer, label: string): Promise<Buffer> {
  const template: Template = [
    { type: ck.CKA_CLASS, value: ck.CKO_SECRET_KEY },
    { type: ck.CKA_KEY_TYPE, value: ck.CKK_AES },
    { type: ck.CKA_VALUE_LEN, value: 32 },
    { type: ck.CKA_TOKEN, value: true },
    { type: ck.CKA_PRIVATE, value: true },
    { type: ck.CKA_SENSITIVE, value: true },
    { type: ck.CKA_EXTRACTABLE, value: false },
    { type: ck.CKA_MODIFIABLE, value: false },
    { type: ck.CKA_WRAP, value: true },
    { type: ck.CKA_UNWRAP, value: true },
    { type: ck.CKA_ENCRYPT, value: false },
    { type: ck.CKA_DECRYPT, value: false },
    { type: ck.CKA_LABEL, value: label },
    { type: ck.CKA_ID, value: randomBytes(16) },
  ];
  return p11.C_GenerateKeyAsync(session, { mechanism: ck.CKM_AES_KEY_GEN }, template);
}

/** Wraps the raw scalar under the KEK. The caller zero-fills `scalar` afterwards. */
export async function wrapScalar(p11: Pkcs11Module, session: Buffer, kek: Buffer, mechanism: number, scalar: Buffer): Promise<Buffer> {
  const tmp = p11.C_CreateObject(session, [
    { type: ck.CKA_CLASS, value: ck.CKO_SECRET_KEY },
    { type: ck.CKA_KEY_TYPE, value: ck.CKK_GENERIC_SECRET },
    { type: ck.CKA_TOKEN, value: false },
    { type: ck.CKA_PRIVATE, value: true },
    { type: ck.CKA_SENSITIVE, value: true },
    { type: ck.CKA_EXTRACTABLE, value: true },
    { type: ck.CKA_VALUE, value: scalar },
  ]);
  try {
    const out = Buffer.alloc(scalar.length + 16);
    const wrapped = await p11.C_WrapKeyAsync(session, { mechanism }, kek, tmp, out);
    return Buffer.from(wrapped);
  } finally {
    p11.C_DestroyObject(session, tmp);
  }
}

/** Unwraps to a session object, reads the value, destroys the object. The caller zero-fills the result. */
export async function unwrapScalar(p11: Pkcs11Module, session: Buffer, kek: Buffer, mechanism: number, wrapped: Buffer): Promise<Buffer> {
  const tmp = await p11.C_UnwrapKeyAsync(session, { mechanism }, kek, wrapped, [
    { type: ck.CKA_CLASS, value: ck.CKO_SECRET_KEY },
    { type: ck.CKA_KEY_TYPE, value: ck.CKK_GENERIC_SECRET },
    { type: ck.CKA_TOKEN, value: false },
    { type: ck.CKA_PRIVATE, value: true },
    { type: ck.CKA_SENSITIVE, value: false },
    { type: ck.CKA_EXTRACTABLE, value: true },
  ]);
  try {
    const value = readAttribute(p11, session, tmp, ck.CKA_VALUE);
    return value ?? Buffer.alloc(0);
  } finally {
    p11.C_DestroyObject(session, tmp);
  }
}
