// Node's HTTPS with its private key in the HSM: a P-256 key generated through the custody
// (non-extractable token object), a self-signed certificate for it, and handshakes from curl,
// openssl s_client and Node's own client over TLS 1.2 and 1.3. The served certificate must
// carry the HSM key, and the engine's signature counter must show the token did the signing.
import t, { type Test } from 'tap';
import { createServer, get, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import type { PKCS11 } from 'pkcs11js';
import { makeTestToken } from '../helpers/softhsm.js';
import { openPkcs11Custody, type Pkcs11Custody } from '../../firmware-bridge/pkcs11/pkcs11-custody.js';
import { registerHsmTlsEngine, type HsmTlsEngine } from '../../firmware-bridge/pkcs11/tls-engine.js';
import { createSm2Signer, generateSm2KeyPair, sm2SpkiFromPublicKey } from '../../appliance/src/crypto/sm2.js';
import { buildSelfSignedCertificate, derToPem } from '../../appliance/src/pki/self-signed.js';
import { InMemoryKeyRegistry } from '../helpers/in-memory-key-registry.js';

/** Runs a peer tool with stdin at EOF (s_client then closes after the handshake); never blocks our event loop. */
function run(cmd: string, args: string[]): Promise<{ stdout: string; stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 15_000 });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    c.on('error', reject);
    c.on('close', (code) => resolve({ stdout, stderr, code }));
  });
}


const token = makeTestToken();
let module: PKCS11 | undefined;
let engine: HsmTlsEngine | undefined;
let custody: Pkcs11Custody;

t.before(async () => {
  custody = await openPkcs11Custody(
    {
      module: token.module,
      tokenLabel: token.label,
      pin: token.pin,
      softwareSm2: { generate: generateSm2KeyPair, signer: (d) => createSm2Signer(d), spki: sm2SpkiFromPublicKey },
      onReinitialize: () => engine?.invalidateSessions(),
      loadModule: (path) => {
        const p = new pkcs11js.PKCS11();
        p.load(path);
        module = p;
        return p;
      },
    },
    new InMemoryKeyRegistry(),
  );
  engine = registerHsmTlsEngine({ module: token.module, tokenLabel: token.label, pin: token.pin });
});
t.teardown(async () => {
  await custody?.close();
  rmSync(token.dir, { recursive: true, force: true });
});

interface Served {
  server: Server;
  port: number;
  certPem: string;
  certFile: string;
  spki: Buffer;
}

async function serve(tt: Test, algorithm: 'ecdsa-p256' | 'ecdsa-p384', label: string): Promise<Served> {
  const info = await custody.generate({ algorithm, label, purpose: 'TLS server key of the appliance' });
  const signer = await custody.signer(info.uri);
  const der = await buildSelfSignedCertificate({ signer, subjectCN: 'yiqian.test', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], days: 7 });
  const certPem = derToPem(der);
  const certFile = join(token.dir, `${label}.pem`);
  writeFileSync(certFile, certPem);
  const e = engine as HsmTlsEngine;
  const server = createServer(
    { cert: certPem, privateKeyEngine: e.privateKeyEngine, privateKeyIdentifier: e.privateKeyIdentifier(label), minVersion: 'TLSv1.2' },
    (_req, res) => {
      res.end(`hello from the HSM key ${label}`);
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  tt.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { server, port: (server.address() as AddressInfo).port, certPem, certFile, spki: info.publicKeyInfo };
}

/** Node's client with full verification against the self-signed certificate; returns body and the served key. */
function nodeFetch(s: Served, version: 'TLSv1.2' | 'TLSv1.3'): Promise<{ body: string; protocol: string | null; served: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port: s.port, path: '/', ca: s.certPem, minVersion: version, maxVersion: version, agent: false }, (res) => {
      const sock = res.socket as TLSSocket;
      const served = new X509Certificate(sock.getPeerCertificate(true).raw).publicKey.export({ type: 'spki', format: 'der' });
      const protocol = sock.getProtocol();
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ body, protocol, served }));
    });
    req.on('error', reject);
  });
}

