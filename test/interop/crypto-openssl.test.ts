// SM2 against the OpenSSL 3.0 command line (../shared/PEERS.md): signatures with
// -sigopt distid, encryption with pkeyutl, and the key containers in both directions.
import t from 'tap';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { toPem } from '../../appliance/src/crypto/der.js';
import {
  generateSm2KeyPair,
  sm2Backend,
  sm2Decrypt,
  sm2Encrypt,
  sm2PrivateKeyFromPem,
  sm2PrivateKeyToPem,
  sm2PublicKeyFromPrivate,
  sm2PublicKeyFromSpki,
  sm2Sign,
  sm2SpkiFromPublicKey,
  sm2Verify,
} from '../../appliance/src/crypto/sm2.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'yq-openssl-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const f = (name: string): string => join(dir, name);

async function openssl(args: string[]): Promise<string> {
  const { stdout } = await run('openssl', args, { encoding: 'utf8' });
  return stdout;
}

const IDS = ['1234567812345678', 'ALICE123@YAHOO.COM'];

t.test(`signatures: engine (${sm2Backend()}) ⇄ openssl dgst -sm3 -sigopt distid`, async (t) => {
  const { privateKey, publicKey } = generateSm2KeyPair();
  writeFileSync(f('key.pem'), sm2PrivateKeyToPem(privateKey));
  writeFileSync(f('pub.pem'), toPem('PUBLIC KEY', sm2SpkiFromPublicKey(publicKey)));
  t.match(await openssl(['pkey', '-in', f('key.pem'), '-noout', '-text']), /ASN1 OID: SM2/, 'openssl pkey reads our PKCS#8 as an SM2 key');
  for (const [i, id] of IDS.entries()) {
    const msg = Buffer.from(`电子病历 ${i}`);
    writeFileSync(f('msg'), msg);
    const ours = await sm2Sign(privateKey, msg, { id: Buffer.from(id) });
    writeFileSync(f('ours.sig'), ours);
    t.match(await openssl(['dgst', '-sm3', '-verify', f('pub.pem'), '-sigopt', `distid:${id}`, '-signature', f('ours.sig'), f('msg')]), /Verified OK/, `openssl verifies ours (${id})`);
    await t.rejects(openssl(['dgst', '-sm3', '-verify', f('pub.pem'), '-signature', f('ours.sig'), f('msg')]), 'openssl with its default (empty) ID does not');
    await openssl(['dgst', '-sm3', '-sign', f('key.pem'), '-sigopt', `distid:${id}`, '-out', f('theirs.sig'), f('msg')]);
    const theirs = readFileSync(f('theirs.sig'));
    t.ok(await sm2Verify(publicKey, msg, theirs, { id: Buffer.from(id) }), `we verify openssl's (${id})`);
    t.notOk(await sm2Verify(publicKey, Buffer.concat([msg, Buffer.from('!')]), theirs, { id: Buffer.from(id) }), 'not over another message');
  }
  // OpenSSL with no distid = the empty ID; so does the engine when asked.
  writeFileSync(f('msg'), 'empty id');
  await openssl(['dgst', '-sm3', '-sign', f('key.pem'), '-out', f('empty.sig'), f('msg')]);
  t.ok(await sm2Verify(publicKey, Buffer.from('empty id'), readFileSync(f('empty.sig')), { id: Buffer.alloc(0) }), 'empty ID matches openssl without -sigopt');
});

t.test('encryption: engine ⇄ openssl pkeyutl (GM/T 0009 DER)', async (t) => {
  const { privateKey, publicKey } = generateSm2KeyPair();
  writeFileSync(f('k2.pem'), sm2PrivateKeyToPem(privateKey));
  writeFileSync(f('p2.pem'), toPem('PUBLIC KEY', sm2SpkiFromPublicKey(publicKey)));
  for (const len of [1, 32, 300]) {
    const pt = Buffer.alloc(len, 0x5a);
    pt[0] = len & 0xff;
    writeFileSync(f('pt'), pt);
    await openssl(['pkeyutl', '-encrypt', '-pubin', '-inkey', f('p2.pem'), '-in', f('pt'), '-out', f('theirs.ct')]);
    t.same(await sm2Decrypt(privateKey, readFileSync(f('theirs.ct'))), pt, `we decrypt openssl's (${len} bytes)`);
    writeFileSync(f('ours.ct'), await sm2Encrypt(publicKey, pt));
    await openssl(['pkeyutl', '-decrypt', '-inkey', f('k2.pem'), '-in', f('ours.ct'), '-out', f('back')]);
    t.same(readFileSync(f('back')), pt, `openssl decrypts ours (${len} bytes)`);
  }
});

t.test('key containers written by openssl', async (t) => {
  await openssl(['genpkey', '-algorithm', 'SM2', '-out', f('gen.pem')]);
  const d = sm2PrivateKeyFromPem(readFileSync(f('gen.pem'), 'utf8'));
  await openssl(['pkey', '-in', f('gen.pem'), '-pubout', '-outform', 'DER', '-out', f('gen.spki')]);
  const spki = readFileSync(f('gen.spki'));
  t.same(sm2PublicKeyFromSpki(spki), sm2PublicKeyFromPrivate(d), 'PKCS#8 from genpkey: same public key as openssl derives');
  t.same(sm2SpkiFromPublicKey(sm2PublicKeyFromPrivate(d)), spki, 'our SPKI is byte-identical to openssl');
  await openssl(['ec', '-in', f('gen.pem'), '-out', f('sec1.pem')]);
  t.same(sm2PrivateKeyFromPem(readFileSync(f('sec1.pem'), 'utf8')), d, 'SEC1 from openssl ec ("SM2 PRIVATE KEY")');
  const msg = Buffer.from('signed with a key openssl made');
  writeFileSync(f('msg2'), msg);
  await openssl(['dgst', '-sm3', '-sign', f('gen.pem'), '-sigopt', 'distid:1234567812345678', '-out', f('gen.sig'), f('msg2')]);
  t.ok(await sm2Verify(spki, msg, readFileSync(f('gen.sig'))), 'and its signatures verify with the SPKI openssl wrote');
});
