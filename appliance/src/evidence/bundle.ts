// The proof bundle of an evidence record (issue 6 item 4): one versioned JSON document that
// carries everything needed to check a record offline, years later, without the appliance — and
// its verifier. Pure: no store, no keys, no network (the offline verifier ops/verify-evidence
// runs exactly this code).
//
// What a bundle proves, and how (each is one "part" of the check, in this order):
//   original            the original (in the bundle or given beside it) hashes to the record's contentDigest;
//   signature           the CMS (RFC 5652 / GB/T 35275) or raw signature verifies with the signer
//                       certificate over the original, or over the digest when only that exists;
//   certificate         the signer certificate chains to the bundle's trust anchors (RFC 5280 §6.1)
//                       at the judging time: the signature time-stamp's genTime when there is a
//                       valid one, else the record's receivedAt (committed to in the leaf and
//                       anchored by the checkpoint token, so it cannot be moved later);
//   timestamp           the signature time-stamp (RFC 3161 App. A imprint over the signature value),
//                       its TSA signature and TSA path at genTime;
//   leaf                SM3(0x00 ‖ leafData(record)) (leaf.ts, RFC 9162 §2.1.1) is the bundle's leaf hash;
//   checkpoint          the C2SP signed note verifies with the checkpoint signer certificate, whose
//                       path to the anchors is valid at the checkpoint token's genTime;
//   checkpointTimestamp the RFC 3161 token over SM3(note body) (checkpoint.ts), TSA signature and
//                       path; the record was received no later than the token's genTime;
//   inclusion           the RFC 9162 §2.1.3.2 inclusion proof leads from the leaf to the SIGNED root.
// The trust anchors travel in the bundle for convenience; an examiner compares their
// fingerprints (printed by the verifier) with the hospital's published roots, or passes their
// own (`--trust`). The stored verification report is carried for the record and for the PDF
// report; the verifier re-checks instead of believing it.
import { createHash } from 'node:crypto';
import { readCertificate } from '../asn1/certificate.js';
import { OID_SIGNATURE_TIME_STAMP_TOKEN, parseSignedData, type ParsedSignedData } from '../asn1/cms-signed-data.js';
import { OID_MESSAGE_DIGEST } from '../asn1/tsp.js';
import { Tag } from '../crypto/der.js';
import { digest } from '../crypto/hash.js';
import type { HashAlgorithm, KeyAlgorithm, SignOptions } from '../crypto/interfaces.js';
import { OID } from '../crypto/oids.js';
import { keyAlgorithmOfSpki, verifySignature } from '../crypto/verify.js';
import { YiqianError } from '../errors.js';
import { validatePath } from '../pki/path-validation.js';
import { verifyCms } from '../signing/cms-verify.js';
import { checkSignatureTimestamp, type TimestampCheck } from '../signing/timestamp-check.js';
import type { VerificationReport } from '../signing/types.js';
import { noteBody, parseCheckpointBody, verifyCheckpoint, verifyCheckpointToken } from './checkpoint.js';
import { leafData, type LeafFields } from './leaf.js';
import { merkleHasher, verifyInclusion } from './merkle.js';
import type { EvidenceRecord, StoredCheckpoint, Tier } from './types.js';

export const BUNDLE_FORMAT = 'yiqian-evidence-bundle';
export const BUNDLE_VERSION = 1;
/** Originals up to this size may be embedded (larger ones are given beside the bundle: --original). */
export const MAX_EMBEDDED_ORIGINAL = 4 * 1024 * 1024;

export const BundleCodes = {
  /** Not a proof bundle of a version this code reads (400). */
  BUNDLE_MALFORMED: 'BUNDLE_MALFORMED',
} as const;

/** The record as the bundle carries it: the leaf fields plus what is shown but not committed to. */
export type BundleRecord = LeafFields & { tier?: Tier; retainUntil?: string; patientIdMasked?: string };

