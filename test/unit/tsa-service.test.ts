// The TSA service in process over a real store and SoftHSM2 custody (makePkiFixture): every bad
// request is a well-formed rejection with the right failInfo, a fuzz run of mutated requests
// never yields anything but a TimeStampResp, the clock gate refuses and resumes, an expired TSA
// certificate never signs, the record is stored, and serials stay unique across 100 000 tokens
// and a reopen of the store.
import t from 'tap';
import { pino } from 'pino';
import { createHash, randomBytes } from 'node:crypto';
import { buildTimeStampReq, parseTimeStampReq, parseTimeStampResp, TspRejection } from '../../appliance/src/asn1/tsp.js';
import { TsaService } from '../../appliance/src/tsa/tsa-service.js';
import { openStore } from '../../appliance/src/store/open-store.js';
import type { ClockGateResult } from '../../firmware-bridge/timesource/clock-gate.js';
import { makePkiFixture } from '../helpers/pki-hierarchy.js';

const POLICY = '1.2.3.4.5';
const OTHER = '1.2.3.4.6';

let gateState: ClockGateResult = { ok: true, time: new Date(), accuracyMicros: 1500, state: 'SYNCED', source: 'test', development: false, notice: null };
const gate = { check: (): ClockGateResult => (gateState.ok ? { ...gateState, time: new Date() } : gateState) };

