// A tiny command framework over node:util parseArgs: every command has --help, strict
// options, and bad arguments end in a one-line reason with exit code 2.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { resolve } from 'node:path';

export type Options = NonNullable<ParseArgsConfig['options']>;
export type Values = Record<string, string | boolean | string[] | undefined>;

export interface Command {
  /** e.g. "app create" */
  name: string;
  summary: string;
  /** Usage lines after "yiqian <name>". */
  usage: string;
  options: Options;
  /** Help text per option name. */
  help: Record<string, string>;
  run(values: Values, positionals: string[]): Promise<number | void>;
}

export class UsageError extends Error {}

export const dataOption: Options = { data: { type: 'string' } };
export const jsonOption: Options = { json: { type: 'boolean' } };
export const dataHelp = { data: 'data directory (default: $YIQIAN_DATA or ./var)' };
export const jsonHelp = { json: 'machine-readable JSON output' };

export function dataDir(values: Values): string {
  return resolve(String(values.data ?? process.env.YIQIAN_DATA ?? 'var'));
}

export function requireString(values: Values, name: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v.length === 0) throw new UsageError(`--${name} is required`);
  return v;
}

export function helpText(cmd: Command): string {
  const lines = [`yiqian ${cmd.name} — ${cmd.summary}`, '', `usage: yiqian ${cmd.name} ${cmd.usage}`.trimEnd(), '', 'options:'];
  for (const [name, spec] of Object.entries(cmd.options)) {
    const arg = spec.type === 'string' ? ` <${name}>` : '';
    lines.push(`  --${name}${arg}`.padEnd(28) + (cmd.help[name] ?? ''));
  }
  lines.push('  --help'.padEnd(28) + 'show this help');
  return lines.join('\n');
}

export async function runCommand(cmd: Command, argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...cmd.options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: true });
  } catch (e) {
    throw new UsageError(`${(e as Error).message.split('\n')[0]} (see yiqian ${cmd.name} --help)`);
  }
  if (parsed.values.help) {
    console.log(helpText(cmd));
    return 0;
  }
  return (await cmd.run(parsed.values as Values, parsed.positionals)) ?? 0;
}

/** Prints rows as an aligned table. */
export function printTable(rows: Record<string, unknown>[], columns: string[]): void {
  if (rows.length === 0) {
    console.log('(none)');
    return;
  }
  const cells = rows.map((r) => columns.map((c) => String(r[c] ?? '')));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i].length)));
  console.log(columns.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd());
  for (const row of cells) console.log(row.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd());
}
