// CMS SignedData against real peers (../shared/PEERS.md), one JVM run: BouncyCastle verifies our
// SM2 CMS in the RFC 5652 form and our ECDSA/RSA CMS, attached and detached
// (SignerInformation.verify, JcaSimpleSignerInfoVerifierBuilder, BC provider); we verify an SM2
// CMS made by BouncyCastle's CMSSignedDataGenerator (SM3withSM2) and ECDSA/RSA CMS made by
// `openssl cms -sign -binary -nodetach`; `openssl cms -verify` verifies our ECDSA/RSA CMS to the
// root of an OpenSSL-made hierarchy (test/helpers/openssl-pki.ts).
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromPem } from '../../appliance/src/crypto/der.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import { signCms } from '../../appliance/src/signing/cms-sign.js';
import { verifyCms } from '../../appliance/src/signing/cms-verify.js';
import { runJavaBatch } from '../helpers/bouncycastle.js';
import { makeTestHierarchy } from '../helpers/openssl-pki.js';

const CONTENT = Buffer.from('电子病历 EMR-2026-000123 出院小结 / discharge summary\n', 'utf8');

function openssl(args: string[], cwd: string): { ok: boolean; out: string } {
  try {
    return { ok: true, out: execFileSync('openssl', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
  } catch (e) {
    const err = e as { stderr?: Buffer | string; message: string };
    return { ok: false, out: String(err.stderr ?? err.message) };
  }
}

t.test('CMS SignedData with BouncyCastle and OpenSSL', async (t) => {
  const sm2 = makeTestHierarchy('sm2');
  const ec = makeTestHierarchy('ecdsa');
  t.teardown(() => {
    sm2.remove();
    ec.remove();
  });
  const w = ec.dir;
  const sm2Leaf = sm2.leaf('5b01', '李四');
  const ecLeaf = ec.leaf('0b01', 'ecdsa leaf');
  const must = (args: string[]): void => {
    const r = openssl(args, w);
    if (!r.ok) throw new Error(`openssl ${args.join(' ')}: ${r.out}`);
  };
  // RSA-2048 leaf of the ECDSA hierarchy's issuing CA.
  must(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'rsa.key']);
  must(['req', '-new', '-key', 'rsa.key', '-sha256', '-utf8', '-subj', '/C=CN/CN=rsa leaf', '-config', 'openssl.cnf', '-out', 'rsa.csr']);
  must(['x509', '-req', '-in', 'rsa.csr', '-CA', ec.issuing.pemFile, '-CAkey', ec.issuing.keyFile, '-sha256', '-extfile', 'openssl.cnf', '-extensions', 'leaf', '-set_serial', '0x0b02', '-days', '30', '-out', 'rsa.pem']);
  const rsaDer = fromPem(readFileSync(join(w, 'rsa.pem'), 'utf8'))[0].der;
  const rsaSigner = createSoftwareSigner(readFileSync(join(w, 'rsa.key'), 'utf8'));
  writeFileSync(join(w, 'content.bin'), CONTENT);
  writeFileSync(join(w, 'other.bin'), Buffer.concat([CONTENT, Buffer.from('x')]));

  const ours = async (name: string, p: Parameters<typeof signCms>[0]): Promise<string> => {
    const f = join(w, `${name}.p7s`);
    writeFileSync(f, await signCms(p));
    return f;
  };
  const base = { content: CONTENT, signingTime: new Date() };
  const files = {
    sm2Att: await ours('sm2-att', { ...base, signer: sm2.signer(sm2Leaf), certificate: sm2Leaf.der, chain: [sm2.issuing.der], detached: false, form: 'rfc5652' }),
    sm2Det: await ours('sm2-det', { ...base, signer: sm2.signer(sm2Leaf), certificate: sm2Leaf.der, detached: true, form: 'rfc5652' }),
    sm2Gm: await ours('sm2-gm', { ...base, signer: sm2.signer(sm2Leaf), certificate: sm2Leaf.der, detached: false, form: 'gbt35275' }),
    ecAtt: await ours('ec-att', { ...base, signer: ec.signer(ecLeaf), certificate: ecLeaf.der, chain: [ec.issuing.der], detached: false, form: 'rfc5652' }),
    ecDet: await ours('ec-det', { ...base, signer: ec.signer(ecLeaf), certificate: ecLeaf.der, chain: [ec.issuing.der], detached: true, form: 'rfc5652' }),
    rsaAtt: await ours('rsa-att', { ...base, signer: rsaSigner, certificate: rsaDer, chain: [ec.issuing.der], detached: false, form: 'rfc5652' }),
    rsaDet: await ours('rsa-det', { ...base, signer: rsaSigner, certificate: rsaDer, chain: [ec.issuing.der], detached: true, form: 'rfc5652' }),
  };
  const content = join(w, 'content.bin');
  const other = join(w, 'other.bin');
  const bcSm2 = join(w, 'bc-sm2.p7s');

  const out = await runJavaBatch('CmsInterop', [
    `verify ${files.sm2Att} -`,
    `verify ${files.sm2Det} ${content}`,
    `verify ${files.ecAtt} -`,
    `verify ${files.ecDet} ${content}`,
    `verify ${files.rsaAtt} -`,
    `verify ${files.rsaDet} ${content}`,
    `verify ${files.sm2Det} ${other}`,
    `verify ${files.ecDet} ${other}`,
    `verify ${files.sm2Gm} - gm`,
    `sign-sm2 ${sm2Leaf.keyFile} ${sm2Leaf.pemFile} ${content} ${bcSm2}`,
  ]);

  await t.test('BouncyCastle verifies our CMS', async (t) => {
    t.equal(out[0], 'ok signers=1', 'SM2 RFC 5652 attached');
    t.equal(out[1], 'ok signers=1', 'SM2 RFC 5652 detached');
    t.equal(out[2], 'ok signers=1', 'ECDSA attached');
    t.equal(out[3], 'ok signers=1', 'ECDSA detached');
    t.equal(out[4], 'ok signers=1', 'RSA attached');
    t.equal(out[5], 'ok signers=1', 'RSA detached');
    t.match(out[6], /^fail /, `SM2 detached with other content: ${out[6]}`);
    t.match(out[7], /^fail /, `ECDSA detached with other content: ${out[7]}`);
    t.equal(out[8], 'ok signers=1', 'SM2 GB/T 35275 form (with a name for .301.1, BC 1.72 lacks it)');
  });

  await t.test('we verify an SM2 CMS made by BouncyCastle', async (t) => {
    t.equal(out[9], 'ok');
    const der = readFileSync(bcSm2);
    const r = await verifyCms(der, {});
    t.ok(r.valid, JSON.stringify(r.checks));
    t.equal(r.form, 'rfc5652');
    t.ok(r.content?.equals(CONTENT));
    t.equal(r.signer?.serial, '5b01');
    const bad = await verifyCms(der, { content: Buffer.from('other') });
    t.equal(bad.checks.find((c) => c.name === 'contentIntact')?.ok, false, 'other content: contentIntact fails');
  });

  await t.test('we verify ECDSA and RSA CMS made by openssl cms -sign', async (t) => {
    for (const [name, cert, key] of [
      ['ecdsa', ecLeaf.pemFile, ecLeaf.keyFile],
      ['rsa', join(w, 'rsa.pem'), join(w, 'rsa.key')],
    ] as const) {
      must(['cms', '-sign', '-binary', '-nodetach', '-md', 'sha256', '-in', 'content.bin', '-signer', cert, '-inkey', key, '-outform', 'DER', '-out', `ossl-${name}.p7s`]);
      const der = readFileSync(join(w, `ossl-${name}.p7s`));
      const r = await verifyCms(der, {});
      t.ok(r.valid, `${name}: ${JSON.stringify(r.checks)}`);
      t.ok(r.content?.equals(CONTENT), `${name}: content extracted`);
      must(['cms', '-sign', '-binary', '-md', 'sha256', '-in', 'content.bin', '-signer', cert, '-inkey', key, '-outform', 'DER', '-out', `ossl-${name}-det.p7s`]);
      const det = readFileSync(join(w, `ossl-${name}-det.p7s`));
      t.ok((await verifyCms(det, { content: CONTENT })).valid, `${name}: detached valid`);
      t.notOk((await verifyCms(det, { content: Buffer.from('x') })).valid, `${name}: detached with other content invalid`);
    }
  });

  await t.test('openssl cms -verify verifies our ECDSA and RSA CMS', async (t) => {
    // OpenSSL 3.0's `cms -verify -certfile` only searches those certificates for the signer; it
    // does not use them as intermediates (it has no -untrusted). Our CMS therefore embeds the
    // issuing CA (signCms `chain`), and -certfile is given as well.
    const verify = (file: string, detachedContent?: string) =>
      openssl(['cms', '-verify', '-binary', '-inform', 'DER', '-in', file, ...(detachedContent ? ['-content', detachedContent] : []), '-purpose', 'any', '-CAfile', ec.root.pemFile, '-certfile', ec.issuing.pemFile, '-out', join(w, 'verified.out')], w);
    for (const [name, file, det] of [
      ['ECDSA attached', files.ecAtt, undefined],
      ['ECDSA detached', files.ecDet, content],
      ['RSA attached', files.rsaAtt, undefined],
      ['RSA detached', files.rsaDet, content],
    ] as const) {
      const r = verify(file, det);
      t.ok(r.ok, `${name}: ${r.out.trim()}`);
      t.ok(readFileSync(join(w, 'verified.out')).equals(CONTENT), `${name}: content out`);
    }
    t.notOk(verify(files.ecDet, other).ok, 'ECDSA detached with other content fails');
    t.notOk(verify(files.rsaDet, other).ok, 'RSA detached with other content fails');
  });
});
