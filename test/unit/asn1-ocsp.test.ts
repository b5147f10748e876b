// OCSP encoding (asn1/ocsp.ts) against OpenSSL: requests OpenSSL makes are read, requests and
// responses we make are read and verified by `openssl ocsp`.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { certificateIdentity } from '../../appliance/src/asn1/crl.js';
import {
  OcspMalformedError,
  buildOcspRequest,
  buildOcspResponse,
  encodeCertId,
  issuerHashes,
  ocspErrorResponse,
  parseOcspRequest,
  parseOcspResponse,
} from '../../appliance/src/asn1/ocsp.js';
import { verifySignature } from '../../appliance/src/crypto/verify.js';
import { makeTestHierarchy } from '../helpers/openssl-pki.js';

const ecdsa = makeTestHierarchy('ecdsa');
const sm2 = makeTestHierarchy('sm2');
t.teardown(() => {
  ecdsa.remove();
  sm2.remove();
});
const leafA = ecdsa.leaf('1a2b3c4d');
const leafB = ecdsa.leaf('00ff01');

function ocsp(args: string[]): { out: string; err: string; code: number | null } {
  const r = spawnSync('openssl', ['ocsp', ...args], { encoding: 'utf8' });
  return { out: r.stdout, err: r.stderr, code: r.status };
}

t.test('requests made by openssl are read: CertID, serial, SHA-1 / SHA-256, nonce', async (t) => {
  const req1 = join(ecdsa.dir, 'r1.der');
  t.equal(ocsp(['-issuer', ecdsa.issuing.pemFile, '-cert', leafA.pemFile, '-reqout', req1]).code, 0);
  const p1 = parseOcspRequest(readFileSync(req1));
  t.equal(p1.requests.length, 1);
  const id = p1.requests[0];
  t.equal(id.serial, '1a2b3c4d');
  t.equal(id.hash, 'sha1');
  t.equal(id.hashParams, 'null');
  const h = issuerHashes(ecdsa.issuing.der, 'sha1');
  t.same(id.issuerNameHash, h.nameHash);
  t.same(id.issuerKeyHash, h.keyHash);
  t.ok(p1.nonce, 'openssl sends a nonce by default');
  t.equal(p1.nonceValue?.length, 16);
  t.same(id.raw, encodeCertId({ issuerCertificate: ecdsa.issuing.der, serial: '1a2b3c4d' }), 'our CertID encoding is byte-identical');

  const req2 = join(ecdsa.dir, 'r2.der');
  t.equal(ocsp(['-issuer', ecdsa.issuing.pemFile, '-sha256', '-cert', leafA.pemFile, '-cert', leafB.pemFile, '-no_nonce', '-reqout', req2]).code, 0);
  const p2 = parseOcspRequest(readFileSync(req2));
  t.equal(p2.nonce, undefined);
  t.same(p2.requests.map((r) => [r.hash, r.serial]), [['sha256', '1a2b3c4d'], ['sha256', 'ff01']]);
  t.same(p2.requests[1].issuerKeyHash, issuerHashes(ecdsa.issuing.der, 'sha256').keyHash);
});

t.test('requests we build are read by openssl', async (t) => {
  const nonce = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  const der = buildOcspRequest([{ issuerCertificate: ecdsa.issuing.der, serial: '1a2b3c4d', hash: 'sha256' }], nonce);
  const file = join(ecdsa.dir, 'ours.der');
  writeFileSync(file, der);
  const r = ocsp(['-reqin', file, '-req_text']);
  t.equal(r.code, 0);
  t.match(r.out, /Hash Algorithm: sha256/);
  t.match(r.out, /Serial Number: 1A2B3C4D/);
  t.match(r.out, /OCSP Nonce:\s*\n\s*0410001122334455667788(99)?/i);
  const back = parseOcspRequest(der);
  t.same(back.nonceValue, nonce);
});

