// Baseline: `openssl speed sm2` on one core, run once per bench run and shared.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

let cached: Promise<{ sign: number; verify: number }> | undefined;

/** Parses " 256 bits SM2 (CurveSM2)   0.0006s   0.0006s   1729.5   1719.8" (sign/s, verify/s). */
export function opensslSpeedSm2(seconds = 2): Promise<{ sign: number; verify: number }> {
  cached ??= promisify(execFile)('openssl', ['speed', '-seconds', String(seconds), 'sm2'], { maxBuffer: 1 << 20 }).then(({ stdout }) => {
    const line = stdout.split('\n').find((l) => /SM2 \(/.test(l) && /\d+\.\d+\s+\d+\.\d+\s*$/.test(l));
    const m = line && /([\d.]+)\s+([\d.]+)\s*$/.exec(line);
    if (!m) throw new Error(`cannot parse openssl speed sm2 output:\n${stdout}`);
    return { sign: Number(m[1]), verify: Number(m[2]) };
  });
  return cached;
}
