// CMS SignedData signing and verification (signing/cms-sign.ts, cms-verify.ts): round trips for
// SM2 in both forms, ECDSA and RSA, attached and detached, with keys and certificates made by an
// OpenSSL CA hierarchy (test/helpers/openssl-pki.ts); tampered content, signature, a swapped
// certificate and truncated DER each fail the right check; the GB/T 35275 form is checked by an
// independent decoder (openssl asn1parse); 10 000 mutated ECDSA and 2 000 mutated SM2 (GB/T 35275)
// inputs never throw.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromPem } from '../../appliance/src/crypto/der.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import { signCms } from '../../appliance/src/signing/cms-sign.js';
import { verifyCms, type CmsVerifyResult } from '../../appliance/src/signing/cms-verify.js';
import { makeTestHierarchy, type TestHierarchy } from '../helpers/openssl-pki.js';
import { AsnConvert } from '@peculiar/asn1-schema';
import { ContentInfo, SignedData } from '@peculiar/asn1-cms';
import { makePkiFixture } from '../helpers/pki-hierarchy.js';

const CONTENT = Buffer.from('医嘱 #20261123-0001: 阿司匹林 100 mg qd', 'utf8');

function check(r: CmsVerifyResult, name: string): { ok: boolean; reason?: string } | undefined {
  return r.checks.find((c) => c.name === name);
}

