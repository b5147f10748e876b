// ops/verify-evidence: the offline verifier of evidence proof bundles (issue 6 item 4).
//   ops/verify-evidence bundle.json [--original FILE] [--trust ROOTS.pem] [--json]
// Checks a bundle end to end with evidence/bundle.ts (pure code: no store, no HSM, no network),
// prints each check in Chinese and English, and exits 0 only when every check passes; 1 names
// the first part that failed; 2 for a usage error or an unreadable file.
// Imports only pure modules (evidence/, signing/cms-verify, pki/path-validation, crypto/, asn1/),
// so a court expert can run it from a copy of dist/ without the appliance.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { fromPem } from '../appliance/src/crypto/der.js';
import { PART_LABELS, verifyBundle, type BundleVerdict } from '../appliance/src/evidence/bundle.js';

const USAGE = `用法 / usage: verify-evidence <bundle.json> [--original <file>] [--trust <roots.pem>] [--json]
  --original  原文文件（证据包未内嵌原文时）/ the original, when the bundle does not embed it
  --trust     以此 PEM 文件中的根证书代替证据包自带的信任锚 / use these roots instead of the bundle's anchors
  --json      输出 JSON / print the verdict as JSON`;

export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

const MARK = { true: '通过 PASS', false: '失败 FAIL', null: '不适用 N/A' } as const;

export function formatVerdict(v: BundleVerdict): string[] {
  const lines: string[] = [];
  for (const c of v.checks) {
    const label = PART_LABELS[c.part];
    lines.push(`[${MARK[String(c.ok) as 'true' | 'false' | 'null']}] ${label.zh} / ${label.en}: ${c.zh} / ${c.en}${c.reason ? ` — ${c.reason}` : ''}`);
  }
  if (v.judgedAt) lines.push(`证书判定时间 / certificate judged at: ${v.judgedAt} (${v.judgedAtSource === 'timestamp' ? '签名时间戳 / signature time-stamp' : '接收时间 / time of receipt'})`);
  for (const f of v.anchorFingerprints) lines.push(`信任锚 SHA-256 / trust anchor SHA-256: ${f}`);
  if (v.ok) {
    lines.push('结论：证据包全部检查通过 / verdict: every check of the bundle passed');
  } else {
    const f = v.firstFailure!;
    lines.push(`结论：验证失败，首个失败部分为「${PART_LABELS[f.part].zh}」/ verdict: FAILED, first failing part: ${f.part} (${PART_LABELS[f.part].en})`);
  }
  return lines;
}

export async function main(args: string[], io: CliIo = { out: (l) => process.stdout.write(`${l}\n`), err: (l) => process.stderr.write(`${l}\n`) }): Promise<number> {
  let bundlePath: string | undefined;
  let originalPath: string | undefined;
  let trustPath: string | undefined;
  let json = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--original' || a === '--trust') {
      const v = args[++i];
      if (v === undefined) {
        io.err(`${a} 需要文件名 / ${a} needs a file name\n${USAGE}`);
        return 2;
      }
      if (a === '--original') originalPath = v;
      else trustPath = v;
    } else if (a === '--json') {
      json = true;
    } else if (a === '-h' || a === '--help') {
      io.out(USAGE);
      return 0;
    } else if (bundlePath === undefined && !a.startsWith('--')) {
      bundlePath = a;
    } else {
      io.err(`未知参数 / unknown argument: ${a}\n${USAGE}`);
      return 2;
    }
  }
  if (bundlePath === undefined) {
    io.err(USAGE);
    return 2;
  }
  let bundle: unknown;
  let original: Buffer | undefined;
  let anchors: Buffer[] | undefined;
  try {
    bundle = JSON.parse(readFileSync(bundlePath, 'utf8'));
    if (originalPath !== undefined) original = readFileSync(originalPath);
    if (trustPath !== undefined) {
      anchors = fromPem(readFileSync(trustPath, 'utf8')).filter((p) => p.label === 'CERTIFICATE').map((p) => p.der);
      if (anchors.length === 0) throw new Error(`${trustPath} holds no CERTIFICATE`);
    }
  } catch (e) {
    io.err(`无法读取输入 / cannot read the input: ${e instanceof Error ? e.message : String(e)}`);
    return 2;
  }
  const v = await verifyBundle(bundle, { ...(original ? { original } : {}), ...(anchors ? { anchors } : {}) });
  if (json) io.out(JSON.stringify(v, null, 2));
  else for (const l of formatVerdict(v)) io.out(l);
  return v.ok ? 0 : 1;
}

// Run directly (`node dist/ops/verify-evidence.js …`) as well as through the ops/verify-evidence launcher.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
