// ECDSA P-256 signatures through the custody's Signer (hash in JS, session pool, C_SignAsync on
// the libuv pool, raw r‖s → DER), as a ratio to raw synchronous pkcs11js C_SignInit + C_Sign on
// one session of the same token, measured in the same run. Own SoftHSM2 token (makeTestToken).
// Plus the signing job (sign-async.ts: C_SignInit + C_Sign in one libuv-pool job) against the
// pkcs11js path (C_SignInit on the main thread) at 32 in flight; run alone, this file also prints
// process CPU and main-thread time per signature for 1 and 32 in flight, both paths.
// Alone: `node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/hsm.ts`
// (or `npx tsx bench/hsm.ts` where tsx is installed).
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import pkcs11js from 'pkcs11js';
import type { PKCS11 } from 'pkcs11js';
import { makeTestToken } from '../test/helpers/softhsm.js';
import { openPkcs11Custody } from '../firmware-bridge/pkcs11/pkcs11-custody.js';
import type { Signer } from '../appliance/src/crypto/interfaces.js';
import { createSm2Signer, generateSm2KeyPair, sm2SpkiFromPublicKey } from '../appliance/src/crypto/sm2.js';
import { measure, printTable, type BenchRow } from './table.js';
import { InMemoryKeyRegistry } from '../test/helpers/in-memory-key-registry.js';

const SECONDS = 2;


/** Tight synchronous loop, the way a C program would drive the token: C_SignInit + C_Sign. */
function rawSyncSignsPerSec(p: PKCS11, session: Buffer, key: Buffer, seconds: number): number {
  const digest = createHash('sha256').update('yiqian bench').digest();
  const out = Buffer.alloc(64);
  const once = (): void => {
    p.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA }, key);
    p.C_Sign(session, digest, out);
  };
  const warm = Date.now() + 200;
  while (Date.now() < warm) once();
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(Math.round(seconds * 1e9));
  while (process.hrtime.bigint() < end) {
    once();
    n++;
  }
  return n / (Number(process.hrtime.bigint() - start) / 1e9);
}

export interface SignLoad {
  opsPerSec: number;
  /** Process CPU (all threads) per signature, µs. */
  cpuUs: number;
  /** Main-thread busy time per signature (event-loop utilisation), µs. */
  mainUs: number;
  /** Main-thread utilisation, 0..1. */
  elu: number;
}

/** `inFlight` loops of prehashed SHA-256 signatures for `seconds` (after a warm-up), with CPU and main-thread time. */
export async function signLoad(signer: Signer, inFlight: number, seconds: number): Promise<SignLoad> {
  const digest = createHash('sha256').update('yiqian bench').digest();
  const run = async (s: number): Promise<SignLoad> => {
    let n = 0;
    const end = process.hrtime.bigint() + BigInt(Math.round(s * 1e9));
    const cpu0 = process.cpuUsage();
    const elu0 = performance.eventLoopUtilization();
    const t0 = process.hrtime.bigint();
    await Promise.all(
      Array.from({ length: inFlight }, async () => {
        while (process.hrtime.bigint() < end) {
          await signer.sign(digest, { prehashed: true, hash: 'sha256' });
          n++;
        }
      }),
    );
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    const elu = performance.eventLoopUtilization(elu0);
    return { opsPerSec: n / wall, cpuUs: (cpu.user + cpu.system) / n, mainUs: (elu.active * 1000) / n, elu: elu.utilization };
  };
  await run(0.3);
  return run(seconds);
}

/** Custody signers over one P-256 key: through the signing addon and through pkcs11js (nativeSign: false). */
async function withBothPaths<T>(fn: (native: Signer, pkcs11jsPath: Signer) => Promise<T>): Promise<T> {
  const token = makeTestToken('yiqian-bench-job');
  const softwareSm2 = { generate: generateSm2KeyPair, signer: (d: Buffer) => createSm2Signer(d), spki: sm2SpkiFromPublicKey };
  const registry = new InMemoryKeyRegistry();
  const base = { module: token.module, tokenLabel: token.label, pin: token.pin, poolSize: 32, softwareSm2 };
  const viaJob = await openPkcs11Custody(base, registry);
  const viaPkcs11js = await openPkcs11Custody({ ...base, nativeSign: false }, registry);
  try {
    await viaJob.generate({ algorithm: 'ecdsa-p256', label: 'bench-job-p256', purpose: 'benchmark' });
    return await fn(await viaJob.signer('pkcs11:object=bench-job-p256'), await viaPkcs11js.signer('pkcs11:object=bench-job-p256'));
  } finally {
    await viaPkcs11js.close();
    await viaJob.close();
    rmSync(token.dir, { recursive: true, force: true });
  }
}