t.test('TSA service', async (t) => {
  const fx = await makePkiFixture();
  t.teardown(() => fx.close());
  const make = () => new TsaService({ certs: fx.store.certs, custody: fx.custody, tokens: fx.store.tsaTokens, gate, policies: { policies: [{ oid: POLICY }, { oid: OTHER, identities: ['sm2'] }] } });
  const tsa = make();
  const who = { address: '127.0.0.1' };
  const sha = createHash('sha256').update('hello').digest();
  const good = buildTimeStampReq({ hash: 'sha256', hashedMessage: sha, nonce: 12345678901234567890n, certReq: true });

  await t.test('granted token: fields and stored record', async (t) => {
    const a = await tsa.respond(good, 'ecdsa', who);
    t.ok(a.granted, a.reason ?? 'granted');
    const r = parseTimeStampResp(a.der);
    t.equal(r.status, 0);
    t.equal(r.tstInfo!.policy, POLICY);
    t.equal(r.tstInfo!.nonceHex, '00ab54a98ceb1f0ad2', 'nonce echoed');
    t.match(r.tstInfo!.genTimeText, /^\d{14}(\.\d{1,3})?Z$/, 'GeneralizedTime with milliseconds');
    t.equal(r.tstInfo!.accuracyMicros, 1500, 'accuracy from the clock gate (1 ms 500 µs)');
    t.ok(r.tstInfo!.imprint.equals(sha));
    t.ok(r.tstInfo!.serial.length >= 26, `serial ${r.tstInfo!.serial} has ≥ 64 random bits after its 48-bit time`);
    t.equal(r.signer!.signatureAlgorithm, '1.2.840.10045.4.3.2');
    t.ok(r.signer!.certificateIncluded, 'certReq honoured');
    const rec = await fx.store.tsaTokens.get(a.serial!);
    t.equal(rec?.imprint, sha.toString('hex'));
    t.equal(rec?.requester.address, '127.0.0.1');
    t.equal(rec?.genTime, r.tstInfo!.genTime.toISOString());
    const s = await tsa.respond(buildTimeStampReq({ hash: 'sm3', hashedMessage: randomBytes(32) }), 'sm2', who);
    const sr = parseTimeStampResp(s.der);
    t.equal(sr.signer!.signatureAlgorithm, '1.2.156.10197.1.301.1', 'SM2-1 signature OID (GM/T 0033 profile)');
    t.equal(sr.signer!.digestAlgorithm, '1.2.156.10197.1.401');
    t.notOk(sr.signer!.certificateIncluded, 'no certificate without certReq');
    const o = await tsa.respond(buildTimeStampReq({ hash: 'sha512', hashedMessage: randomBytes(64), reqPolicy: OTHER }), 'sm2', who);
    t.equal(parseTimeStampResp(o.der).tstInfo!.policy, OTHER, 'reqPolicy selects a configured policy');
  });

  await t.test('bad input: each a well-formed rejection', async (t) => {
    const cases: [string, Buffer, string][] = [
      ['truncated', good.subarray(0, good.length - 3), 'badDataFormat'],
      ['not DER at all', Buffer.from('hello world'), 'badDataFormat'],
      ['empty', Buffer.alloc(0), 'badDataFormat'],
      ['trailing garbage', Buffer.concat([good, Buffer.from([0])]), 'badDataFormat'],
      ['BER indefinite length', Buffer.concat([Buffer.from([0x30, 0x80]), good.subarray(2), Buffer.from([0, 0])]), 'badDataFormat'],
      ['version 2', buildTimeStampReq({ hash: 'sha256', hashedMessage: sha, version: 2 }), 'badRequest'],
      ['unknown critical extension', buildTimeStampReq({ hash: 'sha256', hashedMessage: sha, extensions: [{ oid: '1.2.3.99', critical: true, value: Buffer.from([5, 0]) }] }), 'unacceptedExtension'],
      ['SHA-1 imprint', Buffer.concat([Buffer.from('3024020101301f300706052b0e03021a0414', 'hex'), randomBytes(20)]), 'badAlg'],
      ['wrong digest length', buildTimeStampReq({ hash: 'sha256', hashedMessage: randomBytes(20) }), 'badDataFormat'],
      ['unknown policy', buildTimeStampReq({ hash: 'sha256', hashedMessage: sha, reqPolicy: '1.2.3.4.7' }), 'unacceptedPolicy'],
      ['policy of the other identity', buildTimeStampReq({ hash: 'sha256', hashedMessage: sha, reqPolicy: OTHER }), 'unacceptedPolicy'],
    ];
    for (const [name, der, fail] of cases) {
      const a = await tsa.respond(der, 'ecdsa', who);
      const r = parseTimeStampResp(a.der);
      t.equal(r.status, 2, `${name}: rejection`);
      t.equal(r.failInfo, fail, `${name}: ${fail}`);
      t.equal(r.token, undefined, `${name}: no token`);
    }
    const ok = await tsa.respond(good, 'ecdsa', who);
    t.ok(ok.granted, 'still serving after bad input');
    const nonCritical = await tsa.respond(buildTimeStampReq({ hash: 'sha256', hashedMessage: sha, extensions: [{ oid: '1.2.3.99', critical: false, value: Buffer.from([5, 0]) }] }), 'ecdsa', who);
    t.ok(nonCritical.granted, 'an unknown non-critical extension is ignored');
  });

  await t.test('fuzz: 20 000 mutated requests never throw anything but a rejection', async (t) => {
    const seeds = [good, buildTimeStampReq({ hash: 'sm3', hashedMessage: randomBytes(32), reqPolicy: POLICY, extensions: [{ oid: '1.2.3', critical: false, value: Buffer.from([5, 0]) }] })];
    let parsed = 0;
    let rejected = 0;
    const t0 = performance.now();
    for (let i = 0; i < 20_000; i++) {
      const m = Buffer.from(seeds[i % 2]);
      const kind = i % 4;
      const n = 1 + (i % 5);
      if (kind === 0) for (let k = 0; k < n; k++) m[(i * 7919 + k * 104729) % m.length] ^= 1 << ((i + k) % 8);
      let der: Buffer = m;
      if (kind === 1) der = m.subarray(0, (i * 31) % m.length);
      if (kind === 2) der = Buffer.concat([m, randomBytes(n)]);
      if (kind === 3) {
        der = Buffer.from(m);
        der[(i * 13) % der.length] = randomBytes(1)[0];
      }
      try {
        parseTimeStampReq(der);
        parsed++;
      } catch (e) {
        if (!(e instanceof TspRejection)) throw new Error(`parser threw ${String(e)} for ${der.toString('hex')}`);
        rejected++;
      }
    }
    const ms = performance.now() - t0;
    t.equal(parsed + rejected, 20_000, `${parsed} parsed, ${rejected} rejected in ${Math.round(ms)} ms`);
    t.ok(ms < 20_000, 'bounded time');
    // And through the whole service: every answer parses as a TimeStampResp.
    for (let i = 0; i < 300; i++) {
      const m = Buffer.from(good);
      m[i % m.length] ^= 0xff;
      const a = await tsa.respond(m, 'ecdsa', who);
      parseTimeStampResp(a.der);
    }
    t.pass('300 mutated requests through the service all answered with a TimeStampResp');
  });

  await t.test('clock gate: refuses with timeNotAvailable, resumes by itself', async (t) => {
    const saved = gateState;
    gateState = { ok: false, reason: 'clock UNSYNCED (gpsd): test', state: 'UNSYNCED', source: 'gpsd' };
    const r = parseTimeStampResp((await tsa.respond(good, 'ecdsa', who)).der);
    t.equal(r.status, 2);
    t.equal(r.failInfo, 'timeNotAvailable');
    t.match(r.statusString[0], /^0x0400000A TIME_NOT_AVAILABLE/, 'GM/T 0033 code in the status string');
    gateState = saved;
    t.ok((await tsa.respond(good, 'ecdsa', who)).granted, 'issuing again');
  });

  await t.test('expired TSA certificate: rejection, never a token', async (t) => {
    const saved = gateState;
    gateState = { ...saved, ok: true } as ClockGateResult;
    const far = new Date(Date.now() + 40 * 365 * 86_400_000);
    const g2 = { check: (): ClockGateResult => ({ ok: true, time: far, accuracyMicros: 1000, state: 'SYNCED', source: 'test', development: false, notice: null }) };
    const late = new TsaService({ certs: fx.store.certs, custody: fx.custody, tokens: fx.store.tsaTokens, gate: g2, policies: { policies: [{ oid: POLICY }] } });
    const before = await fx.store.tsaTokens.count();
    const r = parseTimeStampResp((await late.respond(good, 'ecdsa', who)).der);
    t.equal(r.status, 2);
    t.equal(r.failInfo, 'systemFailure');
    t.match(r.statusString[0], /not valid at/);
    t.equal(await fx.store.tsaTokens.count(), before, 'nothing stored');
    gateState = saved;
  });

  await t.test('signing fails: systemFailure, and the record written meanwhile is taken back', async (t) => {
    // A custody whose signer fails: the record (written while signing) must not outlive the failure.
    const failing = {
      signer: async (ref: string) => {
        const real = await fx.custody.signer(ref);
        return { ...real, sign: async () => Promise.reject(new Error('HSM gone')) };
      },
    };
    const before = await fx.store.tsaTokens.count();
    const broken = new TsaService({ certs: fx.store.certs, custody: failing, tokens: fx.store.tsaTokens, gate, policies: { policies: [{ oid: POLICY }] }, log: pino({ level: 'silent' }) as never });
    const r = await broken.respond(good, 'ecdsa', who);
    t.notOk(r.granted);
    t.equal(r.failInfo, 'systemFailure');
    // The insert and the take-back are both durable writes issued by then; let them land.
    await new Promise((res) => setTimeout(res, 300));
    t.equal(await fx.store.tsaTokens.count(), before, 'no record of a token that was never signed');
  });

  await t.test('the store fails while the token is being signed: systemFailure, the process carries on', async (t) => {
    const failingStore = { ...fx.store.tsaTokens, insert: async () => Promise.reject(new Error('disk gone')) };
    const svc = new TsaService({ certs: fx.store.certs, custody: fx.custody, tokens: failingStore, gate, policies: { policies: [{ oid: POLICY }] }, log: pino({ level: 'silent' }) as never });
    const r = await svc.respond(good, 'ecdsa', who);
    t.notOk(r.granted, 'no token without its record');
    t.equal(r.failInfo, 'systemFailure');
    await new Promise((res) => setTimeout(res, 50)); // an unhandled rejection would have surfaced by now
  });

  await t.test('serials: colliding random source draws again; 100 000 unique; unique after reopen', async (t) => {
    // A random source that repeats: the store's uniqueness check makes the TSA draw again.
    const fixed = randomBytes(10);
    let calls = 0;
    // One fixed genTime: serials carry it in their first 6 octets, so the random part alone collides.
    const at = new Date();
    const fixedGate = { check: (): ClockGateResult => ({ ...(gateState as Extract<ClockGateResult, { ok: true }>), time: at }) };
    const repeating = new TsaService({ certs: fx.store.certs, custody: fx.custody, tokens: fx.store.tsaTokens, gate: fixedGate, policies: { policies: [{ oid: POLICY }] }, random: () => (calls++ % 3 === 2 ? randomBytes(10) : fixed) });
    const a = await repeating.respond(good, 'ecdsa', who);
    const b = await repeating.respond(good, 'ecdsa', who);
    t.ok(a.granted && b.granted);
    t.not(a.serial, b.serial, 'second token did not reuse the first serial');
    t.equal(calls, 3, 'the colliding draw was refused by the store and drawn again');
    t.equal(a.serial!.slice(0, 12), at.getTime().toString(16).padStart(12, '0'), 'serial starts with genTime in milliseconds');
    t.equal(a.serial!.length, 32, '16-octet serial (128 bits, 80 of them random)');

    const serials = new Set<string>();
    const t0 = performance.now();
    const N = 100_000;
    const conc = 64;
    let next = 0;
    const sm3req = buildTimeStampReq({ hash: 'sm3', hashedMessage: randomBytes(32) });
    await Promise.all(
      Array.from({ length: conc }, async () => {
        while (next < N) {
          next++;
          const ans = await tsa.respond(sm3req, 'sm2', who);
          if (!ans.granted) throw new Error(ans.reason);
          serials.add(ans.serial!);
        }
      }),
    );
    t.equal(serials.size, N, `${N} tokens, ${serials.size} distinct serials (${Math.round(N / ((performance.now() - t0) / 1000))} tokens/s in process, SM2)`);
    const count = await fx.store.tsaTokens.count();
    t.ok(count >= N, `${count} records stored`);

    // Reopen the store (as after a restart): every earlier serial is still on record.
    const dir = fx.dir;
    const sample = [...serials].slice(0, 1000);
    await fx.store.close();
    const reopened = await openStore(dir);
    try {
      for (const s of sample) if (!(await reopened.tsaTokens.has(s))) t.fail(`serial ${s} lost across reopen`);
      t.equal(await reopened.tsaTokens.count(), count, 'all records survive a reopen');
      t.notOk(await reopened.tsaTokens.insert({ ...(await reopened.tsaTokens.get(sample[0]))! }), 'an existing serial is never taken again');
    } finally {
      await reopened.close();
    }
    // fx.close() closes the already closed store: that is a no-op.
  });
});
