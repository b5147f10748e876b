// Signed checkpoints of the evidence Merkle log (issue 6 item 3): {origin, treeSize, rootHash,
// time}, signed by an appliance key through a Signer, and time-stamped by the appliance's own
// TSA over the SM3 hash of the checkpoint body (摘要数据加固时间戳).
//
// Format: a C2SP signed note (https://c2sp.org/signed-note) whose text is a C2SP tlog-checkpoint
// (https://c2sp.org/tlog-checkpoint), not a DER structure, because
//  - the bytes that are signed and time-stamped ARE the text: nothing to canonicalise, the RFC
//    3161 imprint is SM3 of exactly what a person reads in the evidence report and the offline
//    verifier re-reads; a DER structure would need its own schema, encoder and parser;
//  - it is the format transparency-log tooling (witnesses, monitors, Sigstore, Go's
//    golang.org/x/mod/sumdb/note) parses, so checkpoints can later be cosigned by a witness
//    run by the hospital's supervisor: a note carries any number of signatures.
// Deviations, on purpose:
//  - the root hash is that of the SM3 tree (evidence/merkle.ts), not RFC 6962's SHA-256; the
//    structure and domain separation are RFC 9162 §2.1's;
//  - the note text has one extension line, "time <ISO 8601 UTC with ms>", the appliance's clock
//    when it signed (tlog-checkpoint §"Note text" item 4 allows extension lines; the time is
//    signed with the rest, and the TSA token gives the independent time);
//  - signature types are 0xFF ("no identifier byte assigned", signed-note §"Signature types")
//    followed by the TLS SignatureScheme name of the algorithm: sm2sig_sm3 (RFC 8998 §3.2.1:
//    SM3, ID 1234567812345678), ecdsa_secp256r1_sha256 / ecdsa_secp384r1_sha384 (RFC 8446
//    §4.2.3, DER signature), rsa_pkcs1_sha256 — the key ID is signed-note's recommended one:
//    SHA-256(key name ‖ 0x0A ‖ 0xFF ‖ scheme name ‖ SPKI DER)[:4].
//
// Verification is pure (no store, no appliance): verifyCheckpoint, verifyCheckpointToken.
import { createHash } from 'node:crypto';
import { parseSignedData } from '../asn1/cms-signed-data.js';
import { OID_CT_TSTINFO } from '../asn1/tsp.js';
import type { KeyAlgorithm, Signer } from '../crypto/interfaces.js';
import { OID } from '../crypto/oids.js';
import { keyAlgorithmOfSpki, verifySignature } from '../crypto/verify.js';
import { YiqianError } from '../errors.js';
import { checkSignatureTimestamp, readTstInfo, type TimestampCheck, type TimestampTrust } from '../signing/timestamp-check.js';

export const CheckpointCodes = {
  /** A field given to build a checkpoint is not acceptable (400). */
  CHECKPOINT_FIELD_INVALID: 'CHECKPOINT_FIELD_INVALID',
  /** The text is not a checkpoint of this format (400). */
  CHECKPOINT_MALFORMED: 'CHECKPOINT_MALFORMED',
} as const;

export interface Checkpoint {
  /** Log identity, e.g. "yiqian.example-hospital.cn/evidence"; also the default key name. */
  origin: string;
  treeSize: number;
  /** MTH of the first treeSize leaves (SM3 tree), 32 bytes. */
  rootHash: Buffer;
  /** ISO 8601 UTC with milliseconds. */
  time: string;
}

export interface SignedCheckpoint {
  checkpoint: Checkpoint;
  /** The note text: what is signed and what the TSA imprint covers. */
  body: string;
  /** The whole signed note (body, blank line, signature line). */
  note: string;
  keyName: string;
  keyId: number;
}

/** A key a verifier trusts: its name in the signature line and its public key. */
export interface CheckpointKey {
  name: string;
  /** SubjectPublicKeyInfo, DER. */
  publicKeyInfo: Buffer;
}

export type CheckpointVerdict =
  | { valid: true; checkpoint: Checkpoint; body: string; signedBy: string[] }
  | { valid: false; reason: string };

