// Certificate profiles: what a certificate of each kind looks like — validity, key usage,
// extended key usage, policies, CRL distribution point and AIA, which subject fields it takes
// and which it requires, and which extra extensions it may carry. Defaults are here; the
// config's `pki.profiles` overrides fields of a default profile or adds a profile based on one
// (`{"base": "personal", …}`), validated by validateProfileConfig (run by `yiqian config check`).
import { KEY_PURPOSES, KEY_USAGE_BITS, TYPED_VALUE_TYPES, type KeyUsageName, type TypedValueType } from '../asn1/certificate.js';
import type { CaId } from './types.js';

/**
 * No private OIDs by default. Certificate policies and named extensions (e.g. 执业证书号) need
 * OIDs from the hospital's own registered arc, set in `pki.profiles` (docs/pki.md). An arc that
 * needs no registration exists — 2.25.<UUID> (X.667) — but its 128-bit arcs break common
 * parsers (pyca/cryptography ≥ 38, Go before 1.22, wolfSSL, asn1js), so it is not used here.
 * Requests can always add an extension by OID with a typed value where the profile allows it.
 */

export const SUBJECT_FIELDS = ['commonName', 'organisation', 'ou', 'employeeId', 'departmentId', 'titleLevel', 'dnsNames', 'ipAddresses', 'email'] as const;
export type SubjectField = (typeof SUBJECT_FIELDS)[number];

/** An extension a request may set by name (e.g. 执业证书号), with its OID and value type. */
export interface NamedExtension {
  name: string;
  oid: string;
  type: TypedValueType;
  critical: boolean;
  required: boolean;
  description?: string;
}

export interface Profile {
  name: string;
  description: string;
  /** 'api': issued over /api/v1/certs; 'appliance': only for keys the appliance keeps (TSA, OCSP, its TLS). */
  issuance: 'api' | 'appliance';
  validityDays: number;
  maxValidityDays: number;
  keyUsage: KeyUsageName[];
  /** Added for RSA subject keys (keyEncipherment for TLS key transport). */
  rsaExtraKeyUsage: KeyUsageName[];
  /** Key purpose OIDs (names of KEY_PURPOSES accepted in config). Empty: no EKU extension. */
  extKeyUsage: string[];
  extKeyUsageCritical: boolean;
  policies: { oid: string; cps?: string }[];
  /** Subject fields a request must give. */
  required: SubjectField[];
  /** Subject fields a request may give (required ones included). */
  allowed: SubjectField[];
  /** At least one DNS name or IP address (TLS servers). */
  requireSubjectAltName: boolean;
  ocspNoCheck: boolean;
  crlDistributionPoint: boolean;
  authorityInfoAccess: boolean;
  namedExtensions: NamedExtension[];
  /** Extensions by OID and typed value beyond the named ones (never the ones the CA itself writes). */
  allowCustomExtensions: boolean;
}

export type ProfileSet = ReadonlyMap<string, Profile>;

const STAFF_FIELDS: SubjectField[] = ['commonName', 'organisation', 'ou', 'employeeId', 'departmentId', 'titleLevel', 'email'];
const ORG_FIELDS: SubjectField[] = ['commonName', 'organisation', 'ou'];

function base(name: string, description: string): Profile {
  return {
    name,
    description,
    issuance: 'api',
    validityDays: 730,
    maxValidityDays: 1095,
    keyUsage: ['digitalSignature', 'nonRepudiation'],
    rsaExtraKeyUsage: [],
    extKeyUsage: [],
    extKeyUsageCritical: false,
    policies: [],
    required: ['commonName'],
    allowed: ORG_FIELDS,
    requireSubjectAltName: false,
    ocspNoCheck: false,
    crlDistributionPoint: true,
    authorityInfoAccess: true,
    namedExtensions: [],
    allowCustomExtensions: false,
  };
}

