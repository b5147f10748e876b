// The TSA of a served appliance (built CLI) against real peers (../shared/PEERS.md):
// `openssl ts -query` → POST /tsa/ecdsa → `openssl ts -verify` OK for SHA-256 and SM3 imprints,
// with and without nonce and certReq; BouncyCastle TimeStampToken.validate + PKIX at genTime
// for SM2 and ECDSA tokens, and a changed token / changed data fails; HTTP bad input; the clock
// gate on a real gpsd fed with NMEA (stop gpsd → timeNotAvailable; back → tokens); serials
// unique across a restart, records queryable over the authenticated API.
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { parseTimeStampResp } from '../../appliance/src/asn1/tsp.js';
import { runJavaBatch } from '../helpers/bouncycastle.js';
import { startGpsdPeer } from '../helpers/gpsd-peer.js';
import { startCa } from '../helpers/revocation-client.js';

const TSQ = { 'Content-Type': 'application/timestamp-query' };

function openssl(args: string[], cwd: string): { ok: boolean; out: string } {
  try {
    return { ok: true, out: execFileSync('openssl', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
  } catch (e) {
    const x = e as { stdout?: string; stderr?: string };
    return { ok: false, out: `${x.stdout ?? ''}${x.stderr ?? ''}` };
  }
}

t.test('TSA against openssl, BouncyCastle and a real gpsd', async (t) => {
  const gps = await startGpsdPeer();
  t.teardown(() => gps.close());
  const ca = await startCa(t);
  // The appliance's clock: the real gpsd (fix required, 3 s bound).
  const cfgFile = join(ca.data, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf8'));
  cfg.timesource = { kind: 'monitored', gpsd: { host: '127.0.0.1', port: gps.port, requireFix: true, minMode: 2 }, bounds: { maxOffsetMs: 1000, maxAgeMs: 3000, degradedOffsetMs: 500 } };
  writeFileSync(cfgFile, JSON.stringify(cfg, null, 2));
  await ca.restart();
  const w = ca.work;
  writeFileSync(join(w, 'data.txt'), 'clinical document 病历 v1\n');
  writeFileSync(join(w, 'changed.txt'), 'clinical document 病历 v2\n');
  for (const id of ['ecdsa-root', 'ecdsa-issuing', 'sm2-root', 'sm2-issuing']) await ca.ca(id);

  const post = async (path: string, file: string, https = false) => {
    const r = await ca.publicCall(path, { method: 'POST', body: readFileSync(join(w, file)), headers: TSQ, https });
    return r;
  };
  const waitGranted = async (path: string, file: string, timeoutMs: number): Promise<number> => {
    const t0 = performance.now();
    for (;;) {
      const r = await post(path, file);
      if (parseTimeStampResp(r.body).status === 0) return performance.now() - t0;
      if (performance.now() - t0 > timeoutMs) throw new Error(`no token after ${timeoutMs} ms: ${parseTimeStampResp(r.body).statusString.join(' ')}`);
      await new Promise((res) => setTimeout(res, 200));
    }
  };
  openssl(['ts', '-query', '-data', 'data.txt', '-sha256', '-cert', '-out', 'q-sha256-cert.tsq'], w);
  await t.test('clock: SYNCED on gpsd → tokens', async (t) => {
    const ms = await waitGranted('/tsa/ecdsa', 'q-sha256-cert.tsq', 10_000);
    t.pass(`first token ${Math.round(ms)} ms after serving`);
    const st = await ca.api('GET', '/time/status');
    t.equal(st.status, 200);
    t.equal(st.json.source, 'gpsd');
    t.not(st.json.state, 'UNSYNCED');
  });

  const serialsBefore: string[] = [];
  await t.test('openssl ts -verify: SHA-256 and SM3, nonce / no nonce, certReq / none', async (t) => {
    // The TSA certificate itself, for the requests without certReq.
    const first = await post('/tsa/ecdsa', 'q-sha256-cert.tsq');
    writeFileSync(join(w, 'first.tsr'), first.body);
    openssl(['ts', '-reply', '-in', 'first.tsr', '-token_out', '-out', 'first.tok'], w);
    const tsaPem = openssl(['pkcs7', '-inform', 'DER', '-in', 'first.tok', '-print_certs'], w).out;
    writeFileSync(join(w, 'tsa-ecdsa.pem'), tsaPem);
    writeFileSync(join(w, 'untrusted.pem'), tsaPem + readFileSync(join(w, 'ecdsa-issuing.pem'), 'utf8'));
    for (const hash of ['sha256', 'sm3']) {
      for (const nonce of [true, false]) {
        for (const cert of [true, false]) {
          const name = `q-${hash}-${nonce}-${cert}`;
          const q = openssl(['ts', '-query', '-data', 'data.txt', `-${hash}`, ...(cert ? ['-cert'] : []), ...(nonce ? [] : ['-no_nonce']), '-out', `${name}.tsq`], w);
          t.ok(q.ok, q.out);
          const r = await post('/tsa/ecdsa', `${name}.tsq`, hash === 'sm3');
          t.equal(r.status, 200);
          t.equal(r.headers['content-type'], 'application/timestamp-reply');
          writeFileSync(join(w, `${name}.tsr`), r.body);
          const p = parseTimeStampResp(r.body);
          t.equal(p.status, 0, `${name}: granted`);
          serialsBefore.push(p.tstInfo!.serial);
          t.equal(p.signer!.certificateIncluded, cert, `${name}: certificate included iff certReq`);
          t.equal(p.tstInfo!.nonceHex !== undefined, nonce, `${name}: nonce echoed iff sent`);
          const v = openssl(['ts', '-verify', '-in', `${name}.tsr`, '-queryfile', `${name}.tsq`, '-CAfile', 'ecdsa-root.pem', '-untrusted', 'untrusted.pem'], w);
          t.match(v.out, /Verification: OK/, `${name}: openssl ts -verify says OK`);
          const d = openssl(['ts', '-verify', '-in', `${name}.tsr`, '-data', 'changed.txt', '-CAfile', 'ecdsa-root.pem', '-untrusted', 'untrusted.pem'], w);
          t.notOk(d.ok && /Verification: OK/.test(d.out), `${name}: other data does not verify`);
        }
      }
    }
  });

  await t.test('BouncyCastle: validate + PKIX at genTime for SM2 and ECDSA; changed data / token fail', async (t) => {
    openssl(['ts', '-query', '-data', 'data.txt', '-sm3', '-cert', '-out', 'q-sm2.tsq'], w);
    const sm2 = await post('/tsa/sm2', 'q-sm2.tsq');
    writeFileSync(join(w, 'sm2.tsr'), sm2.body);
    openssl(['ts', '-reply', '-in', 'sm2.tsr', '-token_out', '-out', 'sm2.tok'], w);
    writeFileSync(join(w, 'tsa-sm2.pem'), openssl(['pkcs7', '-inform', 'DER', '-in', 'sm2.tok', '-print_certs'], w).out);
    const def = await post('/tsa', 'q-sha256-true-true.tsq');
    writeFileSync(join(w, 'default.tsr'), def.body);
    // A token whose TSTInfo was changed after signing: the last octet of genTime's digits.
    const tampered = Buffer.from(sm2.body);
    const p = parseTimeStampResp(sm2.body);
    const at = tampered.indexOf(Buffer.from(p.tstInfo!.genTimeText, 'ascii'));
    tampered[at + 13] = tampered[at + 13] === 0x30 ? 0x31 : 0x30;
    writeFileSync(join(w, 'sm2-tampered.tsr'), tampered);
    const ecTampered = readFileSync(join(w, 'q-sha256-true-true.tsr'));
    const pe = parseTimeStampResp(ecTampered);
    const at2 = ecTampered.indexOf(pe.tstInfo!.imprint);
    ecTampered[at2] ^= 1;
    writeFileSync(join(w, 'ecdsa-tampered.tsr'), ecTampered);
    const line = (f: string, data: string, kind: 'sm2' | 'ecdsa') => `token ${join(w, f)} ${join(w, data)} ${join(w, `tsa-${kind}.pem`)} ${join(w, `${kind}-issuing.pem`)} ${join(w, `${kind}-root.pem`)}`;
    const out = await runJavaBatch('TsaInterop', [
      line('sm2.tsr', 'data.txt', 'sm2'),
      line('q-sha256-true-true.tsr', 'data.txt', 'ecdsa'),
      line('q-sm3-false-true.tsr', 'data.txt', 'ecdsa'),
      line('default.tsr', 'data.txt', 'ecdsa'),
      line('sm2.tsr', 'changed.txt', 'sm2'),
      line('sm2-tampered.tsr', 'data.txt', 'sm2'),
      line('ecdsa-tampered.tsr', 'data.txt', 'ecdsa'),
    ]);
    t.match(out[0], /^ok alg=1\.2\.156\.10197\.1\.301\.1 digest=1\.2\.156\.10197\.1\.401 .* imprintMatches=true pkix=valid$/, `SM2 token: ${out[0]}`);
    t.match(out[1], /^ok alg=1\.2\.840\.10045\.4\.3\.2 digest=2\.16\.840\.1\.101\.3\.4\.2\.1 .* imprintMatches=true pkix=valid$/, `ECDSA token: ${out[1]}`);
    t.match(out[2], /imprintMatches=true pkix=valid$/, `ECDSA token over an SM3 imprint: ${out[2]}`);
    t.match(out[3], /^ok alg=1\.2\.840\.10045\.4\.3\.2 .*pkix=valid$/, 'POST /tsa uses the default identity (ecdsa)');
    t.match(out[4], /imprintMatches=false/, 'changed data does not match the token');
    t.match(out[5], /^fail /, `changed SM2 token fails validate: ${out[5]}`);
    t.match(out[6], /^fail /, `changed ECDSA token fails validate: ${out[6]}`);
  });

  await t.test('HTTP bad input: well-formed rejections, server keeps serving', async (t) => {
    const good = readFileSync(join(w, 'q-sha256-cert.tsq'));
    const wrongType = await ca.publicCall('/tsa/ecdsa', { method: 'POST', body: good, headers: { 'Content-Type': 'application/octet-stream' } });
    t.equal(wrongType.status, 415);
    t.equal(parseTimeStampResp(wrongType.body).status, 2, '415 carries a TimeStampResp rejection');
    const big = await ca.publicCall('/tsa/ecdsa', { method: 'POST', body: Buffer.alloc(64 * 1024, 0x30), headers: TSQ });
    t.equal(big.status, 413);
    const getIt = await ca.publicCall('/tsa/ecdsa');
    t.equal(getIt.status, 405);
    t.equal(parseTimeStampResp(getIt.body).failInfo, 'badRequest');
    for (const [name, body, fail] of [
      ['truncated', good.subarray(0, 20), 'badDataFormat'],
      ['trailing garbage', Buffer.concat([good, Buffer.from([1, 2])]), 'badDataFormat'],
      ['garbage', Buffer.from('not a request'), 'badDataFormat'],
    ] as const) {
      const r = await ca.publicCall('/tsa/ecdsa', { method: 'POST', body, headers: TSQ });
      t.equal(r.status, 200, `${name}: 200`);
      t.equal(parseTimeStampResp(r.body).failInfo, fail, `${name}: ${fail}`);
    }
    t.equal(parseTimeStampResp((await post('/tsa/ecdsa', 'q-sha256-cert.tsq')).body).status, 0, 'still granting');
  });

  await t.test('clock gate on the real gpsd: stop → timeNotAvailable, back → tokens', async (t) => {
    await gps.stop();
    const t0 = performance.now();
    let refused: ReturnType<typeof parseTimeStampResp> | undefined;
    while (performance.now() - t0 < 8000) {
      const r = parseTimeStampResp((await post('/tsa/ecdsa', 'q-sha256-cert.tsq')).body);
      if (r.status === 2) {
        refused = r;
        break;
      }
      await new Promise((res) => setTimeout(res, 100));
    }
    t.ok(refused, `refused ${Math.round(performance.now() - t0)} ms after gpsd stopped`);
    t.equal(refused?.failInfo, 'timeNotAvailable');
    t.equal(refused?.token, undefined);
    const ready = await ca.api('GET', '/time/status');
    t.equal(ready.json.state, 'UNSYNCED');
    await gps.start();
    const ms = await waitGranted('/tsa/ecdsa', 'q-sha256-cert.tsq', 10_000);
    t.pass(`issuing again ${Math.round(ms)} ms after gpsd came back`);
  });

  await t.test('serials unique across a restart; records over the API', async (t) => {
    await ca.restart();
    await waitGranted('/tsa/ecdsa', 'q-sha256-cert.tsq', 10_000);
    const after: string[] = [];
    for (let i = 0; i < 20; i++) after.push(parseTimeStampResp((await post('/tsa/sm2', 'q-sm2.tsq')).body).tstInfo!.serial);
    const all = new Set([...serialsBefore, ...after]);
    t.equal(all.size, serialsBefore.length + after.length, 'no serial repeats across the restart');
    const rec = await ca.api('GET', `/tsa/tokens/${serialsBefore[0]}`);
    t.equal(rec.status, 200);
    t.equal(rec.json.serial, serialsBefore[0]);
    t.equal(rec.json.identity, 'ecdsa');
    t.equal(rec.json.requester.address, '127.0.0.1');
    t.equal((await ca.api('GET', '/tsa/tokens/00ff')).status, 404);
  });
});
