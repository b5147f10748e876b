// `yiqian evidence project …` and `yiqian evidence stats`: evidence projects (issue 6 item 5) and
// their statistics (item 6), as the admin on the box. Forced deletion within the retention
// period exists only here (`delete --force`), never over HTTP.
import { loadConfig } from '../config/config.js';
import type { ProjectAdmin } from '../evidence/projects.js';
import type { Project } from '../evidence/types.js';
import { buildEvidenceProjects, openEvidenceRecordsRemover } from '../main.js';
import { type Command, type Values, UsageError, dataDir, dataHelp, dataOption, jsonHelp, jsonOption, printTable, requireString } from './command.js';
import { CLI_ACTOR, withStore } from './data-store.js';

async function withProjects<T>(values: Values, fn: (projects: ProjectAdmin) => Promise<T>, opts: { records?: boolean } = {}): Promise<T> {
  const config = loadConfig(dataDir(values));
  return withStore(values, async (store) => {
    const records = opts.records ? await openEvidenceRecordsRemover({ store, config, dataDir: dataDir(values) }) : undefined;
    try {
      return await fn(buildEvidenceProjects({ store, config }, records));
    } finally {
      await records?.close();
    }
  });
}

function oneId(positionals: string[], verb: string): string {
  if (positionals.length !== 1) throw new UsageError(`yiqian evidence project ${verb} takes exactly one PROJECT_ID`);
  return positionals[0];
}

function years(values: Values): number | undefined {
  const v = values['retention-years'];
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^\d{1,3}$/.test(v)) throw new UsageError('--retention-years must be a whole number of years (1–100)');
  return Number(v);
}

function print(values: Values, p: Project): void {
  if (values.json) {
    console.log(JSON.stringify(p));
    return;
  }
  const rows: [string, unknown][] = [
    ['id', p.id], ['name', p.name], ['description', p.description], ['retentionYears', p.retentionYears],
    ['frozen', p.frozen ? 'yes' : 'no'], ['createdAt', p.createdAt], ['updatedAt', p.updatedAt],
  ];
  for (const [name, v] of rows) if (v !== undefined) console.log(`${name.padEnd(16)}${String(v)}`);
}

const createCmd: Command = {
  name: 'evidence project create',
  summary: 'create an evidence project',
  usage: 'ID --name NAME [--description TEXT] [--retention-years N] --data DIR [--json]',
  options: { ...dataOption, ...jsonOption, name: { type: 'string' }, description: { type: 'string' }, 'retention-years': { type: 'string' } },
  help: { ...dataHelp, ...jsonHelp, name: 'display name', description: 'free text (≤ 500 characters)', 'retention-years': 'keep records this many years from receipt, 1–100 (default: evidence.defaultRetentionYears)' },
  async run(values, positionals) {
    const id = oneId(positionals, 'create');
    const name = requireString(values, 'name');
    const retentionYears = years(values);
    return withProjects(values, async (projects) => {
      const p = await projects.create({ id, name, ...(values.description !== undefined ? { description: String(values.description) } : {}), ...(retentionYears !== undefined ? { retentionYears } : {}) }, CLI_ACTOR);
      print(values, p);
    });
  },
};

const listCmd: Command = {
  name: 'evidence project list',
  summary: 'list evidence projects',
  usage: '--data DIR [--json]',
  options: { ...dataOption, ...jsonOption },
  help: { ...dataHelp, ...jsonHelp },
  async run(values) {
    return withProjects(values, async (projects) => {
      const all = await projects.list();
      if (values.json) console.log(JSON.stringify(all));
      else printTable(all.map((p) => ({ ...p, frozen: p.frozen ? 'yes' : 'no' })) as unknown as Record<string, unknown>[], ['id', 'name', 'retentionYears', 'frozen', 'createdAt']);
    });
  },
};

const showCmd: Command = {
  name: 'evidence project show',
  summary: 'show an evidence project and until when its records must be kept',
  usage: 'ID --data DIR [--json]',
  options: { ...dataOption, ...jsonOption },
  help: { ...dataHelp, ...jsonHelp },
  async run(values, positionals) {
    const id = oneId(positionals, 'show');
    return withProjects(values, async (projects) => {
      const p = await projects.show(id);
      const retainUntil = await projects.retainUntil(id);
      if (values.json) console.log(JSON.stringify({ ...p, ...(retainUntil ? { retainUntil } : {}) }));
      else {
        print(values, p);
        console.log(`${'retainUntil'.padEnd(16)}${retainUntil ?? '(no records)'}`);
      }
    });
  },
};

