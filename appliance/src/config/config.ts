// One validated configuration object, read from DATA/config.json and a few environment
// overrides. `yiqian config check` runs exactly this validation.
import { readFileSync, existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { YiqianError, Codes } from '../errors.js';
import { validateProfileConfig } from '../pki/profiles.js';
import { checkTimesourceConfig, type TimesourceConfig } from '../../../firmware-bridge/timesource/config-shape.js';

/** Default deadline of a streamed evidence upload (http.uploadTimeoutMs). */
export const DEFAULT_UPLOAD_TIMEOUT_MS = 3_600_000;
export const CONFIG_FILE = 'config.json';
export const CONFIG_VERSION = 1;

export interface VendorSm2ProfileConfig {
  name: string;
  keyGenMechanism: number;
  signMechanism: number;
  keyType: number;
  /** DER of the curve OID as hex; default SM2 (06082a811ccf5501822d). */
  ecParamsHex?: string;
  signInput: 'message' | 'digest-e';
  /** How the vendor's C_Sign returns the signature; default raw r‖s. */
  signatureFormat?: 'raw' | 'der';
}

export interface HsmConfig {
  /** PKCS#11 module (shared library). */
  module: string;
  tokenLabel: string;
  /** File holding the user PIN (relative to the data dir); YIQIAN_HSM_PIN overrides it. */
  pinFile?: string;
  poolSize: number;
  kekLabel: string;
  /** SoftHSM2 only: its private config file (relative to the data dir). */
  softhsmConf?: string;
  /** SM2 inside an HSM that has SM2 mechanisms (docs/hsm-vendor-profiles.md); absent → wrapped custody. */
  sm2Profile?: VendorSm2ProfileConfig;
}

/** The certificate authority (docs/pki.md). */
export interface PkiConfig {
  /** Key algorithm of the second hierarchy's root and issuing CA ("ecdsa" hierarchy): P-256 or RSA-3072. */
  ecdsaAlgorithm: 'ecdsa-p256' | 'rsa-3072';
  /** O of the CA names, and the default O of issued certificates (the hospital's name). */
  organisation: string;
  /** C of the CA names and issued certificates (ISO 3166 two letters). */
  country: string;
  /** Overrides of the built-in profiles, or new profiles `{ "base": "<built-in>", … }` (pki/profiles.ts). */
  profiles?: Record<string, Record<string, unknown>>;
  /** Hours from a CRL's thisUpdate to its nextUpdate; re-signed when less than half is left (docs/revocation.md). Default 24. */
  crlValidityHours?: number;
  /** Hours from an OCSP response's thisUpdate to its nextUpdate; pre-signed ones are re-signed past half. Default 24. */
  ocspValidityHours?: number;
}

export interface Config {
  version: number;
  /** HTTPS listener, HOST:PORT. */
  listen: string;
  /** Plain-HTTP listener for public signed objects, HOST:PORT. */
  listenHttp: string;
  /** Base URL that certificates name for CRL / OCSP / CA certificates. */
  publicBaseUrl: string;
  hsm: HsmConfig;
  device: {
    tlsKeyLabel: string;
    identityKeyLabel: string;
    tlsDnsNames: string[];
    tlsIpAddresses: string[];
  };
  /**
   * uploadTimeoutMs: the deadline of a streamed upload (POST /api/v1/evidence/files), which
   * timeoutMs would cut (200 MiB in 30 s needs 7 MB/s); optional, default 1 h. While an upload
   * waits for its body, timeoutMs without a byte ends it (UPLOAD_STALLED).
   */
  http: { bodyLimitBytes: number; timeoutMs: number; maxInFlight: number; uploadTimeoutMs?: number };
  auth: { maxSkewSeconds: number };
  /** The clock (firmware-bridge/timesource, docs/timesource.md); the string 'system-trusted' is accepted too. */
  timesource: TimesourceConfig;
  pki: PkiConfig;
  /** The RFC 3161 time-stamp authority (docs/tsa.md); absent → defaultTsaConfig(). */
  tsa: TsaConfig;
  /** The GB/T 38629 HTTP binding (docs/gbt38629.md); absent → defaultSvsConfig(). */
  svs: SvsConfig;
  /** The evidence store (issue 6); absent → defaultEvidenceConfig(). */
  evidence: EvidenceConfig;
}

/** The evidence store (issue 6). Each setting is defaulted on its own, so older config files keep working. */
export interface EvidenceConfig {
  /** Retention of the project 'default' (created on first use), and of new projects that name none. 1–100, default 30. */
  defaultRetentionYears: number;
  /** Seconds between checkpoints of the evidence log, made only when the tree grew (evidence/checkpoint-log.ts). 1–86400, default 60. */
  checkpointSeconds: number;
  /** The hot → cold job (evidence/tier-migration.ts): records older than afterDays (0–36500) move in batches of batchSize (1–10000) every everySeconds (1–604800). */
  migration: { afterDays: number; batchSize: number; everySeconds: number };
  /** Directory of the cold-tier LMDB environment (store/evidence-repository.ts), absolute or relative to the data dir; absent → <data>/evidence-cold. */
  coldPath?: string;
  /** Directory of the content-addressed blobs (evidence/blob-store.ts), absolute or relative to the data dir; absent → <data>/blobs. */
  blobPath?: string;
  /** Largest uploaded evidence file (bytes), streamed to disk: 1 KiB–16 GiB, default 200 MiB. */
  maxFileBytes: number;
  /** Lifetime of a signed download URL (evidence/signed-url.ts): 1–86400 s, default 300. */
  downloadUrlSeconds: number;
}

export function defaultEvidenceConfig(): EvidenceConfig {
  return { defaultRetentionYears: 30, checkpointSeconds: 60, migration: { afterDays: 365, batchSize: 500, everySeconds: 3600 }, maxFileBytes: 200 * 1024 * 1024, downloadUrlSeconds: 300 };
}

/** Checks (and defaults, key by key) the evidence section; returns its problems. */
function validateEvidenceConfig(c: Record<string, any>): string[] {
  if (c.evidence === undefined) c.evidence = defaultEvidenceConfig();
  const e = c.evidence as Record<string, any>;
  if (typeof e !== 'object' || e === null || Array.isArray(e)) return ['evidence must be an object'];
  const d = defaultEvidenceConfig() as unknown as Record<string, unknown>;
  for (const k of Object.keys(d)) if (e[k] === undefined) e[k] = d[k];
  const problems: string[] = [];
  if (!(Number.isInteger(e.defaultRetentionYears) && e.defaultRetentionYears >= 1 && e.defaultRetentionYears <= 100)) problems.push('evidence.defaultRetentionYears must be an integer in 1..100');
  if (!(Number.isInteger(e.checkpointSeconds) && e.checkpointSeconds >= 1 && e.checkpointSeconds <= 86_400)) problems.push('evidence.checkpointSeconds must be an integer in 1..86400');
  if (e.coldPath !== undefined && (typeof e.coldPath !== 'string' || e.coldPath.trim() === '')) problems.push('evidence.coldPath must be a non-empty path');
  if (e.blobPath !== undefined && (typeof e.blobPath !== 'string' || e.blobPath.trim() === '')) problems.push('evidence.blobPath must be a non-empty path');
  if (!(Number.isInteger(e.maxFileBytes) && e.maxFileBytes >= 1024 && e.maxFileBytes <= 16 * 1024 ** 3)) problems.push('evidence.maxFileBytes must be an integer in 1024..17179869184');
  if (!(Number.isInteger(e.downloadUrlSeconds) && e.downloadUrlSeconds >= 1 && e.downloadUrlSeconds <= 86_400)) problems.push('evidence.downloadUrlSeconds must be an integer in 1..86400');
  if (typeof e.migration !== 'object' || e.migration === null || Array.isArray(e.migration)) {
    problems.push('evidence.migration must be an object');
  } else {
    const dm = defaultEvidenceConfig().migration;
    for (const k of ['afterDays', 'batchSize', 'everySeconds'] as const) if (e.migration[k] === undefined) e.migration[k] = dm[k];
    for (const k of Object.keys(e.migration)) if (!(k in dm)) problems.push(`evidence.migration.${k} is not a setting`);
    const range = { afterDays: [0, 36_500], batchSize: [1, 10_000], everySeconds: [1, 604_800] } as const;
    for (const [k, [lo, hi]] of Object.entries(range)) {
      const v = e.migration[k];
      if (!(Number.isInteger(v) && v >= lo && v <= hi)) problems.push(`evidence.migration.${k} must be an integer in ${lo}..${hi}`);
    }
  }
  return problems;
}

/** The GB/T 38629 signature-server HTTP binding, POST /svs/<reqType> on the HTTPS listener (docs/gbt38629.md). */
export interface SvsConfig {
  /** Serve /svs/ at all (default true). */
  enabled: boolean;
  /**
   * The registered app (yiqian app create) on whose behalf binding calls act: its grants decide
   * which held keys keyIndex may name. Absent → exportCert/signData/signMessage answer
   * SYSTEM_FAILURE; parseCert and the verify requests still work.
   */
  appId?: string;
  /** CIDRs allowed to call /svs/; empty → everyone. */
  allow: string[];
  /** Largest request body accepted (bytes; Base64 makes data ~4/3 larger). */
  maxRequestBytes: number;
}

export function defaultSvsConfig(): SvsConfig {
  return { enabled: true, allow: [], maxRequestBytes: 4 * 1024 * 1024 };
}

/** One time-stamp policy the TSA may issue under (RFC 3161 §2.4.2 policy / reqPolicy). */
export interface TsaPolicyConfig {
  oid: string;
  /** Identities that issue under it; default both. */
  identities?: ('sm2' | 'ecdsa')[];
}

export interface TsaConfig {
  /** Identity of POST /tsa. */
  defaultIdentity: 'sm2' | 'ecdsa';
  /** Accepted policies (a request's reqPolicy must be one of them). */
  policies: TsaPolicyConfig[];
  /** Policy used when the request names none, per identity; default: the first policy of that identity. */
  defaultPolicy?: { sm2?: string; ecdsa?: string };
  /** CIDRs allowed to call /tsa; empty → everyone. */
  allow: string[];
  /** Largest TimeStampReq accepted (bytes). */
  maxRequestBytes: number;
}

/**
 * A UUID-based OID (ITU-T X.667, arc 2.25): an identifier no one else uses, so a fresh
 * appliance never claims someone's policy. A hospital replaces it with its own registered OID.
 */
export const DEFAULT_TSA_POLICY_OID = '2.25.190845046733468478924453180286838291719';

export function defaultTsaConfig(): TsaConfig {
  return { defaultIdentity: 'ecdsa', policies: [{ oid: DEFAULT_TSA_POLICY_OID }], allow: [], maxRequestBytes: 16 * 1024 };
}

export function defaultPkiConfig(): PkiConfig {
  return { ecdsaAlgorithm: 'ecdsa-p256', organisation: '医签 yiqian', country: 'CN', profiles: {}, crlValidityHours: 24, ocspValidityHours: 24 };
}

export function defaultConfig(): Config {
  return {
    version: CONFIG_VERSION,
    listen: '127.0.0.1:8443',
    listenHttp: '127.0.0.1:8080',
    publicBaseUrl: 'http://127.0.0.1:8080',
    hsm: {
      module: '/usr/lib/softhsm/libsofthsm2.so',
      tokenLabel: 'yiqian',
      pinFile: 'secrets/hsm.pin',
      poolSize: 4,
      kekLabel: 'yiqian-kek',
      softhsmConf: 'hsm/softhsm2.conf',
    },
    device: {
      tlsKeyLabel: 'device-tls',
      identityKeyLabel: 'device-identity-sm2',
      tlsDnsNames: ['localhost'],
      tlsIpAddresses: ['127.0.0.1', '::1'],
    },
    http: { bodyLimitBytes: 1024 * 1024, timeoutMs: 30_000, maxInFlight: 256, uploadTimeoutMs: DEFAULT_UPLOAD_TIMEOUT_MS },
    auth: { maxSkewSeconds: 300 },
    timesource: { kind: 'system-trusted' },
    pki: defaultPkiConfig(),
    tsa: defaultTsaConfig(),
    svs: defaultSvsConfig(),
    evidence: defaultEvidenceConfig(),
  };
}

function invalid(problems: string[]): never {
  throw new YiqianError(Codes.CONFIG_INVALID, 500, { zh: `配置无效：${problems.join('；')}`, en: `invalid configuration: ${problems.join('; ')}` }, { problems });
}

/** Parses HOST:PORT ([v6]:PORT allowed). */
export function parseHostPort(value: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new YiqianError(Codes.CONFIG_INVALID, 400, { zh: `监听地址格式应为 HOST:PORT：${value}`, en: `listen address must be HOST:PORT: ${value}` });
  }
  return { host: m[1] ?? m[2], port };
}

