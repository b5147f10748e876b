#!/usr/bin/env node
// Entry point of the `yiqian` command. Only `serve` logs at info, on stdout (journald); the
// other commands print their results on stdout and send the JSON log, warnings only, to
// stderr. Set before the rest loads, because loggers take their level when they are made.
import { availableParallelism } from 'node:os';

if (process.argv[2] === 'serve') {
  // libuv's pool (HSM signing, SM2, LMDB commits) sized to the cores instead of its default 4:
  // on 2 cores, 4 busy pool threads took CPU from the event loop, which is the TSA's critical
  // path (bench/tsa.ts, docs/architecture-notes.md). Read by libuv when the pool first starts.
  process.env.UV_THREADPOOL_SIZE ??= String(Math.max(2, availableParallelism()));
} else {
  process.env.YIQIAN_LOG_LEVEL ??= 'warn';
  process.env.YIQIAN_LOG_FD ??= '2';
}
await import('./run.js');
