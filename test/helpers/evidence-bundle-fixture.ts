// Evidence records, a Merkle log, a signed and time-stamped checkpoint and proof bundles, made
// from the pure modules over a real CA on SoftHSM2 (makePkiFixture) and the real TSA service in
// process — until the evidence repository (E1) and checkpoint log (E5) serve them. Records are
// signed for real: SM2 CMS (GB/T 35275, detached, original in the bundle), ECDSA CMS (attached),
// raw SM2 with an RFC 3161 token from the TSA, and a digest-only record; hot and cold tiers.
import { createHash } from 'node:crypto';
import { ulid } from 'ulid';
import { fromPem } from '../../appliance/src/crypto/der.js';
import type { KeyAlgorithm, Signer } from '../../appliance/src/crypto/interfaces.js';
import { buildBundle, type EvidenceBundle } from '../../appliance/src/evidence/bundle.js';
import { checkpointImprint, signCheckpoint } from '../../appliance/src/evidence/checkpoint.js';
import { leafData } from '../../appliance/src/evidence/leaf.js';
import { MemoryTree } from '../../appliance/src/evidence/merkle.js';
import type { EvidenceRecord, StoredCheckpoint, Tier } from '../../appliance/src/evidence/types.js';
import { createReportSigner, type PadesSigner } from '../../appliance/src/evidence/pades.js';
import { signCms } from '../../appliance/src/signing/cms-sign.js';
import { TsaService } from '../../appliance/src/tsa/tsa-service.js';
import type { ClockGateResult } from '../../firmware-bridge/timesource/clock-gate.js';
import { makePkiFixture, type PkiFixture } from './pki-hierarchy.js';

export interface HeldIdentity {
  signer: Signer;
  certificate: Buffer;
  chain: Buffer[];
}

export type RecordName = 'sm2-cms' | 'ecdsa-cms' | 'sm2-raw-token' | 'digest-only';

export interface EvidenceFixture {
  pki: PkiFixture;
  tsa: TsaService;
  anchors: Buffer[];
  intermediates: Buffer[];
  /** PEM of the ECDSA root (for an NSS database) and of both roots. */
  ecdsaRootPem: string;
  records: Record<RecordName, { record: EvidenceRecord; original?: Buffer }>;
  checkpoint: StoredCheckpoint;
  tree: MemoryTree;
  bundle(name: RecordName, opts?: { embedOriginal?: boolean }): EvidenceBundle;
  reportSigner: () => Promise<PadesSigner>;
  close(): Promise<void>;
}

const gate = { check: (): ClockGateResult => ({ ok: true, time: new Date(), accuracyMicros: 1000, state: 'SYNCED', source: 'test', development: false, notice: null }) };
const who = { address: '127.0.0.1', app: 'test' };

async function identity(pki: PkiFixture, algorithm: KeyAlgorithm, label: string, commonName: string): Promise<HeldIdentity> {
  const key = await pki.custody.generate({ algorithm, label, purpose: `test ${label}` });
  const issued = await pki.pki.certificates.issueForAppliance(
    { profile: 'seal', hierarchy: algorithm === 'sm2' ? 'sm2' : 'ecdsa', commonName, keyRef: key.id, publicKeyInfo: key.publicKeyInfo, keyAlgorithm: algorithm },
    'test',
  );
  return {
    signer: await pki.custody.signer(key.id),
    certificate: fromPem(issued.certificatePem)[0].der,
    chain: fromPem(issued.chainPem).map((p) => p.der),
  };
}

const sm3 = (b: Buffer): string => createHash('sm3').update(b).digest('hex');

