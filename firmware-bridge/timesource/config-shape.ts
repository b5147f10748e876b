// The `timesource` section of config.json: its type, its defaults and its validation.
// config/config.ts calls timesourceConfigProblems() from validateConfig() and keeps the
// normalised value (docs/timesource.md has the operator's view).
//
//   "timesource": { "kind": "system-trusted" }                 development: system clock, no checks
//   "timesource": "system-trusted"                             the same (the form used before this bridge)
//   "timesource": { "kind": "monitored",
//                   "gpsd":   { "host": "127.0.0.1", "port": 2947, "requireFix": true, "minMode": 2 },
//                   "chrony": { "host": "127.0.0.1", "port": 323, "pollMs": 1000 },
//                   "bounds": { "maxOffsetMs": 1000, "maxAgeMs": 3000, "degradedOffsetMs": 250 } }
//
// Every field but `kind` has a default; at least one of gpsd / chrony is required.
import { YiqianError, Codes } from '../../appliance/src/errors.js';
import type { ClockBounds } from './time-source.js';

export interface GpsdSourceConfig {
  host: string;
  port: number;
  /** true: no fix (or no gpsd) → UNSYNCED. false: GPS is a cross-check; losing it → DEGRADED. */
  requireFix: boolean;
  /** Least TPV mode that counts as a fix: 2 (2D) or 3 (3D). */
  minMode: 2 | 3;
  /**
   * Without a fresh PPS, serial (NMEA) time arrives up to this late (the receiver's output
   * latency); the GPS error bound is then max(|offset|, |offset + serialLatencyMs|) + ept.
   */
  serialLatencyMs: number;
}

export interface ChronySourceConfig {
  /** chronyd's command address (UDP): an IP address; chronyc runs with -n (no DNS). */
  host: string;
  port: number;
  /** How often `chronyc -c tracking` is run. */
  pollMs: number;
  /** The chronyc executable (default: "chronyc" on PATH). */
  chronyc: string;
}

export type TimesourceConfig =
  | { kind: 'system-trusted' }
  | { kind: 'monitored'; gpsd?: GpsdSourceConfig; chrony?: ChronySourceConfig; bounds: ClockBounds };

export type MonitoredTimesourceConfig = Extract<TimesourceConfig, { kind: 'monitored' }>;

export const DEFAULT_GPSD: GpsdSourceConfig = { host: '127.0.0.1', port: 2947, requireFix: true, minMode: 2, serialLatencyMs: 100 };
export const DEFAULT_CHRONY: ChronySourceConfig = { host: '127.0.0.1', port: 323, pollMs: 1000, chronyc: 'chronyc' };
/**
 * maxOffsetMs 1000: GB/T 20520 and ETSI EN 319 421 want UTC within 1 s. maxAgeMs 3000: gpsd
 * reports once a second and chrony is read once a second, so two missed readings are allowed.
 * degradedOffsetMs 250: a quarter of the allowed error — early warning, time still issued.
 * maxRefAgeMs 2100 s: chronyd updates at least every 1024 s (its default maxpoll) — two
 * missed updates and some slack; tighten it when chrony follows a local GPS refclock.
 */
export const DEFAULT_BOUNDS: ClockBounds = { maxOffsetMs: 1000, maxAgeMs: 3000, degradedOffsetMs: 250, maxRefAgeMs: 2_100_000 };

