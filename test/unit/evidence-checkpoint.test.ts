// Signed checkpoints (evidence/checkpoint.ts): C2SP signed-note / tlog-checkpoint text signed by
// SM2, ECDSA and RSA keys; the signatures checked by independent peers (sm-crypto for SM2, the
// OpenSSL CLI for ECDSA and RSA); the signed-note rules (unknown keys ignored, a failing known
// key rejects, at least one must verify); every kind of tampering refused without a throw;
// consistency between two verified checkpoints of a growing tree; and RFC 3161 tokens from the
// appliance's own TSA (SoftHSM2 custody) over SM3 of the body, checked here and by `openssl ts`.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import smCrypto from 'sm-crypto';
import {
  CheckpointCodes,
  checkpointBody,
  checkpointImprint,
  checkpointKeyId,
  noteBody,
  parseCheckpointBody,
  signCheckpoint,
  verifyCheckpoint,
  verifyCheckpointToken,
  type Checkpoint,
} from '../../appliance/src/evidence/checkpoint.js';
import { MemoryTree, merkleHasher, verifyConsistency, verifyInclusion } from '../../appliance/src/evidence/merkle.js';
import { createSoftwareSigner } from '../../appliance/src/crypto/software-signer.js';
import { createSm2Signer, generateSm2KeyPair } from '../../appliance/src/crypto/sm2.js';
import type { Signer } from '../../appliance/src/crypto/interfaces.js';
import { isYiqianError } from '../../appliance/src/errors.js';
import { TsaService } from '../../appliance/src/tsa/tsa-service.js';
import { makePkiFixture } from '../helpers/pki-hierarchy.js';

const ORIGIN = 'yiqian.test-hospital.cn/evidence';
const h = merkleHasher('sm3');

function treeOf(n: number): MemoryTree {
  const tree = new MemoryTree(h);
  for (let i = 0; i < n; i++) tree.append(Buffer.from(`record ${i}`));
  return tree;
}

const checkpointOf = (tree: MemoryTree, size = tree.size, time = '2025-03-04T05:06:07.089Z'): Checkpoint => ({ origin: ORIGIN, treeSize: size, rootHash: tree.root(size), time });
const pem = (label: string, der: Buffer) => `-----BEGIN ${label}-----\n${(der.toString('base64').match(/.{1,64}/g) ?? []).join('\n')}\n-----END ${label}-----\n`;

function workDir(t: { teardown(f: () => void): void }): string {
  const w = mkdtempSync(join(tmpdir(), 'yq-ckpt-'));
  t.teardown(() => rmSync(w, { recursive: true, force: true }));
  return w;
}