/** One row: 32 in flight, signing job vs pkcs11js path (main-thread µs per signature in the name). */
async function benchSignJob(): Promise<BenchRow> {
  return withBothPaths(async (job, plain) => {
    const before = await signLoad(plain, 32, SECONDS);
    const after = await signLoad(job, 32, SECONDS);
    return {
      name: `ECDSA P-256 sign, custody, 32 in flight (pool 32), C_SignInit+C_Sign one libuv job (main thread ${after.mainUs.toFixed(0)} µs/sign)`,
      opsPerSec: after.opsPerSec,
      baseline: `same, pkcs11js C_SignInit on main thread (${before.mainUs.toFixed(0)} µs/sign)`,
      baselineOpsPerSec: before.opsPerSec,
    };
  });
}

async function benchCustodySigner(): Promise<BenchRow[]> {
  const token = makeTestToken('yiqian-bench');
  let module: PKCS11 | undefined;
  const custody = await openPkcs11Custody(
    {
      module: token.module,
      tokenLabel: token.label,
      pin: token.pin,
      poolSize: 4,
      softwareSm2: { generate: generateSm2KeyPair, signer: (d) => createSm2Signer(d), spki: sm2SpkiFromPublicKey },
      loadModule: (path) => {
        const p = new pkcs11js.PKCS11();
        p.load(path);
        module = p;
        return p;
      },
    },
    new InMemoryKeyRegistry(),
  );
  try {
    await custody.generate({ algorithm: 'ecdsa-p256', label: 'bench-p256', purpose: 'benchmark' });
    const signer = await custody.signer('pkcs11:object=bench-p256');
    const msg = Buffer.from('yiqian bench: a short message such as a prescription hash, 64 bytes.');

    // Baseline on the custody's own (already initialised, logged-in) module: one extra session.
    const p = module as PKCS11;
    const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trim() === token.label) as Buffer;
    const session = p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
    p.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_LABEL, value: 'bench-p256' }]);
    const [key] = p.C_FindObjects(session, 1);
    p.C_FindObjectsFinal(session);
    const raw = rawSyncSignsPerSec(p, session, key, SECONDS);
    p.C_CloseSession(session);

    const baseline = 'raw pkcs11js C_SignInit+C_Sign, sync, 1 session';
    const rows: BenchRow[] = [];
    for (const inFlight of [1, 4, 16]) {
      const ops = await measure(() => signer.sign(msg), SECONDS, inFlight);
      rows.push({ name: `ECDSA P-256 sign, custody Signer, ${inFlight} in flight (pool 4)`, opsPerSec: ops, baseline, baselineOpsPerSec: raw });
    }
    return rows;
  } finally {
    await custody.close();
    rmSync(token.dir, { recursive: true, force: true });
  }
}

export async function benchHsm(): Promise<BenchRow[]> {
  // Own token after the first custody is closed (SoftHSM2 reads SOFTHSM2_CONF at C_Initialize).
  return [...(await benchCustodySigner()), await benchSignJob()];
}

/** Run alone: 1 and 32 in flight, each path, alternating (the machine's load drifts). */
async function printSignJobDetail(rounds = 3): Promise<void> {
  await withBothPaths(async (job, plain) => {
    console.log('\nECDSA P-256 prehashed sign through the custody (SoftHSM2), median of', rounds, 'rounds of', SECONDS, 's');
    console.log('path                        in flight  signs/s  CPU µs/sign  main-thread µs/sign  main-thread busy');
    for (const inFlight of [1, 32]) {
      for (const [name, signer] of [['pkcs11js C_SignInit (main)', plain], ['one libuv job (addon)', job]] as const) {
        const runs: SignLoad[] = [];
        for (let i = 0; i < rounds; i++) runs.push(await signLoad(signer, inFlight, SECONDS));
        const med = (f: (r: SignLoad) => number): number => runs.map(f).sort((a, b) => a - b)[Math.floor(rounds / 2)];
        console.log(`${name.padEnd(27)} ${String(inFlight).padStart(9)}  ${med((r) => r.opsPerSec).toFixed(0).padStart(7)}  ${med((r) => r.cpuUs).toFixed(0).padStart(11)}  ${med((r) => r.mainUs).toFixed(0).padStart(19)}  ${(med((r) => r.elu) * 100).toFixed(0).padStart(15)}%`);
      }
    }
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  printTable(await benchHsm());
  await printSignJobDetail();
}