export interface EvidenceBundle {
  format: typeof BUNDLE_FORMAT;
  version: typeof BUNDLE_VERSION;
  /** When the appliance made the bundle (ISO 8601 UTC). */
  createdAt: string;
  record: BundleRecord;
  /** Position and SM3 hash (hex) of the record's leaf. */
  leaf: { index: number; hash: string };
  /** The original: size and type, and its bytes (base64) when embedded. */
  original?: { bytes: number; mediaType?: string; data?: string };
  /** The verdict the appliance reached at ingestion (informative: the verifier re-checks). */
  verification?: VerificationReport;
  /** RFC 9162 §2.1.3 inclusion proof of leaf.index in the tree of checkpoint.treeSize; base64 nodes. */
  proof: { hash: 'sm3'; treeSize: number; path: string[] };
  checkpoint: StoredCheckpoint;
  /** Trust anchors (self-signed roots, base64 DER) for the signer, the TSA and the checkpoint signer. */
  trustAnchors: string[];
  /** CA certificates (not trusted: path material only, base64 DER), e.g. the issuing CAs of the TSA tokens. */
  intermediates: string[];
}

export interface BundleInput {
  record: EvidenceRecord;
  /** The original, when the caller wants it embedded (refused past MAX_EMBEDDED_ORIGINAL). */
  original?: Buffer;
  proof: Buffer[];
  checkpoint: StoredCheckpoint;
  anchors: Buffer[];
  intermediates: Buffer[];
  now?: Date;
}

function malformed(en: string, zh: string): never {
  throw new YiqianError(BundleCodes.BUNDLE_MALFORMED, 400, { zh: `证据包格式错误：${zh}`, en: `malformed proof bundle: ${en}` });
}

/** Assembles a bundle from what the store holds (pure: the caller read it). */
export function buildBundle(input: BundleInput): EvidenceBundle {
  const r = input.record;
  if (input.checkpoint.treeSize <= r.leafIndex) malformed('the checkpoint does not cover the record', '检查点未覆盖该记录');
  if (input.original && input.original.length > MAX_EMBEDDED_ORIGINAL) malformed(`an embedded original is at most ${MAX_EMBEDDED_ORIGINAL} bytes`, `内嵌原文不得超过 ${MAX_EMBEDDED_ORIGINAL} 字节`);
  const record: BundleRecord = {
    id: r.id,
    kind: r.kind,
    project: r.project,
    appId: r.appId,
    receivedAt: r.receivedAt,
    contentDigest: { ...r.contentDigest },
    ...(r.signature ? { signature: { ...r.signature, ...(r.signature.chain ? { chain: [...r.signature.chain] } : {}) } } : {}),
    system: r.system,
    departmentId: r.departmentId,
    patientIdIndex: r.patientIdIndex,
    patientIdMasked: r.patientIdMasked,
    businessSerial: r.businessSerial,
    documentType: r.documentType,
    tier: r.tier,
    retainUntil: r.retainUntil,
  };
  for (const k of Object.keys(record) as (keyof BundleRecord)[]) if (record[k] === undefined) delete record[k];
  const original = r.original || input.original ? { bytes: r.original?.bytes ?? input.original!.length, ...(r.original?.mediaType ? { mediaType: r.original.mediaType } : {}), ...(input.original ? { data: input.original.toString('base64') } : {}) } : undefined;
  return {
    format: BUNDLE_FORMAT,
    version: BUNDLE_VERSION,
    createdAt: (input.now ?? new Date()).toISOString(),
    record,
    leaf: { index: r.leafIndex, hash: r.leafHash },
    ...(original ? { original } : {}),
    ...(r.verification ? { verification: r.verification } : {}),
    proof: { hash: 'sm3', treeSize: input.checkpoint.treeSize, path: input.proof.map((p) => p.toString('base64')) },
    checkpoint: { ...input.checkpoint, signerChain: [...input.checkpoint.signerChain] },
    trustAnchors: input.anchors.map((a) => a.toString('base64')),
    intermediates: input.intermediates.map((a) => a.toString('base64')),
  };
}

// ---- verification ------------------------------------------------------------------------

export type BundlePart = 'bundle' | 'original' | 'signature' | 'certificate' | 'timestamp' | 'leaf' | 'checkpoint' | 'checkpointTimestamp' | 'inclusion';

