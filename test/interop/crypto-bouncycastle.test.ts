// SM2 against BouncyCastle (SM3withSM2 with the default ID or an SM2ParameterSpec, and its
// SM2Engine in C1C3C2 mode), both directions, in one JVM per batch.
import t from 'tap';
import { runJavaBatch } from '../helpers/bouncycastle.js';
import { encodeSm2Pkcs8 } from '../../appliance/src/crypto/sm2-der.js';
import { generateSm2KeyPair, sm2Backend, sm2Decrypt, sm2Encrypt, sm2Sign, sm2SpkiFromPublicKey, sm2Verify } from '../../appliance/src/crypto/sm2.js';

const keys = Array.from({ length: 3 }, () => generateSm2KeyPair());
const IDS: (string | undefined)[] = [undefined, 'ALICE123@YAHOO.COM'];
const idHex = (id?: string): string => (id === undefined ? '-' : Buffer.from(id).toString('hex'));
const msgOf = (k: number, id?: string): Buffer => Buffer.from(`bc interop ${k} ${id ?? 'default'}`);
const ptOf = (k: number, len: number): Buffer => Buffer.alloc(len, 0x30 + k);

t.test(`SM2 engine (${sm2Backend()}) ⇄ BouncyCastle`, async (t) => {
  // Batch 1 (one JVM): BC verifies ours, BC signs, BC encrypts, BC decrypts ours, BC's SPKI.
  const lines: string[] = [];
  const expect: { kind: string; k: number; id?: string; len?: number }[] = [];
  for (const [k, { privateKey, publicKey }] of keys.entries()) {
    const spki = sm2SpkiFromPublicKey(publicKey).toString('hex');
    const pkcs8 = encodeSm2Pkcs8(privateKey, publicKey).toString('hex');
    for (const id of IDS) {
      const msg = msgOf(k, id);
      const sig = await sm2Sign(privateKey, msg, id === undefined ? {} : { id: Buffer.from(id) });
      lines.push(`verify ${spki} ${idHex(id)} ${msg.toString('hex')} ${sig.toString('hex')}`);
      expect.push({ kind: 'bc-verifies-ours', k, id });
      // the same signature under a different ID must fail in BC too
      lines.push(`verify ${spki} ${Buffer.from('wrong-id').toString('hex')} ${msg.toString('hex')} ${sig.toString('hex')}`);
      expect.push({ kind: 'bc-rejects-wrong-id', k, id });
      lines.push(`sign ${pkcs8} ${idHex(id)} ${msg.toString('hex')}`);
      expect.push({ kind: 'bc-signs', k, id });
    }
    for (const len of [1, 33, 200]) {
      lines.push(`encrypt ${spki} ${ptOf(k, len).toString('hex')}`);
      expect.push({ kind: 'bc-encrypts', k, len });
      const ours = await sm2Encrypt(publicKey, ptOf(k, len), 'c1c3c2');
      lines.push(`decrypt ${pkcs8} ${ours.toString('hex')}`);
      expect.push({ kind: 'bc-decrypts-ours', k, len });
    }
    lines.push(`pubkey ${pkcs8}`);
    expect.push({ kind: 'bc-spki', k });
  }
  const out = await runJavaBatch('Sm2Interop', lines);
  for (const [i, e] of expect.entries()) {
    const { privateKey, publicKey } = keys[e.k];
    const r = out[i];
    t.notMatch(r, /^error/, `${e.kind} ran: ${r.slice(0, 120)}`);
    const label = `${e.kind} key ${e.k}${e.id !== undefined ? ' id ' + e.id : e.len ? ` ${e.len} bytes` : ' default ID'}`;
    switch (e.kind) {
      case 'bc-verifies-ours':
        t.equal(r, 'true', label);
        break;
      case 'bc-rejects-wrong-id':
        t.equal(r, 'false', label);
        break;
      case 'bc-signs': {
        const opts = e.id === undefined ? {} : { id: Buffer.from(e.id) };
        t.equal(await sm2Verify(publicKey, msgOf(e.k, e.id), Buffer.from(r, 'hex'), opts), true, `we verify ${label}`);
        break;
      }
      case 'bc-encrypts':
        t.same(await sm2Decrypt(privateKey, Buffer.from(r, 'hex'), 'c1c3c2'), ptOf(e.k, e.len!), `we decrypt ${label}`);
        break;
      case 'bc-decrypts-ours':
        t.equal(r, ptOf(e.k, e.len!).toString('hex'), label);
        break;
      case 'bc-spki':
        t.equal(r, sm2SpkiFromPublicKey(publicKey).toString('hex'), 'BC derives the same public key and encodes the same SPKI');
        break;
    }
  }
});
