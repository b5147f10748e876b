// Certificates of every profile, issued by a CA made as `yiqian init` makes it, judged by the
// real peers (../shared/PEERS.md): `openssl verify` on the ECDSA chain and on each SM2 link
// (-vfyopt distid:1234567812345678), `openssl x509 -text` for each profile's extensions, and
// BouncyCastle's PKIX CertPathValidator for both hierarchies plus its RFC 3161 TSA-certificate
// check — all BouncyCastle checks in one JVM run. Revocation checking is off here (CRL and OCSP
// have their own tests).
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toPem } from '../../appliance/src/crypto/der.js';
import { applianceCertificate } from '../../appliance/src/pki/hierarchy.js';
import type { CaId, CertificateRecord } from '../../appliance/src/pki/types.js';
import { runJavaBatch } from '../helpers/bouncycastle.js';
import { makePkiFixture, openssl, opensslCsr, type PkiFixture } from '../helpers/pki-hierarchy.js';

const dir = mkdtempSync(join(tmpdir(), 'yq-pki-peers-'));
let f: PkiFixture;
const ACTOR = 'app:01TESTAPP0000000000000000B';
const LICENCE_OID = '2.999.1.1';
const issued = new Map<string, CertificateRecord>();
const caDer = new Map<CaId, Buffer>();

t.before(async () => {
  f = await makePkiFixture({
    profiles: {
      personal: { policies: [{ oid: '2.999.2.1' }], namedExtensions: [{ name: 'practisingLicence', oid: LICENCE_OID, type: 'utf8String' }] },
    },
  });
  for (const id of ['sm2-root', 'sm2-issuing', 'ecdsa-root', 'ecdsa-issuing'] as const) caDer.set(id, (await f.pki.authorities.get(id)).der);
  const sm2 = opensslCsr(dir, 'sm2', '/CN=x', 'p-sm2');
  const p256 = opensslCsr(dir, 'ecdsa-p256', '/CN=x', 'p-p256');
  const rsa = opensslCsr(dir, 'rsa-2048', '/CN=x', 'p-rsa');
  const c = f.pki.certificates;
  const staff = { profile: 'personal', commonName: '张三', employeeId: 'E1001', ou: '心内科', titleLevel: '主任医师', extensions: [{ name: 'practisingLicence', value: '110110199001011234' }] };
  issued.set('personal-sm2', (await c.issueFromCsr({ ...staff, csr: sm2.csrPem }, ACTOR)).record);
  issued.set('personal-p256', (await c.issueFromCsr({ ...staff, csr: p256.csrPem }, ACTOR)).record);
  issued.set('organisation-sm2', (await c.issueWithKeygen({ profile: 'organisation', commonName: '某某市人民医院', algorithm: 'sm2', password: 'org password 1' }, ACTOR)).record);
  issued.set('seal-sm2', (await c.issueFromCsr({ profile: 'seal', commonName: '某某市人民医院合同专用章', csr: sm2.csrPem }, ACTOR)).record);
  issued.set('device-rsa', (await c.issueFromCsr({ profile: 'device', commonName: 'his.hospital.example', dnsNames: ['his.hospital.example'], ipAddresses: ['10.0.0.8'], csr: rsa.csrPem }, ACTOR)).record);
  issued.set('device-p256', (await c.issueFromCsr({ profile: 'device', commonName: 'pacs', dnsNames: ['pacs.hospital.example'], csr: p256.csrPem }, ACTOR)).record);
  for (const h of ['sm2', 'ecdsa'] as const) {
    for (const p of ['ocsp', 'tsa'] as const) issued.set(`${p}-${h}`, (await applianceCertificate(f.store.certs, h, p))!);
  }
  issued.set('tls-ecdsa', f.created.deviceTls.record);
});

t.teardown(async () => {
  await f?.close();
  rmSync(dir, { recursive: true, force: true });
});

function file(name: string, der: Buffer): string {
  const p = join(dir, `${name}.pem`);
  writeFileSync(p, toPem('CERTIFICATE', der));
  return p;
}

const der = (r: CertificateRecord): Buffer => Buffer.from(r.certificate, 'base64');

