// OID registry of the algorithm suite. Chinese OIDs from GB/T 33560-2017 Annex A and
// GM/T 0010-2012 (STANDARDS.md §1, §2); the rest from RFC 5480, RFC 5758, RFC 8017, RFC 5652,
// NIST CSOR. Never emit BouncyCastle's 1.2.156.10197.1.502–504 as SM2 variants (they
// contradict GB/T 33560); they are deliberately absent.

export interface OidEntry {
  readonly name: OidName;
  readonly oid: string;
  readonly description: string;
}

const DEFS = {
  // GB/T 33560-2017 Annex A
  sm2: { oid: '1.2.156.10197.1.301', description: 'SM2 elliptic-curve algorithm; also the named curve sm2p256v1' },
  sm2Sign: { oid: '1.2.156.10197.1.301.1', description: 'SM2-1 digital signature' },
  sm2KeyExchange: { oid: '1.2.156.10197.1.301.2', description: 'SM2-2 key exchange' },
  sm2Encrypt: { oid: '1.2.156.10197.1.301.3', description: 'SM2-3 public-key encryption' },
  sm3: { oid: '1.2.156.10197.1.401', description: 'SM3 hash' },
  sm3NoKey: { oid: '1.2.156.10197.1.401.1', description: 'SM3 without key' },
  hmacSm3: { oid: '1.2.156.10197.1.401.2', description: 'SM3 with key (HMAC-SM3)' },
  sm2WithSm3: { oid: '1.2.156.10197.1.501', description: 'SM2 signature with SM3 (sm2sign-with-sm3)' },
  sm4: { oid: '1.2.156.10197.1.104', description: 'SM4 block cipher' },
  sm4Ecb: { oid: '1.2.156.10197.1.104.1', description: 'SM4-ECB' },
  sm4Cbc: { oid: '1.2.156.10197.1.104.2', description: 'SM4-CBC' },
  sm4Ofb: { oid: '1.2.156.10197.1.104.3', description: 'SM4-OFB' },
  sm4Cfb: { oid: '1.2.156.10197.1.104.4', description: 'SM4-CFB' },
  sm4Ctr: { oid: '1.2.156.10197.1.104.7', description: 'SM4-CTR' },
  sm4Gcm: { oid: '1.2.156.10197.1.104.8', description: 'SM4-GCM (BouncyCastle arc, not in GB/T 33560)' },
  sm4Ccm: { oid: '1.2.156.10197.1.104.9', description: 'SM4-CCM (BouncyCastle arc, not in GB/T 33560)' },
  // GM/T 0010-2012 §6 (GB/T 35275) content types
  gmtData: { oid: '1.2.156.10197.6.1.4.2.1', description: 'GM/T 0010 data' },
  gmtSignedData: { oid: '1.2.156.10197.6.1.4.2.2', description: 'GM/T 0010 signedData' },
  gmtEnvelopedData: { oid: '1.2.156.10197.6.1.4.2.3', description: 'GM/T 0010 envelopedData' },
  gmtSignedAndEnvelopedData: { oid: '1.2.156.10197.6.1.4.2.4', description: 'GM/T 0010 signedAndEnvelopedData' },
  gmtEncryptedData: { oid: '1.2.156.10197.6.1.4.2.5', description: 'GM/T 0010 encryptedData' },
  gmtKeyAgreementInfo: { oid: '1.2.156.10197.6.1.4.2.6', description: 'GM/T 0010 keyAgreementInfo' },
  // RFC 5652 content types
  pkcs7Data: { oid: '1.2.840.113549.1.7.1', description: 'id-data' },
  pkcs7SignedData: { oid: '1.2.840.113549.1.7.2', description: 'id-signedData' },
  pkcs7EnvelopedData: { oid: '1.2.840.113549.1.7.3', description: 'id-envelopedData' },
  // RFC 5480 elliptic curves
  idEcPublicKey: { oid: '1.2.840.10045.2.1', description: 'id-ecPublicKey' },
  secp256r1: { oid: '1.2.840.10045.3.1.7', description: 'NIST P-256 (prime256v1)' },
  secp384r1: { oid: '1.3.132.0.34', description: 'NIST P-384' },
  secp521r1: { oid: '1.3.132.0.35', description: 'NIST P-521' },
  // RFC 5758 §3.2
  ecdsaWithSha256: { oid: '1.2.840.10045.4.3.2', description: 'ecdsa-with-SHA256' },
  ecdsaWithSha384: { oid: '1.2.840.10045.4.3.3', description: 'ecdsa-with-SHA384' },
  ecdsaWithSha512: { oid: '1.2.840.10045.4.3.4', description: 'ecdsa-with-SHA512' },
  // RFC 8017 Appendix C
  rsaEncryption: { oid: '1.2.840.113549.1.1.1', description: 'rsaEncryption' },
  mgf1: { oid: '1.2.840.113549.1.1.8', description: 'id-mgf1' },
  rsassaPss: { oid: '1.2.840.113549.1.1.10', description: 'RSASSA-PSS' },
  sha256WithRsa: { oid: '1.2.840.113549.1.1.11', description: 'sha256WithRSAEncryption' },
  sha384WithRsa: { oid: '1.2.840.113549.1.1.12', description: 'sha384WithRSAEncryption' },
  sha512WithRsa: { oid: '1.2.840.113549.1.1.13', description: 'sha512WithRSAEncryption' },
  // NIST CSOR hash algorithms
  sha256: { oid: '2.16.840.1.101.3.4.2.1', description: 'SHA-256' },
  sha384: { oid: '2.16.840.1.101.3.4.2.2', description: 'SHA-384' },
  sha512: { oid: '2.16.840.1.101.3.4.2.3', description: 'SHA-512' },
  // RFC 4231 / RFC 8018
  hmacSha256: { oid: '1.2.840.113549.2.9', description: 'hmacWithSHA256' },
} as const;

export type OidName = keyof typeof DEFS;

/** name → dotted OID, e.g. OID.sm2WithSm3 === '1.2.156.10197.1.501'. */
export const OID: { readonly [K in OidName]: (typeof DEFS)[K]['oid'] } & { readonly sm2p256v1: '1.2.156.10197.1.301' } =
  Object.freeze({
    ...(Object.fromEntries(Object.entries(DEFS).map(([k, v]) => [k, v.oid])) as { [K in OidName]: (typeof DEFS)[K]['oid'] }),
    // GB/T 33560: the SM2 algorithm OID doubles as the curve OID.
    sm2p256v1: DEFS.sm2.oid,
  });

/** The frozen table, in definition order. */
export const OID_TABLE: readonly OidEntry[] = Object.freeze(
  (Object.keys(DEFS) as OidName[]).map((name) => Object.freeze({ name, oid: DEFS[name].oid, description: DEFS[name].description })),
);

const BY_OID = new Map<string, OidEntry>(OID_TABLE.map((e) => [e.oid, e]));

/** Entry for a dotted OID, or undefined. */
export function lookupOid(oid: string): OidEntry | undefined {
  return BY_OID.get(oid);
}

/** Registry name of a dotted OID, or the OID itself when unknown (for messages and logs). */
export function oidName(oid: string): string {
  return BY_OID.get(oid)?.name ?? oid;
}

/** Dotted OID of a registry name. */
export function oidOf(name: OidName): string {
  return DEFS[name].oid;
}
