// A real certificate authority for one test process: a private SoftHSM2 token (softhsm.ts), a
// real LMDB store, the PKCS#11 custody, and the two hierarchies made as `yiqian init` makes them
// (pki/hierarchy.ts), wired like main.ts's buildPki (not imported: main.ts pulls in the whole
// appliance, which costs each test file seconds of TypeScript loading). SoftHSM2 reads its config
// once per process: one fixture per test file.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPkcs11Custody, type Pkcs11Custody } from '../../firmware-bridge/pkcs11/pkcs11-custody.js';
import { defaultConfig, type Config } from '../../appliance/src/config/config.js';
import { createSm2Signer, generateSm2KeyPair, sm2Digest, sm2SpkiFromPublicKey } from '../../appliance/src/crypto/sm2.js';
import { createAuthorities, type Authorities } from '../../appliance/src/pki/authorities.js';
import { createCertificateService, type CertificateService } from '../../appliance/src/pki/certificate-service.js';
import { resolveProfiles, type ProfileSet } from '../../appliance/src/pki/profiles.js';
import { createHierarchies, type CreatedHierarchies } from '../../appliance/src/pki/hierarchy.js';
import { openStore, type Store } from '../../appliance/src/store/open-store.js';
import { makeTestToken, type TestToken } from './softhsm.js';

export interface PkiFixture {
  dir: string;
  token: TestToken;
  store: Store;
  custody: Pkcs11Custody;
  config: Config;
  pki: { profiles: ProfileSet; authorities: Authorities; certificates: CertificateService };
  created: CreatedHierarchies;
  close(): Promise<void>;
}

export async function makePkiFixture(opts: { ecdsaAlgorithm?: 'ecdsa-p256' | 'rsa-3072'; profiles?: Record<string, Record<string, unknown>> } = {}): Promise<PkiFixture> {
  const token = makeTestToken('yiqian-pki');
  const dir = mkdtempSync(join(tmpdir(), 'yq-pki-'));
  const store = await openStore(dir);
  const custody = await openPkcs11Custody(
    {
      module: token.module,
      tokenLabel: token.label,
      pin: token.pin,
      poolSize: 4,
      softwareSm2: { generate: generateSm2KeyPair, signer: (d) => createSm2Signer(d), spki: sm2SpkiFromPublicKey, digest: sm2Digest },
    },
    store.keys,
  );
  const config = defaultConfig();
  config.pki.ecdsaAlgorithm = opts.ecdsaAlgorithm ?? 'ecdsa-p256';
  if (opts.profiles) config.pki.profiles = opts.profiles;
  const profiles = resolveProfiles(config.pki.profiles);
  const authorities = createAuthorities({ cas: store.cas, custody });
  const certificates = createCertificateService({
    certs: store.certs,
    audit: store.audit,
    authorities,
    profiles,
    publicBaseUrl: config.publicBaseUrl,
    organisation: config.pki.organisation,
    country: config.pki.country,
  });
  const pki = { profiles, authorities, certificates };
  const tls = await custody.generate({ algorithm: 'ecdsa-p256', label: config.device.tlsKeyLabel, purpose: 'test TLS key' });
  const created = await createHierarchies(
    {
      custody,
      cas: store.cas,
      authorities: pki.authorities,
      certificates: pki.certificates,
      publicBaseUrl: config.publicBaseUrl,
      organisation: config.pki.organisation,
      country: config.pki.country,
      ecdsaAlgorithm: config.pki.ecdsaAlgorithm,
      actor: 'test:init',
    },
    { key: tls, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] },
  );
  return {
    dir,
    token,
    store,
    custody,
    config,
    pki,
    created,
    async close() {
      await custody.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
      rmSync(token.dir, { recursive: true, force: true });
    },
  };
}

/** `openssl` with arguments; returns stdout as text (throws with stderr on a non-zero exit). */
export function openssl(args: string[], input?: string | Buffer): string {
  return opensslBytes(args, input).toString('utf8');
}

export function opensslBytes(args: string[], input?: string | Buffer): Buffer {
  return execFileSync('openssl', args, { input, stdio: ['pipe', 'pipe', 'pipe'] });
}

export type CsrKind = 'sm2' | 'ecdsa-p256' | 'rsa-2048';

/**
 * A key and a PKCS#10 request made by the OpenSSL command line in `dir`: SM2 signed with SM3 and
 * the default ID (`-sm3 -sigopt distid:1234567812345678`), P-256 and RSA with SHA-256.
 */
export function opensslCsr(dir: string, kind: CsrKind, subject: string, name: string = kind): { keyFile: string; csrPem: string; csrFile: string } {
  const keyFile = join(dir, `${name}.key`);
  const csrFile = join(dir, `${name}.csr`);
  if (kind === 'sm2') openssl(['genpkey', '-algorithm', 'SM2', '-out', keyFile]);
  else if (kind === 'ecdsa-p256') openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', keyFile]);
  else openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', keyFile]);
  const sign = kind === 'sm2' ? ['-sm3', '-sigopt', 'distid:1234567812345678'] : ['-sha256'];
  openssl(['req', '-new', '-key', keyFile, '-subj', subject, '-utf8', ...sign, '-out', csrFile]);
  return { keyFile, csrFile, csrPem: readFileSync(csrFile, 'utf8') };
}

export function writeTemp(dir: string, name: string, content: string | Buffer): string {
  const f = join(dir, name);
  writeFileSync(f, content);
  return f;
}
