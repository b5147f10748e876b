// Signed download URLs (evidence/signed-url.ts) over a real store and a SoftHSM2 custody: the
// tag recomputed with `openssl mac` from the key the HSM unwraps, the key kept only wrapped and
// shared by every signer of the same store, expiry and each kind of tampering refused with 403.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestToken } from '../helpers/softhsm.js';
import { openPkcs11Custody, type Pkcs11Custody } from '../../firmware-bridge/pkcs11/pkcs11-custody.js';
import { createSm2Signer, generateSm2KeyPair, sm2Digest, sm2SpkiFromPublicKey } from '../../appliance/src/crypto/sm2.js';
import { openStore, type Store } from '../../appliance/src/store/open-store.js';
import { newId } from '../../appliance/src/store/ids.js';
import { DOWNLOAD_URL_KEY, DownloadUrlCodes, createDownloadUrlSigner } from '../../appliance/src/evidence/signed-url.js';

const token = makeTestToken();
const dataDir = mkdtempSync(join(tmpdir(), 'yq-dlurl-'));
let store: Store;
let custody: Pkcs11Custody;

t.before(async () => {
  store = await openStore(dataDir);
  custody = await openPkcs11Custody(
    {
      module: token.module,
      tokenLabel: token.label,
      pin: token.pin,
      softwareSm2: { generate: generateSm2KeyPair, signer: (d) => createSm2Signer(d), spki: sm2SpkiFromPublicKey, digest: sm2Digest },
    },
    store.keys,
  );
});
t.teardown(async () => {
  await custody.close();
  await store.close();
  rmSync(dataDir, { recursive: true, force: true });
});

function parse(path: string): { id: string; exp: string; sig: string } {
  const u = new URL(path, 'https://appliance.invalid');
  return { id: u.pathname.split('/').pop()!, exp: u.searchParams.get('exp')!, sig: u.searchParams.get('sig')! };
}

t.test('a URL verifies, and its tag is HMAC-SM3 as openssl computes it under the HSM-wrapped key', async (t) => {
  const signer = createDownloadUrlSigner({ meta: store.meta, wrapper: custody, ttlSeconds: 300 });
  const id = newId();
  const now = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
  const url = await signer.sign(id, now);
  t.match(url.path, new RegExp(`^/evidence/download/${id}\\?exp=\\d+&sig=[0-9a-f]{64}$`));
  const p = parse(url.path);
  t.equal(Number(p.exp), Math.ceil(now / 1000) + 300, 'exp = now + ttl, whole seconds rounded up');
  t.equal(url.expiresAt, new Date(Number(p.exp) * 1000).toISOString());
  t.equal(await signer.verify(p.id, { exp: p.exp, sig: p.sig }, now), id);

  const stored = (await store.meta.get<{ wrapped: string; wrappedBy: string; alg: string }>(DOWNLOAD_URL_KEY))!;
  t.equal(stored.wrappedBy, 'hsm-kek');
  t.equal(stored.alg, 'hmac-sm3');
  const key = await custody.unwrapSecret(Buffer.from(stored.wrapped, 'base64'));
  t.equal(key.length, 32);
  t.equal(Buffer.from(stored.wrapped, 'base64').indexOf(key), -1, 'the stored form does not contain the key');
  const message = `yiqian-evidence-download-v1\n${id}\n${p.exp}`;
  const mac = execFileSync('openssl', ['mac', '-digest', 'SM3', '-macopt', `hexkey:${key.toString('hex')}`, 'HMAC'], { input: message, encoding: 'utf8' }).trim().toLowerCase();
  t.equal(mac, p.sig, 'openssl mac HMAC SM3 agrees');

  const other = createDownloadUrlSigner({ meta: store.meta, wrapper: custody, ttlSeconds: 60 });
  t.equal(await other.verify(p.id, { exp: p.exp, sig: p.sig }, now), id, 'another signer (process) over the same store accepts it');
});

t.test('expired → DOWNLOAD_URL_EXPIRED; any change → DOWNLOAD_URL_INVALID, even when also expired', async (t) => {
  const signer = createDownloadUrlSigner({ meta: store.meta, wrapper: custody, ttlSeconds: 300 });
  const id = newId();
  const now = Date.now();
  const p = parse((await signer.sign(id, now)).path);
  const exp = Number(p.exp) * 1000;
  t.equal(await signer.verify(id, p, exp - 1), id, 'valid until the last millisecond');
  await t.rejects(signer.verify(id, p, exp), { code: DownloadUrlCodes.DOWNLOAD_URL_EXPIRED, status: 403 });

  const flip = (hex: string): string => (hex[0] === '0' ? '1' : '0') + hex.slice(1);
  const cases: [string, string, Record<string, unknown>][] = [
    ['another record id', newId(), p],
    ['a later exp', id, { ...p, exp: String(Number(p.exp) + 3600) }],
    ['one changed tag digit', id, { ...p, sig: flip(p.sig) }],
    ['upper-case tag', id, { ...p, sig: p.sig.toUpperCase() }],
    ['no tag', id, { exp: p.exp }],
    ['no exp', id, { sig: p.sig }],
    ['exp twice', id, { ...p, exp: [p.exp, p.exp] }],
    ['exp not a number', id, { ...p, exp: '1e12' }],
    ['record id not a ULID', '../../etc/passwd', p],
  ];
  for (const [what, rid, q] of cases) {
    await t.rejects(signer.verify(rid, q, now), { code: DownloadUrlCodes.DOWNLOAD_URL_INVALID, status: 403 }, what);
  }
  await t.rejects(signer.verify(id, { ...p, exp: String(Number(p.exp) - 1000) }, exp + 10_000), { code: DownloadUrlCodes.DOWNLOAD_URL_INVALID }, 'expired and tampered: INVALID');
});

t.test('without a SecretWrapper no URL is made', async (t) => {
  const signer = createDownloadUrlSigner({ meta: store.meta, wrapper: undefined, ttlSeconds: 300 });
  await t.rejects(signer.sign(newId()), { code: DownloadUrlCodes.DOWNLOAD_KEY_UNAVAILABLE, status: 503 });
});
