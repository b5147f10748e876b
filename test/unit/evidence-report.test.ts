// Proof bundles and their verifier (evidence/bundle.ts, ops/verify-evidence.ts), and the PAdES
// evidence report (report-pdf.ts, pades.ts) in process, over records really signed on SoftHSM2
// (SM2 CMS, ECDSA CMS, raw SM2 with a TSA token, digest-only; hot and cold tiers), a real Merkle
// tree and a checkpoint signed and time-stamped by the appliance's TSA service. Every part of a
// bundle is broken by one changed byte and the verifier must name that part.
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PDFDocument } from 'pdf-lib';
import fontkit from '@pdf-lib/fontkit';
import { parseSignedData } from '../../appliance/src/asn1/cms-signed-data.js';
import { readTlv } from '../../appliance/src/crypto/der.js';
import { OID_SIGNING_CERTIFICATE_V2, OID_SIGNING_TIME, OID_MESSAGE_DIGEST, OID_CONTENT_TYPE } from '../../appliance/src/asn1/tsp.js';
import { verifyBundle, parseBundle, buildBundle, type BundlePart, type EvidenceBundle } from '../../appliance/src/evidence/bundle.js';
import { bothZones, evidenceReportPdf, extractTtcFace, loadCjkFont, wrapLines } from '../../appliance/src/evidence/report-pdf.js';
import { REPORT_KEY_LABEL } from '../../appliance/src/evidence/pades.js';
import { verifyCms } from '../../appliance/src/signing/cms-verify.js';
import { main } from '../../ops/verify-evidence.js';
import Koa from 'koa';
import type { AddressInfo } from 'node:net';
import { evidenceReportRouter } from '../../appliance/src/http/evidence-report-routes.js';
import { problems } from '../../appliance/src/http/problem.js';
import type { HttpState } from '../../appliance/src/http/state.js';
import { createMetrics } from '../../appliance/src/metrics.js';
import { log } from '../../appliance/src/log.js';
import { makeEvidenceFixture, type RecordName } from '../helpers/evidence-bundle-fixture.js';

const clone = (b: EvidenceBundle): EvidenceBundle => JSON.parse(JSON.stringify(b)) as EvidenceBundle;

/** One changed byte in a base64 field at `at` (negative: from the end). */
function flipB64(s: string, at: number): string {
  const b = Buffer.from(s, 'base64');
  b[at < 0 ? b.length + at : at] ^= 0x01;
  return b.toString('base64');
}

/** One changed character of a hex string. */
const flipHex = (s: string, at: number): string => s.slice(0, at) + (s[at] === '0' ? '1' : '0') + s.slice(at + 1);