function run(cmd: string, args: string[], cwd: string): { ok: boolean; out: string } {
  try {
    return { ok: true, out: execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    return { ok: false, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

const sm2Pair = generateSm2KeyPair();
const sm2: Signer = createSm2Signer(sm2Pair.privateKey);
const ecdsa = createSoftwareSigner(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
const rsa = createSoftwareSigner(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);

t.test('the note: tlog-checkpoint text, signed-note signature line, key ID as signed-note recommends', async (t) => {
  const tree = treeOf(1000);
  const cp = checkpointOf(tree);
  const s = await signCheckpoint(cp, sm2);
  const rootB64 = tree.root().toString('base64');
  t.equal(s.body, `${ORIGIN}\n1000\n${rootB64}\ntime 2025-03-04T05:06:07.089Z\n`, 'origin, size, base64 root, time line');
  t.ok(s.note.startsWith(`${s.body}\n\u2014 ${ORIGIN} `), 'blank line, em dash, key name = origin');
  t.ok(s.note.endsWith('\n'));
  t.equal(noteBody(s.note), s.body);
  const sigB64 = s.note.slice(s.body.length + 1).trim().split(' ')[2];
  const raw = Buffer.from(sigB64, 'base64');
  const wantId = createHash('sha256').update(`${ORIGIN}\n`).update(Buffer.from([0xff])).update('sm2sig_sm3').update(sm2.publicKeyInfo).digest().readUInt32BE(0);
  t.equal(s.keyId, wantId, 'key ID = SHA-256(name ‖ 0x0A ‖ 0xFF ‖ "sm2sig_sm3" ‖ SPKI)[:4]');
  t.equal(raw.readUInt32BE(0), wantId, 'the signature starts with the key ID');
  t.equal(checkpointKeyId(ORIGIN, sm2.publicKeyInfo), wantId);
  t.not(checkpointKeyId('other.name', sm2.publicKeyInfo), wantId, 'the key ID depends on the name');

  // sm-crypto 0.5, an independent SM2: SM3 with Z_A over ID 1234567812345678, DER signature.
  const pubHex = sm2Pair.publicKey.toString('hex');
  t.ok(smCrypto.sm2.doVerifySignature(Array.from(Buffer.from(s.body, 'utf8')), raw.subarray(4).toString('hex'), pubHex, { hash: true, der: true, userId: '1234567812345678' }), 'sm-crypto verifies the SM2 signature over the body');
  t.notOk(smCrypto.sm2.doVerifySignature(Array.from(Buffer.from(s.note, 'utf8')), raw.subarray(4).toString('hex'), pubHex, { hash: true, der: true, userId: '1234567812345678' }), 'and not over the whole note');

  const v = await verifyCheckpoint(s.note, [{ name: ORIGIN, publicKeyInfo: sm2.publicKeyInfo }], ORIGIN);
  t.ok(v.valid, v.valid ? 'verifies' : v.reason);
  if (v.valid) {
    t.same(v.signedBy, [ORIGIN]);
    t.equal(v.checkpoint.treeSize, 1000);
    t.ok(v.checkpoint.rootHash.equals(tree.root()));
    t.equal(v.checkpoint.time, cp.time);
  }
  t.same(parseCheckpointBody(s.body), cp);
});

t.test('ECDSA and RSA checkpoints verify here and with openssl dgst', async (t) => {
  const w = workDir(t);
  const cp = checkpointOf(treeOf(37));
  for (const [name, signer, hash] of [['ecdsa', ecdsa, 'sha256'], ['rsa', rsa, 'sha256']] as const) {
    const s = await signCheckpoint(cp, signer, 'appliance-key');
    const v = await verifyCheckpoint(s.note, [{ name: 'appliance-key', publicKeyInfo: signer.publicKeyInfo }]);
    t.ok(v.valid, `${name}: ${v.valid ? 'verifies' : v.reason}`);
    t.notOk((await verifyCheckpoint(s.note, [{ name: ORIGIN, publicKeyInfo: signer.publicKeyInfo }])).valid, `${name}: key name is part of the identity`);
    writeFileSync(join(w, 'body.txt'), s.body);
    writeFileSync(join(w, 'pub.pem'), pem('PUBLIC KEY', signer.publicKeyInfo));
    writeFileSync(join(w, 'sig.bin'), Buffer.from(s.note.slice(s.body.length + 1).trim().split(' ')[2], 'base64').subarray(4));
    const o = run('openssl', ['dgst', `-${hash}`, '-verify', 'pub.pem', '-signature', 'sig.bin', 'body.txt'], w);
    t.ok(o.ok && /Verified OK/.test(o.out), `${name}: openssl dgst: ${o.out.trim()}`);
    writeFileSync(join(w, 'body.txt'), s.body.replace('\n37\n', '\n38\n'));
    t.notOk(run('openssl', ['dgst', `-${hash}`, '-verify', 'pub.pem', '-signature', 'sig.bin', 'body.txt'], w).ok, `${name}: openssl refuses another size`);
  }
});

t.test('signed-note rules: unknown keys ignored, a failing known key rejects, one must verify', async (t) => {
  const cp = checkpointOf(treeOf(10));
  const a = await signCheckpoint(cp, sm2);
  const b = await signCheckpoint(cp, ecdsa, 'witness.example/w1');
  const both = `${a.body}\n${a.note.slice(a.body.length + 1)}${b.note.slice(b.body.length + 1)}`;
  const kA = { name: ORIGIN, publicKeyInfo: sm2.publicKeyInfo };
  const kB = { name: 'witness.example/w1', publicKeyInfo: ecdsa.publicKeyInfo };
  const vBoth = await verifyCheckpoint(both, [kA, kB]);
  t.same(vBoth.valid && vBoth.signedBy, [ORIGIN, 'witness.example/w1'], 'two signatures, both known');
  t.ok((await verifyCheckpoint(both, [kA])).valid, 'an unknown cosignature is ignored');
  t.notOk((await verifyCheckpoint(a.note, [kB])).valid, 'no known key: refused');
  t.notOk((await verifyCheckpoint(a.note, [])).valid, 'no keys at all: refused');
  t.notOk((await verifyCheckpoint(a.note, [{ name: ORIGIN, publicKeyInfo: ecdsa.publicKeyInfo }])).valid, 'same name, other key (other key ID): ignored, so refused');
  // A known key whose signature fails rejects the note even when another known key verifies.
  const sigB = Buffer.from(b.note.slice(b.body.length + 1).trim().split(' ')[2], 'base64');
  sigB[sigB.length - 5] ^= 1;
  const forged = `${a.body}\n${a.note.slice(a.body.length + 1)}\u2014 witness.example/w1 ${sigB.toString('base64')}\n`;
  const vf = await verifyCheckpoint(forged, [kA, kB]);
  t.notOk(vf.valid, 'one failing known signature rejects the whole note');
  t.match(!vf.valid && vf.reason, /witness.example\/w1 does not verify/);
  const wrongOrigin = await verifyCheckpoint(a.note, [kA], 'other.origin/log');
  t.match(!wrongOrigin.valid && wrongOrigin.reason, /origin/);
});

t.test('tampering and malformed notes are refused with a reason, never a throw', async (t) => {
  const tree = treeOf(64);
  const cp = checkpointOf(tree);
  const s = await signCheckpoint(cp, sm2);
  const keys = [{ name: ORIGIN, publicKeyInfo: sm2.publicKeyInfo }];
  const sigLine = s.note.slice(s.body.length + 1);
  const resign = async (body: string) => {
    // A correctly signed note around a body that is not a checkpoint of this format.
    const sig = await sm2.sign(Buffer.from(body, 'utf8'));
    const id = Buffer.alloc(4);
    id.writeUInt32BE(s.keyId);
    return `${body}\n\u2014 ${ORIGIN} ${Buffer.concat([id, sig]).toString('base64')}\n`;
  };
  const otherRoot = tree.root(63).toString('base64');
  const cases: [string, unknown][] = [
    ['size changed', s.note.replace('\n64\n', '\n65\n')],
    ['root changed', s.note.replace(tree.root().toString('base64'), otherRoot)],
    ['time changed', s.note.replace('07.089Z', '07.090Z')],
    ['origin changed', s.note.replace(ORIGIN, `${ORIGIN}x`)],
    ['signature byte changed', s.body + '\n' + sigLine.replace(/([A-Za-z0-9+/])(={0,2}\n)$/, (_m, c: string, tail: string) => `${c === 'A' ? 'B' : 'A'}${tail}`)],
    ['signature truncated', `${s.body}\n${sigLine.slice(0, 20)}\n`],
    ['ASCII hyphen for the em dash', s.note.replace('\u2014 ', '- ')],
    ['no blank line', s.note.replace('\n\n', '\n')],
    ['no final newline', s.note.slice(0, -1)],
    ['carriage return', s.note.replace(/\n/g, '\r\n')],
    ['control character in the body', s.note.replace(ORIGIN, `${ORIGIN}\u0007`)],
    ['non-canonical base64 (line padded)', s.note.replace(/\n$/, '==\n')],
    ['no signatures', `${s.body}\n`],
    ['not text', Buffer.from(s.note)],
    ['null', null],
    ['empty', ''],
    ['leading zero in the size', await resign(s.body.replace('\n64\n', '\n064\n'))],
    ['root of 31 bytes', await resign(s.body.replace(tree.root().toString('base64'), tree.root().subarray(1).toString('base64')))],
    ['missing time line', await resign(s.body.replace(/time .*\n$/, ''))],
    ['extra line', await resign(`${s.body}extra\n`)],
    ['time not UTC ms', await resign(s.body.replace('07.089Z', '07Z'))],
    ['impossible date', await resign(s.body.replace('2025-03-04', '2025-02-30'))],
    ['negative size', await resign(s.body.replace('\n64\n', '\n-64\n'))],
    ['too many signatures', `${s.body}\n${sigLine.repeat(101)}`],
  ];
  for (const [what, note] of cases) {
    let v;
    try {
      v = await verifyCheckpoint(note, keys);
    } catch (e) {
      t.fail(`${what}: threw ${String(e)}`);
      continue;
    }
    t.notOk(v.valid, `${what}: ${v.valid ? 'ACCEPTED' : v.reason}`);
  }
  t.ok((await verifyCheckpoint(s.note, keys)).valid, 'the untouched note still verifies');
});

t.test('bad fields when signing are CHECKPOINT_FIELD_INVALID (400)', async (t) => {
  const good = checkpointOf(treeOf(3));
  const bad: [string, Partial<Checkpoint>][] = [
    ['origin with a space', { origin: 'a b' }],
    ['origin with +', { origin: 'a+b' }],
    ['origin with a newline', { origin: 'a\nb' }],
    ['empty origin', { origin: '' }],
    ['negative size', { treeSize: -1 }],
    ['fractional size', { treeSize: 1.5 }],
    ['short root', { rootHash: Buffer.alloc(31) }],
    ['root as hex text', { rootHash: 'ab'.repeat(32) as never }],
    ['time without ms', { time: '2025-03-04T05:06:07Z' }],
    ['time with an offset', { time: '2025-03-04T05:06:07.089+08:00' }],
  ];
  for (const [what, patch] of bad) {
    try {
      await signCheckpoint({ ...good, ...patch }, sm2);
      t.fail(`${what}: signed`);
    } catch (e) {
      t.ok(isYiqianError(e) && e.code === CheckpointCodes.CHECKPOINT_FIELD_INVALID && e.status === 400 && e.text.zh.length > 0, `${what}: ${isYiqianError(e) ? e.code : String(e)}`);
    }
  }
  try {
    await signCheckpoint(good, sm2, 'bad name');
    t.fail('bad key name signed');
  } catch (e) {
    t.equal(isYiqianError(e) && e.code, CheckpointCodes.CHECKPOINT_FIELD_INVALID, 'bad key name');
  }
  try {
    parseCheckpointBody('x\n1\n');
    t.fail('parsed');
  } catch (e) {
    t.equal(isYiqianError(e) && e.code, CheckpointCodes.CHECKPOINT_MALFORMED, 'parseCheckpointBody: CHECKPOINT_MALFORMED');
  }
  t.equal(checkpointBody({ ...good, treeSize: 0, rootHash: h.empty() }).split('\n')[1], '0', 'the empty tree is size 0');
});

t.test('two verified checkpoints of a growing tree: consistency and inclusion against them', async (t) => {
  const tree = treeOf(1500);
  const keys = [{ name: ORIGIN, publicKeyInfo: sm2.publicKeyInfo }];
  const first = await verifyCheckpoint((await signCheckpoint(checkpointOf(tree, 1000), sm2)).note, keys, ORIGIN);
  const second = await verifyCheckpoint((await signCheckpoint(checkpointOf(tree, 1500, '2025-03-04T05:07:07.089Z'), sm2)).note, keys, ORIGIN);
  if (!first.valid || !second.valid) return t.fail('checkpoints do not verify');
  const a = first.checkpoint;
  const b = second.checkpoint;
  t.ok(verifyConsistency(h, a.treeSize, b.treeSize, a.rootHash, b.rootHash, tree.consistency(a.treeSize, b.treeSize)), 'the second checkpoint extends the first');
  t.ok(verifyInclusion(h, h.leaf(Buffer.from('record 999')), 999, a.treeSize, tree.inclusion(999, a.treeSize), a.rootHash), 'a record is in the first checkpoint');
  t.notOk(verifyInclusion(h, h.leaf(Buffer.from('record 1200')), 1200, a.treeSize, tree.inclusion(1200, b.treeSize), a.rootHash), 'a later record is not in the first');
  // A forked log: one record before the first checkpoint rewritten — no proof can bridge it.
  const fork = new MemoryTree(h);
  for (let i = 0; i < 1500; i++) fork.append(Buffer.from(i === 500 ? 'rewritten history' : `record ${i}`));
  t.notOk(verifyConsistency(h, a.treeSize, 1500, a.rootHash, fork.root(), fork.consistency(1000, 1500)), 'a fork is detected');
});

t.test('RFC 3161 tokens from the appliance TSA over SM3 of the body', async (t) => {
  const fx = await makePkiFixture();
  t.teardown(() => fx.close());
  const gate = { check: () => ({ ok: true as const, time: new Date(), accuracyMicros: 1000, state: 'SYNCED' as const, source: 'test', development: false, notice: null }) };
  const tsa = new TsaService({ certs: fx.store.certs, custody: fx.custody, tokens: fx.store.tsaTokens, gate, policies: { policies: [{ oid: '1.2.3.4.5' }] } });
  const certOf = (id: string) => {
    const ca = fx.created.cas.find((c) => `${c.hierarchy}-${c.role}` === id);
    if (!ca) throw new Error(`no CA ${id}`);
    return Buffer.from(ca.certificate, 'base64');
  };
  const s = await signCheckpoint(checkpointOf(treeOf(100), 100, new Date().toISOString()), sm2);
  const imprint = checkpointImprint(s.body);
  t.equal(imprint.hash, 'sm3');
  t.equal(imprint.hashedMessage.toString('hex'), createHash('sm3').update(s.body).digest('hex'), 'imprint = SM3(body)');
  const w = workDir(t);
  writeFileSync(join(w, 'body.txt'), s.body);
  for (const identity of ['sm2', 'ecdsa'] as const) {
    const stamp = await tsa.stamp(imprint.hash, imprint.hashedMessage, identity, { address: '127.0.0.1', app: 'evidence-anchor' });
    if (!stamp.ok) {
      t.fail(`${identity}: TSA refused: ${stamp.reason}`);
      continue;
    }
    const trust = { anchors: [certOf(`${identity}-root`)], intermediates: [certOf(`${identity}-issuing`)] };
    const v = await verifyCheckpointToken(stamp.token, s.body, trust);
    t.ok(v.ok, `${identity} token verifies: ${v.reason ?? 'ok'}`);
    t.equal(v.genTime?.getTime(), stamp.genTime.getTime());
    const other = await verifyCheckpointToken(stamp.token, s.body.replace('\n100\n', '\n101\n'), trust);
    t.notOk(other.ok, `${identity}: token over another checkpoint refused`);
    t.equal(other.imprintOk, false);
    t.equal(other.reason, 'the time-stamp imprint is not SM3 of this checkpoint');
    const wrongTrust = await verifyCheckpointToken(stamp.token, s.body, { anchors: [certOf(identity === 'sm2' ? 'ecdsa-root' : 'sm2-root')], intermediates: [] });
    t.notOk(wrongTrust.ok, `${identity}: another trust anchor refused`);
    if (identity === 'ecdsa') {
      // OpenSSL 3 verifies ECDSA time-stamps (not SM2 ones, ARCHITECTURE.md §4), hashing the data with the token's SM3.
      writeFileSync(join(w, 'ckpt.tok'), stamp.token);
      writeFileSync(join(w, 'root.pem'), pem('CERTIFICATE', certOf('ecdsa-root')));
      const tsaPem = run('openssl', ['pkcs7', '-inform', 'DER', '-in', 'ckpt.tok', '-print_certs'], w).out;
      writeFileSync(join(w, 'untrusted.pem'), tsaPem + pem('CERTIFICATE', certOf('ecdsa-issuing')));
      const o = run('openssl', ['ts', '-verify', '-token_in', '-in', 'ckpt.tok', '-data', 'body.txt', '-CAfile', 'root.pem', '-untrusted', 'untrusted.pem'], w);
      t.ok(o.ok && /Verification: OK/.test(o.out), `openssl ts -verify -data body: ${o.out.trim()}`);
      writeFileSync(join(w, 'other.txt'), `${s.body} `);
      t.notOk(run('openssl', ['ts', '-verify', '-token_in', '-in', 'ckpt.tok', '-data', 'other.txt', '-CAfile', 'root.pem', '-untrusted', 'untrusted.pem'], w).ok, 'openssl: other data fails');
    }
  }
  const sha = await tsa.stamp('sha256', createHash('sha256').update(s.body).digest(), 'ecdsa', { address: '127.0.0.1' });
  if (sha.ok) {
    const v = await verifyCheckpointToken(sha.token, s.body, { anchors: [certOf('ecdsa-root')], intermediates: [certOf('ecdsa-issuing')] });
    t.notOk(v.ok, 'a SHA-256 imprint is not a checkpoint token');
    t.match(v.imprintReason, /not SM3/);
  } else t.fail(`sha256 stamp refused: ${sha.reason}`);
  const junk = await verifyCheckpointToken(randomBytes(40), s.body, { anchors: [], intermediates: [] });
  t.notOk(junk.ok, `junk token: ${junk.reason}`);
});