const SCHEMES: Record<KeyAlgorithm, string> = {
  sm2: 'sm2sig_sm3',
  'ecdsa-p256': 'ecdsa_secp256r1_sha256',
  'ecdsa-p384': 'ecdsa_secp384r1_sha384',
  'rsa-2048': 'rsa_pkcs1_sha256',
  'rsa-3072': 'rsa_pkcs1_sha256',
  'rsa-4096': 'rsa_pkcs1_sha256',
};

const EM_DASH_SPACE = '\u2014 ';
const MAX_NOTE_BYTES = 1 << 20;
/** signed-note: verifiers MUST accept at least 16 signatures; Go's note package caps at 100. */
const MAX_SIGNATURES = 100;
const ROOT_BYTES = 32;
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const DECIMAL = /^(0|[1-9][0-9]{0,15})$/;

/** Key names / origins: non-empty, no Unicode space, no '+', no control characters (signed-note §Format). */
function isKeyName(s: unknown): s is string {
  return typeof s === 'string' && s.length > 0 && s.length <= 255 && !/[\s+\u007f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/u.test(s) && !hasControl(s, false) && wellFormed(s);
}

/** ASCII control characters (below U+0020), newline allowed or not (signed-note §Format). */
function hasControl(s: string, newlineAllowed: boolean): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 && !(newlineAllowed && c === 0x0a)) return true;
  }
  return false;
}

