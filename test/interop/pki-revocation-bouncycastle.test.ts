// BouncyCastle (one JVM run) against what the RUNNING appliance serves, for both hierarchies:
// CRL signatures and contents (SM2 with the default ID), OCSP response signatures and statuses
// (delegated responder with id-kp-OCSPSigning and ocsp-nocheck, issued by the CA), and PKIX
// path validation with revocation checking on (CRLs) — a revoked certificate fails it.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildOcspRequest } from '../../appliance/src/asn1/ocsp.js';
import { runJavaBatch } from '../helpers/bouncycastle.js';
import { startCa, type Issued, type RunningCa } from '../helpers/revocation-client.js';

const hex = (serial: string): string => BigInt('0x' + serial).toString(16);

t.test('CRL, OCSP and PKIX-with-CRL checks by BouncyCastle, SM2 and ECDSA', async (t) => {
  const ca: RunningCa = await startCa(t);
  const hierarchies = [
    { h: 'sm2', alg: 'sm2' as const, sigOid: '1.2.156.10197.1.501' },
    { h: 'ecdsa', alg: 'ecdsa-p256' as const, sigOid: '1.2.840.10045.4.3.2' },
  ];
  const lines: string[] = [];
  const expect: ((line: string) => void)[] = [];
  const file = (name: string, bytes: Buffer): string => {
    const p = join(ca.work, name);
    writeFileSync(p, bytes);
    return p;
  };

  for (const { h, alg, sigOid } of hierarchies) {
    const issuing = await ca.ca(`${h}-issuing`);
    const root = await ca.ca(`${h}-root`);
    const good: Issued = await ca.issue(alg, `${h}-good`);
    const bad: Issued = await ca.issue(alg, `${h}-revoked`);
    const held: Issued = await ca.issue(alg, `${h}-held`);
    t.equal((await ca.api('POST', `/certs/${bad.serial}/revoke`, { reason: 'keyCompromise' })).status, 200);
    t.equal((await ca.api('POST', `/certs/${held.serial}/suspend`)).status, 200);

    const crlIssuing = await ca.publicCall(`/pki/crl/${h}-issuing.crl`);
    const crlRoot = await ca.publicCall(`/pki/crl/${h}-root.crl`);
    t.equal(crlIssuing.status, 200);
    t.equal(crlIssuing.headers['content-type'], 'application/pkix-crl');
    const crlIssuingFile = file(`${h}-issuing.crl`, crlIssuing.body);
    const crlRootFile = file(`${h}-root.crl`, crlRoot.body);

    lines.push(`crl ${crlIssuingFile} ${issuing.file}`);
    expect.push((l) => {
      t.match(l, new RegExp(`^ok sig=true issuerMatches=true alg=${sigOid.replace(/\./g, '\\.')} number=\\d+ nextUpdateAfterNow=true `), `${h}: CRL signature valid (BC)`);
      const entries = /entries=(\S+)/.exec(l)![1].split(',').sort();
      t.same(entries, [`${hex(bad.serial)}:1`, `${hex(held.serial)}:6`].sort(), `${h}: revoked keyCompromise, suspended certificateHold`);
    });
    lines.push(`crl ${crlRootFile} ${root.file}`);
    expect.push((l) => t.match(l, /^ok sig=true issuerMatches=true .* entries=-$/, `${h}: root CRL signed by the root, empty`));

    for (const [what, serial, want, nonce] of [
      ['good', good.serial, 'good', Buffer.alloc(16, 0x5a)],
      ['revoked', bad.serial, 'revoked/1', undefined],
      ['suspended', held.serial, 'revoked/6', Buffer.alloc(32, 0x33)],
      ['unknown', 'c0ffee', 'unknown', undefined],
    ] as const) {
      const res = await ca.publicCall('/ocsp', {
        method: 'POST',
        body: buildOcspRequest([{ issuerCertificate: issuing.der, serial, hash: h === 'sm2' ? 'sm3' : 'sha256' }], nonce),
        headers: { 'Content-Type': 'application/ocsp-request' },
      });
      t.equal(res.status, 200);
      t.equal(res.headers['content-type'], 'application/ocsp-response');
      lines.push(`ocsp ${file(`${h}-${what}.ocsp`, res.body)} ${issuing.file}`);
      expect.push((l) => {
        t.match(l, new RegExp(`^ok status=0 sig=true alg=${sigOid.replace(/\./g, '\\.')} delegated=true responderIssuedByCa=true ocspSigning=true noCheck=true `), `${h} ${what}: OCSP signature valid (BC), delegated responder`);
        t.match(l, new RegExp(` responses=${hex(serial)}:${want.replace('/', '\\/')}$`), `${h} ${what}: ${want}`);
        t.match(l, nonce ? new RegExp(` nonce=${nonce.toString('hex')} `) : / nonce=- /, `${h} ${what}: nonce ${nonce ? 'echoed' : 'absent'}`);
      });
    }

    lines.push(`pkix ${good.file} ${issuing.file} ${root.file} ${crlIssuingFile} ${crlRootFile}`);
    expect.push((l) => t.equal(l, 'valid', `${h}: PKIX with CRLs accepts a good certificate`));
    lines.push(`pkix ${bad.file} ${issuing.file} ${root.file} ${crlIssuingFile} ${crlRootFile}`);
    expect.push((l) => t.match(l, /^invalid 0 .*(revoked|Certificate revocation)/i, `${h}: PKIX with CRLs rejects the revoked certificate`));
    lines.push(`pkix ${held.file} ${issuing.file} ${root.file} ${crlIssuingFile} ${crlRootFile}`);
    expect.push((l) => t.match(l, /^invalid 0 .*(revoked|Certificate revocation|hold)/i, `${h}: and the suspended one`));
    // Without the root's CRL the intermediate's status is unknown: revocation checking is really on.
    lines.push(`pkix ${good.file} ${issuing.file} ${root.file} ${crlIssuingFile}`);
    expect.push((l) => t.match(l, /^invalid 1 /, `${h}: no CRL for the issuing CA → invalid (checking is on)`));
  }

  const out = await runJavaBatch('RevocationInterop', lines);
  out.forEach((l, i) => expect[i](l));
});