type Check = (v: unknown) => string | undefined;
const str: Check = (v) => (typeof v === 'string' && v.length > 0 ? undefined : 'must be a non-empty string');
const int = (min: number, max: number): Check => (v) => (Number.isInteger(v) && (v as number) >= min && (v as number) <= max ? undefined : `must be an integer in ${min}..${max}`);
const strArray: Check = (v) => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? undefined : 'must be an array of strings');
const hostPort: Check = (v) => {
  if (typeof v !== 'string') return 'must be HOST:PORT';
  try { parseHostPort(v); return undefined; } catch { return 'must be HOST:PORT'; }
};
const url: Check = (v) => {
  try { const u = new URL(String(v)); return u.protocol === 'http:' || u.protocol === 'https:' ? undefined : 'must be an http(s) URL'; } catch { return 'must be a URL'; }
};

/** Validates a parsed config object; returns every problem at once. */
export function validateConfig(raw: unknown): Config {
  const problems: string[] = [];
  if (typeof raw !== 'object' || raw === null) invalid(['config must be a JSON object']);
  const c = raw as Record<string, any>;
  const at = (path: string, check: Check): void => {
    const v = path.split('.').reduce<any>((o, k) => (o == null ? undefined : o[k]), c);
    const p = check(v);
    if (p) problems.push(`${path} ${p}`);
  };
  if (c.version !== CONFIG_VERSION) problems.push(`version must be ${CONFIG_VERSION}`);
  at('listen', hostPort);
  at('listenHttp', hostPort);
  at('publicBaseUrl', url);
  at('hsm.module', str);
  at('hsm.tokenLabel', str);
  at('hsm.poolSize', int(1, 64));
  at('hsm.kekLabel', str);
  if (c.hsm?.pinFile !== undefined) at('hsm.pinFile', str);
  if (c.hsm?.softhsmConf !== undefined) at('hsm.softhsmConf', str);
  if (c.hsm?.sm2Profile !== undefined) {
    at('hsm.sm2Profile.name', str);
    at('hsm.sm2Profile.keyGenMechanism', int(0, 0xffffffff));
    at('hsm.sm2Profile.signMechanism', int(0, 0xffffffff));
    at('hsm.sm2Profile.keyType', int(0, 0xffffffff));
    const si = c.hsm.sm2Profile?.signInput;
    if (si !== 'message' && si !== 'digest-e') problems.push("hsm.sm2Profile.signInput must be 'message' or 'digest-e'");
    const sf = c.hsm.sm2Profile?.signatureFormat;
    if (sf !== undefined && sf !== 'raw' && sf !== 'der') problems.push("hsm.sm2Profile.signatureFormat must be 'raw' or 'der'");
  }
  at('device.tlsKeyLabel', str);
  at('device.identityKeyLabel', str);
  at('device.tlsDnsNames', strArray);
  at('device.tlsIpAddresses', strArray);
  at('http.bodyLimitBytes', int(1024, 1024 * 1024 * 1024));
  at('http.timeoutMs', int(100, 600_000));
  at('http.maxInFlight', int(1, 100_000));
  if (c.http?.uploadTimeoutMs !== undefined) at('http.uploadTimeoutMs', int(1000, 86_400_000));
  at('auth.maxSkewSeconds', int(1, 3600));
  {
    const ts = checkTimesourceConfig(c.timesource ?? { kind: 'system-trusted' });
    problems.push(...ts.problems);
    if (ts.config) c.timesource = ts.config;
  }
  problems.push(...validateTsaConfig(c));
  problems.push(...validateSvsConfig(c));
  problems.push(...validateEvidenceConfig(c));
  // Data dirs initialised before the CA existed have no pki section: the defaults apply.
  if (c.pki === undefined) c.pki = defaultPkiConfig();
  if (typeof c.pki !== 'object' || c.pki === null || Array.isArray(c.pki)) {
    problems.push('pki must be an object');
  } else {
    if (c.pki.ecdsaAlgorithm !== 'ecdsa-p256' && c.pki.ecdsaAlgorithm !== 'rsa-3072') problems.push("pki.ecdsaAlgorithm must be 'ecdsa-p256' or 'rsa-3072'");
    if (typeof c.pki.organisation !== 'string' || c.pki.organisation.trim() === '' || [...c.pki.organisation].length > 64) problems.push('pki.organisation must be a string of 1–64 characters');
    if (typeof c.pki.country !== 'string' || !/^[A-Z]{2}$/.test(c.pki.country)) problems.push('pki.country must be two upper-case letters (ISO 3166)');
    for (const k of ['crlValidityHours', 'ocspValidityHours']) if (c.pki[k] !== undefined) at(`pki.${k}`, int(1, 24 * 366));
    for (const k of Object.keys(c.pki)) if (!['ecdsaAlgorithm', 'organisation', 'country', 'profiles', 'crlValidityHours', 'ocspValidityHours'].includes(k)) problems.push(`pki.${k} is not a setting`);
    problems.push(...validateProfileConfig(c.pki.profiles));
  }
  if (problems.length) invalid(problems);
  return c as Config;
}

