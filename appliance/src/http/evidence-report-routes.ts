// Evidence reports and proof bundles over HTTP (issue 6 item 4), mounted under /api/v1 behind
// app authentication. Thin: find the record in the caller's project, its anchoring checkpoint
// and inclusion proof, assemble the bundle (evidence/bundle.ts), and for the PDF render and
// PAdES-sign it (evidence/report-pdf.ts).
//
//   GET /evidence/records/:id/bundle.json[?original=true]   the proof bundle (JSON); original=true
//        embeds the original when the record has one of at most 4 MiB (else EVIDENCE_ORIGINAL_TOO_LARGE)
//   GET /evidence/records/:id/report.pdf                     the signed evidence report (application/pdf)
//
// A record of another project is "not found" (ids of other projects are not confirmed to exist);
// a record no checkpoint covers yet is 409 EVIDENCE_NOT_ANCHORED (retry after the next checkpoint).
import Router from '@koa/router';
import type { ParameterizedContext } from 'koa';
import { MAX_EMBEDDED_ORIGINAL, buildBundle, verifyBundle, type EvidenceBundle } from '../evidence/bundle.js';
import type { PadesSigner } from '../evidence/pades.js';
import { evidenceReportPdf } from '../evidence/report-pdf.js';
import type { CheckpointLog, EvidenceRecord } from '../evidence/types.js';
import type { TrustMaterial } from '../signing/types.js';
import { httpError, internalError } from './problem.js';
import type { HttpState } from './state.js';

type Ctx = ParameterizedContext<HttpState>;

export const EvidenceReportCodes = {
  /** No evidence record with that id in the caller's project (404). */
  EVIDENCE_NOT_FOUND: 'EVIDENCE_NOT_FOUND',
  /** No checkpoint covers the record yet (409): ask again after the next checkpoint. */
  EVIDENCE_NOT_ANCHORED: 'EVIDENCE_NOT_ANCHORED',
  /** original=true for an original larger than a bundle embeds (413). */
  EVIDENCE_ORIGINAL_TOO_LARGE: 'EVIDENCE_ORIGINAL_TOO_LARGE',
  /** A query parameter that is repeated or not of its form (400). */
  EVIDENCE_REPORT_PARAM_INVALID: 'EVIDENCE_REPORT_PARAM_INVALID',
} as const;

export interface EvidenceReportRouteDeps {
  /** The record (either tier) by id, or undefined. */
  findRecord(id: string): Promise<EvidenceRecord | undefined>;
  checkpoints: Pick<CheckpointLog, 'covering'>;
  /** RFC 9162 inclusion proof of a leaf in the tree of `size` leaves. */
  inclusion(index: number, size: number): Promise<Buffer[]>;
  /** The bytes of a stored original (content-addressed blob). */
  readOriginal(blobId: string): AsyncIterable<Buffer>;
  /** Anchors and intermediates the bundle carries (our roots and issuing CAs, imported CAs). */
  trust(): Promise<TrustMaterial>;
  /** The appliance's PAdES signer (pades.ts createReportSigner). */
  reportSigner(): Promise<PadesSigner>;
  /** Who issues the report, e.g. the hospital (config pki.organisation). */
  issuer: string;
}

function projectOf(ctx: Ctx): string {
  const app = ctx.state.app;
  if (!app) throw internalError(new Error('evidence report routes mounted without app authentication'));
  return app.project;
}

async function readAll(source: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of source) parts.push(p);
  return Buffer.concat(parts);
}

export function evidenceReportRouter(deps: EvidenceReportRouteDeps): Router<HttpState> {
  const r = new Router<HttpState>({ sensitive: true });

  /** embed: 'always' refuses an original too large to embed; 'ifSmall' embeds it only when it fits. */
  async function bundleFor(ctx: Ctx, embed: 'never' | 'always' | 'ifSmall'): Promise<EvidenceBundle> {
    const id = String(ctx.params.id ?? '');
    const rec = id.length <= 64 ? await deps.findRecord(id) : undefined;
    if (!rec || rec.project !== projectOf(ctx)) {
      throw httpError(EvidenceReportCodes.EVIDENCE_NOT_FOUND, 404, `存证记录 ${id.slice(0, 40)} 不存在`, `no evidence record ${id.slice(0, 40)} in this project`, { detail: { id: id.slice(0, 40) } });
    }
    const cp = await deps.checkpoints.covering(rec.leafIndex);
    if (!cp) {
      throw httpError(EvidenceReportCodes.EVIDENCE_NOT_ANCHORED, 409, '该记录尚未被检查点锚定，请在下一个检查点后重试', 'no checkpoint covers this record yet: ask again after the next checkpoint', { detail: { id, leafIndex: rec.leafIndex } });
    }
    let original: Buffer | undefined;
    if (embed !== 'never' && rec.original && !(embed === 'ifSmall' && rec.original.bytes > MAX_EMBEDDED_ORIGINAL)) {
      if (rec.original.bytes > MAX_EMBEDDED_ORIGINAL) {
        throw httpError(EvidenceReportCodes.EVIDENCE_ORIGINAL_TOO_LARGE, 413, `原文超过 ${MAX_EMBEDDED_ORIGINAL} 字节，不能内嵌，请另行下载`, `the original is larger than ${MAX_EMBEDDED_ORIGINAL} bytes: download it separately`, { detail: { bytes: rec.original.bytes } });
      }
      original = await readAll(deps.readOriginal(rec.original.blobId));
    }
    const [proof, trust] = await Promise.all([deps.inclusion(rec.leafIndex, cp.treeSize), deps.trust()]);
    return buildBundle({ record: rec, ...(original ? { original } : {}), proof, checkpoint: cp, anchors: trust.anchors, intermediates: trust.intermediates });
  }

  r.get('/evidence/records/:id/bundle.json', async (ctx) => {
    const o = ctx.query.original;
    if (o !== undefined && o !== 'true' && o !== 'false') {
      throw httpError(EvidenceReportCodes.EVIDENCE_REPORT_PARAM_INVALID, 400, 'original 只能是 true 或 false', 'original must be true or false', { detail: { parameter: 'original' } });
    }
    const bundle = await bundleFor(ctx, o === 'true' ? 'always' : 'never');
    ctx.set('Content-Disposition', `attachment; filename="evidence-${bundle.record.id}.json"`);
    ctx.body = bundle;
  });

  r.get('/evidence/records/:id/report.pdf', async (ctx) => {
    // The report states the checks of the bundle as this appliance finds them now, with the
    // original when it is kept and small (a raw SM2 signature is checkable only over the
    // original); the original itself never enters the PDF.
    const bundle = await bundleFor(ctx, 'ifSmall');
    const verdict = await verifyBundle(bundle);
    const pdf = await evidenceReportPdf(bundle, verdict, { issuer: deps.issuer, signer: await deps.reportSigner() });
    ctx.type = 'application/pdf';
    ctx.set('Content-Disposition', `attachment; filename="evidence-${bundle.record.id}.pdf"`);
    ctx.body = pdf;
  });

  return r;
}
