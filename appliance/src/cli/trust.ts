// `yiqian trust import|list|remove|crl`: the trust store of the signature service from the
// command line (docs/trust-store.md), on the store of a data directory. A running appliance
// sees the change within a minute (its trust cache expires; signing/trust-store.ts).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createCrlFetcher } from '../signing/crl-fetch.js';
import { createTrustStore, type TrustStoreService, type TrustedCaDetail } from '../signing/trust-store.js';
import { type Command, UsageError, dataHelp, dataOption, jsonHelp, jsonOption, printTable, requireString, type Values } from './command.js';
import { CLI_ACTOR, withStore } from './data-store.js';

function withTrust<T>(values: Values, fn: (trust: TrustStoreService) => Promise<T>): Promise<T> {
  return withStore(values, (store) => fn(createTrustStore({ trust: store.trustCas, cas: store.cas })));
}

function readInput(file: string): Buffer {
  try {
    return readFileSync(resolve(file));
  } catch (e) {
    throw new UsageError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

function row(v: TrustedCaDetail): Record<string, unknown> {
  return {
    id: v.id,
    source: v.source,
    anchor: v.anchor ? 'anchor' : 'intermediate',
    subject: v.subject,
    notAfter: v.notAfter,
    crl: v.crl ? `#${v.crl.number ?? '-'} until ${v.crl.nextUpdate ?? '-'}` : '',
    crlUrl: v.crlUrl ?? '',
    ocspUrl: v.ocspUrl ?? '',
    lastFetchError: v.lastFetchError ? `${v.lastFetchError.code} at ${v.lastFetchError.at}` : '',
  };
}

function print(values: Values, v: TrustedCaDetail, what: string): void {
  if (values.json) console.log(JSON.stringify(v));
  else console.log(`${what} ${v.id}  ${v.subject}${v.crl ? `  CRL #${v.crl.number ?? '-'} (${v.crl.entries} entries, next update ${v.crl.nextUpdate ?? '-'})` : ''}`);
}

export const trustImportCommand: Command = {
  name: 'trust import',
  summary: 'import an external CA certificate into the trust store (self-signed: trust anchor)',
  usage: '--data DIR --cert FILE [--crl-url URL [--crl-hours N]] [--ocsp-url URL] [--json]',
  options: { ...dataOption, ...jsonOption, cert: { type: 'string' }, 'crl-url': { type: 'string' }, 'crl-hours': { type: 'string' }, 'ocsp-url': { type: 'string' } },
  help: {
    ...dataHelp,
    ...jsonHelp,
    cert: 'the CA certificate, PEM or DER',
    'crl-url': 'download the CA’s CRL from this http(s) URL on a schedule',
    'crl-hours': 'hours between CRL downloads (default 24)',
    'ocsp-url': 'ask this OCSP responder for the status of certificates the CA issued',
  },
  async run(values) {
    const cert = readInput(requireString(values, 'cert'));
    const hoursText = values['crl-hours'];
    let crlFetchHours: number | undefined;
    if (typeof hoursText === 'string') {
      if (!/^\d{1,4}$/.test(hoursText)) throw new UsageError('--crl-hours must be a whole number of hours');
      crlFetchHours = Number(hoursText);
    }
    const v = await withTrust(values, (t) =>
      t.importCa(cert, { crlUrl: values['crl-url'] as string | undefined, crlFetchHours, ocspUrl: values['ocsp-url'] as string | undefined }, CLI_ACTOR),
    );
    print(values, v, v.anchor ? 'imported trust anchor' : 'imported intermediate CA');
  },
};

export const trustListCommand: Command = {
  name: 'trust list',
  summary: 'list the trust store: the appliance’s own CAs and the imported ones, with their CRLs',
  usage: '--data DIR [--json]',
  options: { ...dataOption, ...jsonOption },
  help: { ...dataHelp, ...jsonHelp },
  async run(values) {
    const list = await withTrust(values, (t) => t.list());
    if (values.json) {
      console.log(JSON.stringify(list));
      return;
    }
    printTable(list.map(row), ['id', 'source', 'anchor', 'subject', 'notAfter', 'crl', 'crlUrl', 'ocspUrl', 'lastFetchError']);
  },
};

export const trustRemoveCommand: Command = {
  name: 'trust remove',
  summary: 'remove an imported CA from the trust store (the appliance’s own CAs cannot be removed)',
  usage: '--data DIR --id ID [--json]',
  options: { ...dataOption, ...jsonOption, id: { type: 'string' } },
  help: { ...dataHelp, ...jsonHelp, id: 'trust store id (SHA-256 hex of the certificate, see trust list)' },
  async run(values) {
    const id = requireString(values, 'id');
    await withTrust(values, (t) => t.remove(id, CLI_ACTOR));
    console.log(values.json ? JSON.stringify({ removed: id }) : `removed ${id}`);
  },
};

export const trustCrlCommand: Command = {
  name: 'trust crl',
  summary: 'give an imported CA a CRL: from a file (PEM or DER) or downloaded now from its crlUrl',
  usage: '--data DIR --id ID (--file FILE | --fetch) [--json]',
  options: { ...dataOption, ...jsonOption, id: { type: 'string' }, file: { type: 'string' }, fetch: { type: 'boolean' } },
  help: { ...dataHelp, ...jsonHelp, id: 'trust store id of the CA', file: 'the CRL, PEM or DER', fetch: 'download it now from the CA’s crlUrl' },
  async run(values) {
    const id = requireString(values, 'id');
    if ((typeof values.file === 'string') === (values.fetch === true)) throw new UsageError('give exactly one of --file and --fetch');
    const crl = typeof values.file === 'string' ? readInput(values.file) : undefined;
    const v = await withTrust(values, (t) => (crl ? t.importCrl(id, crl, 'upload', CLI_ACTOR) : createCrlFetcher({ trust: t }).fetchNow(id, CLI_ACTOR)));
    print(values, v, 'CRL held for');
  },
};

export const trustCommands: Command[] = [trustImportCommand, trustListCommand, trustRemoveCommand, trustCrlCommand];