const OID_RE = /^[0-2](\.(0|[1-9]\d*))+$/;

/** Checks (and defaults) the tsa section; returns its problems. */
function validateTsaConfig(c: Record<string, any>): string[] {
  if (c.tsa === undefined) c.tsa = defaultTsaConfig();
  const t = c.tsa as Record<string, any>;
  if (typeof t !== 'object' || t === null || Array.isArray(t)) return ['tsa must be an object'];
  const d = defaultTsaConfig();
  for (const k of ['defaultIdentity', 'policies', 'allow', 'maxRequestBytes'] as const) if (t[k] === undefined) t[k] = d[k];
  const problems: string[] = [];
  for (const k of Object.keys(t)) if (!['defaultIdentity', 'policies', 'defaultPolicy', 'allow', 'maxRequestBytes'].includes(k)) problems.push(`tsa.${k} is not a setting`);
  if (t.defaultIdentity !== 'sm2' && t.defaultIdentity !== 'ecdsa') problems.push("tsa.defaultIdentity must be 'sm2' or 'ecdsa'");
  if (!Array.isArray(t.policies) || t.policies.length === 0) {
    problems.push('tsa.policies must be a non-empty array');
  } else {
    t.policies.forEach((p: any, i: number) => {
      if (typeof p !== 'object' || p === null || typeof p.oid !== 'string' || !OID_RE.test(p.oid)) problems.push(`tsa.policies[${i}].oid must be a dotted OID`);
      else if (p.identities !== undefined && (!Array.isArray(p.identities) || p.identities.length === 0 || !p.identities.every((x: unknown) => x === 'sm2' || x === 'ecdsa'))) problems.push(`tsa.policies[${i}].identities must list 'sm2' and/or 'ecdsa'`);
    });
    for (const id of ['sm2', 'ecdsa'] as const) {
      const dp = t.defaultPolicy?.[id];
      const usable = (t.policies as TsaPolicyConfig[]).filter((p) => !p.identities || p.identities.includes(id)).map((p) => p.oid);
      if (dp !== undefined && !usable.includes(dp)) problems.push(`tsa.defaultPolicy.${id} must be one of the policies of the ${id} identity`);
      if (usable.length === 0) problems.push(`tsa.policies has no policy for the ${id} identity`);
    }
  }
  if (!Array.isArray(t.allow) || !t.allow.every((x: unknown) => typeof x === 'string' && parseCidr(x) !== undefined)) problems.push('tsa.allow must be an array of CIDRs (e.g. 10.0.0.0/8, ::1/128)');
  if (!(Number.isInteger(t.maxRequestBytes) && t.maxRequestBytes >= 256 && t.maxRequestBytes <= 1024 * 1024)) problems.push('tsa.maxRequestBytes must be an integer in 256..1048576');
  return problems;
}

