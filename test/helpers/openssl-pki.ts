// A small certificate hierarchy made by the OpenSSL CLI (an independent implementation, so the
// revocation code is not tested against certificates of its own making): root → issuing CA →
// delegated OCSP responder (id-kp-OCSPSigning, ocsp-nocheck) and leaves, for 'ecdsa' (P-256,
// SHA-256) or 'sm2' (SM2/SM3 with the default ID 1234567812345678). The keys are PEM files in
// a temporary directory; `signer` gives in-process Signers over them (the HSM path is covered
// by the e2e and interop tests against a running appliance).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import type { KeyCustody, Signer } from '../../appliance/src/crypto/interfaces.js';
import { fromPem } from '../../appliance/src/crypto/der.js';
import { certificateIdentity } from '../../appliance/src/asn1/crl.js';
import type { CaId, CaRecord, CertificateRecord, Hierarchy } from '../../appliance/src/pki/types.js';

export const SM2_ID_OPTS = ['-sm3', '-sigopt', 'distid:1234567812345678'];

const CONFIG = `[req]
distinguished_name=dn
[dn]
[root]
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
[issuing]
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
[ocsp]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=OCSPSigning
noCheck=ignored
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
[leaf]
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,nonRepudiation
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
`;

export interface TestCert {
  der: Buffer;
  pem: string;
  pemFile: string;
  /** Lower-case hex, as CertificateRecord.serial. */
  serial: string;
  keyPem: string;
  keyFile: string;
}

export interface TestHierarchy {
  kind: Hierarchy;
  dir: string;
  root: TestCert;
  issuing: TestCert;
  ocsp: TestCert;
  /** A leaf of the issuing CA with this serial (hex). */
  leaf(serial: string, cn?: string): TestCert;
  /** A Signer over the key of one of the certificates above. */
  signer(cert: TestCert): Signer;
  /** CaRecords for `<kind>-root` and `<kind>-issuing`; keyUri = the key file path. */
  caRecords(): CaRecord[];
  /** A CertificateRecord for a certificate of the issuing CA. */
  record(cert: TestCert, extra?: Partial<CertificateRecord>): CertificateRecord;
  remove(): void;
}