/** The built-in profiles. */
export function defaultProfiles(): Profile[] {
  return [
    {
      ...base('personal', '个人证书（医护人员）/ personal certificate of a staff member'),
      extKeyUsage: [KEY_PURPOSES.clientAuth, KEY_PURPOSES.emailProtection],
      required: ['commonName', 'employeeId'],
      allowed: STAFF_FIELDS,
      allowCustomExtensions: true,
    },
    {
      ...base('organisation', '机构证书（单位）/ organisation certificate'),
      extKeyUsage: [KEY_PURPOSES.clientAuth],
      allowCustomExtensions: true,
    },
    {
      ...base('seal', '电子印章证书 / electronic seal certificate'),
      maxValidityDays: 1825,
      allowCustomExtensions: true,
    },
    {
      ...base('device', '设备/TLS 服务器证书 / device (TLS server) certificate'),
      validityDays: 397,
      maxValidityDays: 825,
      keyUsage: ['digitalSignature'],
      rsaExtraKeyUsage: ['keyEncipherment'],
      extKeyUsage: [KEY_PURPOSES.serverAuth],
      allowed: [...ORG_FIELDS, 'dnsNames', 'ipAddresses'],
      requireSubjectAltName: true,
    },
    {
      // RFC 3161 §2.3: the TSA certificate has exactly one EKU, timeStamping, marked critical.
      ...base('tsa', '时间戳服务证书 / time-stamping authority certificate'),
      issuance: 'appliance',
      validityDays: 1825,
      maxValidityDays: 3650,
      extKeyUsage: [KEY_PURPOSES.timeStamping],
      extKeyUsageCritical: true,
    },
    {
      // RFC 6960 §4.2.2.2: delegated responder — id-kp-OCSPSigning, and id-pkix-ocsp-nocheck so
      // clients do not ask the responder about its own certificate; kept short-lived for that reason.
      ...base('ocsp', 'OCSP 响应签名证书 / delegated OCSP responder certificate'),
      issuance: 'appliance',
      validityDays: 365,
      maxValidityDays: 730,
      keyUsage: ['digitalSignature'],
      extKeyUsage: [KEY_PURPOSES.OCSPSigning],
      ocspNoCheck: true,
    },
    {
      // Encryption certificate of a key the appliance holds to open envelopes (issue 4 item 5),
      // SM2 or RSA: key transport (RFC 5280 §4.2.1.3 keyEncipherment) and SM2 data encryption
      // (dataEncipherment; GM/T 0015 encryption certificates carry both). Appliance-only: the
      // key-usage bits suit only the key types signing/held-keys.ts gives this profile.
      ...base('encryption', '加密证书（托管密钥，SM2/RSA）/ encryption certificate of a held key (SM2, RSA)'),
      issuance: 'appliance',
      keyUsage: ['keyEncipherment', 'dataEncipherment'],
      allowed: STAFF_FIELDS,
    },
    {
      // The same for ECDH keys (P-256/P-384): RFC 5480 §3 allows keyAgreement and forbids
      // keyEncipherment and dataEncipherment for id-ecPublicKey.
      ...base('key-agreement', '密钥协商证书（托管密钥，ECDH）/ key-agreement certificate of a held key (ECDH)'),
      issuance: 'appliance',
      keyUsage: ['keyAgreement'],
      allowed: STAFF_FIELDS,
    },
  ];
}

/** CDP and AIA URLs of certificates issued by `issuer` (all under the configured public base URL). */
export function distributionUrls(publicBaseUrl: string, issuer: CaId): { crl: string; ocsp: string; caIssuers: string } {
  const baseUrl = publicBaseUrl.replace(/\/+$/, '');
  return { crl: `${baseUrl}/pki/crl/${issuer}.crl`, ocsp: `${baseUrl}/ocsp`, caIssuers: `${baseUrl}/pki/ca/${issuer}.crt` };
}

// ---------- config overrides ----------

const OVERRIDABLE = new Set([
  'base', 'description', 'validityDays', 'maxValidityDays', 'keyUsage', 'rsaExtraKeyUsage', 'extKeyUsage', 'extKeyUsageCritical', 'policies',
  'required', 'allowed', 'requireSubjectAltName', 'ocspNoCheck', 'crlDistributionPoint', 'authorityInfoAccess', 'namedExtensions', 'allowCustomExtensions',
]);

const OID_RE = /^[0-2](\.(0|[1-9]\d*))+$/;
const NAME_RE = /^[a-z][a-zA-Z0-9-]{0,31}$/;

export function isOid(s: unknown): s is string {
  return typeof s === 'string' && s.length <= 200 && OID_RE.test(s) && !/^[01]\.([4-9]\d|\d{3,})/.test(s);
}

