// The verification service (signing/verify-service.ts) over a real CA (makePkiFixture: SoftHSM2
// custody, LMDB store, both hierarchies): CMS in both forms, raw SM2/ECDSA/RSA signatures and
// certificates, each bad input with its own report code and GB/T 38629 code, levels 0/1/2 around
// a revocation, and a CAdES-T time-stamp from the real TsaService that predates the revocation.
// Keys are made by the OpenSSL CLI and certified by the fixture CA from their CSRs.
import t from 'tap';
import { constants, createPrivateKey, sign as nodeSign } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCertificate } from '../../appliance/src/asn1/certificate.js';
import { attribute } from '../../appliance/src/asn1/cms-signed-data.js';
import { buildTimeStampReq, parseTimeStampResp } from '../../appliance/src/asn1/tsp.js';
import { Tag, children, fromPem, readWhole, tlv } from '../../appliance/src/crypto/der.js';
import { digest } from '../../appliance/src/crypto/hash.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import { sm2Digest, sm2PublicKeyFromSpki } from '../../appliance/src/crypto/sm2.js';
import { signCms } from '../../appliance/src/signing/cms-sign.js';
import { OID_SIGNATURE_TIMESTAMP_TOKEN } from '../../appliance/src/signing/timestamp-check.js';
import { createOcspClient } from '../../appliance/src/signing/ocsp-client.js';
import { createRevocationChecker } from '../../appliance/src/signing/revocation-check.js';
import { createTrustStore } from '../../appliance/src/signing/trust-store.js';
import type { VerificationReport } from '../../appliance/src/signing/types.js';
import { createVerificationService } from '../../appliance/src/signing/verify-service.js';
import { TsaService } from '../../appliance/src/tsa/tsa-service.js';
import { applianceCertificate } from '../../appliance/src/pki/hierarchy.js';
import { makeTestHierarchy } from '../helpers/openssl-pki.js';
import { makePkiFixture, opensslCsr, type CsrKind } from '../helpers/pki-hierarchy.js';
import { rejection } from '../helpers/store-fixture.js';

const CONTENT = Buffer.from('医嘱 #20261123-0042: 头孢曲松 2 g ivgtt qd', 'utf8');

function check(r: VerificationReport, name: string) {
  return r.checks.find((c) => c.name === name);
}

/** Adds an unsigned attribute to the (only) SignerInfo of a DER ContentInfo(SignedData). */
function withUnsignedAttribute(cms: Buffer, type: string, value: Buffer): Buffer {
  const ci = children(readWhole(cms, Tag.SEQUENCE).value);
  const sd = children(readWhole(ci[1].value, Tag.SEQUENCE).value);
  const infos = sd[sd.length - 1];
  const si = children(children(infos.value)[0].value);
  const newSi = tlv(Tag.SEQUENCE, ...si.map((x) => Buffer.from(x.raw)), tlv(0xa1, attribute(type, value)));
  const newSd = tlv(Tag.SEQUENCE, ...sd.slice(0, -1).map((x) => Buffer.from(x.raw)), tlv(0x31, newSi));
  return tlv(Tag.SEQUENCE, Buffer.from(ci[0].raw), tlv(0xa0, newSd));
}

