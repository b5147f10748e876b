// ECDSA P-256 signatures through the custody's Signer (hash in JS, session pool, C_SignAsync on
// the libuv pool, raw r‖s → DER), as a ratio to raw synchronous pkcs11js C_SignInit + C_Sign on
// one session of the same token, measured in the same run. Own SoftHSM2 token (makeTestToken).
// Alone: `node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/hsm.ts`
// (or `npx tsx bench/hsm.ts` where tsx is installed).
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import pkcs11js from 'pkcs11js';
import type { PKCS11 } from 'pkcs11js';
import { makeTestToken } from '../test/helpers/softhsm.js';
import { openPkcs11Custody } from '../firmware-bridge/pkcs11/pkcs11-custody.js';
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

export async function benchHsm(): Promise<BenchRow[]> {
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

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  printTable(await benchHsm());
}
