// The signing service (signing/sign-service.ts) over real SoftHSM2 custody keys with
// certificates of the appliance CA (makePkiFixture) and the real TSA in process: raw SM2 (default
// and given ID, digest e), ECDSA P-256/P-384 and RSA PKCS#1 / PSS over data and digests, each
// checked by the independent verifier of crypto/verify.ts; CMS in both forms; CAdES-T with the
// token's imprint over the signature value; addSignatureTimestamp on an existing CMS; and every
// refusal with its code, including the held keys' own (not granted, access code).
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import { parseSignedData, OID_SIGNATURE_TIME_STAMP_TOKEN } from '../../appliance/src/asn1/cms-signed-data.js';
import { parseTimeStampResp, timeStampGranted } from '../../appliance/src/asn1/tsp.js';
import type { KeyAlgorithm } from '../../appliance/src/crypto/interfaces.js';
import { sm2Digest } from '../../appliance/src/crypto/sm2.js';
import { verifySignature } from '../../appliance/src/crypto/verify.js';
import { YiqianError } from '../../appliance/src/errors.js';
import { addSignatureTimestamp } from '../../appliance/src/signing/cades-t.js';
import { signCms } from '../../appliance/src/signing/cms-sign.js';
import { verifyCms } from '../../appliance/src/signing/cms-verify.js';
import { createSigningService } from '../../appliance/src/signing/sign-service.js';
import { createAppService } from '../../appliance/src/identity/app-service.js';
import { createHeldKeys, type HeldKeyAdmin } from '../../appliance/src/signing/held-keys.js';
import type { HeldKeyForUse } from '../../appliance/src/signing/types.js';
import { TsaService } from '../../appliance/src/tsa/tsa-service.js';
import type { ClockGateResult } from '../../firmware-bridge/timesource/clock-gate.js';
import { makePkiFixture, type PkiFixture } from '../helpers/pki-hierarchy.js';

let APP = '';
let OTHER_APP = '';
const DATA = Buffer.from('处方 RX-2026-11-23-0042：阿莫西林 0.5 g tid × 5 d', 'utf8');

/** Real held keys (signing/held-keys.ts) over the fixture: one key per algorithm, granted to APP only. */
async function fixtureHeldKeys(fx: PkiFixture, algorithms: KeyAlgorithm[]): Promise<{ heldKeys: HeldKeyAdmin; byAlg: Record<string, HeldKeyForUse>; app: string; otherApp: string }> {
  const apps = createAppService(fx.store);
  const app = (await apps.create({ name: 'HIS', actor: 'test' })).app.id;
  const otherApp = (await apps.create({ name: 'LIS', actor: 'test' })).app.id;
  const heldKeys = createHeldKeys({
    keys: fx.store.heldKeys, apps: fx.store.apps, certs: fx.store.certs, certificates: fx.pki.certificates,
    authorities: fx.pki.authorities, custody: fx.custody, audit: fx.store.audit, accessCodeIterations: 1000,
  });
  const byAlg: Record<string, HeldKeyForUse> = {};
  for (const algorithm of algorithms) {
    await heldKeys.create({ label: `held-${algorithm}`, kind: 'organisation', algorithm, commonName: `测试医院 ${algorithm} 签名`, grants: [app] }, 'test');
    byAlg[algorithm] = await heldKeys.forUse(`held-${algorithm}`, app);
  }
  return { heldKeys, byAlg, app, otherApp };
}

async function rejects(t: Test, p: Promise<unknown>, code: string, status: number, what: string): Promise<void> {
  try {
    await p;
    t.fail(`${what}: resolved, expected ${code}`);
  } catch (e) {
    t.ok(e instanceof YiqianError, `${what}: a YiqianError (${String(e)})`);
    t.equal((e as YiqianError).code, code, `${what}: ${code}`);
    t.equal((e as YiqianError).status, status, `${what}: ${status}`);
  }
}

let gateState: ClockGateResult = { ok: true, time: new Date(), accuracyMicros: 1000, state: 'SYNCED', source: 'test', development: false, notice: null };
const gate = { check: (): ClockGateResult => (gateState.ok ? { ...gateState, time: new Date() } : gateState) };