export const PART_LABELS: Record<BundlePart, { zh: string; en: string }> = {
  bundle: { zh: '证据包结构', en: 'bundle structure' },
  original: { zh: '原文摘要', en: 'original digest' },
  signature: { zh: '签名值', en: 'signature' },
  certificate: { zh: '签名证书及证书链', en: 'signer certificate and path' },
  timestamp: { zh: '签名时间戳', en: 'signature time-stamp' },
  leaf: { zh: '默克尔叶子', en: 'Merkle leaf' },
  checkpoint: { zh: '检查点签名', en: 'checkpoint signature' },
  checkpointTimestamp: { zh: '检查点时间戳', en: 'checkpoint time-stamp' },
  inclusion: { zh: '存在性证明', en: 'inclusion proof' },
};

export interface BundleCheck {
  part: BundlePart;
  /** null: not applicable to this record (e.g. no signature on a digest record). */
  ok: boolean | null;
  zh: string;
  en: string;
  /** Why it failed or why it does not apply (English, technical). */
  reason?: string;
}

export interface BundleVerdict {
  ok: boolean;
  checks: BundleCheck[];
  firstFailure?: BundleCheck;
  /** SHA-256 fingerprints (hex) of the anchors the checks were made against. */
  anchorFingerprints: string[];
  /** The time the signer certificate was judged at, and why. */
  judgedAt?: string;
  judgedAtSource?: 'timestamp' | 'receivedAt';
}

export interface VerifyBundleOptions {
  /** The original, when the bundle does not embed it. */
  original?: Buffer;
  /** Use these trust anchors instead of the bundle's own. */
  anchors?: Buffer[];
}

const b64 = (s: unknown, what: string): Buffer => {
  if (typeof s !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) malformed(`${what} is not base64`, `${what} 不是 base64`);
  return Buffer.from(s, 'base64');
};

const DIGEST_ALGS: readonly HashAlgorithm[] = ['sm3', 'sha256', 'sha384', 'sha512'];

/** Checks the outer shape; throws BUNDLE_MALFORMED with the first problem. */
export function parseBundle(v: unknown): EvidenceBundle {
  const o = v as Partial<EvidenceBundle> | null;
  if (typeof o !== 'object' || o === null) malformed('not a JSON object', '不是 JSON 对象');
  if (o.format !== BUNDLE_FORMAT) malformed(`format is not ${BUNDLE_FORMAT}`, `format 不是 ${BUNDLE_FORMAT}`);
  if (o.version !== BUNDLE_VERSION) malformed(`version ${String(o.version)} is not supported (this verifier reads ${BUNDLE_VERSION})`, `不支持版本 ${String(o.version)}`);
  const r = o.record;
  if (typeof r !== 'object' || r === null || typeof r.id !== 'string' || typeof r.receivedAt !== 'string') malformed('record missing', '缺少记录');
  if (typeof r.contentDigest !== 'object' || r.contentDigest === null || !DIGEST_ALGS.includes(r.contentDigest.algorithm) || !/^[0-9a-f]+$/.test(r.contentDigest.value)) {
    malformed('record.contentDigest must be {algorithm, lower-case hex value}', 'record.contentDigest 格式错误');
  }
  if (Number.isNaN(Date.parse(r.receivedAt))) malformed('record.receivedAt is not a time', 'record.receivedAt 不是时间');
  if (typeof o.leaf !== 'object' || o.leaf === null || !Number.isSafeInteger(o.leaf.index) || o.leaf.index < 0 || typeof o.leaf.hash !== 'string') malformed('leaf must be {index, hash}', 'leaf 格式错误');
  if (typeof o.proof !== 'object' || o.proof === null || o.proof.hash !== 'sm3' || !Number.isSafeInteger(o.proof.treeSize) || !Array.isArray(o.proof.path)) malformed('proof must be {hash: sm3, treeSize, path[]}', 'proof 格式错误');
  const cp = o.checkpoint;
  if (typeof cp !== 'object' || cp === null || typeof cp.note !== 'string' || typeof cp.signerCertificate !== 'string' || typeof cp.timestampToken !== 'string' || !Array.isArray(cp.signerChain)) {
    malformed('checkpoint must carry note, signerCertificate, signerChain, timestampToken', 'checkpoint 格式错误');
  }
  if (!Array.isArray(o.trustAnchors) || !Array.isArray(o.intermediates)) malformed('trustAnchors and intermediates must be arrays', 'trustAnchors 与 intermediates 必须是数组');
  if (r.signature !== undefined && (typeof r.signature !== 'object' || r.signature === null || (r.signature.format !== 'cms' && r.signature.format !== 'raw') || typeof r.signature.value !== 'string')) {
    malformed('record.signature must be {format: cms|raw, value}', 'record.signature 格式错误');
  }
  return o as EvidenceBundle;
}

