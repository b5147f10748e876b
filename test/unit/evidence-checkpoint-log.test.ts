// The checkpoint log (evidence/checkpoint-log.ts) over a real store, SoftHSM2 custody, our CA and
// the appliance's own TSA in process: checkpoints only when the tree grew, signed by the
// 'evidence-log' ECDSA P-256 HSM key (checked with verifyCheckpoint and `openssl dgst`), its
// certificate chaining to our ECDSA root (`openssl verify`), anchored by an SM2 token over SM3 of
// the body (verifyCheckpointToken and BouncyCastle TimeStampToken.validate) or, in the ECDSA-TSA
// variant, by an ECDSA token (`openssl ts -verify`); a refused stamp stores nothing and the next
// round succeeds; consistency between stored checkpoints and inclusion against covering ones
// verify; paging; the signer is made once and reused after a reopen.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { checkpointImprint, noteBody, verifyCheckpoint, verifyCheckpointToken } from '../../appliance/src/evidence/checkpoint.js';
import { CheckpointLogCodes, EVIDENCE_LOG_KEY_LABEL, createCheckpointLog, type EvidenceCheckpointLog } from '../../appliance/src/evidence/checkpoint-log.js';
import { verifyConsistency, verifyInclusion } from '../../appliance/src/evidence/merkle.js';
import { TsaService } from '../../appliance/src/tsa/tsa-service.js';
import type { ClockGateResult } from '../../firmware-bridge/timesource/clock-gate.js';
import { makePkiFixture } from '../helpers/pki-hierarchy.js';
import { rejection } from '../helpers/store-fixture.js';
import { runJavaBatch } from '../helpers/bouncycastle.js';

const ORIGIN = 'yiqian.test-hospital.cn/yiqian/evidence';
const synced = (): ClockGateResult => ({ ok: true, time: new Date(), accuracyMicros: 1000, state: 'SYNCED', source: 'test', development: false, notice: null });
let clockOk = true;
const gate = {
  check: (): ClockGateResult => (clockOk ? synced() : { ok: false, state: 'UNSYNCED', reason: 'test: clock unsynchronised', source: 'test' }),
};

const pem = (label: string, der: Buffer) => `-----BEGIN ${label}-----\n${(der.toString('base64').match(/.{1,64}/g) ?? []).join('\n')}\n-----END ${label}-----\n`;

