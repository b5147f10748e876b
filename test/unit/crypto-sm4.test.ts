// SM4 modes of crypto/sm4.ts: the GB/T 32907 vector, and CBC/CTR checked against the modes'
// definitions (NIST SP 800-38A) built from single SM4 block encryptions.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { sm4CbcDecrypt, sm4CbcEncrypt, sm4Ctr, sm4EncryptBlock } from '../../appliance/src/crypto/sm4.js';

const hex = (s: string): Buffer => Buffer.from(s, 'hex');

t.test('SM4-ECB vector (GB/T 32907-2016 A.1, STANDARDS.md §1 vector 5)', async (t) => {
  const k = hex('0123456789abcdeffedcba9876543210');
  t.equal(sm4EncryptBlock(k, k).toString('hex'), '681edf34d206965e86b3e94f536e4246');
});

function xor(a: Buffer, b: Buffer): Buffer {
  return Buffer.from(a.map((x, i) => x ^ b[i]));
}

function cbcByDefinition(key: Buffer, iv: Buffer, pt: Buffer): Buffer {
  const pad = 16 - (pt.length % 16);
  const padded = Buffer.concat([pt, Buffer.alloc(pad, pad)]);
  const out: Buffer[] = [];
  let prev = iv;
  for (let i = 0; i < padded.length; i += 16) {
    prev = sm4EncryptBlock(key, xor(padded.subarray(i, i + 16), prev));
    out.push(prev);
  }
  return Buffer.concat(out);
}

function ctrByDefinition(key: Buffer, iv: Buffer, data: Buffer): Buffer {
  let counter = BigInt('0x' + iv.toString('hex'));
  const out = Buffer.alloc(data.length);
  for (let i = 0; i < data.length; i += 16) {
    const block = Buffer.from(counter.toString(16).padStart(32, '0'), 'hex');
    const ks = sm4EncryptBlock(key, block);
    for (let j = 0; j < 16 && i + j < data.length; j++) out[i + j] = data[i + j] ^ ks[j];
    counter = (counter + 1n) % (1n << 128n);
  }
  return out;
}

t.test('SM4-CBC with PKCS#7 padding', async (t) => {
  const key = randomBytes(16);
  const iv = randomBytes(16);
  for (const len of [0, 1, 15, 16, 17, 100]) {
    const pt = randomBytes(len);
    const ct = sm4CbcEncrypt(key, iv, pt);
    t.same(ct, cbcByDefinition(key, iv, pt), `${len} bytes match the definition`);
    t.same(sm4CbcDecrypt(key, iv, ct), pt, `${len} bytes round trip`);
  }
  const ct = sm4CbcEncrypt(key, iv, Buffer.from('sixteen byte msg'));
  t.throws(() => sm4CbcDecrypt(randomBytes(16), iv, ct.subarray(0, 16)), { code: 'DECRYPTION_FAILED' }, 'bad padding');
  t.throws(() => sm4CbcDecrypt(key, iv, ct.subarray(0, 15)), { code: 'DECRYPTION_FAILED' }, 'not a block multiple');
  t.throws(() => sm4CbcEncrypt(Buffer.alloc(15), iv, Buffer.alloc(1)), { code: 'INVALID_KEY' });
  t.throws(() => sm4CbcEncrypt(key, Buffer.alloc(8), Buffer.alloc(1)), { code: 'BAD_REQUEST' });
});

t.test('SM4-CTR, including a carry across the 64-bit half of the counter', async (t) => {
  const key = randomBytes(16);
  for (const iv of [randomBytes(16), hex('0000000000000000fffffffffffffffe'), hex('ffffffffffffffffffffffffffffffff')]) {
    const data = randomBytes(75);
    const c = sm4Ctr(key, iv, data);
    t.same(c, ctrByDefinition(key, iv, data), `IV ${iv.toString('hex')}`);
    t.same(sm4Ctr(key, iv, c), data, 'CTR is its own inverse');
  }
});
