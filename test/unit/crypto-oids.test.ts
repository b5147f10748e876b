// OID registry and DER primitives: the encodings STANDARDS.md §1 quotes, asn1js as an
// independent decoder, and the strictness rules of the DER reader.
import t from 'tap';
import * as asn1js from 'asn1js';
import { DerError, decodeOid, encodeOid, fromPem, integer, oid, readTlv, readUnsigned, readWhole, toPem } from '../../appliance/src/crypto/der.js';
import { OID, OID_TABLE, lookupOid, oidName, oidOf } from '../../appliance/src/crypto/oids.js';

t.test('DER of the SM OIDs as GB/T 33560 gives them', async (t) => {
  t.equal(oid(OID.sm2).toString('hex'), '06082a811ccf5501822d');
  t.equal(oid(OID.sm2WithSm3).toString('hex'), '06082a811ccf55018375');
  t.equal(oid(OID.sm3).toString('hex'), '06082a811ccf55018311');
  t.equal(OID.sm2p256v1, OID.sm2);
});

t.test('every registry entry encodes and decodes, and asn1js reads the same OID', async (t) => {
  const seen = new Set<string>();
  for (const e of OID_TABLE) {
    t.notOk(seen.has(e.oid), `${e.name} unique`);
    seen.add(e.oid);
    const der = oid(e.oid);
    const parsed = asn1js.fromBER(new Uint8Array(der));
    t.equal((parsed.result as asn1js.ObjectIdentifier).valueBlock.toString(), e.oid, `asn1js reads ${e.name}`);
    t.equal(decodeOid(encodeOid(e.oid)), e.oid);
    t.equal(lookupOid(e.oid)?.name, e.name);
    t.equal(oidName(e.oid), e.name);
    t.equal(oidOf(e.name), e.oid);
  }
  t.ok(Object.isFrozen(OID_TABLE) && Object.isFrozen(OID_TABLE[0]) && Object.isFrozen(OID));
  t.equal(oidName('1.2.3.4'), '1.2.3.4', 'unknown OIDs name themselves');
  t.equal(lookupOid('1.2.156.10197.1.502'), undefined, "BouncyCastle's SM2-with-SHA1 arc is not an SM2 variant");
  t.equal(decodeOid(encodeOid('2.999.3')), '2.999.3', 'joint-iso arc with a first arc over 39');
});

t.test('DER reader is strict', async (t) => {
  const bad: [string, string][] = [
    ['30800201010201010000', 'indefinite length'],
    ['308106020101020101', 'non-minimal long-form length'],
    ['300602010102010100', 'trailing byte'],
    ['3007020101020101', 'truncated'],
    ['1f0100', 'high tag number'],
  ];
  for (const [h, why] of bad) t.throws(() => readWhole(Buffer.from(h, 'hex'), 0x30), DerError, why);
  const int = (h: string): bigint => readUnsigned(readTlv(Buffer.from(h, 'hex')).tlv);
  t.equal(int('020100'), 0n);
  t.equal(int('02020080'), 128n);
  t.throws(() => int('0202007f'), DerError, 'non-minimal INTEGER');
  t.throws(() => int('020180'), DerError, 'negative INTEGER');
  t.throws(() => int('0200'), DerError, 'empty INTEGER');
  t.equal(integer(128n).toString('hex'), '02020080');
  t.equal(integer(0).toString('hex'), '020100');
  t.throws(() => decodeOid(Buffer.from('2a8001', 'hex')), DerError, 'non-minimal OID arc');
  t.throws(() => decodeOid(Buffer.from('2a8001', 'hex')), DerError, 'and again: a refusal is not remembered as a value');
  t.throws(() => decodeOid(Buffer.from('2a86', 'hex')), DerError, 'truncated OID');
  // Decoded OIDs are cached by their bytes: the same answers the second time, and distinct
  // bytes never share an entry (a UUID arc beyond 2^53 included).
  for (const o of ['1.2.840.113549.1.9.4', '2.25.329800735698586629295641978511506172918', '0.9.2342.19200300.100.1.1', '2.999.1']) {
    t.equal(decodeOid(encodeOid(o)), o, o);
    t.equal(decodeOid(Buffer.from(encodeOid(o))), o, `${o}, cached`);
  }
});

t.test('PEM round trip', async (t) => {
  const der = Buffer.from('3003020101', 'hex');
  const pem = toPem('TEST', der);
  t.match(pem, /^-----BEGIN TEST-----\nMAMCAQE=\n-----END TEST-----\n$/);
  t.same(fromPem('junk\n' + pem + pem), [{ label: 'TEST', der }, { label: 'TEST', der }]);
  t.throws(() => fromPem('-----BEGIN X-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END X-----'), DerError);
});
