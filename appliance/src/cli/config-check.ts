// `yiqian config check`: validates DATA/config.json and the HSM PIN source without serving.
import { loadConfig, readHsmPin } from '../config/config.js';
import { type Command, dataDir, dataHelp, dataOption, jsonHelp, jsonOption } from './command.js';

export const configCheckCommand: Command = {
  name: 'config check',
  summary: 'validate the configuration of a data directory',
  usage: '--data DIR [--json]',
  options: { ...dataOption, ...jsonOption },
  help: { ...dataHelp, ...jsonHelp },
  async run(values) {
    const dir = dataDir(values);
    const config = loadConfig(dir);
    readHsmPin(dir, config);
    if (values.json) console.log(JSON.stringify({ ok: true, dataDir: dir, config }));
    else console.log(`${dir}/config.json is valid (HTTPS ${config.listen}, HTTP ${config.listenHttp}, HSM token "${config.hsm.tokenLabel}" via ${config.hsm.module}).`);
  },
};
