// CRL v2 encoding (asn1/crl.ts) against OpenSSL: signature, issuer, numbers, reasons, times.
import t from 'tap';
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildCrl, certificateIdentity, parseCrl, x509Time } from '../../appliance/src/asn1/crl.js';
import { verifySignature } from '../../appliance/src/crypto/verify.js';
import { makeTestHierarchy } from '../helpers/openssl-pki.js';

const ecdsa = makeTestHierarchy('ecdsa');
const sm2 = makeTestHierarchy('sm2');
t.teardown(() => {
  ecdsa.remove();
  sm2.remove();
});

function opensslCrl(file: string, args: string[]): { out: string; err: string; code: number | null } {
  const r = spawnSync('openssl', ['crl', '-inform', 'DER', '-in', file, ...args], { encoding: 'utf8' });
  return { out: r.stdout, err: r.stderr, code: r.status };
}

t.test('ECDSA CRL verifies with openssl and lists serials, reasons and the CRL number', async (t) => {
  const thisUpdate = new Date('2026-03-01T08:00:00.789Z');
  const nextUpdate = new Date('2026-03-02T08:00:00Z');
  const der = await buildCrl({
    issuerCertificate: ecdsa.issuing.der,
    signer: ecdsa.signer(ecdsa.issuing),
    thisUpdate,
    nextUpdate,
    crlNumber: '7',
    entries: [
      { serial: '8a01', revocationDate: new Date('2026-02-28T10:00:00Z'), reasonCode: 1 },
      { serial: '0b02', revocationDate: new Date('2026-02-28T11:00:00Z'), reasonCode: 0 },
      { serial: '3c', revocationDate: new Date('2026-02-28T12:00:00Z'), reasonCode: 6 },
    ],
  });
  const file = join(ecdsa.dir, 'x.crl');
  writeFileSync(file, der);
  const v = opensslCrl(file, ['-CAfile', ecdsa.issuing.pemFile, '-verify', '-noout']);
  t.match(v.err + v.out, /verify OK/, 'openssl crl -verify accepts the signature');
  t.equal(v.code, 0);

  const text = opensslCrl(file, ['-noout', '-text']).out;
  t.match(text, /Version 2/);
  t.match(text, /X509v3 CRL Number:\s*\n\s*7/);
  t.match(text, /Last Update: Mar {2}1 08:00:00 2026 GMT/, 'thisUpdate in whole seconds');
  t.match(text, /Next Update: Mar {2}2 08:00:00 2026 GMT/);
  t.match(text, /Serial Number: 8A01\s*\n\s*Revocation Date: Feb 28 10:00:00 2026 GMT\s*\n\s*CRL entry extensions:\s*\n\s*X509v3 CRL Reason Code:\s*\n\s*Key Compromise/);
  t.match(text, /Serial Number: 3C\s*\n\s*Revocation Date: Feb 28 12:00:00 2026 GMT\s*\n\s*CRL entry extensions:\s*\n\s*X509v3 CRL Reason Code:\s*\n\s*Certificate Hold/);
  t.match(text, /Serial Number: 0B02\s*\n\s*Revocation Date: Feb 28 11:00:00 2026 GMT\s*\n\s*Serial Number/, 'unspecified: no reasonCode extension (RFC 5280 §5.3.1)');
  const ski = certificateIdentity(ecdsa.issuing.der).keyIdentifier.toString('hex').toUpperCase().match(/../g)!.join(':');
  t.match(text, new RegExp(`Authority Key Identifier:\\s*\\n\\s*(keyid:)?${ski}`), 'AKI = the issuing CA key identifier');
  const issuerLine = execFileSync('openssl', ['x509', '-in', ecdsa.issuing.pemFile, '-noout', '-subject', '-nameopt', 'RFC2253']).toString().replace(/^subject=/, '').trim();
  const crlIssuer = execFileSync('openssl', ['crl', '-inform', 'DER', '-in', file, '-noout', '-issuer', '-nameopt', 'RFC2253']).toString().replace(/^issuer=/, '').trim();
  t.equal(crlIssuer, issuerLine, 'CRL issuer is the CA subject');

  const parsed = parseCrl(der);
  t.equal(parsed.version, 2);
  t.equal(parsed.crlNumber, 7n);
  t.same(parsed.issuer, certificateIdentity(ecdsa.issuing.der).subject, 'issuer bytes = subject bytes of the CA certificate');
  t.same(parsed.entries.map((e) => [e.serial, e.reasonCode]), [['3c', 6], ['0b02', undefined], ['8a01', 1]], 'entries sorted by serial');
  t.equal(parsed.thisUpdate.toISOString(), '2026-03-01T08:00:00.000Z');
});

