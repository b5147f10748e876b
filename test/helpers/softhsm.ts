// A private SoftHSM2 token for one test (../shared/PEERS.md): its own config and token
// directory under a temporary folder, so tests never touch the system token store.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

export interface TestToken {
  dir: string;
  conf: string;
  module: string;
  label: string;
  pin: string;
  soPin: string;
  /** Removes the token directory (simulates token removal when done while in use). */
  remove(): void;
}

/**
 * Initialises a fresh token. Sets process.env.SOFTHSM2_CONF, which SoftHSM2 reads once at
 * C_Initialize: one token configuration per test process.
 */
export function makeTestToken(label = 'yiqian', pin = '123456', soPin = '12345678'): TestToken {
  const dir = mkdtempSync(join(tmpdir(), 'yq-hsm-'));
  // Removed when the test process ends, whatever the test did.
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const tokens = join(dir, 'tokens');
  mkdirSync(tokens);
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  process.env.SOFTHSM2_CONF = conf;
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--so-pin', soPin, '--pin', pin], {
    env: { ...process.env, SOFTHSM2_CONF: conf },
    stdio: 'ignore',
  });
  return {
    dir, conf, module: SOFTHSM_MODULE, label, pin, soPin,
    remove: () => rmSync(tokens, { recursive: true, force: true }),
  };
}