const updateCmd: Command = {
  name: 'evidence project update',
  summary: 'change a project’s name, description or retention (stored records keep their retainUntil)',
  usage: 'ID [--name NAME] [--description TEXT | --clear-description] [--retention-years N] --data DIR [--json]',
  options: { ...dataOption, ...jsonOption, name: { type: 'string' }, description: { type: 'string' }, 'clear-description': { type: 'boolean' }, 'retention-years': { type: 'string' } },
  help: { ...dataHelp, ...jsonHelp, name: 'new display name', description: 'new description', 'clear-description': 'remove the description', 'retention-years': 'retention for records received from now on, 1–100' },
  async run(values, positionals) {
    const id = oneId(positionals, 'update');
    if (values.description !== undefined && values['clear-description']) throw new UsageError('give --description or --clear-description, not both');
    const retentionYears = years(values);
    return withProjects(values, async (projects) => {
      const p = await projects.update(
        id,
        {
          ...(values.name !== undefined ? { name: String(values.name) } : {}),
          ...(values.description !== undefined ? { description: String(values.description) } : values['clear-description'] ? { description: null } : {}),
          ...(retentionYears !== undefined ? { retentionYears } : {}),
        },
        CLI_ACTOR,
      );
      print(values, p);
    });
  },
};

function freezeCmd(verb: 'freeze' | 'unfreeze'): Command {
  return {
    name: `evidence project ${verb}`,
    summary: verb === 'freeze' ? 'freeze a project: its writes get 409 PROJECT_FROZEN' : 'unfreeze a project',
    usage: 'ID --data DIR [--json]',
    options: { ...dataOption, ...jsonOption },
    help: { ...dataHelp, ...jsonHelp },
    async run(values, positionals) {
      const id = oneId(positionals, verb);
      return withProjects(values, async (projects) => print(values, await projects[verb](id, CLI_ACTOR)));
    },
  };
}

const deleteCmd: Command = {
  name: 'evidence project delete',
  summary: 'delete a project with its records, files and counts (audited)',
  usage: 'ID [--force] --data DIR [--json]',
  options: { ...dataOption, ...jsonOption, force: { type: 'boolean' } },
  help: { ...dataHelp, ...jsonHelp, force: 'delete even though records are still within their retention period' },
  async run(values, positionals) {
    const id = oneId(positionals, 'delete');
    return withProjects(
      values,
      async (projects) => {
        const d = await projects.delete(id, CLI_ACTOR, { force: values.force === true });
        if (values.json) console.log(JSON.stringify(d));
        else console.log(`project ${d.id}: deleted (${d.records} records, ${d.blobs} files${d.forced ? `, forced before ${d.retainUntil}` : ''})`);
      },
      { records: true },
    );
  },
};

const statsCmd: Command = {
  name: 'evidence stats',
  summary: 'evidence statistics from the counters: all, one project or one app',
  usage: '[--project P | --app APP_ID] --data DIR [--json]',
  options: { ...dataOption, ...jsonOption, project: { type: 'string' }, app: { type: 'string' } },
  help: { ...dataHelp, ...jsonHelp, project: 'only this project', app: 'only this app' },
  async run(values) {
    if (values.project !== undefined && values.app !== undefined) throw new UsageError('give --project or --app, not both');
    return withStore(values, async (store) => {
      const s = await store.evidenceCounters.statistics({
        ...(values.project !== undefined ? { project: String(values.project) } : {}),
        ...(values.app !== undefined ? { appId: String(values.app).toUpperCase() } : {}),
      });
      if (values.json) {
        console.log(JSON.stringify(s));
        return;
      }
      console.log(`total ${s.total}   last 3 calendar months ${s.last3Months}   today (Asia/Shanghai) ${s.today}`);
      console.log(`per year   ${s.perYear.map((p) => `${p.period}: ${p.count}`).join('  ')}`);
      console.log(`per month  ${s.perMonth.map((p) => `${p.period}: ${p.count}`).join('  ')}`);
      console.log(`rejections ${s.rejections.total}   by code ${JSON.stringify(s.rejections.byCode)}   by app ${JSON.stringify(s.rejections.byApp)}`);
    });
  },
};

export const evidenceCommands: Command[] = [createCmd, listCmd, showCmd, updateCmd, freezeCmd('freeze'), freezeCmd('unfreeze'), deleteCmd, statsCmd];
