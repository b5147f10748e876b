// Certificate path validation (pki/path-validation.ts) against the appliance's real SM2 and ECDSA
// hierarchies on SoftHSM2 (makePkiFixture), plus hand-made certificates signed with HSM keys for
// the constraint cases (leaf used as issuer, pathLenConstraint, unknown critical extension).
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { assembleCertificate, encodeTbsCertificate, keyIdentifier, readCertificate, type CertificateExtension } from '../../appliance/src/asn1/certificate.js';
import { encodeName } from '../../appliance/src/asn1/name.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';
import { validatePath } from '../../appliance/src/pki/path-validation.js';
import { signatureAlgorithmFor } from '../../appliance/src/pki/signature-algorithm.js';
import type { Hierarchy } from '../../appliance/src/pki/types.js';
import { makePkiFixture, type PkiFixture } from '../helpers/pki-hierarchy.js';

const fx: PkiFixture = await makePkiFixture();
t.teardown(() => fx.close());

function caCert(h: Hierarchy, role: 'root' | 'issuing'): Buffer {
  const rec = fx.created.cas.find((c) => c.hierarchy === h && c.role === role);
  if (!rec) throw new Error(`no ${h} ${role} CA`);
  return Buffer.from(rec.certificate, 'base64');
}

function caKeyId(h: Hierarchy, role: 'root' | 'issuing'): string {
  const rec = fx.created.cas.find((c) => c.hierarchy === h && c.role === role);
  if (!rec) throw new Error(`no ${h} ${role} CA`);
  return rec.keyId;
}

const ALG = { sm2: 'sm2', ecdsa: 'ecdsa-p256' } as const;

/** A leaf issued by the appliance CA of `h`, with its key's id. */
async function issueLeaf(h: Hierarchy, cn: string): Promise<{ der: Buffer; keyId: string }> {
  const key = await fx.custody.generate({ algorithm: ALG[h], label: `pv-${h}-${cn}`, purpose: 'path validation test key' });
  const issued = await fx.pki.certificates.issueForAppliance(
    { profile: 'organisation', hierarchy: h, commonName: `某某医院 ${cn}`, keyRef: key.id, publicKeyInfo: key.publicKeyInfo, keyAlgorithm: ALG[h] },
    'test',
  );
  return { der: Buffer.from(issued.record.certificate, 'base64'), keyId: key.id };
}

/** A certificate signed by `signer` as the holder of `issuerDer`, for the constraint cases. */
async function handMade(signer: Signer, issuerDer: Buffer, cn: string, spki: Buffer, extensions: CertificateExtension[]): Promise<Buffer> {
  const issuer = readCertificate(issuerDer);
  const alg = signatureAlgorithmFor(signer.algorithm);
  const now = Date.now();
  const tbs = encodeTbsCertificate({
    serial: Buffer.concat([Buffer.from([0x40]), randomBytes(15)]),
    signatureAlgorithm: alg.identifier,
    issuer: issuer.subjectDer,
    subject: encodeName([
      { type: 'C', value: 'CN' },
      { type: 'CN', value: cn },
    ]),
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 86_400_000),
    subjectPublicKeyInfo: spki,
    extensions: [
      ...extensions,
      { kind: 'subjectKeyIdentifier', keyIdentifier: keyIdentifier(spki) },
      ...(issuer.subjectKeyIdentifier ? [{ kind: 'authorityKeyIdentifier' as const, keyIdentifier: issuer.subjectKeyIdentifier }] : []),
    ],
  });
  return assembleCertificate(tbs, alg.identifier, await signer.sign(tbs, alg.signOptions));
}

const failed = (r: { checks: { name: string; ok: boolean }[] }): string[] => r.checks.filter((c) => !c.ok).map((c) => c.name);

for (const h of ['sm2', 'ecdsa'] as const) {
  t.test(`${h}: leaf → issuing CA → root`, async (t) => {
    const { der } = await issueLeaf(h, `${h} seal`);
    const r = await validatePath({ leaf: der, intermediates: [caCert(h, 'issuing')], trustAnchors: [caCert(h, 'root')], at: new Date() });
    t.ok(r.valid, JSON.stringify(r.checks));
    t.equal(r.code, undefined);
    t.equal(r.chain.length, 3);
    t.equal(r.chain[0].serial, readCertificate(der).serial);
    t.match(r.chain[0].subject, /某某医院/);
    t.same(
      r.checks.map((c) => [c.name, c.ok]),
      [
        ['chainBuilt', true],
        ['signatures', true],
        ['validity', true],
        ['caConstraints', true],
        ['criticalExtensions', true],
      ],
    );
    // Extra, irrelevant certificates do not disturb the building.
    const other = h === 'sm2' ? 'ecdsa' : 'sm2';
    const r2 = await validatePath({ leaf: der, intermediates: [caCert(other, 'issuing'), caCert(h, 'issuing')], trustAnchors: [caCert(other, 'root'), caCert(h, 'root')], at: new Date() });
    t.ok(r2.valid);
  });
}

