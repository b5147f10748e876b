// Evidence ingestion and the records service (evidence/ingest.ts, evidence/records.ts) over the
// real verification service and a real CA (makePkiFixture: SoftHSM2 custody, LMDB store, both
// hierarchies), the real records repository (hot + cold LMDB), the file blob store and
// patient-id sealing under the token's KEK. Signatures are made by signing/cms-sign.ts with
// OpenSSL-made keys, by the OpenSSL CLI (`openssl cms -sign`), and time-stamped by the real
// TsaService. Every bad input has its code; a refusal stores its rejection and nothing else.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTimeStampReq, parseTimeStampResp } from '../../appliance/src/asn1/tsp.js';
import { parseSignedData } from '../../appliance/src/asn1/cms-signed-data.js';
import { applianceCertificate } from '../../appliance/src/pki/hierarchy.js';
import { readTstInfo } from '../../appliance/src/signing/timestamp-check.js';
import { fromPem } from '../../appliance/src/crypto/der.js';
import { digest } from '../../appliance/src/crypto/hash.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import { sm2Digest, sm2PublicKeyFromSpki } from '../../appliance/src/crypto/sm2.js';
import { openBlobStore } from '../../appliance/src/evidence/blob-store.js';
import { createEvidenceIngest, type IngestCaller } from '../../appliance/src/evidence/ingest.js';
import { leafData } from '../../appliance/src/evidence/leaf.js';
import { createPatientIdProtector } from '../../appliance/src/evidence/patient-id.js';
import { createEvidenceRecords } from '../../appliance/src/evidence/records.js';
import type { Project, ProjectDirectory } from '../../appliance/src/evidence/types.js';
import { YiqianError } from '../../appliance/src/errors.js';
import { signCms } from '../../appliance/src/signing/cms-sign.js';
import { createOcspClient } from '../../appliance/src/signing/ocsp-client.js';
import { createRevocationChecker } from '../../appliance/src/signing/revocation-check.js';
import { createTrustStore } from '../../appliance/src/signing/trust-store.js';
import { createVerificationService } from '../../appliance/src/signing/verify-service.js';
import { openEvidenceRepository } from '../../appliance/src/store/evidence-repository.js';
import { TsaService } from '../../appliance/src/tsa/tsa-service.js';
import { makeTestHierarchy } from '../helpers/openssl-pki.js';
import { makePkiFixture, opensslCsr, type CsrKind } from '../helpers/pki-hierarchy.js';
import { rejection } from '../helpers/store-fixture.js';

const CONTENT = Buffer.from('病历 #2026-0042：首次病程记录，主治医师签名', 'utf8');
const EMR: IngestCaller = { appId: '01JAPPEMR0000000000000000A', project: 'emr' };
const LIS: IngestCaller = { appId: '01JAPPLIS0000000000000000B', project: 'lis' };

/**
 * Projects as evidence/projects.ts answers them (E2 tests that module): this directory serves
 * fixed projects so that a frozen one and a missing one can be asked for.
 */
function projectsOf(list: Project[]): ProjectDirectory {
  const get = async (id: string) => list.find((p) => p.id === id);
  return {
    get,
    async writable(id) {
      const p = await get(id);
      if (!p) throw new YiqianError('PROJECT_NOT_FOUND', 404, { zh: '项目不存在', en: `no project ${id}` });
      if (p.frozen) throw new YiqianError('PROJECT_FROZEN', 409, { zh: '项目已冻结', en: `project ${id} is frozen` });
      return p;
    },
  };
}

const project = (id: string, frozen = false): Project => ({ id, name: id, retentionYears: 30, frozen, createdAt: new Date().toISOString(), updatedAt: new Date().toISOString() });