t.test('evidence bundles and reports', async (t) => {
  const fx = await makeEvidenceFixture();
  t.teardown(() => fx.close());
  const dir = mkdtempSync(join(tmpdir(), 'yq-e4-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));

  await t.test('good bundles verify, hot and cold, each kind of record', async (t) => {
    const cases: [RecordName, boolean, string][] = [
      ['sm2-cms', true, 'hot'],
      ['ecdsa-cms', false, 'cold'],
      ['sm2-raw-token', true, 'cold'],
      ['digest-only', false, 'hot'],
    ];
    for (const [name, embed, tier] of cases) {
      const b = fx.bundle(name, { embedOriginal: embed });
      t.equal(b.record.tier, tier, `${name}: ${tier} tier`);
      const roundTrip = JSON.parse(JSON.stringify(b)) as unknown;
      const v = await verifyBundle(roundTrip);
      t.ok(v.ok, `${name}: ${v.firstFailure ? `${v.firstFailure.part}: ${v.firstFailure.reason}` : 'all checks pass'}`);
      const parts = new Set(v.checks.filter((c) => c.ok === true).map((c) => c.part));
      for (const p of ['leaf', 'checkpoint', 'checkpointTimestamp', 'inclusion'] as BundlePart[]) t.ok(parts.has(p), `${name}: ${p} checked and passed`);
      if (name !== 'digest-only') for (const p of ['signature', 'certificate'] as BundlePart[]) t.ok(parts.has(p), `${name}: ${p} checked and passed`);
      else t.ok(v.checks.filter((c) => c.part === 'signature' || c.part === 'certificate').every((c) => c.ok === null), 'digest record: no signature checks apply');
    }
    const raw = await verifyBundle(fx.bundle('sm2-raw-token'));
    t.equal(raw.judgedAtSource, 'timestamp', 'the raw signature is judged at its token genTime');
    t.ok(raw.checks.some((c) => c.part === 'timestamp' && c.ok === true), 'the raw signature token checks out');
    const sm2 = await verifyBundle(fx.bundle('sm2-cms', { embedOriginal: false }), { original: fx.records['sm2-cms'].original });
    t.ok(sm2.ok, 'a detached CMS with the original given beside the bundle');
    const noOriginal = await verifyBundle(fx.bundle('sm2-cms', { embedOriginal: false }));
    t.ok(noOriginal.ok, 'a detached CMS without the original: the signed messageDigest is the record digest');
    t.equal(noOriginal.checks.find((c) => c.part === 'original')?.ok, null, 'original check not applicable');
  });

  await t.test('one changed byte in each part is caught and named', async (t) => {
    const cases: [string, RecordName, BundlePart, (b: EvidenceBundle) => void][] = [
      ['original digest', 'sm2-cms', 'original', (b) => (b.record.contentDigest.value = flipHex(b.record.contentDigest.value, 10))],
      ['embedded original', 'sm2-raw-token', 'original', (b) => (b.original!.data = flipB64(b.original!.data!, 3))],
      ['digest of a digest-only record', 'digest-only', 'leaf', (b) => (b.record.contentDigest.value = flipHex(b.record.contentDigest.value, 0))],
      ['CMS signature value', 'sm2-cms', 'signature', (b) => (b.record.signature!.value = flipB64(b.record.signature!.value, -2))],
      ['ECDSA CMS signature value', 'ecdsa-cms', 'signature', (b) => (b.record.signature!.value = flipB64(b.record.signature!.value, -2))],
      ['raw signature value', 'sm2-raw-token', 'signature', (b) => (b.record.signature!.value = flipB64(b.record.signature!.value, -2))],
      [
        'certificate (subject name)',
        'sm2-raw-token',
        'certificate',
        (b) => {
          const der = Buffer.from(b.record.signature!.certificate!, 'base64');
          const at = der.indexOf(Buffer.from('Dr Zhang'));
          der[at] ^= 0x01;
          b.record.signature!.certificate = der.toString('base64');
        },
      ],
      ['signature time-stamp token', 'sm2-raw-token', 'timestamp', (b) => (b.record.signature!.timestampToken = flipB64(b.record.signature!.timestampToken!, -3))],
      ['record metadata', 'ecdsa-cms', 'leaf', (b) => (b.record.businessSerial += 'x')],
      ['proof node', 'sm2-cms', 'inclusion', (b) => (b.proof.path[1] = flipB64(b.proof.path[1], 5))],
      ['leaf index', 'sm2-cms', 'inclusion', (b) => (b.leaf.index += 1)],
      ['checkpoint note (root line)', 'ecdsa-cms', 'checkpoint', (b) => (b.checkpoint.note = b.checkpoint.note.replace(/\n([A-Za-z0-9+/]{5})/, (_m, p: string) => `\n${p.slice(0, 4)}${p[4] === 'A' ? 'B' : 'A'}`))],
      ['checkpoint note (signature)', 'digest-only', 'checkpoint', (b) => (b.checkpoint.note = b.checkpoint.note.replace(/ (\S+)\n$/, (_m, s: string) => ` ${flipB64(s, -2)}\n`))],
      ['checkpoint token', 'sm2-raw-token', 'checkpointTimestamp', (b) => (b.checkpoint.timestampToken = flipB64(b.checkpoint.timestampToken, -3))],
    ];
    for (const [what, name, part, mutate] of cases) {
      const b = clone(fx.bundle(name, { embedOriginal: true }));
      mutate(b);
      const v = await verifyBundle(b);
      t.notOk(v.ok, `${what}: refused`);
      t.equal(v.firstFailure?.part, part, `${what}: first failure is ${part} (${v.firstFailure?.reason ?? ''})`);
    }
    const other = fx.anchors.slice(1);
    const v = await verifyBundle(fx.bundle('sm2-cms', { embedOriginal: true }), { anchors: other });
    t.equal(v.firstFailure?.part, 'certificate', 'against the ECDSA root only, the SM2 signer does not chain');
    const broken = await verifyBundle({ format: 'something-else' });
    t.equal(broken.firstFailure?.part, 'bundle', 'not a bundle');
    t.throws(() => parseBundle({ ...fx.bundle('digest-only'), version: 2 }), { code: 'BUNDLE_MALFORMED' }, 'unknown version refused');
    t.throws(() => buildBundle({ record: fx.records['sm2-cms'].record, proof: [], checkpoint: { ...fx.checkpoint, treeSize: 1 }, anchors: [], intermediates: [] }), { code: 'BUNDLE_MALFORMED' }, 'a checkpoint that does not cover the record');
  });

  await t.test('ops/verify-evidence main(): zh and en lines, exit codes', async (t) => {
    const run = async (args: string[]) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
      return { code, out: out.join('\n'), err: err.join('\n') };
    };
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify(fx.bundle('sm2-raw-token')));
    const orig = join(dir, 'original.bin');
    writeFileSync(orig, fx.records['sm2-raw-token'].original!);
    let r = await run([good, '--original', orig]);
    t.equal(r.code, 0, r.out);
    t.match(r.out, /通过 PASS/);
    t.match(r.out, /证据包全部检查通过 \/ verdict: every check of the bundle passed/);
    const bad = clone(fx.bundle('sm2-raw-token', { embedOriginal: true }));
    bad.proof.path[0] = flipB64(bad.proof.path[0], 0);
    const badFile = join(dir, 'bad.json');
    writeFileSync(badFile, JSON.stringify(bad));
    r = await run([badFile]);
    t.equal(r.code, 1, 'a broken proof exits 1');
    t.match(r.out, /首个失败部分为「存在性证明」\/ verdict: FAILED, first failing part: inclusion/);
    writeFileSync(join(dir, 'other.txt'), 'not the original');
    r = await run([good, '--original', join(dir, 'other.txt')]);
    t.equal(r.code, 1);
    t.match(r.out, /first failing part: original/);
    writeFileSync(join(dir, 'ecdsa-root.pem'), fx.ecdsaRootPem);
    r = await run([good, '--original', orig, '--trust', join(dir, 'ecdsa-root.pem')]);
    t.equal(r.code, 1, 'another root given with --trust');
    t.match(r.out, /first failing part: timestamp/, 'the SM2 TSA of the signature time-stamp does not chain to the ECDSA root');
    t.match(r.out, /\[失败 FAIL\] 签名证书及证书链/, 'nor does the SM2 signer');
    r = await run([good, '--original', orig, '--json']);
    t.equal(JSON.parse(r.out).ok, true, '--json');
    t.equal((await run([])).code, 2, 'no bundle: usage');
    t.equal((await run([join(dir, 'missing.json')])).code, 2, 'unreadable bundle');
    t.equal((await run([good, '--original'])).code, 2, 'option without a value');
    r = await run([good]);
    t.equal(r.code, 1, 'a raw SM2 signature cannot be checked from SM3(M) alone');
    t.match(r.out, /--original/, 'the verifier says to pass the original');
  });

  await t.test('HTTP: bundle.json and report.pdf, own project only, 409 until anchored', async (t) => {
    const recs = Object.values(fx.records).map((x) => x.record);
    const late = { ...fx.records['digest-only'].record, id: '01LATERECORD0000000000000', leafIndex: fx.checkpoint.treeSize };
    const router = evidenceReportRouter({
      findRecord: async (id) => [...recs, late].find((r) => r.id === id),
      checkpoints: { covering: async (i) => (i < fx.checkpoint.treeSize ? fx.checkpoint : undefined) },
      inclusion: async (i, n) => fx.tree.inclusion(i, n),
      readOriginal: async function* (blobId) {
        const hit = Object.values(fx.records).find((x) => x.record.original?.blobId === blobId);
        if (hit?.original) yield hit.original;
      },
      trust: async () => ({ anchors: fx.anchors, intermediates: fx.intermediates }),
      reportSigner: fx.reportSigner,
      issuer: '示例医院',
    });
    const app = new Koa<HttpState>();
    app.use(async (ctx, next) => {
      ctx.state.app = { project: String(ctx.get('x-project') || 'emr') } as HttpState['app'];
      ctx.state.log = log;
      ctx.state.requestId = 'test';
      await next();
    });
    app.use(problems(createMetrics()));
    app.use(router.routes());
    const server = app.listen(0, '127.0.0.1');
    t.teardown(() => server.close());
    await new Promise((r) => server.once('listening', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/evidence/records`;
    const sm2 = fx.records['sm2-cms'].record.id;
    let res = await fetch(`${base}/${sm2}/bundle.json?original=true`);
    t.equal(res.status, 200);
    const bundle = (await res.json()) as EvidenceBundle;
    t.ok(bundle.original?.data, 'original embedded on request');
    t.ok((await verifyBundle(bundle)).ok, 'the served bundle verifies');
    res = await fetch(`${base}/${sm2}/bundle.json`);
    t.equal(((await res.json()) as EvidenceBundle).original?.data, undefined, 'not embedded by default');
    res = await fetch(`${base}/${fx.records['sm2-raw-token'].record.id}/report.pdf`);
    t.equal(res.status, 200);
    t.equal(res.headers.get('content-type'), 'application/pdf');
    const pdf = Buffer.from(await res.arrayBuffer());
    t.match(pdf.toString('latin1'), /ETSI\.CAdES\.detached/);
    const problem = async (url: string, init?: RequestInit) => {
      const r = await fetch(url, init);
      return { status: r.status, type: r.headers.get('content-type'), body: (await r.json()) as { code: string } };
    };
    let p = await problem(`${base}/${sm2}/bundle.json`, { headers: { 'x-project': 'other' } });
    t.same([p.status, p.body.code], [404, 'EVIDENCE_NOT_FOUND'], 'another project: not found');
    t.match(p.type, /problem\+json/);
    p = await problem(`${base}/NOSUCHRECORD/report.pdf`);
    t.same([p.status, p.body.code], [404, 'EVIDENCE_NOT_FOUND']);
    p = await problem(`${base}/${late.id}/report.pdf`);
    t.same([p.status, p.body.code], [409, 'EVIDENCE_NOT_ANCHORED'], 'not covered by a checkpoint yet');
    p = await problem(`${base}/${sm2}/bundle.json?original=yes`);
    t.same([p.status, p.body.code], [400, 'EVIDENCE_REPORT_PARAM_INVALID']);
  });

  await t.test('TTC face extraction gives a standalone TrueType font', async (t) => {
    const face = loadCjkFont();
    t.equal(face.readUInt32BE(0), 0x00010000, 'sfnt version 1.0 (TrueType outlines)');
    const f = (fontkit as unknown as { create(b: Buffer): { familyName: string; hasGlyphForCodePoint(c: number): boolean } }).create(face);
    t.match(f.familyName, /WenQuanYi Micro Hei/);
    t.ok(f.hasGlyphForCodePoint('证'.codePointAt(0)!), 'has CJK glyphs');
    t.equal(extractTtcFace(face), face, 'a plain TTF is returned as it is');
    t.throws(() => extractTtcFace(Buffer.from('7474636600010000000000050000', 'hex'), 0), { code: 'REPORT_FONT_UNAVAILABLE' });
    t.equal(loadCjkFont(), face, 'the face is cut out of the collection once per process');
    t.match(bothZones('2026-03-01T10:04:05.123Z'), /^2026-03-01 18:04:05\.123（北京时间 Asia\/Shanghai）\/ 2026-03-01T10:04:05\.123Z（UTC）$/);
  });

  await t.test('line wrapping from memoised advance widths breaks where measuring each line whole does', async (t) => {
    const doc = await PDFDocument.create();
    doc.registerFontkit(fontkit);
    const font = await doc.embedFont(loadCjkFont(), { subset: true });
    // The old way: lay out the whole line again for every character.
    const naive = (text: string, size: number, width: number): string[] => {
      const out: string[] = [];
      for (const para of text.split('\n')) {
        let line = '';
        for (const ch of para) {
          if (line && font.widthOfTextAtSize(line + ch, size) > width) {
            out.push(line);
            line = '';
          }
          line += ch;
        }
        out.push(line);
      }
      return out;
    };
    const widths = new Map<string, number>();
    const texts = [
      '签名者身份经证书链验证为真实身份，证书在签名时有效且未被吊销；签名值覆盖原文摘要，原文未被篡改。',
      `SM3 ${'a3f09c41'.repeat(12)}\nCN=李医生,OU=心内科,O=示例市人民医院,C=CN · serial 7F3A9B, Wrapping Latin text: office fi fl AVATAR`,
      '2026-03-01 18:04:05.123（北京时间 Asia/Shanghai）/ 2026-03-01T10:04:05.123Z（UTC）',
    ];
    for (const text of texts) {
      for (const [size, width] of [[9, 379.28], [9, 144], [7.5, 499.28]] as const) {
        const lines = wrapLines(font, text, size, width, widths);
        t.same(lines, naive(text, size, width), `same breaks at ${size} pt in ${width} pt`);
        t.ok(lines.every((l) => font.widthOfTextAtSize(l, size) <= width + 1e-9), 'no line is wider than the column');
        t.equal(lines.join(''), text.replace(/\n/g, ''), 'nothing lost');
      }
    }
    t.ok(widths.size > 50 && widths.has('签'), 'widths kept per character');
  });

  await t.test('PAdES report: ByteRange over the whole file, CAdES detached without signingTime', async (t) => {
    const bundle = fx.bundle('sm2-cms', { embedOriginal: true });
    const signer = await fx.reportSigner();
    const t0 = performance.now();
    const pdf = await evidenceReportPdf(bundle, await verifyBundle(bundle), { issuer: '示例医院 yiqian', signer });
    t.comment(`report ${pdf.length} bytes in ${Math.round(performance.now() - t0)} ms`);
    t.ok(pdf.length < 200_000, 'subset font keeps the report small');
    const text = pdf.toString('latin1');
    t.match(text, /\/SubFilter \/ETSI\.CAdES\.detached/);
    const m = /\/ByteRange \[(\d+) (\d+) (\d+) (\d+)\]/.exec(text)!;
    const [a, b, c, d] = m.slice(1).map(Number);
    t.equal(a, 0);
    t.equal(c + d, pdf.length, 'the second range ends at the end of the file');
    t.equal(pdf[b], 0x3c, 'the gap starts at <');
    t.equal(pdf[c - 1], 0x3e, 'and ends at >');
    // Contents = the DER CMS, then zero padding: cut at the end of the outer TLV.
    const contents = Buffer.from(text.slice(b + 1, c - 1), 'hex');
    const cms = contents.subarray(0, readTlv(contents, 0).next);
    t.ok(contents.subarray(cms.length).every((x) => x === 0), 'zero padding after the CMS');
    const sd = parseSignedData(cms);
    const types = sd.signerInfos[0].signedAttrs.map((x) => x.type);
    t.notOk(types.includes(OID_SIGNING_TIME), 'no signingTime attribute (EN 319 142-1 §5.2.1)');
    for (const o of [OID_SIGNING_CERTIFICATE_V2, OID_MESSAGE_DIGEST, OID_CONTENT_TYPE]) t.ok(types.includes(o), `signed attribute ${o}`);
    t.equal(sd.content, undefined, 'detached');
    const signed = Buffer.concat([pdf.subarray(0, b), pdf.subarray(c)]);
    const res = await verifyCms(cms, { content: signed });
    t.ok(res.checks.find((x) => x.name === 'signatureIntact')?.ok, 'the CMS verifies over the two ranges');
    t.ok(res.checks.find((x) => x.name === 'contentIntact')?.ok, 'messageDigest = SHA-256 of the signed ranges');
    const doc = await PDFDocument.load(pdf);
    t.equal(doc.getPage(0).getSize().width.toFixed(2), '595.28', 'A4');
    t.match(doc.getTitle() ?? '', /电子数据存证报告/);

    const again = await fx.reportSigner();
    t.ok(again.certificate.equals(signer.certificate), 'the report key and certificate are reused');
    const keys = (await fx.pki.custody.list()).filter((k) => k.label === REPORT_KEY_LABEL);
    t.equal(keys.length, 1, 'one evidence-report key in the HSM');
    t.equal(keys[0].algorithm, 'ecdsa-p256');
  });
});