t.test('missing intermediate, wrong anchor → CERT_UNTRUSTED', async (t) => {
  const { der } = await issueLeaf('sm2', 'untrusted');
  const missing = await validatePath({ leaf: der, intermediates: [], trustAnchors: [caCert('sm2', 'root')], at: new Date() });
  t.equal(missing.valid, false);
  t.equal(missing.code, 'CERT_UNTRUSTED');
  t.same(failed(missing), ['chainBuilt']);
  const wrong = await validatePath({ leaf: der, intermediates: [caCert('sm2', 'issuing')], trustAnchors: [caCert('ecdsa', 'root')], at: new Date() });
  t.equal(wrong.valid, false);
  t.equal(wrong.code, 'CERT_UNTRUSTED');
});

t.test('judged at the signing time: before notBefore / after notAfter', async (t) => {
  const { der } = await issueLeaf('ecdsa', 'validity');
  const info = readCertificate(der);
  const base = { leaf: der, intermediates: [caCert('ecdsa', 'issuing')], trustAnchors: [caCert('ecdsa', 'root')] };
  const early = await validatePath({ ...base, at: new Date(info.notBefore.getTime() - 1000) });
  t.equal(early.code, 'CERT_NOT_YET_VALID');
  t.same(failed(early), ['validity']);
  const late = await validatePath({ ...base, at: new Date(info.notAfter.getTime() + 1000) });
  t.equal(late.code, 'CERT_EXPIRED');
  t.same(failed(late), ['validity']);
  t.ok((await validatePath({ ...base, at: info.notAfter })).valid, 'notAfter itself is inside the period');
});

t.test('a flipped signature byte → CERT_SIGNATURE_INVALID', async (t) => {
  for (const h of ['sm2', 'ecdsa'] as const) {
    const { der } = await issueLeaf(h, `flipped ${h}`);
    const bad = Buffer.from(der);
    bad[bad.length - 1] ^= 0x01; // last octet of the signature's s INTEGER
    const r = await validatePath({ leaf: bad, intermediates: [caCert(h, 'issuing')], trustAnchors: [caCert(h, 'root')], at: new Date() });
    t.equal(r.valid, false, h);
    t.equal(r.code, 'CERT_SIGNATURE_INVALID', h);
    t.same(failed(r), ['signatures'], h);
  }
});

t.test('a leaf used as an issuer (cA false) → CERT_PATH_INVALID', async (t) => {
  const leaf = await issueLeaf('sm2', 'not a CA');
  const signer = await fx.custody.signer(leaf.keyId);
  const child = await handMade(signer, leaf.der, 'child of a leaf', signer.publicKeyInfo, [{ kind: 'basicConstraints', ca: false }]);
  const r = await validatePath({ leaf: child, intermediates: [leaf.der, caCert('sm2', 'issuing')], trustAnchors: [caCert('sm2', 'root')], at: new Date() });
  t.equal(r.valid, false);
  t.equal(r.code, 'CERT_PATH_INVALID');
  t.same(failed(r), ['caConstraints']);
  t.equal(r.chain.length, 4);
  t.match(r.checks.find((c) => c.name === 'caConstraints')?.reason, /not a CA/);
});

t.test('pathLenConstraint 0 of the issuing CA: a sub-CA below it → CERT_PATH_INVALID', async (t) => {
  const issuingSigner = await fx.custody.signer(caKeyId('ecdsa', 'issuing'));
  const subKey = await fx.custody.generate({ algorithm: 'ecdsa-p256', label: 'pv-sub-ca', purpose: 'path validation test sub-CA' });
  const subSigner = await fx.custody.signer(subKey.id);
  const sub = await handMade(issuingSigner, caCert('ecdsa', 'issuing'), 'sub CA', subKey.publicKeyInfo, [
    { kind: 'basicConstraints', ca: true },
    { kind: 'keyUsage', usages: ['keyCertSign', 'cRLSign'] },
  ]);
  const leafKey = await fx.custody.generate({ algorithm: 'ecdsa-p256', label: 'pv-sub-leaf', purpose: 'path validation test' });
  const leaf = await handMade(subSigner, sub, 'leaf of sub CA', leafKey.publicKeyInfo, [{ kind: 'basicConstraints', ca: false }]);
  const r = await validatePath({ leaf, intermediates: [sub, caCert('ecdsa', 'issuing')], trustAnchors: [caCert('ecdsa', 'root')], at: new Date() });
  t.equal(r.code, 'CERT_PATH_INVALID');
  t.same(failed(r), ['caConstraints']);
  t.match(r.checks.find((c) => c.name === 'caConstraints')?.reason, /pathLenConstraint 0/);
  // The sub-CA itself (one intermediate below root only) is fine.
  t.ok((await validatePath({ leaf: sub, intermediates: [caCert('ecdsa', 'issuing')], trustAnchors: [caCert('ecdsa', 'root')], at: new Date() })).valid);
});

