// The YQ1 scheme as a pure module: header parsing, the canonical string, body hashes, and a
// client-side signature that the appliance's verifier (and OpenSSL's SM2 with the default ID) accepts.
import t from 'tap';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  YQ1_SCHEMES,
  bodyHashHex,
  canonicalString,
  formatAuthorization,
  parseAuthorization,
  schemeForAlgorithm,
  signRequest,
} from '../../appliance/src/http/yq1-scheme.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import { verifySignature } from '../../appliance/src/crypto/verify.js';

const SIG = Buffer.from('3045022100' + 'ab'.repeat(32) + '0220' + 'cd'.repeat(32), 'hex').toString('base64');
const GOOD = `YQ1-SM2-SM3 app=01HZXAPP,ts=1700000000123,nonce=0123456789abcdef0123456789abcdef,sig=${SIG}`;

function reason(header: string): string {
  const r = parseAuthorization(header);
  if (r.ok) throw new Error(`expected "${header}" to be rejected`);
  return r.reason;
}

t.test('parseAuthorization reads a well-formed header', async (t) => {
  const r = parseAuthorization(GOOD);
  t.ok(r.ok);
  if (!r.ok) return;
  t.equal(r.auth.scheme, 'YQ1-SM2-SM3');
  t.equal(r.auth.appId, '01HZXAPP');
  t.equal(r.auth.ts, 1700000000123);
  t.equal(r.auth.nonce, '0123456789abcdef0123456789abcdef');
  t.equal(r.auth.signature.toString('base64'), SIG);
  t.equal(formatAuthorization(r.auth), GOOD, 'formats back to the same header');
});

t.test('parseAuthorization tolerates spaces, quoted values, parameter order and scheme case', async (t) => {
  const r = parseAuthorization(`yq1-ecdsa-sha256  sig="${SIG}" , nonce=${'F'.repeat(64)},  ts=0 ,app=a.b_c-d`);
  t.ok(r.ok);
  if (!r.ok) return;
  t.equal(r.auth.scheme, 'YQ1-ECDSA-SHA256');
  t.equal(r.auth.ts, 0);
  t.equal(r.auth.nonce, 'F'.repeat(64));
  t.equal(r.auth.appId, 'a.b_c-d');
});

