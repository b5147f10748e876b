// The bytes a record contributes to the Merkle log: what the log commits to, recomputable by the
// offline verifier (ops/verify-evidence) from a proof bundle without the appliance. Pure code:
// no store, no keys.
//
// leafData = UTF-8 of canonical JSON (keys sorted, no whitespace, RFC 8785-style for the plain
// strings and integers used here) of:
//   { v: 1, id, kind, project, appId, receivedAt, contentDigest: {algorithm, value},
//     signatureSm3?   SM3 of the signature bytes (CMS DER or raw value),
//     certificateSm3? SM3 of the signer certificate DER (when the app sent one),
//     timestampSm3?   SM3 of the RFC 3161 token DER (when the app sent one),
//     metadata: {system?, departmentId?, patientIdIndex?, businessSerial?, documentType?} }
// Tier, retention, verdict and the leaf position are not in it: they may change or follow from it.
import { digest } from '../crypto/hash.js';
import type { EvidenceRecord } from './types.js';

export const LEAF_VERSION = 1;

function sm3Hex(b64: string): string {
  return digest('sm3', Buffer.from(b64, 'base64')).toString('hex');
}

/** JSON with object keys sorted at every level; undefined members dropped. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
    .join(',')}}`;
}

export type LeafFields = Pick<EvidenceRecord, 'id' | 'kind' | 'project' | 'appId' | 'receivedAt' | 'contentDigest' | 'signature' | 'system' | 'departmentId' | 'patientIdIndex' | 'businessSerial' | 'documentType'>;

export function leafObject(r: LeafFields): Record<string, unknown> {
  return {
    v: LEAF_VERSION,
    id: r.id,
    kind: r.kind,
    project: r.project,
    appId: r.appId,
    receivedAt: r.receivedAt,
    contentDigest: { algorithm: r.contentDigest.algorithm, value: r.contentDigest.value },
    signatureSm3: r.signature ? sm3Hex(r.signature.value) : undefined,
    certificateSm3: r.signature?.certificate ? sm3Hex(r.signature.certificate) : undefined,
    timestampSm3: r.signature?.timestampToken ? sm3Hex(r.signature.timestampToken) : undefined,
    metadata: {
      system: r.system,
      departmentId: r.departmentId,
      patientIdIndex: r.patientIdIndex,
      businessSerial: r.businessSerial,
      documentType: r.documentType,
    },
  };
}

/** The leaf bytes of a record (the Merkle leaf hash is SM3(0x00 ‖ these), RFC 9162 §2.1.1). */
export function leafData(r: LeafFields): Buffer {
  return Buffer.from(canonicalJson(leafObject(r)), 'utf8');
}