t.test('an unknown critical extension → CERT_PATH_INVALID', async (t) => {
  const issuingSigner = await fx.custody.signer(caKeyId('sm2', 'issuing'));
  const key = await fx.custody.generate({ algorithm: 'sm2', label: 'pv-critical', purpose: 'path validation test' });
  const leaf = await handMade(issuingSigner, caCert('sm2', 'issuing'), 'critical ext', key.publicKeyInfo, [
    { kind: 'basicConstraints', ca: false },
    { kind: 'custom', oid: '1.2.3.4.5', critical: true, value: { type: 'utf8String', value: 'x' } },
  ]);
  const r = await validatePath({ leaf, intermediates: [caCert('sm2', 'issuing')], trustAnchors: [caCert('sm2', 'root')], at: new Date() });
  t.equal(r.code, 'CERT_PATH_INVALID');
  t.same(failed(r), ['criticalExtensions']);
  t.match(r.checks.find((c) => c.name === 'criticalExtensions')?.reason, /1\.2\.3\.4\.5/);
});

t.test('garbage never throws', async (t) => {
  const root = caCert('sm2', 'root');
  for (const leaf of [Buffer.alloc(0), Buffer.from('30820000', 'hex'), randomBytes(200), root.subarray(0, 100)]) {
    const r = await validatePath({ leaf, intermediates: [randomBytes(50)], trustAnchors: [root], at: new Date() });
    t.equal(r.valid, false);
    t.equal(r.code, 'CERT_PATH_INVALID');
  }
  const r = await validatePath({ leaf: root, intermediates: [], trustAnchors: [root], at: new Date(Number.NaN) });
  t.equal(r.valid, false, 'invalid time');
  // A trust anchor validates to itself.
  t.ok((await validatePath({ leaf: root, intermediates: [], trustAnchors: [root], at: new Date() })).valid);
});

t.test('over-long chains (> 8 certificates) and loops fail without hanging', async (t) => {
  const issuingSigner = await fx.custody.signer(caKeyId('ecdsa', 'issuing'));
  const key = await fx.custody.generate({ algorithm: 'ecdsa-p256', label: 'pv-long', purpose: 'path validation test' });
  const signer = await fx.custody.signer(key.id);
  const ca: CertificateExtension[] = [{ kind: 'basicConstraints', ca: true }];
  // root → issuing → sub 1 … sub 7 → leaf: 10 certificates.
  const subs = [await handMade(issuingSigner, caCert('ecdsa', 'issuing'), 'sub 1', key.publicKeyInfo, ca)];
  for (let i = 2; i <= 7; i++) subs.push(await handMade(signer, subs[subs.length - 1], `sub ${i}`, key.publicKeyInfo, ca));
  const leaf = await handMade(signer, subs[subs.length - 1], 'deep leaf', key.publicKeyInfo, [{ kind: 'basicConstraints', ca: false }]);
  const r = await validatePath({ leaf, intermediates: [...subs, caCert('ecdsa', 'issuing')], trustAnchors: [caCert('ecdsa', 'root')], at: new Date() });
  t.equal(r.valid, false);
  t.equal(r.code, 'CERT_PATH_INVALID');
  t.match(r.checks[0].reason, /within 8/);

  // Two CAs that name each other as issuer (same key, so AKI = SKI), and no anchor they lead to.
  const a = await handMade(signer, subs[1], 'loop A', key.publicKeyInfo, ca); // issuer "sub 2"
  const loopLeaf = await handMade(signer, a, 'loop leaf', key.publicKeyInfo, [{ kind: 'basicConstraints', ca: false }]);
  const b = await handMade(signer, a, 'sub 2', key.publicKeyInfo, ca); // subject "sub 2", issuer "loop A"
  const loop = await validatePath({ leaf: loopLeaf, intermediates: [a, b], trustAnchors: [caCert('ecdsa', 'root')], at: new Date() });
  t.equal(loop.valid, false);
  t.equal(loop.code, 'CERT_UNTRUSTED');
});
