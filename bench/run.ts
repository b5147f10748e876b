// `make bench`: every benchmark in one run, each with its ratio to a baseline measured now.
import { printTable, type BenchRow } from './table.js';
import { benchSm2 } from './sm2.js';
import { benchHsm } from './hsm.js';
import { benchHttp } from './http-whoami.js';
import { benchOcsp } from './pki-ocsp.js';
import { benchPkiIssue } from './pki-issue.js';
import { benchTsa } from './tsa.js';
import { benchSigning } from './signing.js';
import { benchEvidence } from './evidence.js';

const rows: BenchRow[] = [];
for (const [name, run] of [['SM2 engine', benchSm2], ['HSM', benchHsm], ['HTTPS API', benchHttp], ['certificate issuance', benchPkiIssue], ['OCSP responder', benchOcsp], ['time-stamp authority', benchTsa], ['signature service', benchSigning], ['evidence store', benchEvidence]] as const) {
  process.stderr.write(`measuring ${name} …\n`);
  rows.push(...(await run()));
}
console.log(`yiqian bench — ${new Date().toISOString()} — node ${process.version}, ${(await import('node:os')).cpus().length} cores`);
printTable(rows);