t.test('openssl verify: the ECDSA chain (root trusted, issuing untrusted), and each SM2 link', async (t) => {
  const ecRoot = file('ecdsa-root', caDer.get('ecdsa-root')!);
  const ecIssuing = file('ecdsa-issuing', caDer.get('ecdsa-issuing')!);
  const smRoot = file('sm2-root', caDer.get('sm2-root')!);
  const smIssuing = file('sm2-issuing', caDer.get('sm2-issuing')!);
  for (const [name, r] of issued) {
    const leaf = file(name, der(r));
    if (r.hierarchy === 'ecdsa') {
      const purpose = r.profile === 'device' ? ['-purpose', 'sslserver'] : [];
      t.match(openssl(['verify', ...purpose, '-CAfile', ecRoot, '-untrusted', ecIssuing, leaf]), /: OK/, `${name}: ECDSA chain verifies`);
    } else {
      t.match(openssl(['verify', '-vfyopt', 'distid:1234567812345678', '-partial_chain', '-CAfile', smIssuing, leaf]), /: OK/, `${name}: SM2 link leaf ← issuing`);
    }
  }
  t.match(openssl(['verify', '-vfyopt', 'distid:1234567812345678', '-partial_chain', '-CAfile', smRoot, smIssuing]), /: OK/, 'SM2 link issuing ← root');
  t.match(openssl(['verify', '-vfyopt', 'distid:1234567812345678', '-CAfile', smRoot, smRoot]), /: OK/, 'SM2 root self-signature');
  // The check can fail: without the standard ID OpenSSL does not accept the SM2 signature, and a
  // leaf of one hierarchy does not verify under the other.
  t.throws(() => openssl(['verify', '-partial_chain', '-CAfile', smIssuing, join(dir, 'personal-sm2.pem')]), 'SM2 without distid is refused');
  t.throws(() => openssl(['verify', '-CAfile', ecRoot, '-untrusted', ecIssuing, join(dir, 'personal-sm2.pem')]), 'SM2 leaf under the ECDSA root is refused');
  t.throws(() => openssl(['verify', '-purpose', 'sslserver', '-CAfile', ecRoot, '-untrusted', ecIssuing, join(dir, 'personal-p256.pem')]), 'a personal certificate is not a TLS server certificate');
});

