// The evidence report (出证 / 存证报告, issue 6 item 4): an A4 PDF, Chinese first and English
// second, made from a proof bundle (bundle.ts) and its fresh verification, signed by the
// appliance with PAdES B-B (pades.ts). It states the signer's identity and certificate, the four
// findings 真实身份、真实意愿、签名未改、原文未改 each with the checks behind it (from the verdict
// reached at ingestion), the hashes, signing and time-stamp times (Asia/Shanghai and UTC), the
// inclusion proof and the anchoring checkpoint with its token.
//
// Font: WenQuanYi Micro Hei (Debian fonts-wqy-microhei, Apache-2.0), embedded as a SUBSET.
// fontkit cannot subset a .ttc collection ("createSubset is not a function", PEERS.md), so the
// first face is cut out of the collection into a standalone TrueType file first (extractTtcFace;
// OpenType 1.9 "Font Collections": the table records of each face point into the shared file).
// Noto Sans CJK is not used: its CFF outlines subset to blank glyphs with fontkit.
import { readFileSync } from 'node:fs';
import fontkit from '@pdf-lib/fontkit';
import { PDFDocument, rgb, type PDFFont, type PDFPage } from 'pdf-lib';
import { readCertificate } from '../asn1/certificate.js';
import { nameToString } from '../asn1/name.js';
import { parseSignedData } from '../asn1/cms-signed-data.js';
import { OID_CT_TSTINFO } from '../asn1/tsp.js';
import { digest } from '../crypto/hash.js';
import { YiqianError } from '../errors.js';
import { readTstInfo } from '../signing/timestamp-check.js';
import type { ReportCheck } from '../signing/types.js';
import { PART_LABELS, type BundleVerdict, type EvidenceBundle } from './bundle.js';
import { noteBody, parseCheckpointBody } from './checkpoint.js';
import { addSignaturePlaceholder, signPreparedPdf, type PadesSigner } from './pades.js';

export const DEFAULT_CJK_FONT = '/usr/share/fonts/truetype/wqy/wqy-microhei.ttc';

export const ReportCodes = {
  /** The CJK font file is missing or not a TrueType font / collection (500). */
  REPORT_FONT_UNAVAILABLE: 'REPORT_FONT_UNAVAILABLE',
} as const;

function fontError(en: string): never {
  throw new YiqianError(ReportCodes.REPORT_FONT_UNAVAILABLE, 500, { zh: '报告字体不可用', en: `report font unavailable: ${en}` });
}

/**
 * Cuts face `index` out of a TrueType collection (OpenType "TTC Header": 'ttcf', version,
 * numFonts, offsets) into a standalone sfnt: the face's offset table and table records, with
 * each table copied and re-pointed (4-byte aligned). A plain .ttf is returned as it is.
 */
export function extractTtcFace(ttc: Buffer, index = 0): Buffer {
  if (ttc.length < 12) fontError('file too short');
  if (ttc.toString('latin1', 0, 4) !== 'ttcf') return ttc;
  const numFonts = ttc.readUInt32BE(8);
  if (index < 0 || index >= numFonts || 12 + 4 * numFonts > ttc.length) fontError(`no face ${index} in a collection of ${numFonts}`);
  const off = ttc.readUInt32BE(12 + 4 * index);
  if (off + 12 > ttc.length) fontError('face offset out of range');
  const numTables = ttc.readUInt16BE(off + 4);
  const headerLen = 12 + 16 * numTables;
  if (off + headerLen > ttc.length) fontError('table directory out of range');
  const tables: { tag: Buffer; checksum: number; data: Buffer }[] = [];
  for (let i = 0; i < numTables; i++) {
    const rec = off + 12 + 16 * i;
    const tOff = ttc.readUInt32BE(rec + 8);
    const tLen = ttc.readUInt32BE(rec + 12);
    if (tOff + tLen > ttc.length) fontError('table out of range');
    tables.push({ tag: ttc.subarray(rec, rec + 4), checksum: ttc.readUInt32BE(rec + 4), data: ttc.subarray(tOff, tOff + tLen) });
  }
  const header = Buffer.alloc(headerLen);
  ttc.copy(header, 0, off, off + 12);
  const parts: Buffer[] = [header];
  let pos = headerLen;
  tables.forEach((t, i) => {
    const rec = 12 + 16 * i;
    t.tag.copy(header, rec);
    header.writeUInt32BE(t.checksum, rec + 4);
    header.writeUInt32BE(pos, rec + 8);
    header.writeUInt32BE(t.data.length, rec + 12);
    const padded = Buffer.alloc(Math.ceil(t.data.length / 4) * 4);
    t.data.copy(padded);
    parts.push(padded);
    pos += padded.length;
  });
  return Buffer.concat(parts);
}

