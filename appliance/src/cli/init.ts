// `yiqian init`: a development appliance in DATA — a SoftHSM2 token, the device's own keys
// (ECDSA P-256 TLS key in hsm custody, SM2 device-identity key in wrapped custody), the two CA
// hierarchies with their OCSP and TSA certificates (pki/hierarchy.ts), the TLS certificate
// issued by the ECDSA issuing CA (tls/device.pem, its chain in tls/chain.pem), the store and
// config.json. config.json is written last: its presence means "initialised"; a run that fails
// removes what it made, so nothing half-written stays.
import { execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, renameSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { YiqianError, Codes } from '../errors.js';
import { CONFIG_FILE, defaultConfig, resolveInData, type Config } from '../config/config.js';
import { openStore } from '../store/open-store.js';
import { buildPki, openCustody, TLS_CERT_FILE, TLS_CHAIN_FILE } from '../main.js';
import { createHierarchies } from '../pki/hierarchy.js';
import { type Command, UsageError, dataDir, dataHelp, dataOption, jsonHelp, jsonOption } from './command.js';

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
  /** The CAs made (ids, subjects, algorithms, key URIs). */
  cas?: { id: string; subject: string; algorithm: string; keyUri: string; notAfter: string }[];
  tlsCertificate?: string;
  tlsChain?: string;
}

export interface InitOptions {
  /** Key algorithm of the second hierarchy's CAs (config pki.ecdsaAlgorithm); default P-256. */
  caAlgorithm?: 'ecdsa-p256' | 'rsa-3072';
}

export async function initialise(dir: string, force: boolean, opts: InitOptions = {}): Promise<InitResult> {
  ensureWritable(dir);
  if (existsSync(join(dir, CONFIG_FILE)) && !force) return { dataDir: dir, created: false };
  // A previous run that crashed before writing config.json left no valid appliance: clear it too.
  for (const name of OWNED) rmSync(join(dir, name), { recursive: true, force: true });

  const config = defaultConfig();
  if (opts.caAlgorithm) config.pki.ecdsaAlgorithm = opts.caAlgorithm;
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
        const pki = buildPki({ store, custody, config });
        const made = await createHierarchies(
          {
            custody,
            cas: store.cas,
            authorities: pki.authorities,
            certificates: pki.certificates,
            publicBaseUrl: config.publicBaseUrl,
            organisation: config.pki.organisation,
            country: config.pki.country,
            ecdsaAlgorithm: config.pki.ecdsaAlgorithm,
            actor: 'cli:init',
          },
          { key: tls, dnsNames: config.device.tlsDnsNames, ipAddresses: config.device.tlsIpAddresses, commonName: `yiqian ${hostname()}`.slice(0, 64) },
        );
        mkdirSync(join(dir, 'tls'), { recursive: true });
        writeAtomic(join(dir, TLS_CERT_FILE), made.deviceTls.certificatePem);
        writeAtomic(join(dir, TLS_CHAIN_FILE), made.deviceTls.chainPem);
        await store.meta.set('device', { initialisedAt: new Date().toISOString(), hostname: hostname(), tlsKey: tls.uri, identityKey: identity.uri });
        await store.audit.append({ actor: 'cli:init', action: 'appliance.init', target: dir, outcome: 'ok', detail: { keys: [tls.uri, identity.uri] } });
        writeAtomic(join(dir, CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`);
        return {
          dataDir: dir,
          created: true,
          keys: [tls, identity].map((k) => ({ label: k.label, algorithm: k.algorithm, mode: k.mode, uri: k.uri })),
          cas: made.cas.map((c) => ({ id: c.id, subject: c.subject, algorithm: c.algorithm, keyUri: c.keyUri, notAfter: c.notAfter })),
          tlsCertificate: join(dir, TLS_CERT_FILE),
          tlsChain: join(dir, TLS_CHAIN_FILE),
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
  summary: 'initialise a development appliance (SoftHSM2 token, device keys, CA hierarchies, TLS certificate, store)',
  usage: '--data DIR [--force] [--ca-algorithm ecdsa-p256|rsa-3072] [--json]',
  options: { ...dataOption, ...jsonOption, force: { type: 'boolean' }, 'ca-algorithm': { type: 'string' } },
  help: { ...dataHelp, ...jsonHelp, force: 're-initialise: destroys the token, keys and store in DIR', 'ca-algorithm': 'CA keys of the second hierarchy: ecdsa-p256 (default) or rsa-3072' },
  async run(values) {
    const dir = dataDir(values);
    const alg = values['ca-algorithm'];
    if (alg !== undefined && alg !== 'ecdsa-p256' && alg !== 'rsa-3072') throw new UsageError('--ca-algorithm must be ecdsa-p256 or rsa-3072');
    const result = await initialise(dir, Boolean(values.force), alg ? { caAlgorithm: alg } : {});
    if (values.json) {
      console.log(JSON.stringify(result));
    } else if (!result.created) {
      console.log(`${dir} is already initialised; nothing changed (use --force to re-initialise).`);
    } else {
      console.log(`Initialised ${dir}`);
      for (const k of result.keys ?? []) console.log(`  key ${k.label}: ${k.algorithm}, ${k.mode} custody, ${k.uri}`);
      for (const c of result.cas ?? []) console.log(`  CA ${c.id}: ${c.algorithm}, ${c.subject}, until ${c.notAfter}`);
      console.log(`  TLS certificate: ${result.tlsCertificate} (chain: ${result.tlsChain})`);
      console.log(`  root certificates: yiqian ca export --data ${dir} --out roots.pem`);
    }
  },
};
