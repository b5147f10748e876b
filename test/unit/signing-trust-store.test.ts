// The trust store on a real LMDB store: external CAs made by the OpenSSL CLI (ECDSA, SM2, RSA),
// CRLs made by `openssl ca -gencrl`, our own CAs seeded as `yiqian init` stores them.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toPem } from '../../appliance/src/crypto/der.js';
import { createTrustStore, trustId } from '../../appliance/src/signing/trust-store.js';
import type { Store } from '../../appliance/src/store/open-store.js';
import { makeTestHierarchy, type TestHierarchy } from '../helpers/openssl-pki.js';
import { freshStore, rejection } from '../helpers/store-fixture.js';

const ext = makeTestHierarchy('ecdsa');
const sm2 = makeTestHierarchy('sm2');
const ours = makeTestHierarchy('ecdsa');
t.teardown(() => {
  ext.remove();
  sm2.remove();
  ours.remove();
});

function openssl(args: string[], cwd: string): Buffer {
  return execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

const utc = (d: Date): string => d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';

/** A CRL of `ca` made by `openssl ca -gencrl` with these revoked serials and CRL number. */
function opensslCrl(h: TestHierarchy, ca: 'root' | 'issuing', revoked: { serial: string; at: Date; reason?: string }[], crlNumber: number, form: 'DER' | 'PEM' = 'DER'): Buffer {
  const dir = h.dir;
  const far = utc(new Date(Date.now() + 86_400_000 * 30));
  writeFileSync(join(dir, 'index.txt'), revoked.map((r) => `R\t${far}\t${utc(r.at)}${r.reason ? `,${r.reason}` : ''}\t${r.serial.toUpperCase()}\tunknown\t/CN=${r.serial}\n`).join(''));
  writeFileSync(join(dir, 'crlnumber'), `${crlNumber.toString(16).padStart(2, '0')}\n`);
  writeFileSync(join(dir, 'ca.cnf'), '[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\ncrlnumber=crlnumber\ndefault_md=sha256\nunique_subject=no\ncrl_extensions=crl_ext\n[crl_ext]\nauthorityKeyIdentifier=keyid\n');
  const cert = h[ca];
  const md = h.kind === 'sm2' ? ['-md', 'sm3', '-sigopt', 'distid:1234567812345678'] : ['-md', 'sha256'];
  openssl(['ca', '-config', 'ca.cnf', '-gencrl', '-keyfile', cert.keyFile, '-cert', cert.pemFile, '-crlhours', '24', ...md, '-out', 'gen.crl'], dir);
  return openssl(['crl', '-in', 'gen.crl', '-outform', form], dir);
}

/** A self-signed RSA-2048 CA made by OpenSSL. */
function rsaRoot(dir: string): { der: Buffer; pem: string } {
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'rsa.key'], dir);
  openssl(['req', '-new', '-x509', '-key', 'rsa.key', '-sha256', '-subj', '/C=CN/O=Ext/CN=RSA Root', '-days', '30', '-config', 'openssl.cnf', '-extensions', 'root', '-out', 'rsa.pem'], dir);
  const der = openssl(['x509', '-in', 'rsa.pem', '-outform', 'DER'], dir);
  return { der, pem: toPem('CERTIFICATE', der) };
}

async function setup(t: Parameters<typeof freshStore>[0]) {
  const { store } = await freshStore(t, 'yq-trust-');
  for (const ca of ours.caRecords()) await store.cas.put(ca);
  const trust = createTrustStore({ trust: store.trustCas, cas: store.cas });
  return { store, trust };
}

async function actions(store: Store, prefix: string) {
  return (await store.audit.list({ action: prefix })).map((r) => `${r.action}:${r.outcome}`);
}