/** Raw signature algorithm names of the signing API → verify options (signing/sign-service.ts names them). */
function rawOptions(name: string | undefined, key: KeyAlgorithm): SignOptions | undefined {
  if (name === undefined) return {};
  const m = /^(SM2-SM3|ECDSA-(SHA256|SHA384|SHA512)|RSA-(PKCS1|PSS)-(SHA256|SHA384|SHA512))$/.exec(name);
  if (!m) return undefined;
  if (m[1] === 'SM2-SM3') return key === 'sm2' ? {} : undefined;
  if (m[2]) return key.startsWith('ecdsa') ? { hash: m[2].toLowerCase() as HashAlgorithm } : undefined;
  return key.startsWith('rsa') ? { hash: m[4].toLowerCase() as HashAlgorithm, rsaPadding: m[3] === 'PSS' ? 'pss' : 'pkcs1' } : undefined;
}

const DIGEST_OIDS = new Map<string, HashAlgorithm>([
  [OID.sm3, 'sm3'],
  [OID.sha256, 'sha256'],
  [OID.sha384, 'sha384'],
  [OID.sha512, 'sha512'],
]);

function message(e: unknown): string {
  return e instanceof YiqianError ? e.text.en : e instanceof Error ? e.message : String(e);
}

class Checks {
  readonly list: BundleCheck[] = [];
  add(part: BundlePart, ok: boolean | null, zh: string, en: string, reason?: string): boolean {
    this.list.push({ part, ok, zh, en, ...(reason !== undefined && ok !== true ? { reason } : {}) });
    return ok !== false;
  }
}

/** Keys named in a signed note's signature lines (signed-note: "— <name> <base64>"). */
function noteKeyNames(note: string): string[] {
  const body = noteBody(note);
  if (body === undefined) return [];
  const names = new Set<string>();
  for (const line of note.slice(body.length + 1).split('\n')) {
    const m = /^\u2014 (\S+) \S+$/.exec(line);
    if (m) names.add(m[1]);
  }
  return [...names];
}

/**
 * Checks a bundle end to end (see the top of this file). Never throws: a bundle that cannot be
 * read is a failed 'bundle' check. Every check runs, so the report shows all failures; the
 * first failure names the part that broke.
 */
export async function verifyBundle(input: unknown, opts: VerifyBundleOptions = {}): Promise<BundleVerdict> {
  const c = new Checks();
  const verdict = (extra: Partial<BundleVerdict> = {}): BundleVerdict => {
    const firstFailure = c.list.find((x) => x.ok === false);
    return { ok: firstFailure === undefined, checks: c.list, ...(firstFailure ? { firstFailure } : {}), anchorFingerprints: [], ...extra };
  };
  let bundle: EvidenceBundle;
  let anchors: Buffer[];
  let intermediates: Buffer[];
  try {
    bundle = parseBundle(input);
    anchors = opts.anchors ?? bundle.trustAnchors.map((a, i) => b64(a, `trustAnchors[${i}]`));
    intermediates = bundle.intermediates.map((a, i) => b64(a, `intermediates[${i}]`));
  } catch (e) {
    c.add('bundle', false, '证据包无法读取', 'the bundle cannot be read', message(e));
    return verdict();
  }
  const anchorFingerprints = anchors.map((a) => createHash('sha256').update(a).digest('hex'));
  c.add('bundle', true, `证据包格式 v${bundle.version}，记录 ${bundle.record.id}`, `bundle format v${bundle.version}, record ${bundle.record.id}`);
  try {
    return await verifyParts(bundle, { anchors, intermediates }, opts, c, (extra) => verdict({ anchorFingerprints, ...extra }));
  } catch (e) {
    // Defensive: an unexpected failure is a failed check, never an exception.
    c.add('bundle', false, '证据包检查意外中止', 'the check stopped unexpectedly', message(e));
    return verdict({ anchorFingerprints });
  }
}

