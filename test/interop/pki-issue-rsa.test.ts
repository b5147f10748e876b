// The second hierarchy with RSA-3072 CA keys (config pki.ecdsaAlgorithm = 'rsa-3072'): the CAs
// sign with sha256WithRSAEncryption from the HSM, and OpenSSL and BouncyCastle accept the chains
// of what it issues (P-256 and RSA subjects, the appliance's TLS, OCSP and TSA certificates).
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toPem } from '../../appliance/src/crypto/der.js';
import { applianceCertificate } from '../../appliance/src/pki/hierarchy.js';
import type { CertificateRecord } from '../../appliance/src/pki/types.js';
import { runJavaBatch } from '../helpers/bouncycastle.js';
import { makePkiFixture, openssl, opensslCsr, type PkiFixture } from '../helpers/pki-hierarchy.js';

const dir = mkdtempSync(join(tmpdir(), 'yq-pki-rsa-'));
let f: PkiFixture;

t.before(async () => {
  f = await makePkiFixture({ ecdsaAlgorithm: 'rsa-3072' });
});
t.teardown(async () => {
  await f?.close();
  rmSync(dir, { recursive: true, force: true });
});

t.test('RSA-3072 CAs issue chains OpenSSL and BouncyCastle accept', async (t) => {
  const root = await f.pki.authorities.get('ecdsa-root');
  const issuing = await f.pki.authorities.get('ecdsa-issuing');
  t.equal(root.record.algorithm, 'rsa-3072');
  t.equal(issuing.record.algorithm, 'rsa-3072');
  const keys = await f.custody.list();
  t.equal(keys.find((k) => k.label === 'ecdsa-issuing-ca')?.mode, 'hsm', 'RSA CA key in the token');
  const write = (name: string, der: Buffer): string => {
    const p = join(dir, `${name}.pem`);
    writeFileSync(p, toPem('CERTIFICATE', der));
    return p;
  };
  const rootFile = write('root', root.der);
  const issuingFile = write('issuing', issuing.der);
  const text = openssl(['x509', '-noout', '-text', '-in', issuingFile]);
  t.match(text, /Signature Algorithm: sha256WithRSAEncryption/);
  t.match(text, /Public-Key: \(3072 bit\)/);

  const p256 = opensslCsr(dir, 'ecdsa-p256', '/CN=x', 'r-p256');
  const leaves: [string, CertificateRecord][] = [
    ['personal-p256', (await f.pki.certificates.issueFromCsr({ profile: 'personal', commonName: '张三', employeeId: 'E1', csr: p256.csrPem }, 'app:t')).record],
    ['organisation-rsa', (await f.pki.certificates.issueWithKeygen({ profile: 'organisation', commonName: '某医院', algorithm: 'rsa-2048', password: 'password 123' }, 'app:t')).record],
    ['tls', f.created.deviceTls.record],
    ['ocsp', (await applianceCertificate(f.store.certs, 'ecdsa', 'ocsp'))!],
    ['tsa', (await applianceCertificate(f.store.certs, 'ecdsa', 'tsa'))!],
  ];
  const lines: string[] = [];
  for (const [name, r] of leaves) {
    const der = Buffer.from(r.certificate, 'base64');
    t.match(openssl(['verify', '-CAfile', rootFile, '-untrusted', issuingFile, write(name, der)]), /: OK/, `${name}: openssl verify`);
    lines.push(`path ${root.der.toString('hex')} ${der.toString('hex')} ${issuing.der.toString('hex')}`);
  }
  t.equal(leaves.find(([n]) => n === 'ocsp')![1].keyAlgorithm, 'ecdsa-p256', 'the OCSP signer stays P-256 under an RSA CA');
  lines.push(`tsacert ${Buffer.from(leaves[4][1].certificate, 'base64').toString('hex')}`);
  t.same(await runJavaBatch('PkiIssueInterop', lines), lines.map(() => 'ok'), 'BouncyCastle: every PKIX path, and the TSA certificate');
});
