// Imported first by `embedsync worker`: restarts the process in place (same pid, same arguments,
// the same open files) with the worker's memory defaults when they are missing
// (src/worker/memory-defaults.ts), before anything else is loaded. Linux only: that is where glibc's
// arenas are, and where process.execve exists; elsewhere the worker runs with Node's own defaults.
import { memoryDefaultsEnv } from '../worker/memory-defaults.js';

const restartWith =
  process.platform === 'linux' && typeof process.execve === 'function'
    ? memoryDefaultsEnv(process.env, process.execArgv)
    : undefined;
if (restartWith)
  process.execve?.(
    process.execPath,
    [process.execPath, ...process.execArgv, ...process.argv.slice(1)],
    restartWith,
  );
