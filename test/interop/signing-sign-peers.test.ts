// What the signing service makes (signing/sign-service.ts, real held keys in SoftHSM2 custody
// with certificates of the appliance CA, the real TSA in process) checked by peers that did not
// make it:
//  - BouncyCastle (one JVM run, test/interop/java/CmsInterop.java) verifies SM2 CMS in the
//    RFC 5652 form and ECDSA / RSA CMS, attached and detached, with and without CAdES-T;
//  - `openssl cms -verify` verifies the ECDSA / RSA CMS to the ECDSA root (intermediate embedded);
//  - the GB/T 35275 form is decoded by @peculiar/asn1-cms (not asn1/cms-signed-data.ts) and
//    checked against STANDARDS.md §2 field by field; sm-crypto verifies its SM2 signature over
//    DER(SET OF signed attributes) with the default ID;
//  - sm-crypto verifies raw SM2 signatures with the default ID and with a given ID;
//  - `openssl dgst` / `openssl pkeyutl` verify raw ECDSA, RSA PKCS#1 v1.5 and PSS signatures over
//    data and over digests;
//  - `openssl ts -verify` verifies the CAdES-T token of an ECDSA CMS against the imprint
//    SHA-256(signature value).
import t from 'tap';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AsnConvert, AsnParser } from '@peculiar/asn1-schema';
import { ContentInfo, SignedData } from '@peculiar/asn1-cms';
import { Certificate } from '@peculiar/asn1-x509';
import smCrypto from 'sm-crypto';
import { OID_SIGNATURE_TIME_STAMP_TOKEN, parseSignedData } from '../../appliance/src/asn1/cms-signed-data.js';
import { toPem } from '../../appliance/src/crypto/der.js';
import { createAppService } from '../../appliance/src/identity/app-service.js';
import { createHeldKeys } from '../../appliance/src/signing/held-keys.js';
import { createSigningService } from '../../appliance/src/signing/sign-service.js';
import { TsaService } from '../../appliance/src/tsa/tsa-service.js';
import type { ClockGateResult } from '../../firmware-bridge/timesource/clock-gate.js';
import { runJavaBatch } from '../helpers/bouncycastle.js';
import { makePkiFixture } from '../helpers/pki-hierarchy.js';

const CONTENT = Buffer.from('电子发票 INV-2026-11-23-7788 合计 ¥1,234.50\n', 'utf8');
const gate = { check: (): ClockGateResult => ({ ok: true, time: new Date(), accuracyMicros: 1000, state: 'SYNCED', source: 'test', development: false, notice: null }) };

