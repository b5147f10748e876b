// One pino logger: JSON on stdout for journald (ARCHITECTURE.md §5). The audit log is separate.
// CLI commands other than `serve` set YIQIAN_LOG_FD=2 so that their stdout carries only results.
import { pino } from 'pino';

export const log = pino(
  {
    name: 'yiqian',
    level: process.env.YIQIAN_LOG_LEVEL ?? (process.env.NODE_ENV === 'test' ? 'warn' : 'info'),
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  },
  pino.destination({ fd: process.env.YIQIAN_LOG_FD === '2' ? 2 : 1, sync: true }),
);

export type Logger = typeof log;