t.test('verification service', async (t) => {
  const fx = await makePkiFixture();
  const dir = mkdtempSync(join(tmpdir(), 'yq-verify-'));
  const foreign = makeTestHierarchy('ecdsa');
  t.teardown(async () => {
    await fx.close();
    rmSync(dir, { recursive: true, force: true });
    foreign.remove();
  });
  const trust = createTrustStore({ trust: fx.store.trustCas, cas: fx.store.cas });
  const svc = createVerificationService({ trust, revocation: createRevocationChecker({ trust, certs: fx.store.certs, ocsp: createOcspClient() }), certs: fx.store.certs });

  const issue = async (kind: CsrKind, cn: string): Promise<{ der: Buffer; serial: string; signer: Signer; keyFile: string }> => {
    const csr = opensslCsr(dir, kind, `/CN=${cn}`, cn);
    const issued = await fx.pki.certificates.issueFromCsr({ profile: 'personal', csr: csr.csrPem, commonName: cn, employeeId: `E-${cn}`, departmentId: 'D-icu' }, 'test');
    return { der: fromPem(issued.certificatePem)[0].der, serial: issued.record.serial, signer: createSoftwareSigner(readFileSync(csr.keyFile, 'utf8')), keyFile: csr.keyFile };
  };
  const cas = await fx.store.cas.list();
  const issuing = (h: string) => Buffer.from(cas.find((c) => c.id === `${h}-issuing`)!.certificate, 'base64');
  const sm2 = await issue('sm2', 'sm2-doctor');
  const ec = await issue('ecdsa-p256', 'ec-doctor');
  const rsa = await issue('rsa-2048', 'rsa-doctor');

  await t.test('CMS from our CA: both SM2 forms, ECDSA, RSA, attached and detached, level 2', async (t) => {
    for (const [name, k, form, chain] of [
      ['SM2 GB/T 35275', sm2, 'gbt35275', issuing('sm2')],
      ['SM2 RFC 5652', sm2, 'rfc5652', issuing('sm2')],
      ['ECDSA', ec, 'rfc5652', issuing('ecdsa')],
      ['RSA', rsa, 'rfc5652', issuing('ecdsa')],
    ] as const) {
      const att = await signCms({ signer: k.signer, certificate: k.der, chain: [chain], content: CONTENT, detached: false, form });
      const r = await svc.verifyCms({ cms: att });
      t.ok(r.valid, `${name}: ${JSON.stringify(r.checks.filter((c) => c.ok === false))}`);
      t.equal(r.code, 'OK');
      t.equal(r.gbtCode, 0);
      t.equal(r.level, 2);
      t.equal(r.form, name.startsWith('SM2 GB') ? 'gbt35275' : 'rfc5652');
      t.equal(r.judgedAtSource, 'now', 'no time-stamp: judged now, not at the signer-claimed time');
      t.equal(r.content, CONTENT.toString('base64'), `${name}: original extracted`);
      t.match(r.signer, { serial: k.serial, commonName: k === sm2 ? 'sm2-doctor' : k === ec ? 'ec-doctor' : 'rsa-doctor', employeeId: /^E-/, departmentId: 'D-icu' });
      t.equal(r.chain?.length, 3, 'leaf, issuing, root');
      t.equal(r.revocation?.ok, true);
      t.same(
        r.checks.map((c) => [c.name, c.ok]),
        [
          ['structure', true],
          ['signerFound', true],
          ['algorithm', true],
          ['contentType', true],
          ['contentIntact', true],
          ['signingCertificate', true],
          ['signatureIntact', true],
          ['timestampImprint', null],
          ['timestamp', null],
          ['certificateValidity', true],
          ['chain', true],
          ['revocation', true],
        ],
      );
      t.ok(r.checks.every((c) => c.label), 'every check has a zh label');
      const det = await signCms({ signer: k.signer, certificate: k.der, content: CONTENT, detached: true, form });
      const d = await svc.verifyCms({ cms: det, content: CONTENT });
      t.ok(d.valid, `${name} detached: ${d.code}`);
      t.equal(d.content, undefined, 'detached: the original is not echoed');
      const e = await rejection(svc.verifyCms({ cms: det }));
      t.equal(e.code, 'CONTENT_REQUIRED');
      t.equal(e.status, 400);
    }
  });

  await t.test('bad CMS input: each its own code', async (t) => {
    const good = await signCms({ signer: sm2.signer, certificate: sm2.der, content: CONTENT, detached: false, form: 'gbt35275' });
    const tampered = Buffer.from(good);
    tampered[good.indexOf(CONTENT) + 3] ^= 1;
    const a = await svc.verifyCms({ cms: tampered });
    t.equal(a.code, 'CONTENT_ALTERED');
    t.equal(a.gbtCode, 0x0400000c);
    t.equal(check(a, 'contentIntact')?.ok, false);
    t.equal(check(a, 'contentIntact')?.label, '原文未改');
    t.equal(check(a, 'signatureIntact')?.ok, true, '签名未改 itself still holds');

    const detached = await signCms({ signer: ec.signer, certificate: ec.der, content: CONTENT, detached: true, form: 'rfc5652' });
    const o = await svc.verifyCms({ cms: detached, content: Buffer.from('another order') });
    t.equal(o.code, 'CONTENT_ALTERED', 'detached with another original');

    const sigBad = Buffer.from(good);
    sigBad[sigBad.length - 1] ^= 1;
    const s = await svc.verifyCms({ cms: sigBad });
    t.equal(s.code, 'SIGNATURE_INVALID');
    t.equal(check(s, 'signatureIntact')?.label, '签名未改');

    // Swapped certificate: the SM2 key signs, the other SM2 doctor's certificate is embedded.
    const other = await issue('sm2', 'sm2-nurse');
    const swapped = await signCms({ signer: sm2.signer, certificate: other.der, content: CONTENT, detached: false, form: 'gbt35275' });
    const w = await svc.verifyCms({ cms: swapped });
    t.equal(w.code, 'SIGNATURE_INVALID', 'swapped certificate');
    t.equal(w.signer?.serial, other.serial);

    const garbage = await svc.verifyCms({ cms: Buffer.from('definitely not DER') });
    t.equal(garbage.code, 'CMS_MALFORMED');
    t.equal(garbage.gbtCode, 0x0400000d);
    t.equal(garbage.valid, false);
    for (const cut of [5, good.length >> 1, good.length - 1]) t.equal((await svc.verifyCms({ cms: good.subarray(0, cut) })).code, 'CMS_MALFORMED', `truncated at ${cut}`);

    // An algorithm we do not accept: the SignerInfo digest id-sha256 becomes id-sha3-256 (…4.2.8).
    const ecAtt = await signCms({ signer: ec.signer, certificate: ec.der, content: CONTENT, detached: false, form: 'rfc5652' });
    const at = ecAtt.lastIndexOf(Buffer.from('0609608648016503040201', 'hex'));
    const mismatch = Buffer.from(ecAtt);
    mismatch[at + 10] = 0x08;
    const m = await svc.verifyCms({ cms: mismatch });
    t.equal(m.code, 'ALGORITHM_UNSUPPORTED');
    t.equal(m.gbtCode, 0x04000004);

    await t.rejects(svc.verifyCms({ cms: Buffer.alloc(0) }), { code: 'SIGNATURE_REQUIRED' });
    await t.rejects(svc.verifyCms({ cms: good, level: 3 as never }), { code: 'VERIFY_REQUEST_INVALID' });
  });

  await t.test('certificate validity, unknown issuer, levels', async (t) => {
    const future = await signCms({ signer: ec.signer, certificate: ec.der, content: CONTENT, detached: false, form: 'rfc5652', signingTime: new Date('2099-01-01T00:00:00Z') });
    const f = await svc.verifyCms({ cms: future, at: new Date('2099-01-01T00:00:00Z') });
    t.equal(f.code, 'CERT_EXPIRED');
    t.equal(f.gbtCode, 0x04000009);
    t.equal(check(f, 'certificateValidity')?.label, '证书有效期');
    const past = await signCms({ signer: ec.signer, certificate: ec.der, content: CONTENT, detached: false, form: 'rfc5652', signingTime: new Date('2001-01-01T00:00:00Z') });
    const p = await svc.verifyCms({ cms: past, level: 0, at: new Date('2001-01-01T00:00:00Z') });
    t.equal(p.code, 'CERT_NOT_YET_VALID');
    t.equal(p.gbtCode, 0x0400000a);
    t.equal(check(p, 'chain')?.ok, null, 'chain not checked at level 0');

    const leaf = foreign.leaf('0c01', 'foreign doctor');
    const cms = await signCms({ signer: foreign.signer(leaf), certificate: leaf.der, chain: [foreign.issuing.der], content: CONTENT, detached: false, form: 'rfc5652' });
    const u = await svc.verifyCms({ cms });
    t.equal(u.code, 'CERT_UNTRUSTED');
    t.equal(u.gbtCode, 0x04000007);
    t.equal(check(u, 'chain')?.label, '证书链');
    t.equal(check(u, 'revocation')?.ok, null, 'revocation not checked without a path');
    t.ok((await svc.verifyCms({ cms, level: 0 })).valid, 'level 0: validity only');
    t.notOk(u.signer?.employeeId, 'not ours: no staff identity');

    // Import the foreign root into the trust store: the path is now built (level 1 valid), and
    // with no CRL or OCSP for that CA the status is unknown at level 2. Removing it again takes
    // effect at once.
    const imported = await trust.importCa(foreign.root.der, {}, 'test');
    const l1 = await svc.verifyCms({ cms, level: 1 });
    t.ok(l1.valid, `imported CA, level 1: ${l1.code}`);
    const l2 = await svc.verifyCms({ cms });
    t.equal(l2.code, 'REVOCATION_UNKNOWN');
    t.equal(l2.gbtCode, 0x04000007);
    t.equal(check(l2, 'revocation')?.ok, false);
    await trust.remove(imported.id, 'test');
    t.equal((await svc.verifyCms({ cms, level: 1 })).code, 'CERT_UNTRUSTED', 'removed from the trust store: untrusted again');

    const c = await svc.validateCertificate({ certificate: sm2.der });
    t.ok(c.valid, c.code);
    t.equal(c.chain?.length, 3);
    t.equal((await svc.validateCertificate({ certificate: leaf.der, level: 1 })).code, 'CERT_UNTRUSTED');
    t.equal((await svc.validateCertificate({ certificate: sm2.der, at: new Date('2099-01-01Z') })).code, 'CERT_EXPIRED');
    t.equal((await svc.validateCertificate({ certificate: Buffer.from('garbage') })).code, 'CERT_DECODE_FAILED');
    const tr = await svc.validateCertificate({ certificate: sm2.der.subarray(0, sm2.der.length - 7) });
    t.equal(tr.code, 'CERT_DECODE_FAILED');
    t.equal(tr.gbtCode, 0x04000008);
  });

  await t.test('raw signatures: SM2 (default and given ID, digest), ECDSA, RSA PKCS#1 and PSS', async (t) => {
    const id = Buffer.from('ALICE123@YAHOO.COM');
    const spki = readCertificate(sm2.der).publicKeyInfo;
    const sSm2 = await sm2.signer.sign(CONTENT);
    const ok = async (name: string, r: Promise<VerificationReport>) => {
      const x = await r;
      t.ok(x.valid, `${name}: ${x.code} ${JSON.stringify(x.checks.filter((c) => c.ok === false))}`);
      t.equal(x.form, 'raw');
      return x;
    };
    const r1 = await ok('SM2 default ID', svc.verifyRaw({ certificate: sm2.der, data: CONTENT, signature: sSm2 }));
    t.equal(r1.signer?.employeeId, 'E-sm2-doctor');
    await ok('SM2 by certSerial', svc.verifyRaw({ certSerial: sm2.serial.toUpperCase(), data: CONTENT, signature: sSm2 }));
    await ok('SM2 given ID', svc.verifyRaw({ certificate: sm2.der, data: CONTENT, signature: await sm2.signer.sign(CONTENT, { sm2Id: id }), sm2Id: id }));
    const e = sm2Digest(sm2PublicKeyFromSpki(spki), CONTENT);
    await ok('SM2 digest e', svc.verifyRaw({ certificate: sm2.der, digest: e, signature: sSm2 }));
    t.equal((await svc.verifyRaw({ certificate: sm2.der, data: CONTENT, signature: sSm2, sm2Id: id })).code, 'SIGNATURE_INVALID', 'other ID');
    t.equal((await svc.verifyRaw({ certificate: sm2.der, data: Buffer.from('x'), signature: sSm2 })).code, 'SIGNATURE_INVALID');
    t.equal((await svc.verifyRaw({ certificate: sm2.der, data: CONTENT, signature: Buffer.from('not a signature') })).code, 'SIGNATURE_INVALID');
    const dl = await svc.verifyRaw({ certificate: sm2.der, digest: e.subarray(0, 20), signature: sSm2 });
    t.equal(dl.code, 'DIGEST_LENGTH_INVALID');
    t.equal(dl.gbtCode, 0x0400000d);

    const sEc = await ec.signer.sign(CONTENT, { hash: 'sha256' });
    await ok('ECDSA', svc.verifyRaw({ certificate: ec.der, data: CONTENT, signature: sEc }));
    await ok('ECDSA digest', svc.verifyRaw({ certificate: ec.der, digest: digest('sha256', CONTENT), signature: sEc }));
    await ok('ECDSA SHA-384', svc.verifyRaw({ certificate: ec.der, data: CONTENT, hash: 'sha384', signature: await ec.signer.sign(CONTENT, { hash: 'sha384' }) }));
    t.equal((await svc.verifyRaw({ certificate: ec.der, digest: digest('sha384', CONTENT), signature: sEc })).code, 'DIGEST_LENGTH_INVALID', 'a SHA-384 digest for P-256/SHA-256');
    t.equal((await svc.verifyRaw({ certificate: sm2.der, data: CONTENT, hash: 'sha256', signature: sSm2 })).code, 'ALGORITHM_UNSUPPORTED', 'SM2 with SHA-256');

    const key = createPrivateKey(readFileSync(rsa.keyFile, 'utf8'));
    const pkcs1 = nodeSign('sha256', CONTENT, key);
    const pss = nodeSign('sha256', CONTENT, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
    await ok('RSA PKCS#1', svc.verifyRaw({ certificate: rsa.der, data: CONTENT, signature: pkcs1 }));
    await ok('RSA PSS', svc.verifyRaw({ certificate: rsa.der, data: CONTENT, signature: pss, rsaPadding: 'pss' }));
    await ok('RSA PSS digest', svc.verifyRaw({ certificate: rsa.der, digest: digest('sha256', CONTENT), signature: pss, rsaPadding: 'pss' }));
    t.equal((await svc.verifyRaw({ certificate: rsa.der, data: CONTENT, signature: pss })).code, 'SIGNATURE_INVALID', 'PSS signature read as PKCS#1');

    // An Ed25519 certificate (OpenSSL): an algorithm we do not verify.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ed25519', '-nodes', '-keyout', join(dir, 'ed.key'), '-subj', '/CN=ed', '-days', '2', '-out', join(dir, 'ed.pem')], { stdio: 'ignore' });
    const ed = await svc.verifyRaw({ certificate: fromPem(readFileSync(join(dir, 'ed.pem'), 'utf8'))[0].der, data: CONTENT, signature: Buffer.alloc(64, 1) });
    t.equal(ed.code, 'ALGORITHM_UNSUPPORTED');
    t.equal(ed.gbtCode, 0x04000004);
    t.equal((await svc.verifyRaw({ certificate: Buffer.from([0x30, 0x03, 0x02, 0x01]), data: CONTENT, signature: sSm2 })).code, 'CERT_DECODE_FAILED');

    // Malformed requests throw with their codes.
    await t.rejects(svc.verifyRaw({ certSerial: '0123456789abcdef0123', data: CONTENT, signature: sSm2 }), { code: 'CERT_NOT_FOUND', status: 404 });
    await t.rejects(svc.verifyRaw({ certificate: sm2.der, data: CONTENT, digest: e, signature: sSm2 }), { code: 'DATA_OR_DIGEST_REQUIRED', status: 400 });
    await t.rejects(svc.verifyRaw({ certificate: sm2.der, signature: sSm2 }), { code: 'DATA_OR_DIGEST_REQUIRED' });
    await t.rejects(svc.verifyRaw({ data: CONTENT, signature: sSm2 }), { code: 'CERTIFICATE_REQUIRED' });
    await t.rejects(svc.verifyRaw({ certificate: sm2.der, data: CONTENT, signature: Buffer.alloc(0) }), { code: 'SIGNATURE_REQUIRED' });
    await t.rejects(svc.verifyRaw({ certificate: sm2.der, digest: e, sm2Id: id, signature: sSm2 }), { code: 'VERIFY_REQUEST_INVALID' });
    await t.rejects(svc.verifyRaw({ certSerial: 'xyz', data: CONTENT, signature: sSm2 }), { code: 'VERIFY_REQUEST_INVALID' });
    await t.rejects(svc.verifyRaw({ certificate: sm2.der, data: CONTENT, signature: sSm2, at: new Date('nope') }), { code: 'VERIFY_REQUEST_INVALID' });

    // Judged at a claimed time.
    const past = await svc.verifyRaw({ certificate: ec.der, data: CONTENT, signature: sEc, at: new Date('2001-01-01Z') });
    t.equal(past.code, 'CERT_NOT_YET_VALID');
    t.equal(past.judgedAtSource, 'request');

    // A signer-claimed signingTime is reported, never used as the judging time (it could backdate).
    const backdated = await svc.verifyCms({ cms: await signCms({ signer: ec.signer, certificate: ec.der, content: CONTENT, detached: false, form: 'rfc5652', signingTime: new Date('2001-01-01Z') }) });
    t.ok(backdated.valid, `backdated claim ignored: ${backdated.code}`);
    t.equal(backdated.judgedAtSource, 'now');
    t.equal(backdated.signingTime, '2001-01-01T00:00:00.000Z');
  });

  await t.test('revocation by level, and a time-stamp that predates it', async (t) => {
    const k = await issue('sm2', 'sm2-revoked');
    const gate = { check: () => ({ ok: true as const, time: new Date(), accuracyMicros: 1000, state: 'SYNCED', source: 'test', development: false, notice: null }) };
    const tsa = new TsaService({ certs: fx.store.certs, custody: fx.custody, tokens: fx.store.tsaTokens, gate: gate as never, policies: { policies: [{ oid: '1.2.3.4.5' }] } });
    const stamp = async (cms: Buffer, over?: Buffer): Promise<Buffer> => {
      const sig = Buffer.from(children(children(children(children(children(readWhole(cms, Tag.SEQUENCE).value)[1].value)[0].value).at(-1)!.value)[0].value).find((x) => x.tag === Tag.OCTET_STRING)!.value);
      const a = await tsa.respond(buildTimeStampReq({ hash: 'sm3', hashedMessage: digest('sm3', over ?? sig), certReq: true }), 'sm2', { address: 'test' });
      t.ok(a.granted, a.reason ?? 'time-stamp granted');
      return withUnsignedAttribute(cms, OID_SIGNATURE_TIMESTAMP_TOKEN, parseTimeStampResp(a.der).token!);
    };

    const before = await signCms({ signer: k.signer, certificate: k.der, content: CONTENT, detached: false, form: 'gbt35275' });
    const stamped = await stamp(before);
    // A signer that claims a later signing time, but the time-stamp says when it existed.
    const claimsLater = await stamp(await signCms({ signer: k.signer, certificate: k.der, content: CONTENT, detached: false, form: 'gbt35275', signingTime: new Date(Date.now() + 60_000) }));
    const s0 = await svc.verifyCms({ cms: stamped });
    t.ok(s0.valid, `stamped, not revoked: ${s0.code}`);
    t.equal(s0.judgedAtSource, 'timestamp');
    t.equal(check(s0, 'timestamp')?.ok, true);
    t.equal(check(s0, 'timestampImprint')?.ok, true);
    t.ok(s0.timestamp?.ok && s0.timestamp.tsa.includes('CN='), `TSA ${s0.timestamp?.tsa}`);

    const revokedAt = new Date(Date.now() + 2_000);
    await fx.store.certs.update(k.serial, (cur) => ({ ...cur!, status: 'revoked', revocation: { time: revokedAt.toISOString(), reason: 'keyCompromise', by: 'test' }, updatedAt: new Date().toISOString() }));
    const after = await signCms({ signer: k.signer, certificate: k.der, content: CONTENT, detached: false, form: 'gbt35275', signingTime: new Date(revokedAt.getTime() + 5_000) });
    const afterRevocation = new Date(revokedAt.getTime() + 5_000);
    const l2 = await svc.verifyCms({ cms: after, level: 2, at: afterRevocation });
    t.equal(l2.judgedAtSource, 'request');
    t.equal(l2.code, 'CERT_REVOKED');
    t.equal(l2.gbtCode, 0x0400000b);
    t.equal(check(l2, 'revocation')?.label, '证书状态');
    t.match(check(l2, 'revocation')?.reason, /revoked/);
    t.ok((await svc.verifyCms({ cms: after, level: 1, at: afterRevocation })).valid, 'still valid at level 1');
    t.ok((await svc.verifyCms({ cms: after, level: 0, at: afterRevocation })).valid, 'still valid at level 0');
    const raw = await svc.verifyRaw({ certificate: k.der, data: CONTENT, signature: await k.signer.sign(CONTENT), at: new Date(revokedAt.getTime() + 1) });
    t.equal(raw.code, 'CERT_REVOKED', 'raw, judged after the revocation');

    const s1 = await svc.verifyCms({ cms: stamped });
    t.ok(s1.valid, `time-stamped before the revocation: ${s1.code}`);
    t.equal(s1.judgedAtSource, 'timestamp');
    t.ok(Date.parse(s1.judgedAt) < revokedAt.getTime());
    const s2 = await svc.verifyCms({ cms: claimsLater });
    t.ok(s2.valid, `claimed signingTime after the revocation, time-stamp before: ${s2.code}`);
    t.equal(s2.judgedAtSource, 'timestamp');

    // The TSA's own certificate revoked (level 2 checks the TSA path like the signer's), judged at genTime.
    const genTime = new Date(s1.judgedAt);
    const tsaCert = (await applianceCertificate(fx.store.certs, 'sm2', 'tsa'))!;
    const revokeTsa = (at: Date) => fx.store.certs.update(tsaCert.serial, (cur) => ({ ...cur!, status: 'revoked', revocation: { time: at.toISOString(), reason: 'keyCompromise', by: 'test' }, updatedAt: new Date().toISOString() }));
    try {
      await revokeTsa(new Date(genTime.getTime() - 60_000));
      const r2 = await svc.verifyCms({ cms: stamped, level: 2 });
      t.equal(r2.code, 'TIMESTAMP_INVALID', 'TSA certificate revoked before genTime');
      t.match(check(r2, 'timestamp')?.reason, /TSA certificate revoked: .*keyCompromise/);
      t.not(r2.judgedAtSource, 'timestamp', 'a revoked TSA proves no time');
      t.ok((await svc.verifyCms({ cms: stamped, level: 1 })).valid, 'level 1 does not check revocation');
      await revokeTsa(new Date(genTime.getTime() + 60_000));
      const r3 = await svc.verifyCms({ cms: stamped, level: 2 });
      t.ok(r3.valid, `TSA certificate revoked after genTime: the token stands (${r3.code})`);
      t.equal(r3.judgedAtSource, 'timestamp');
    } finally {
      await fx.store.certs.update(tsaCert.serial, (cur) => {
        const { revocation: _r, ...rest } = cur!;
        return { ...rest, status: 'good', updatedAt: new Date().toISOString() };
      });
    }
    t.ok((await svc.verifyCms({ cms: stamped, level: 2 })).valid, 'good again');

    // A time-stamp over something else: the imprint check fails.
    const wrong = await stamp(before, Buffer.from('another signature'));
    const w = await svc.verifyCms({ cms: wrong });
    t.equal(w.code, 'TIMESTAMP_INVALID');
    t.equal(check(w, 'timestampImprint')?.ok, false);
    t.equal(check(w, 'timestampImprint')?.label, '时间戳摘要');
    t.equal(w.judgedAtSource, 'now', 'a bad time-stamp is not used as the judging time');
    // A garbage token.
    const g = await svc.verifyCms({ cms: withUnsignedAttribute(before, OID_SIGNATURE_TIMESTAMP_TOKEN, Buffer.from('3003020101', 'hex')) });
    t.equal(g.code, 'TIMESTAMP_INVALID');
  });

  await t.test('fuzz: 3 000 mutated CMS never throw anything but a request error', async (t) => {
    const good = await signCms({ signer: ec.signer, certificate: ec.der, chain: [issuing('ecdsa')], content: CONTENT, detached: false, form: 'rfc5652' });
    let seed = 0x2468ace;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    const codes = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const m = Buffer.from(good);
      for (let k = 0, n = 1 + rnd(4); k < n; k++) m[rnd(m.length)] ^= 1 << rnd(8);
      const input = i % 5 === 0 ? m.subarray(0, rnd(m.length)) : m;
      try {
        const r = await svc.verifyCms({ cms: input });
        codes.set(r.code, (codes.get(r.code) ?? 0) + 1);
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code !== 'CONTENT_REQUIRED' && code !== 'SIGNATURE_REQUIRED') throw e;
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
    }
    t.comment(JSON.stringify(Object.fromEntries(codes)));
    t.notOk(codes.has('INTERNAL'), 'no INTERNAL verdict');
    t.ok((codes.get('CMS_MALFORMED') ?? 0) > 0 && (codes.get('SIGNATURE_INVALID') ?? 0) + (codes.get('CONTENT_ALTERED') ?? 0) > 0, 'several verdicts seen');
  });

  await t.test('throughput with chain and revocation (cached trust material and paths)', async (t) => {
    const cms = await signCms({ signer: sm2.signer, certificate: sm2.der, content: CONTENT, detached: false, form: 'gbt35275' });
    await svc.verifyCms({ cms });
    const n = 300;
    for (const level of [0, 1, 2] as const) {
      const t0 = performance.now();
      const rs = await Promise.all(Array.from({ length: n }, () => svc.verifyCms({ cms, level })));
      const ms = performance.now() - t0;
      t.ok(rs.every((r) => r.valid), `level ${level}: all valid`);
      t.comment(`${n} SM2 CMS verifies at level ${level} in ${Math.round(ms)} ms (${Math.round((n / ms) * 1000)}/s)`);
    }
  });
});
