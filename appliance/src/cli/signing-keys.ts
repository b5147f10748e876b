// `yiqian signing-key …`: signing keys the appliance holds for apps (docs/signing-keys.md).
// Managing them is an admin act on the box, so it is here and not in the HTTP API. The commands
// open the HSM (key generation, the CA key for the certificate) and the store.
//
// Access codes are never taken from argv (visible in `ps` and shell history): they are read from
// the file named by --access-code-file, or from standard input with --access-code-file -.
import { readFileSync } from 'node:fs';
import type { KeyAlgorithm } from '../crypto/interfaces.js';
import { buildHeldKeys, openAppliance } from '../main.js';
import type { CreateHeldKeyInput, HeldKeyAdmin, HeldKeyAdminView } from '../signing/held-keys.js';
import type { HeldKeyKind, HeldKeyUsage } from '../signing/types.js';
import type { Store } from '../store/open-store.js';
import { type Command, type Values, UsageError, dataDir, dataHelp, dataOption, jsonHelp, jsonOption, printTable, requireString } from './command.js';
import { CLI_ACTOR } from './data-store.js';

async function withHeldKeys<T>(values: Values, fn: (held: HeldKeyAdmin, store: Store) => Promise<T>): Promise<T> {
  const a = await openAppliance(dataDir(values));
  try {
    return await fn(buildHeldKeys(a), a.store);
  } finally {
    await a.close();
  }
}

function oneRef(positionals: string[], verb: string): string {
  if (positionals.length !== 1) throw new UsageError(`yiqian signing-key ${verb} takes exactly one KEY (id or label)`);
  return positionals[0];
}