export function defaultTimesourceConfig(): TimesourceConfig {
  return { kind: 'system-trusted' };
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks a raw `timesource` value. Returns the normalised config (defaults filled in) when
 * there are no problems; problems are one line each, prefixed with their path.
 */
export function checkTimesourceConfig(raw: unknown, path = 'timesource'): { config?: TimesourceConfig; problems: string[] } {
  const problems: string[] = [];
  if (raw === undefined || raw === 'system-trusted') return { config: { kind: 'system-trusted' }, problems };
  if (!isObj(raw)) return { problems: [`${path} must be "system-trusted" or an object with kind "system-trusted" or "monitored"`] };
  const unknownKeys = (o: Record<string, unknown>, p: string, allowed: string[]): void => {
    for (const k of Object.keys(o)) if (!allowed.includes(k)) problems.push(`${p}.${k} is not a known setting (allowed: ${allowed.join(', ')})`);
  };
  if (raw.kind === 'system-trusted') {
    unknownKeys(raw, path, ['kind']);
    return problems.length ? { problems } : { config: { kind: 'system-trusted' }, problems };
  }
  if (raw.kind !== 'monitored') return { problems: [`${path}.kind must be "system-trusted" or "monitored"`] };
  unknownKeys(raw, path, ['kind', 'gpsd', 'chrony', 'bounds']);

  const int = (o: Record<string, unknown>, p: string, key: string, def: number, min: number, max: number): number => {
    const v = o[key];
    if (v === undefined) return def;
    if (!Number.isInteger(v) || (v as number) < min || (v as number) > max) problems.push(`${p}.${key} must be an integer in ${min}..${max}`);
    return v as number;
  };
  const host = (o: Record<string, unknown>, p: string, def: string): string => {
    const v = o.host;
    if (v === undefined) return def;
    if (typeof v !== 'string' || !/^[0-9A-Za-z.:-]+$/.test(v)) problems.push(`${p}.host must be an IP address or host name`);
    return v as string;
  };
  const section = (key: string): Record<string, unknown> | undefined => {
    const v = raw[key];
    if (v === undefined) return undefined;
    if (!isObj(v)) {
      problems.push(`${path}.${key} must be an object`);
      return undefined;
    }
    return v;
  };

  let gpsd: GpsdSourceConfig | undefined;
  const g = section('gpsd');
  if (g) {
    const p = `${path}.gpsd`;
    unknownKeys(g, p, ['host', 'port', 'requireFix', 'minMode', 'serialLatencyMs']);
    if (g.requireFix !== undefined && typeof g.requireFix !== 'boolean') problems.push(`${p}.requireFix must be true or false`);
    if (g.minMode !== undefined && g.minMode !== 2 && g.minMode !== 3) problems.push(`${p}.minMode must be 2 (2D fix) or 3 (3D fix)`);
    gpsd = {
      host: host(g, p, DEFAULT_GPSD.host),
      port: int(g, p, 'port', DEFAULT_GPSD.port, 1, 65535),
      requireFix: (g.requireFix as boolean | undefined) ?? DEFAULT_GPSD.requireFix,
      minMode: (g.minMode as 2 | 3 | undefined) ?? DEFAULT_GPSD.minMode,
      serialLatencyMs: int(g, p, 'serialLatencyMs', DEFAULT_GPSD.serialLatencyMs, 0, 1000),
    };
  }

  let chrony: ChronySourceConfig | undefined;
  const c = section('chrony');
  if (c) {
    const p = `${path}.chrony`;
    unknownKeys(c, p, ['host', 'port', 'pollMs', 'chronyc']);
    if (c.chronyc !== undefined && (typeof c.chronyc !== 'string' || c.chronyc.length === 0)) problems.push(`${p}.chronyc must be a non-empty string`);
    chrony = {
      host: host(c, p, DEFAULT_CHRONY.host),
      port: int(c, p, 'port', DEFAULT_CHRONY.port, 1, 65535),
      pollMs: int(c, p, 'pollMs', DEFAULT_CHRONY.pollMs, 100, 60_000),
      chronyc: (c.chronyc as string | undefined) ?? DEFAULT_CHRONY.chronyc,
    };
  }
  if (raw.gpsd === undefined && raw.chrony === undefined) problems.push(`${path} of kind "monitored" needs gpsd, chrony or both`);

  const b = section('bounds') ?? {};
  const bp = `${path}.bounds`;
  unknownKeys(b, bp, ['maxOffsetMs', 'maxAgeMs', 'degradedOffsetMs', 'maxRefAgeMs']);
  const bounds: ClockBounds = {
    maxOffsetMs: int(b, bp, 'maxOffsetMs', DEFAULT_BOUNDS.maxOffsetMs, 1, 1000),
    maxAgeMs: int(b, bp, 'maxAgeMs', DEFAULT_BOUNDS.maxAgeMs, 500, 600_000),
    degradedOffsetMs: int(b, bp, 'degradedOffsetMs', DEFAULT_BOUNDS.degradedOffsetMs, 0, 1000),
    maxRefAgeMs: int(b, bp, 'maxRefAgeMs', DEFAULT_BOUNDS.maxRefAgeMs, 1000, 86_400_000),
  };
  if (problems.length === 0) {
    if (bounds.degradedOffsetMs > bounds.maxOffsetMs) problems.push(`${bp}.degradedOffsetMs (${bounds.degradedOffsetMs}) must not exceed maxOffsetMs (${bounds.maxOffsetMs})`);
    if (chrony && bounds.maxAgeMs <= chrony.pollMs) problems.push(`${bp}.maxAgeMs (${bounds.maxAgeMs}) must be larger than ${path}.chrony.pollMs (${chrony.pollMs})`);
  }
  if (problems.length) return { problems };
  return { config: { kind: 'monitored', ...(gpsd ? { gpsd } : {}), ...(chrony ? { chrony } : {}), bounds }, problems };
}

/** Validates and normalises, or throws CONFIG_INVALID naming every problem. */
export function parseTimesourceConfig(raw: unknown, path = 'timesource'): TimesourceConfig {
  const { config, problems } = checkTimesourceConfig(raw, path);
  if (!config) {
    throw new YiqianError(Codes.CONFIG_INVALID, 500, { zh: `时间源配置无效：${problems.join('；')}`, en: `invalid time-source configuration: ${problems.join('; ')}` }, { problems });
  }
  return config;
}
