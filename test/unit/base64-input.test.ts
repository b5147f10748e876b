// Strict base64 of request bodies (http/base64-input.ts): what each policy takes and refuses.
import t from 'tap';
import { decodeBase64 } from '../../appliance/src/http/base64-input.js';

const bytes = Buffer.from([0xfb, 0xff, 0xbf, 0x00, 0x01]); // '+/+/AAE=' in standard, '-_-_AAE' URL-safe

t.test('standard, padded: the only form the default policy takes', async (t) => {
  t.same(decodeBase64(bytes.toString('base64')), bytes);
  t.same(decodeBase64(''), Buffer.alloc(0), 'empty is zero bytes');
  for (const s of ['+/+/AAE', '-_-_AAE', '+/+/\nAAE=', ' +/+/AAE=', '+/+/AAE==', '+/+/AA=E', '+/+/AAE*', '+/+/A']) {
    t.equal(decodeBase64(s), undefined, JSON.stringify(s));
  }
});

t.test('whitespace: line breaks of wrapped base64 are dropped', async (t) => {
  t.same(decodeBase64('+/+/\r\nAAE=\n', { whitespace: true }), bytes);
  t.equal(decodeBase64('+/+/\nAAE', { whitespace: true }), undefined, 'still padded');
  t.equal(decodeBase64('-_-_AAE', { whitespace: true }), undefined, 'still standard');
});

t.test('urlSafe: RFC 4648 §5 without padding as well', async (t) => {
  t.same(decodeBase64('-_-_AAE', { urlSafe: true }), bytes);
  t.same(decodeBase64('+/+/AAE=', { urlSafe: true }), bytes, 'standard still taken');
  t.equal(decodeBase64('-_-_A', { urlSafe: true }), undefined, 'a length of 4k+1 holds no whole byte');
  t.equal(decodeBase64('-_-_AA=', { urlSafe: true }), undefined, 'no padding in the URL-safe form');
  t.equal(decodeBase64('-_+/AAE', { urlSafe: true }), undefined, 'no mixing of the alphabets');
});

t.test('canonical input (the quick round trip) and non-canonical input (the full checks) decode alike', async (t) => {
  // 'QR==' has non-zero unused bits: it does not encode back to itself, so the full check decides.
  t.same(decodeBase64('QR=='), Buffer.from('A'), 'non-canonical trailing bits are still base64');
  t.same(decodeBase64('QQ=='), Buffer.from('A'));
  for (let n = 0; n < 64; n++) {
    const b = Buffer.from(Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff));
    const s = b.toString('base64');
    t.same(decodeBase64(s), b, `${n} bytes`);
    t.same(decodeBase64(s.replace(/(.{16})/g, '$1\n'), { whitespace: true }), b, `${n} bytes, wrapped`);
    if (n > 0) t.equal(decodeBase64(`${s.slice(0, -1)}*`), undefined, `${n} bytes, last character damaged`);
  }
});