/** The code from a file or standard input ("-"); one trailing newline is not part of it. */
function readAccessCode(source: string): string {
  let text: string;
  try {
    text = readFileSync(source === '-' ? 0 : source, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read --access-code-file ${source}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return text.replace(/\r?\n$/, '');
}

function print(values: Values, k: HeldKeyAdminView, extra?: Record<string, unknown>): void {
  if (values.json) {
    console.log(JSON.stringify({ ...k, ...extra }));
    return;
  }
  const rows: [string, unknown][] = [
    ['id', k.id], ['label', k.label], ['kind', k.kind], ['usage', k.usage], ['algorithm', k.algorithm], ['hierarchy', k.hierarchy],
    ['subject', k.subject], ['certSerial', k.certSerial], ['keyUri', k.keyUri], ['grants', k.grants.join(', ') || '(none)'],
    ['accessCode', k.accessCodeRequired ? 'required' : 'none'], ['employeeId', k.employeeId], ['departmentId', k.departmentId],
    ['createdAt', k.createdAt], ['disabled', k.disabled ? `yes (${k.disabledAt})` : 'no'],
    ...Object.entries(extra ?? {}),
  ];
  for (const [name, v] of rows) if (v !== undefined) console.log(`${name.padEnd(14)}${String(v)}`);
}

const ALGS = ['sm2', 'ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072'];

const createCmd: Command = {
  name: 'signing-key create',
  summary: 'create a held key in the HSM with a certificate from the appliance CA',
  usage: '--data DIR --label L --kind organisation|department|seal|staff --cn NAME [--usage sign|encrypt] [--alg A] [--grant APP_ID]… [--access-code-file F|-] [--json]',
  options: {
    ...dataOption,
    ...jsonOption,
    label: { type: 'string' },
    kind: { type: 'string' },
    usage: { type: 'string' },
    alg: { type: 'string' },
    cn: { type: 'string' },
    org: { type: 'string' },
    ou: { type: 'string' },
    'employee-id': { type: 'string' },
    'department-id': { type: 'string' },
    title: { type: 'string' },
    email: { type: 'string' },
    'validity-days': { type: 'string' },
    grant: { type: 'string', multiple: true },
    'access-code-file': { type: 'string' },
  },
  help: {
    ...dataHelp,
    ...jsonHelp,
    label: 'unique label: 1–64 of a-z 0-9 . _ - (e.g. dept-cardiology-sign)',
    kind: 'organisation, department, seal or staff (chooses the certificate profile)',
    usage: 'sign (default) or encrypt (envelopes: encryption / key-agreement certificate)',
    alg: `${ALGS.join(', ')} (default sm2; sm2 is certified by the SM2 hierarchy, the others by ECDSA)`,
    cn: 'certificate common name (organisation, department, seal or person)',
    org: 'certificate O (default: config pki.organisation)',
    ou: 'certificate OU (department name)',
    'employee-id': 'staff keys: employee id (required), the certificate serialNumber',
    'department-id': 'hospital department id (kept on the key)',
    title: 'staff keys: title level (职称)',
    email: 'e-mail address for subjectAltName (staff, encryption)',
    'validity-days': 'certificate validity (default: the profile\'s)',
    grant: 'app id allowed to use the key (repeat for several apps)',
    'access-code-file': 'read an access code for the key from FILE, or from standard input with -',
  },
  async run(values) {
    const input: CreateHeldKeyInput = {
      label: requireString(values, 'label'),
      kind: requireString(values, 'kind') as HeldKeyKind,
      commonName: requireString(values, 'cn'),
    };
    if (values.usage !== undefined) input.usage = values.usage as HeldKeyUsage;
    if (values.alg !== undefined) input.algorithm = values.alg as KeyAlgorithm;
    const strings: [string, keyof CreateHeldKeyInput][] = [['org', 'organisation'], ['ou', 'ou'], ['employee-id', 'employeeId'], ['department-id', 'departmentId'], ['title', 'titleLevel'], ['email', 'email']];
    for (const [opt, field] of strings) if (typeof values[opt] === 'string') (input as unknown as Record<string, string>)[field] = values[opt];
    if (values['validity-days'] !== undefined) {
      const v = String(values['validity-days']);
      if (!/^\d{1,5}$/.test(v)) throw new UsageError('--validity-days must be a positive integer');
      input.validityDays = Number(v);
    }
    if (Array.isArray(values.grant)) input.grants = values.grant;
    if (typeof values['access-code-file'] === 'string') input.accessCode = readAccessCode(values['access-code-file']);
    return withHeldKeys(values, async (held) => {
      const k = await held.create(input, CLI_ACTOR);
      if (values.json) print(values, k);
      else {
        console.log(k.id);
        console.error(`held key "${k.label}" (${k.kind}, ${k.usage}, ${k.algorithm}) created; certificate ${k.certSerial}; granted to ${k.grants.length} app(s)`);
      }
    });
  },
};

const listCmd: Command = {
  name: 'signing-key list',
  summary: 'list held keys (all, or those granted to one app)',
  usage: '--data DIR [--app APP_ID] [--json]',
  options: { ...dataOption, ...jsonOption, app: { type: 'string' } },
  help: { ...dataHelp, ...jsonHelp, app: 'only keys granted to this app (and not disabled)' },
  async run(values) {
    return withHeldKeys(values, async (held) => {
      const keys = await held.list(values.app as string | undefined);
      if (values.json) console.log(JSON.stringify(keys));
      else {
        printTable(
          keys.map((k) => ({ ...k, grants: k.grants.length, accessCode: k.accessCodeRequired ? 'yes' : 'no', disabled: k.disabled ? 'yes' : '' })),
          ['id', 'label', 'kind', 'usage', 'algorithm', 'certSerial', 'grants', 'accessCode', 'disabled'],
        );
      }
    });
  },
};

const showCmd: Command = {
  name: 'signing-key show',
  summary: 'show one held key, with its certificate status',
  usage: 'KEY --data DIR [--json]',
  options: { ...dataOption, ...jsonOption },
  help: { ...dataHelp, ...jsonHelp },
  async run(values, positionals) {
    const ref = oneRef(positionals, 'show');
    return withHeldKeys(values, async (held, store) => {
      const k = await held.get(ref);
      const cert = await store.certs.get(k.certSerial);
      print(values, k, cert ? { certificateStatus: cert.status, notBefore: cert.notBefore, notAfter: cert.notAfter } : {});
    });
  },
};

function grantCmd(verb: 'grant' | 'ungrant'): Command {
  return {
    name: `signing-key ${verb}`,
    summary: verb === 'grant' ? 'allow an app to use a held key' : 'withdraw an app\'s use of a held key',
    usage: 'KEY --app APP_ID --data DIR [--json]',
    options: { ...dataOption, ...jsonOption, app: { type: 'string' } },
    help: { ...dataHelp, ...jsonHelp, app: 'the app id' },
    async run(values, positionals) {
      const ref = oneRef(positionals, verb);
      const app = requireString(values, 'app');
      return withHeldKeys(values, async (held) => {
        const k = await held[verb](ref, app, CLI_ACTOR);
        if (values.json) print(values, k);
        else console.log(`held key ${k.label}: ${verb === 'grant' ? 'granted to' : 'no longer granted to'} ${app}; grants: ${k.grants.join(', ') || '(none)'}`);
      });
    },
  };
}

const accessCodeCmd: Command = {
  name: 'signing-key access-code',
  summary: 'set or clear the access code of a held key (GB/T 38629 private-key access code)',
  usage: 'KEY --data DIR (--access-code-file F|- | --clear) [--json]',
  options: { ...dataOption, ...jsonOption, 'access-code-file': { type: 'string' }, clear: { type: 'boolean' } },
  help: { ...dataHelp, ...jsonHelp, 'access-code-file': 'read the new code from FILE, or from standard input with -', clear: 'remove the access code' },
  async run(values, positionals) {
    const ref = oneRef(positionals, 'access-code');
    const file = values['access-code-file'];
    if ((typeof file === 'string') === (values.clear === true)) throw new UsageError('give exactly one of --access-code-file and --clear');
    const code = typeof file === 'string' ? readAccessCode(file) : null;
    return withHeldKeys(values, async (held) => {
      const k = await held.setAccessCode(ref, code, CLI_ACTOR);
      if (values.json) print(values, k);
      else console.log(`held key ${k.label}: access code ${k.accessCodeRequired ? 'set' : 'removed'}`);
    });
  },
};

const disableCmd: Command = {
  name: 'signing-key disable',
  summary: 'disable a held key for good (apps get KEY_NOT_FOUND); revoke its certificate with the CA separately',
  usage: 'KEY --data DIR [--json]',
  options: { ...dataOption, ...jsonOption },
  help: { ...dataHelp, ...jsonHelp },
  async run(values, positionals) {
    const ref = oneRef(positionals, 'disable');
    return withHeldKeys(values, async (held) => {
      const k = await held.disable(ref, CLI_ACTOR);
      if (values.json) print(values, k);
      else console.log(`held key ${k.label}: disabled`);
    });
  },
};

export const signingKeyCommands: Command[] = [createCmd, listCmd, showCmd, grantCmd('grant'), grantCmd('ungrant'), accessCodeCmd, disableCmd];