t.test('evidence ingestion', async (t) => {
  const fx = await makePkiFixture();
  const dir = mkdtempSync(join(tmpdir(), 'yq-evidence-ingest-'));
  const foreign = makeTestHierarchy('ecdsa');
  const trust = createTrustStore({ trust: fx.store.trustCas, cas: fx.store.cas });
  const revocation = createRevocationChecker({ trust, certs: fx.store.certs, ocsp: createOcspClient() });
  const verification = createVerificationService({ trust, revocation, certs: fx.store.certs });
  const repo = await openEvidenceRepository({ hot: fx.store.evidenceHot, merkle: fx.store.merkle, coldPath: join(dir, 'cold'), counters: { recordsStoredInTxn: () => undefined, rejectionInTxn: () => undefined } });
  t.teardown(async () => {
    await repo.close();
    await fx.close();
    rmSync(dir, { recursive: true, force: true });
    foreign.remove();
  });
  const blobs = await openBlobStore(join(dir, 'blobs'));
  const patientIds = createPatientIdProtector({ meta: fx.store.meta, wrapper: fx.custody });
  const projects = projectsOf([project('emr'), project('lis'), project('frozen', true)]);
  const ingest = createEvidenceIngest({ records: repo, projects, verification, trust, revocation, blobs, patientIds });
  const records = createEvidenceRecords({ records: repo, verification, trust, blobs, patientIds });

  const issue = async (kind: CsrKind, cn: string): Promise<{ der: Buffer; pem: string; serial: string; signer: Signer; keyFile: string }> => {
    const csr = opensslCsr(dir, kind, `/CN=${cn}`, cn);
    const issued = await fx.pki.certificates.issueFromCsr({ profile: 'personal', csr: csr.csrPem, commonName: cn, employeeId: `E-${cn}`, departmentId: 'D-icu' }, 'test');
    return { der: fromPem(issued.certificatePem)[0].der, pem: issued.certificatePem, serial: issued.record.serial, signer: createSoftwareSigner(readFileSync(csr.keyFile, 'utf8')), keyFile: csr.keyFile };
  };
  const sm2 = await issue('sm2', 'sm2-doctor');
  const ec = await issue('ecdsa-p256', 'ec-doctor');
  const gate = { check: () => ({ ok: true as const, time: new Date(), accuracyMicros: 1000, state: 'SYNCED', source: 'test', development: false, notice: null }) };
  const tsa = new TsaService({ certs: fx.store.certs, custody: fx.custody, tokens: fx.store.tsaTokens, gate: gate as never, policies: { policies: [{ oid: '1.2.3.4.5' }] } });
  const stamp = async (over: Buffer): Promise<Buffer> => {
    const a = await tsa.respond(buildTimeStampReq({ hash: 'sm3', hashedMessage: digest('sm3', over), certReq: true }), 'sm2', { address: 'test' });
    return parseTimeStampResp(a.der).token!;
  };
  const size = () => fx.store.merkle.size();

  await t.test('SM2 CMS (attached) with metadata: stored with its leaf, patient id sealed and masked', async (t) => {
    const cms = await signCms({ signer: sm2.signer, certificate: sm2.der, content: CONTENT, detached: false, form: 'gbt35275' });
    const r = await ingest.signature(EMR, { signature: { format: 'cms', value: cms, signingTime: '2026-01-02T03:04:05Z', statedSigner: { name: '张医生', employeeId: 'E-sm2-doctor' } }, metadata: { system: 'EMR', departmentId: 'D-icu', patientId: 'ZY20260042', businessSerial: 'BS-1', documentType: 'progress-note' } });
    t.equal(r.verdict.valid, true);
    t.equal(r.verdict.code, 'OK');
    t.equal(r.verdict.judgedAtSource, 'request', 'judged at the receipt time');
    t.equal(r.verdict.judgedAt, r.receivedAt);
    t.equal(r.leafIndex, 0);
    const rec = (await repo.get(r.id))!;
    t.equal(rec.kind, 'signature');
    t.equal(rec.contentDigest.value, digest('sm3', CONTENT).toString('hex'), 'the attached content\'s SM3');
    t.equal(rec.contentDigest.algorithm, 'sm3');
    t.equal(rec.patientIdMasked, 'ZY******42');
    t.notOk(JSON.stringify(rec).includes('ZY20260042'), 'no plain patient id stored');
    t.equal(await patientIds.open('emr', r.id, rec.patientIdSealed!), 'ZY20260042');
    await t.rejects(patientIds.open('emr', '01JXXXXXXXXXXXXXXXXXXXXXXX', rec.patientIdSealed!), { code: 'INTEGRITY_CHECK_FAILED' }, 'bound to its record');
    t.equal(rec.leafHash, fx.store.merkle.hasher.leaf(leafData(rec)).toString('hex'), 'leaf = leafData(record)');
    t.equal((await fx.store.merkle.leafHash(0))!.toString('hex'), rec.leafHash);
    t.equal(rec.verification?.signer?.serial, sm2.serial);
    t.equal(rec.verification?.content, undefined, 'the original is not duplicated into the verdict');
    t.same(rec.signature?.statedSigner, { name: '张医生', employeeId: 'E-sm2-doctor' });
    const view = await records.detail(EMR, r.id);
    t.equal((view as Record<string, unknown>).patientIdSealed, undefined, 'the view has no sealed value');
    t.same((await records.query(EMR, { patientId: 'ZY20260042' })).items.map((x) => x.id), [r.id], 'found by patient id');
    t.same((await records.query(EMR, { patientId: 'ZY20260043' })).items, []);
    const e = await rejection(records.detail(LIS, r.id));
    t.equal(e.code, 'EVIDENCE_NOT_FOUND', 'another project: 404, as an unknown id');
    t.equal(e.status, 404);
    t.equal((await rejection(records.detail(EMR, '01JXXXXXXXXXXXXXXXXXXXXXXX'))).code, 'EVIDENCE_NOT_FOUND');
  });

  await t.test('an attached CMS whose signer digests with SHA-256: the record still keeps the content\'s SM3', async (t) => {
    // The SM3 signer's messageDigest doubles as the contentDigest (it was verified equal); a
    // SHA-256 messageDigest must not.
    const other = Buffer.from('检验报告 LIS-0042: 血常规 (attached, ECDSA)');
    const cms = await signCms({ signer: ec.signer, certificate: ec.der, content: other, detached: false, form: 'rfc5652' });
    const r = await ingest.signature(EMR, { signature: { format: 'cms', value: cms } });
    t.equal(r.verdict.valid, true, r.verdict.code);
    const rec = (await repo.get(r.id))!;
    t.same(rec.contentDigest, { algorithm: 'sm3', value: digest('sm3', other).toString('hex') });
    t.not(rec.contentDigest.value, digest('sha256', other).toString('hex'));
  });

  await t.test('ECDSA detached CMS with the original (kept as a blob); OpenSSL-made CMS', async (t) => {
    const cms = await signCms({ signer: ec.signer, certificate: ec.der, content: CONTENT, detached: true, form: 'rfc5652' });
    const r = await ingest.signature(EMR, { original: CONTENT, mediaType: 'text/plain', signature: { format: 'cms', value: cms } });
    t.ok(r.verdict.valid);
    const rec = (await repo.get(r.id))!;
    t.equal(rec.original?.blobId, digest('sm3', CONTENT).toString('hex'));
    t.equal(rec.contentDigest.value, rec.original?.blobId);
    t.ok(await blobs.has(rec.original!.blobId));
    t.equal((await rejection(ingest.signature(EMR, { digest: { algorithm: 'sha256', value: digest('sha256', CONTENT) }, signature: { format: 'cms', value: cms } }))).code, 'ORIGINAL_REQUIRED');

    const inFile = join(dir, 'order.txt');
    writeFileSync(inFile, CONTENT);
    writeFileSync(join(dir, 'ec.pem'), ec.pem);
    const der = execFileSync('openssl', ['cms', '-sign', '-binary', '-nodetach', '-md', 'sha256', '-in', inFile, '-signer', join(dir, 'ec.pem'), '-inkey', ec.keyFile, '-outform', 'DER']);
    const o = await ingest.signature(EMR, { signature: { format: 'cms', value: der }, metadata: { departmentId: 'D-er' } });
    t.ok(o.verdict.valid, 'openssl cms -sign is accepted');
    t.equal((await repo.get(o.id))!.contentDigest.value, digest('sm3', CONTENT).toString('hex'));
    // The same CMS with another original beside it.
    const bad = await rejection(ingest.signature(EMR, { original: Buffer.from('another'), signature: { format: 'cms', value: der } }));
    t.equal(bad.code, 'CONTENT_ALTERED');
    t.equal(bad.status, 422);
  });

  await t.test('raw signatures: over the original, over a digest, time-stamped', async (t) => {
    const sig = await sm2.signer.sign(CONTENT);
    const r = await ingest.signature(EMR, { original: CONTENT, signature: { format: 'raw', value: sig, algorithm: 'SM2-SM3', certificate: sm2.der } });
    t.ok(r.verdict.valid, r.verdict.code);
    // SM2 over a digest: e = SM3(Z_A ‖ M) (GB/T 38629).
    const e = sm2Digest(sm2PublicKeyFromSpki(sm2.signer.publicKeyInfo), CONTENT);
    const d = await ingest.signature(EMR, { digest: { algorithm: 'sm3', value: e }, signature: { format: 'raw', value: sig, certificate: sm2.der } });
    t.ok(d.verdict.valid, `SM2 over e: ${d.verdict.code}`);
    t.equal((await repo.get(d.id))!.contentDigest.value, e.toString('hex'));
    const ecSig = await ec.signer.sign(CONTENT);
    const h = await ingest.signature(EMR, { digest: { algorithm: 'sha256', value: digest('sha256', CONTENT) }, signature: { format: 'raw', value: ecSig, algorithm: 'ECDSA-SHA256', certificate: ec.der } });
    t.ok(h.verdict.valid, `ECDSA over a SHA-256 digest: ${h.verdict.code}`);

    const token = await stamp(sig);
    const s = await ingest.signature(EMR, { original: CONTENT, signature: { format: 'raw', value: sig, certificate: sm2.der, timestampToken: token } });
    t.ok(s.verdict.valid, s.verdict.code);
    t.equal(s.verdict.judgedAtSource, 'timestamp', 'judged at the genTime');
    t.same(s.verdict.checks.filter((c) => c.name.startsWith('timestamp')).map((c) => c.ok), [true, true]);
    t.equal((await repo.get(s.id))!.signature?.timestampToken, token.toString('base64'));

    const before = await size();
    const wrong = await rejection(ingest.signature(EMR, { original: CONTENT, signature: { format: 'raw', value: sig, certificate: sm2.der, timestampToken: await stamp(Buffer.from('another signature')) } }));
    t.equal(wrong.code, 'TIMESTAMP_INVALID', 'a token over something else');
    t.equal(wrong.status, 422);
    t.equal(await size(), before, 'nothing stored');

    // The TSA's certificate revoked at or before genTime: the token proves no time (level 2, as
    // for a token inside a CMS); revoked after genTime: it stands.
    const genTime = readTstInfo(parseSignedData(token).content!).genTime;
    const tsaCert = (await applianceCertificate(fx.store.certs, 'sm2', 'tsa'))!;
    const revokeTsa = (at: Date) => fx.store.certs.update(tsaCert.serial, (cur) => ({ ...cur!, status: 'revoked', revocation: { time: at.toISOString(), reason: 'keyCompromise', by: 'test' }, updatedAt: new Date().toISOString() }));
    try {
      await revokeTsa(new Date(genTime.getTime() - 60_000));
      const revoked = await rejection(ingest.signature(EMR, { original: CONTENT, signature: { format: 'raw', value: sig, certificate: sm2.der, timestampToken: token } }));
      t.equal(revoked.code, 'TIMESTAMP_INVALID', 'TSA certificate revoked before genTime: refused');
      t.match(revoked.message, /TSA certificate revoked/);
      t.equal(await size(), before, 'nothing stored');
      await revokeTsa(new Date(genTime.getTime() + 60_000));
      const later = await ingest.signature(EMR, { original: CONTENT, signature: { format: 'raw', value: sig, certificate: sm2.der, timestampToken: token } });
      t.ok(later.verdict.valid, `TSA certificate revoked after genTime: stored (${later.verdict.code})`);
    } finally {
      await fx.store.certs.update(tsaCert.serial, (cur) => {
        const { revocation: _r, ...rest } = cur!;
        return { ...rest, status: 'good', updatedAt: new Date().toISOString() };
      });
    }
  });

  await t.test('refusals: each its code, the rejection kept, nothing else stored', async (t) => {
    const start = await size();
    const sig = await sm2.signer.sign(CONTENT);
    const bent = Buffer.from(sig);
    bent[bent.length - 2] ^= 1;
    const cases: [string, number, Promise<unknown>][] = [
      ['SIGNATURE_INVALID', 422, ingest.signature(EMR, { original: CONTENT, signature: { format: 'raw', value: bent, certificate: sm2.der }, metadata: { departmentId: 'D-icu' } })],
      ['SIGNATURE_INVALID', 422, ingest.signature(EMR, { original: Buffer.from('altered'), signature: { format: 'raw', value: sig, certificate: sm2.der }, metadata: { departmentId: 'D-icu' } })],
      ['CERT_UNTRUSTED', 422, (async () => {
        const leaf = foreign.leaf('0a1b', 'outsider');
        return ingest.signature(EMR, { original: CONTENT, signature: { format: 'raw', value: await foreign.signer(leaf).sign(CONTENT), certificate: leaf.der } });
      })()],
      ['CMS_MALFORMED', 422, ingest.signature(EMR, { signature: { format: 'cms', value: Buffer.from('3003020101', 'hex') } })],
      ['DIGEST_LENGTH_INVALID', 400, ingest.digest(EMR, { digest: { algorithm: 'sm3', value: Buffer.alloc(31) }, metadata: { departmentId: 'D-er' } })],
      ['DIGEST_LENGTH_INVALID', 400, ingest.signature(EMR, { digest: { algorithm: 'sha384', value: Buffer.alloc(32) }, signature: { format: 'raw', value: sig, certificate: ec.der } })],
    ];
    const stored = (await records.rejections(EMR, { limit: 500 })).items.length;
    for (const [code, status, p] of cases) {
      const e = await rejection(p);
      t.equal(e.code, code);
      t.equal(e.status, status);
      t.match(e.detail?.rejectionId, /^[0-9A-Z]{26}$/, `${code}: rejection id`);
    }
    const rs = (await records.rejections(EMR, { limit: 500 })).items.slice(stored);
    // (the cases ran concurrently: compare as sets)
    t.same(rs.map((r) => r.code).sort(), cases.map((c) => c[0]).sort(), 'every refusal kept as a rejection');
    const sigRejection = rs.find((r) => r.code === 'SIGNATURE_INVALID')!;
    t.equal(sigRejection.departmentId, 'D-icu', 'with its department');
    t.equal(sigRejection.appId, EMR.appId, 'and its app');
    t.equal(rs.find((r) => r.code === 'DIGEST_LENGTH_INVALID' && r.kind === 'digest')?.departmentId, 'D-er');
    t.equal(await size(), start, 'no leaf for a refusal');

    // Bad requests: their codes, and nothing kept at all.
    const bad: [string, Promise<unknown>][] = [
      ['ORIGINAL_OR_DIGEST_REQUIRED', ingest.signature(EMR, { signature: { format: 'raw', value: sig, certificate: sm2.der } })],
      ['ORIGINAL_OR_DIGEST_REQUIRED', ingest.signature(EMR, { original: CONTENT, digest: { algorithm: 'sm3', value: Buffer.alloc(32) }, signature: { format: 'raw', value: sig, certificate: sm2.der } })],
      ['CERTIFICATE_REQUIRED', ingest.signature(EMR, { original: CONTENT, signature: { format: 'raw', value: sig } })],
      ['EVIDENCE_REQUEST_INVALID', ingest.signature(EMR, { original: CONTENT, signature: { format: 'raw', value: sig, certificate: sm2.der, algorithm: 'MD5-RSA' } })],
      ['EVIDENCE_REQUEST_INVALID', ingest.signature(EMR, { original: CONTENT, signature: { format: 'raw', value: sig, certificate: sm2.der }, metadata: { patientId: 'x'.repeat(129) } })],
      ['EVIDENCE_REQUEST_INVALID', ingest.signature(EMR, { original: CONTENT, signature: { format: 'raw', value: sig, certificate: sm2.der }, metadata: { ward: '3' } as never })],
      ['EVIDENCE_REQUEST_INVALID', ingest.digest(EMR, { digest: { algorithm: 'md5' as never, value: Buffer.alloc(16) } })],
      ['PROJECT_FROZEN', ingest.digest({ appId: EMR.appId, project: 'frozen' }, { digest: { algorithm: 'sm3', value: Buffer.alloc(32) } })],
      ['PROJECT_NOT_FOUND', ingest.digest({ appId: EMR.appId, project: 'nope' }, { digest: { algorithm: 'sm3', value: Buffer.alloc(32) } })],
    ];
    for (const [code, p] of bad) t.equal((await rejection(p)).code, code);
    t.equal((await records.rejections(EMR, { limit: 500 })).items.length, stored + cases.length, 'no rejection for a malformed request');
    t.equal(await size(), start);
  });

  await t.test('digest records; re-verification judged at the receipt time', async (t) => {
    const d = await ingest.digest(LIS, { digest: { algorithm: 'sha256', value: digest('sha256', CONTENT) }, metadata: { businessSerial: 'LIS-1' } });
    t.equal(d.verdict.code, 'OK');
    t.equal((await records.query(LIS, { businessSerial: 'LIS-1' })).items[0].id, d.id);
    t.equal((await rejection(records.reverify(LIS, d.id))).code, 'EVIDENCE_NOT_SIGNED');

    const k = await issue('sm2', 'sm2-to-revoke');
    const cms = await signCms({ signer: k.signer, certificate: k.der, content: CONTENT, detached: true, form: 'gbt35275' });
    const r = await ingest.signature(EMR, { original: CONTENT, signature: { format: 'cms', value: cms } });
    t.ok(r.verdict.valid);
    const v1 = await records.reverify(EMR, r.id);
    t.ok(v1.stored?.valid && (v1.fresh as { valid: boolean }).valid, 'stored and fresh verdicts');
    // Revoked after receipt: the record stays valid (judged at its receipt time) ...
    const revokedAt = new Date(Date.now() + 1000);
    await fx.store.certs.update(k.serial, (cur) => ({ ...cur!, status: 'revoked', revocation: { time: revokedAt.toISOString(), reason: 'keyCompromise', by: 'test' }, updatedAt: new Date().toISOString() }));
    const v2 = await records.reverify(EMR, r.id);
    t.ok((v2.fresh as { valid: boolean }).valid, 'revoked after receipt: still valid');
    // ... and a new push of the same signature after the revocation is refused.
    await new Promise((res) => setTimeout(res, 1100));
    const e = await rejection(ingest.signature(EMR, { original: CONTENT, signature: { format: 'cms', value: cms } }));
    t.equal(e.code, 'CERT_REVOKED');
    t.equal((await rejection(records.reverify(LIS, r.id))).code, 'EVIDENCE_NOT_FOUND', 'another project cannot re-verify');
  });
});