const faceCache = new Map<string, Buffer>();

/** The first face of the font file, read once per process. */
export function loadCjkFont(path = DEFAULT_CJK_FONT): Buffer {
  let face = faceCache.get(path);
  if (!face) {
    let file: Buffer;
    try {
      file = readFileSync(path);
    } catch (e) {
      fontError(`${path}: ${(e as Error).message}`);
    }
    face = extractTtcFace(file, 0);
    faceCache.set(path, face);
  }
  return face;
}

const faceWidths = new Map<string, Map<string, number>>();

/**
 * The per-character advance widths of a face (Writer.wrap), kept for the life of the process.
 * Report text carries caller metadata, so the map is bounded: past 20,000 characters it starts over.
 */
function widthsOf(path: string): Map<string, number> {
  let m = faceWidths.get(path);
  if (!m || m.size > 20_000) {
    m = new Map();
    faceWidths.set(path, m);
  }
  return m;
}

type Fontkit = Parameters<PDFDocument['registerFontkit']>[0];
type ParsedFace = ReturnType<Fontkit['create']>;
const parsedFaces = new WeakMap<Uint8Array, ParsedFace>();

/**
 * fontkit for pdf-lib that parses each face buffer once per process: fontkit decodes a face's
 * tables (loca, cmap, GSUB/GPOS of ~30,000 CJK glyphs) lazily and keeps glyphs and lookups on the
 * parsed font, so a fresh parse per report paid that again every time. pdf-lib embeds only a
 * subset of the shared parsed face into each document (createSubset per embedder), so one parsed
 * face serves every report. Keyed by the buffer loadCjkFont caches: another path, another face.
 */
const cachingFontkit: Fontkit = {
  create(buffer, postscriptName) {
    if (postscriptName !== undefined) return fontkit.create(buffer, postscriptName);
    let f = parsedFaces.get(buffer);
    if (!f) {
      f = fontkit.create(buffer);
      parsedFaces.set(buffer, f);
    }
    return f;
  },
};

// ---- time formatting -------------------------------------------------------------------------

/** "2026-03-01 18:04:05.123 (北京时间 UTC+8) / 2026-03-01T10:04:05.123Z (UTC)": China keeps no DST, so +8 h is exact. */
export function bothZones(iso: string | Date | undefined): string {
  if (iso === undefined) return '—';
  const d = typeof iso === 'string' ? new Date(iso) : iso;
  if (Number.isNaN(d.getTime())) return String(iso);
  const sh = new Date(d.getTime() + 8 * 3600_000).toISOString().replace('T', ' ').replace('Z', '');
  return `${sh}（北京时间 Asia/Shanghai）/ ${d.toISOString()}（UTC）`;
}

// ---- the four findings ----------------------------------------------------------------------

/** Which checks of a verification report stand behind each finding (GB/T 38629 report names). */
export const FINDINGS: { zh: string; en: string; checks: string[] }[] = [
  { zh: '真实身份', en: 'genuine identity', checks: ['signerFound', 'signingCertificate', 'certificateValidity', 'chain', 'revocation'] },
  { zh: '真实意愿', en: 'genuine intent', checks: ['signatureIntact', 'algorithm', 'timestamp'] },
  { zh: '签名未改', en: 'signature unaltered', checks: ['structure', 'signatureIntact', 'timestampImprint'] },
  { zh: '原文未改', en: 'original unaltered', checks: ['contentType', 'contentIntact'] },
];