t.test('signing service', async (t) => {
  const fx = await makePkiFixture();
  t.teardown(() => fx.close());
  const held = await fixtureHeldKeys(fx, ['sm2', 'ecdsa-p256', 'ecdsa-p384', 'rsa-2048']);
  APP = held.app;
  OTHER_APP = held.otherApp;
  const tsa = new TsaService({ certs: fx.store.certs, custody: fx.custody, tokens: fx.store.tsaTokens, gate, policies: { policies: [{ oid: '1.2.3.4.5' }] } });
  const svc = createSigningService({ heldKeys: held.heldKeys, stamper: tsa });
  const spki = (alg: string) => held.byAlg[alg].signer.publicKeyInfo;

  await t.test('raw SM2: default ID, given ID, digest e', async (t) => {
    const r = await svc.signRaw(APP, { key: 'held-sm2', data: DATA });
    t.equal(r.algorithm, 'SM2-SM3');
    t.equal(r.key.certSerial, held.byAlg.sm2.key.certSerial);
    t.ok(r.certificate.equals(held.byAlg.sm2.certificate));
    t.ok(await verifySignature('sm2', spki('sm2'), DATA, r.signature), 'verifies with the default ID');
    t.notOk(await verifySignature('sm2', spki('sm2'), DATA, r.signature, { sm2Id: Buffer.from('ALICE123@YAHOO.COM') }), 'not with another ID');
    const id = Buffer.from('doctor-0042@hospital.cn');
    const r2 = await svc.signRaw(APP, { key: held.byAlg.sm2.key.id, data: DATA, sm2Id: id });
    t.ok(await verifySignature('sm2', spki('sm2'), DATA, r2.signature, { sm2Id: id }), 'given ID, key by id');
    t.notOk(await verifySignature('sm2', spki('sm2'), DATA, r2.signature), 'not with the default ID');
    const e = sm2Digest(spki('sm2'), DATA);
    const r3 = await svc.signRaw(APP, { key: 'held-sm2', digest: e });
    t.ok(await verifySignature('sm2', spki('sm2'), DATA, r3.signature), 'digest e = SM3(Z_A‖M) signs M');
  });

  await t.test('raw ECDSA and RSA over data and digests', async (t) => {
    const cases: { alg: KeyAlgorithm; req: Record<string, unknown>; name: string; hash: 'sha256' | 'sha384' | 'sha512'; pss?: boolean }[] = [
      { alg: 'ecdsa-p256', req: {}, name: 'ECDSA-SHA256', hash: 'sha256' },
      { alg: 'ecdsa-p256', req: { hash: 'sha512' }, name: 'ECDSA-SHA512', hash: 'sha512' },
      { alg: 'ecdsa-p384', req: {}, name: 'ECDSA-SHA384', hash: 'sha384' },
      { alg: 'rsa-2048', req: {}, name: 'RSA-PKCS1-SHA256', hash: 'sha256' },
      { alg: 'rsa-2048', req: { rsaPadding: 'pss', hash: 'sha384' }, name: 'RSA-PSS-SHA384', hash: 'sha384', pss: true },
      { alg: 'rsa-2048', req: { rsaPadding: 'pkcs1', hash: 'sha512' }, name: 'RSA-PKCS1-SHA512', hash: 'sha512' },
    ];
    for (const c of cases) {
      const opts = { hash: c.hash, ...(c.pss ? { rsaPadding: 'pss' as const } : {}) };
      const r = await svc.signRaw(APP, { key: `held-${c.alg}`, data: DATA, ...c.req });
      t.equal(r.algorithm, c.name, `${c.alg} data → ${c.name}`);
      t.ok(await verifySignature(c.alg, spki(c.alg), DATA, r.signature, opts), `${c.name} over data verifies`);
      const digest = createHash(c.hash).update(DATA).digest();
      const d = await svc.signRaw(APP, { key: `held-${c.alg}`, digest, ...c.req });
      t.equal(d.algorithm, c.name);
      t.ok(await verifySignature(c.alg, spki(c.alg), DATA, d.signature, opts), `${c.name} over the digest verifies against the data`);
    }
    const byLength = await svc.signRaw(APP, { key: 'held-ecdsa-p256', digest: createHash('sha384').update(DATA).digest() });
    t.equal(byLength.algorithm, 'ECDSA-SHA384', 'a digest without hash: its length names the hash');
  });

  await t.test('raw: bad input, each with its code', async (t) => {
    const e32 = Buffer.alloc(32, 1);
    await rejects(t, svc.signRaw(APP, { key: 'held-sm2' }), 'SIGN_INPUT_INVALID', 400, 'neither data nor digest');
    await rejects(t, svc.signRaw(APP, { key: 'held-sm2', data: DATA, digest: e32 }), 'SIGN_INPUT_INVALID', 400, 'both data and digest');
    await rejects(t, svc.signRaw(APP, { key: '', data: DATA }), 'SIGN_INPUT_INVALID', 400, 'empty key');
    await rejects(t, svc.signRaw(APP, { key: 'held-sm2', data: 'text' as unknown as Buffer }), 'SIGN_INPUT_INVALID', 400, 'data not bytes');
    await rejects(t, svc.signRaw(APP, { key: 'held-sm2', digest: e32, sm2Id: Buffer.from('x') }), 'SIGN_INPUT_INVALID', 400, 'sm2Id with a digest');
    await rejects(t, svc.signRaw(APP, { key: 'held-sm2', data: DATA, sm2Id: Buffer.alloc(0) }), 'SIGN_INPUT_INVALID', 400, 'empty sm2Id');
    await rejects(t, svc.signRaw(APP, { key: 'held-sm2', data: DATA, sm2Id: Buffer.alloc(1025, 0x41) }), 'SIGN_INPUT_INVALID', 400, 'sm2Id of 1025 bytes');
    await rejects(t, svc.signRaw(APP, { key: 'held-sm2', digest: Buffer.alloc(31) }), 'DIGEST_LENGTH_INVALID', 400, 'SM2 digest of 31 bytes');
    await rejects(t, svc.signRaw(APP, { key: 'held-sm2', digest: Buffer.alloc(48) }), 'DIGEST_LENGTH_INVALID', 400, 'SM2 digest of 48 bytes');
    await rejects(t, svc.signRaw(APP, { key: 'held-ecdsa-p256', digest: e32, hash: 'sha384' }), 'DIGEST_LENGTH_INVALID', 400, 'sha384 digest of 32 bytes');
    await rejects(t, svc.signRaw(APP, { key: 'held-rsa-2048', digest: Buffer.alloc(20) }), 'DIGEST_LENGTH_INVALID', 400, 'RSA digest of 20 bytes (SHA-1)');
    await rejects(t, svc.signRaw(APP, { key: 'held-sm2', data: DATA, hash: 'sha256' }), 'UNSUPPORTED_ALGORITHM', 400, 'hash with SM2');
    await rejects(t, svc.signRaw(APP, { key: 'held-sm2', data: DATA, rsaPadding: 'pss' }), 'UNSUPPORTED_ALGORITHM', 400, 'rsaPadding with SM2');
    await rejects(t, svc.signRaw(APP, { key: 'held-ecdsa-p256', data: DATA, rsaPadding: 'pss' }), 'UNSUPPORTED_ALGORITHM', 400, 'rsaPadding with ECDSA');
    await rejects(t, svc.signRaw(APP, { key: 'held-ecdsa-p256', data: DATA, sm2Id: Buffer.from('x') }), 'UNSUPPORTED_ALGORITHM', 400, 'sm2Id with ECDSA');
    await rejects(t, svc.signRaw(APP, { key: 'held-rsa-2048', data: DATA, hash: 'md5' as never }), 'UNSUPPORTED_ALGORITHM', 400, 'hash md5');
    await rejects(t, svc.signRaw(APP, { key: 'held-rsa-2048', data: DATA, rsaPadding: 'oaep' as never }), 'UNSUPPORTED_ALGORITHM', 400, 'rsaPadding oaep');
    await rejects(t, svc.signRaw(APP, { key: 'no-such-key', data: DATA }), 'KEY_NOT_FOUND', 404, 'unknown key');
    await rejects(t, svc.signRaw(OTHER_APP, { key: 'held-sm2', data: DATA }), 'KEY_NOT_GRANTED', 403, 'key not granted to the app');
    await rejects(t, svc.signCms(OTHER_APP, { key: 'held-sm2', content: DATA, detached: false }), 'KEY_NOT_GRANTED', 403, 'CMS: key not granted');
  });

  await t.test('access codes pass through to the held keys', async (t) => {
    await held.heldKeys.create({ label: 'held-coded', kind: 'seal', algorithm: 'sm2', commonName: '测试医院电子印章', grants: [APP], accessCode: 'seal-code-2026' }, 'test');
    await rejects(t, svc.signRaw(APP, { key: 'held-coded', data: DATA }), 'ACCESS_CODE_REQUIRED', 403, 'no access code');
    await rejects(t, svc.signRaw(APP, { key: 'held-coded', data: DATA, accessCode: 'wrong-code-2026' }), 'ACCESS_CODE_INVALID', 403, 'wrong access code');
    const r = await svc.signCms(APP, { key: 'held-coded', accessCode: 'seal-code-2026', content: DATA, detached: false });
    t.ok((await verifyCms(r.cms, {})).valid, 'right access code signs');
  });

  await t.test('CMS: forms, attached and detached, chain', async (t) => {
    for (const alg of ['sm2', 'ecdsa-p256', 'ecdsa-p384', 'rsa-2048'] as const) {
      for (const detached of [false, true]) {
        const r = await svc.signCms(APP, { key: `held-${alg}`, content: DATA, detached });
        t.equal(r.form, alg === 'sm2' ? 'gbt35275' : 'rfc5652', `${alg}: default form`);
        const v = await verifyCms(r.cms, detached ? { content: DATA } : {});
        t.ok(v.valid, `${alg} ${detached ? 'detached' : 'attached'}: ${JSON.stringify(v.checks.filter((c) => !c.ok))}`);
        t.equal(v.signer?.serial, held.byAlg[alg].key.certSerial);
        t.equal(v.signingTime?.toISOString(), r.signingTime, 'the signingTime answered is the one signed');
        const p = parseSignedData(r.cms);
        t.equal(p.certificates.length, 1 + held.byAlg[alg].chain.length, 'signer and issuing CA embedded');
        t.equal(p.content === undefined, detached);
        t.same(p.signerInfos[0].unsignedAttrs, [], 'no unsigned attributes without timestamp');
      }
    }
    const rfc = await svc.signCms(APP, { key: 'held-sm2', content: DATA, detached: false, form: 'rfc5652' });
    t.equal(rfc.form, 'rfc5652');
    t.equal(parseSignedData(rfc.cms).signerInfos[0].signatureAlgorithm.oid, '1.2.156.10197.1.501');
    t.equal(parseSignedData((await svc.signCms(APP, { key: 'held-sm2', content: DATA, detached: false })).cms).signerInfos[0].signatureAlgorithm.oid, '1.2.156.10197.1.301.1');
    const noChain = await svc.signCms(APP, { key: 'held-ecdsa-p256', content: DATA, detached: false, includeChain: false });
    t.equal(parseSignedData(noChain.cms).certificates.length, 1, 'includeChain false: the signer certificate only');
    await rejects(t, svc.signCms(APP, { key: 'held-ecdsa-p256', content: DATA, detached: false, form: 'gbt35275' }), 'UNSUPPORTED_ALGORITHM', 400, 'GB/T 35275 form with ECDSA');
    await rejects(t, svc.signCms(APP, { key: 'held-sm2', content: DATA, detached: false, form: 'pkcs7' as never }), 'SIGN_INPUT_INVALID', 400, 'unknown form');
    await rejects(t, svc.signCms(APP, { key: 'held-sm2', detached: false } as never), 'SIGN_INPUT_INVALID', 400, 'no content');
    await rejects(t, svc.signCms(APP, { key: 'held-sm2', content: DATA, detached: 'yes' } as never), 'SIGN_INPUT_INVALID', 400, 'detached not boolean');
  });

  await t.test('CAdES-T: token over the signature value from the matching TSA', async (t) => {
    for (const [alg, hash, sigOid] of [
      ['sm2', 'sm3', '1.2.156.10197.1.301.1'],
      ['ecdsa-p256', 'sha256', '1.2.840.10045.4.3.2'],
      ['rsa-2048', 'sha256', '1.2.840.10045.4.3.2'],
    ] as const) {
      const r = await svc.signCms(APP, { key: `held-${alg}`, content: DATA, detached: true, timestamp: true });
      t.ok(r.timestamp, `${alg}: timestamp reported`);
      const si = parseSignedData(r.cms).signerInfos[0];
      t.equal(si.unsignedAttrs.length, 1);
      t.equal(si.unsignedAttrs[0].type, OID_SIGNATURE_TIME_STAMP_TOKEN, 'id-aa-signatureTimeStampToken');
      const token = Buffer.from(si.unsignedAttrs[0].values[0].raw);
      const tst = parseTimeStampResp(timeStampGranted(token, [])).tstInfo!;
      t.ok(tst.imprint.equals(createHash(hash).update(si.signature).digest()), `${alg}: imprint = ${hash}(signature value)`);
      t.equal(tst.serial, r.timestamp!.serial);
      t.equal(tst.genTime.toISOString(), r.timestamp!.genTime);
      t.equal(parseTimeStampResp(timeStampGranted(token, [])).signer!.signatureAlgorithm, sigOid, `${alg}: token from the ${hash === 'sm3' ? 'SM2' : 'ECDSA'} TSA`);
      t.ok(parseTimeStampResp(timeStampGranted(token, [])).signer!.certificateIncluded, 'the token carries the TSA certificate');
      const rec = await fx.store.tsaTokens.get(r.timestamp!.serial);
      t.equal(rec?.imprint, tst.imprint.toString('hex'), 'the token is on record');
      t.equal(rec?.requester.app, APP);
      const v = await verifyCms(r.cms, { content: DATA });
      t.ok(v.valid, `${alg}: the time-stamped CMS still verifies`);
    }
  });

  await t.test('CAdES-T refused: clock unsynced → TIMESTAMP_UNAVAILABLE, no stamper → TIMESTAMP_UNAVAILABLE', async (t) => {
    const before = await fx.store.tsaTokens.count();
    gateState = { ok: false, reason: 'clock UNSYNCED (test): no source', state: 'UNSYNCED', source: 'test' };
    try {
      await svc.signCms(APP, { key: 'held-sm2', content: DATA, detached: false, timestamp: true });
      t.fail('signed without a time-stamp');
    } catch (e) {
      t.equal((e as YiqianError).code, 'TIMESTAMP_UNAVAILABLE');
      t.equal((e as YiqianError).status, 503);
      t.match((e as YiqianError).detail, { failInfo: 'timeNotAvailable' }, 'says why');
      t.match((e as YiqianError).text.en, /UNSYNCED/);
    }
    const plain = await svc.signCms(APP, { key: 'held-sm2', content: DATA, detached: false });
    t.ok(plain.cms.length > 0, 'without timestamp it still signs');
    gateState = { ok: true, time: new Date(), accuracyMicros: 1000, state: 'SYNCED', source: 'test', development: false, notice: null };
    t.equal(await fx.store.tsaTokens.count(), before, 'no token issued while refused');
    const bare = createSigningService({ heldKeys: held.heldKeys });
    await rejects(t, bare.signCms(APP, { key: 'held-sm2', content: DATA, detached: false, timestamp: true }), 'TIMESTAMP_UNAVAILABLE', 503, 'no TSA');
  });

  await t.test('addSignatureTimestamp on an existing CMS', async (t) => {
    const h = held.byAlg['ecdsa-p256'];
    const cms = await signCms({ signer: h.signer, certificate: h.certificate, chain: h.chain, content: DATA, detached: false, form: 'rfc5652' });
    const out = await addSignatureTimestamp(cms, tsa, APP);
    const si = parseSignedData(out.cms).signerInfos[0];
    t.equal(si.unsignedAttrs[0].type, OID_SIGNATURE_TIME_STAMP_TOKEN);
    t.ok(out.token.equals(Buffer.from(si.unsignedAttrs[0].values[0].raw)));
    t.ok(parseTimeStampResp(timeStampGranted(out.token, [])).tstInfo!.imprint.equals(createHash('sha256').update(si.signature).digest()));
    t.ok((await verifyCms(out.cms, {})).valid, 'still verifies');
    const twice = await addSignatureTimestamp(out.cms, tsa, APP);
    t.equal(parseSignedData(twice.cms).signerInfos[0].unsignedAttrs.length, 2, 'a second stamp joins the first');
    t.ok(out.cms.subarray(0, 2).equals(cms.subarray(0, 2)));
  });

  await t.test('the certificate must be valid at the signing time', async (t) => {
    const future = createSigningService({ heldKeys: held.heldKeys, clock: () => Date.now() + 40 * 365 * 86_400_000 });
    await rejects(t, future.signRaw(APP, { key: 'held-sm2', data: DATA }), 'HELD_KEY_CERT_EXPIRED', 403, 'raw after notAfter');
    await rejects(t, future.signCms(APP, { key: 'held-ecdsa-p256', content: DATA, detached: false }), 'HELD_KEY_CERT_EXPIRED', 403, 'CMS after notAfter');
    const past = createSigningService({ heldKeys: held.heldKeys, clock: () => Date.now() - 86_400_000 });
    await rejects(t, past.signRaw(APP, { key: 'held-rsa-2048', data: DATA }), 'HELD_KEY_CERT_EXPIRED', 403, 'before notBefore');
  });

  await t.test('concurrent signing with one key', async (t) => {
    const rs = await Promise.all(Array.from({ length: 200 }, (_, i) => svc.signRaw(APP, { key: 'held-sm2', data: Buffer.from(`order ${i}`) })));
    const ok = await Promise.all(rs.map((r, i) => verifySignature('sm2', spki('sm2'), Buffer.from(`order ${i}`), r.signature)));
    t.equal(ok.filter(Boolean).length, 200, '200 concurrent SM2 signatures all verify');
  });
});