t.test('our CAs are always trusted; imported roots are anchors, others intermediates', async (t) => {
  const { store, trust } = await setup(t);
  let m = await trust.material();
  t.same(m.anchors, [ours.root.der]);
  t.same(m.intermediates, [ours.issuing.der]);

  const root = await trust.importCa(ext.root.pem, { crlUrl: 'http://crl.example/root.crl', ocspUrl: 'http://ocsp.example/' }, 'app:admin');
  t.match(root, { id: trustId(ext.root.der), source: 'imported', anchor: true, crlUrl: 'http://crl.example/root.crl', crlFetchHours: 24, ocspUrl: 'http://ocsp.example/', serial: ext.root.serial });
  t.match(root.subject, /ecdsa 根 CA/);
  const issuing = await trust.importCa(ext.issuing.der, {}, 'app:admin');
  t.equal(issuing.anchor, false);
  t.notOk(issuing.crlUrl);
  const sm2Root = await trust.importCa(sm2.root.der.toString('base64'), {}, 'app:admin');
  t.equal(sm2Root.anchor, true, 'SM2 self-signed root verifies with the default ID');
  const rsa = await trust.importCa(rsaRoot(ext.dir).pem, { crlFetchHours: 6, crlUrl: 'https://x.example/c.crl' }, 'cli:ops');
  t.equal(rsa.anchor, true);
  t.equal(rsa.crlFetchHours, 6);

  m = await trust.material();
  t.equal(m.anchors.length, 4);
  t.ok(m.anchors.some((a) => a.equals(ext.root.der)) && m.intermediates.some((a) => a.equals(ext.issuing.der)));
  const list = await trust.list();
  t.same(list.map((v) => v.source), ['appliance', 'appliance', 'imported', 'imported', 'imported', 'imported']);
  t.same((await trust.get(issuing.id)).id, issuing.id);
  t.same((await trust.get(trustId(ours.root.der))).source, 'appliance');
  t.same(await actions(store, 'trust.'), ['trust.ca.import:ok', 'trust.ca.import:ok', 'trust.ca.import:ok', 'trust.ca.import:ok']);

  // a second service instance (another process) sees them in the store
  const again = createTrustStore({ trust: store.trustCas, cas: store.cas });
  t.equal((await again.list()).length, 6);

  await trust.remove(issuing.id, 'app:admin');
  t.notOk((await trust.material()).intermediates.some((c) => c.equals(ext.issuing.der)), 'cache dropped on removal');
  t.equal((await rejection(trust.get(issuing.id))).code, 'TRUST_CA_NOT_FOUND');
  t.same((await store.audit.list({ action: 'trust.ca.remove' })).map((r) => r.target), [issuing.id]);
});

t.test('bad imports: each with its code, nothing stored', async (t) => {
  const { store, trust } = await setup(t);
  await trust.importCa(ext.root.pem, {}, 'a');
  t.equal((await rejection(trust.importCa(ext.root.der, {}, 'a'))).code, 'TRUST_CA_EXISTS');
  const own = await rejection(trust.importCa(ours.root.der, {}, 'a'));
  t.match(own, { code: 'TRUST_CA_EXISTS', status: 409, detail: { source: 'appliance' } });
  const leaf = await rejection(trust.importCa(ext.leaf('c001').der, {}, 'a'));
  t.match(leaf, { code: 'TRUST_NOT_A_CA', status: 400 });
  t.match(leaf.text.en, /cA is not TRUE/);
  t.match(await rejection(trust.importCa(ext.ocsp.pem, {}, 'a')), { code: 'TRUST_NOT_A_CA' });
  for (const garbage of [Buffer.from('garbage'), ext.root.der.subarray(0, 100), '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', 'not base64 !!', ext.root.pem + sm2.root.pem, '']) {
    t.match(await rejection(trust.importCa(garbage, {}, 'a')), { code: 'CERT_DECODE_FAILED', status: 400 }, `garbage ${String(garbage).slice(0, 20)}`);
  }
  // one flipped bit in the signature of a self-signed root
  const tampered = Buffer.from(sm2.root.der);
  tampered[tampered.length - 5] ^= 0x01;
  t.match(await rejection(trust.importCa(tampered, {}, 'a')), { code: 'CERT_SIGNATURE_INVALID', status: 400 });
  for (const opts of [{ crlUrl: 'ftp://x/c.crl' }, { ocspUrl: 'not a url' }, { crlUrl: 'http://u:p@x/c.crl' }, { crlUrl: 'http://x/c.crl', crlFetchHours: 0 }, { crlFetchHours: 5 }, { crlUrl: 'http://x/', crlFetchHours: '5' as unknown as number }]) {
    t.match(await rejection(trust.importCa(sm2.root.der, opts, 'a')), { code: 'TRUST_OPTION_INVALID', status: 400 }, JSON.stringify(opts));
  }
  t.match(await rejection(trust.remove(trustId(ours.issuing.der), 'a')), { code: 'TRUST_CA_BUILTIN', status: 409 });
  t.match(await rejection(trust.remove('0'.repeat(64), 'a')), { code: 'TRUST_CA_NOT_FOUND', status: 404 });
  t.match(await rejection(trust.remove('../etc', 'a')), { code: 'TRUST_CA_NOT_FOUND', status: 404 });
  t.equal((await store.trustCas.list()).length, 1);
  t.same(await actions(store, 'trust.'), ['trust.ca.import:ok']);
});

