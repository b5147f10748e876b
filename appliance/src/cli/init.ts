// `yiqian init`: a development appliance in DATA — a SoftHSM2 token, the device's own keys
// (ECDSA P-256 TLS key in hsm custody, SM2 device-identity key in wrapped custody), the TLS
// certificate, the store and config.json. config.json is written last: its presence means
// "initialised"; a run that fails removes what it made, so nothing half-written stays.
import { execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, renameSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { YiqianError, Codes } from '../errors.js';
import { CONFIG_FILE, defaultConfig, resolveInData, type Config } from '../config/config.js';
import { openStore } from '../store/open-store.js';
import { openCustody, TLS_CERT_FILE } from '../main.js';
import { buildSelfSignedCertificate, derToPem } from '../pki/self-signed.js';
import { type Command, dataDir, dataHelp, dataOption, jsonHelp, jsonOption } from './command.js';

/** What init creates inside DATA; --force removes exactly these. */
const OWNED = [CONFIG_FILE, 'db', 'hsm', 'secrets', 'tls'];

function writePrivate(file: string, content: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  writeFileSync(file, content, { mode: 0o600 });
}

function writeAtomic(file: string, content: string, mode = 0o644): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, content, { mode });
  renameSync(tmp, file);
}

function ensureWritable(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    if (!statSync(dir).isDirectory()) throw new Error('not a directory');
    accessSync(dir, constants.W_OK);
    const probe = join(dir, `.probe-${process.pid}`);
    writeFileSync(probe, '');
    rmSync(probe);
  } catch (e) {
    throw new YiqianError(Codes.DATA_DIR_UNWRITABLE, 500, {
      zh: `数据目录不可写：${dir}（${(e as NodeJS.ErrnoException).code ?? (e as Error).message}）`,
      en: `data directory is not writable: ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    });
  }
}

function digits(n: number): string {
  return Array.from({ length: n }, () => randomInt(10)).join('');
}

/** A SoftHSM2 token private to this data dir (../shared/PEERS.md). */
function initSoftHsmToken(dataDir: string, config: Config, pin: string): void {
  const conf = resolveInData(dataDir, config.hsm.softhsmConf!);
  const tokens = join(dirname(conf), 'tokens');
  mkdirSync(tokens, { recursive: true, mode: 0o700 });
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`, { mode: 0o600 });
  try {
    execFileSync('softhsm2-util', ['--init-token', '--free', '--label', config.hsm.tokenLabel, '--so-pin', digits(12), '--pin', pin], {
      env: { ...process.env, SOFTHSM2_CONF: conf },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  } catch (e) {
    const why = (e as { stderr?: Buffer }).stderr?.toString().trim() || (e as Error).message;
    throw new YiqianError(Codes.HSM_UNAVAILABLE, 500, { zh: `无法初始化 SoftHSM2 令牌：${why}`, en: `cannot initialise the SoftHSM2 token: ${why}` });
  }
}

export interface InitResult {
  dataDir: string;
  created: boolean;
  keys?: { label: string; algorithm: string; mode: string; uri: string }[];
  tlsCertificate?: string;
}

export async function initialise(dir: string, force: boolean): Promise<InitResult> {
  ensureWritable(dir);
  if (existsSync(join(dir, CONFIG_FILE)) && !force) return { dataDir: dir, created: false };
  // A previous run that crashed before writing config.json left no valid appliance: clear it too.
  for (const name of OWNED) rmSync(join(dir, name), { recursive: true, force: true });

  const config = defaultConfig();
  const pin = digits(8);
  try {
    writePrivate(resolveInData(dir, config.hsm.pinFile!), `${pin}\n`);
    initSoftHsmToken(dir, config, pin);
    const store = await openStore(dir);
    try {
      const custody = await openCustody(dir, config, store, pin);
      try {
        const tls = await custody.generate({ algorithm: 'ecdsa-p256', label: config.device.tlsKeyLabel, purpose: 'TLS server key of the appliance (HTTPS API)', mode: 'hsm' });
        const identity = await custody.generate({ algorithm: 'sm2', label: config.device.identityKeyLabel, purpose: 'SM2 device identity of the appliance', mode: 'wrapped' });
        const cert = await buildSelfSignedCertificate({
          signer: await custody.signer(tls.uri),
          subjectCN: `yiqian ${hostname()}`,
          organisation: 'yiqian appliance',
          dnsNames: config.device.tlsDnsNames,
          ipAddresses: config.device.tlsIpAddresses,
          days: 825,
        });
        mkdirSync(join(dir, 'tls'), { recursive: true });
        writeAtomic(join(dir, TLS_CERT_FILE), derToPem(cert));
        await store.meta.set('device', { initialisedAt: new Date().toISOString(), hostname: hostname(), tlsKey: tls.uri, identityKey: identity.uri });
        await store.audit.append({ actor: 'cli:init', action: 'appliance.init', target: dir, outcome: 'ok', detail: { keys: [tls.uri, identity.uri] } });
        writeAtomic(join(dir, CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`);
        return {
          dataDir: dir,
          created: true,
          keys: [tls, identity].map((k) => ({ label: k.label, algorithm: k.algorithm, mode: k.mode, uri: k.uri })),
          tlsCertificate: join(dir, TLS_CERT_FILE),
        };
      } finally {
        await custody.close();
      }
    } finally {
      await store.close();
    }
  } catch (e) {
    for (const name of OWNED) rmSync(join(dir, name), { recursive: true, force: true });
    throw e;
  }
}

export const initCommand: Command = {
  name: 'init',
  summary: 'initialise a development appliance (SoftHSM2 token, device keys, TLS certificate, store)',
  usage: '--data DIR [--force] [--json]',
  options: { ...dataOption, ...jsonOption, force: { type: 'boolean' } },
  help: { ...dataHelp, ...jsonHelp, force: 're-initialise: destroys the token, keys and store in DIR' },
  async run(values) {
    const dir = dataDir(values);
    const result = await initialise(dir, Boolean(values.force));
    if (values.json) {
      console.log(JSON.stringify(result));
    } else if (!result.created) {
      console.log(`${dir} is already initialised; nothing changed (use --force to re-initialise).`);
    } else {
      console.log(`Initialised ${dir}`);
      for (const k of result.keys ?? []) console.log(`  key ${k.label}: ${k.algorithm}, ${k.mode} custody, ${k.uri}`);
      console.log(`  TLS certificate: ${result.tlsCertificate}`);
    }
  },
};
