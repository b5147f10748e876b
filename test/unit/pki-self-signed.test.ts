import t from 'tap';
import { generateKeyPairSync, sign, X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSelfSignedCertificate, derToPem } from '../../appliance/src/pki/self-signed.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';

// A node:crypto ECDSA P-256 signer: the certificate builder only needs the Signer interface.
function p256Signer(): Signer {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    algorithm: 'ecdsa-p256',
    publicKeyInfo: publicKey.export({ format: 'der', type: 'spki' }),
    sign: async (data) => sign('sha256', data, privateKey),
  };
}

t.test('self-signed P-256 certificate verifies and carries the SANs', async (t) => {
  const der = await buildSelfSignedCertificate({ signer: p256Signer(), subjectCN: '医签 设备', organisation: 'yiqian', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'], days: 30 });
  const cert = new X509Certificate(der);
  t.ok(cert.verify(cert.publicKey), 'signature verifies with its own key');
  t.match(cert.subjectAltName ?? '', /DNS:localhost/);
  t.match(cert.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
  t.match(cert.subjectAltName ?? '', /IP Address:0:0:0:0:0:0:0:1/);
  t.match(cert.subject, /CN=医签 设备/);
  const days = (Date.parse(cert.validTo) - Date.parse(cert.validFrom)) / 86_400_000;
  t.ok(Math.abs(days - 30) < 0.01, 'validity is 30 days');
  const text = execFileSync('openssl', ['x509', '-noout', '-text'], { input: derToPem(der) }).toString();
  t.match(text, /Version: 3/);
  t.match(text, /TLS Web Server Authentication/);
  t.match(text, /CA:FALSE/);
  const dir = mkdtempSync(join(tmpdir(), 'yq-cert-'));
  writeFileSync(join(dir, 'c.pem'), derToPem(der));
  const ok = execFileSync('openssl', ['verify', '-CAfile', join(dir, 'c.pem'), '-purpose', 'sslserver', join(dir, 'c.pem')]).toString();
  t.match(ok, /OK/);
  rmSync(dir, { recursive: true });
});

t.test('a tampered certificate does not verify', async (t) => {
  const der = await buildSelfSignedCertificate({ signer: p256Signer(), subjectCN: 'x', days: 1 });
  const bad = Buffer.from(der);
  bad[bad.length - 80] ^= 0x01;
  let verified = false;
  try { const c = new X509Certificate(bad); verified = c.verify(c.publicKey); } catch { verified = false; }
  t.notOk(verified);
});
