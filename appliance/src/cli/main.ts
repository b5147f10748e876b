#!/usr/bin/env node
// Entry point of the `yiqian` command. Only `serve` logs at info, on stdout (journald); the
// other commands print their results on stdout and send the JSON log, warnings only, to
// stderr. Set before the rest loads, because loggers take their level when they are made.
if (process.argv[2] !== 'serve') {
  process.env.YIQIAN_LOG_LEVEL ??= 'warn';
  process.env.YIQIAN_LOG_FD ??= '2';
}
await import('./run.js');
