// The certificate encoder: typed extension values and KeyUsage in exact DER, a full certificate
// with every extension kind read back by OpenSSL and node, and the refusals.
import t from 'tap';
import { X509Certificate, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import {
  EXTENSION_INVALID, KEY_PURPOSES, encodeKeyUsage, encodeTypedValue, ipBytes, keyIdentifier, readCertificate, serialHex, type TypedValue,
} from '../../appliance/src/asn1/certificate.js';
import { encodeName, nameToString, nameValue } from '../../appliance/src/asn1/name.js';
import { oid as derOid, seq, tlv, toPem } from '../../appliance/src/crypto/der.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';
import { isYiqianError } from '../../appliance/src/errors.js';
import { randomSerial, signCertificate } from '../../appliance/src/pki/certificate-issuer.js';

function p256Signer(): Signer {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { algorithm: 'ecdsa-p256', publicKeyInfo: publicKey.export({ format: 'der', type: 'spki' }), sign: async (data) => sign('sha256', data, privateKey) };
}

t.test('typed values encode to the DER of their ASN.1 type', async (t) => {
  const cases: [TypedValue, string][] = [
    [{ type: 'utf8String', value: '执业' }, '0c06e689a7e4b89a'],
    [{ type: 'printableString', value: 'A-1' }, '1303412d31'],
    [{ type: 'ia5String', value: 'a@b' }, '1603614062'],
    [{ type: 'integer', value: 0 }, '020100'],
    [{ type: 'integer', value: 128 }, '02020080'],
    [{ type: 'integer', value: -1 }, '0201ff'],
    [{ type: 'integer', value: -128 }, '020180'],
    [{ type: 'integer', value: -129 }, '0202ff7f'],
    [{ type: 'integer', value: '123456789012345678901234567890' }, '020d018ee90ff6c373e0ee4e3f0ad2'],
    [{ type: 'boolean', value: true }, '0101ff'],
    [{ type: 'boolean', value: false }, '010100'],
    [{ type: 'octets-hex', value: 'c0ffee' }, '0403c0ffee'],
    [{ type: 'der-hex', value: '300302012a' }, '300302012a'],
  ];
  for (const [v, hex] of cases) t.equal(encodeTypedValue(v).toString('hex'), hex, `${v.type} ${String(v.value)}`);
  const bad: TypedValue[] = [
    { type: 'printableString', value: '中文' },
    { type: 'printableString', value: 'a@b' },
    { type: 'ia5String', value: 'é' },
    { type: 'utf8String', value: '' },
    { type: 'utf8String', value: 'a\u0007' },
    { type: 'integer', value: 1.5 },
    { type: 'integer', value: '12a' },
    { type: 'boolean', value: 'true' },
    { type: 'octets-hex', value: 'abc' },
    { type: 'der-hex', value: '3003020101ff' },
    { type: 'der-hex', value: '3005020101' },
    { type: 'utf8String', value: 'x'.repeat(5000) },
    { type: 'bitString' as never, value: '00' },
  ];
  for (const v of bad) {
    let code: string | undefined;
    try {
      encodeTypedValue(v, '1.2.3');
    } catch (e) {
      code = isYiqianError(e) ? e.code : String(e);
    }
    t.equal(code, EXTENSION_INVALID, `refused: ${v.type} ${String(v.value).slice(0, 20)}`);
  }
});

t.test('KeyUsage BIT STRING is minimal DER (X.690 §11.2.2)', async (t) => {
  t.equal(encodeKeyUsage(['digitalSignature']).toString('hex'), '03020780');
  t.equal(encodeKeyUsage(['digitalSignature', 'nonRepudiation']).toString('hex'), '030206c0');
  t.equal(encodeKeyUsage(['keyCertSign', 'cRLSign']).toString('hex'), '03020106');
  t.equal(encodeKeyUsage(['digitalSignature', 'keyEncipherment']).toString('hex'), '030205a0');
  t.equal(encodeKeyUsage(['decipherOnly']).toString('hex'), '0303070080');
  t.throws(() => encodeKeyUsage([]));
});

t.test('a certificate with every extension kind, as OpenSSL and node read it', async (t) => {
  const ca = p256Signer();
  const leaf = p256Signer();
  const caName = encodeName([{ type: 'C', value: 'CN' }, { type: 'O', value: '某医院' }, { type: 'CN', value: 'Test CA' }]);
  const subject = encodeName([
    { type: 'C', value: 'CN' }, { type: 'O', value: '某医院' }, { type: 'OU', value: '心内科' }, { type: 'title', value: '主治医师' },
    { type: 'CN', value: '张三, "Jr"' }, { type: 'serialNumber', value: 'E1001' },
  ]);
  t.equal(nameToString(subject), 'serialNumber=E1001,CN=张三\\, \\"Jr\\",title=主治医师,OU=心内科,O=某医院,C=CN', 'RFC 4514 with escaping');
  const serial = randomSerial();
  t.equal(serial.length, 16);
  t.ok(serial[0] >= 1 && serial[0] <= 0x7f, 'positive, 16 octets');
  const notBefore = new Date('2026-01-01T00:00:00Z');
  const notAfter = new Date('2051-01-01T00:00:00Z'); // GeneralizedTime from 2050 (RFC 5280 §4.1.2.5)
  const der = await signCertificate(ca, {
    serial,
    issuer: caName,
    subject,
    notBefore,
    notAfter,
    subjectPublicKeyInfo: leaf.publicKeyInfo,
    extensions: [
      { kind: 'basicConstraints', ca: false },
      { kind: 'keyUsage', usages: ['digitalSignature', 'nonRepudiation'] },
      { kind: 'extKeyUsage', purposes: [KEY_PURPOSES.clientAuth, KEY_PURPOSES.emailProtection], critical: false },
      { kind: 'subjectKeyIdentifier', keyIdentifier: keyIdentifier(leaf.publicKeyInfo) },
      { kind: 'authorityKeyIdentifier', keyIdentifier: keyIdentifier(ca.publicKeyInfo) },
      { kind: 'subjectAltName', dnsNames: ['emr.hospital.example'], ipAddresses: ['10.0.0.7', '::1'], emails: ['zhang@hospital.example'] },
      { kind: 'certificatePolicies', policies: [{ oid: '2.999.2.1', cps: 'http://127.0.0.1:8080/cps' }] },
      { kind: 'crlDistributionPoints', urls: ['http://127.0.0.1:8080/pki/crl/ecdsa-issuing.crl'] },
      { kind: 'authorityInfoAccess', ocsp: ['http://127.0.0.1:8080/ocsp'], caIssuers: ['http://127.0.0.1:8080/pki/ca/ecdsa-issuing.crt'] },
      { kind: 'ocspNoCheck' },
      { kind: 'custom', oid: '2.999.1.1', critical: false, value: { type: 'utf8String', value: '110110199001011234' } },
      { kind: 'raw', oid: '2.999.1.2', critical: false, value: Buffer.from('0101ff', 'hex') },
    ],
  });
  const x = new X509Certificate(der);
  t.ok(x.verify(x509Key(ca)), 'node verifies the signature with the CA key');
  const text = execFileSync('openssl', ['x509', '-noout', '-text', '-nameopt', 'utf8'], { input: toPem('CERTIFICATE', der) }).toString();
  for (const re of [
    /Version: 3/, /Not After : Jan {2}1 00:00:00 2051 GMT/, /Basic Constraints: critical\s+CA:FALSE/, /Key Usage: critical\s+Digital Signature, Non Repudiation/,
    /Extended Key Usage: \s+TLS Web Client Authentication, E-mail Protection/, /DNS:emr\.hospital\.example, IP Address:10\.0\.0\.7, IP Address:0:0:0:0:0:0:0:1, email:zhang@hospital\.example/,
    /Policy: 2\.999\.2\.1\s+CPS: http:\/\/127\.0\.0\.1:8080\/cps/, /URI:http:\/\/127\.0\.0\.1:8080\/pki\/crl\/ecdsa-issuing\.crl/,
    /OCSP - URI:http:\/\/127\.0\.0\.1:8080\/ocsp/, /CA Issuers - URI:http:\/\/127\.0\.0\.1:8080\/pki\/ca\/ecdsa-issuing\.crt/, /OCSP No Check/,
    /2\.999\.1\.1:\s+\.\.110110199001011234/, /Subject: C=CN, O=某医院, OU=心内科, title=主治医师, CN=张三, "Jr", serialNumber=E1001/,
  ]) t.match(text, re);
  const info = readCertificate(der);
  t.equal(info.serial, serialHex(serial));
  t.same(info.notBefore, notBefore);
  t.same(info.notAfter, notAfter);
  t.same(info.subjectKeyIdentifier, keyIdentifier(leaf.publicKeyInfo));
  t.same(info.extensions.map((e) => e.oid).slice(-2), ['2.999.1.1', '2.999.1.2']);
  t.equal(info.extensions.find((e) => e.oid === '2.5.29.19')?.critical, true);
  t.same(info.publicKeyInfo, leaf.publicKeyInfo);
});

function x509Key(s: Signer): KeyObject {
  return createPublicKey({ key: s.publicKeyInfo, format: 'der', type: 'spki' });
}

t.test('refused: duplicate extension, serial too long, notAfter before notBefore', async (t) => {
  const s = p256Signer();
  const name = encodeName([{ type: 'CN', value: 'x' }]);
  const spec = { serial: randomSerial(), issuer: name, subject: name, notBefore: new Date(), notAfter: new Date(Date.now() + 1000), subjectPublicKeyInfo: s.publicKeyInfo, extensions: [] };
  await t.rejects(signCertificate(s, { ...spec, extensions: [{ kind: 'ocspNoCheck' }, { kind: 'raw', oid: '1.3.6.1.5.5.7.48.1.5', critical: false, value: Buffer.from('0500', 'hex') }] }), /appears twice/);
  await t.rejects(signCertificate(s, { ...spec, serial: Buffer.alloc(21, 1) }), /1–20 octets/);
  await t.rejects(signCertificate(s, { ...spec, notAfter: spec.notBefore }), /after notBefore/);
});

t.test('large OID arcs read back exactly (2.25.<UUID>)', async (t) => {
  const s = p256Signer();
  const name = encodeName([{ type: 'CN', value: 'x' }]);
  const big = '2.25.244521735486656918950181140815847348341.7';
  const der = await signCertificate(s, {
    serial: randomSerial(), issuer: name, subject: name, notBefore: new Date(), notAfter: new Date(Date.now() + 1000), subjectPublicKeyInfo: s.publicKeyInfo,
    extensions: [{ kind: 'custom', oid: big, critical: false, value: { type: 'boolean', value: true } }],
  });
  t.same(readCertificate(der).extensions.map((e) => e.oid), [big]);
  t.match(execFileSync('openssl', ['x509', '-noout', '-text'], { input: toPem('CERTIFICATE', der) }).toString(), big);
});

t.test('IP addresses for subjectAltName, and names written by others', async (t) => {
  const cases: [string, string][] = [
    ['10.0.0.7', '0a000007'],
    ['::1', '00000000000000000000000000000001'],
    ['2001:db8::1', '20010db8000000000000000000000001'],
    ['fe80::', 'fe800000000000000000000000000000'],
    ['1:2:3:4:5:6:7:8', '00010002000300040005000600070008'],
    ['::ffff:10.0.0.1', '00000000000000000000ffff0a000001'],
  ];
  for (const [ip, hex] of cases) t.equal(ipBytes(ip).toString('hex'), hex, ip);
  t.throws(() => ipBytes('300.1.1.1'));
  // A Name with a BMPString CN, a PrintableString C and a two-valued RDN (as other CAs write them).
  const bmp = Buffer.from('张三', 'utf16le').swap16();
  const atv = (oid: string, tag: number, v: Buffer): Buffer => seq(derOid(oid), tlv(tag, v));
  const name = seq(tlv(0x31, atv('2.5.4.6', 0x13, Buffer.from('CN'))), tlv(0x31, atv('2.5.4.3', 0x1e, bmp), atv('2.5.4.5', 0x13, Buffer.from('E1'))));
  t.equal(nameToString(name), 'CN=张三+serialNumber=E1,C=CN');
  t.equal(nameValue(name, 'CN'), '张三');
  t.throws(() => nameToString(Buffer.from('3003310100', 'hex')), 'malformed name');
});

t.test('the parse cache tells apart certificates of one length and one ending (its key), and copies', async (t) => {
  const ca = p256Signer();
  const make = (cn: string): Promise<Buffer> =>
    signCertificate(ca, {
      serial: Buffer.from('0102030405060708', 'hex'),
      issuer: encodeName([{ type: 'CN', value: 'Cache CA' }]),
      subject: encodeName([{ type: 'CN', value: cn }]),
      notBefore: new Date('2026-01-01T00:00:00Z'),
      notAfter: new Date('2030-01-01T00:00:00Z'),
      subjectPublicKeyInfo: ca.publicKeyInfo,
      extensions: [{ kind: 'basicConstraints', ca: false }],
    });
  const a = await make('Doctor A');
  // The same bytes but one letter of the subject: same length, same signature bytes at the end.
  const b = Buffer.from(a);
  const at = b.indexOf(Buffer.from('Doctor A'));
  b[at + 7] = 'B'.charCodeAt(0);
  t.equal(b.length, a.length);
  t.ok(b.subarray(-16).equals(a.subarray(-16)), 'the same last 16 bytes');
  t.equal(nameValue(readCertificate(a).subjectDer, 'CN'), 'Doctor A');
  t.equal(nameValue(readCertificate(b).subjectDer, 'CN'), 'Doctor B', 'not the cached A');
  t.equal(nameValue(readCertificate(a).subjectDer, 'CN'), 'Doctor A', 'and A again after B took the entry');
  t.equal(readCertificate(Buffer.from(a)), readCertificate(a), 'equal bytes in another buffer: the shared parse');
  // The caller's buffer may be reused: the cache keeps its own copy.
  const c = await make('Doctor C');
  const reused = Buffer.from(c);
  const info = readCertificate(reused);
  reused.fill(0);
  t.equal(readCertificate(c), info, 'an entry survives the buffer it was first parsed from being overwritten');
});