t.test('a tampered CRL fails openssl verification; an empty list is absent', async (t) => {
  const der = await buildCrl({
    issuerCertificate: ecdsa.issuing.der,
    signer: ecdsa.signer(ecdsa.issuing),
    thisUpdate: new Date('2030-05-05T05:05:05Z'),
    nextUpdate: new Date('2030-05-06T05:05:05Z'),
    crlNumber: 1n,
    entries: [],
  });
  const file = join(ecdsa.dir, 'empty.crl');
  writeFileSync(file, der);
  t.equal(opensslCrl(file, ['-CAfile', ecdsa.issuing.pemFile, '-verify', '-noout']).code, 0);
  // One digit of thisUpdate changed: 300505050505Z → 300505050506Z.
  const at = der.indexOf(Buffer.from('300505050505Z', 'latin1'));
  t.ok(at > 0);
  const bad = Buffer.from(der);
  bad[at + 11] = 0x36;
  const badFile = join(ecdsa.dir, 'tampered.crl');
  writeFileSync(badFile, bad);
  const v = opensslCrl(badFile, ['-CAfile', ecdsa.issuing.pemFile, '-verify', '-noout']);
  t.notMatch(v.out + v.err, /verify OK/, 'a changed byte breaks the signature');
  t.match(v.err, /verify failure/);
  const text = opensslCrl(file, ['-noout', '-text']).out;
  t.match(text, /No Revoked Certificates/, 'empty list is absent (RFC 5280 §5.1.2.6)');
  t.equal(parseCrl(der).entries.length, 0);
  await t.rejects(
    buildCrl({ issuerCertificate: ecdsa.issuing.der, signer: ecdsa.signer(ecdsa.root), thisUpdate: new Date(), nextUpdate: new Date(Date.now() + 1000), crlNumber: 1n, entries: [] }),
    /signer's key is not the issuer certificate's key/,
  );
});

t.test('SM2 CRL: sm2sign-with-sm3 with the default ID, verified by the SM2 engine', async (t) => {
  const der = await buildCrl({
    issuerCertificate: sm2.issuing.der,
    signer: sm2.signer(sm2.issuing),
    thisUpdate: new Date(),
    nextUpdate: new Date(Date.now() + 86_400_000),
    crlNumber: '123456789012345678901234567890',
    entries: [{ serial: 'ff00ee', revocationDate: new Date(), reasonCode: 4 }],
  });
  const p = parseCrl(der);
  t.equal(p.signatureAlgorithm, '1.2.156.10197.1.501');
  t.equal(p.crlNumber, 123456789012345678901234567890n);
  t.same(p.entries.map((e) => [e.serial, e.reasonCode]), [['ff00ee', 4]]);
  const spki = certificateIdentity(sm2.issuing.der).spki;
  t.ok(await verifySignature('sm2', spki, p.tbs, p.signature), 'verifies with ID 1234567812345678');
  t.notOk(await verifySignature('sm2', spki, p.tbs, p.signature, { sm2Id: Buffer.alloc(0) }), 'and not with the empty ID');
  const tampered = Buffer.from(p.tbs);
  tampered[tampered.length - 1] ^= 1;
  t.notOk(await verifySignature('sm2', spki, tampered, p.signature));
  writeFileSync(join(sm2.dir, 'sm2.crl'), der);
  t.match(opensslCrl(join(sm2.dir, 'sm2.crl'), ['-noout', '-text']).out, /Signature Algorithm: SM2-with-SM3/);
});

t.test('times: UTCTime through 2049, GeneralizedTime from 2050, whole seconds', async (t) => {
  t.equal(x509Time(new Date('2049-12-31T23:59:59.999Z')).toString('latin1').slice(2), '491231235959Z');
  t.equal(x509Time(new Date('2049-12-31T23:59:59Z'))[0], 0x17);
  const g = x509Time(new Date('2050-01-01T00:00:00Z'));
  t.equal(g[0], 0x18);
  t.equal(g.subarray(2).toString('latin1'), '20500101000000Z');
});

t.test('bad input is refused', async (t) => {
  const base = { issuerCertificate: ecdsa.issuing.der, signer: ecdsa.signer(ecdsa.issuing), thisUpdate: new Date(), nextUpdate: new Date(Date.now() + 1000), crlNumber: 1n, entries: [] };
  await t.rejects(buildCrl({ ...base, crlNumber: -1n }), /CRL number/);
  await t.rejects(buildCrl({ ...base, nextUpdate: base.thisUpdate }), /nextUpdate/);
  await t.rejects(buildCrl({ ...base, entries: [{ serial: '01', revocationDate: new Date(), reasonCode: 7 }] }), /reason code 7/);
  await t.rejects(buildCrl({ ...base, entries: [{ serial: 'xyz', revocationDate: new Date() }] }), /bad serial/);
  t.throws(() => parseCrl(Buffer.from('3003020101', 'hex')));
});
