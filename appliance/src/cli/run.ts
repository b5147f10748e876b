// `yiqian` command line. Bad arguments: one-line reason on stderr, exit 2; failures: `CODE: reason`, exit 1.
import { isYiqianError } from '../errors.js';
import { type Command, UsageError, runCommand } from './command.js';
import { initCommand } from './init.js';
import { serveCommand } from './serve.js';
import { configCheckCommand } from './config-check.js';
import { appCommands } from './app.js';
import { keysListCommand } from './keys.js';
import { caCommands } from './ca.js';
import { staffCommands } from './staff.js';
import { trustCommands } from './trust.js';
import { signingKeyCommands } from './signing-keys.js';
import { evidenceCommands } from './evidence.js';

const commands: Command[] = [initCommand, serveCommand, configCheckCommand, ...appCommands, keysListCommand, ...caCommands, ...staffCommands, ...signingKeyCommands, ...trustCommands, ...evidenceCommands];

function overview(): string {
  const width = Math.max(...commands.map((c) => c.name.length)) + 2;
  return ['yiqian (医签) — HSM-backed signing appliance', '', 'usage: yiqian <command> [options]   (yiqian <command> --help for its options)', '', 'commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}${c.summary}`)].join('\n');
}

/** Longest command name that prefixes argv ("evidence project create" before "app create" before "app"). */
function findCommand(argv: string[]): { cmd?: Command; rest: string[] } {
  for (const words of [3, 2, 1]) {
    const name = argv.slice(0, words).join(' ');
    const cmd = commands.find((c) => c.name === name);
    if (cmd) return { cmd, rest: argv.slice(words) };
  }
  return { rest: argv };
}

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    console.log(overview());
    return argv.length === 0 ? 2 : 0;
  }
  const { cmd, rest } = findCommand(argv);
  if (!cmd) {
    const group = commands.filter((c) => c.name.startsWith(`${argv[0]} `));
    if (group.length && (rest.length === 1 || rest[1]?.startsWith('-'))) {
      if (rest.includes('--help') || rest.includes('-h')) {
        console.log(group.map((c) => `yiqian ${c.name.padEnd(16)} ${c.summary}`).join('\n'));
        return 0;
      }
      throw new UsageError(`yiqian ${argv[0]} needs a subcommand: ${group.map((c) => c.name.split(' ')[1]).join(', ')}`);
    }
    throw new UsageError(`unknown command "${argv.slice(0, 2).join(' ')}" (see yiqian --help)`);
  }
  return runCommand(cmd, rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof UsageError) {
      console.error(`yiqian: ${e.message}`);
      process.exitCode = 2;
    } else if (isYiqianError(e)) {
      console.error(`yiqian: ${e.code}: ${e.text.en} / ${e.text.zh}`);
      process.exitCode = 1;
    } else {
      console.error(`yiqian: unexpected error: ${(e as Error)?.message ?? String(e)}`);
      process.exitCode = 1;
    }
  },
);
