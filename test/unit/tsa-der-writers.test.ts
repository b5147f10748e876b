// The hand-written DER of the TSA hot path against independent encoders: ecdsaRawToDer against
// @peculiar/asn1-ecc's schema serializer and node:crypto (OpenSSL) verifying the result, the
// GeneralizedTime writer against the ISO-string encoding it replaced, the TSTInfo serial
// INTEGER against der.ts's BigInt path; and the pooled CSPRNG serial octets.
import t from 'tap';
import { createSign, createVerify, generateKeyPairSync, randomBytes } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import { ECDSASigValue } from '@peculiar/asn1-ecc';
import { ecdsaDerToRaw, ecdsaRawToDer } from '../../appliance/src/asn1/ecdsa-signature.js';
import { encodeTstInfo, generalizedTimeMillis } from '../../appliance/src/asn1/tsp.js';
import { children, integer, readWhole, Tag } from '../../appliance/src/crypto/der.js';
import { pooledRandomOctets } from '../../appliance/src/crypto/random-pool.js';

/** The schema encoder's answer for raw r‖s (the implementation ecdsaRawToDer replaced). */
function schemaDer(raw: Buffer): Buffer {
  const int = (b: Buffer): ArrayBuffer => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    const v = b[i] & 0x80 ? Buffer.concat([Buffer.from([0]), b.subarray(i)]) : Buffer.from(b.subarray(i));
    return v.buffer.slice(v.byteOffset, v.byteOffset + v.length) as ArrayBuffer;
  };
  const half = raw.length / 2;
  return Buffer.from(AsnConvert.serialize(new ECDSASigValue({ r: int(raw.subarray(0, half)), s: int(raw.subarray(half)) })));
}

t.test('ecdsaRawToDer: same octets as the schema encoder, round trip, OpenSSL verifies', async (t) => {
  const cases: Buffer[] = [];
  for (const size of [32, 48, 66]) {
    for (let i = 0; i < 300; i++) {
      const raw = randomBytes(2 * size);
      // Leading zero octets and top bits, on r, s or both.
      const k = i % 6;
      if (k === 1) raw.fill(0, 0, 1 + (i % 4));
      if (k === 2) raw.fill(0, size, size + 1 + (i % 5));
      if (k === 3) raw[0] |= 0x80;
      if (k === 4) raw[size] &= 0x7f;
      if (k === 5) raw.fill(0, 0, size); // r = 0
      cases.push(raw);
    }
  }
  cases.push(Buffer.alloc(64), Buffer.from([0x80, 0x01]), Buffer.alloc(2 * 0x90, 0xff));
  let same = 0;
  for (const raw of cases) if (ecdsaRawToDer(raw).equals(schemaDer(raw))) same++;
  t.equal(same, cases.length, `${cases.length} raw signatures encode exactly as the schema encoder does`);
  let back = 0;
  for (const raw of cases.slice(0, 900)) if (ecdsaDerToRaw(ecdsaRawToDer(raw), raw.length / 2).equals(raw)) back++;
  t.equal(back, 900, 'ecdsaDerToRaw(ecdsaRawToDer(raw)) is raw');
  const long = ecdsaRawToDer(Buffer.alloc(2 * 0x90, 0xff));
  t.equal(long[1], 0x82, 'a body over 255 octets gets a two-octet long-form length');

  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  let verified = 0;
  for (let i = 0; i < 50; i++) {
    const data = randomBytes(40);
    const raw = createSign('sha256').update(data).sign({ key: privateKey, dsaEncoding: 'ieee-p1363' });
    if (createVerify('sha256').update(data).verify({ key: publicKey, dsaEncoding: 'der' }, ecdsaRawToDer(raw))) verified++;
  }
  t.equal(verified, 50, 'OpenSSL verifies every converted P-256 signature');

  for (const bad of [Buffer.alloc(0), Buffer.alloc(63), Buffer.alloc(0x4002)]) {
    t.throws(() => ecdsaRawToDer(bad), { code: 'INVALID_SIGNATURE_ENCODING' }, `${bad.length} octets refused`);
  }
});

