// Domain errors that know their stable code and HTTP status (step-ca's ValidationError idea).
// The HTTP layer turns them into RFC 9457 problem+json; the CLI prints `code: message`.
// Codes are part of the public API: never rename one, add new ones.

export interface ErrorText {
  zh: string;
  en: string;
}

export class YiqianError extends Error {
  readonly code: string;
  readonly status: number;
  readonly text: ErrorText;
  /** Extra, client-safe facts (never secrets, never stack traces). */
  readonly detail?: Record<string, unknown>;

  constructor(code: string, status: number, text: ErrorText, detail?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(`${code}: ${text.en}`, options);
    this.name = 'YiqianError';
    this.code = code;
    this.status = status;
    this.text = text;
    this.detail = detail;
  }
}

/** Shorthand for the common case. */
export function fail(code: string, status: number, zh: string, en: string, detail?: Record<string, unknown>, cause?: unknown): never {
  throw new YiqianError(code, status, { zh, en }, detail, { cause });
}

export function isYiqianError(e: unknown): e is YiqianError {
  return e instanceof YiqianError;
}

// Codes shared across layers. Capability modules may define their own next to their code.
export const Codes = {
  BAD_REQUEST: 'BAD_REQUEST',
  INVALID_JSON: 'INVALID_JSON',
  UNSUPPORTED_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  NOT_FOUND: 'NOT_FOUND',
  METHOD_NOT_ALLOWED: 'METHOD_NOT_ALLOWED',
  HTTPS_REQUIRED: 'HTTPS_REQUIRED',
  OVERLOADED: 'OVERLOADED',
  REQUEST_TIMEOUT: 'REQUEST_TIMEOUT',
  INTERNAL: 'INTERNAL',
  // authentication
  MISSING_AUTH: 'MISSING_AUTH',
  MALFORMED_AUTH: 'MALFORMED_AUTH',
  BAD_SIGNATURE: 'BAD_SIGNATURE',
  CLOCK_SKEW: 'CLOCK_SKEW',
  REPLAYED_NONCE: 'REPLAYED_NONCE',
  UNKNOWN_APP: 'UNKNOWN_APP',
  APP_FROZEN: 'APP_FROZEN',
  // keys and HSM
  HSM_UNAVAILABLE: 'HSM_UNAVAILABLE',
  HSM_PIN_INCORRECT: 'HSM_PIN_INCORRECT',
  HSM_TOKEN_NOT_FOUND: 'HSM_TOKEN_NOT_FOUND',
  HSM_MECHANISM_UNSUPPORTED: 'HSM_MECHANISM_UNSUPPORTED',
  HSM_ERROR: 'HSM_ERROR',
  KEY_NOT_FOUND: 'KEY_NOT_FOUND',
  KEY_EXISTS: 'KEY_EXISTS',
  KEY_UNWRAP_FAILED: 'KEY_UNWRAP_FAILED',
  INVALID_KEY_URI: 'INVALID_KEY_URI',
  // crypto
  UNSUPPORTED_ALGORITHM: 'UNSUPPORTED_ALGORITHM',
  INVALID_KEY: 'INVALID_KEY',
  INVALID_SIGNATURE_ENCODING: 'INVALID_SIGNATURE_ENCODING',
  DECRYPTION_FAILED: 'DECRYPTION_FAILED',
  INTEGRITY_CHECK_FAILED: 'INTEGRITY_CHECK_FAILED',
  // store and config
  STORE_UNAVAILABLE: 'STORE_UNAVAILABLE',
  DATA_DIR_UNWRITABLE: 'DATA_DIR_UNWRITABLE',
  NOT_INITIALISED: 'NOT_INITIALISED',
  CONFIG_INVALID: 'CONFIG_INVALID',
  APP_NOT_FOUND: 'APP_NOT_FOUND',
} as const;
