// `yiqian app …`: the hospital systems ("apps") that may call the API, each with its own key pair.
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { loadConfig } from '../config/config.js';
import { createAppService } from '../identity/app-service.js';
import { buildEvidenceProjects } from '../main.js';
import { type Command, UsageError, dataDir, dataHelp, dataOption, jsonHelp, jsonOption, printTable, requireString } from './command.js';
import { CLI_ACTOR, withStore } from './data-store.js';


function appId(positionals: string[], name: string): string {
  if (positionals.length !== 1) throw new UsageError(`yiqian app ${name} takes exactly one APP_ID`);
  return positionals[0];
}

const createCmd: Command = {
  name: 'app create',
  summary: 'register an app and write its private key (PEM, mode 0600)',
  usage: '--data DIR --name NAME --key-out FILE [--project P] [--alg sm2|ecdsa-p256] [--json]',
  options: { ...dataOption, ...jsonOption, name: { type: 'string' }, project: { type: 'string' }, alg: { type: 'string' }, 'key-out': { type: 'string' } },
  help: { ...dataHelp, ...jsonHelp, name: 'app name, e.g. "HIS"', project: 'evidence project, which must exist (yiqian evidence project create; default: default)', alg: 'key algorithm: sm2 (default) or ecdsa-p256', 'key-out': 'file to write the private key to (must not exist)' },
  async run(values) {
    const name = requireString(values, 'name');
    const keyOut = requireString(values, 'key-out');
    const alg = (values.alg as string | undefined) ?? 'sm2';
    if (alg !== 'sm2' && alg !== 'ecdsa-p256') throw new UsageError(`--alg must be sm2 or ecdsa-p256, not ${alg}`);
    const config = loadConfig(dataDir(values));
    return withStore(values, async (store) => {
      // Claim the key file first (exclusive, 0600) so an app is never created without its key.
      let fd: number;
      try {
        fd = openSync(keyOut, 'wx', 0o600);
      } catch (e) {
        throw new UsageError(`cannot write --key-out ${keyOut}: ${(e as NodeJS.ErrnoException).code === 'EEXIST' ? 'file exists' : (e as Error).message}`);
      }
      try {
        // Only an existing evidence project ('default' always is): PROJECT_ID_INVALID / PROJECT_NOT_FOUND otherwise.
        const apps = createAppService(store, { projects: buildEvidenceProjects({ store, config }) });
        const { app, privateKeyPem } = await apps.create({ name, project: values.project as string | undefined, algorithm: alg, actor: CLI_ACTOR });
        writeSync(fd, privateKeyPem);
        closeSync(fd);
        if (values.json) console.log(JSON.stringify({ ...app, keyFile: keyOut }));
        else {
          console.log(app.id);
          console.error(`app "${app.name}" (project ${app.project}, ${app.algorithm}) created; private key written to ${keyOut}`);
        }
      } catch (e) {
        closeSync(fd);
        rmSync(keyOut, { force: true });
        throw e;
      }
    });
  },
};

const listCmd: Command = {
  name: 'app list',
  summary: 'list apps',
  usage: '--data DIR [--project P] [--json]',
  options: { ...dataOption, ...jsonOption, project: { type: 'string' } },
  help: { ...dataHelp, ...jsonHelp, project: 'only apps of this project' },
  async run(values) {
    return withStore(values, async (store) => {
      const apps = await createAppService(store).list({ project: values.project as string | undefined });
      if (values.json) console.log(JSON.stringify(apps));
      else printTable(apps as unknown as Record<string, unknown>[], ['id', 'name', 'project', 'algorithm', 'status', 'createdAt']);
    });
  },
};

function statusCmd(verb: 'freeze' | 'unfreeze' | 'delete', summary: string): Command {
  return {
    name: `app ${verb}`,
    summary,
    usage: 'APP_ID --data DIR [--json]',
    options: { ...dataOption, ...jsonOption },
    help: { ...dataHelp, ...jsonHelp },
    async run(values, positionals) {
      const id = appId(positionals, verb);
      return withStore(values, async (store) => {
        const svc = createAppService(store);
        const result = await svc[verb](id, CLI_ACTOR);
        if (values.json) console.log(JSON.stringify(result ?? { id, deleted: true }));
        else console.log(`app ${id}: ${verb === 'delete' ? 'deleted' : verb === 'freeze' ? 'frozen' : 'active'}`);
      });
    },
  };
}

function permitCmd(verb: 'permit' | 'unpermit'): Command {
  return {
    name: `app ${verb}`,
    summary: verb === 'permit' ? 'give an app a permission (evidence-admin: manage evidence projects over HTTP)' : 'take a permission away from an app',
    usage: 'APP_ID PERMISSION --data DIR [--json]',
    options: { ...dataOption, ...jsonOption },
    help: { ...dataHelp, ...jsonHelp },
    async run(values, positionals) {
      if (positionals.length !== 2) throw new UsageError(`yiqian app ${verb} takes APP_ID PERMISSION (e.g. evidence-admin)`);
      const [id, permission] = positionals;
      return withStore(values, async (store) => {
        const app = await createAppService(store)[verb](id, permission, CLI_ACTOR);
        if (values.json) console.log(JSON.stringify(app));
        else console.log(`app ${app.id}: permissions ${(app.permissions ?? []).join(', ') || '(none)'}`);
      });
    },
  };
}

export const appCommands: Command[] = [
  createCmd,
  listCmd,
  statusCmd('freeze', 'freeze an app: its requests get 403 APP_FROZEN'),
  statusCmd('unfreeze', 'unfreeze an app'),
  statusCmd('delete', 'delete an app (its key no longer authenticates)'),
  permitCmd('permit'),
  permitCmd('unpermit'),
];