/** Checks (and defaults) the svs section; returns its problems. */
function validateSvsConfig(c: Record<string, any>): string[] {
  if (c.svs === undefined) c.svs = defaultSvsConfig();
  const v = c.svs as Record<string, any>;
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return ['svs must be an object'];
  const d = defaultSvsConfig();
  for (const k of ['enabled', 'allow', 'maxRequestBytes'] as const) if (v[k] === undefined) v[k] = d[k];
  const problems: string[] = [];
  for (const k of Object.keys(v)) if (!['enabled', 'appId', 'allow', 'maxRequestBytes'].includes(k)) problems.push(`svs.${k} is not a setting`);
  if (typeof v.enabled !== 'boolean') problems.push('svs.enabled must be true or false');
  // App ids are ULIDs (identity/app-service.ts).
  if (v.appId !== undefined && (typeof v.appId !== 'string' || !/^[0-9A-HJKMNP-TV-Z]{26}$/.test(v.appId))) problems.push('svs.appId must be an app id (26-character ULID, see yiqian app list)');
  if (!Array.isArray(v.allow) || !v.allow.every((x: unknown) => typeof x === 'string' && parseCidr(x) !== undefined)) problems.push('svs.allow must be an array of CIDRs (e.g. 10.0.0.0/8, ::1/128)');
  if (!(Number.isInteger(v.maxRequestBytes) && v.maxRequestBytes >= 1024 && v.maxRequestBytes <= 64 * 1024 * 1024)) problems.push('svs.maxRequestBytes must be an integer in 1024..67108864');
  return problems;
}