function purposeOid(p: string): string | undefined {
  if (Object.hasOwn(KEY_PURPOSES, p)) return KEY_PURPOSES[p as keyof typeof KEY_PURPOSES];
  return isOid(p) ? p : undefined;
}

/** Problems of a `pki.profiles` value (empty when valid). Paths are given from `pki.profiles`. */
export function validateProfileConfig(raw: unknown): string[] {
  if (raw === undefined) return [];
  const problems: string[] = [];
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return ['pki.profiles must be an object of profile name → overrides'];
  const defaults = new Map(defaultProfiles().map((p) => [p.name, p]));
  for (const [name, o] of Object.entries(raw as Record<string, unknown>)) {
    const at = `pki.profiles.${name}`;
    if (!NAME_RE.test(name)) problems.push(`${at}: profile names are 1–32 of [a-zA-Z0-9-] starting with a lower-case letter`);
    if (typeof o !== 'object' || o === null || Array.isArray(o)) {
      problems.push(`${at} must be an object`);
      continue;
    }
    const v = o as Record<string, unknown>;
    for (const k of Object.keys(v)) if (!OVERRIDABLE.has(k)) problems.push(`${at}.${k} is not a profile setting`);
    if (!defaults.has(name)) {
      if (typeof v.base !== 'string' || !defaults.has(v.base)) problems.push(`${at}.base must name a built-in profile (${[...defaults.keys()].join(', ')}) for a new profile`);
    } else if (v.base !== undefined) {
      problems.push(`${at}.base is only for new profiles`);
    }
    const posInt = (k: string, max: number): void => {
      if (v[k] !== undefined && !(Number.isInteger(v[k]) && (v[k] as number) >= 1 && (v[k] as number) <= max)) problems.push(`${at}.${k} must be an integer in 1..${max}`);
    };
    posInt('validityDays', 36500);
    posInt('maxValidityDays', 36500);
    if (v.description !== undefined && (typeof v.description !== 'string' || v.description.length === 0)) problems.push(`${at}.description must be a non-empty string`);
    for (const k of ['extKeyUsageCritical', 'requireSubjectAltName', 'ocspNoCheck', 'crlDistributionPoint', 'authorityInfoAccess', 'allowCustomExtensions']) {
      if (v[k] !== undefined && typeof v[k] !== 'boolean') problems.push(`${at}.${k} must be true or false`);
    }
    for (const k of ['keyUsage', 'rsaExtraKeyUsage']) {
      const ku = v[k];
      if (ku !== undefined && !(Array.isArray(ku) && ku.every((u) => (KEY_USAGE_BITS as readonly string[]).includes(u as string)))) {
        problems.push(`${at}.${k} must be an array of ${KEY_USAGE_BITS.join(', ')}`);
      }
    }
    if (Array.isArray(v.keyUsage) && v.keyUsage.length === 0) problems.push(`${at}.keyUsage must not be empty`);
    if (Array.isArray(v.keyUsage) && (v.keyUsage.includes('keyCertSign') || v.keyUsage.includes('cRLSign'))) problems.push(`${at}.keyUsage: keyCertSign and cRLSign are for CA certificates only`);
    if (v.extKeyUsage !== undefined && !(Array.isArray(v.extKeyUsage) && v.extKeyUsage.every((p) => typeof p === 'string' && purposeOid(p) !== undefined))) {
      problems.push(`${at}.extKeyUsage must be an array of OIDs or of ${Object.keys(KEY_PURPOSES).join(', ')}`);
    }
    if (v.policies !== undefined) {
      const ok = Array.isArray(v.policies) && v.policies.every((p) => {
        const q = p as Record<string, unknown>;
        return typeof q === 'object' && q !== null && isOid(q.oid) && (q.cps === undefined || (typeof q.cps === 'string' && /^https?:\/\/[\x21-\x7e]+$/.test(q.cps)));
      });
      if (!ok) problems.push(`${at}.policies must be an array of { oid, cps? } (cps an http(s) URL)`);
    }
    for (const k of ['required', 'allowed']) {
      const f = v[k];
      if (f !== undefined && !(Array.isArray(f) && f.every((x) => (SUBJECT_FIELDS as readonly string[]).includes(x as string)))) {
        problems.push(`${at}.${k} must be an array of ${SUBJECT_FIELDS.join(', ')}`);
      }
    }
    if (v.namedExtensions !== undefined) {
      if (!Array.isArray(v.namedExtensions)) {
        problems.push(`${at}.namedExtensions must be an array`);
      } else {
        v.namedExtensions.forEach((e, i) => {
          const x = e as Record<string, unknown>;
          const here = `${at}.namedExtensions[${i}]`;
          if (typeof x !== 'object' || x === null) return void problems.push(`${here} must be an object`);
          if (typeof x.name !== 'string' || !NAME_RE.test(x.name)) problems.push(`${here}.name must be 1–32 of [a-zA-Z0-9-] starting with a lower-case letter`);
          if (!isOid(x.oid)) problems.push(`${here}.oid must be a dotted OID`);
          else if (isManagedExtension(x.oid)) problems.push(`${here}.oid ${x.oid} is an extension the CA writes itself`);
          if (!(TYPED_VALUE_TYPES as readonly string[]).includes(x.type as string)) problems.push(`${here}.type must be one of ${TYPED_VALUE_TYPES.join(', ')}`);
          for (const b of ['critical', 'required']) if (x[b] !== undefined && typeof x[b] !== 'boolean') problems.push(`${here}.${b} must be true or false`);
          if (x.description !== undefined && typeof x.description !== 'string') problems.push(`${here}.description must be a string`);
          for (const k of Object.keys(x)) if (!['name', 'oid', 'type', 'critical', 'required', 'description'].includes(k)) problems.push(`${here}.${k} is not a named-extension setting`);
        });
      }
    }
  }
  if (problems.length === 0) {
    // The merged result must also hold together (e.g. validityDays ≤ maxValidityDays).
    for (const p of mergeProfiles(raw as Record<string, Record<string, unknown>>).values()) problems.push(...coherence(p));
  }
  return problems;
}

