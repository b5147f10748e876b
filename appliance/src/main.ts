// Composition root: the ONLY place that builds adapters (HSM, store) and wires services
// (ARCHITECTURE.md §2). The CLI commands call these builders.
import { existsSync, readFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createHttpServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { YiqianError, Codes, isYiqianError } from './errors.js';
import type Router from '@koa/router';
import { createApiApp } from './http/create-api-app.js';
import { createPublicApp } from './http/create-public-app.js';
import type { Readiness } from './http/create-api-app.js';
import { devicePkiRouter } from './http/device-pki-routes.js';
import { runCryptoSelfTest } from './crypto/self-test.js';
import { registerHsmTlsEngine } from '../../firmware-bridge/pkcs11/tls-engine.js';
import type { KeyCustody } from './crypto/interfaces.js';
import { type Config, loadConfig, parseHostPort, readHsmPin, resolveInData, uploadTimeoutMs } from './config/config.js';
import { openStore, type Store } from './store/open-store.js';
import { openPkcs11Custody } from '../../firmware-bridge/pkcs11/pkcs11-custody.js';
import { generateSm2KeyPair, createSm2Signer, sm2SpkiFromPublicKey, sm2Backend, sm2Digest, sm2Decrypt } from './crypto/sm2.js';
import { recordHsmOperation } from './metrics.js';
import { isDecrypter, isSecretWrapper } from './crypto/interfaces.js';
import { createPiiProtector } from './staff/pii.js';
import { createDepartmentService, type DepartmentService } from './staff/department-service.js';
import { createStaffService, type StaffService } from './staff/staff-service.js';
import { certificateStatistics, type CertificateStatistics } from './staff/cert-statistics.js';
import { staffRouter } from './http/staff-routes.js';
import { statsRouter } from './http/stats-routes.js';
import { log } from './log.js';
import { createAuthorities, type Authorities } from './pki/authorities.js';
import { createCertificateService, type CertificateService } from './pki/certificate-service.js';
import { resolveProfiles, type ProfileSet } from './pki/profiles.js';
import { certRoutes } from './http/cert-routes.js';
import { trustRouter } from './http/trust-routes.js';
import { createTrustStore, type TrustStoreService } from './signing/trust-store.js';
import { createRevocationChecker } from './signing/revocation-check.js';
import { createVerificationService } from './signing/verify-service.js';
import { verifyRouter } from './http/verify-routes.js';
import { createOcspClient } from './signing/ocsp-client.js';
import { createCrlFetcher, type CrlFetcher } from './signing/crl-fetch.js';
import type { RevocationChecker, VerificationService } from './signing/types.js';
import { heldKeyRouter } from './http/held-key-routes.js';
import { envelopeRouter } from './http/envelope-routes.js';
import { createHeldKeys, type HeldKeyAdmin } from './signing/held-keys.js';
import { pkiPublicRouter } from './http/pki-public-routes.js';
import { createRevocationPublicApp, isRevocationPublicPath, revocationApiRouter } from './http/revocation-routes.js';
import { CrlPublisher } from './pki/crl-publisher.js';
import { OcspResponder } from './pki/ocsp-responder.js';
import { RevocationService } from './pki/revocation.js';
import { metrics } from './metrics.js';
import { createTsaHandler } from './http/tsa-handler.js';
import { isTsaPublicPath, tsaApiRouter } from './http/tsa-routes.js';
import { createSvsApp, isSvsPath } from './http/svs-binding.js';
import { TsaService } from './tsa/tsa-service.js';
import { signRouter } from './http/sign-routes.js';
import { createSigningService } from './signing/sign-service.js';
import type { SigningService } from './signing/types.js';
import { openTimeSource } from '../../firmware-bridge/timesource/open-time-source.js';
import { ClockGate } from '../../firmware-bridge/timesource/clock-gate.js';
import { clockAuditEntry, clockReadiness } from '../../firmware-bridge/timesource/clock-report.js';
import { registerClockMetrics } from '../../firmware-bridge/timesource/clock-metrics.js';
import { DEVELOPMENT_NOTICE, type OpenTimeSource } from '../../firmware-bridge/timesource/time-source.js';
import { createCheckpointLog, defaultOrigin, type EvidenceCheckpointLog } from './evidence/checkpoint-log.js';
import { migrateToCold, type ColdMover } from './evidence/tier-migration.js';
import { JobScheduler } from './jobs/scheduler.js';
import { evidenceLogRouter, type LoggedRecord } from './http/evidence-log-routes.js';
import { jobRouter } from './http/job-routes.js';
import { createProjects, type ProjectAdmin, type ProjectDataRemover } from './evidence/projects.js';
import { evidenceProjectRouter, type PermissionCheck } from './http/evidence-project-routes.js';
import { evidenceStatsRouter } from './http/evidence-stats-routes.js';
import { openColdTierForRemoval, tieredProjectRemover } from './store/evidence-project-removal.js';
import { openBlobStore, type FsBlobStore } from './evidence/blob-store.js';
import { createFileIngest, type FileRecordStore } from './evidence/file-ingest.js';
import { createDownloadUrlSigner } from './evidence/signed-url.js';
import { createEvidenceDownloadApp, evidenceFileRouter, isEvidenceDownloadPath, isEvidenceUploadRequest, type RecordLookup } from './http/evidence-file-routes.js';
import { createPatientIdProtector, type PatientIdProtector } from './evidence/patient-id.js';
import { openEvidenceRepository, type EvidenceRepository } from './store/evidence-repository.js';
import { createEvidenceIngest, type EvidenceIngest } from './evidence/ingest.js';
import { createEvidenceRecords, type EvidenceRecords } from './evidence/records.js';
import { evidenceRecordRouter } from './http/evidence-record-routes.js';
import { createReportSigner } from './evidence/pades.js';
import { evidenceReportRouter } from './http/evidence-report-routes.js';

export const TLS_CERT_FILE = 'tls/device.pem';
/** The TLS certificate's chain up to, not including, the root (the ECDSA issuing CA). */
export const TLS_CHAIN_FILE = 'tls/chain.pem';

/** SoftHSM2 reads its private config from the environment once, at C_Initialize. */
function pointAtSoftHsmConf(dataDir: string, config: Config): void {
  if (config.hsm.softhsmConf) process.env.SOFTHSM2_CONF = resolveInData(dataDir, config.hsm.softhsmConf);
}

/** Called when the custody re-initialises the PKCS#11 library, so the TLS engine drops its stale session. */
export type ReinitListener = () => void;

export async function openCustody(dataDir: string, config: Config, store: Store, pin: string, onReinitialize?: ReinitListener): Promise<KeyCustody> {
  pointAtSoftHsmConf(dataDir, config);
  const p = config.hsm.sm2Profile;
  return openPkcs11Custody(
    {
      module: config.hsm.module,
      tokenLabel: config.hsm.tokenLabel,
      pin,
      poolSize: config.hsm.poolSize,
      kekLabel: config.hsm.kekLabel,
      sm2Profile: p && {
        name: p.name,
        keyGenMechanism: p.keyGenMechanism,
        signMechanism: p.signMechanism,
        keyType: p.keyType,
        ecParams: p.ecParamsHex ? Buffer.from(p.ecParamsHex, 'hex') : undefined,
        signInput: p.signInput,
        signatureFormat: p.signatureFormat,
      },
      softwareSm2: {
        generate: generateSm2KeyPair,
        signer: (d: Buffer) => createSm2Signer(d),
        spki: sm2SpkiFromPublicKey,
        digest: sm2Digest,
        decrypt: (d: Buffer, ciphertext: Buffer) => sm2Decrypt(d, ciphertext, 'der'),
      },
      observer: recordHsmOperation,
      onReinitialize,
    },
    store.keys,
  );
}

/** Everything a running appliance holds open. */
export interface Appliance {
  dataDir: string;
  config: Config;
  store: Store;
  custody: KeyCustody;
  tlsCertPem: string;
  /** Issuing CA certificate(s) sent after the leaf in the TLS handshake; '' for a data dir made before the CA. */
  tlsChainPem: string;
  /** The certificate authority: CAs, profiles, issuance. */
  pki: Pki;
  /** The time source (firmware-bridge/timesource) and the fail-closed gate every time-stamp goes through. */
  clock: OpenTimeSource;
  clockGate: ClockGate;
  pin: string;
  /** Adapters that hold their own PKCS#11 sessions (the TLS engine) register here. */
  reinitListeners: ReinitListener[];
  close(): Promise<void>;
}

/** Opens config, store and HSM of an initialised data dir; closes what it opened on failure. */
export async function openAppliance(dataDir: string): Promise<Appliance> {
  const config = loadConfig(dataDir);
  const pin = readHsmPin(dataDir, config);
  const store = await openStore(dataDir);
  let clock: OpenTimeSource;
  try {
    clock = await openTimeSource(config.timesource, {
      log: log.child({ component: 'clock' }),
      // Non-blocking: a clock event must never wait on (or fail with) the store.
      onEvent: (e) => void store.audit.append(clockAuditEntry(e)).catch((err: Error) => log.warn({ err: err.message }, 'clock audit record failed')),
    });
  } catch (e) {
    await store.close();
    throw e;
  }
  let custody: KeyCustody;
  const reinitListeners: ReinitListener[] = [];
  try {
    custody = await openCustody(dataDir, config, store, pin, () => reinitListeners.forEach((l) => l()));
  } catch (e) {
    await clock.close();
    await store.close();
    throw e;
  }
  log.info({ sm2Backend: sm2Backend() }, 'sm2 engine');
  return {
    dataDir,
    config,
    store,
    custody,
    pin,
    reinitListeners,
    tlsCertPem: readFileSync(join(dataDir, TLS_CERT_FILE), 'utf8'),
    tlsChainPem: existsSync(join(dataDir, TLS_CHAIN_FILE)) ? readFileSync(join(dataDir, TLS_CHAIN_FILE), 'utf8') : '',
    pki: buildPki({ store, custody, config }),
    clock,
    clockGate: new ClockGate(clock),
    async close() {
      await custody.close();
      await clock.close();
      await store.close();
    },
  };
}

// ---- staff directory (issue 3, items 6–7) ----------------------------------------------

export interface StaffDirectory {
  departments: DepartmentService;
  staff: StaffService;
  statistics: () => Promise<CertificateStatistics>;
}

/** Departments, staff (PII sealed under a data key wrapped by the custody's KEK) and statistics. */
export function buildStaffDirectory(a: { store: Store; custody: KeyCustody }): StaffDirectory {
  const pii = createPiiProtector({ meta: a.store.meta, wrapper: isSecretWrapper(a.custody) ? a.custody : undefined });
  return {
    departments: createDepartmentService(a.store.departments),
    staff: createStaffService({ staff: a.store.staff, departments: a.store.departments, audit: a.store.audit, pii }),
    statistics: () => certificateStatistics({ certs: a.store.certs, staff: a.store.staff, departments: a.store.departments }),
  };
}

// ---- certificate authority (issue 3, items 1–3) -----------------------------------------

export interface Pki {
  profiles: ProfileSet;
  authorities: Authorities;
  certificates: CertificateService;
}

/** CAs (keys through the custody), profiles from config, and the issuance service. */
export function buildPki(a: { store: Store; custody: KeyCustody; config: Config }): Pki {
  const profiles = resolveProfiles(a.config.pki.profiles);
  const authorities = createAuthorities({ cas: a.store.cas, custody: a.custody });
  const certificates = createCertificateService({
    certs: a.store.certs,
    audit: a.store.audit,
    authorities,
    profiles,
    publicBaseUrl: a.config.publicBaseUrl,
    organisation: a.config.pki.organisation,
    country: a.config.pki.country,
  });
  return { profiles, authorities, certificates };
}

// ---- revocation, CRL, OCSP (issue 3, items 3–5) ----------------------------------------

export interface Revocation {
  crls: CrlPublisher;
  ocsp: OcspResponder;
  service: RevocationService;
}

/** CRL publisher (timer started by startServer), OCSP responder and the revoke/suspend/resume service. */
export function buildRevocation(a: { store: Store; custody: KeyCustody; config: Config }): Revocation {
  const crls = new CrlPublisher({ cas: a.store.cas, certs: a.store.certs, meta: a.store.meta, custody: a.custody, audit: a.store.audit, validityHours: a.config.pki.crlValidityHours });
  const ocsp = new OcspResponder({ cas: a.store.cas, certs: a.store.certs, custody: a.custody, validityHours: a.config.pki.ocspValidityHours });
  return { crls, ocsp, service: new RevocationService({ certs: a.store.certs, crls, ocsp }) };
}

// ---- time-stamp authority (issue 5) ----------------------------------------------------

/** The RFC 3161 TSA over the appliance's TSA certificates, the clock gate and the token store. */
export function buildTsa(a: Pick<Appliance, 'store' | 'custody' | 'config' | 'clockGate'>): TsaService {
  return new TsaService({
    certs: a.store.certs,
    custody: a.custody,
    tokens: a.store.tsaTokens,
    gate: a.clockGate,
    policies: { policies: a.config.tsa.policies, defaultPolicy: a.config.tsa.defaultPolicy },
    notice: a.config.timesource.kind === 'system-trusted' ? DEVELOPMENT_NOTICE : null,
  });
}

// ---- signing keys held for apps (issue 4, item 1) --------------------------------------

const heldKeysOf = new WeakMap<object, HeldKeyAdmin>();

/**
 * Held keys over the custody and the CA. One instance per appliance (memoised): it keeps the
 * Signers, the accepted access codes and the per-key check queue, which the sign, envelope and
 * HTTP layers must share.
 */
export function buildHeldKeys(a: Pick<Appliance, 'store' | 'custody' | 'pki'>): HeldKeyAdmin {
  let held = heldKeysOf.get(a);
  if (!held) {
    held = createHeldKeys({
      keys: a.store.heldKeys,
      apps: a.store.apps,
      certs: a.store.certs,
      certificates: a.pki.certificates,
      authorities: a.pki.authorities,
      custody: a.custody,
      audit: a.store.audit,
    });
    heldKeysOf.set(a, held);
  }
  return held;
}

// ---- signing (issue 4, item 2) ----------------------------------------------------------

/** Raw and CMS signing with held keys; CAdES-T time-stamps from the appliance's own TSA in process. */
export function buildSigning(a: Pick<Appliance, 'store' | 'custody' | 'pki'>, tsa?: TsaService): SigningService {
  return createSigningService({ heldKeys: buildHeldKeys(a), ...(tsa ? { stamper: tsa } : {}) });
}

// ---- envelopes (issue 4, item 5) --------------------------------------------------------

/** Seal to a certificate or held key; open with held encryption keys through the custody's Decrypter. */
export function buildEnvelopeRouter(a: Pick<Appliance, 'store' | 'custody' | 'pki' | 'config'>) {
  return envelopeRouter({
    heldKeys: buildHeldKeys(a),
    decrypter: isDecrypter(a.custody) ? a.custody : undefined,
    certificateBySerial: async (serial) => {
      const rec = await a.store.certs.get(serial);
      return rec ? Buffer.from(rec.certificate, 'base64') : undefined;
    },
    maxContentBytes: a.config.http.bodyLimitBytes,
  });
}

// ---- trust store and revocation checking (issue 4, items 3–4) ---------------------------

export interface Trust {
  store: TrustStoreService;
  checker: RevocationChecker;
  /** Downloads imported CAs' CRLs (timer started by startServer). */
  fetcher: CrlFetcher;
}

const trustOf = new WeakMap<object, Trust>();

/** Trust store, CRL downloads and the revocation checker; one instance per appliance (memoised: the verify service shares it). */
export function buildTrust(a: Pick<Appliance, 'store'>): Trust {
  let trust = trustOf.get(a);
  if (!trust) {
    const store = createTrustStore({ trust: a.store.trustCas, cas: a.store.cas });
    trust = {
      store,
      checker: createRevocationChecker({ trust: store, certs: a.store.certs, ocsp: createOcspClient() }),
      fetcher: createCrlFetcher({ trust: store }),
    };
    trustOf.set(a, trust);
  }
  return trust;
}

// ---- verification (issue 4, item 3) ----------------------------------------------------

const verificationOf = new WeakMap<object, VerificationService>();

/**
 * Raw, CMS and certificate verification with reports, over the trust store and revocation
 * checker of buildTrust. One instance per appliance (memoised): its parsed trust material and
 * path cache are shared by /api/v1/verify and the GB/T 38629 binding. Held keys are named in the
 * signer identity straight from their repository.
 */
export function buildVerification(a: Pick<Appliance, 'store'>): VerificationService {
  let v = verificationOf.get(a);
  if (!v) {
    const trust = buildTrust(a);
    v = createVerificationService({
      trust: trust.store,
      revocation: trust.checker,
      certs: a.store.certs,
      heldKeys: { findByCertSerial: (serial) => a.store.heldKeys.getByCertSerial(serial) },
    });
    verificationOf.set(a, v);
  }
  return v;
}

// ---- GB/T 38629 signature-server binding (issue 4, item 6) ------------------------------

/**
 * The /svs/ app (http/svs-binding.ts) over the held keys, signing and verification services,
 * acting for the app svs.appId. startServer routes /svs paths of both listeners to it; it
 * answers only over TLS (plain HTTP gets its refusal, with a respValue).
 */
export function buildSvsApp(a: Appliance): RequestListener {
  return createSvsApp({
    appId: a.config.svs.appId,
    appActive: async (id) => (await a.store.apps.get(id))?.status === 'active',
    heldKeys: buildHeldKeys(a),
    certificateBySerial: async (serial) => {
      const rec = await a.store.certs.get(serial);
      return rec ? Buffer.from(rec.certificate, 'base64') : undefined;
    },
    signing: buildSigning(a),
    verification: buildVerification(a),
    allow: a.config.svs.allow,
    maxRequestBytes: a.config.svs.maxRequestBytes,
    limits: { timeoutMs: a.config.http.timeoutMs, maxInFlight: a.config.http.maxInFlight },
  }).callback();
}

// ---- evidence projects and statistics (issue 6, items 5–6) -------------------------------

const evidenceProjectsOf = new WeakMap<object, ProjectAdmin>();

/**
 * Evidence projects over the store (the 'default' project appears with
 * evidence.defaultRetentionYears on first use). `records` removes a deleted project's records
 * from both tiers with their blobs; without it only projects with no stored records can be
 * deleted. One instance per appliance object (memoised) unless `records` is given.
 */
export function buildEvidenceProjects(a: Pick<Appliance, 'store' | 'config'>, records?: ProjectDataRemover): ProjectAdmin {
  const memo = records === undefined ? evidenceProjectsOf.get(a) : undefined;
  if (memo) return memo;
  const projects = createProjects({
    projects: a.store.evidenceProjects,
    counters: a.store.evidenceCounters,
    audit: a.store.audit,
    defaultRetentionYears: a.config.evidence.defaultRetentionYears,
    ...(records ? { records } : {}),
  });
  if (records === undefined) evidenceProjectsOf.set(a, projects);
  return projects;
}

/** Whether an app holds a permission (`yiqian app permit`), read afresh on every request. */
export function appPermissionCheck(a: Pick<Appliance, 'store'>): PermissionCheck {
  return async (appId, permission) => ((await a.store.apps.get(appId))?.permissions ?? []).includes(permission);
}

/**
 * The evidence records' project deletion (both tiers and blobs) for the CLI, which holds no
 * running service: the hot tier of the store, the cold environment opened for the purpose
 * (store/evidence-project-removal.ts) and the blob store.
 */
export async function openEvidenceRecordsRemover(a: { store: Store; config: Config; dataDir: string }): Promise<ProjectDataRemover & { close(): Promise<void> }> {
  const cold = openColdTierForRemoval(evidenceColdPath(a));
  try {
    const blobs = await openBlobStore(evidenceBlobPath(a));
    return { ...tieredProjectRemover(cold ? [a.store.evidenceHot, cold] : [a.store.evidenceHot], blobs), close: async () => cold?.close() };
  } catch (e) {
    await cold?.close();
    throw e;
  }
}

// ---- evidence files and signed downloads (issue 6, items 1–2) ----------------------------

/** The blob directory: evidence.blobPath (absolute or relative to the data dir), default <data>/blobs. */
export function evidenceBlobPath(a: Pick<Appliance, 'dataDir' | 'config'>): string {
  return resolveInData(a.dataDir, a.config.evidence.blobPath ?? 'blobs');
}

export interface EvidenceFiles {
  blobs: FsBlobStore;
  /** Mount in apiRouters (POST /evidence/files, GET /evidence/records/:id/download-url). */
  router: Router<any>;
  /** The public download app: startServer routes isEvidenceDownloadPath on the HTTPS listener to it. */
  downloadApp: RequestListener;
}

/**
 * Streamed file uploads into the content-addressed blob store (removing stale temp files of a
 * crash), and signed download URLs under an HSM-wrapped HMAC-SM3 key. `records` is the evidence
 * records repository (store/evidence-repository.ts): appends, rejections and lookups.
 */
export async function buildEvidenceFiles(a: Appliance, records: FileRecordStore & RecordLookup): Promise<EvidenceFiles> {
  const blobs = await openBlobStore(evidenceBlobPath(a));
  const wrapper = isSecretWrapper(a.custody) ? a.custody : undefined;
  const urls = createDownloadUrlSigner({ meta: a.store.meta, wrapper, ttlSeconds: a.config.evidence.downloadUrlSeconds });
  const files = createFileIngest({
    blobs,
    records,
    projects: buildEvidenceProjects(a),
    patientIds: buildPatientIds(a),
    verification: buildVerification(a),
    maxFileBytes: a.config.evidence.maxFileBytes,
  });
  return {
    blobs,
    router: evidenceFileRouter({ files, records, urls, uploadIdleMs: a.config.http.timeoutMs }),
    downloadApp: createEvidenceDownloadApp({ urls, records, blobs, limits: { timeoutMs: a.config.http.timeoutMs, maxInFlight: a.config.http.maxInFlight } }).callback(),
  };
}

// ---- evidence records (issue 6, items 1–2, 7, 9) ---------------------------------------

const patientIdsOf = new WeakMap<object, PatientIdProtector>();

/** Patient-id sealing under an HSM-wrapped data key; one instance per appliance (memoised: one first-use key). */
export function buildPatientIds(a: Pick<Appliance, 'store' | 'custody'>): PatientIdProtector {
  let p = patientIdsOf.get(a);
  if (!p) {
    p = createPatientIdProtector({ meta: a.store.meta, wrapper: isSecretWrapper(a.custody) ? a.custody : undefined });
    patientIdsOf.set(a, p);
  }
  return p;
}

/** The cold tier's LMDB directory: evidence.coldPath (absolute or relative to the data dir), default <data>/evidence-cold. */
export function evidenceColdPath(a: Pick<Appliance, 'dataDir' | 'config'>): string {
  return resolveInData(a.dataDir, a.config.evidence.coldPath ?? 'evidence-cold');
}

/** The evidence store's services; other evidence builders extend this (startServer builds it once). */
export interface Evidence {
  /** Records in both tiers (hot in the store, cold at evidenceColdPath). */
  repository: EvidenceRepository;
  ingest: EvidenceIngest;
  records: EvidenceRecords;
  files: EvidenceFiles;
  /**
   * Removes a deleted project's records from both tiers and the blobs no other record uses,
   * through the cold env this repository holds open (never a second open in the process).
   */
  projectData: ProjectDataRemover;
  /** Closes the cold env (startServer's stop, after the listeners and jobs). */
  close(): Promise<void>;
}

/** Verify-then-store ingestion, queries and re-verification over both tiers, and files (buildEvidenceFiles). */
export async function buildEvidence(a: Appliance): Promise<Evidence> {
  const repository = await openEvidenceRepository({ hot: a.store.evidenceHot, merkle: a.store.merkle, counters: a.store.evidenceCounters, coldPath: evidenceColdPath(a) });
  try {
    const files = await buildEvidenceFiles(a, repository);
    const common = { verification: buildVerification(a), trust: buildTrust(a).store, revocation: buildTrust(a).checker, patientIds: buildPatientIds(a) };
    return {
      repository,
      ingest: createEvidenceIngest({ ...common, records: repository, projects: buildEvidenceProjects(a), blobs: files.blobs }),
      records: createEvidenceRecords({ ...common, records: repository, blobs: files.blobs }),
      files,
      projectData: tieredProjectRemover([a.store.evidenceHot, repository.coldTier], files.blobs),
      close: () => repository.close(),
    };
  } catch (e) {
    await repository.close();
    throw e;
  }
}

// ---- evidence reports and proof bundles (issue 6, item 4) -------------------------------

/**
 * GET /evidence/records/:id/bundle.json and report.pdf over the records repository, the
 * checkpoint log, the Merkle tree and the trust store; reports are PAdES-signed by the
 * 'evidence-report' ECDSA key in the HSM (certificate from ecdsa-issuing, made at first use).
 */
export function buildEvidenceReportRouter(a: Pick<Appliance, 'store' | 'custody' | 'pki' | 'config'>, evidence: Pick<Evidence, 'repository' | 'files'>, checkpoints: EvidenceCheckpointLog): Router<any> {
  return evidenceReportRouter({
    findRecord: (id) => evidence.repository.get(id),
    checkpoints,
    inclusion: (index, size) => a.store.merkle.inclusion(index, size),
    readOriginal: (blobId) => evidence.files.blobs.read(blobId),
    trust: () => buildTrust(a).store.material(),
    reportSigner: createReportSigner({ custody: a.custody, certificates: a.pki.certificates, organisation: a.config.pki.organisation }),
    issuer: a.config.pki.organisation,
  });
}

// ---- evidence log checkpoints and scheduled jobs (issue 6, items 3 and 7) -----------------

const checkpointLogOf = new WeakMap<object, EvidenceCheckpointLog>();

/**
 * The checkpoint log of the evidence Merkle tree (evidence/checkpoint-log.ts): signed by the
 * 'evidence-log' HSM key (made and certified at first use), stamped by the in-process TSA.
 * One instance per appliance (memoised): it serialises checkpointNow.
 */
export function buildCheckpointLog(a: Pick<Appliance, 'store' | 'custody' | 'pki' | 'config'>, tsa: Pick<TsaService, 'stamp'>): EvidenceCheckpointLog {
  let cl = checkpointLogOf.get(a);
  if (!cl) {
    cl = createCheckpointLog({
      checkpoints: a.store.evidenceCheckpoints,
      merkle: a.store.merkle,
      meta: a.store.meta,
      custody: a.custody,
      certificates: a.pki.certificates,
      tsa,
      origin: defaultOrigin(a.config.publicBaseUrl),
      organisation: a.config.pki.organisation,
    });
    checkpointLogOf.set(a, cl);
  }
  return cl;
}

/**
 * The scheduled jobs (jobs/scheduler.ts), started and stopped by startServer:
 * evidence-checkpoint every evidence.checkpointSeconds, and — given the records repository —
 * evidence-migration (hot → cold) every evidence.migration.everySeconds.
 */
export function buildJobs(a: Pick<Appliance, 'store' | 'config'>, s: { checkpoints: EvidenceCheckpointLog; records?: ColdMover }): JobScheduler {
  const jobs = new JobScheduler({ meta: a.store.meta });
  const ev = a.config.evidence;
  jobs.register({
    name: 'evidence-checkpoint',
    description: '签署并加盖时间戳的存证日志检查点 / sign and time-stamp a checkpoint of the evidence log when it grew',
    intervalMs: ev.checkpointSeconds * 1000,
    enabled: true,
    run: async () => {
      const r = await s.checkpoints.checkpointNow();
      return r.made ? { made: true, treeSize: r.checkpoint.treeSize, rootHash: r.checkpoint.rootHash } : { made: false, reason: r.reason };
    },
  });
  const records = s.records;
  if (records) {
    jobs.register({
      name: 'evidence-migration',
      description: `存证记录由热层迁往冷层（${ev.migration.afterDays} 天以上）/ move evidence records older than ${ev.migration.afterDays} days from the hot to the cold tier`,
      intervalMs: ev.migration.everySeconds * 1000,
      enabled: true,
      run: ({ signal }) => migrateToCold(records, { afterDays: ev.migration.afterDays, batchSize: ev.migration.batchSize }, { signal }),
    });
  }
  return jobs;
}

// ---- the /api/v1 routers ---------------------------------------------------------------

/** The services the /api/v1 capability routers are built over (startServer builds them). */
export interface ApiServices {
  appliance: Appliance;
  staffDirectory: StaffDirectory;
  revocation: Revocation;
  /** The TSA, for CAdES-T signature time-stamps (without it, timestamp requests get TIMESTAMP_UNAVAILABLE). */
  tsa?: TsaService;
  /** The evidence log's checkpoints (buildCheckpointLog) and the record lookup its inclusion proofs need. */
  checkpointLog?: EvidenceCheckpointLog;
  findEvidenceRecord?: (id: string) => Promise<LoggedRecord | undefined>;
  /** The scheduled jobs (buildJobs), listed and controlled under /api/v1/jobs. */
  jobs?: JobScheduler;
  /** Removes a deleted evidence project's records from both tiers (the evidence records repository). */
  evidenceRecords?: ProjectDataRemover;
  /** Evidence file uploads and download URLs (buildEvidenceFiles, given the records repository). */
  evidenceFiles?: EvidenceFiles;
  /** Evidence records: ingestion, queries, re-verification (buildEvidence). */
  evidence?: Pick<Evidence, 'ingest' | 'records'>;
  /** Evidence reports and proof bundles over these (buildEvidenceReportRouter; needs checkpointLog too). */
  evidenceReports?: Pick<Evidence, 'repository' | 'files'>;
}

/**
 * The capability routers mounted under /api/v1, in mount order: the one list startServer
 * serves and test/unit/openapi.test.ts checks docs/openapi.json against (every route documented).
 */
export function apiRouters(s: ApiServices): Router<any>[] {
  const a = s.appliance;
  return [
    certRoutes({ certificates: a.pki.certificates }),
    staffRouter(s.staffDirectory),
    statsRouter({ certificates: s.staffDirectory.statistics }),
    revocationApiRouter(s.revocation.service),
    tsaApiRouter({ tokens: a.store.tsaTokens, clockStatus: () => a.clock.status() }),
    heldKeyRouter({ heldKeys: buildHeldKeys(a) }),
    trustRouter({ trust: buildTrust(a).store, fetcher: buildTrust(a).fetcher }),
    verifyRouter({ verification: buildVerification(a) }),
    signRouter({ signing: buildSigning(a, s.tsa) }),
    buildEnvelopeRouter(a),
    ...(s.checkpointLog ? [evidenceLogRouter({ checkpoints: s.checkpointLog, merkle: a.store.merkle, findRecord: s.findEvidenceRecord ?? (async () => undefined) })] : []),
    ...(s.jobs ? [jobRouter({ jobs: s.jobs, audit: a.store.audit, hasPermission: appPermissionCheck(a) })] : []),
    evidenceProjectRouter({ projects: buildEvidenceProjects(a, s.evidenceRecords), hasPermission: appPermissionCheck(a) }),
    evidenceStatsRouter({ counters: a.store.evidenceCounters, hasPermission: appPermissionCheck(a) }),
    ...(s.evidenceFiles ? [s.evidenceFiles.router] : []),
    ...(s.evidence ? [evidenceRecordRouter({ ingest: s.evidence.ingest, records: s.evidence.records })] : []),
    ...(s.evidenceReports && s.checkpointLog ? [buildEvidenceReportRouter(a, s.evidenceReports, s.checkpointLog)] : []),
  ];
}

// ---- serving ---------------------------------------------------------------------------

export interface ServeOptions {
  listen?: string;
  listenHttp?: string;
}

export interface RunningServer {
  httpsUrl: string;
  httpUrl: string;
  /** Stops accepting, lets in-flight requests finish, closes HSM and store. */
  stop(): Promise<void>;
}

function listenOn(server: Server, hostPort: string): Promise<{ host: string; port: number }> {
  const { host, port } = parseHostPort(hostPort);
  return new Promise((resolveListen, reject) => {
    const onError = (e: NodeJS.ErrnoException): void => {
      reject(new YiqianError(Codes.BAD_REQUEST, 500, { zh: `无法监听 ${hostPort}：${e.code}`, en: `cannot listen on ${hostPort}: ${e.code}` }));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const addr = server.address() as AddressInfo;
      resolveListen({ host, port: addr.port });
    });
  });
}