t.test('parseAuthorization rejects each malformation with a reason', async (t) => {
  const nonce = '0123456789abcdef';
  const base = (over: Record<string, string | undefined>, scheme = 'YQ1-SM2-SM3'): string => {
    const p: Record<string, string | undefined> = { app: 'app1', ts: '1700000000000', nonce, sig: SIG, ...over };
    return `${scheme} ${Object.entries(p)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${v}`)
      .join(',')}`;
  };
  t.ok(parseAuthorization(base({})).ok, 'the base header itself parses');
  t.match(reason('Bearer abc.def'), /unknown scheme "Bearer"/);
  t.match(reason('YQ1-RSA-SHA256 app=a,ts=1,nonce=x,sig=y'), /unknown scheme/);
  t.match(reason('YQ1-SM2-SM3'), /expected "<scheme> app=/);
  t.match(reason(base({ app: undefined })), /missing parameter "app"/);
  t.match(reason(base({ sig: undefined })), /missing parameter "sig"/);
  t.match(reason(`${base({})},nonce=${nonce}`), /duplicate parameter "nonce"/);
  t.match(reason(`${base({})},APP=x`), /duplicate parameter "app"/);
  t.match(reason(`${base({})},extra=1`), /unknown parameter "extra"/);
  t.match(reason(`${base({})},`), /is not name=value/);
  t.match(reason(base({ app: '' })), /"app" is empty/);
  t.match(reason(base({ app: 'a/b' })), /app must be/);
  t.match(reason(base({ nonce: '0123456789abcde' })), /nonce must be 16–64 hexadecimal/, '15 hex chars');
  t.match(reason(base({ nonce: 'a'.repeat(65) })), /nonce must be 16–64 hexadecimal/, '65 hex chars');
  t.match(reason(base({ nonce: 'g123456789abcdef' })), /nonce must be 16–64 hexadecimal/, 'not hex');
  t.match(reason(base({ ts: '1700000000000.5' })), /ts must be a non-negative integer/);
  t.match(reason(base({ ts: '-1700000000000' })), /ts must be a non-negative integer/);
  t.match(reason(base({ ts: '01700000000000' })), /ts must be a non-negative integer/, 'leading zero');
  t.match(reason(base({ ts: '1.7e12' })), /ts must be a non-negative integer/);
  t.match(reason(base({ ts: '99999999999999999' })), /ts must be a non-negative integer/, 'beyond 2^53');
  t.match(reason(base({ sig: 'not base64!' })), /standard base64/);
  t.ok(SIG.endsWith('='), 'the sample signature needs padding');
  t.match(reason(base({ sig: SIG.replace(/=+$/, '') })), /standard base64/, 'unpadded');
  t.match(reason(base({ sig: '-_-_' + SIG.slice(4) })), /standard base64/, 'url-safe alphabet');
  t.match(reason(base({ sig: SIG.slice(0, -2) + 'B=' })), /not canonical base64/, 'non-zero padding bits');
  t.match(reason(base({ sig: 'QUJD' })), /implausible length/);
  t.match(reason(`YQ1-SM2-SM3 ${'x'.repeat(2000)}`), /longer than 1024/);
});

t.test('canonicalString is exactly the documented layout', async (t) => {
  const s = canonicalString('POST', '/api/v1/sign?mode=raw&x=%2F', 1700000000123, 'abcdef0123456789', 'e3b0');
  t.equal(s, 'YQ1\nPOST\n/api/v1/sign?mode=raw&x=%2F\n1700000000123\nabcdef0123456789\ne3b0');
  t.equal(canonicalString('GET', '/a', '5', 'n', 'h'), 'YQ1\nGET\n/a\n5\nn\nh', 'ts may be given as text');
});

t.test('body hashes: SM3 for SM2 apps, SHA-256 for ECDSA apps, empty body hashes the empty string', async (t) => {
  t.equal(bodyHashHex('YQ1-SM2-SM3', Buffer.from('abc')), '66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0', 'GB/T 32905 vector');
  t.equal(bodyHashHex('YQ1-ECDSA-SHA256', Buffer.alloc(0)), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  t.equal(bodyHashHex('YQ1-SM2-SM3', Buffer.alloc(0)), createHash('sm3').update('').digest('hex'));
  t.same(YQ1_SCHEMES, ['YQ1-SM2-SM3', 'YQ1-ECDSA-SHA256']);
  t.equal(schemeForAlgorithm('sm2'), 'YQ1-SM2-SM3');
  t.equal(schemeForAlgorithm('ecdsa-p256'), 'YQ1-ECDSA-SHA256');
  t.equal(schemeForAlgorithm('rsa-2048'), undefined);
  t.equal(schemeForAlgorithm('toString'), undefined, 'no prototype keys');
});

function pemKeys(curve: 'SM2' | 'prime256v1'): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
  return {
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
  };
}

for (const [curve, scheme, dgst, sigopt] of [
  ['SM2', 'YQ1-SM2-SM3', '-sm3', ['-sigopt', 'distid:1234567812345678']],
  ['prime256v1', 'YQ1-ECDSA-SHA256', '-sha256', []],
] as const) {
  t.test(`signRequest (${scheme}) signs the canonical string; the verifier and openssl agree`, async (t) => {
    const keys = pemKeys(curve);
    const signer = createSoftwareSigner(keys.privatePem);
    const body = Buffer.from('{"hello":"世界"}');
    const header = await signRequest(signer, 'app-1', 'POST', '/api/v1/x?y=1', body, 1700000000000, 'ab'.repeat(16));
    const parsed = parseAuthorization(header);
    t.ok(parsed.ok, header);
    if (!parsed.ok) return;
    t.equal(parsed.auth.scheme, scheme);
    t.equal(parsed.auth.ts, 1700000000000);
    t.equal(parsed.auth.nonce, 'ab'.repeat(16));
    const tbs = Buffer.from(canonicalString('POST', '/api/v1/x?y=1', 1700000000000, 'ab'.repeat(16), bodyHashHex(scheme, body)));
    t.equal(await verifySignature(signer.algorithm, signer.publicKeyInfo, tbs, parsed.auth.signature), true, 'appliance verifier accepts');
    const other = Buffer.from(canonicalString('POST', '/api/v1/x?y=2', 1700000000000, 'ab'.repeat(16), bodyHashHex(scheme, body)));
    t.equal(await verifySignature(signer.algorithm, signer.publicKeyInfo, other, parsed.auth.signature), false, 'another path does not verify');

    // An independent verifier: the openssl CLI (SM2 with the standard default ID).
    const dir = mkdtempSync(join(tmpdir(), 'yq-yq1-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'pub.pem'), keys.publicPem);
    writeFileSync(join(dir, 'tbs'), tbs);
    writeFileSync(join(dir, 'sig'), parsed.auth.signature);
    const out = execFileSync('openssl', ['dgst', dgst, '-verify', join(dir, 'pub.pem'), ...sigopt, '-signature', join(dir, 'sig'), join(dir, 'tbs')]).toString();
    t.match(out, /Verified OK/);
  });
}

t.test('signRequest refuses keys YQ1 has no scheme for', async (t) => {
  const signer = { algorithm: 'rsa-2048' as const, publicKeyInfo: Buffer.alloc(0), sign: async () => Buffer.alloc(0) };
  await t.rejects(signRequest(signer, 'a', 'GET', '/', undefined), { code: 'UNSUPPORTED_ALGORITHM' });
});