function coherence(p: Profile): string[] {
  const out: string[] = [];
  const at = `pki.profiles.${p.name}`;
  if (p.validityDays > p.maxValidityDays) out.push(`${at}: validityDays ${p.validityDays} exceeds maxValidityDays ${p.maxValidityDays}`);
  for (const r of p.required) if (!p.allowed.includes(r)) out.push(`${at}: required field ${r} is not in allowed`);
  if (!p.required.includes('commonName')) out.push(`${at}: commonName must be required`);
  const names = p.namedExtensions.map((e) => e.name);
  const oids = p.namedExtensions.map((e) => e.oid);
  if (new Set(names).size !== names.length || new Set(oids).size !== oids.length) out.push(`${at}: namedExtensions names and OIDs must be unique`);
  return out;
}

function mergeProfiles(raw: Record<string, Record<string, unknown>> = {}): Map<string, Profile> {
  const out = new Map(defaultProfiles().map((p) => [p.name, p]));
  for (const [name, o] of Object.entries(raw)) {
    const from = out.get(name) ?? out.get(String(o.base));
    if (!from) continue;
    const { base: _b, ...fields } = o;
    const merged: Profile = { ...from, ...(fields as Partial<Profile>), name };
    merged.extKeyUsage = merged.extKeyUsage.map((p) => purposeOid(p) ?? p);
    merged.namedExtensions = merged.namedExtensions.map((e) => ({ ...e, critical: e.critical ?? false, required: e.required ?? false }));
    // A new profile made from an appliance-only one stays appliance-only.
    out.set(name, merged);
  }
  return out;
}

/** The profiles in force: defaults merged with the (validated) `pki.profiles` overrides. */
export function resolveProfiles(raw?: unknown): ProfileSet {
  const problems = validateProfileConfig(raw);
  if (problems.length) throw new Error(`invalid pki.profiles: ${problems.join('; ')}`);
  return mergeProfiles(raw as Record<string, Record<string, unknown>> | undefined);
}

/** Extensions the CA writes itself: a request or profile cannot set them by OID. */
export function isManagedExtension(oid: string): boolean {
  return oid.startsWith('2.5.29.') || oid === '1.3.6.1.5.5.7.1.1' || oid === '1.3.6.1.5.5.7.48.1.5' || oid === '1.3.6.1.5.5.7.1.11';
}
