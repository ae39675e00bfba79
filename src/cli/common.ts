// What every command shares: one clear line for a user's error, never a stack trace unless asked.
import { EventsOnlyPipelineError } from '../db/catalog.js';
import { InvalidArgumentError } from 'commander';
import { ConfigError } from '../config/pipeline.js';
import { localDatabaseUrl, readEnv, type Env } from '../config/env.js';

export const databaseUrl = (env: Pick<Env, 'databaseUrl'>): string =>
  env.databaseUrl ?? localDatabaseUrl();

/** A commander option parser for counts. */
export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new InvalidArgumentError('must be a whole number of at least 1.');
  return n;
}

export class UserError extends Error {
  override name = 'UserError';
}

/** The one line for a /metrics port that cannot be had, naming the variable that chose it. */
export const metricsPortError =
  (variable: string) =>
  (err: unknown): never => {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES') {
      const message = (err as Error).message;
      throw new UserError(
        `cannot serve metrics: ${message}; set ${variable} to a free port, or 0 to turn metrics off`,
      );
    }
    throw err;
  };

/** Runs a command's body; exits 1 with one line on failure (set DEBUG=embedsync for the stack). */
export function runMain(body: (env: Env) => Promise<void>): void {
  let env: Env;
  try {
    env = readEnv();
  } catch (err) {
    fail(err);
    return;
  }
  body(env).catch(fail);
}

function fail(err: unknown): void {
  const error = err instanceof Error ? err : new Error(String(err));
  const known =
    error instanceof ConfigError ||
    error instanceof UserError ||
    error instanceof EventsOnlyPipelineError ||
    error.name.endsWith('NotFoundError');
  process.stderr.write(`embedsync: ${known ? '' : 'error: '}${error.message}\n`);
  if (process.env.DEBUG?.includes('embedsync') && error.stack)
    process.stderr.write(`${error.stack}\n`);
  process.exitCode = 1;
  // Pools, timers and connections left open must not keep a failed command alive.
  setTimeout(() => process.exit(1), 200).unref();
}
