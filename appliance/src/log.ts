// One pino logger: JSON on stdout for journald (ARCHITECTURE.md §5). The audit log is separate.
import { pino } from 'pino';

export const log = pino({
  name: 'yiqian',
  level: process.env.YIQIAN_LOG_LEVEL ?? (process.env.NODE_ENV === 'test' ? 'warn' : 'info'),
  base: { pid: process.pid },
  timestamp: pino.stdTimeFunctions.isoTime,
});

export type Logger = typeof log;
