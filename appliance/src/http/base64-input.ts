// Base64 in request bodies, decoded strictly (Buffer.from(s, 'base64') silently skips characters
// it does not know, so a damaged value would become other bytes). Each API says what it accepts:
// signing takes only padded standard base64 (RFC 4648 §4) as sent; verification and evidence
// also take line breaks (PEM-style wrapping) and URL-safe base64 without padding (§5).

/** RFC 4648 §4 with padding, nothing else. */
const STANDARD = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** RFC 4648 §5 without padding. */
const URL_SAFE = /^[A-Za-z0-9_-]*$/;

export interface Base64Policy {
  /** Whitespace (line breaks of wrapped base64) is dropped before decoding. */
  whitespace?: boolean;
  /** URL-safe base64 without padding is accepted too. */
  urlSafe?: boolean;
}

/** The bytes of `s`, or undefined when it is not base64 under `policy`. */
export function decodeBase64(s: string, policy: Base64Policy = {}): Buffer | undefined {
  // What clients send is almost always canonical padded base64: if the decoded bytes encode back
  // to `s` exactly, `s` is exactly such base64 (the checks below would accept it too). This costs
  // a third of the regular expression on a 4 KB CMS; anything else takes the full checks.
  const fast = Buffer.from(s, 'base64');
  if (fast.toString('base64') === s) return fast;
  const t = policy.whitespace ? s.replace(/\s+/g, '') : s;
  if (STANDARD.test(t)) return Buffer.from(t, 'base64');
  // A length of 4k+1 leaves 6 bits: no whole byte, so not a value anyone encoded.
  if (policy.urlSafe && URL_SAFE.test(t) && t.length % 4 !== 1) return Buffer.from(t, 'base64url');
  return undefined;
}
