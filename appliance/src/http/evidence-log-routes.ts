// The evidence Merkle log over HTTP (issue 6 item 3), mounted under /api/v1 behind app
// authentication. Thin: check parameters, read the checkpoint log and the tree, shape hex.
//
//   GET /evidence/log/checkpoints?limit&cursor      newest first; `next` is the cursor of the next page
//   GET /evidence/log/checkpoints/latest
//   GET /evidence/log/checkpoints/:treeSize
//   GET /evidence/records/:id/inclusion?treeSize=   RFC 9162 §2.1.3 inclusion proof of the record's leaf;
//        treeSize: a size ≤ the tree, or "latest" (the latest checkpoint); default: the earliest
//        checkpoint that covers the leaf (its anchoring checkpoint), or — for a record newer than
//        every checkpoint — the tree as it is now, answered with "checkpoint": null
//   GET /evidence/log/consistency?from=&to=          RFC 9162 §2.1.4 consistency proof between two checkpoints
//
// Checkpoints are public facts of the log (every project's records are leaves of the one tree);
// an inclusion proof names a record, so it is answered only for the caller's own project (a
// record of another project is "not found", never "forbidden": ids of other projects are not
// confirmed to exist).
import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import { MerkleCodes } from '../evidence/merkle.js';
import { CheckpointLogCodes } from '../evidence/checkpoint-log.js';
import type { CheckpointLog, EvidenceRecord, StoredCheckpoint } from '../evidence/types.js';
import type { MerkleRepository } from '../store/merkle-repository.js';
import { httpError, internalError } from './problem.js';
import type { HttpState } from './state.js';

type Ctx = ParameterizedContext<HttpState>;

export const EvidenceLogRouteCodes = {
  /** No evidence record with that id in the caller's project (404); the code the records routes use. */
  EVIDENCE_NOT_FOUND: 'EVIDENCE_NOT_FOUND',
  /** A query parameter that is repeated or not of its form (400). */
  EVIDENCE_LOG_PARAM_INVALID: 'EVIDENCE_LOG_PARAM_INVALID',
} as const;

export type LoggedRecord = Pick<EvidenceRecord, 'id' | 'project' | 'leafIndex' | 'leafHash' | 'tier'>;

export interface EvidenceLogRouteDeps {
  checkpoints: CheckpointLog;
  merkle: Pick<MerkleRepository, 'size' | 'root' | 'inclusion' | 'consistency' | 'leafHash'>;
  /** The record (either tier) by id, or undefined. */
  findRecord(id: string): Promise<LoggedRecord | undefined>;
}

function projectOf(ctx: Ctx): string {
  const app = ctx.state.app;
  if (!app) throw internalError(new Error('evidence log routes mounted without app authentication'));
  return app.project;
}

function param(ctx: Ctx, name: string): string | undefined {
  const v = ctx.query[name];
  if (v === undefined) return undefined;
  if (Array.isArray(v)) throw httpError(EvidenceLogRouteCodes.EVIDENCE_LOG_PARAM_INVALID, 400, `查询参数 ${name} 只能出现一次`, `query parameter ${name} may appear only once`, { detail: { parameter: name } });
  return v;
}

/** A tree size as written in a path or query: decimal, no sign, no leading zeros. */
function size(value: string, name: string): number {
  if (!/^(0|[1-9][0-9]{0,15})$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw httpError(MerkleCodes.MERKLE_SIZE_INVALID, 400, `${name} 必须是非负整数`, `${name} must be a non-negative integer`, { detail: { [name]: value.slice(0, 40) } });
  }
  return Number(value);
}

function notFound(treeSize: number | string): never {
  throw httpError(CheckpointLogCodes.CHECKPOINT_NOT_FOUND, 404, `没有树大小为 ${treeSize} 的检查点`, `no checkpoint of tree size ${treeSize}`, { detail: { treeSize } });
}

const hex = (b: Buffer): string => b.toString('hex');