/** A CIDR as the bytes of its network and a prefix length; undefined if it is not one. */
export function parseCidr(cidr: string): { bytes: Buffer; prefix: number } | undefined {
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(cidr.trim());
  if (!m) return undefined;
  const bytes = ipToBytes(m[1]);
  if (!bytes) return undefined;
  const prefix = m[2] === undefined ? bytes.length * 8 : Number(m[2]);
  if (prefix > bytes.length * 8) return undefined;
  return { bytes, prefix };
}

/** IPv4 or IPv6 text → 4 or 16 bytes (an IPv4-mapped IPv6 address → its 4 IPv4 bytes). */
export function ipToBytes(ip: string): Buffer | undefined {
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (v4) {
    const b = v4.slice(1).map(Number);
    return b.every((x) => x <= 255) ? Buffer.from(b) : undefined;
  }
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  if (mapped) return ipToBytes(mapped[1]);
  if (!/^[0-9a-fA-F:]+$/.test(ip) || (ip.match(/::/g) ?? []).length > 1) return undefined;
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const hs = head ? head.split(':') : [];
  const ts = tail ? tail.split(':') : [];
  const missing = 8 - hs.length - ts.length;
  if ((tail === undefined && missing !== 0) || (tail !== undefined && missing < 1)) return undefined;
  const groups = [...hs, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...ts];
  if (!groups.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** Reads and validates DATA/config.json, then applies environment overrides. */
export function loadConfig(dataDir: string, env: NodeJS.ProcessEnv = process.env): Config {
  const file = join(dataDir, CONFIG_FILE);
  if (!existsSync(file)) {
    throw new YiqianError(Codes.NOT_INITIALISED, 500, {
      zh: `数据目录未初始化（缺少 ${file}）：请先运行 yiqian init --data ${dataDir}`,
      en: `data directory not initialised (no ${file}): run yiqian init --data ${dataDir}`,
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    invalid([`${file} is not valid JSON: ${(e as Error).message}`]);
  }
  const config = validateConfig(raw);
  if (env.YIQIAN_LISTEN) config.listen = env.YIQIAN_LISTEN;
  if (env.YIQIAN_LISTEN_HTTP) config.listenHttp = env.YIQIAN_LISTEN_HTTP;
  parseHostPort(config.listen);
  parseHostPort(config.listenHttp);
  return config;
}

/** The deadline of a streamed upload (http.uploadTimeoutMs, optional in config.json). */
export function uploadTimeoutMs(c: Pick<Config, 'http'>): number {
  return c.http.uploadTimeoutMs ?? DEFAULT_UPLOAD_TIMEOUT_MS;
}

export function resolveInData(dataDir: string, p: string): string {
  return isAbsolute(p) ? p : join(dataDir, p);
}

/** The HSM user PIN: YIQIAN_HSM_PIN, else the PIN file. A missing PIN is a one-line error. */
export function readHsmPin(dataDir: string, config: Config, env: NodeJS.ProcessEnv = process.env): string {
  if (env.YIQIAN_HSM_PIN) return env.YIQIAN_HSM_PIN;
  const file = config.hsm.pinFile ? resolveInData(dataDir, config.hsm.pinFile) : undefined;
  if (!file || !existsSync(file)) {
    throw new YiqianError(Codes.HSM_PIN_INCORRECT, 500, {
      zh: '未提供 HSM 用户 PIN（设置 YIQIAN_HSM_PIN 或 hsm.pinFile）',
      en: 'no HSM user PIN given (set YIQIAN_HSM_PIN or hsm.pinFile)',
    });
  }
  return readFileSync(file, 'utf8').trim();
}
