// BouncyCastle as a test peer (../shared/PEERS.md): the Java sources in test/interop/java are
// compiled once per test process into a temporary directory, and each check batch runs in ONE
// JVM (a JVM start costs about a second). Later suites (CMS, TSP, certificates) add their own
// main classes next to Sm2Interop.java and call runJava with them.
import { execFile, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const BC_JARS = ['/usr/share/java/bcprov.jar', '/usr/share/java/bcpkix.jar', '/usr/share/java/bcutil.jar'];
export const BC_CLASSPATH = BC_JARS.join(':');
export const JAVA_SOURCES = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'interop', 'java');

let compiled: Promise<string> | undefined;

/** Compiles every .java file of test/interop/java (once per process); resolves to the class dir. */
export function compileJava(): Promise<string> {
  compiled ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'yq-bc-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const sources = (await readdir(JAVA_SOURCES)).filter((f) => f.endsWith('.java')).map((f) => join(JAVA_SOURCES, f));
    if (sources.length === 0) throw new Error(`no Java sources in ${JAVA_SOURCES}`);
    await promisify(execFile)('javac', ['-nowarn', '-encoding', 'UTF-8', '-cp', BC_CLASSPATH, '-d', dir, ...sources], { maxBuffer: 1 << 22 });
    return dir;
  })();
  return compiled;
}

/**
 * Runs `java mainClass args…` with BouncyCastle on the class path, writes `stdin` to it and
 * resolves to its stdout. Rejects with stderr if the JVM exits non-zero.
 */
export async function runJava(mainClass: string, args: string[] = [], stdin?: string): Promise<string> {
  const classes = await compileJava();
  return new Promise((resolvePromise, reject) => {
    const child = spawn('java', ['-Xshare:auto', '-XX:TieredStopAtLevel=1', '-cp', `${classes}:${BC_CLASSPATH}`, mainClass, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolvePromise(Buffer.concat(out).toString('utf8'));
      else reject(new Error(`java ${mainClass} exited ${code}: ${Buffer.concat(err).toString('utf8')}`));
    });
    child.stdin.end(stdin ?? '');
  });
}

/** Runs a line-per-command batch and returns one output line per input line. */
export async function runJavaBatch(mainClass: string, lines: string[]): Promise<string[]> {
  const out = (await runJava(mainClass, [], lines.join('\n') + '\n')).split('\n').filter((l) => l.length > 0);
  if (out.length !== lines.length) throw new Error(`${mainClass}: ${lines.length} commands but ${out.length} results:\n${out.join('\n')}`);
  return out;
}