function run(cmd: string, args: string[], cwd: string): { ok: boolean; out: string } {
  try {
    return { ok: true, out: execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    return { ok: false, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

/** A TimeStampResp (RFC 3161 §2.4.2) around a token: status granted (0), for tools that read replies. */
function grantedReply(token: Buffer): Buffer {
  const status = Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00]);
  const body = Buffer.concat([status, token]);
  const len = body.length < 0x80 ? Buffer.from([body.length]) : body.length < 0x100 ? Buffer.from([0x81, body.length]) : Buffer.from([0x82, body.length >> 8, body.length & 0xff]);
  return Buffer.concat([Buffer.from([0x30]), len, body]);
}

t.test('checkpoint log', async (t) => {
  const fx = await makePkiFixture();
  t.teardown(() => fx.close());
  const w = mkdtempSync(join(tmpdir(), 'yq-ckptlog-'));
  t.teardown(() => rmSync(w, { recursive: true, force: true }));
  const tsa = new TsaService({ certs: fx.store.certs, custody: fx.custody, tokens: fx.store.tsaTokens, gate, policies: { policies: [{ oid: '1.2.3.4.5' }] } });
  const make = (tsaIdentity?: 'sm2' | 'ecdsa'): EvidenceCheckpointLog =>
    createCheckpointLog({
      checkpoints: fx.store.evidenceCheckpoints,
      merkle: fx.store.merkle,
      meta: fx.store.meta,
      custody: fx.custody,
      certificates: fx.pki.certificates,
      tsa,
      origin: ORIGIN,
      ...(tsaIdentity ? { tsaIdentity } : {}),
    });
  const cpLog = make();
  const caCert = (id: string): Buffer => Buffer.from(fx.created.cas.find((c) => `${c.hierarchy}-${c.role}` === id)!.certificate, 'base64');
  const sm2Trust = { anchors: [caCert('sm2-root')], intermediates: [caCert('sm2-issuing')] };
  const append = async (from: number, n: number) => {
    for (let i = from; i < from + n; i++) await fx.store.merkle.append(Buffer.from(`evidence record ${i}`));
  };

  t.same(await cpLog.checkpointNow(), { made: false, reason: 'empty' }, 'an empty tree gets no checkpoint');
  t.equal(await cpLog.latest(), undefined);

  await append(0, 5);
  const first = await cpLog.checkpointNow();
  if (!first.made) throw new Error('expected a checkpoint');
  const cp5 = first.checkpoint;
  t.equal(cp5.treeSize, 5);
  t.equal(cp5.rootHash, (await fx.store.merkle.root(5)).toString('hex'), 'root of the tree at that size');
  t.same(await fx.store.evidenceCheckpoints.get(5), cp5, 'stored durably under its size');
  t.same(await cpLog.latest(), cp5);

  const keys = (await fx.custody.list()).filter((k) => k.label === EVIDENCE_LOG_KEY_LABEL);
  t.equal(keys.length, 1, 'one evidence-log key');
  t.equal(keys[0].algorithm, 'ecdsa-p256');
  t.equal(keys[0].mode, 'hsm', 'the key lives in the HSM (never extractable)');

  await t.test('the signature: verifyCheckpoint, openssl dgst, certificate chain', async (t) => {
    const cert = new X509Certificate(Buffer.from(cp5.signerCertificate, 'base64'));
    const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
    t.ok(spki.equals(keys[0].publicKeyInfo), 'the certificate is for the evidence-log key');
    const v = await verifyCheckpoint(cp5.note, [{ name: ORIGIN, publicKeyInfo: spki }], ORIGIN);
    t.ok(v.valid, `verifyCheckpoint: ${v.valid ? 'valid' : v.reason}`);
    if (v.valid) {
      t.equal(v.checkpoint.treeSize, 5);
      t.equal(v.checkpoint.rootHash.toString('hex'), cp5.rootHash);
      t.equal(v.checkpoint.time, cp5.time);
    }
    const tampered = cp5.note.replace('\n5\n', '\n6\n');
    const bad = await verifyCheckpoint(tampered, [{ name: ORIGIN, publicKeyInfo: spki }], ORIGIN);
    t.notOk(bad.valid, 'a changed size is refused');
    // Independent check: OpenSSL verifies the ECDSA signature over the body (signed-note line: key ID ‖ DER signature).
    const body = noteBody(cp5.note)!;
    const sigLine = cp5.note.slice(body.length + 1).split('\n')[0];
    const raw = Buffer.from(sigLine.split(' ').pop()!, 'base64');
    writeFileSync(join(w, 'body.txt'), body);
    writeFileSync(join(w, 'sig.der'), raw.subarray(4));
    writeFileSync(join(w, 'pub.pem'), pem('PUBLIC KEY', spki));
    const o = run('openssl', ['dgst', '-sha256', '-verify', 'pub.pem', '-signature', 'sig.der', 'body.txt'], w);
    t.ok(o.ok && /Verified OK/.test(o.out), `openssl dgst: ${o.out.trim()}`);
    writeFileSync(join(w, 'signer.pem'), pem('CERTIFICATE', Buffer.from(cp5.signerCertificate, 'base64')));
    writeFileSync(join(w, 'chain.pem'), cp5.signerChain.map((c) => pem('CERTIFICATE', Buffer.from(c, 'base64'))).join(''));
    writeFileSync(join(w, 'ecdsa-root.pem'), pem('CERTIFICATE', caCert('ecdsa-root')));
    const chain = run('openssl', ['verify', '-CAfile', 'ecdsa-root.pem', '-untrusted', 'chain.pem', 'signer.pem'], w);
    t.ok(chain.ok && /signer.pem: OK/.test(chain.out), `openssl verify: the signer certificate chains to our ECDSA root: ${chain.out.trim()}`);
    t.equal(cp5.signerChain.length, 1, 'chain: the issuing CA, not the root');
  });

  await t.test('the SM2 token: verifyCheckpointToken', async (t) => {
    const body = noteBody(cp5.note)!;
    const token = Buffer.from(cp5.timestampToken, 'base64');
    const v = await verifyCheckpointToken(token, body, sm2Trust);
    t.ok(v.ok, `token verifies: ${v.reason ?? 'ok'}`);
    t.ok(v.genTime && Math.abs(v.genTime.getTime() - Date.parse(cp5.time)) < 60_000, 'genTime near the checkpoint time');
    const other = await verifyCheckpointToken(token, body.replace('\n5\n', '\n4\n'), sm2Trust);
    t.equal(other.imprintOk, false, 'the token is over this body only');
    t.equal(checkpointImprint(body).hashedMessage.length, 32);
  });

  t.same(await cpLog.checkpointNow(), { made: false, reason: 'unchanged', latest: cp5 }, 'no growth, no checkpoint');

  await t.test('a refused stamp: no checkpoint, then the next round makes it', async (t) => {
    await append(5, 3);
    clockOk = false;
    const e = await rejection(cpLog.checkpointNow());
    t.equal(e.code, CheckpointLogCodes.CHECKPOINT_TIMESTAMP_REFUSED);
    t.equal(e.status, 503);
    t.equal(e.detail?.failInfo, 'timeNotAvailable');
    t.equal(await fx.store.evidenceCheckpoints.get(8), undefined, 'nothing stored without a token');
    t.equal((await cpLog.latest())?.treeSize, 5);
    clockOk = true;
    const again = await cpLog.checkpointNow();
    t.ok(again.made, 'made once the clock is back');
    t.equal((await cpLog.latest())?.treeSize, 8);
  });

  await t.test('overlapping calls share one checkpoint', async (t) => {
    await append(8, 13);
    const [a, b, c] = await Promise.all([cpLog.checkpointNow(), cpLog.checkpointNow(), cpLog.checkpointNow()]);
    t.ok(a.made);
    t.same(b, a);
    t.same(c, a);
    t.equal(await fx.store.evidenceCheckpoints.count(), 3, 'checkpoints of sizes 5, 8, 21');
  });

  await t.test('consistency between checkpoints and inclusion against covering ones', async (t) => {
    const h = fx.store.merkle.hasher;
    const sizes = [5, 8, 21];
    const cps = await Promise.all(sizes.map(async (s) => (await cpLog.get(s))!));
    for (let i = 0; i < sizes.length; i++) {
      for (let j = i; j < sizes.length; j++) {
        const proof = await fx.store.merkle.consistency(sizes[i], sizes[j]);
        t.ok(verifyConsistency(h, sizes[i], sizes[j], Buffer.from(cps[i].rootHash, 'hex'), Buffer.from(cps[j].rootHash, 'hex'), proof), `consistent ${sizes[i]} → ${sizes[j]}`);
      }
    }
    t.notOk(verifyConsistency(h, 5, 21, Buffer.from(cps[1].rootHash, 'hex'), Buffer.from(cps[2].rootHash, 'hex'), await fx.store.merkle.consistency(5, 21)), 'a wrong old root fails');
    for (const [leaf, expected] of [[0, 5], [4, 5], [5, 8], [7, 8], [8, 21], [20, 21]] as const) {
      const c = await cpLog.covering(leaf);
      t.equal(c?.treeSize, expected, `leaf ${leaf} is first covered by checkpoint ${expected}`);
      const leafHash = (await fx.store.merkle.leafHash(leaf))!;
      t.ok(verifyInclusion(h, leafHash, leaf, c!.treeSize, await fx.store.merkle.inclusion(leaf, c!.treeSize), Buffer.from(c!.rootHash, 'hex')), `leaf ${leaf} included in ${expected}`);
    }
    t.equal(await cpLog.covering(21), undefined, 'no checkpoint covers a leaf beyond the latest');
  });

  await t.test('paging, newest first', async (t) => {
    const p1 = await cpLog.list({ limit: 2 });
    t.same(p1.items.map((c) => c.treeSize), [21, 8]);
    t.equal(p1.next, '8');
    const p2 = await cpLog.list({ limit: 2, cursor: p1.next });
    t.same(p2.items.map((c) => c.treeSize), [5]);
    t.equal(p2.next, undefined);
    t.same((await cpLog.list()).items.map((c) => c.treeSize), [21, 8, 5], 'default page');
    for (const bad of [{ limit: 0 }, { limit: 1000 }, { cursor: 'x' }, { cursor: '05' }]) {
      t.equal((await rejection(cpLog.list(bad))).code, CheckpointLogCodes.CHECKPOINT_PAGE_INVALID, `refused: ${JSON.stringify(bad)}`);
    }
  });

  await t.test('BouncyCastle: TimeStampToken.validate on the checkpoint tokens', async (t) => {
    const files: string[] = [];
    for (const s of [5, 8, 21]) {
      const cp = (await cpLog.get(s))!;
      writeFileSync(join(w, `cp${s}.tsr`), grantedReply(Buffer.from(cp.timestampToken, 'base64')));
      writeFileSync(join(w, `cp${s}.txt`), noteBody(cp.note)!);
      files.push(`cp${s}`);
    }
    // The SM2 TSA certificate, from the token itself (certReq TRUE).
    const tokenCerts = execFileSync('openssl', ['pkcs7', '-inform', 'DER', '-print_certs'], { input: Buffer.from((await cpLog.get(5))!.timestampToken, 'base64') }).toString();
    writeFileSync(join(w, 'tsa-sm2.pem'), tokenCerts);
    writeFileSync(join(w, 'sm2-issuing.pem'), pem('CERTIFICATE', caCert('sm2-issuing')));
    writeFileSync(join(w, 'sm2-root.pem'), pem('CERTIFICATE', caCert('sm2-root')));
    const line = (tsr: string, data: string) => `token ${join(w, `${tsr}.tsr`)} ${join(w, `${data}.txt`)} ${join(w, 'tsa-sm2.pem')} ${join(w, 'sm2-issuing.pem')} ${join(w, 'sm2-root.pem')}`;
    const out = await runJavaBatch('TsaInterop', [...files.map((f) => line(f, f)), line('cp5', 'cp8')]);
    for (let i = 0; i < files.length; i++) {
      t.match(out[i], /^ok alg=1\.2\.156\.10197\.1\.301\.1 digest=1\.2\.156\.10197\.1\.401 .* imprintMatches=true pkix=valid$/, `${files[i]}: ${out[i]}`);
    }
    t.match(out[files.length], /imprintMatches=false/, `a token over another checkpoint: ${out[files.length]}`);
  });

  await t.test('ECDSA-TSA variant: openssl ts -verify', async (t) => {
    await append(21, 2);
    const ecLog = make('ecdsa');
    const r = await ecLog.checkpointNow();
    if (!r.made) throw new Error('expected a checkpoint');
    const body = noteBody(r.checkpoint.note)!;
    writeFileSync(join(w, 'ec.tok'), Buffer.from(r.checkpoint.timestampToken, 'base64'));
    writeFileSync(join(w, 'ec-body.txt'), body);
    writeFileSync(join(w, 'ec-other.txt'), body.replace('\n23\n', '\n22\n'));
    const tsaCerts = run('openssl', ['pkcs7', '-inform', 'DER', '-in', 'ec.tok', '-print_certs'], w).out;
    writeFileSync(join(w, 'ec-untrusted.pem'), tsaCerts + pem('CERTIFICATE', caCert('ecdsa-issuing')));
    const args = (data: string) => ['ts', '-verify', '-token_in', '-in', 'ec.tok', '-data', data, '-CAfile', 'ecdsa-root.pem', '-untrusted', 'ec-untrusted.pem'];
    const ok = run('openssl', args('ec-body.txt'), w);
    t.ok(ok.ok && /Verification: OK/.test(ok.out), `openssl ts -verify: ${ok.out.trim()}`);
    t.notOk(run('openssl', args('ec-other.txt'), w).ok, 'openssl ts: another checkpoint body fails');
    t.equal(r.checkpoint.note.split('\n')[0], ORIGIN, 'same origin, same signer');
  });

  await t.test('a new log over the same store reuses its signer', async (t) => {
    const again = createCheckpointLog({
      checkpoints: fx.store.evidenceCheckpoints,
      merkle: fx.store.merkle,
      meta: fx.store.meta,
      custody: fx.custody,
      certificates: fx.pki.certificates,
      tsa,
      origin: 'another.origin/ignored',
    });
    const s = await again.signer();
    t.equal(s.origin, ORIGIN, 'the origin fixed at first use');
    t.ok(s.certificate.equals(Buffer.from(cp5.signerCertificate, 'base64')), 'the same certificate');
    t.equal((await fx.custody.list()).filter((k) => k.label === EVIDENCE_LOG_KEY_LABEL).length, 1, 'no second key');
  });
});