function openssl(args: string[], cwd: string): string {
  return execFileSync('openssl', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

let ulidCounter = 0;
/** A valid, increasing ULID-shaped id for test records (Crockford base32, 26 characters). */
export function testUlid(): string {
  const alphabet = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
  let n = BigInt(Date.now()) * 1_000_000n + BigInt(++ulidCounter);
  let s = '';
  for (let i = 0; i < 26; i++) {
    s = alphabet[Number(n % 32n)] + s;
    n /= 32n;
  }
  return s;
}

export function makeTestHierarchy(kind: Hierarchy): TestHierarchy {
  const dir = mkdtempSync(join(tmpdir(), `yq-pki-${kind}-`));
  writeFileSync(join(dir, 'openssl.cnf'), CONFIG);
  const sig = kind === 'sm2' ? SM2_ID_OPTS : ['-sha256'];
  const vfy = kind === 'sm2' ? ['-vfyopt', 'distid:1234567812345678'] : [];
  const genKey = (name: string): string => {
    const file = `${name}.key`;
    openssl(kind === 'sm2' ? ['genpkey', '-algorithm', 'SM2', '-out', file] : ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file], dir);
    return file;
  };
  const load = (name: string, keyFile: string): TestCert => {
    const pem = readFileSync(join(dir, `${name}.pem`), 'utf8');
    const der = fromPem(pem)[0].der;
    const serial = openssl(['x509', '-in', `${name}.pem`, '-noout', '-serial'], dir).trim().split('=')[1].toLowerCase().replace(/^(00)+(?=.)/, '');
    return { der, pem, pemFile: join(dir, `${name}.pem`), serial, keyPem: readFileSync(join(dir, keyFile), 'utf8'), keyFile: join(dir, keyFile) };
  };
  const issue = (name: string, keyFile: string, subject: string, ext: string, serial: string, ca: TestCert): TestCert => {
    openssl(['req', '-new', '-key', keyFile, ...sig, '-utf8', '-subj', subject, '-config', 'openssl.cnf', '-out', `${name}.csr`], dir);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', ca.pemFile, '-CAkey', ca.keyFile, ...sig, ...vfy, '-extfile', 'openssl.cnf', '-extensions', ext, '-set_serial', `0x${serial}`, '-days', '30', '-out', `${name}.pem`], dir);
    return load(name, keyFile);
  };

  // Distinct serials per hierarchy, so both can live in one store.
  const base = kind === 'sm2' ? '5' : '0';
  const rootKey = genKey('root');
  openssl(['req', '-new', '-x509', '-key', rootKey, ...sig, '-utf8', '-subj', `/C=CN/O=医签测试/CN=${kind} 根 CA`, '-days', '60', '-config', 'openssl.cnf', '-extensions', 'root', '-set_serial', `0x${base}101`, '-out', 'root.pem'], dir);
  const root = load('root', rootKey);
  const issuing = issue('issuing', genKey('issuing'), `/C=CN/O=医签测试/CN=${kind} 签发 CA`, 'issuing', `${base}202`, root);
  const ocsp = issue('ocsp', genKey('ocsp'), `/C=CN/O=医签测试/CN=${kind} OCSP`, 'ocsp', `${base}303`, issuing);
  const leafKey = genKey('leaf');
  const signers = new Map<string, Signer>();

  const h: TestHierarchy = {
    kind,
    dir,
    root,
    issuing,
    ocsp,
    leaf: (serial, cn = `leaf ${serial}`) => issue(`leaf-${serial}`, leafKey, `/C=CN/CN=${cn}`, 'leaf', serial, issuing),
    signer(cert) {
      let s = signers.get(cert.keyFile);
      if (!s) signers.set(cert.keyFile, (s = createSoftwareSigner(cert.keyPem)));
      return s;
    },
    caRecords() {
      const now = new Date().toISOString();
      const rec = (id: CaId, role: 'root' | 'issuing', c: TestCert, parentId?: CaId): CaRecord => ({
        id,
        hierarchy: kind,
        role,
        keyId: c.keyFile,
        keyUri: c.keyFile,
        algorithm: kind === 'sm2' ? 'sm2' : 'ecdsa-p256',
        certificate: c.der.toString('base64'),
        subject: role,
        serial: c.serial,
        notBefore: now,
        notAfter: now,
        ...(parentId ? { parentId } : {}),
        crlNumber: '0',
        createdAt: now,
      });
      return [rec(`${kind}-root`, 'root', root), rec(`${kind}-issuing`, 'issuing', issuing, `${kind}-root`)];
    },
    record(cert, extra = {}) {
      const now = new Date();
      const spki = createSoftwareSigner(cert.keyPem).publicKeyInfo.toString('base64');
      const id = certificateIdentity(cert.der);
      return {
        serial: cert.serial,
        id: testUlid(),
        caId: `${kind}-issuing`,
        hierarchy: kind,
        profile: 'personal',
        subject: `CN=${cert.serial}`,
        commonName: cert.serial,
        keyAlgorithm: kind === 'sm2' ? 'sm2' : 'ecdsa-p256',
        keyOrigin: 'csr',
        publicKeyInfo: spki,
        notBefore: id.notBefore.toISOString(),
        notAfter: id.notAfter.toISOString(),
        status: 'good',
        certificate: cert.der.toString('base64'),
        issuedAt: now.toISOString(),
        issuedBy: 'test',
        updatedAt: now.toISOString(),
        ...extra,
      };
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
  return h;
}

/** KeyCustody.signer over the hierarchies' key files (keyRef / keyUri = the key file path). */
export function inProcessKeys(...hs: TestHierarchy[]): Pick<KeyCustody, 'signer'> {
  return {
    async signer(ref: string) {
      for (const h of hs) {
        for (const c of [h.root, h.issuing, h.ocsp]) if (c.keyFile === ref) return h.signer(c);
      }
      throw new Error(`no key ${ref}`);
    },
  };
}
