// Evidence reports and bundles checked by real peers (../shared/PEERS.md): poppler's pdfsig with
// an NSS database that trusts our ECDSA root says the appliance-signed report is valid and
// covers the whole document, and reports one changed byte inside the signed range as a digest
// mismatch; pdftotext extracts the Chinese text (the subset font maps back to Unicode); the
// offline verifier runs as its own process (ops/verify-evidence.ts — no store, no HSM) on good
// and broken bundles, and the launcher ops/verify-evidence runs the compiled dist/.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { verifyBundle, type EvidenceBundle } from '../../appliance/src/evidence/bundle.js';
import { evidenceReportPdf } from '../../appliance/src/evidence/report-pdf.js';
import { ROOT } from '../helpers/appliance.js';
import { makeEvidenceFixture } from '../helpers/evidence-bundle-fixture.js';

function pdfsig(nss: string, file: string): string {
  // pdfsig exits 0 whatever it finds: parse its text (PEERS.md).
  return execFileSync('pdfsig', ['-nssdir', `sql:${nss}`, '-no-ocsp', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** The verifier as its own Node process, TypeScript through tap's loader (no build needed). */
function verifierTs(args: string[]): { code: number; out: string } {
  const loader = process.execArgv.filter((a) => a.includes('@tapjs/typescript'));
  const r = spawnSync(process.execPath, [...loader, join(ROOT, 'ops/verify-evidence.ts'), ...args], { encoding: 'utf8', env: { ...process.env, SOFTHSM2_CONF: '/nonexistent' } });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

t.test('evidence reports and bundles with real peers', async (t) => {
  const fx = await makeEvidenceFixture();
  t.teardown(() => fx.close());
  const dir = mkdtempSync(join(tmpdir(), 'yq-e4-peers-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const nss = join(dir, 'nss');
  mkdirSync(nss);
  writeFileSync(join(dir, 'ecdsa-root.pem'), fx.ecdsaRootPem);
  execFileSync('certutil', ['-N', '-d', `sql:${nss}`, '--empty-password']);
  execFileSync('certutil', ['-A', '-d', `sql:${nss}`, '-n', 'yiqian-ecdsa-root', '-t', 'CT,C,C', '-i', join(dir, 'ecdsa-root.pem')]);
  const signer = await fx.reportSigner();

  await t.test('pdfsig: valid, whole document; a changed byte is a digest mismatch; pdftotext reads Chinese', async (t) => {
    for (const name of ['sm2-cms', 'digest-only'] as const) {
      const bundle = fx.bundle(name, { embedOriginal: true });
      const pdf = await evidenceReportPdf(bundle, await verifyBundle(bundle), { issuer: '示例市人民医院 yiqian-01', signer });
      const file = join(dir, `${name}.pdf`);
      writeFileSync(file, pdf);
      const out = pdfsig(nss, file);
      t.match(out, /Signature Validation: Signature is Valid\./, `${name}: pdfsig says the signature is valid`);
      t.match(out, /Total document signed/, `${name}: the signature covers the whole document`);
      // Certificate validation is NSS's own business (poppler 22.12 answers "Unknown issue" for our
      // chain although `certutil -V -u S` accepts it): recorded, not asserted.
      t.comment(`${name}: ${/Certificate Validation: .*/.exec(out)?.[0] ?? 'no certificate validation line'}`);
      t.match(out, /ETSI\.CAdES\.detached/, 'PAdES subfilter');

      // One changed byte inside the signed range (in the first range, past the header).
      const text = pdf.toString('latin1');
      const br = /\/ByteRange \[(\d+) (\d+) (\d+) (\d+)\]/.exec(text)!;
      const tampered = Buffer.from(pdf);
      const at = text.indexOf('/Producer');
      t.ok(at > 0 && at < Number(br[2]), 'the changed byte lies in the signed range');
      tampered[at + 2] ^= 0x01;
      const tf = join(dir, `${name}-tampered.pdf`);
      writeFileSync(tf, tampered);
      t.match(pdfsig(nss, tf), /Digest Mismatch\./, `${name}: pdfsig reports the changed byte as a digest mismatch`);

      const txt = execFileSync('pdftotext', ['-enc', 'UTF-8', file, '-'], { encoding: 'utf8' });
      for (const s of ['电子数据存证报告', '真实身份', '真实意愿', '签名未改', '原文未改', '存在性证明', '锚定检查点', '北京时间', bundle.record.id]) t.ok(txt.includes(s), `${name}: pdftotext finds ${s}`);
      if (name === 'sm2-cms') t.ok(txt.includes('张医生'), 'the signer named in Chinese');
    }
  });

  await t.test('the offline verifier as a process: exit 0 for good bundles, non-zero naming the broken part', async (t) => {
    const write = (n: string, b: EvidenceBundle): string => {
      const f = join(dir, `${n}.json`);
      writeFileSync(f, JSON.stringify(b, null, 1));
      return f;
    };
    for (const name of ['sm2-cms', 'ecdsa-cms', 'sm2-raw-token', 'digest-only'] as const) {
      const r = verifierTs([write(name, fx.bundle(name, { embedOriginal: true }))]);
      t.equal(r.code, 0, `${name} (${fx.records[name].record.tier}): exit 0`);
      t.match(r.out, /证据包全部检查通过/);
    }
    const bad = JSON.parse(JSON.stringify(fx.bundle('ecdsa-cms'))) as EvidenceBundle;
    const tok = Buffer.from(bad.checkpoint.timestampToken, 'base64');
    tok[tok.length - 3] ^= 0x01;
    bad.checkpoint.timestampToken = tok.toString('base64');
    const r = verifierTs([write('bad-cp-token', bad)]);
    t.equal(r.code, 1, 'a broken checkpoint token: exit 1');
    t.match(r.out, /首个失败部分为「检查点时间戳」\/ verdict: FAILED, first failing part: checkpointTimestamp/);
  });

  await t.test('the launcher ops/verify-evidence runs the compiled verifier (npx tsc first)', async (t) => {
    const compiled = join(ROOT, 'dist/ops/verify-evidence.js');
    t.ok(existsSync(compiled), `${compiled} exists (build with npx tsc -p tsconfig.json)`);
    if (!existsSync(compiled)) return;
    const f = join(dir, 'launcher.json');
    writeFileSync(f, JSON.stringify(fx.bundle('digest-only')));
    // A plain environment: tap puts its own `node` wrapper (with loader hooks) first on PATH,
    // which an examiner does not have; the shebang must find the real node.
    const env = { PATH: `${dirname(process.execPath)}:/usr/bin:/bin` };
    const r = spawnSync(join(ROOT, 'ops/verify-evidence'), [f], { encoding: 'utf8', env });
    t.equal(r.status, 0, r.stdout + r.stderr);
    const u = spawnSync(join(ROOT, 'ops/verify-evidence'), [], { encoding: 'utf8', env });
    t.equal(u.status, 2, 'usage error');
  });
});