t.test('responses: openssl verifies the delegated signature and reads good / revoked / unknown', async (t) => {
  const responder = ecdsa.signer(ecdsa.ocsp);
  const thisUpdate = new Date(Date.now() - 60_000);
  const nextUpdate = new Date(Date.now() + 3_600_000);
  const nonce = Buffer.from('0410' + 'ab'.repeat(16), 'hex');
  const idA = encodeCertId({ issuerCertificate: ecdsa.issuing.der, serial: leafA.serial });
  const idB = encodeCertId({ issuerCertificate: ecdsa.issuing.der, serial: leafB.serial });
  const idC = encodeCertId({ issuerCertificate: ecdsa.issuing.der, serial: '77' });
  const der = await buildOcspResponse({
    signer: responder,
    producedAt: new Date(),
    responses: [
      { certId: idA, status: 'good', thisUpdate, nextUpdate },
      { certId: idB, status: 'revoked', revocationTime: new Date('2026-01-02T03:04:05Z'), reasonCode: 1, thisUpdate, nextUpdate },
      { certId: idC, status: 'unknown', thisUpdate, nextUpdate },
    ],
    nonce,
    certs: [ecdsa.ocsp.der],
  });
  const file = join(ecdsa.dir, 'resp.der');
  writeFileSync(file, der);
  const r = ocsp(['-respin', file, '-issuer', ecdsa.issuing.pemFile, '-cert', leafA.pemFile, '-cert', leafB.pemFile, '-serial', '0x77', '-CAfile', ecdsa.root.pemFile, '-verify_other', ecdsa.issuing.pemFile, '-no_nonce', '-resp_text']);
  t.equal(r.code, 0, r.err);
  t.match(r.err, /Response verify OK/);
  t.match(r.out, new RegExp(`${leafA.pemFile.replace(/[/.]/g, '\\$&')}: good`));
  t.match(r.out, /: revoked\s*\n\s*This Update: .*\n\s*Next Update: .*\n\s*Reason: keyCompromise\s*\n\s*Revocation Time: Jan {2}2 03:04:05 2026 GMT/);
  t.match(r.out, /0x77: unknown/);
  t.match(r.out, /Responder Id: [0-9A-F]{40}/, 'responder by key hash');
  t.match(r.out, /OCSP Nonce:\s*\n\s*0410ABAB/i, 'nonce echoed');
  t.match(r.out, /OCSP Signing/, 'responder certificate is included');

  const p = parseOcspResponse(der);
  t.equal(p.status, 'successful');
  t.same(p.basic?.responses.map((s) => [s.serial, s.status, s.reasonCode]), [[leafA.serial, 'good', undefined], [leafB.serial, 'revoked', 1], ['77', 'unknown', undefined]]);
  t.same(p.basic?.nonce, nonce);
  t.same(p.basic?.certs[0], ecdsa.ocsp.der);
  t.same(p.basic?.responderKeyHash, (await import('node:crypto')).createHash('sha1').update(certificateIdentity(ecdsa.ocsp.der).publicKey).digest());

  // Signed by a key that is not the included responder's: openssl refuses it.
  const forged = await buildOcspResponse({ signer: ecdsa.signer(leafA), producedAt: new Date(), responses: [{ certId: idA, status: 'good', thisUpdate, nextUpdate }], certs: [ecdsa.ocsp.der] });
  writeFileSync(join(ecdsa.dir, 'forged.der'), forged);
  const f = ocsp(['-respin', join(ecdsa.dir, 'forged.der'), '-issuer', ecdsa.issuing.pemFile, '-cert', leafA.pemFile, '-CAfile', ecdsa.root.pemFile, '-verify_other', ecdsa.issuing.pemFile, '-no_nonce']);
  t.notMatch(f.err, /Response verify OK/);
  t.match(f.err, /Response Verify Failure/i);
});

t.test('SM2 responses are signed with SM2/SM3 and the default ID', async (t) => {
  const leaf = sm2.leaf('5e');
  const der = await buildOcspResponse({
    signer: sm2.signer(sm2.ocsp),
    producedAt: new Date(),
    responses: [{ certId: encodeCertId({ issuerCertificate: sm2.issuing.der, serial: leaf.serial, hash: 'sm3' }), status: 'revoked', revocationTime: new Date(), reasonCode: 6, thisUpdate: new Date() }],
    certs: [sm2.ocsp.der],
  });
  const p = parseOcspResponse(der).basic!;
  t.equal(p.signatureAlgorithm, '1.2.156.10197.1.501');
  t.equal(p.responses[0].hashAlgorithm, '1.2.156.10197.1.401');
  t.equal(p.responses[0].reasonCode, 6);
  t.equal(p.responses[0].nextUpdate, undefined);
  const spki = certificateIdentity(sm2.ocsp.der).spki;
  t.ok(await verifySignature('sm2', spki, p.tbs, p.signature));
  t.notOk(await verifySignature('sm2', spki, p.tbs, p.signature, { sm2Id: Buffer.alloc(0) }));
});

t.test('error responses carry only the status', async (t) => {
  for (const [name, code] of [['malformedRequest', 1], ['internalError', 2], ['tryLater', 3], ['unauthorized', 6]] as const) {
    const der = ocspErrorResponse(name);
    t.same(der, Buffer.from([0x30, 0x03, 0x0a, 0x01, code]));
    t.same(parseOcspResponse(der), { status: name });
    const file = join(ecdsa.dir, `${name}.der`);
    writeFileSync(file, der);
    const r = ocsp(['-respin', file, '-resp_text']);
    t.match(r.out + r.err, new RegExp(`Responder Error: ${name} \\(${code}\\)`, 'i'));
  }
});

t.test('malformed requests are refused', async (t) => {
  const good = buildOcspRequest([{ issuerCertificate: ecdsa.issuing.der, serial: '01' }]);
  const many = buildOcspRequest(Array.from({ length: 17 }, (_, i) => ({ issuerCertificate: ecdsa.issuing.der, serial: (i + 1).toString(16) })));
  const cases: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['not DER', Buffer.from('hello, OCSP')],
    ['trailing bytes', Buffer.concat([good, Buffer.from([0])])],
    ['truncated', good.subarray(0, good.length - 3)],
    ['empty request list', Buffer.from('30043002' + '3000', 'hex')],
    ['too many CertIDs', many],
    ['a certificate instead', ecdsa.issuing.der],
  ];
  for (const [what, der] of cases) t.throws(() => parseOcspRequest(der), OcspMalformedError, what);
  t.equal(parseOcspRequest(many, { maxRequests: 17 }).requests.length, 17);
  // SHA-1 CertID whose hashes are 32 bytes long.
  const wrongLen = Buffer.from(good);
  t.throws(() => parseOcspRequest(Buffer.from(wrongLen.toString('hex').replace('0414', '0420'), 'hex')), OcspMalformedError);
});
