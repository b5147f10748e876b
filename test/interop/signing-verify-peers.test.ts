// The verification service against signatures made by real peers (issue 4, "Verified by real
// peers"): keys made by the OpenSSL CLI, certified by our CA (makePkiFixture) from their CSRs so
// that every path ends in our trust anchors, then
//   - an SM2 CMS made by BouncyCastle's CMSSignedDataGenerator (SM3withSM2, RFC 5652 form) and a
//     raw SM2 signature by BouncyCastle (one JVM run);
//   - ECDSA and RSA CMS made by `openssl cms -sign`, attached and detached, and raw signatures by
//     `openssl dgst -sign` (SM2 with -sigopt distid:1234567812345678, ECDSA, RSA PKCS#1 / PSS);
//   - raw SM2 signatures by sm-crypto and sm-crypto-v2 (default ID, and a given ID);
// all verify at level 2 (chain to our roots and our CA's revocation status), and a different
// original or a signature under another certificate fails with its own code.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import smCrypto from 'sm-crypto';
import { sm2 as smV2 } from 'sm-crypto-v2';
import { readCertificate } from '../../appliance/src/asn1/certificate.js';
import { fromPem } from '../../appliance/src/crypto/der.js';
import { sm2PrivateKeyFromPem, sm2PublicKeyFromSpki } from '../../appliance/src/crypto/sm2.js';
import { createOcspClient } from '../../appliance/src/signing/ocsp-client.js';
import { createRevocationChecker } from '../../appliance/src/signing/revocation-check.js';
import { createTrustStore } from '../../appliance/src/signing/trust-store.js';
import type { VerificationReport } from '../../appliance/src/signing/types.js';
import { createVerificationService } from '../../appliance/src/signing/verify-service.js';
import { runJavaBatch } from '../helpers/bouncycastle.js';
import { makePkiFixture, opensslCsr, type CsrKind } from '../helpers/pki-hierarchy.js';

const CONTENT = Buffer.from('检验报告 LAB-2026-0815 血常规 / complete blood count\n', 'utf8');

