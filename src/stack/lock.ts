// One process at a time installs or starts the stack from a home: parallel test files would race
// otherwise.
import { mkdirSync, openSync, readFileSync, rmSync, writeSync, closeSync } from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isAlive, StackError, type LogLine } from './run.js';

export async function withStackLock<T>(
  lockPath: string,
  log: LogLine,
  fn: () => Promise<T>,
): Promise<T> {
  mkdirSync(dirname(lockPath), { recursive: true });
  // Long enough for a first-time install (apt, go install) in another process.
  const deadline = Date.now() + 15 * 60_000;
  let told = false;
  for (;;) {
    try {
      const fd = openSync(lockPath, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number(readFileOr(lockPath).trim());
    // A holder that died (or a lock file cut short before its pid was written) does not count.
    if (!(holder > 0) || !isAlive(holder)) {
      if (!(holder > 0)) await sleep(100);
      if (readFileOr(lockPath).trim() === (holder > 0 ? `${holder}` : ''))
        rmSync(lockPath, { force: true });
      continue;
    }
    if (Date.now() > deadline)
      throw new StackError(`gave up waiting for process ${holder}, which holds ${lockPath}`);
    if (!told) log(`waiting for process ${holder}, which is starting the stack…`);
    told = true;
    await sleep(250);
  }
  try {
    return await fn();
  } finally {
    rmSync(lockPath, { force: true });
  }
}

function readFileOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