function findingState(checks: ReportCheck[], names: string[]): { ok: boolean | null; used: ReportCheck[] } {
  const used = names.map((n) => checks.find((c) => c.name === n)).filter((c): c is ReportCheck => c !== undefined && c.ok !== null);
  if (used.length === 0) return { ok: null, used };
  return { ok: used.every((c) => c.ok === true), used };
}

// ---- layout -----------------------------------------------------------------------------------

const A4: [number, number] = [595.28, 841.89];
const MARGIN = 48;
const LABEL_W = 150;

/**
 * Breaks text into lines no wider than `width` at any character (Chinese has no spaces; hex is
 * one long word). The line width is the sum of the characters' advance widths — what pdf-lib's
 * widthOfTextAtSize adds up after its layout pass — memoised per character in `widths` (size 1):
 * measuring `line + ch` anew for every character ran fontkit's OpenType shaping (GSUB/GPOS
 * lookups) over each line again and again, quadratic in its length, and was most of a report's time.
 */
export function wrapLines(font: PDFFont, text: string, size: number, width: number, widths = new Map<string, number>()): string[] {
  const out: string[] = [];
  for (const para of text.split('\n')) {
    let line = '';
    let lineW = 0;
    for (const ch of para) {
      let w1 = widths.get(ch);
      if (w1 === undefined) {
        w1 = font.widthOfTextAtSize(ch, 1);
        widths.set(ch, w1);
      }
      const w = w1 * size;
      if (line && lineW + w > width) {
        out.push(line);
        line = '';
        lineW = 0;
      }
      line += ch;
      lineW += w;
    }
    out.push(line);
  }
  return out;
}

class Writer {
  page!: PDFPage;
  y = 0;
  pages: PDFPage[] = [];

  constructor(
    readonly doc: PDFDocument,
    readonly font: PDFFont,
    /** Advance width at size 1 of each character seen, shared by all reports in the same face. */
    readonly widths: Map<string, number>,
  ) {
    this.newPage();
  }

  newPage(): void {
    this.page = this.doc.addPage(A4);
    this.pages.push(this.page);
    this.y = A4[1] - MARGIN;
  }

  ensure(h: number): void {
    if (this.y - h < MARGIN + 20) this.newPage();
  }

  /** Breaks at any character (Chinese has no spaces; hex is one long word): wrapLines. */
  wrap(text: string, size: number, width: number): string[] {
    return wrapLines(this.font, text, size, width, this.widths);
  }

  heading(text: string): void {
    this.ensure(34);
    this.y -= 10;
    this.page.drawText(text, { x: MARGIN, y: this.y - 12, size: 12.5, font: this.font, color: rgb(0.1, 0.2, 0.45) });
    this.y -= 18;
    this.page.drawLine({ start: { x: MARGIN, y: this.y }, end: { x: A4[0] - MARGIN, y: this.y }, thickness: 0.6, color: rgb(0.1, 0.2, 0.45) });
    this.y -= 4;
  }

  /** One ruled table row: label on the left, wrapped value on the right. */
  row(label: string, value: string, size = 9): void {
    const valueW = A4[0] - 2 * MARGIN - LABEL_W - 8;
    const labelLines = this.wrap(label, size, LABEL_W - 6);
    const valueLines = this.wrap(value, size, valueW);
    const lineH = size * 1.45;
    const h = Math.max(labelLines.length, valueLines.length) * lineH + 6;
    this.ensure(h);
    const top = this.y;
    labelLines.forEach((l, i) => this.page.drawText(l, { x: MARGIN + 3, y: top - 3 - size - i * lineH, size, font: this.font, color: rgb(0.25, 0.25, 0.25) }));
    valueLines.forEach((l, i) => this.page.drawText(l, { x: MARGIN + LABEL_W + 5, y: top - 3 - size - i * lineH, size, font: this.font }));
    this.y -= h;
    this.page.drawLine({ start: { x: MARGIN, y: this.y }, end: { x: A4[0] - MARGIN, y: this.y }, thickness: 0.3, color: rgb(0.7, 0.7, 0.7) });
  }

