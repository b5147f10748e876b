// SM2 sign/verify throughput of the engine's backends and of the npm pure-JS libraries, each as
// a ratio to `openssl speed -seconds 2 sm2` (one core) measured in the same run.
// Alone: `node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/sm2.ts`
// (or `npx tsx bench/sm2.ts` where tsx is installed).
import { pathToFileURL } from 'node:url';
import smCrypto from 'sm-crypto';
import { sm2 as smV2 } from 'sm-crypto-v2';
import { SM2_DEFAULT_ID, createSm2Signer, generateSm2KeyPair, sm2Backend, sm2Verify, sm2VerifyWithOpenssl } from '../appliance/src/crypto/sm2.js';
import * as pure from '../appliance/src/crypto/sm2-pure.js';
import { opensslSpeedSm2 } from './openssl-speed.js';
import { measure, printTable, type BenchRow } from './table.js';

const SECONDS = 1.5;
const IN_FLIGHT = 8;
/** More than the new-key row verifies in its time (≈ 25,000 /s × 0.75 s) over 3: no key reaches its table. */
const FRESH_KEYS = 8_000;

export async function benchSm2(): Promise<BenchRow[]> {
  const base = await opensslSpeedSm2(2);
  const { privateKey, publicKey } = generateSm2KeyPair();
  const msg = Buffer.from('yiqian bench: a short message such as a prescription hash, 64 bytes.');
  const rows: BenchRow[] = [];
  const sign = (name: string, opsPerSec: number): void => {
    rows.push({ name: `SM2 sign (${name})`, opsPerSec, baseline: 'openssl speed sm2 sign, 1 core', baselineOpsPerSec: base.sign });
  };
  const verify = (name: string, opsPerSec: number): void => {
    rows.push({ name: `SM2 verify (${name})`, opsPerSec, baseline: 'openssl speed sm2 verify, 1 core', baselineOpsPerSec: base.verify });
  };

  // Engine as the appliance uses it: a Signer with its cached key handle; verify with the
  // public-key handle cache. Through the addon when it is loaded.
  const backend = sm2Backend();
  const signer = createSm2Signer(privateKey);
  const sig = await signer.sign(msg);
  sign(`engine/${backend}, ${IN_FLIGHT} in flight`, await measure(() => signer.sign(msg), SECONDS, IN_FLIGHT));
  // One key again and again: from its 4th verification the addon uses the key's fixed-base table
  // (sm2p256-verify.c), as for a doctor's key that signs all day.
  verify(`engine/${backend}, returning key, ${IN_FLIGHT} in flight`, await measure(() => sm2Verify(publicKey, msg, sig), SECONDS, IN_FLIGHT));
  if (backend === 'addon') {
    sign('engine/addon, 1 in flight', await measure(() => signer.sign(msg), SECONDS, 1));
    verify('engine/addon, returning key, 1 in flight', await measure(() => sm2Verify(publicKey, msg, sig), SECONDS, 1));
    // Keys seen for the first time (each verified at most 3 times: never given a table).
    const fresh = await Promise.all(
      Array.from({ length: FRESH_KEYS }, async () => {
        const k = generateSm2KeyPair();
        return { publicKey: k.publicKey, sig: await createSm2Signer(k.privateKey).sign(msg) };
      }),
    );
    let next = 0;
    verify(`engine/addon, a new key each time, ${IN_FLIGHT} in flight`, await measure(() => {
      const f = fresh[next++ % FRESH_KEYS];
      return sm2Verify(f.publicKey, msg, f.sig);
    }, SECONDS / 2, IN_FLIGHT));
    // The addon verifies with its own arithmetic for the SM2 curve (sm2p256-verify.c); the same
    // call through OpenSSL's generic EC code is what it replaced.
    verify(`addon through OpenSSL's generic EC, ${IN_FLIGHT} in flight`, await measure(() => sm2VerifyWithOpenssl(publicKey, msg, sig), SECONDS, IN_FLIGHT));
    verify("addon through OpenSSL's generic EC, 1 in flight", await measure(() => sm2VerifyWithOpenssl(publicKey, msg, sig), SECONDS, 1));
  }

  // The pure-TypeScript fallback, called directly (it runs on the main thread).
  const d = BigInt('0x' + privateKey.toString('hex'));
  const P = pure.decodePublic(publicKey);
  const { r, s } = pure.signDigest(d, pure.digestE(publicKey, msg));
  sign('pure-js fallback', await measure(() => pure.signDigest(d, pure.digestE(publicKey, msg, SM2_DEFAULT_ID)), SECONDS));
  verify('pure-js fallback', await measure(() => pure.verifyDigest(P, pure.digestE(publicKey, msg, SM2_DEFAULT_ID), r, s), SECONDS));

  // npm libraries, with the same options (SM3 with Z_A, default ID, DER).
  const dHex = privateKey.toString('hex');
  const pHex = publicKey.toString('hex');
  const msgArr = Array.from(msg);
  const opts = { hash: true, der: true, publicKey: pHex, userId: '1234567812345678' };
  const sig05 = smCrypto.sm2.doSignature(msgArr, dHex, opts);
  sign('sm-crypto 0.5', await measure(() => smCrypto.sm2.doSignature(msgArr, dHex, opts), SECONDS));
  verify('sm-crypto 0.5', await measure(() => smCrypto.sm2.doVerifySignature(msgArr, sig05, pHex, opts), SECONDS));
  const sigV2 = smV2.doSignature(msg, dHex, opts);
  sign('sm-crypto-v2', await measure(() => smV2.doSignature(msg, dHex, opts), SECONDS));
  verify('sm-crypto-v2', await measure(() => smV2.doVerifySignature(msg, sigV2, pHex, opts), SECONDS));
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  printTable(await benchSm2());
}