t.test('openssl x509 -text: each profile’s extensions', async (t) => {
  const text = (name: string): string => openssl(['x509', '-noout', '-text', '-nameopt', 'utf8', '-in', join(dir, `${name}.pem`)]);
  const common = [/Version: 3/, /Basic Constraints: critical\s+CA:FALSE/, /Subject Key Identifier/, /Authority Key Identifier/, /CRL Distribution Points/, /OCSP - URI:http:\/\/127\.0\.0\.1:8080\/ocsp/];
  const expect: Record<string, RegExp[]> = {
    'personal-sm2': [/Signature Algorithm: SM2-with-SM3/, /Key Usage: critical\s+Digital Signature, Non Repudiation/, /TLS Web Client Authentication, E-mail Protection/, /Policy: 2\.999\.2\.1/, /2\.999\.1\.1:\s+\.\.110110199001011234/, /Subject: C=CN, O=医签 yiqian, OU=心内科, title=主任医师, CN=张三, serialNumber=E1001/, /URI:http:\/\/127\.0\.0\.1:8080\/pki\/crl\/sm2-issuing\.crl/, /CA Issuers - URI:http:\/\/127\.0\.0\.1:8080\/pki\/ca\/sm2-issuing\.crt/],
    'personal-p256': [/Signature Algorithm: ecdsa-with-SHA256/, /URI:http:\/\/127\.0\.0\.1:8080\/pki\/crl\/ecdsa-issuing\.crl/],
    'organisation-sm2': [/Key Usage: critical\s+Digital Signature, Non Repudiation/, /TLS Web Client Authentication/, /CN=某某市人民医院/],
    'seal-sm2': [/Key Usage: critical\s+Digital Signature, Non Repudiation/, /CN=某某市人民医院合同专用章/],
    'device-rsa': [/Key Usage: critical\s+Digital Signature, Key Encipherment/, /TLS Web Server Authentication/, /DNS:his\.hospital\.example, IP Address:10\.0\.0\.8/, /Public-Key: \(2048 bit\)/],
    'device-p256': [/Key Usage: critical\s+Digital Signature\n/, /DNS:pacs\.hospital\.example/],
    'tls-ecdsa': [/TLS Web Server Authentication/, /DNS:localhost, IP Address:127\.0\.0\.1/],
    'ocsp-sm2': [/Extended Key Usage: \s+OCSP Signing/, /OCSP No Check/],
    'ocsp-ecdsa': [/Extended Key Usage: \s+OCSP Signing/, /OCSP No Check/],
    'tsa-sm2': [/Extended Key Usage: critical\s+Time Stamping\n/],
    'tsa-ecdsa': [/Extended Key Usage: critical\s+Time Stamping\n/],
  };
  for (const [name, res] of Object.entries(expect)) {
    const out = text(name);
    for (const re of [...common, ...res]) t.match(out, re, `${name}: ${re.source.slice(0, 50)}`);
  }
  t.notMatch(text('personal-p256'), /OCSP No Check/, 'ocsp-nocheck only on the OCSP signer');
  t.notMatch(text('personal-sm2'), /Time Stamping/);
  const issuing = openssl(['x509', '-noout', '-text', '-in', join(dir, 'ecdsa-issuing.pem')]);
  for (const re of [/CA:TRUE, pathlen:0/, /Key Usage: critical\s+Certificate Sign, CRL Sign/, /Policy: X509v3 Any Policy/, /URI:http:\/\/127\.0\.0\.1:8080\/pki\/crl\/ecdsa-root\.crl/, /CA Issuers - URI:http:\/\/127\.0\.0\.1:8080\/pki\/ca\/ecdsa-root\.crt/]) {
    t.match(issuing, re, `issuing CA: ${re.source}`);
  }
  const root = openssl(['x509', '-noout', '-text', '-in', join(dir, 'sm2-root.pem')]);
  t.match(root, /CA:TRUE\n/);
  t.notMatch(root, /CRL Distribution Points|Authority Information Access/, 'a root names no CRL or issuer');
});

t.test('BouncyCastle: PKIX paths of both hierarchies, the TSA certificates, a custom extension — one JVM', async (t) => {
  const hex = (b: Buffer): string => b.toString('hex');
  const lines: string[] = [];
  const labels: [string, string | RegExp][] = [];
  for (const [name, r] of issued) {
    const h = r.hierarchy;
    lines.push(`path ${hex(caDer.get(`${h}-root`)!)} ${hex(der(r))} ${hex(caDer.get(`${h}-issuing`)!)}`);
    labels.push([`${name}: PKIX path to the ${h} root`, 'ok']);
  }
  lines.push(`path ${hex(caDer.get('sm2-root')!)} ${hex(caDer.get('sm2-issuing')!)}`);
  labels.push(['sm2-issuing: PKIX path to its root', 'ok']);
  lines.push(`path ${hex(caDer.get('ecdsa-root')!)} ${hex(der(issued.get('personal-sm2')!))} ${hex(caDer.get('sm2-issuing')!)}`);
  labels.push(['an SM2 chain does not validate under the ECDSA root', /^error /]);
  for (const h of ['sm2', 'ecdsa']) {
    lines.push(`tsacert ${hex(der(issued.get(`tsa-${h}`)!))}`);
    labels.push([`tsa-${h}: RFC 3161 TSA certificate`, 'ok']);
  }
  lines.push(`tsacert ${hex(der(issued.get('ocsp-ecdsa')!))}`);
  labels.push(['the OCSP signer is not a TSA certificate', /^error /]);
  lines.push(`ext ${hex(der(issued.get('personal-sm2')!))} ${LICENCE_OID}`);
  labels.push(['执业证书号 read by BouncyCastle as a UTF8String', /UTF8String\(110110199001011234\)/]);
  const out = await runJavaBatch('PkiIssueInterop', lines);
  out.forEach((line, i) => {
    const [what, want] = labels[i];
    if (typeof want === 'string') t.equal(line, want, what);
    else t.match(line, want, what);
  });
});
