// Child processes for the chaos tests: each in a process group of its own, so that one signal
// reaches it and everything it forked (a postmaster's backends, tsx's esbuild), with its output
// kept so that a failing test can show what every process said.
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const KEPT_LINES = 200;

// Process groups still running; killed on the way out even when a test never reaches its cleanup.
// Being groups of their own, they would not get a Ctrl-C meant for the test run.
const liveGroups = new Set<number>();
const leftovers = new Set<string>();
const killLiveGroups = (): void => {
  for (const pgid of liveGroups) signalGroup(pgid, 'SIGKILL');
  for (const dir of leftovers) rmSync(dir, { recursive: true, force: true });
};
process.once('exit', killLiveGroups);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killLiveGroups();
    // The listener is gone now, so this ends the process as the signal would have.
    process.kill(process.pid, signal);
  });
}

/** A temp dir that goes even if the test process is interrupted before its cleanup runs. */
export function removeOnExit(dir: string): void {
  leftovers.add(dir);
}

function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/** True while any process of the group exists (zombies of the leader are reaped by node itself). */
const groupExists = (pgid: number): boolean => signalGroup(pgid, 0);

export class Child {
  readonly exited: Promise<ExitInfo>;
  private readonly lines: string[] = [];
  private exit: ExitInfo | undefined;
  private readonly listeners = new Set<(line: string) => void>();

  constructor(
    readonly name: string,
    private readonly proc: ChildProcess,
  ) {
    const pgid = proc.pid;
    if (pgid === undefined) throw new Error(`${name} did not start`);
    liveGroups.add(pgid);
    for (const stream of [proc.stdout, proc.stderr]) {
      let partial = '';
      stream?.on('data', (chunk: Buffer) => {
        const parts = (partial + chunk.toString()).split('\n');
        partial = parts.pop() ?? '';
        for (const line of parts) this.keep(line);
      });
      stream?.on('end', () => partial && this.keep(partial));
    }
    this.exited = new Promise((resolve) => {
      proc.once('exit', (code, signal) => {
        this.exit = { code, signal };
        if (!groupExists(pgid)) liveGroups.delete(pgid);
        this.keep(`[exited with ${signal ?? `code ${String(code)}`}]`);
        resolve(this.exit);
      });
      proc.once('error', (err) => {
        this.exit = { code: null, signal: null };
        this.keep(`[could not run: ${err.message}]`);
        resolve(this.exit);
      });
    });
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  output(): string {
    return this.lines.map((l) => `[${this.name}] ${l}`).join('\n');
  }

  /** Resolves with the first line (already seen or yet to come) that matches. */
  waitForLine(pattern: RegExp, timeoutMs = 30_000): Promise<string> {
    const seen = this.lines.find((l) => pattern.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const done = (err: Error | undefined, line?: string): void => {
        clearTimeout(timer);
        this.listeners.delete(listener);
        if (err) reject(err);
        else resolve(line ?? '');
      };
      const listener = (line: string): void => {
        if (pattern.test(line)) done(undefined, line);
      };
      const timer = setTimeout(
        () => done(new Error(`${this.name} did not log ${String(pattern)} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.listeners.add(listener);
      void this.exited.then((e) =>
        done(
          new Error(
            `${this.name} exited (${e.signal ?? `code ${String(e.code)}`}) before logging ${String(pattern)}`,
          ),
        ),
      );
    });
  }

  /** Signals the whole group and waits until every process of it is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL', timeoutMs = 15_000): Promise<ExitInfo> {
    const pgid = this.pid;
    signalGroup(pgid, signal);
    const deadline = Date.now() + timeoutMs;
    while (groupExists(pgid)) {
      if (Date.now() > deadline) {
        if (signal === 'SIGKILL')
          throw new Error(`${this.name} (process group ${pgid}) survived SIGKILL`);
        return this.kill('SIGKILL');
      }
      await sleep(20);
    }
    liveGroups.delete(pgid);
    return this.exited;
  }

  private keep(line: string): void {
    this.lines.push(line);
    if (this.lines.length > KEPT_LINES) this.lines.splice(0, this.lines.length - KEPT_LINES);
    for (const listener of this.listeners) listener(line);
  }
}

export function spawnChild(
  name: string,
  command: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Child {
  const proc = spawn(command, args, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Child(name, proc);
}

/** A TCP port nothing listens on right now (the kernel's pick). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