  para(text: string, size = 9): void {
    const lines = this.wrap(text, size, A4[0] - 2 * MARGIN);
    for (const l of lines) {
      this.ensure(size * 1.5);
      this.page.drawText(l, { x: MARGIN, y: this.y - size - 2, size, font: this.font });
      this.y -= size * 1.5;
    }
  }
}

const STATE = (ok: boolean | null): string => (ok === true ? '通过 / passed' : ok === false ? '未通过 / FAILED' : '不适用 / n/a');

export interface ReportOptions {
  /** Issuer of the report, e.g. the hospital and the appliance name. */
  issuer: string;
  generatedAt?: Date;
  fontPath?: string;
}

interface TokenInfo {
  genTime?: Date;
  serial?: string;
  tsa?: string;
}

function tokenInfo(b64: string | undefined): TokenInfo {
  if (!b64) return {};
  try {
    const sd = parseSignedData(Buffer.from(b64, 'base64'));
    if (sd.eContentType !== OID_CT_TSTINFO || !sd.content) return {};
    const t = readTstInfo(sd.content);
    const si = sd.signerInfos[0];
    let tsa: string | undefined;
    for (const c of sd.certificates) {
      const info = readCertificate(c);
      if (si?.serialValue && info.issuerDer.equals(si.issuerDer ?? Buffer.alloc(0))) tsa = nameToString(info.subjectDer);
    }
    return { genTime: t.genTime, serial: t.serial, ...(tsa ? { tsa } : {}) };
  } catch {
    return {};
  }
}