/** No lone UTF-16 surrogates, i.e. the text has a UTF-8 encoding (String#isWellFormed is ES2024). */
function wellFormed(s: string): boolean {
  return !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

function fieldInvalid(field: string, en: string, zh: string): never {
  throw new YiqianError(CheckpointCodes.CHECKPOINT_FIELD_INVALID, 400, { zh: `检查点字段 ${field} 无效：${zh}`, en: `checkpoint ${field} is invalid: ${en}` }, { field });
}

/** The tlog-checkpoint note text: origin, size, base64 root, time extension line, each ending in \n. */
export function checkpointBody(cp: Checkpoint): string {
  if (!isKeyName(cp.origin)) fieldInvalid('origin', 'must be 1–255 characters without spaces, "+" or control characters', '须为 1–255 个字符，不含空白、"+" 或控制字符');
  if (typeof cp.treeSize !== 'number' || !Number.isSafeInteger(cp.treeSize) || cp.treeSize < 0) fieldInvalid('treeSize', 'must be a non-negative integer', '须为非负整数');
  if (!Buffer.isBuffer(cp.rootHash) || cp.rootHash.length !== ROOT_BYTES) fieldInvalid('rootHash', `must be ${ROOT_BYTES} bytes`, `须为 ${ROOT_BYTES} 字节`);
  if (typeof cp.time !== 'string' || !ISO_MS.test(cp.time) || Number.isNaN(Date.parse(cp.time)) || new Date(cp.time).toISOString() !== cp.time) {
    fieldInvalid('time', 'must be ISO 8601 UTC with milliseconds', '须为带毫秒的 ISO 8601 UTC 时间');
  }
  return `${cp.origin}\n${cp.treeSize}\n${cp.rootHash.toString('base64')}\ntime ${cp.time}\n`;
}

/** Reads a checkpoint body written by checkpointBody; CHECKPOINT_MALFORMED for anything else. */
export function parseCheckpointBody(body: string): Checkpoint {
  const malformed = (en: string): never => {
    throw new YiqianError(CheckpointCodes.CHECKPOINT_MALFORMED, 400, { zh: '检查点格式错误', en: `malformed checkpoint: ${en}` });
  };
  if (typeof body !== 'string' || !body.endsWith('\n')) malformed('the text must end with a newline');
  const lines = body.slice(0, -1).split('\n');
  if (lines.length !== 4) malformed(`expected 4 lines (origin, size, root, time), found ${lines.length}`);
  const [origin, size, root, timeLine] = lines;
  if (!isKeyName(origin)) malformed('bad origin line');
  if (!DECIMAL.test(size) || !Number.isSafeInteger(Number(size))) malformed('the tree size must be decimal without leading zeros');
  const rootHash = Buffer.from(root, 'base64');
  if (rootHash.length !== ROOT_BYTES || rootHash.toString('base64') !== root) malformed(`the root hash must be the canonical base64 of ${ROOT_BYTES} bytes`);
  if (!timeLine.startsWith('time ')) malformed('the fourth line must be "time <ISO 8601>"');
  const time = timeLine.slice(5);
  if (!ISO_MS.test(time) || Number.isNaN(Date.parse(time)) || new Date(time).toISOString() !== time) malformed('the time must be ISO 8601 UTC with milliseconds');
  return { origin, treeSize: Number(size), rootHash, time };
}

/** signed-note key ID for this key name and key (big-endian uint32). */
export function checkpointKeyId(name: string, publicKeyInfo: Buffer): number {
  const scheme = SCHEMES[keyAlgorithmOfSpki(publicKeyInfo)];
  const h = createHash('sha256').update(name, 'utf8').update(Buffer.from([0x0a, 0xff])).update(scheme, 'latin1').update(publicKeyInfo).digest();
  return h.readUInt32BE(0);
}

/** Signs the checkpoint as a signed note; `keyName` defaults to the origin (tlog-checkpoint §Signatures). */
export async function signCheckpoint(cp: Checkpoint, signer: Signer, keyName: string = cp.origin): Promise<SignedCheckpoint> {
  const body = checkpointBody(cp);
  if (!isKeyName(keyName)) fieldInvalid('keyName', 'must be 1–255 characters without spaces, "+" or control characters', '须为 1–255 个字符，不含空白、"+" 或控制字符');
  const keyId = checkpointKeyId(keyName, signer.publicKeyInfo);
  // Default options: SM2 with SM3 and ID 1234567812345678, ECDSA with the curve's hash, RSA PKCS#1 v1.5 SHA-256.
  const signature = await signer.sign(Buffer.from(body, 'utf8'));
  const id = Buffer.alloc(4);
  id.writeUInt32BE(keyId);
  const note = `${body}\n${EM_DASH_SPACE}${keyName} ${Buffer.concat([id, signature]).toString('base64')}\n`;
  return { checkpoint: parseCheckpointBody(body), body, note, keyName, keyId };
}

/** The body (note text) of a signed note: up to and including the newline before the last blank line. */
export function noteBody(note: string): string | undefined {
  if (typeof note !== 'string') return undefined;
  const split = note.lastIndexOf('\n\n');
  return split < 0 ? undefined : note.slice(0, split + 1);
}

/**
 * Verifies a signed checkpoint note against trusted keys, by the signed-note rules: signatures
 * of unknown keys (name and key ID) are ignored; a signature of a known key that fails rejects
 * the whole note; at least one must verify. Then the text must be a checkpoint of this format
 * (and of `expectOrigin`, when given). Never throws: every problem is a reason.
 */
export async function verifyCheckpoint(note: unknown, keys: readonly CheckpointKey[], expectOrigin?: string): Promise<CheckpointVerdict> {
  const invalid = (reason: string): CheckpointVerdict => ({ valid: false, reason });
  try {
    if (typeof note !== 'string') return invalid('the note is not text');
    if (Buffer.byteLength(note, 'utf8') > MAX_NOTE_BYTES) return invalid('the note is too large');
    if (!wellFormed(note)) return invalid('the note is not valid UTF-8 text');
    if (hasControl(note, true)) return invalid('the note contains control characters other than newline');
    const body = noteBody(note);
    if (body === undefined || body.length === 0) return invalid('no blank line separates the text from its signatures');
    const sigText = note.slice(body.length + 1);
    if (!sigText.endsWith('\n')) return invalid('the signature block must end with a newline');
    const sigLines = sigText.slice(0, -1).split('\n');
    if (sigLines.length > MAX_SIGNATURES) return invalid(`more than ${MAX_SIGNATURES} signatures`);

    // Trusted keys by name and key ID.
    const known = new Map<string, { key: CheckpointKey; algorithm: KeyAlgorithm }>();
    for (const key of keys) {
      if (!isKeyName(key.name)) continue;
      let algorithm: KeyAlgorithm;
      try {
        algorithm = keyAlgorithmOfSpki(key.publicKeyInfo);
      } catch {
        continue;
      }
      known.set(`${key.name} ${checkpointKeyId(key.name, key.publicKeyInfo)}`, { key, algorithm });
    }

    const data = Buffer.from(body, 'utf8');
    const signedBy: string[] = [];
    for (const line of sigLines) {
      if (!line.startsWith(EM_DASH_SPACE)) return invalid('a signature line does not start with an em dash and a space');
      const parts = line.slice(EM_DASH_SPACE.length).split(' ');
      if (parts.length !== 2 || !isKeyName(parts[0])) return invalid('malformed signature line');
      const [name, b64] = parts;
      const raw = Buffer.from(b64, 'base64');
      if (raw.length < 5 || raw.toString('base64') !== b64) return invalid('a signature is not canonical base64 of a key ID and a signature');
      const k = known.get(`${name} ${raw.readUInt32BE(0)}`);
      if (k === undefined) continue; // unknown key: ignored (signed-note §Signatures)
      let ok = false;
      try {
        ok = await verifySignature(k.algorithm, k.key.publicKeyInfo, data, raw.subarray(4));
      } catch {
        ok = false;
      }
      if (!ok) return invalid(`the signature of ${name} does not verify`);
      if (!signedBy.includes(name)) signedBy.push(name);
    }
    if (signedBy.length === 0) return invalid('no signature from a trusted key');

    let checkpoint: Checkpoint;
    try {
      checkpoint = parseCheckpointBody(body);
    } catch (e) {
      return invalid(e instanceof YiqianError ? e.text.en : 'malformed checkpoint');
    }
    if (expectOrigin !== undefined && checkpoint.origin !== expectOrigin) return invalid(`the checkpoint is of origin ${checkpoint.origin}, not ${expectOrigin}`);
    return { valid: true, checkpoint, body, signedBy };
  } catch (e) {
    return invalid(`unverifiable note: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** What to ask the TSA for (TsaService.stamp('sm3', hashedMessage, …)): SM3 of the checkpoint body. */
export function checkpointImprint(body: string): { hash: 'sm3'; hashedMessage: Buffer } {
  if (typeof body !== 'string' || body.length === 0) {
    throw new YiqianError(CheckpointCodes.CHECKPOINT_MALFORMED, 400, { zh: '检查点正文为空', en: 'malformed checkpoint: empty body' });
  }
  return { hash: 'sm3', hashedMessage: createHash('sm3').update(body, 'utf8').digest() };
}

/**
 * Checks an RFC 3161 token (DER ContentInfo) as the time-stamp of a checkpoint body: the token
 * verifies and chains to `trust` at its genTime (signing/timestamp-check.ts), and its
 * messageImprint is SM3 over exactly `body`. Never throws.
 */
export async function verifyCheckpointToken(token: Buffer, body: string, trust: TimestampTrust): Promise<TimestampCheck> {
  try {
    const sd = parseSignedData(token);
    if (sd.eContentType !== OID_CT_TSTINFO || !sd.content) return { ok: false, imprintOk: null, reason: 'not a time-stamp token' };
    const tst = readTstInfo(sd.content);
    if (tst.hashAlgorithm !== OID.sm3) {
      return { ok: false, imprintOk: false, imprintReason: `the imprint is ${tst.hashAlgorithm}, not SM3`, reason: 'checkpoint tokens carry an SM3 imprint', genTime: tst.genTime, serial: tst.serial };
    }
  } catch (e) {
    return { ok: false, imprintOk: null, reason: `malformed time-stamp token: ${e instanceof Error ? e.message : String(e)}` };
  }
  // The imprint check of a signature time-stamp is hash(value) = hashedMessage; the value here is the body.
  const check = await checkSignatureTimestamp(token, Buffer.from(body, 'utf8'), trust);
  if (check.imprintOk !== false) return check;
  const imprintReason = 'the time-stamp imprint is not SM3 of this checkpoint';
  // checkSignatureTimestamp reports the imprint last, after signature and path: keep theirs if they failed.
  return { ...check, imprintReason, reason: check.reason === check.imprintReason ? imprintReason : check.reason };
}