t.test('CRLs: issuer, signature, newer-than; PEM or DER; ECDSA and SM2', async (t) => {
  const { store, trust } = await setup(t);
  const issuing = await trust.importCa(ext.issuing.pem, {}, 'a');
  const root = await trust.importCa(ext.root.pem, {}, 'a');
  const hour = 3_600_000;
  const crl1 = opensslCrl(ext, 'issuing', [{ serial: 'a001', at: new Date(Date.now() - hour), reason: 'keyCompromise' }], 1);
  const v1 = await trust.importCrl(issuing.id, crl1, 'upload', 'app:admin');
  t.match(v1.crl, { number: '1', entries: 1, source: 'upload' });
  t.ok(v1.crl?.nextUpdate && Date.parse(v1.crl.nextUpdate) > Date.now());
  t.match(await rejection(trust.importCrl(issuing.id, crl1, 'upload', 'a')), { code: 'CRL_NOT_NEWER', status: 409 });
  const older = opensslCrl(ext, 'issuing', [], 0);
  t.match(await rejection(trust.importCrl(issuing.id, older, 'upload', 'a')), { code: 'CRL_NOT_NEWER' });
  const crl2 = opensslCrl(ext, 'issuing', [{ serial: 'a001', at: new Date(Date.now() - hour) }, { serial: 'b002', at: new Date() }], 2, 'PEM');
  const v2 = await trust.importCrl(issuing.id, crl2, 'upload', 'a');
  t.match(v2.crl, { number: '2', entries: 2 });
  t.match(await rejection(trust.importCrl(issuing.id, crl2.toString('latin1'), 'upload', 'a')), { code: 'CRL_NOT_NEWER' }, 'PEM text');

  // the root's CRL offered for the issuing CA
  const rootCrl = opensslCrl(ext, 'root', [], 7);
  t.match(await rejection(trust.importCrl(issuing.id, rootCrl, 'upload', 'a')), { code: 'CRL_ISSUER_MISMATCH', status: 400 });
  t.match((await trust.importCrl(root.id, rootCrl, 'upload', 'a')).crl, { number: '7', entries: 0 });
  // same issuer Name, other key: the other ECDSA hierarchy's issuing CA has a different name, so
  // flip a bit of the signature instead
  const bad = opensslCrl(ext, 'issuing', [], 9);
  bad[bad.length - 3] ^= 0x40;
  t.match(await rejection(trust.importCrl(issuing.id, bad, 'upload', 'a')), { code: 'CRL_SIGNATURE_INVALID', status: 400 });
  for (const g of [Buffer.from('nope'), crl1.subarray(0, 40), '-----BEGIN X509 CRL-----\nAA==\n-----END X509 CRL-----\n']) {
    t.match(await rejection(trust.importCrl(issuing.id, g, 'upload', 'a')), { code: 'CRL_DECODE_FAILED', status: 400 });
  }
  t.match(await rejection(trust.importCrl(trustId(ours.issuing.der), crl1, 'upload', 'a')), { code: 'TRUST_CA_BUILTIN' });
  t.match(await rejection(trust.importCrl('f'.repeat(64), crl1, 'upload', 'a')), { code: 'TRUST_CA_NOT_FOUND' });

  // SM2 (SM3 with the default ID)
  const s = await trust.importCa(sm2.issuing.der, {}, 'a');
  t.match((await trust.importCrl(s.id, opensslCrl(sm2, 'issuing', [{ serial: '5abc', at: new Date() }], 3), 'upload', 'a')).crl, { number: '3', entries: 1 });

  t.equal((await trust.get(issuing.id)).crl?.number, '2', 'refusals left the held CRL alone');
  t.same(await actions(store, 'trust.crl.'), ['trust.crl.import:ok', 'trust.crl.import:ok', 'trust.crl.import:ok', 'trust.crl.import:ok']);
});