/** The GeneralizedTime encoding generalizedTimeMillis had before (ISO string and regexes). */
function isoGeneralizedTime(d: Date): Buffer {
  const iso = d.toISOString();
  let frac = iso.slice(20, 23).replace(/0+$/, '');
  frac = frac ? `.${frac}` : '';
  const s = Buffer.from(iso.slice(0, 19).replace(/[-:T]/g, '') + frac + 'Z', 'ascii');
  return Buffer.concat([Buffer.from([0x18, s.length]), s]);
}

t.test('generalizedTimeMillis: same octets as the ISO-string encoding', async (t) => {
  const base = Date.UTC(2026, 0, 1);
  const dates = [new Date(Date.UTC(2026, 11, 31, 23, 59, 59, 999)), new Date(Date.UTC(2000, 1, 29, 0, 0, 0, 0)), new Date(Date.UTC(1999, 0, 1, 1, 2, 3, 100)), new Date(Date.UTC(2049, 5, 6, 7, 8, 9, 120)), new Date(Date.UTC(2030, 0, 1, 0, 0, 0, 1))];
  for (let i = 0; i < 5000; i++) dates.push(new Date(base + Math.floor(Math.random() * 40 * 365 * 86_400_000)));
  let same = 0;
  for (const d of dates) if (generalizedTimeMillis(d).equals(isoGeneralizedTime(d))) same++;
  t.equal(same, dates.length, `${dates.length} instants encode exactly as before`);
  t.equal(generalizedTimeMillis(new Date(Date.UTC(2026, 4, 1, 2, 0, 0, 120))).subarray(2).toString('ascii'), '20260501020000.12Z', 'trailing zeros of the fraction dropped');
  t.equal(generalizedTimeMillis(new Date(Date.UTC(2026, 4, 1, 2, 0, 0, 0))).subarray(2).toString('ascii'), '20260501020000Z', 'no fraction when zero');
  t.throws(() => generalizedTimeMillis(new Date(NaN)), RangeError);
});

t.test('TSTInfo serial: minimal positive INTEGER, as der.ts encodes the same value', async (t) => {
  const mi = Buffer.from('3031300d060960864801650304020105000420' + '00'.repeat(32), 'hex');
  const serials = [Buffer.from([0x01]), Buffer.from([0x00]), Buffer.from([0x80]), Buffer.from([0, 0, 0x7f, 1]), Buffer.from([0, 0x80, 0]), Buffer.alloc(10, 0xff)];
  for (let i = 0; i < 500; i++) serials.push(randomBytes(1 + (i % 20)));
  let same = 0;
  for (const serial of serials) {
    const tst = children(readWhole(encodeTstInfo({ policy: '1.2.3', messageImprintDer: mi, serial, genTime: new Date() }), Tag.SEQUENCE).value);
    if (tst[3].raw.equals(integer(BigInt('0x' + serial.toString('hex'))))) same++;
  }
  t.equal(same, serials.length, `${serials.length} serials encode as integer(BigInt) does`);
});

t.test('pooled serial octets: fresh CSPRNG octets, never handed out twice', async (t) => {
  const seen = new Set<string>();
  let zeroOctets = 0;
  let wrongLength = 0;
  // 2 000 draws of 10 octets cross the 4 096-octet block several times.
  for (let i = 0; i < 2000; i++) {
    const b = pooledRandomOctets(10);
    if (b.length !== 10) wrongLength++;
    seen.add(b.toString('hex'));
    for (const x of b) if (x === 0) zeroOctets++;
  }
  t.equal(wrongLength, 0, '10 octets each');
  t.equal(seen.size, 2000, 'all distinct');
  t.ok(zeroOctets < 200, `zero octets at about 1/256 (${zeroOctets} of 20 000)`);
  const a = pooledRandomOctets(10);
  const copy = Buffer.from(a);
  for (let i = 0; i < 500; i++) pooledRandomOctets(10);
  t.ok(a.equals(copy), 'a returned serial is a copy, not a view into the refilled block');
  t.throws(() => pooledRandomOctets(5000), RangeError);
});
