// `yiqian serve`: HTTPS API and the plain-HTTP public listener until SIGINT/SIGTERM.
import { openAppliance, startServer } from '../main.js';
import { log } from '../log.js';
import { type Command, dataDir, dataHelp, dataOption } from './command.js';

export const serveCommand: Command = {
  name: 'serve',
  summary: 'serve the HTTPS API and the plain-HTTP public endpoints',
  usage: '--data DIR [--listen HOST:PORT] [--listen-http HOST:PORT]',
  options: { ...dataOption, listen: { type: 'string' }, 'listen-http': { type: 'string' } },
  help: {
    ...dataHelp,
    listen: 'HTTPS address (default: $YIQIAN_LISTEN or config, 127.0.0.1:8443)',
    'listen-http': 'plain-HTTP address for CA certificates, CRLs, OCSP, RFC 3161 (default 127.0.0.1:8080)',
  },
  async run(values) {
    const dir = dataDir(values);
    const appliance = await openAppliance(dir);
    let server;
    try {
      server = await startServer(appliance, {
        listen: values.listen as string | undefined,
        listenHttp: values['listen-http'] as string | undefined,
      });
    } catch (e) {
      await appliance.close();
      throw e;
    }
    await appliance.store.audit.append({ actor: 'system', action: 'appliance.start', outcome: 'ok', detail: { https: server.httpsUrl, http: server.httpUrl } });
    console.log(`yiqian is serving (data: ${dir})`);
    console.log(`  HTTPS API:        ${server.httpsUrl}/api/v1/   (health ${server.httpsUrl}/healthz, ${server.httpsUrl}/readyz, ${server.httpsUrl}/metrics)`);
    console.log(`  public HTTP:      ${server.httpUrl}/            (CA certificates, CRLs, OCSP, RFC 3161; device cert ${server.httpUrl}/pki/device.pem)`);
    console.log(`  create an app:    npx yiqian app create --data ${dir} --name "HIS" --key-out his.key`);
    console.log('  stop with Ctrl-C');
    await new Promise<void>((resolveStop) => {
      const stop = (signal: string): void => {
        log.info({ signal }, 'stopping: finishing in-flight requests');
        console.log(`\n${signal}: stopping (finishing in-flight requests) …`);
        server.stop().then(() => { console.log('stopped.'); resolveStop(); }, (e: Error) => { log.error({ err: e.message }, 'stop failed'); resolveStop(); });
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
  },
};
