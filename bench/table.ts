// Benchmarks are not tests: they print figures with a ratio to a baseline measured in the same run.

export interface BenchRow {
  /** What was measured, e.g. "SM2 sign (addon)". */
  name: string;
  opsPerSec: number;
  /** The baseline it is compared with, e.g. "openssl speed sm2 sign". */
  baseline: string;
  baselineOpsPerSec: number;
}

/** Runs `op` repeatedly for about `seconds` (after a short warm-up) and returns ops/s. */
export async function measure(op: () => unknown | Promise<unknown>, seconds = 2, concurrency = 1): Promise<number> {
  const warm = Date.now() + 200;
  while (Date.now() < warm) await op();
  let count = 0;
  const end = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9));
  const start = process.hrtime.bigint();
  const worker = async (): Promise<void> => {
    while (process.hrtime.bigint() < end) {
      await op();
      count++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  return count / elapsed;
}

export function printTable(rows: BenchRow[]): void {
  const fmt = (n: number): string => n.toLocaleString('en-US', { maximumFractionDigits: 0 });
  const lines = rows.map((r) => [r.name, fmt(r.opsPerSec), r.baseline, fmt(r.baselineOpsPerSec), (r.opsPerSec / r.baselineOpsPerSec).toFixed(2)]);
  const head = ['benchmark', 'ops/s', 'baseline', 'baseline ops/s', 'ratio'];
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const row = (cells: string[]): string => cells.map((c, i) => (i === 1 || i >= 3 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  console.log(row(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const l of lines) console.log(row(l));
}