export function evidenceLogRouter(deps: EvidenceLogRouteDeps): Router<HttpState> {
  const r = new Router<HttpState>({ sensitive: true });

  r.get('/evidence/log/checkpoints', async (ctx) => {
    const limit = param(ctx, 'limit');
    const cursor = param(ctx, 'cursor');
    if (limit !== undefined && !/^[1-9][0-9]{0,3}$/.test(limit)) {
      throw httpError(CheckpointLogCodes.CHECKPOINT_PAGE_INVALID, 400, 'limit 必须是正整数', 'limit must be a positive integer', { detail: { limit: limit.slice(0, 20) } });
    }
    const page = await deps.checkpoints.list({ ...(limit !== undefined ? { limit: Number(limit) } : {}), ...(cursor !== undefined ? { cursor } : {}) });
    ctx.body = page;
  });

  r.get('/evidence/log/checkpoints/latest', async (ctx) => {
    const cp = await deps.checkpoints.latest();
    if (!cp) notFound('latest');
    ctx.body = cp;
  });

  r.get('/evidence/log/checkpoints/:treeSize', async (ctx) => {
    const n = size(ctx.params.treeSize, 'treeSize');
    const cp = await deps.checkpoints.get(n);
    if (!cp) notFound(n);
    ctx.body = cp;
  });

  r.get('/evidence/records/:id/inclusion', async (ctx) => {
    const project = projectOf(ctx);
    const id = ctx.params.id;
    const rec = /^[0-9A-HJKMNP-TV-Z]{26}$/.test(id) ? await deps.findRecord(id) : undefined;
    if (!rec || rec.project !== project) {
      throw httpError(EvidenceLogRouteCodes.EVIDENCE_NOT_FOUND, 404, `本项目中没有编号为 ${id.slice(0, 40)} 的存证记录`, `no evidence record ${id.slice(0, 40)} in this project`, { detail: { id: id.slice(0, 40) } });
    }
    const asked = param(ctx, 'treeSize');
    let checkpoint: StoredCheckpoint | undefined;
    let treeSize: number;
    if (asked === undefined) {
      checkpoint = await deps.checkpoints.covering(rec.leafIndex);
      treeSize = checkpoint?.treeSize ?? (await deps.merkle.size());
    } else if (asked === 'latest') {
      checkpoint = await deps.checkpoints.latest();
      if (!checkpoint) notFound('latest');
      treeSize = checkpoint.treeSize;
    } else {
      treeSize = size(asked, 'treeSize');
      checkpoint = await deps.checkpoints.get(treeSize);
    }
    if (treeSize <= rec.leafIndex) {
      throw httpError(MerkleCodes.MERKLE_INDEX_OUT_OF_RANGE, 400, `记录的叶子序号 ${rec.leafIndex} 不在大小为 ${treeSize} 的树中`, `the record's leaf ${rec.leafIndex} is not in a tree of size ${treeSize}`, {
        detail: { leafIndex: rec.leafIndex, treeSize },
      });
    }
    const proof = await deps.merkle.inclusion(rec.leafIndex, treeSize);
    const rootHash = checkpoint ? checkpoint.rootHash : hex(await deps.merkle.root(treeSize));
    ctx.body = {
      recordId: rec.id,
      tier: rec.tier,
      leafIndex: rec.leafIndex,
      leafHash: rec.leafHash,
      treeSize,
      rootHash,
      hashAlgorithm: 'sm3',
      proof: proof.map(hex),
      checkpoint: checkpoint ?? null,
    };
  });

  r.get('/evidence/log/consistency', async (ctx) => {
    const fromText = param(ctx, 'from');
    const toText = param(ctx, 'to');
    if (fromText === undefined || toText === undefined) {
      throw httpError(EvidenceLogRouteCodes.EVIDENCE_LOG_PARAM_INVALID, 400, '需要 from 与 to（两个检查点的树大小）', 'from and to (the tree sizes of two checkpoints) are required');
    }
    const from = size(fromText, 'from');
    const to = size(toText, 'to');
    if (from > to) {
      throw httpError(MerkleCodes.MERKLE_RANGE_INVALID, 400, 'from 不能大于 to', 'from must not be larger than to', { detail: { from, to } });
    }
    const [a, b] = await Promise.all([deps.checkpoints.get(from), deps.checkpoints.get(to)]);
    if (!a) notFound(from);
    if (!b) notFound(to);
    const proof = await deps.merkle.consistency(from, to);
    ctx.body = { from, to, hashAlgorithm: 'sm3', fromRootHash: a.rootHash, toRootHash: b.rootHash, proof: proof.map(hex), fromCheckpoint: a, toCheckpoint: b };
  });

  return r;
}
