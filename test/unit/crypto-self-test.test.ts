// The start-up known-answer tests run and pass on this build.
import t from 'tap';
import { runCryptoSelfTest } from '../../appliance/src/crypto/self-test.js';

t.test('runCryptoSelfTest passes every known-answer test', async (t) => {
  const r = await runCryptoSelfTest();
  t.same(r.results.map((x) => x.name), ['sm3-kat', 'sm4-ecb-kat', 'hmac-sm3-kat', 'sm2-verify-kat', 'sm2-sign-verify']);
  for (const x of r.results) t.ok(x.ok, `${x.name} ${x.error ?? ''}`);
  t.equal(r.ok, true);
});