/** Lays the report out (unsigned, with the signature placeholder) and returns the saved bytes. */
export async function renderEvidenceReport(bundle: EvidenceBundle, verdict: BundleVerdict, o: ReportOptions): Promise<Uint8Array> {
  const generatedAt = o.generatedAt ?? new Date();
  const doc = await PDFDocument.create({ updateMetadata: false });
  doc.registerFontkit(cachingFontkit);
  const font = await doc.embedFont(loadCjkFont(o.fontPath), { subset: true });
  doc.setTitle(`电子数据存证报告 ${bundle.record.id}`, { showInWindowTitleBar: true });
  doc.setSubject('Evidence report / 电子数据存证报告');
  doc.setProducer('yiqian evidence store');
  doc.setCreator(o.issuer);
  doc.setLanguage('zh-CN');
  doc.setCreationDate(generatedAt);
  doc.setModificationDate(generatedAt);
  const w = new Writer(doc, font, widthsOf(o.fontPath ?? DEFAULT_CJK_FONT));
  const r = bundle.record;
  const sig = r.signature;
  const report = bundle.verification;

  w.page.drawText('电子数据存证报告', { x: MARGIN, y: w.y - 22, size: 20, font, color: rgb(0.1, 0.2, 0.45) });
  w.page.drawText('Evidence Report', { x: MARGIN, y: w.y - 40, size: 11, font, color: rgb(0.35, 0.35, 0.35) });
  w.y -= 52;
  w.row('报告对象 / Record', r.id);
  w.row('出具方 / Issued by', o.issuer);
  w.row('出具时间 / Issued at', bothZones(generatedAt));
  w.row('离线验证结论 / Offline check', `${verdict.ok ? '证据包全部检查通过' : `证据包检查未通过（${PART_LABELS[verdict.firstFailure!.part].zh}）`} / ${verdict.ok ? 'every check of the proof bundle passed' : `the proof bundle FAILED (${verdict.firstFailure!.part})`}`);

  w.heading('一、存证记录 / Record');
  const kinds = { signature: '签名数据 / signature', digest: '摘要数据 / digest', file: '文件 / file' } as const;
  w.row('类型 / Kind', kinds[r.kind] ?? r.kind);
  w.row('项目 / Project', r.project);
  w.row('应用 / App', r.appId);
  if (r.system) w.row('业务系统 / System', r.system);
  if (r.departmentId) w.row('科室 / Department', r.departmentId);
  if (r.businessSerial) w.row('业务流水号 / Business serial', r.businessSerial);
  if (r.documentType) w.row('文书类型 / Document type', r.documentType);
  if (r.patientIdMasked) w.row('患者标识（脱敏）/ Patient id (masked)', r.patientIdMasked);
  w.row('接收时间 / Received at', bothZones(r.receivedAt));
  if (r.tier) w.row('存储层 / Tier', r.tier === 'hot' ? '热数据 / hot' : '冷数据 / cold');

  w.heading('二、签名人身份与证书 / Signer and certificate');
  let certDer: Buffer | undefined = sig?.certificate ? Buffer.from(sig.certificate, 'base64') : undefined;
  if (!certDer && sig?.format === 'cms') {
    try {
      const sd = parseSignedData(Buffer.from(sig.value, 'base64'));
      const si = sd.signerInfos[0];
      certDer = sd.certificates.find((c) => {
        const info = readCertificate(c);
        return si?.issuerDer !== undefined && info.issuerDer.equals(si.issuerDer);
      });
    } catch {
      certDer = undefined;
    }
  }
  if (!sig) {
    w.para('本记录为摘要/文件存证，不含签名。/ A digest or file record: it carries no signature.');
  } else if (certDer) {
    const info = readCertificate(certDer);
    const signer = report?.signer;
    w.row('签名人 / Signer', signer?.commonName ?? nameToString(info.subjectDer));
    if (signer?.employeeId) w.row('工号 / Employee id', signer.employeeId);
    if (sig.statedSigner) w.row('申报身份 / Stated signer', Object.entries(sig.statedSigner).map(([k, v]) => `${k}: ${v}`).join('; '));
    w.row('证书主题 / Subject', nameToString(info.subjectDer));
    w.row('证书序列号 / Serial', info.serial);
    w.row('颁发者 / Issuer', nameToString(info.issuerDer));
    w.row('有效期 / Validity', `${bothZones(info.notBefore)}\n至 / to ${bothZones(info.notAfter)}`);
    w.row('证书 SM3 / Certificate SM3', digest('sm3', certDer).toString('hex'));
  }

  w.heading('三、验证结论 / Findings');
  w.para('以下结论为设备接收时的验证结果（验证报告中的各项检查）。/ The findings of the verification made when the appliance received the record, with the checks behind each.', 8.5);
  if (report) {
    for (const f of FINDINGS) {
      const s = findingState(report.checks, f.checks);
      const behind = s.used.map((c) => `${c.label}（${c.name}）${c.ok ? '通过' : '未通过'}${c.reason ? `：${c.reason}` : ''}`).join('；');
      w.row(`${f.zh} / ${f.en}`, `${STATE(s.ok)}\n${behind || '—'}`);
    }
    w.row('总体结论 / Verdict', `${report.valid ? '有效 / valid' : '无效 / invalid'}（${report.code}）`);
    w.row('证书判定时间 / Judged at', `${bothZones(report.judgedAt)}\n依据 / source: ${report.judgedAtSource === 'timestamp' ? '签名时间戳 / signature time-stamp' : report.judgedAtSource === 'request' ? '接收时间 / time of receipt' : '验证时刻 / time of verification'}`);
  } else {
    for (const f of FINDINGS) w.row(`${f.zh} / ${f.en}`, `${STATE(null)}\n摘要/文件存证不含签名；原文未改由原文摘要与存在性证明保证。/ A digest or file record carries no signature; the digest and the inclusion proof stand for the original.`);
  }

  w.heading('四、摘要值 / Hashes');
  w.row(`原文摘要 / Original (${r.contentDigest.algorithm.toUpperCase()})`, r.contentDigest.value);
  if (bundle.original) w.row('原文大小 / Original size', `${bundle.original.bytes} 字节 / bytes${bundle.original.mediaType ? `, ${bundle.original.mediaType}` : ''}`);
  if (sig) w.row('签名值 SM3 / Signature SM3', digest('sm3', Buffer.from(sig.value, 'base64')).toString('hex'));
  w.row('叶子哈希 SM3 / Leaf hash', bundle.leaf.hash);

  w.heading('五、签名与时间戳时间 / Signing and time-stamp times');
  if (sig?.signingTime ?? report?.signingTime) w.row('签名时间（签名方申报）/ Signing time (claimed)', bothZones(sig?.signingTime ?? report?.signingTime));
  const sigTs = report?.timestamp;
  const sigTok = tokenInfo(sig?.timestampToken);
  if (sigTs || sigTok.genTime) {
    w.row('签名时间戳 / Signature time-stamp', `${bothZones(sigTs?.genTime ?? sigTok.genTime)}\nTSA: ${sigTs?.tsa ?? sigTok.tsa ?? '—'}\n序列号 / serial: ${sigTs?.serial ?? sigTok.serial ?? '—'}`);
  } else {
    w.row('签名时间戳 / Signature time-stamp', '无 / none');
  }

  w.heading('六、存在性证明 / Inclusion proof (RFC 9162, SM3)');
  w.row('叶子序号 / Leaf index', String(bundle.leaf.index));
  w.row('树大小 / Tree size', String(bundle.proof.treeSize));
  bundle.proof.path.forEach((p, i) => w.row(`路径节点 ${i + 1} / Path node ${i + 1}`, Buffer.from(p, 'base64').toString('hex'), 8));
  if (bundle.proof.path.length === 0) w.row('路径 / Path', '空（树中仅此一叶）/ empty (the only leaf)');

  w.heading('七、锚定检查点 / Anchoring checkpoint');
  const cp = bundle.checkpoint;
  let cpBody: { treeSize: number; rootHash: Buffer; time: string; origin: string } | undefined;
  try {
    cpBody = parseCheckpointBody(noteBody(cp.note) ?? '');
  } catch {
    cpBody = undefined;
  }
  w.row('日志标识 / Log origin', cpBody?.origin ?? '—');
  w.row('树大小 / Tree size', String(cpBody?.treeSize ?? cp.treeSize));
  w.row('根哈希 SM3 / Root hash', cpBody?.rootHash.toString('hex') ?? cp.rootHash);
  w.row('检查点时间 / Checkpoint time', bothZones(cpBody?.time ?? cp.time));
  try {
    w.row('检查点签名者 / Signed by', nameToString(readCertificate(Buffer.from(cp.signerCertificate, 'base64')).subjectDer));
  } catch {
    w.row('检查点签名者 / Signed by', '—');
  }
  const cpTok = tokenInfo(cp.timestampToken);
  w.row('检查点时间戳 / Checkpoint time-stamp', `${bothZones(cpTok.genTime)}\nTSA: ${cpTok.tsa ?? '—'}\n序列号 / serial: ${cpTok.serial ?? '—'}`);

  w.heading('八、离线验证 / Offline verification');
  for (const c of verdict.checks) w.row(`${PART_LABELS[c.part].zh} / ${PART_LABELS[c.part].en}`, `${STATE(c.ok)}：${c.zh}${c.reason && c.ok === false ? `（${c.reason}）` : ''}`, 8.5);
  for (const f of verdict.anchorFingerprints) w.row('信任锚 SHA-256 / Trust anchor', f, 8);
  w.para('同一记录的证据包（bundle.json）可用 ops/verify-evidence 离线验证，无需本设备。本报告以设备密钥作 PAdES 签名（ETSI EN 319 142-1 B-B）。/ The proof bundle of this record (bundle.json) can be checked offline with ops/verify-evidence, without this appliance. This report carries the appliance\'s PAdES signature (ETSI EN 319 142-1, B-B).', 8.5);

  const n = w.pages.length;
  w.pages.forEach((p, i) => p.drawText(`${r.id}    第 ${i + 1} 页 / 共 ${n} 页 · page ${i + 1} of ${n}`, { x: MARGIN, y: MARGIN - 18, size: 7.5, font, color: rgb(0.45, 0.45, 0.45) }));

  addSignaturePlaceholder(doc, { signingTime: generatedAt, name: o.issuer, reason: '电子数据存证报告 / evidence report', location: o.issuer });
  return doc.save({ useObjectStreams: false });
}

/** The signed report: render, then PAdES-sign the saved bytes. */
export async function evidenceReportPdf(bundle: EvidenceBundle, verdict: BundleVerdict, o: ReportOptions & { signer: PadesSigner }): Promise<Buffer> {
  return signPreparedPdf(await renderEvidenceReport(bundle, verdict, o), o.signer);
}