/** An RSA-2048 key and a leaf certificate for it issued by the hierarchy's issuing CA (OpenSSL). */
function rsaLeaf(h: TestHierarchy, serial: string): { signer: Signer; der: Buffer } {
  const run = (args: string[]): void => {
    execFileSync('openssl', args, { cwd: h.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  };
  run(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'rsa.key']);
  run(['req', '-new', '-key', 'rsa.key', '-sha256', '-utf8', '-subj', '/C=CN/CN=rsa leaf', '-config', 'openssl.cnf', '-out', 'rsa.csr']);
  run(['x509', '-req', '-in', 'rsa.csr', '-CA', h.issuing.pemFile, '-CAkey', h.issuing.keyFile, '-sha256', '-extfile', 'openssl.cnf', '-extensions', 'leaf', '-set_serial', `0x${serial}`, '-days', '30', '-out', 'rsa.pem']);
  return { signer: createSoftwareSigner(readFileSync(join(h.dir, 'rsa.key'), 'utf8')), der: fromPem(readFileSync(join(h.dir, 'rsa.pem'), 'utf8'))[0].der };
}

t.test('CMS SignedData', async (t) => {
  const sm2 = makeTestHierarchy('sm2');
  const ec = makeTestHierarchy('ecdsa');
  t.teardown(() => {
    sm2.remove();
    ec.remove();
  });
  const sm2Leaf = sm2.leaf('5a01', '张三');
  const ecLeaf = ec.leaf('0a01', 'ecdsa leaf');
  const rsa = rsaLeaf(ec, '0a02');
  const signingTime = new Date('2026-11-23T03:00:00Z');

  const cases = [
    { name: 'SM2 GB/T 35275', signer: sm2.signer(sm2Leaf), cert: sm2Leaf.der, chain: [sm2.issuing.der], form: 'gbt35275' as const, sigOid: '1.2.156.10197.1.301.1' },
    { name: 'SM2 RFC 5652', signer: sm2.signer(sm2Leaf), cert: sm2Leaf.der, chain: [sm2.issuing.der], form: 'rfc5652' as const, sigOid: '1.2.156.10197.1.501' },
    { name: 'ECDSA', signer: ec.signer(ecLeaf), cert: ecLeaf.der, chain: [ec.issuing.der], form: 'gbt35275' as const, sigOid: '1.2.840.10045.4.3.2' },
    { name: 'RSA', signer: rsa.signer, cert: rsa.der, chain: [ec.issuing.der], form: 'rfc5652' as const, sigOid: '1.2.840.113549.1.1.11' },
  ];

  for (const c of cases) {
    await t.test(`${c.name}: attached and detached round trips, tampering`, async (t) => {
      for (const detached of [false, true]) {
        const der = await signCms({ signer: c.signer, certificate: c.cert, chain: c.chain, content: CONTENT, detached, form: c.form, signingTime });
        const r = await verifyCms(der, detached ? { content: CONTENT } : {});
        t.ok(r.valid, `${detached ? 'detached' : 'attached'} valid: ${JSON.stringify(r.checks.filter((x) => !x.ok))}`);
        t.ok(r.content?.equals(CONTENT), 'content returned');
        t.equal(r.signingTime?.toISOString(), signingTime.toISOString(), 'signingTime');
        t.ok(r.signer?.subject.includes('CN='), `signer ${r.signer?.subject}`);
        t.same(
          r.checks.map((x) => x.name),
          ['structure', 'signerFound', 'algorithm', 'contentType', 'contentIntact', 'signingCertificate', 'signatureIntact'],
        );
        t.ok(der.includes(Buffer.from(c.sigOid === '1.2.156.10197.1.301.1' ? '2a811ccf5501822d01' : c.sigOid === '1.2.156.10197.1.501' ? '2a811ccf55018375' : c.sigOid === '1.2.840.10045.4.3.2' ? '2a8648ce3d040302' : '2a864886f70d01010b', 'hex')), `signature OID ${c.sigOid}`);

        // Tampered content.
        const other = Buffer.from(CONTENT);
        other[0] ^= 1;
        if (detached) {
          const bad = await verifyCms(der, { content: other });
          t.notOk(bad.valid, 'detached with other content: invalid');
          t.equal(check(bad, 'contentIntact')?.ok, false, 'contentIntact fails (原文未改)');
          t.equal(check(bad, 'signatureIntact')?.ok, true, 'signature itself still intact');
          const none = await verifyCms(der, {});
          t.equal(check(none, 'contentIntact')?.ok, false, 'detached without content: contentIntact fails');
        } else {
          const at = der.indexOf(CONTENT);
          const mutated = Buffer.from(der);
          mutated[at] ^= 1;
          const bad = await verifyCms(mutated, {});
          t.notOk(bad.valid, 'attached content tampered: invalid');
          t.equal(check(bad, 'contentIntact')?.ok, false, 'contentIntact fails');
          t.equal(check(bad, 'signatureIntact')?.ok, true, 'signature itself still intact');
        }

        // Tampered signature: the last octet of the DER is the last octet of the signature value.
        const sigBad = Buffer.from(der);
        sigBad[sigBad.length - 1] ^= 0x01;
        const rs = await verifyCms(sigBad, detached ? { content: CONTENT } : {});
        t.notOk(rs.valid, 'tampered signature: invalid');
        t.equal(check(rs, 'signatureIntact')?.ok, false, 'signatureIntact fails (签名未改)');
        t.equal(check(rs, 'contentIntact')?.ok, true);

        // Truncated DER.
        for (const cut of [1, 10, der.length >> 1, der.length - 1]) {
          const tr = await verifyCms(der.subarray(0, cut), {});
          t.notOk(tr.valid, `truncated to ${cut}: invalid`);
          t.equal(tr.checks[0]?.name, 'structure');
          t.equal(tr.checks[0]?.ok, false);
          t.ok(tr.checks[0]?.reason, 'with a reason');
        }
      }
    });
  }

  await t.test('swapped certificate: signature made with another key than the embedded certificate', async (t) => {
    // The ECDSA leaf key signs, but the certificate embedded (and named) is the OCSP responder's.
    const der = await signCms({ signer: ec.signer(ecLeaf), certificate: ec.ocsp.der, content: CONTENT, detached: false, form: 'rfc5652' });
    const r = await verifyCms(der, {});
    t.notOk(r.valid);
    t.equal(check(r, 'signerFound')?.ok, true);
    t.equal(check(r, 'signatureIntact')?.ok, false, 'signatureIntact fails');
    t.ok(r.signer?.subject.includes('OCSP'));
    // Replacing the embedded certificate: the signer is no longer found.
    const good = await signCms({ signer: ec.signer(ecLeaf), certificate: ecLeaf.der, content: CONTENT, detached: false, form: 'rfc5652' });
    const at = good.indexOf(ecLeaf.der);
    const serialAt = good.indexOf(Buffer.from('02020a01', 'hex'), at);
    t.ok(at > 0 && serialAt > at && serialAt < at + ecLeaf.der.length, 'serial of the embedded certificate located');
    const swapped = Buffer.from(good);
    swapped[serialAt + 3] = 0x09; // the embedded certificate now has serial 0a09
    const s = await verifyCms(swapped, {});
    t.notOk(s.valid);
    t.equal(check(s, 'signerFound')?.ok, false, 'signerFound fails for a swapped certificate');
    // An SM2 signature under an ECDSA certificate: the algorithm check fails.
    const mixed = await signCms({ signer: sm2.signer(sm2Leaf), certificate: ecLeaf.der, content: CONTENT, detached: false, form: 'rfc5652' });
    const m = await verifyCms(mixed, {});
    t.notOk(m.valid);
    t.equal(check(m, 'algorithm')?.ok, false, 'algorithm check fails');
  });

  await t.test('SM2 algorithm identifiers with NULL parameters (as some encoders write them) are accepted, other parameters are not', async (t) => {
    // Re-encoded by @peculiar/asn1-cms, not by our encoder: the signature covers the signed
    // attributes only, so it stays valid when the AlgorithmIdentifiers change.
    const reencode = (der: Buffer, params: Buffer): Buffer => {
      const ci = AsnConvert.parse(der, ContentInfo);
      const sd = AsnConvert.parse(ci.content, SignedData);
      const si = sd.signerInfos[0];
      si.signatureAlgorithm.parameters = new Uint8Array(params).buffer;
      si.digestAlgorithm.parameters = new Uint8Array(params).buffer;
      ci.content = AsnConvert.serialize(sd);
      return Buffer.from(AsnConvert.serialize(ci));
    };
    for (const form of ['gbt35275', 'rfc5652'] as const) {
      const der = await signCms({ signer: sm2.signer(sm2Leaf), certificate: sm2Leaf.der, chain: [sm2.issuing.der], content: CONTENT, detached: false, form, signingTime });
      const withNull = reencode(der, Buffer.from('0500', 'hex'));
      t.not(withNull.length, der.length, `${form}: re-encoded with NULL parameters`);
      const r = await verifyCms(withNull);
      t.ok(r.valid, `${form}, NULL parameters: ${JSON.stringify(r.checks.filter((x) => !x.ok))}`);
      const bad = await verifyCms(reencode(der, Buffer.from('020101', 'hex')));
      t.equal(check(bad, 'algorithm')?.ok, false, `${form}, INTEGER parameters refused`);
    }
  });

  await t.test('GB/T 35275 form read by an independent decoder (openssl asn1parse)', async (t) => {
    const der = await signCms({ signer: sm2.signer(sm2Leaf), certificate: sm2Leaf.der, content: CONTENT, detached: false, form: 'gbt35275' });
    const text = execFileSync('openssl', ['asn1parse', '-inform', 'DER'], { input: der, encoding: 'utf8' });
    const oids = [...text.matchAll(/OBJECT\s+:(\S+)/g)].map((m) => m[1]);
    t.equal(oids[0], '1.2.156.10197.6.1.4.2.2', 'ContentInfo contentType = GM/T 0010 signedData');
    t.equal(oids[2], '1.2.156.10197.6.1.4.2.1', 'eContentType = GM/T 0010 data');
    t.match(oids[1], /^(1\.2\.156\.10197\.1\.401|SM3|sm3)$/, 'digestAlgorithms SM3');
    t.ok(oids.some((o) => o === '1.2.156.10197.1.301.1' || o === 'sm2sign'), 'SignerInfo signature algorithm .301.1');
    t.notOk(oids.includes('1.2.840.113549.1.7.2') || oids.includes('pkcs7-signedData'), 'no RFC 5652 signedData OID');
    // SignedData version 1 and SignerInfo version 1.
    t.match(text, /cons: SEQUENCE\s*\n.*prim: INTEGER\s+:01/, 'version 1');
  });

  await t.test('fuzz: 10 000 mutations of a valid CMS never throw', async (t) => {
    const der = await signCms({ signer: ec.signer(ecLeaf), certificate: ecLeaf.der, chain: [ec.issuing.der], content: CONTENT, detached: false, form: 'rfc5652' });
    let seed = 0x1234567;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    let valid = 0;
    for (let i = 0; i < 10_000; i++) {
      let m: Buffer = Buffer.from(der);
      const kind = rnd(5);
      if (kind === 0) m[rnd(m.length)] ^= 1 << rnd(8);
      else if (kind === 1) m[rnd(m.length)] = rnd(256);
      else if (kind === 2) m = m.subarray(0, rnd(m.length));
      else if (kind === 3) {
        const at = rnd(m.length);
        m = Buffer.concat([m.subarray(0, at), Buffer.from([rnd(256)]), m.subarray(at)]);
      } else {
        const at = rnd(m.length);
        m = Buffer.concat([m.subarray(0, at), m.subarray(at + 1 + rnd(8))]);
      }
      const r = await verifyCms(m, rnd(2) ? { content: CONTENT } : {});
      if (r.valid) valid++;
      if (!r.valid && !r.checks.some((c) => !c.ok && c.reason)) t.fail(`mutation ${i}: invalid without a reason`);
    }
    t.pass(`10 000 mutations, ${valid} still valid (mutations outside the signed bytes)`);
    // The GB/T 35275 form through the same parser and the SM2 verifier.
    const gm = await signCms({ signer: sm2.signer(sm2Leaf), certificate: sm2Leaf.der, content: CONTENT, detached: false, form: 'gbt35275' });
    let gmValid = 0;
    for (let i = 0; i < 2_000; i++) {
      const m = Buffer.from(gm);
      m[rnd(m.length)] ^= 1 << rnd(8);
      const r = await verifyCms(rnd(4) ? m : m.subarray(0, rnd(m.length)), {});
      if (r.valid) gmValid++;
    }
    t.ok(gmValid < 2_000, `2 000 SM2 GB/T 35275 mutations, ${gmValid} still valid`);
    const garbage = await verifyCms(Buffer.from('not der at all'), {});
    t.notOk(garbage.valid);
    const empty = await verifyCms(Buffer.alloc(0), {});
    t.notOk(empty.valid);
    const notBuffer = await verifyCms('x' as unknown as Buffer, {});
    t.notOk(notBuffer.valid);
  });
});

t.test('CMS with keys in HSM custody and certificates of the appliance CA (makePkiFixture)', async (t) => {
  const fx = await makePkiFixture();
  t.teardown(() => fx.close());
  for (const [h, algorithm] of [
    ['sm2', 'sm2'],
    ['ecdsa', 'ecdsa-p256'],
  ] as const) {
    const key = await fx.custody.generate({ algorithm, label: `cms-test-${h}`, purpose: 'CMS test seal key' });
    const issued = await fx.pki.certificates.issueForAppliance(
      { profile: 'organisation', hierarchy: h, commonName: `某某医院 ${h} 电子印章`, keyRef: key.id, publicKeyInfo: key.publicKeyInfo, keyAlgorithm: algorithm },
      'test',
    );
    const certificate = Buffer.from(issued.record.certificate, 'base64');
    const chain = fromPem(issued.chainPem).map((b) => b.der);
    const signer = await fx.custody.signer(key.id);
    for (const form of ['gbt35275', 'rfc5652'] as const) {
      for (const detached of [false, true]) {
        const der = await signCms({ signer, certificate, chain, content: CONTENT, detached, form });
        const r = await verifyCms(der, detached ? { content: CONTENT } : {});
        t.ok(r.valid, `${h} ${form} ${detached ? 'detached' : 'attached'}: ${JSON.stringify(r.checks.filter((c) => !c.ok))}`);
        t.equal(r.signer?.serial, issued.record.serial);
        t.equal(r.form, h === 'sm2' ? form : 'rfc5652', 'ECDSA is always RFC 5652');
      }
    }
  }
});