t.test('ECDSA P-256 TLS key in the HSM: curl, openssl s_client and node https over TLS 1.2 and 1.3', async (tt) => {
  const s = await serve(tt, 'ecdsa-p256', 'device-tls');
  const e = engine as HsmTlsEngine;
  const before = e.stats().signs;
  let handshakes = 0;

  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    const r = await nodeFetch(s, version);
    handshakes++;
    tt.equal(r.protocol, version, `node https: ${version} negotiated`);
    tt.equal(r.body, 'hello from the HSM key device-tls');
    tt.ok(r.served.equals(s.spki), `node https ${version}: the served certificate carries the HSM key`);
  }

  for (const [flag, max] of [['--tlsv1.2', '1.2'], ['--tlsv1.3', '1.3']] as const) {
    const k = await run('curl', ['-sk', flag, '--tls-max', max, '-w', '\\n%{http_code}', `https://127.0.0.1:${s.port}/`]);
    tt.equal(k.code, 0, `curl TLS ${max} exit code`);
    handshakes++;
    tt.equal(k.stdout, 'hello from the HSM key device-tls\n200', `curl -sk TLS ${max}`);
  }
  const verified = await run('curl', ['-s', '--cacert', s.certFile, `https://127.0.0.1:${s.port}/`]);
  handshakes++;
  tt.equal(verified.stdout, 'hello from the HSM key device-tls', 'curl with the certificate as trust anchor (signature checked)');

  for (const v of ['-tls1_2', '-tls1_3']) {
    const o = await run('openssl', ['s_client', '-connect', `127.0.0.1:${s.port}`, v, '-CAfile', s.certFile, '-verify_ip', '127.0.0.1', '-verify_return_error', '-showcerts']);
    handshakes++;
    tt.match(o.stdout, /Verify return code: 0 \(ok\)/, `openssl s_client ${v}: verified`);
    tt.match(o.stdout + o.stderr, v === '-tls1_3' ? /TLSv1\.3/ : /TLSv1\.2/, `openssl s_client ${v}: protocol`);
    tt.match(o.stdout + o.stderr, /Peer signature type: ECDSA/, `openssl s_client ${v}: ECDSA handshake signature`);
    const pem = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(o.stdout)?.[0] as string;
    tt.ok(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' }).equals(s.spki), `openssl s_client ${v}: served key is the HSM key`);
  }
  const after = e.stats();
  tt.ok(after.signs - before >= handshakes, `the token signed every handshake (${after.signs - before} signatures for ${handshakes} handshakes)`);
  tt.equal(after.signFailures, 0);
});

t.test('P-384 key; engine recovers when the sessions are closed underneath', async (tt) => {
  const s = await serve(tt, 'ecdsa-p384', 'tls-p384');
  const r = await nodeFetch(s, 'TLSv1.3');
  tt.ok(r.served.equals(s.spki), 'P-384 served key is the HSM key');
  const p = module as PKCS11;
  const slot = p.C_GetSlotList(true).find((x) => p.C_GetTokenInfo(x).label.trim() === token.label) as Buffer;
  const reopens = (engine as HsmTlsEngine).stats().reopens;
  p.C_CloseAllSessions(slot);
  const again = await nodeFetch(s, 'TLSv1.2');
  tt.equal(again.body, 'hello from the HSM key tls-p384', 'handshake works after C_CloseAllSessions');
  tt.ok((engine as HsmTlsEngine).stats().reopens > reopens, 'the engine opened a new session');
  const signer = await custody.signer('pkcs11:object=tls-p384');
  tt.ok((await signer.sign(Buffer.from('x'))).length > 0, 'and the custody recovered too');
});

t.test('a key the token does not have is a clear error at context creation', async (tt) => {
  const e = engine as HsmTlsEngine;
  const tls = await import('node:tls');
  tt.throws(() => tls.createSecureContext({ privateKeyEngine: e.privateKeyEngine, privateKeyIdentifier: e.privateKeyIdentifier('no-such-key') }), /yiqian-pkcs11 engine.*private key not found on the token/);
  tt.throws(() => tls.createSecureContext({ privateKeyEngine: e.privateKeyEngine, privateKeyIdentifier: 'pkcs11:token=other;object=device-tls' }), /key URI names another token/);
  tt.throws(() => tls.createSecureContext({ privateKeyEngine: e.privateKeyEngine, privateKeyIdentifier: 'pkcs11:token=yiqian;object=device-tls;type=public' }), /key URI names another token or object type/);
  // A key with a matching label but not in hsm custody (e.g. an RSA key) is refused with a reason.
  await custody.generate({ algorithm: 'rsa-2048', label: 'rsa-tls', purpose: 'x' });
  tt.throws(() => tls.createSecureContext({ privateKeyEngine: e.privateKeyEngine, privateKeyIdentifier: e.privateKeyIdentifier('rsa-tls') }), /not an ECDSA P-256\/P-384 key/);
});

t.test('engine registration errors are typed, and leave the working registration alone', async (tt) => {
  const err = (f: () => unknown): { code?: string; status?: number } => {
    try {
      f();
    } catch (e) {
      return e as { code?: string; status?: number };
    }
    return {};
  };
  const unknown = err(() => registerHsmTlsEngine({ module: token.module, tokenLabel: 'no-such-token', pin: token.pin }));
  tt.equal(unknown.code, 'HSM_TOKEN_NOT_FOUND', 'unknown token label');
  const other = err(() => registerHsmTlsEngine({ module: '/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so', tokenLabel: token.label, pin: token.pin }));
  tt.equal(other.code, 'HSM_UNAVAILABLE', 'a second module in the same process is refused');
  const s = await serve(tt, 'ecdsa-p256', 'after-errors');
  tt.equal((await nodeFetch(s, 'TLSv1.3')).body, 'hello from the HSM key after-errors', 'the engine still serves the configured token');
});
