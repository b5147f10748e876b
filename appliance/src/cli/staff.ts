// `yiqian staff …` and `yiqian dept …`: the staff directory from the command line — batch
// import of a CSV file (all or nothing, the same rules as POST /api/v1/staff/import), listing
// staff (masked), and departments. Staff commands open the HSM: national id and mobile are
// sealed under a data key only the HSM can unwrap.
import { readFileSync, statSync } from 'node:fs';
import { isYiqianError } from '../errors.js';
import { buildStaffDirectory, openAppliance, type StaffDirectory } from '../main.js';
import { createDepartmentService } from '../staff/department-service.js';
import { DEFAULT_IMPORT_LIMITS } from '../staff/csv-import.js';
import type { ImportReport, StaffView } from '../staff/staff-service.js';
import { StaffCodes } from '../staff/staff-errors.js';
import type { StaffFilter } from '../staff/types.js';
import { type Command, type Values, UsageError, dataDir, dataHelp, dataOption, jsonHelp, jsonOption, printTable, requireString } from './command.js';
import { CLI_ACTOR, withStore } from './data-store.js';


async function withDirectory<T>(values: Values, fn: (dir: StaffDirectory) => Promise<T>): Promise<T> {
  const a = await openAppliance(dataDir(values));
  try {
    return await fn(buildStaffDirectory(a));
  } finally {
    await a.close();
  }
}

function printReport(report: ImportReport, imported: boolean): void {
  const rejected = report.results.filter((r) => r.status === 'rejected');
  if (rejected.length > 0) {
    printTable(
      rejected.flatMap((r) => (r.reasons ?? []).map((why) => ({ row: r.row, line: r.line, employeeId: r.employeeId ?? '', code: why.code, field: why.field ?? '', reason: `${why.message['zh-CN']} / ${why.message.en}` }))),
      ['row', 'line', 'employeeId', 'code', 'field', 'reason'],
    );
    console.log('');
  }
  const f = report.file;
  console.log(`file: ${f.bytes} bytes, ${f.encoding}${f.bom ? ' with BOM' : ''}, SM3 ${f.sm3}`);
  console.log(
    imported
      ? `imported ${report.imported} staff (all ${report.rows} rows accepted) / 已导入 ${report.imported} 名员工`
      : `nothing imported: ${report.rejected} of ${report.rows} rows rejected (all or nothing: fix them and import the whole file again) / 未导入任何数据：${report.rejected} 行有错误`,
  );
}

const importCmd: Command = {
  name: 'staff import',
  summary: 'import staff from a CSV file (UTF-8 or GBK; all rows or none)',
  usage: '--data DIR --file F.csv [--charset utf-8|gbk] [--json]',
  options: { ...dataOption, ...jsonOption, file: { type: 'string' }, charset: { type: 'string' } },
  help: {
    ...dataHelp,
    ...jsonHelp,
    file: `CSV with a header row: 姓名,工号,科室ID,职称级别,手机号,身份证号 (or name,employeeId,departmentId,titleLevel,mobile,nationalId); at most ${DEFAULT_IMPORT_LIMITS.maxRows} rows, ${DEFAULT_IMPORT_LIMITS.maxBytes} bytes`,
    charset: 'the file encoding, when detection (BOM / valid UTF-8 / else GBK) is not wanted',
  },
  async run(values) {
    const file = requireString(values, 'file');
    let bytes: Buffer;
    try {
      const size = statSync(file).size;
      if (size > DEFAULT_IMPORT_LIMITS.maxBytes) throw new UsageError(`--file ${file} is ${size} bytes, more than the import limit of ${DEFAULT_IMPORT_LIMITS.maxBytes}; split it`);
      bytes = readFileSync(file);
    } catch (e) {
      if (e instanceof UsageError) throw e;
      throw new UsageError(`cannot read --file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    return withDirectory(values, async (dir) => {
      try {
        const report = await dir.staff.importCsv(bytes, { charset: values.charset as string | undefined, actor: CLI_ACTOR });
        if (values.json) console.log(JSON.stringify(report));
        else printReport(report, true);
        return 0;
      } catch (e) {
        if (isYiqianError(e) && e.code === StaffCodes.IMPORT_REJECTED) {
          const report = e.detail?.report as ImportReport;
          if (values.json) console.log(JSON.stringify({ code: e.code, message: { 'zh-CN': e.text.zh, en: e.text.en }, report }));
          else printReport(report, false);
          return 1;
        }
        throw e;
      }
    });
  },
};

const listCmd: Command = {
  name: 'staff list',
  summary: 'list staff (national id and mobile masked)',
  usage: '--data DIR [--department ID] [--status active|left] [--json]',
  options: { ...dataOption, ...jsonOption, department: { type: 'string' }, status: { type: 'string' } },
  help: { ...dataHelp, ...jsonHelp, department: 'only this department (hospital department id)', status: 'only active or left staff' },
  async run(values) {
    const filter: StaffFilter = {};
    if (values.department !== undefined) filter.departmentId = String(values.department);
    if (values.status !== undefined) {
      if (values.status !== 'active' && values.status !== 'left') throw new UsageError('--status must be active or left');
      filter.status = values.status;
    }
    return withDirectory(values, async (dir) => {
      const all: StaffView[] = [];
      let cursor: string | undefined;
      do {
        const page = await dir.staff.list(filter, { limit: 500, cursor });
        all.push(...page.items);
        cursor = page.next;
      } while (cursor !== undefined);
      if (values.json) console.log(JSON.stringify(all));
      else printTable(all as unknown as Record<string, unknown>[], ['employeeId', 'name', 'departmentId', 'titleLevel', 'status', 'nationalId', 'mobile']);
    });
  },
};

const deptListCmd: Command = {
  name: 'dept list',
  summary: 'list departments (hospital department ids)',
  usage: '--data DIR [--json]',
  options: { ...dataOption, ...jsonOption },
  help: { ...dataHelp, ...jsonHelp },
  async run(values) {
    return withStore(values, async (store) => {
      const list = await createDepartmentService(store.departments).list();
      if (values.json) console.log(JSON.stringify(list));
      else printTable(list as unknown as Record<string, unknown>[], ['hisDeptId', 'name', 'code', 'parentId', 'createdAt']);
    });
  },
};

const deptAddCmd: Command = {
  name: 'dept add',
  summary: 'add a department under the id the hospital systems use',
  usage: '--data DIR --id HIS_DEPT_ID --name NAME [--parent HIS_DEPT_ID] [--code CODE] [--json]',
  options: { ...dataOption, ...jsonOption, id: { type: 'string' }, name: { type: 'string' }, parent: { type: 'string' }, code: { type: 'string' } },
  help: { ...dataHelp, ...jsonHelp, id: 'the department id of the hospital systems (科室ID)', name: 'department name, e.g. 心内科', parent: 'parent department id', code: 'optional further code' },
  async run(values) {
    const input: Record<string, unknown> = { hisDeptId: requireString(values, 'id'), name: requireString(values, 'name') };
    if (values.parent !== undefined) input.parentId = values.parent;
    if (values.code !== undefined) input.code = values.code;
    return withStore(values, async (store) => {
      const d = await createDepartmentService(store.departments).create(input, CLI_ACTOR);
      if (values.json) console.log(JSON.stringify(d));
      else console.log(`department ${d.hisDeptId} (${d.name}) added`);
    });
  },
};

export const staffCommands: Command[] = [importCmd, listCmd, deptListCmd, deptAddCmd];
