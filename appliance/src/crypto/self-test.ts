// Power-on known-answer tests of the algorithm suite (GB/T 38629-2020 requires algorithm
// self-tests; on failure the caller raises an alarm and stops). Vectors: STANDARDS.md §1.
import { Codes, fail } from '../errors.js';
import { digest, hmac } from './hash.js';
import { sm4EncryptBlock } from './sm4.js';
import { generateSm2KeyPair, sm2Backend, sm2Sign, sm2Verify } from './sm2.js';

export interface SelfTestResult {
  name: string;
  ok: boolean;
  /** Why it failed (no secrets). */
  error?: string;
}

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function expectEqual(actual: Buffer, expected: Buffer, what: string): void {
  if (!actual.equals(expected)) fail(Codes.INTERNAL, 500, `自检失败: ${what}`, `self-test mismatch: ${what}`);
}

const TESTS: { name: string; run: () => Promise<void> | void }[] = [
  {
    // GB/T 32905-2016 Annex A.1
    name: 'sm3-kat',
    run: () => expectEqual(digest('sm3', Buffer.from('abc')), hex('66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0'), 'SM3("abc")'),
  },
  {
    // GB/T 32907-2016 Annex A.1
    name: 'sm4-ecb-kat',
    run: () => {
      const k = hex('0123456789abcdeffedcba9876543210');
      expectEqual(sm4EncryptBlock(k, k), hex('681edf34d206965e86b3e94f536e4246'), 'SM4-ECB');
    },
  },
  {
    // HMAC-SM3(key "Jefe", "what do ya want for nothing?"), the RFC 4231 case 2 inputs; value
    // computed by OpenSSL 3.0 `openssl mac`, node:crypto and sm-crypto 0.5 alike [V].
    name: 'hmac-sm3-kat',
    run: () =>
      expectEqual(
        hmac('sm3', Buffer.from('Jefe'), Buffer.from('what do ya want for nothing?')),
        hex('2e87f1d16862e6d964b50a5200bf2b10b764faa9680a296a2405f24bec39f882'),
        'HMAC-SM3',
      ),
  },
  {
    // sm2p256v1, default ID (STANDARDS.md §1 vector 3); a flipped bit must fail.
    name: 'sm2-verify-kat',
    run: async () => {
      const pub = hex(`04 8356e642a40ebd18d29ba3532fbd9f3bbee8f027c3f6f39a5ba2f870369f9988
                         981f5efe55d1c5cdf6c0ef2b070847a14f7fdf4272a8df09c442f3058af94ba1`);
      const sig = hex(`3044 0220 5b3a799bd94c9063120d7286769220af6b0fa127009af3e873c0e8742edc5f89
                            0220 097968a4c8b040fd548d1456b33f470cabd8456bfea53e8a828f92f6d4bdcd77`);
      const msg = Buffer.from('ShangMi SM2 Sign Standard');
      if (!(await sm2Verify(pub, msg, sig))) fail(Codes.INTERNAL, 500, '自检失败: SM2 验签', 'SM2 known signature did not verify');
      const bad = Buffer.from(msg);
      bad[0] ^= 1;
      if (await sm2Verify(pub, bad, sig)) fail(Codes.INTERNAL, 500, '自检失败: SM2 验签', 'SM2 verify accepted an altered message');
    },
  },
  {
    // Pair-wise consistency: sign with a fresh key, verify, and reject an altered message.
    name: 'sm2-sign-verify',
    run: async () => {
      const { privateKey, publicKey } = generateSm2KeyPair();
      const msg = Buffer.from('yiqian self-test');
      const sig = await sm2Sign(privateKey, msg);
      if (!(await sm2Verify(publicKey, msg, sig))) fail(Codes.INTERNAL, 500, '自检失败: SM2 签名', 'SM2 signature did not verify');
      if (await sm2Verify(publicKey, Buffer.from('yiqian self-tesT'), sig)) fail(Codes.INTERNAL, 500, '自检失败: SM2 签名', 'SM2 verify accepted an altered message');
    },
  },
];

/** Runs every known-answer test; ok only if all pass. Never throws. */
export async function runCryptoSelfTest(): Promise<{ ok: boolean; backend: string; results: SelfTestResult[] }> {
  const results: SelfTestResult[] = [];
  let backend = 'unknown';
  try {
    backend = sm2Backend();
  } catch (e) {
    results.push({ name: 'sm2-backend', ok: false, error: (e as Error).message });
  }
  for (const t of TESTS) {
    try {
      await t.run();
      results.push({ name: t.name, ok: true });
    } catch (e) {
      results.push({ name: t.name, ok: false, error: (e as Error).message });
    }
  }
  return { ok: results.every((r) => r.ok), backend, results };
}
