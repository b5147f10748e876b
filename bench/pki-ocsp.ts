// OCSP responses per second at the service level, in process, on a freshly initialised
// appliance (own data dir and SoftHSM2 token, `initialise` as `yiqian init` does it): cached
// (no nonce: a lookup of the pre-signed response) and uncached (a nonce: parse, status lookup in
// LMDB, sign, encode), for both hierarchies. Each is given as a ratio to the raw signing rate of
// that hierarchy's delegated OCSP signer key through the custody's Signer (same key, same
// number in flight), measured in the same run: the ECDSA responder key is a SoftHSM2 token key
// (C_Sign), the SM2 one a wrapped key signing in process.
// Alone, after `make build`: `node dist/bench/pki-ocsp.js`.
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildOcspRequest, parseOcspResponse } from '../appliance/src/asn1/ocsp.js';
import { initialise } from '../appliance/src/cli/init.js';
import { buildRevocation, openAppliance } from '../appliance/src/main.js';
import { log } from '../appliance/src/log.js';
import type { Hierarchy } from '../appliance/src/pki/types.js';
import { measure, printTable, type BenchRow } from './table.js';

const SECONDS = 1.5;
const IN_FLIGHT = 8;
/** Distinct nonces cycled through, so no two requests in a row are alike. */
const NONCE_POOL = 512;

export async function benchOcsp(): Promise<BenchRow[]> {
  // init and the custody log every key they make at info: not part of the table.
  const level = log.level;
  log.level = 'warn';
  const root = mkdtempSync(join(tmpdir(), 'yq-bench-ocsp-'));
  const dataDir = join(root, 'data');
  const rows: BenchRow[] = [];
  try {
    await initialise(dataDir, false);
    const a = await openAppliance(dataDir);
    try {
      const { ocsp } = buildRevocation(a);
      for (const h of ['ecdsa', 'sm2'] as Hierarchy[]) {
        const issuing = await a.pki.authorities.issuing(h);
        const issued = await a.pki.certificates.issueWithKeygen(
          { profile: 'personal', algorithm: h === 'sm2' ? 'sm2' : 'ecdsa-p256', password: 'bench password', commonName: `bench ${h}`, employeeId: `B-${h}` },
          'bench',
        );
        const serial = issued.record.serial;
        const plain = buildOcspRequest([{ issuerCertificate: issuing.der, serial }]);
        const withNonce = Array.from({ length: NONCE_POOL }, () => buildOcspRequest([{ issuerCertificate: issuing.der, serial }], randomBytes(32)));
        const check = parseOcspResponse((await ocsp.respond(withNonce[0])).der);
        if (check.basic?.responses[0].status !== 'good') throw new Error(`bench setup: ${h} certificate is not good`);

        // The responder's key, straight through the custody: what one response cannot beat uncached.
        const responderRecord = (await a.store.certs.query({ caId: `${h}-issuing`, profile: 'ocsp', status: 'good' })).items[0];
        if (!responderRecord?.keyRef) throw new Error(`bench setup: no ${h} OCSP signer`);
        const signer = await a.custody.signer(responderRecord.keyRef);
        const tbs = parseOcspResponse((await ocsp.respond(plain)).der).basic!.tbs;
        const raw = await measure(() => signer.sign(tbs, h === 'ecdsa' ? { hash: 'sha256' } : {}), SECONDS, IN_FLIGHT);
        const baseline = `raw ${h === 'sm2' ? 'SM2 (wrapped)' : 'ECDSA P-256 (SoftHSM2)'} sign by the OCSP signer key, ${IN_FLIGHT} in flight`;

        const cached = await measure(() => ocsp.respond(plain), SECONDS, IN_FLIGHT);
        let i = 0;
        const fresh = await measure(() => ocsp.respond(withNonce[i++ % NONCE_POOL]), SECONDS, IN_FLIGHT);
        rows.push({ name: `OCSP ${h}, cached (no nonce), ${IN_FLIGHT} in flight`, opsPerSec: cached, baseline, baselineOpsPerSec: raw });
        rows.push({ name: `OCSP ${h}, uncached (nonce), ${IN_FLIGHT} in flight`, opsPerSec: fresh, baseline, baselineOpsPerSec: raw });
      }
    } finally {
      await a.close();
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
    log.level = level;
  }
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  printTable(await benchOcsp());
}
