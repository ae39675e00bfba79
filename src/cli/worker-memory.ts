// Imported first by `embedsync worker`: restarts the process in place (same pid, same arguments,
// the same open files) with the worker's memory defaults when they are missing
// (src/worker/memory-defaults.ts), before anything else is loaded. Linux only: that is where glibc's
// arenas are, and where process.execve exists; elsewhere the worker runs with Node's own defaults.
import { memoryDefaultsEnv } from '../worker/memory-defaults.js';

const restartWith =
  process.platform === 'linux' && typeof process.execve === 'function'
    ? memoryDefaultsEnv(process.env, process.execArgv)
    : undefined;
if (restartWith) {
  // Started by bin/embedsync.js, tsx was registered in the process, not on its command line: the
  // restarted process loads it first, as `node --import tsx src/cli/worker.ts` does.
  const tsx = process.execArgv.some((a) => a.includes('tsx'))
    ? []
    : ['--import', import.meta.resolve('tsx')];
  process.execve?.(
    process.execPath,
    [process.execPath, ...tsx, ...process.execArgv, ...process.argv.slice(1)],
    restartWith,
  );
}
