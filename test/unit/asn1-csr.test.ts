// PKCS#10 requests made by the OpenSSL command line: parsed, proof of possession checked (SM2
// with the default ID), and every way a request can be wrong refused with its own code.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CSR_ALGORITHM_UNSUPPORTED, CSR_MALFORMED, CSR_SIGNATURE_INVALID, KEY_UNSUPPORTED, parseCsr, readVerifiedCsr, verifyCsr } from '../../appliance/src/asn1/csr.js';
import { Tag, bitString, children, readWhole, seq } from '../../appliance/src/crypto/der.js';
import { rejection } from '../helpers/store-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'yq-csr-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** genpkey options → key file; then `openssl req` with the given signing options → CSR PEM. */
function csr(name: string, genpkey: string[], sign: string[], subject = '/C=CN/O=某医院/CN=张三'): string {
  const key = join(dir, `${name}.key`);
  openssl(['genpkey', ...genpkey, '-out', key]);
  const out = join(dir, `${name}.csr`);
  openssl(['req', '-new', '-key', key, '-utf8', '-subj', subject, ...sign, '-out', out]);
  return readFileSync(out, 'utf8');
}

const SM2 = ['-algorithm', 'SM2'];
const P256 = ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'];

function der(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

t.test('good requests: SM2 (default ID), P-256, P-384, RSA', async (t) => {
  const cases: [string, string, string[], string[]][] = [
    ['sm2', 'sm2', SM2, ['-sm3', '-sigopt', 'distid:1234567812345678']],
    ['p256', 'ecdsa-p256', P256, ['-sha256']],
    ['p384', 'ecdsa-p384', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'], ['-sha384']],
    ['rsa2048', 'rsa-2048', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'], ['-sha256']],
  ];
  for (const [name, alg, gen, sign] of cases) {
    const pem = csr(name, gen, sign);
    const parsed = await readVerifiedCsr(pem);
    t.equal(parsed.keyAlgorithm, alg, `${name}: key algorithm`);
    t.equal(parsed.subjectString, 'CN=张三,O=某医院,C=CN');
    // The same request as base64 DER and as DER bytes.
    t.equal((await readVerifiedCsr(der(pem).toString('base64'))).keyAlgorithm, alg);
    t.equal((await readVerifiedCsr(der(pem))).keyAlgorithm, alg);
  }
});

t.test('proof of possession fails: SM2 signed with the empty ID, a flipped byte, no signature, another key', async (t) => {
  // `openssl req -sm3` without -sigopt signs with the EMPTY ID (PEERS.md): not the standard default.
  const emptyId = csr('sm2-empty', SM2, ['-sm3']);
  t.equal((await rejection(readVerifiedCsr(emptyId))).code, CSR_SIGNATURE_INVALID, 'SM2 with the empty ID');
  for (const [name, gen, sign] of [['sm2-flip', SM2, ['-sm3', '-sigopt', 'distid:1234567812345678']], ['p256-flip', P256, ['-sha256']]] as const) {
    const bytes = der(csr(name, [...gen], [...sign], '/CN=abcdef'));
    const at = bytes.indexOf(Buffer.from('abcdef'));
    bytes[at + 2] ^= 0x01; // still a well-formed request, no longer the one that was signed
    const parsed = parseCsr(bytes);
    t.equal(parsed.subjectString, 'CN=abbdef');
    t.equal((await rejection(verifyCsr(parsed))).code, CSR_SIGNATURE_INVALID, `${name}: byte flipped in the subject`);
  }
  const good = der(csr('p256-nosig', P256, ['-sha256']));
  const [info, alg] = children(readWhole(good, Tag.SEQUENCE).value);
  const unsigned = seq(info.raw, alg.raw, bitString(Buffer.alloc(0)));
  t.equal((await rejection(readVerifiedCsr(unsigned))).code, CSR_SIGNATURE_INVALID, 'empty signature');
  const other = der(csr('p256-other', P256, ['-sha256']));
  const [, , otherSig] = children(readWhole(other, Tag.SEQUENCE).value);
  t.equal((await rejection(readVerifiedCsr(seq(info.raw, alg.raw, otherSig.raw)))).code, CSR_SIGNATURE_INVALID, "another key's signature");
});

t.test('weak or unsupported keys and algorithms', async (t) => {
  const rsa1024 = csr('rsa1024', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024'], ['-sha256']);
  t.equal((await rejection(readVerifiedCsr(rsa1024))).code, KEY_UNSUPPORTED, 'RSA-1024');
  const k1 = csr('k1', ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:secp256k1'], ['-sha256']);
  t.equal((await rejection(readVerifiedCsr(k1))).code, KEY_UNSUPPORTED, 'secp256k1');
  const ed = csr('ed', ['-algorithm', 'ED25519'], []);
  t.equal((await rejection(readVerifiedCsr(ed))).code, KEY_UNSUPPORTED, 'Ed25519');
  const sha1 = csr('sha1', ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'], ['-sha1']);
  t.equal((await rejection(readVerifiedCsr(sha1))).code, CSR_ALGORITHM_UNSUPPORTED, 'sha1WithRSAEncryption');
});

t.test('malformed input', async (t) => {
  const good = der(csr('p256-m', P256, ['-sha256']));
  const inputs: [string, string | Buffer][] = [
    ['empty', ''],
    ['not base64', 'hello world!'],
    ['random bytes', Buffer.from('30820000deadbeef', 'hex')],
    ['truncated', good.subarray(0, good.length - 10)],
    ['trailing bytes', Buffer.concat([good, Buffer.from([0])])],
    ['a certificate PEM', '-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n'],
    ['broken PEM body', '-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n'],
    ['two elements', seq(...children(readWhole(good, Tag.SEQUENCE).value).slice(0, 2).map((c) => c.raw))],
  ];
  for (const [what, input] of inputs) {
    let code: string | undefined;
    try {
      await readVerifiedCsr(input);
    } catch (e) {
      code = (e as { code?: string }).code;
    }
    t.equal(code, CSR_MALFORMED, what);
  }
});
