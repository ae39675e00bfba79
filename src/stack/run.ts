// Small process helpers for the local stack: run a command, wait for a port, read a log's tail.
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export type LogLine = (line: string) => void;

/** A failure of the stack, with the command that failed and the end of its output or log. */
export class StackError extends Error {
  override name = 'StackError';
  constructor(
    message: string,
    readonly command?: string,
    readonly detail?: string,
  ) {
    super(message);
  }
}

export const isRoot = (): boolean => process.getuid?.() === 0;

/** As root, the Postgres server refuses to run; it has to run as the `postgres` OS user. */
export function asPostgresUser(cmd: string, args: string[]): [string, string[]] {
  return isRoot() ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
}

export const quoteCommand = (cmd: string, args: readonly string[]): string =>
  [cmd, ...args]
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`))
    .join(' ');

export const lastLines = (text: string, n = 20): string =>
  text.trimEnd().split('\n').slice(-n).join('\n');

/** The last lines of a log, counting only what was written after byte `from` (this run's part). */
export function tailFile(path: string, n = 20, from = 0): string {
  try {
    return lastLines(readFileSync(path).subarray(from).toString('utf8'), n);
  } catch {
    return '';
  }
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** In a session of its own, so that daemons it leaves behind do not get the caller's Ctrl-C. */
  detached?: boolean;
  /** Called every `tickMs` while the command runs, for commands that are silent for minutes. */
  onTick?: (elapsedMs: number) => void;
  tickMs?: number;
}

/** Runs a command to completion; throws a StackError with the tail of its output when it fails. */
export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  const command = quoteCommand(cmd, args);
  const child = spawn(cmd, args, {
    cwd: opts.cwd ?? '/',
    env: opts.env ?? process.env,
    detached: opts.detached ?? false,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const collect = (chunk: Buffer): void => {
    // Keep memory bounded for chatty commands (apt, make); only the tail is ever shown.
    output = (output + chunk.toString()).slice(-64_000);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  const started = Date.now();
  const ticker = opts.onTick
    ? setInterval(() => opts.onTick?.(Date.now() - started), opts.tickMs ?? 30_000)
    : undefined;
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (c) => resolve(c));
    });
    if (code !== 0)
      throw new StackError(
        `\`${command}\` exited with code ${String(code)}`,
        command,
        lastLines(output),
      );
    return output;
  } catch (err) {
    if (err instanceof StackError) throw err;
    throw new StackError(`\`${command}\` could not be run: ${(err as Error).message}`, command);
  } finally {
    if (ticker) clearInterval(ticker);
  }
}

/** Finds an executable on PATH, like `command -v`. */
export function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && isExecutable(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

export function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** True when something accepts TCP connections on host:port. */
export function portAnswers(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** True while a process exists and is not a zombie waiting to be reaped. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  const stat = `/proc/${pid}/stat`;
  if (!existsSync(stat)) return true;
  try {
    // Field 3 is the state; it follows the parenthesised command name.
    return readFileSync(stat, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Polls `check` until it returns a value, throws a StackError, `failed` returns a reason, or the
 * time is up.
 */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  opts: { timeoutMs: number; failed?: () => string | undefined },
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError = '';
  for (;;) {
    const reason = opts.failed?.();
    if (reason) throw new StackError(`${what}: ${reason}`);
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      // A StackError is a verdict (wrong type, missing namespace), not a server still starting up.
      if (err instanceof StackError) throw err;
      lastError = (err as Error).message;
    }
    if (Date.now() > deadline) {
      throw new StackError(
        `${what}: not ready after ${opts.timeoutMs / 1000}s${lastError ? ` (last error: ${lastError})` : ''}`,
      );
    }
    await sleep(250);
  }
}
