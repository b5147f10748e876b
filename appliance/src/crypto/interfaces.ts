// The few crypto interfaces the rest of the appliance sees (ARCHITECTURE.md §3).
// Modelled on step-ca's kms/apiv1: a small KeyCustody, a Signer, backends chosen by key URI.

/** Key algorithms the appliance can hold. */
export type KeyAlgorithm =
  | 'sm2'
  | 'ecdsa-p256'
  | 'ecdsa-p384'
  | 'rsa-2048'
  | 'rsa-3072'
  | 'rsa-4096';

export type HashAlgorithm = 'sm3' | 'sha256' | 'sha384' | 'sha512';

export interface SignOptions {
  /** Hash for ECDSA/RSA. Defaults: P-256 → sha256, P-384 → sha384, RSA → sha256. SM2 always SM3. */
  hash?: HashAlgorithm;
  /** RSA padding; default PKCS#1 v1.5. PSS uses MGF1 with the same hash and salt = hash length. */
  rsaPadding?: 'pkcs1' | 'pss';
  /** SM2 distinguishing ID; default "1234567812345678" (GB/T 35276 §5.4 / GM/T 0009). */
  sm2Id?: Buffer;
  /**
   * `data` is already the digest to sign: for ECDSA/RSA the hash of the message;
   * for SM2 the value e = SM3(Z_A ‖ M) (GB/T 38629 "sign a digest").
   */
  prehashed?: boolean;
}

/** Something that can sign; the private key stays wherever its custody keeps it. */
export interface Signer {
  readonly algorithm: KeyAlgorithm;
  /** SubjectPublicKeyInfo, DER. */
  readonly publicKeyInfo: Buffer;
  /** Signature: DER SEQUENCE{r,s} for SM2/ECDSA, raw modulus-size bytes for RSA. */
  sign(data: Buffer, opts?: SignOptions): Promise<Buffer>;
}

export type CustodyMode = 'hsm' | 'wrapped';

export interface KeySpec {
  algorithm: KeyAlgorithm;
  /** Token object label (CKA_LABEL), unique per token, e.g. "device-tls". */
  label: string;
  /** What the key is for, for the 密评 inventory, e.g. "TLS server key of the appliance". */
  purpose: string;
  /** Default: 'hsm' where the token has the mechanism, else 'wrapped' (SM2 on SoftHSM2). */
  mode?: CustodyMode;
  /**
   * What the private key may do; default 'sign'. 'decrypt': RSA decryption (CKA_DECRYPT),
   * ECDH derivation (CKA_DERIVE) or SM2 decryption — envelopes (issue 4 item 5).
   */
  usage?: 'sign' | 'decrypt';
}

/** One key of the inventory. */
export interface KeyInfo {
  /** Stable id (ULID). */
  id: string;
  /** RFC 7512 URI, e.g. pkcs11:token=yiqian;object=device-tls;type=private */
  uri: string;
  label: string;
  algorithm: KeyAlgorithm;
  mode: CustodyMode;
  /** Token label of the HSM that holds the key (or the KEK for a wrapped key). */
  token: string;
  /** For wrapped keys: URI of the key-encryption key in the HSM. */
  kekUri?: string;
  /** Which mechanism does the private-key operation, e.g. "CKM_ECDSA", "CKM_VENDOR_SM2 (0x80000A01)", "in-process SM2 (addon)". */
  mechanism: string;
  /** ISO 8601 UTC with milliseconds. */
  createdAt: string;
  purpose: string;
  /** SubjectPublicKeyInfo, DER. */
  publicKeyInfo: Buffer;
}

/** Key custody over an HSM (firmware-bridge/pkcs11 implements it). */
export interface KeyCustody {
  generate(spec: KeySpec): Promise<KeyInfo>;
  /** ref: the key's RFC 7512 URI or its inventory id. */
  signer(ref: string): Promise<Signer>;
  publicKey(ref: string): Promise<Buffer>;
  list(): Promise<KeyInfo[]>;
  destroy(ref: string): Promise<void>;
  /** Cheap liveness probe for /readyz: token present and logged in. */
  health(): Promise<CustodyHealth>;
  close(): Promise<void>;
}

export interface CustodyHealth {
  ok: boolean;
  token: string;
  /** Library and token description for the inventory and inspection report. */
  module?: string;
  reason?: string;
}

/**
 * Optional capability of a KeyCustody (step-ca style: a small interface of its own): wraps
 * short secrets — data-encryption keys, e.g. the PII data key of the staff directory — under
 * the custody's non-extractable AES-256 key-encryption key, so they are stored only as
 * ciphertext and usable only with the HSM. `plain` must be 16–1024 bytes and a multiple of 8
 * (SoftHSM2's padded AES key wrap is wrong for other lengths). The wrapped form names the KEK
 * and mechanism it was made with, so it unwraps after a configuration change.
 */
export interface SecretWrapper {
  wrapSecret(plain: Buffer): Promise<Buffer>;
  /** KEY_UNWRAP_FAILED for anything that is not a secret wrapped by this token's KEK. */
  unwrapSecret(wrapped: Buffer): Promise<Buffer>;
}

/**
 * Optional capability of a KeyCustody (step-ca's Decrypter): private-key operations of
 * keys generated with usage 'decrypt', for opening digital envelopes. The key never leaves
 * the custody (a wrapped SM2 key is unwrapped in memory only for the operation).
 */
export interface Decrypter {
  /** RSA-OAEP (MGF1 with the same hash, no label) or PKCS#1 v1.5; SM2 decryption of a DER (GM/T 0009) ciphertext. DECRYPTION_FAILED on a bad ciphertext. */
  decrypt(ref: string, alg: { kind: 'rsa-oaep'; hash: 'sha1' | 'sha256' } | { kind: 'rsa-pkcs1' } | { kind: 'sm2' }, ciphertext: Buffer): Promise<Buffer>;
  /** ECDH (P-256/P-384): the shared secret Z (x-coordinate) with the peer's uncompressed point (RFC 5753 §3.1 input to the KDF). */
  deriveEcdh(ref: string, peerPublicPoint: Buffer): Promise<Buffer>;
}

export function isDecrypter(x: unknown): x is Decrypter {
  const c = x as Partial<Decrypter> | null;
  return typeof c === 'object' && c !== null && typeof c.decrypt === 'function' && typeof c.deriveEcdh === 'function';
}

export function isSecretWrapper(x: unknown): x is SecretWrapper {
  const c = x as Partial<SecretWrapper> | null;
  return typeof c === 'object' && c !== null && typeof c.wrapSecret === 'function' && typeof c.unwrapSecret === 'function';
}

/** Record of a key kept outside the token (metadata for all keys; ciphertext for wrapped ones). */
export interface KeyRecord {
  id: string;
  uri: string;
  label: string;
  algorithm: KeyAlgorithm;
  mode: CustodyMode;
  token: string;
  kekUri?: string;
  mechanism: string;
  createdAt: string;
  purpose: string;
  /** base64 DER SPKI */
  publicKeyInfo: string;
  /** wrapped mode only: base64 of C_WrapKey output over the raw 32-byte scalar */
  wrappedKey?: string;
}

/** Where KeyCustody keeps its records; store/ implements it on LMDB. Writes are durable when resolved. */
export interface KeyRegistry {
  put(record: KeyRecord): Promise<void>;
  get(id: string): Promise<KeyRecord | undefined>;
  getByLabel(label: string): Promise<KeyRecord | undefined>;
  list(): Promise<KeyRecord[]>;
  delete(id: string): Promise<void>;
}
