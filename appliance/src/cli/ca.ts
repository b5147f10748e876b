// `yiqian ca export`: the two root certificates as one PEM bundle — what relying parties
// (browsers, HIS/EMR clients, OpenSSL, Java trust stores) install as trust anchors.
// `yiqian ca list`: the appliance's CAs with algorithm, key, validity and CRL number.
import { createHash } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadConfig } from '../config/config.js';
import { createAuthorities } from '../pki/authorities.js';
import { openStore } from '../store/open-store.js';
import { type Command, dataDir, dataHelp, dataOption, jsonHelp, jsonOption, printTable } from './command.js';

async function withAuthorities<T>(dir: string, work: (a: ReturnType<typeof createAuthorities>) => Promise<T>): Promise<T> {
  loadConfig(dir); // NOT_INITIALISED with its hint before anything else
  const store = await openStore(dir, { readOnly: true });
  try {
    return await work(createAuthorities({ cas: store.cas }));
  } finally {
    await store.close();
  }
}

export const caExportCommand: Command = {
  name: 'ca export',
  summary: 'write the root CA certificates (SM2 and ECDSA) as one PEM bundle',
  usage: '--data DIR [--out FILE] [--json]',
  options: { ...dataOption, ...jsonOption, out: { type: 'string' } },
  help: { ...dataHelp, ...jsonHelp, out: 'write the bundle to FILE instead of standard output' },
  async run(values) {
    const dir = dataDir(values);
    const { pem, roots } = await withAuthorities(dir, async (a) => ({
      pem: await a.rootsPem(),
      roots: (await a.list()).filter((r) => r.role === 'root'),
    }));
    const out = typeof values.out === 'string' ? resolve(values.out) : undefined;
    if (out) {
      const tmp = `${out}.tmp-${process.pid}`;
      writeFileSync(tmp, pem, { mode: 0o644 });
      renameSync(tmp, out);
    }
    if (values.json) {
      console.log(
        JSON.stringify({
          ...(out ? { file: out } : { pem }),
          roots: roots.map((r) => ({
            id: r.id,
            algorithm: r.algorithm,
            subject: r.subject,
            serial: r.serial,
            notAfter: r.notAfter,
            sha256: createHash('sha256').update(Buffer.from(r.certificate, 'base64')).digest('hex'),
          })),
        }),
      );
    } else if (out) {
      console.log(`wrote ${roots.length} root certificates to ${out}`);
    } else {
      process.stdout.write(pem);
    }
  },
};

export const caListCommand: Command = {
  name: 'ca list',
  summary: 'list the certificate authorities (hierarchy, role, algorithm, key, validity, CRL number)',
  usage: '--data DIR [--json]',
  options: { ...dataOption, ...jsonOption },
  help: { ...dataHelp, ...jsonHelp },
  async run(values) {
    const cas = await withAuthorities(dataDir(values), (a) => a.list());
    const rows = cas.map(({ certificate: _c, ...r }) => r);
    if (values.json) {
      console.log(JSON.stringify(rows));
      return;
    }
    printTable(rows as unknown as Record<string, unknown>[], ['id', 'role', 'algorithm', 'subject', 'serial', 'notAfter', 'keyUri', 'crlNumber']);
  },
};

export const caCommands: Command[] = [caExportCommand, caListCommand];
