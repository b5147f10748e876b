#!/usr/bin/env node
// Entry point of the `yiqian` command. Only `serve` logs at info by default: the other
// commands print their results for people and keep the JSON log for warnings. The level is
// set before the rest loads, because loggers take their level when they are made.
if (!process.env.YIQIAN_LOG_LEVEL && process.argv[2] !== 'serve') process.env.YIQIAN_LOG_LEVEL = 'warn';
await import('./run.js');