export async function makeEvidenceFixture(): Promise<EvidenceFixture> {
  const pki = await makePkiFixture();
  const tsa = new TsaService({ certs: pki.store.certs, custody: pki.custody, tokens: pki.store.tsaTokens, gate, policies: { policies: pki.config.tsa.policies, defaultPolicy: pki.config.tsa.defaultPolicy } });
  const stamp = async (hashedMessage: Buffer): Promise<Buffer> => {
    const s = await tsa.stamp('sm3', hashedMessage, 'sm2', who);
    if (!s.ok) throw new Error(`TSA refused: ${s.reason}`);
    return s.token;
  };
  const roots = pki.created.cas.filter((c) => c.role === 'root');
  const anchors = roots.map((c) => Buffer.from(c.certificate, 'base64'));
  const intermediates = pki.created.cas.filter((c) => c.role === 'issuing').map((c) => Buffer.from(c.certificate, 'base64'));
  const ecdsaRoot = roots.find((c) => c.hierarchy === 'ecdsa')!;
  const ecdsaRootPem = `-----BEGIN CERTIFICATE-----\n${ecdsaRoot.certificate.match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`;

  const doctorSm2 = await identity(pki, 'sm2', 'doctor-sm2', '张医生 Dr Zhang');
  const doctorEc = await identity(pki, 'ecdsa-p256', 'doctor-ec', '李医生 Dr Li');
  const cpSigner = await identity(pki, 'sm2', 'checkpoint-sm2', 'Evidence Log Checkpoint Signer');

  const tree = new MemoryTree();
  // Leaves of other records before ours, so proofs have several nodes.
  for (let i = 0; i < 9; i++) tree.append(Buffer.from(`other record ${i}`));
  let n = 0;
  const base = (kind: EvidenceRecord['kind'], tier: Tier): Omit<EvidenceRecord, 'contentDigest' | 'leafIndex' | 'leafHash'> => ({
    id: ulid(),
    kind,
    project: 'emr',
    appId: 'app-his',
    system: 'EMR',
    departmentId: 'cardiology',
    businessSerial: `BS-2026-${++n}`,
    documentType: '门诊病历',
    patientIdIndex: sm3(Buffer.from(`patient-${n}`)),
    patientIdMasked: '4401********1234',
    receivedAt: new Date().toISOString(),
    retainUntil: '2056-01-01T00:00:00.000Z',
    tier,
  });
  const add = (r: Omit<EvidenceRecord, 'leafIndex' | 'leafHash'>): EvidenceRecord => {
    const data = leafData(r);
    const leafIndex = tree.append(data);
    return { ...r, leafIndex, leafHash: tree.hasher.leaf(data).toString('hex') };
  };
  const report = (valid: boolean, serial: string) => ({
    valid,
    code: 'OK',
    gbtCode: 0,
    level: 2 as const,
    form: 'rfc5652' as const,
    judgedAt: new Date().toISOString(),
    judgedAtSource: 'request' as const,
    signer: { subject: 'CN=test', serial, issuer: 'CN=issuer', notBefore: '', notAfter: '', commonName: '张医生 Dr Zhang' },
    checks: [
      { name: 'structure', ok: true, label: '格式正确' },
      { name: 'signerFound', ok: true, label: '找到签名者证书' },
      { name: 'contentIntact', ok: true, label: '原文未改' },
      { name: 'signatureIntact', ok: true, label: '签名未改' },
      { name: 'chain', ok: true, label: '证书链可信' },
      { name: 'revocation', ok: true, label: '证书未吊销' },
    ],
  });

  const sm2Original = Buffer.from('门诊病历：患者主诉胸闷三天，心电图正常。Outpatient record.');
  const sm2Cms = await signCms({ signer: doctorSm2.signer, certificate: doctorSm2.certificate, chain: doctorSm2.chain, content: sm2Original, detached: true, form: 'gbt35275' });
  const ecOriginal = Buffer.from('检验报告 lab report: troponin I < 0.01 ng/mL');
  const ecCms = await signCms({ signer: doctorEc.signer, certificate: doctorEc.certificate, chain: doctorEc.chain, content: ecOriginal, detached: false, form: 'rfc5652' });
  const rawOriginal = Buffer.from('处方 prescription: aspirin 100 mg qd');
  const rawSig = await doctorSm2.signer.sign(rawOriginal);
  const rawToken = await stamp(createHash('sm3').update(rawSig).digest());
  const digestOnly = Buffer.from('HIS business record #889');

  const records: EvidenceFixture['records'] = {
    'sm2-cms': {
      original: sm2Original,
      record: add({
        ...base('signature', 'hot'),
        contentDigest: { algorithm: 'sm3', value: sm3(sm2Original) },
        original: { blobId: sm3(sm2Original), bytes: sm2Original.length, mediaType: 'text/plain' },
        signature: { format: 'cms', value: sm2Cms.toString('base64'), signingTime: new Date().toISOString(), statedSigner: { name: '张医生', employeeId: 'E1001' } },
        verification: report(true, 'aa'),
      }),
    },
    'ecdsa-cms': {
      original: ecOriginal,
      record: add({
        ...base('signature', 'cold'),
        contentDigest: { algorithm: 'sha256', value: createHash('sha256').update(ecOriginal).digest('hex') },
        signature: { format: 'cms', value: ecCms.toString('base64') },
        verification: report(true, 'bb'),
      }),
    },
    'sm2-raw-token': {
      original: rawOriginal,
      record: add({
        ...base('signature', 'cold'),
        contentDigest: { algorithm: 'sm3', value: sm3(rawOriginal) },
        signature: { format: 'raw', algorithm: 'SM2-SM3', value: rawSig.toString('base64'), certificate: doctorSm2.certificate.toString('base64'), chain: doctorSm2.chain.map((c) => c.toString('base64')), timestampToken: rawToken.toString('base64') },
        verification: report(true, 'cc'),
      }),
    },
    'digest-only': {
      record: add({ ...base('digest', 'hot'), contentDigest: { algorithm: 'sm3', value: sm3(digestOnly) } }),
    },
  };
  for (let i = 0; i < 3; i++) tree.append(Buffer.from(`later record ${i}`));

  // The checkpoint over the whole tree: signed note + RFC 3161 token over SM3(body) (checkpoint.ts).
  const signed = await signCheckpoint({ origin: 'yiqian.test/evidence', treeSize: tree.size, rootHash: tree.root(), time: new Date().toISOString() }, cpSigner.signer);
  const cpToken = await stamp(checkpointImprint(signed.body).hashedMessage);
  const checkpoint: StoredCheckpoint = {
    treeSize: tree.size,
    rootHash: tree.root().toString('hex'),
    time: signed.checkpoint.time,
    note: signed.note,
    signerCertificate: cpSigner.certificate.toString('base64'),
    signerChain: cpSigner.chain.map((c) => c.toString('base64')),
    timestampToken: cpToken.toString('base64'),
  };

  return {
    pki,
    tsa,
    anchors,
    intermediates,
    ecdsaRootPem,
    records,
    checkpoint,
    tree,
    bundle(name, opts = {}) {
      const { record, original } = records[name];
      return buildBundle({
        record,
        ...(opts.embedOriginal && original ? { original } : {}),
        proof: tree.inclusion(record.leafIndex, checkpoint.treeSize),
        checkpoint,
        anchors,
        intermediates,
      });
    },
    reportSigner: createReportSigner({ custody: pki.custody, certificates: pki.pki.certificates, organisation: pki.config.pki.organisation }),
    close: () => pki.close(),
  };
}
