// The hash chain of the audit log (GB/T 39786-2021, 设备和计算安全: 日志记录完整性 — integrity
// of log records protected with cryptography).
//
// Each record carries prevHash (the hash of the record before it; 64 zeros for the first)
// and hash = SM3(DOMAIN ‖ canonical(record without hash)). Changing, removing or reordering a
// stored record breaks the chain at that record; cutting records off the end is caught by
// the head (seq + hash of the newest record) the store keeps beside the records.
//
// Plain SM3 proves integrity against accidents and against anyone who cannot recompute the
// chain. Someone with write access to the disk can rewrite the whole chain; the next step is
// `alg: 'hmac-sm3'`: hash = HMAC-SM3(K, DOMAIN ‖ canonical(...)) with K a non-extractable key
// in the HSM (or derived from one), so rewriting needs the HSM. Records name their `alg`, so
// a chain can switch at one record and old records still verify; `RecordHasher` is the seam.
import { createHash } from 'node:crypto';
import { Codes, fail } from '../errors.js';
import type { AuditEntry, AuditOutcome, AuditRecord } from './audit-log.js';

export const GENESIS_HASH = '0'.repeat(64);

/** Domain separation: this hash is an audit record of yiqian, format 1, nothing else. */
const DOMAIN = 'yiqian.audit.v1\n';

const OUTCOMES: readonly AuditOutcome[] = ['ok', 'denied', 'error'];
const ACTION = /^[a-z][a-z0-9_-]*(\.[a-z0-9_-]+)*$/;
const MAX_DETAIL_BYTES = 16 * 1024;

/** Makes `hash` for a record; today SM3, later HMAC-SM3 under an HSM key (see above). */
export interface RecordHasher {
  readonly alg: AuditRecord['alg'];
  hash(data: Buffer): string;
}

export const sm3Hasher: RecordHasher = {
  alg: 'sm3',
  hash: (data) => createHash('sm3').update(data).digest('hex'),
};

/** Builds the next record from the newest stored one; runs inside the store's write transaction. */
export type AuditSeal = (prev: AuditRecord | undefined) => AuditRecord;

/**
 * Checks and normalises `entry` now (outside any transaction) and returns the function that
 * chains it onto the newest record. `detail` goes through JSON once, so what is hashed is
 * exactly what the store keeps and reads back.
 */
export function sealer(entry: AuditEntry, clock: () => Date = () => new Date(), hasher: RecordHasher = sm3Hasher): AuditSeal {
  const e = normaliseEntry(entry);
  return (prev) => {
    const body: Omit<AuditRecord, 'hash'> = {
      seq: (prev?.seq ?? 0) + 1,
      time: clock().toISOString(),
      actor: e.actor,
      action: e.action,
      ...(e.target !== undefined ? { target: e.target } : {}),
      outcome: e.outcome,
      ...(e.detail !== undefined ? { detail: e.detail } : {}),
      alg: hasher.alg,
      prevHash: prev?.hash ?? GENESIS_HASH,
    };
    return { ...body, hash: hasher.hash(hashInput(body)) };
  };
}

/** Recomputes a stored record's hash (for verification). */
export function recomputeHash(record: AuditRecord, hasher: RecordHasher = sm3Hasher): string {
  const { hash: _hash, ...body } = record;
  return hasher.hash(hashInput(body));
}

function hashInput(body: Omit<AuditRecord, 'hash'>): Buffer {
  return Buffer.from(DOMAIN + canonicalJson(body), 'utf8');
}

/**
 * Canonical JSON in the manner of RFC 8785 (JCS) for the values the log holds: object
 * members sorted by UTF-16 code units, no whitespace, ECMAScript number and string
 * serialisation; undefined members are left out; anything else is refused.
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError('canonicalJson: non-finite number');
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`;
      const obj = value as Record<string, unknown>;
      const members = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort()
        .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`);
      return `{${members.join(',')}}`;
    }
    default:
      throw new TypeError(`canonicalJson: cannot encode a ${typeof value}`);
  }
}

function normaliseEntry(entry: AuditEntry): AuditEntry {
  const bad = (why: string): never =>
    fail(Codes.INTERNAL, 500, `审计记录无效：${why}`, `invalid audit entry: ${why}`);
  if (entry === null || typeof entry !== 'object') bad('not an object');
  const { actor, action, target, outcome, detail } = entry;
  if (typeof actor !== 'string' || actor.length === 0 || actor.length > 200 || /\p{Cc}/u.test(actor)) bad('actor must be 1–200 printable characters');
  if (typeof action !== 'string' || action.length > 64 || !ACTION.test(action)) bad('action must look like "app.create"');
  if (target !== undefined && (typeof target !== 'string' || target.length > 512)) bad('target must be a string of at most 512 characters');
  if (!OUTCOMES.includes(outcome)) bad(`outcome must be one of ${OUTCOMES.join(', ')}`);
  let normalised: Record<string, unknown> | undefined;
  if (detail !== undefined) {
    if (detail === null || typeof detail !== 'object' || Array.isArray(detail)) bad('detail must be a plain object');
    let json: string;
    try {
      json = JSON.stringify(detail);
    } catch (e) {
      return bad(`detail is not JSON-serialisable (${(e as Error).message})`);
    }
    if (Buffer.byteLength(json, 'utf8') > MAX_DETAIL_BYTES) bad(`detail exceeds ${MAX_DETAIL_BYTES} bytes`);
    normalised = JSON.parse(json) as Record<string, unknown>;
  }
  return { actor, action, target, outcome, detail: normalised };
}