function run(cmd: string, args: string[], cwd: string): { ok: boolean; out: string } {
  try {
    return { ok: true, out: execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
  } catch (e) {
    const err = e as { stderr?: Buffer | string; stdout?: Buffer | string; message: string };
    return { ok: false, out: `${String(err.stdout ?? '')}${String(err.stderr ?? err.message)}` };
  }
}

/** Uncompressed point (04‖x‖y) of an SM2 SPKI: the last 65 bytes of its BIT STRING. */
function sm2PointHex(spki: Buffer): string {
  return spki.subarray(spki.length - 65).toString('hex');
}

t.test('signing service output against BouncyCastle, OpenSSL, sm-crypto and an independent decoder', async (t) => {
  const fx = await makePkiFixture();
  const w = mkdtempSync(join(tmpdir(), 'yq-sign-peers-'));
  t.teardown(async () => {
    await fx.close();
    rmSync(w, { recursive: true, force: true });
  });
  const apps = createAppService(fx.store);
  const app = (await apps.create({ name: 'EMR', actor: 'test' })).app.id;
  const heldKeys = createHeldKeys({
    keys: fx.store.heldKeys, apps: fx.store.apps, certs: fx.store.certs, certificates: fx.pki.certificates,
    authorities: fx.pki.authorities, custody: fx.custody, audit: fx.store.audit,
  });
  for (const algorithm of ['sm2', 'ecdsa-p256', 'rsa-2048'] as const) {
    await heldKeys.create({ label: `peer-${algorithm}`, kind: 'organisation', algorithm, commonName: `互认医院 ${algorithm}`, grants: [app] }, 'test');
  }
  const tsa = new TsaService({ certs: fx.store.certs, custody: fx.custody, tokens: fx.store.tsaTokens, gate, policies: { policies: [{ oid: '1.2.3.4.1' }] } });
  const svc = createSigningService({ heldKeys, stamper: tsa });
  const caPem = (id: string) => toPem('CERTIFICATE', Buffer.from(fx.created.cas.find((c) => c.id === id)!.certificate, 'base64'));
  writeFileSync(join(w, 'ecdsa-root.pem'), caPem('ecdsa-root'));
  writeFileSync(join(w, 'ecdsa-issuing.pem'), caPem('ecdsa-issuing'));
  writeFileSync(join(w, 'content.bin'), CONTENT);
  writeFileSync(join(w, 'other.bin'), Buffer.concat([CONTENT, Buffer.from('!')]));

  // ---- CMS made by the service ----
  const files: Record<string, string> = {};
  const cms = async (name: string, key: string, detached: boolean, extra: { form?: 'rfc5652' | 'gbt35275'; timestamp?: boolean } = {}): Promise<Buffer> => {
    const r = await svc.signCms(app, { key, content: CONTENT, detached, ...extra });
    files[name] = join(w, `${name}.p7s`);
    writeFileSync(files[name], r.cms);
    return r.cms;
  };
  await cms('sm2Att', 'peer-sm2', false, { form: 'rfc5652' });
  await cms('sm2Det', 'peer-sm2', true, { form: 'rfc5652' });
  await cms('sm2AttT', 'peer-sm2', false, { form: 'rfc5652', timestamp: true });
  const gm = await cms('sm2Gm', 'peer-sm2', false);
  await cms('ecAtt', 'peer-ecdsa-p256', false);
  await cms('ecDet', 'peer-ecdsa-p256', true);
  const ecT = await cms('ecDetT', 'peer-ecdsa-p256', true, { timestamp: true });
  await cms('rsaAtt', 'peer-rsa-2048', false);
  await cms('rsaDet', 'peer-rsa-2048', true);
  await cms('rsaAttT', 'peer-rsa-2048', false, { timestamp: true });
  const content = join(w, 'content.bin');
  const other = join(w, 'other.bin');

  const bc = await runJavaBatch('CmsInterop', [
    `verify ${files.sm2Att} -`,
    `verify ${files.sm2Det} ${content}`,
    `verify ${files.sm2AttT} -`,
    `verify ${files.ecAtt} -`,
    `verify ${files.ecDet} ${content}`,
    `verify ${files.ecDetT} ${content}`,
    `verify ${files.rsaAtt} -`,
    `verify ${files.rsaDet} ${content}`,
    `verify ${files.rsaAttT} -`,
    `verify ${files.sm2Gm} - gm`,
    `verify ${files.sm2Det} ${other}`,
    `verify ${files.ecDet} ${other}`,
  ]);

  await t.test('BouncyCastle verifies our CMS (SM2 RFC 5652, ECDSA, RSA; attached, detached, CAdES-T)', async (t) => {
    const names = ['SM2 attached', 'SM2 detached', 'SM2 attached + CAdES-T', 'ECDSA attached', 'ECDSA detached', 'ECDSA detached + CAdES-T', 'RSA attached', 'RSA detached', 'RSA attached + CAdES-T', 'SM2 GB/T 35275 (BC with a name for .301.1)'];
    names.forEach((n, i) => t.equal(bc[i], 'ok signers=1', n));
    t.match(bc[10], /^fail /, `SM2 detached with other content fails: ${bc[10]}`);
    t.match(bc[11], /^fail /, `ECDSA detached with other content fails: ${bc[11]}`);
  });

  await t.test('openssl cms -verify verifies our ECDSA and RSA CMS to the ECDSA root', async (t) => {
    // OpenSSL 3.0 uses -certfile only to find the signer; the issuing CA is embedded by the service (includeChain).
    const verify = (file: string, det?: string) =>
      run('openssl', ['cms', '-verify', '-binary', '-inform', 'DER', '-in', file, ...(det ? ['-content', det] : []), '-purpose', 'any', '-CAfile', 'ecdsa-root.pem', '-out', 'verified.out'], w);
    for (const [name, file, det] of [
      ['ECDSA attached', files.ecAtt, undefined],
      ['ECDSA detached', files.ecDet, content],
      ['ECDSA detached + CAdES-T', files.ecDetT, content],
      ['RSA attached', files.rsaAtt, undefined],
      ['RSA detached', files.rsaDet, content],
      ['RSA attached + CAdES-T', files.rsaAttT, undefined],
    ] as const) {
      const r = verify(file, det);
      t.ok(r.ok, `${name}: ${r.out.trim()}`);
    }
    t.notOk(verify(files.ecDet, other).ok, 'ECDSA detached with other content fails');
    t.notOk(verify(files.rsaDet, other).ok, 'RSA detached with other content fails');
  });

  await t.test('GB/T 35275 form against STANDARDS.md §2, decoded by @peculiar/asn1-cms; sm-crypto checks the signature', async (t) => {
    const ci = AsnParser.parse(gm, ContentInfo);
    t.equal(ci.contentType, '1.2.156.10197.6.1.4.2.2', 'ContentInfo: GM/T 0010 signedData');
    const sd = AsnParser.parse(ci.content, SignedData);
    t.equal(sd.version, 1, 'SignedData version 1');
    t.same(sd.digestAlgorithms.map((a) => a.algorithm), ['1.2.156.10197.1.401'], 'digestAlgorithms: SM3');
    t.equal(sd.encapContentInfo.eContentType, '1.2.156.10197.6.1.4.2.1', 'inner content type: GM/T 0010 data');
    const eContent = sd.encapContentInfo.eContent;
    const inner = Buffer.from(eContent?.single?.buffer ?? eContent?.any ?? new ArrayBuffer(0));
    t.ok(inner.equals(CONTENT), 'attached content');
    const certs = sd.certificates ?? [];
    t.equal(certs.length, 2, 'signer certificate and issuing CA');
    t.equal(sd.signerInfos.length, 1);
    const si = sd.signerInfos[0];
    t.equal(si.version, 1, 'SignerInfo version 1');
    t.ok(si.sid.issuerAndSerialNumber, 'signer named by issuer and serial');
    t.equal(si.digestAlgorithm.algorithm, '1.2.156.10197.1.401', 'SignerInfo digest SM3');
    t.equal(si.signatureAlgorithm.algorithm, '1.2.156.10197.1.301.1', 'digestEncryptionAlgorithm SM2-1 (.301.1)');
    const attrs = new Map((si.signedAttrs ?? []).map((a) => [a.attrType, a.attrValues[0]]));
    t.same([...attrs.keys()].sort(), ['1.2.840.113549.1.9.16.2.47', '1.2.840.113549.1.9.3', '1.2.840.113549.1.9.4', '1.2.840.113549.1.9.5'], 'contentType, messageDigest, signingTime, signing-certificate-v2');
    t.ok(Buffer.from(attrs.get('1.2.840.113549.1.9.3')!).equals(Buffer.from('060a2a811ccf550601040201', 'hex')), 'contentType attribute = GM/T 0010 data');
    const md = Buffer.from(attrs.get('1.2.840.113549.1.9.4')!);
    t.ok(md.subarray(2).equals(createHash('sm3').update(CONTENT).digest()), 'messageDigest = SM3(content)');
    // The signer's certificate: matched by serial among the embedded ones.
    const serial = Buffer.from(si.sid.issuerAndSerialNumber!.serialNumber);
    const signerCert = certs.map((c) => c.certificate!).find((c) => Buffer.from(c.tbsCertificate.serialNumber).equals(serial))!;
    t.ok(signerCert, 'signer certificate embedded');
    const spki = Buffer.from(AsnConvert.serialize(signerCert.tbsCertificate.subjectPublicKeyInfo));
    // DER(SET OF signed attributes) as the signature covers it (RFC 5652 §5.4): each Attribute
    // re-encoded by asn1-schema, in the decoded order, under a SET header made here.
    const body = Buffer.concat(si.signedAttrs!.map((a) => Buffer.from(AsnConvert.serialize(a))));
    const len = body.length < 0x80 ? Buffer.from([body.length]) : body.length < 0x100 ? Buffer.from([0x81, body.length]) : Buffer.from([0x82, body.length >> 8, body.length & 0xff]);
    const setDer = Buffer.concat([Buffer.from([0x31]), len, body]);
    t.equal(setDer[0], 0x31, 'SET OF');
    t.ok(gm.includes(Buffer.concat([Buffer.from([0xa0]), setDer.subarray(1)])), 'the same bytes appear as [0] IMPLICIT in the CMS');
    const sigHex = Buffer.from(si.signature.buffer).toString('hex');
    t.ok(smCrypto.sm2.doVerifySignature(Array.from(setDer), sigHex, sm2PointHex(spki), { hash: true, der: true }), 'sm-crypto verifies the SM2 signature with the default ID');
    t.notOk(smCrypto.sm2.doVerifySignature(Array.from(setDer), sigHex, sm2PointHex(spki), { hash: true, der: true, userId: 'other-id' }), 'and not with another ID');
    t.ok(AsnParser.parse(Buffer.from(AsnConvert.serialize(signerCert)), Certificate), 'signer certificate decodes');
  });

  await t.test('sm-crypto verifies raw SM2 signatures: default ID and a given ID', async (t) => {
    const h = await heldKeys.forUse('peer-sm2', app);
    const pub = sm2PointHex(h.signer.publicKeyInfo);
    const r = await svc.signRaw(app, { key: 'peer-sm2', data: CONTENT });
    t.ok(smCrypto.sm2.doVerifySignature(Array.from(CONTENT), r.signature.toString('hex'), pub, { hash: true, der: true }), 'default ID 1234567812345678');
    const id = 'nurse-0815@hospital.cn';
    const r2 = await svc.signRaw(app, { key: 'peer-sm2', data: CONTENT, sm2Id: Buffer.from(id) });
    t.ok(smCrypto.sm2.doVerifySignature(Array.from(CONTENT), r2.signature.toString('hex'), pub, { hash: true, der: true, userId: id }), `given ID ${id}`);
    t.notOk(smCrypto.sm2.doVerifySignature(Array.from(CONTENT), r2.signature.toString('hex'), pub, { hash: true, der: true }), 'not under the default ID');
    // A digest e computed by sm-crypto-independent means: SM3(Z_A ‖ M) with Z_A from sm-crypto.
    const za = Buffer.from(smCrypto.sm3(Array.from(Buffer.concat([Buffer.from('0080', 'hex'), Buffer.from('1234567812345678'), Buffer.from('FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E9332C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0', 'hex'), Buffer.from(pub.slice(2), 'hex')]))), 'hex');
    const e = createHash('sm3').update(za).update(CONTENT).digest();
    const r3 = await svc.signRaw(app, { key: 'peer-sm2', digest: e });
    t.ok(smCrypto.sm2.doVerifySignature(Array.from(CONTENT), r3.signature.toString('hex'), pub, { hash: true, der: true }), 'a signature over the digest e verifies over the message');
  });

  await t.test('openssl verifies raw ECDSA, RSA PKCS#1 v1.5 and RSA-PSS signatures', async (t) => {
    for (const [alg, key] of [['ecdsa', 'peer-ecdsa-p256'], ['rsa', 'peer-rsa-2048']] as const) {
      const h = await heldKeys.forUse(key, app);
      writeFileSync(join(w, `${alg}.pub`), toPem('PUBLIC KEY', h.signer.publicKeyInfo));
      const cases: { name: string; req: Record<string, unknown>; hash: string; pss?: boolean }[] = [
        { name: 'SHA-256', req: {}, hash: 'sha256' },
        { name: 'SHA-384', req: { hash: 'sha384' }, hash: 'sha384' },
        ...(alg === 'rsa' ? [{ name: 'PSS SHA-256', req: { rsaPadding: 'pss' }, hash: 'sha256', pss: true }, { name: 'PSS SHA-512', req: { rsaPadding: 'pss', hash: 'sha512' }, hash: 'sha512', pss: true }] : []),
      ];
      for (const c of cases) {
        const pssOpts = c.pss ? ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:digest'] : [];
        const d = await svc.signRaw(app, { key, data: CONTENT, ...c.req });
        writeFileSync(join(w, 'raw.sig'), d.signature);
        const v = run('openssl', ['dgst', `-${c.hash}`, '-verify', `${alg}.pub`, ...pssOpts, '-signature', 'raw.sig', 'content.bin'], w);
        t.ok(v.ok && /Verified OK/.test(v.out), `${alg} ${c.name} over data (${d.algorithm}): ${v.out.trim()}`);
        t.notOk(run('openssl', ['dgst', `-${c.hash}`, '-verify', `${alg}.pub`, ...pssOpts, '-signature', 'raw.sig', 'other.bin'], w).ok, `${alg} ${c.name}: other data fails`);
        const digest = createHash(c.hash).update(CONTENT).digest();
        const p = await svc.signRaw(app, { key, digest, ...c.req });
        writeFileSync(join(w, 'digest.bin'), digest);
        writeFileSync(join(w, 'raw.sig'), p.signature);
        const pk = run('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', `${alg}.pub`, '-in', 'digest.bin', '-sigfile', 'raw.sig', '-pkeyopt', `digest:${c.hash}`, ...(c.pss ? ['-pkeyopt', 'rsa_padding_mode:pss', '-pkeyopt', 'rsa_pss_saltlen:digest'] : [])], w);
        t.ok(pk.ok && /Verified Successfully/.test(pk.out), `${alg} ${c.name} over the digest: ${pk.out.trim()}`);
      }
    }
  });

  await t.test('openssl ts -verify verifies the CAdES-T token against SHA-256(signature value)', async (t) => {
    const si = parseSignedData(ecT).signerInfos[0];
    const attr = si.unsignedAttrs.find((a) => a.type === OID_SIGNATURE_TIME_STAMP_TOKEN)!;
    t.ok(attr, 'id-aa-signatureTimeStampToken present');
    writeFileSync(join(w, 'sig.tok'), attr.values[0].raw);
    const tsaPem = run('openssl', ['pkcs7', '-inform', 'DER', '-in', 'sig.tok', '-print_certs'], w).out;
    writeFileSync(join(w, 'untrusted.pem'), tsaPem + caPem('ecdsa-issuing'));
    const imprint = createHash('sha256').update(si.signature).digest('hex');
    const v = run('openssl', ['ts', '-verify', '-token_in', '-in', 'sig.tok', '-digest', imprint, '-CAfile', 'ecdsa-root.pem', '-untrusted', 'untrusted.pem'], w);
    t.ok(v.ok && /Verification: OK/.test(v.out), `openssl ts -verify: ${v.out.trim()}`);
    const wrong = createHash('sha256').update(Buffer.concat([si.signature, Buffer.from([0])])).digest('hex');
    t.notOk(run('openssl', ['ts', '-verify', '-token_in', '-in', 'sig.tok', '-digest', wrong, '-CAfile', 'ecdsa-root.pem', '-untrusted', 'untrusted.pem'], w).ok, 'another imprint fails');
  });
});