async function verifyParts(bundle: EvidenceBundle, trust: { anchors: Buffer[]; intermediates: Buffer[] }, opts: VerifyBundleOptions, c: Checks, done: (extra?: Partial<BundleVerdict>) => BundleVerdict): Promise<BundleVerdict> {
  const { anchors, intermediates } = trust;
  const r = bundle.record;
  const sig = r.signature;
  const want = r.contentDigest;
  const receivedAt = new Date(r.receivedAt);

  // ---- original --------------------------------------------------------------------------
  let cms: ParsedSignedData | undefined;
  let cmsBytes: Buffer | undefined;
  if (sig?.format === 'cms') {
    cmsBytes = b64(sig.value, 'record.signature.value');
    try {
      cms = parseSignedData(cmsBytes);
    } catch {
      cms = undefined; // reported by the signature check
    }
  }
  const original = opts.original ?? (bundle.original?.data !== undefined ? b64(bundle.original.data, 'original.data') : cms?.content);
  if (original === undefined) {
    c.add('original', null, '原文未随附：以记录中的原文摘要为准', 'no original given: the record\'s digest stands for it', 'pass the original with --original to check it');
  } else {
    const got = digest(want.algorithm, original).toString('hex');
    c.add('original', got === want.value, `原文的 ${want.algorithm.toUpperCase()} 摘要与记录中的摘要比对`, `the original's ${want.algorithm} digest against the record's`, `the original hashes to ${got}, the record says ${want.value}`);
  }

  // ---- signature, certificate, timestamp ---------------------------------------------------
  let judgedAt = receivedAt;
  let judgedAtSource: BundleVerdict['judgedAtSource'] = 'receivedAt';
  if (!sig) {
    for (const part of ['signature', 'certificate', 'timestamp'] as const) c.add(part, null, '摘要/文件存证，无签名', 'digest or file record: no signature', 'the record carries no signature');
  } else {
    const sigValue = b64(sig.value, 'record.signature.value');
    const stated = sig.certificate !== undefined ? b64(sig.certificate, 'record.signature.certificate') : undefined;
    const chain = (sig.chain ?? []).map((x, i) => b64(x, `record.signature.chain[${i}]`));
    let certificate: Buffer | undefined;
    let signatureValue: Buffer | undefined;
    let token: Buffer | undefined = sig.timestampToken !== undefined ? b64(sig.timestampToken, 'record.signature.timestampToken') : undefined;

    if (sig.format === 'cms') {
      const res = await verifyCms(sigValue, original !== undefined && !cms?.content ? { content: original } : {});
      certificate = res.certificate;
      const si = cms?.signerInfos[0];
      signatureValue = si?.signature;
      const failed = res.checks.filter((x) => !x.ok && !(original === undefined && x.name === 'contentIntact'));
      let reason = failed.map((x) => `${x.name}: ${x.reason ?? 'failed'}`).join('; ');
      let ok = res.checks.length > 0 && failed.length === 0;
      if (ok && original === undefined && si) {
        // Detached and no original: the signed messageDigest must be the record's digest.
        const md = si.signedAttrs.find((a) => a.type === OID_MESSAGE_DIGEST)?.values[0];
        const alg = DIGEST_OIDS.get(si.digestAlgorithm.oid);
        if (alg !== want.algorithm || md?.tag !== Tag.OCTET_STRING || md.value.toString('hex') !== want.value) {
          ok = false;
          reason = alg !== want.algorithm ? `the CMS digests with ${alg ?? si.digestAlgorithm.oid}, the record with ${want.algorithm}: pass the original with --original` : 'the signed messageDigest is not the record\'s digest';
        }
      }
      c.add('signature', ok, `CMS 签名（${res.form ?? '?'}）：签名未改、原文未改`, `CMS signature (${res.form ?? '?'}) over the original`, reason || 'the CMS does not verify');
      if (stated && certificate && !stated.equals(certificate)) {
        c.add('certificate', false, '记录中的签名证书不是 CMS 的签名者证书', 'the stated certificate is not the CMS signer\'s', 'record.signature.certificate differs from the certificate the CMS names');
        certificate = undefined;
      }
      token ??= si?.unsignedAttrs.find((a) => a.type === OID_SIGNATURE_TIME_STAMP_TOKEN)?.values[0]?.raw;
    } else {
      certificate = stated;
      signatureValue = sigValue;
      if (!stated) {
        c.add('signature', false, '裸签名缺少签名证书', 'a raw signature without its certificate', 'record.signature.certificate is missing');
      } else {
        let ok = false;
        let reason = 'the signature does not verify with the certificate key';
        try {
          const spki = readCertificate(stated).publicKeyInfo;
          const key = keyAlgorithmOfSpki(spki);
          const o = rawOptions(sig.algorithm, key);
          if (!o) {
            reason = `algorithm ${String(sig.algorithm)} does not fit the ${key} key`;
          } else if (original !== undefined) {
            ok = await verifySignature(key, spki, original, sigValue, o);
          } else {
            // Only the digest: as the verify API's `digest` (prehashed; for SM2 e = SM3(Z_A ‖ M)).
            ok = await verifySignature(key, spki, Buffer.from(want.value, 'hex'), sigValue, { ...o, prehashed: true });
            if (!ok) reason = 'the signature does not verify over the record digest; a signature over the original needs it: pass it with --original';
          }
        } catch (e) {
          reason = `not verifiable: ${message(e)}`;
        }
        c.add('signature', ok, `裸签名（${sig.algorithm ?? '默认算法'}）以证书公钥验证`, `raw signature (${sig.algorithm ?? 'default algorithm'}) with the certificate key`, reason);
      }
    }

    // timestamp first: its genTime, when valid, is the judging time of the signer certificate.
    let ts: TimestampCheck | undefined;
    if (!token) {
      c.add('timestamp', null, '签名未附时间戳：以接收时间判定证书', 'no signature time-stamp: the certificate is judged at receipt', 'none in the record or the CMS');
    } else if (!signatureValue) {
      c.add('timestamp', false, '无法定位被加盖时间戳的签名值', 'no signature value to match the time-stamp against', 'the signature could not be read');
    } else {
      ts = await checkSignatureTimestamp(token, signatureValue, { anchors, intermediates });
      const when = ts.genTime ? ts.genTime.toISOString() : '?';
      c.add('timestamp', ts.ok, `签名时间戳 ${when}，TSA ${ts.tsa ?? '?'}：TSA 签名、证书链及对签名值的摘要`, `signature time-stamp ${when}, TSA ${ts.tsa ?? '?'}: TSA signature, path and imprint over the signature`, ts.reason);
      if (ts.ok && ts.genTime) {
        judgedAt = ts.genTime;
        judgedAtSource = 'timestamp';
      }
    }

    if (certificate) {
      const extra = cms?.certificates ?? [];
      const path = await validatePath({ leaf: certificate, intermediates: [...chain, ...extra, ...intermediates], trustAnchors: anchors, at: judgedAt });
      const who = path.chain[0]?.subject ?? '?';
      c.add(
        'certificate',
        path.valid,
        `签名证书 ${who} 于 ${judgedAt.toISOString()} 到可信根的证书链（真实身份）`,
        `signer certificate ${who}: path to a trust anchor at ${judgedAt.toISOString()}`,
        `${path.code ?? 'invalid'}: ${path.checks.filter((x) => !x.ok).map((x) => x.reason ?? x.name).join('; ')}`,
      );
    } else if (!c.list.some((x) => x.part === 'certificate')) {
      c.add('certificate', false, '找不到签名证书', 'no signer certificate', 'the signature names no certificate that could be read');
    }
  }

  // ---- leaf ------------------------------------------------------------------------------
  const h = merkleHasher('sm3');
  let leafHash: Buffer | undefined;
  try {
    leafHash = h.leaf(leafData(r));
    c.add('leaf', leafHash.toString('hex') === bundle.leaf.hash, '由记录重新计算叶子哈希并比对', 'leaf hash recomputed from the record', `recomputed ${leafHash.toString('hex')}, the bundle says ${bundle.leaf.hash}`);
  } catch (e) {
    c.add('leaf', false, '无法计算叶子哈希', 'the leaf hash cannot be computed', message(e));
  }

  // ---- checkpoint signature and its signer -------------------------------------------------
  const cp = bundle.checkpoint;
  let signedRoot: Buffer | undefined;
  let signedSize: number | undefined;
  let body: string | undefined;
  const cpToken = b64(cp.timestampToken, 'checkpoint.timestampToken');
  const cpChain = cp.signerChain.map((x, i) => b64(x, `checkpoint.signerChain[${i}]`));
  try {
    const cpCert = b64(cp.signerCertificate, 'checkpoint.signerCertificate');
    const spki = readCertificate(cpCert).publicKeyInfo;
    const v = await verifyCheckpoint(cp.note, noteKeyNames(cp.note).map((name) => ({ name, publicKeyInfo: spki })));
    if (!v.valid) {
      c.add('checkpoint', false, '检查点签名无效', 'the checkpoint signature does not verify', v.reason);
    } else {
      body = v.body;
      signedRoot = v.checkpoint.rootHash;
      signedSize = v.checkpoint.treeSize;
      // The token's genTime (read without trusting it yet) is when the signer's path must hold.
      const tokenTime = (await verifyCheckpointToken(cpToken, v.body, { anchors, intermediates })).genTime;
      const at = tokenTime ?? new Date(v.checkpoint.time);
      const path = await validatePath({ leaf: cpCert, intermediates: [...cpChain, ...intermediates], trustAnchors: anchors, at });
      const same = signedSize === bundle.proof.treeSize;
      c.add(
        'checkpoint',
        path.valid && same,
        `检查点（树大小 ${signedSize}）的签名及签名者 ${path.chain[0]?.subject ?? '?'} 的证书链`,
        `checkpoint (tree size ${signedSize}) signature and the path of its signer ${path.chain[0]?.subject ?? '?'}`,
        !same ? `the note is of tree size ${signedSize}, the proof of ${bundle.proof.treeSize}` : `checkpoint signer path ${path.code ?? 'invalid'}: ${path.checks.filter((x) => !x.ok).map((x) => x.reason ?? x.name).join('; ')}`,
      );
    }
  } catch (e) {
    c.add('checkpoint', false, '检查点无法读取', 'the checkpoint cannot be read', message(e));
  }

  // ---- checkpoint time-stamp -----------------------------------------------------------------
  const tokenBody = body ?? noteBody(cp.note);
  if (tokenBody === undefined) {
    c.add('checkpointTimestamp', false, '检查点正文缺失', 'the checkpoint has no body', 'no blank line in the note');
  } else {
    const t = await verifyCheckpointToken(cpToken, tokenBody, { anchors, intermediates: [...cpChain, ...intermediates] });
    const when = t.genTime?.toISOString() ?? '?';
    c.add('checkpointTimestamp', t.ok, `检查点时间戳 ${when}，TSA ${t.tsa ?? '?'}（摘要数据加固）：TSA 签名、证书链及对检查点正文的 SM3 摘要`, `checkpoint time-stamp ${when}, TSA ${t.tsa ?? '?'}: TSA signature, path and SM3 imprint over the checkpoint`, t.reason);
    if (t.ok && t.genTime) {
      c.add('checkpointTimestamp', receivedAt.getTime() <= t.genTime.getTime(), '记录接收时间不晚于检查点时间戳', 'the record was received no later than the checkpoint time-stamp', `receivedAt ${r.receivedAt} is after the anchor ${when}`);
    }
  }

  // ---- inclusion ------------------------------------------------------------------------------
  if (!leafHash) {
    c.add('inclusion', false, '无叶子哈希，无法验证存在性证明', 'no leaf hash to prove', 'the leaf could not be computed');
  } else {
    let root = signedRoot;
    let size = signedSize;
    if (!root) {
      // Unsigned fallback so a broken note does not hide whether the proof itself holds.
      try {
        const parsed = parseCheckpointBody(noteBody(cp.note) ?? '');
        root = parsed.rootHash;
        size = parsed.treeSize;
      } catch {
        root = undefined;
      }
    }
    const path = bundle.proof.path.map((p, i) => b64(p, `proof.path[${i}]`));
    const index = bundle.leaf.index;
    const ok = root !== undefined && size !== undefined && index < size && verifyInclusion(h, leafHash, index, size, path, root);
    c.add('inclusion', ok, `叶子 ${index} 到检查点（树大小 ${size ?? '?'}）签名根的存在性证明`, `inclusion proof of leaf ${index} to the signed root of tree size ${size ?? '?'}`, root === undefined ? 'no checkpoint root to prove against' : 'the inclusion proof does not lead to the checkpoint root');
  }
  return done({ judgedAt: judgedAt.toISOString(), judgedAtSource });
}