function urlOf(scheme: string, a: { host: string; port: number }): string {
  return `${scheme}://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}

async function readiness(a: Appliance): Promise<Readiness> {
  const checks: Readiness['checks'] = {};
  try {
    await a.store.check();
    checks.store = { ok: true };
  } catch (e) {
    // /readyz is unauthenticated: say which check failed by its code, keep paths and messages in the log.
    log.warn({ err: (e as Error).message }, 'readiness: store check failed');
    checks.store = { ok: false, detail: { code: isYiqianError(e) ? e.code : Codes.STORE_UNAVAILABLE } };
  }
  const hsm = await a.custody.health().catch((e: Error) => {
    log.warn({ err: e.message }, 'readiness: HSM health failed');
    return { ok: false, token: a.config.hsm.tokenLabel, reason: isYiqianError(e) ? e.code : Codes.HSM_UNAVAILABLE };
  });
  checks.hsm = { ok: hsm.ok, detail: hsm };
  checks.clock = clockReadiness(a.clock);
  return { ready: Object.values(checks).every((c) => c.ok), checks };
}

/** HTTPS serves the public CA objects (/pki/…) too, unauthenticated, from the public app. */
function httpsHandler(api: RequestListener, publicObjects: RequestListener, evidenceDownloads?: RequestListener): RequestListener {
  return (req, res) =>
    (req.url ?? '').startsWith('/pki/') ? publicObjects(req, res) : evidenceDownloads && isEvidenceDownloadPath(req.url) ? evidenceDownloads(req, res) : api(req, res);
}

/** What startServer opened so far: a failed start closes it again (abandonStart). */
interface StartedParts {
  evidence?: Evidence;
  jobs?: JobScheduler;
  servers: { close(cb: () => void): unknown }[];
  timers?: Revocation;
}

export async function startServer(a: Appliance, opts: ServeOptions = {}): Promise<RunningServer> {
  const parts: StartedParts = { servers: [] };
  try {
    return await startServing(a, opts, parts);
  } catch (e) {
    await abandonStart(a, parts).catch((err: Error) => log.warn({ err: err.message }, 'cleanup after a failed start failed'));
    throw e;
  }
}

/**
 * Undoes what a failed start opened, in the order RunningServer.stop does, above all the evidence
 * cold env: left open it stays held by this process, which must not open it a second time
 * (lmdb.h Caveats). The appliance itself (store, HSM) belongs to the caller, as before.
 */
async function abandonStart(a: Appliance, parts: StartedParts): Promise<void> {
  await Promise.all(parts.servers.map((srv) => new Promise<void>((r) => srv.close(() => r()))));
  await parts.jobs?.stopAll();
  if (parts.timers) {
    await parts.timers.crls.stop();
    await buildTrust(a).fetcher.stop();
  }
  await parts.evidence?.close();
}

async function startServing(a: Appliance, opts: ServeOptions, parts: StartedParts): Promise<RunningServer> {
  const selfTest = await runCryptoSelfTest();
  if (!selfTest.ok) {
    const failed = selfTest.results.filter((r) => !r.ok).map((r) => r.name).join(', ');
    throw new YiqianError(Codes.INTERNAL, 500, { zh: `密码算法自检失败：${failed}`, en: `crypto self-test failed: ${failed}` });
  }
  const engine = registerHsmTlsEngine({ module: a.config.hsm.module, tokenLabel: a.config.hsm.tokenLabel, pin: a.pin });
  a.reinitListeners.push(() => engine.invalidateSessions());
  const staffDirectory = buildStaffDirectory(a);
  const revocation = buildRevocation(a);
  registerClockMetrics(metrics.registry, a.clock);
  const development = a.config.timesource.kind === 'system-trusted';
  const tsa = buildTsa(a);
  await tsa.warmUp();
  const checkpointLog = buildCheckpointLog(a, tsa);
  const evidence = await buildEvidence(a);
  parts.evidence = evidence;
  const jobs = buildJobs(a, { checkpoints: checkpointLog, records: evidence.repository });
  parts.jobs = jobs;
  const apiApp = createApiApp({
    apps: a.store.apps,
    nonces: a.store.nonces,
    readiness: () => readiness(a),
    // Capability routers: add yours in apiRouters() (and its service in ApiServices).
    routers: apiRouters({ appliance: a, staffDirectory, revocation, tsa, checkpointLog, jobs, evidence, evidenceFiles: evidence.files, findEvidenceRecord: (id) => evidence.repository.get(id), evidenceReports: evidence, evidenceRecords: evidence.projectData }),
    limits: { bodyBytes: a.config.http.bodyLimitBytes, timeoutMs: a.config.http.timeoutMs, maxInFlight: a.config.http.maxInFlight, uploadTimeoutMs: uploadTimeoutMs(a.config) },
    // POST /api/v1/evidence/files streams its body (bound by X-YQ1-Body-Hash), never read into memory.
    streamedBody: isEvidenceUploadRequest,
    devNotice: development ? 'development appliance: SoftHSM2 token and system clock' : 'development appliance: SoftHSM2 token',
  });
  const listen = opts.listen ?? a.config.listen;
  const listenHttp = opts.listenHttp ?? a.config.listenHttp;
  const httpsBase = urlOf('https', parseHostPort(listen));
  const publicApp = createPublicApp({ routers: [devicePkiRouter(a.tlsCertPem), pkiPublicRouter({ authorities: a.pki.authorities })], httpsBase });
  // CRLs and OCSP on both listeners, from their own app: OCSP clients get an OCSPResponse for
  // every failure, never problem+json (http/revocation-routes.ts).
  const revocationApp = createRevocationPublicApp({
    crls: revocation.crls,
    ocsp: revocation.ocsp,
    limits: { timeoutMs: a.config.http.timeoutMs, maxInFlight: a.config.http.maxInFlight },
  }).callback();
  // Time-stamping on both listeners, from its own plain node:http handler (no koa stack, issue 5):
  // every failure is a TimeStampResp (http/tsa-handler.ts).
  const tsaApp = createTsaHandler({
    tsa,
    defaultIdentity: a.config.tsa.defaultIdentity,
    allow: a.config.tsa.allow,
    maxRequestBytes: a.config.tsa.maxRequestBytes,
    limits: { timeoutMs: a.config.http.timeoutMs, maxInFlight: a.config.http.maxInFlight },
  });
  // The GB/T 38629 binding from its own app: every failure is an answer with a respValue (http/svs-binding.ts).
  const svsApp = a.config.svs.enabled ? buildSvsApp(a) : undefined;
  const withRevocation = (other: RequestListener): RequestListener => (req, res) =>
    isRevocationPublicPath(req.url) ? revocationApp(req, res) : isTsaPublicPath(req.url) ? tsaApp(req, res) : svsApp && isSvsPath(req.url) ? svsApp(req, res) : other(req, res);

  const https = createHttpsServer(
    // The leaf and its issuing CA, not the root (RFC 8446 §4.4.2: the root is the client's own).
    { cert: a.tlsCertPem + a.tlsChainPem, privateKeyEngine: engine.privateKeyEngine, privateKeyIdentifier: engine.privateKeyIdentifier(a.config.device.tlsKeyLabel), minVersion: 'TLSv1.2' },
    withRevocation(httpsHandler(apiApp.callback(), publicApp.callback(), evidence.files.downloadApp)),
  );
  const http = createHttpServer(withRevocation(publicApp.callback()));
  parts.servers.push(https, http);
  for (const s of [https, http]) {
    s.headersTimeout = 20_000;
    // Node's own cut-off for a whole request: past the longest deadline of ours (an upload's).
    s.requestTimeout = Math.max(a.config.http.timeoutMs, uploadTimeoutMs(a.config)) + 5_000;
    s.keepAliveTimeout = 5_000;
  }
  // CRLs missing or past half their validity are signed before serving; then the timer keeps them fresh.
  await revocation.crls.refreshDue();
  const sAddr = await listenOn(https, listen);
  const hAddr = await listenOn(http, listenHttp);
  parts.timers = revocation;
  revocation.crls.start();
  buildTrust(a).fetcher.start();
  await jobs.startAll();
  const nonceSweep = setInterval(() => void a.store.nonces.purgeExpired(Date.now()).catch((e: Error) => log.warn({ err: e.message }, 'nonce purge failed')), 60_000);
  nonceSweep.unref();
  let stopping: Promise<void> | undefined;
  return {
    httpsUrl: urlOf('https', sAddr),
    httpUrl: urlOf('http', hAddr),
    stop() {
      stopping ??= (async () => {
        clearInterval(nonceSweep);
        const closed = Promise.all([https, http].map((s) => new Promise<void>((r) => s.close(() => r()))));
        for (const s of [https, http]) s.closeIdleConnections();
        // In-flight requests get the configured timeout to finish, then are cut.
        const force = setTimeout(() => { for (const s of [https, http]) s.closeAllConnections(); }, a.config.http.timeoutMs);
        force.unref();
        await closed;
        clearTimeout(force);
        // Connections are closed, but a time-stamp whose client hung up may still be signing or
        // being recorded: let it end before the store closes (bounded by the same timeout).
        await new Promise<void>((resolveSettled) => {
          const cap = setTimeout(resolveSettled, a.config.http.timeoutMs);
          void tsaApp.settled().then(() => {
            clearTimeout(cap);
            resolveSettled();
          });
        });
        await jobs.stopAll();
        await evidence.close();
        await revocation.crls.stop();
        await buildTrust(a).fetcher.stop();
        await a.store.audit.append({ actor: 'system', action: 'appliance.stop', outcome: 'ok' }).catch(() => undefined);
        await a.close();
      })();
      return stopping;
    },
  };
}