t.test('verification of peer-made signatures', async (t) => {
  const fx = await makePkiFixture();
  const w = mkdtempSync(join(tmpdir(), 'yq-verify-peers-'));
  t.teardown(async () => {
    await fx.close();
    rmSync(w, { recursive: true, force: true });
  });
  const trust = createTrustStore({ trust: fx.store.trustCas, cas: fx.store.cas });
  const svc = createVerificationService({ trust, revocation: createRevocationChecker({ trust, certs: fx.store.certs, ocsp: createOcspClient() }), certs: fx.store.certs });
  const ossl = (args: string[], input?: Buffer): Buffer => execFileSync('openssl', args, { cwd: w, input, stdio: ['pipe', 'pipe', 'pipe'] });
  const issue = async (kind: CsrKind, cn: string) => {
    const csr = opensslCsr(w, kind, `/CN=${cn}`, cn);
    const issued = await fx.pki.certificates.issueFromCsr({ profile: 'personal', csr: csr.csrPem, commonName: cn, employeeId: `E-${cn}` }, 'test');
    const certFile = join(w, `${cn}.pem`);
    writeFileSync(certFile, issued.certificatePem);
    return { der: fromPem(issued.certificatePem)[0].der, serial: issued.record.serial, keyFile: csr.keyFile, certFile };
  };
  const sm2 = await issue('sm2', 'sm2-peer');
  const ec = await issue('ecdsa-p256', 'ec-peer');
  const rsa = await issue('rsa-2048', 'rsa-peer');
  const contentFile = join(w, 'content.bin');
  writeFileSync(contentFile, CONTENT);

  const valid = (t: Test, r: VerificationReport, name: string, serial: string): void => {
    t.ok(r.valid, `${name}: ${r.code} ${JSON.stringify(r.checks.filter((c) => c.ok === false))}`);
    t.equal(r.level, 2, `${name}: level 2`);
    t.equal(r.chain?.length, 3, `${name}: path to our root`);
    t.equal(r.revocation?.ok, true, `${name}: revocation checked`);
    t.equal(r.signer?.serial, serial);
  };

  const sm2Pkcs8 = fromPem(readFileSync(sm2.keyFile, 'utf8'))[0].der.toString('hex');
  const bcCms = join(w, 'bc-sm2.p7s');
  const out = await runJavaBatch('CmsInterop', [`sign-sm2 ${sm2.keyFile} ${sm2.certFile} ${contentFile} ${bcCms}`]);
  const bcRaw = await runJavaBatch('Sm2Interop', [`sign ${sm2Pkcs8} - ${CONTENT.toString('hex')}`, `sign ${sm2Pkcs8} ${Buffer.from('ALICE123@YAHOO.COM').toString('hex')} ${CONTENT.toString('hex')}`]);

  await t.test('BouncyCastle: SM2 CMS (RFC 5652 form) and raw SM2', async (t) => {
    t.equal(out[0], 'ok');
    const der = readFileSync(bcCms);
    const r = await svc.verifyCms({ cms: der });
    valid(t, r, 'BouncyCastle SM2 CMS', sm2.serial);
    t.equal(r.form, 'rfc5652');
    t.equal(r.content, CONTENT.toString('base64'), 'original extracted');
    t.equal(r.signer?.employeeId, 'E-sm2-peer');
    const other = await svc.verifyCms({ cms: der, content: Buffer.from('another report') });
    t.equal(other.code, 'CONTENT_ALTERED', 'a different original given beside the attached one');
    t.notOk(bcRaw[0].startsWith('error'), bcRaw[0]);
    valid(t, await svc.verifyRaw({ certificate: sm2.der, data: CONTENT, signature: Buffer.from(bcRaw[0], 'hex') }), 'BouncyCastle raw SM2 (default ID)', sm2.serial);
    valid(t, await svc.verifyRaw({ certSerial: sm2.serial, data: CONTENT, signature: Buffer.from(bcRaw[1], 'hex'), sm2Id: Buffer.from('ALICE123@YAHOO.COM') }), 'BouncyCastle raw SM2 (given ID)', sm2.serial);
  });

  await t.test('openssl cms -sign: ECDSA and RSA, attached and detached', async (t) => {
    for (const [name, k] of [
      ['ECDSA', ec],
      ['RSA', rsa],
    ] as const) {
      const att = ossl(['cms', '-sign', '-binary', '-nodetach', '-md', 'sha256', '-in', 'content.bin', '-signer', k.certFile, '-inkey', k.keyFile, '-outform', 'DER']);
      const r = await svc.verifyCms({ cms: att });
      valid(t, r, `${name} attached`, k.serial);
      t.equal(r.content, CONTENT.toString('base64'));
      const det = ossl(['cms', '-sign', '-binary', '-md', 'sha256', '-in', 'content.bin', '-signer', k.certFile, '-inkey', k.keyFile, '-outform', 'DER']);
      valid(t, await svc.verifyCms({ cms: det, content: CONTENT }), `${name} detached`, k.serial);
      const bad = await svc.verifyCms({ cms: det, content: Buffer.concat([CONTENT, Buffer.from('x')]) });
      t.equal(bad.code, 'CONTENT_ALTERED', `${name} detached, another original`);
      t.equal(bad.checks.find((c) => c.name === 'contentIntact')?.label, '原文未改');
      // PEM in, as `openssl cms -outform PEM` writes it: the HTTP layer takes PEM; the service takes DER.
      t.ok(fromPem(ossl(['cms', '-sign', '-binary', '-nodetach', '-in', 'content.bin', '-signer', k.certFile, '-inkey', k.keyFile, '-outform', 'PEM']).toString())[0].der.length > 0);
    }
  });

  await t.test('openssl dgst -sign: raw SM2, ECDSA, RSA PKCS#1 and PSS', async (t) => {
    const sm2Sig = ossl(['dgst', '-sm3', '-sign', sm2.keyFile, '-sigopt', 'distid:1234567812345678', 'content.bin']);
    valid(t, await svc.verifyRaw({ certificate: sm2.der, data: CONTENT, signature: sm2Sig }), 'openssl SM2', sm2.serial);
    const ecSig = ossl(['dgst', '-sha256', '-sign', ec.keyFile, 'content.bin']);
    valid(t, await svc.verifyRaw({ certificate: ec.der, data: CONTENT, signature: ecSig }), 'openssl ECDSA', ec.serial);
    const rsaSig = ossl(['dgst', '-sha256', '-sign', rsa.keyFile, 'content.bin']);
    valid(t, await svc.verifyRaw({ certificate: rsa.der, data: CONTENT, signature: rsaSig }), 'openssl RSA PKCS#1', rsa.serial);
    const pss = ossl(['dgst', '-sha256', '-sign', rsa.keyFile, '-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:32', 'content.bin']);
    valid(t, await svc.verifyRaw({ certificate: rsa.der, data: CONTENT, signature: pss, rsaPadding: 'pss' }), 'openssl RSA PSS', rsa.serial);
    t.equal((await svc.verifyRaw({ certificate: ec.der, data: CONTENT, signature: sm2Sig })).code, 'SIGNATURE_INVALID', 'an SM2 signature under the ECDSA certificate');
  });

  await t.test('sm-crypto and sm-crypto-v2: raw SM2 with the default ID', async (t) => {
    const d = sm2PrivateKeyFromPem(readFileSync(sm2.keyFile, 'utf8')).toString('hex');
    const p = sm2PublicKeyFromSpki(readCertificate(sm2.der).publicKeyInfo).toString('hex');
    const s05 = smCrypto.sm2.doSignature(Array.from(CONTENT), d, { hash: true, der: true, publicKey: p });
    valid(t, await svc.verifyRaw({ certificate: sm2.der, data: CONTENT, signature: Buffer.from(s05, 'hex') }), 'sm-crypto 0.5', sm2.serial);
    const sv2 = smV2.doSignature(CONTENT, d, { hash: true, der: true, publicKey: p });
    valid(t, await svc.verifyRaw({ certificate: sm2.der, data: CONTENT, signature: Buffer.from(sv2, 'hex') }), 'sm-crypto-v2', sm2.serial);
    const withId = smV2.doSignature(CONTENT, d, { hash: true, der: true, publicKey: p, userId: 'doctor@hospital' });
    valid(t, await svc.verifyRaw({ certificate: sm2.der, data: CONTENT, signature: Buffer.from(withId, 'hex'), sm2Id: Buffer.from('doctor@hospital') }), 'sm-crypto-v2, given ID', sm2.serial);
    t.equal((await svc.verifyRaw({ certificate: sm2.der, data: CONTENT, signature: Buffer.from(withId, 'hex') })).code, 'SIGNATURE_INVALID', 'given-ID signature checked with the default ID');
  });
});
