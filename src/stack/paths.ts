// Where the local stack keeps its state: everything lives under one home directory.
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, so that a relative EMBEDSYNC_HOME means the same place from any cwd. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface StackPaths {
  home: string;
  postgresData: string;
  postgresLog: string;
  temporalDb: string;
  temporalLog: string;
  temporalPid: string;
  /** Tools the stack installs for itself (the temporal CLI). */
  bin: string;
  /** Held while one process installs or starts the stack, so parallel test files do not race. */
  lock: string;
}

export function stackPaths(home: string): StackPaths {
  const abs = isAbsolute(home) ? home : resolve(REPO_ROOT, home);
  return {
    home: abs,
    postgresData: join(abs, 'postgres'),
    postgresLog: join(abs, 'postgres.log'),
    temporalDb: join(abs, 'temporal.db'),
    temporalLog: join(abs, 'temporal.log'),
    temporalPid: join(abs, 'temporal.pid'),
    bin: join(abs, 'bin'),
    lock: join(abs, 'stack.lock'),
  };
}
