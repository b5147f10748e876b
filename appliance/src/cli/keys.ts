// `yiqian keys list`: the key inventory — the start of the 密评 crypto inventory
// (which keys exist, which algorithm, which custody mode and module, what for).
import { loadConfig } from '../config/config.js';
import { openStore } from '../store/open-store.js';
import { type Command, dataDir, dataHelp, dataOption, jsonHelp, jsonOption, printTable } from './command.js';

export const keysListCommand: Command = {
  name: 'keys list',
  summary: 'list the key inventory (id, algorithm, custody mode, token, created, purpose)',
  usage: '--data DIR [--json]',
  options: { ...dataOption, ...jsonOption },
  help: { ...dataHelp, ...jsonHelp },
  async run(values) {
    const dir = dataDir(values);
    const config = loadConfig(dir);
    const store = await openStore(dir);
    try {
      const keys = await store.keys.list();
      if (values.json) {
        console.log(JSON.stringify(keys.map(({ wrappedKey: _w, ...k }) => k)));
        return;
      }
      printTable(keys.map((k) => ({ ...k, custody: k.mode })) as unknown as Record<string, unknown>[], ['id', 'label', 'algorithm', 'custody', 'token', 'mechanism', 'createdAt', 'purpose']);
      console.log(`\nHSM module: ${config.hsm.module} (token "${config.hsm.tokenLabel}")`);
    } finally {
      await store.close();
    }
  },
};
