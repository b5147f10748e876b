// Certificates issued per second from a PKCS#10 request, SM2 and ECDSA hierarchies, through the
// certificate service in process (parse, proof-of-possession check, profile, sign with the
// issuing CA key through KeyCustody, durable LMDB write with its audit record), each as a ratio
// to the raw signing rate of the same CA key (its custody Signer over a TBSCertificate-sized
// message) measured in the same run. Own SoftHSM2 token and store (test/helpers/pki-hierarchy.ts).
// Alone: `node --import=./node_modules/@tapjs/typescript/dist/esm/import.mjs bench/pki-issue.ts`
import { pathToFileURL } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCertificate } from '../appliance/src/asn1/certificate.js';
import { log } from '../appliance/src/log.js';
import { signatureAlgorithmFor } from '../appliance/src/pki/signature-algorithm.js';
import { makePkiFixture, opensslCsr } from '../test/helpers/pki-hierarchy.js';
import { measure, printTable, type BenchRow } from './table.js';

const SECONDS = 2;
const IN_FLIGHT = [1, 16];

export async function benchPkiIssue(): Promise<BenchRow[]> {
  // The custody logs every key it makes at info: not part of the table.
  const level = log.level;
  log.level = 'warn';
  const f = await makePkiFixture();
  const dir = mkdtempSync(join(tmpdir(), 'yq-bench-issue-'));
  const rows: BenchRow[] = [];
  try {
    for (const [h, kind, label] of [['sm2', 'sm2', 'SM2'], ['ecdsa', 'ecdsa-p256', 'ECDSA P-256']] as const) {
      const { csrPem } = opensslCsr(dir, kind, '/CN=bench', `bench-${h}`);
      const request = { profile: 'personal', csr: csrPem, commonName: '基准 bench', employeeId: 'B0001', departmentId: 'D-BENCH' };
      const first = await f.pki.certificates.issueFromCsr(request, 'app:bench');
      const ca = await f.pki.authorities.issuing(h);
      const signer = await ca.signer();
      const tbs = readCertificate(Buffer.from(first.record.certificate, 'base64')).tbs;
      const opts = signatureAlgorithmFor(signer.algorithm).signOptions;
      const mode = (await f.custody.list()).find((k) => k.id === ca.record.keyId)?.mode ?? '?';
      for (const inFlight of IN_FLIGHT) {
        const raw = await measure(() => signer.sign(tbs, opts), SECONDS, inFlight);
        const issued = await measure(() => f.pki.certificates.issueFromCsr(request, 'app:bench'), SECONDS, inFlight);
        rows.push({
          name: `${label} certificates issued from CSR, ${inFlight} in flight`,
          opsPerSec: issued,
          baseline: `raw sign, ${ca.record.id} key (${mode} custody), ${tbs.length}-byte TBS, ${inFlight} in flight`,
          baselineOpsPerSec: raw,
        });
      }
    }
    return rows;
  } finally {
    log.level = level;
    await f.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  printTable(await benchPkiIssue());
}
