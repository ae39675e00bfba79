// The local Temporal: the `temporal` CLI's dev server, started with the search attributes embedsync
// needs.
import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection } from '@temporalio/client';
import { LOCAL_DEFAULTS } from '../config/env.js';
import {
  ensureSearchAttributes,
  SearchAttributeError,
  searchAttributeFlags,
} from '../temporal/search-attributes.js';
import type { StackPaths } from './paths.js';
import {
  fileSize,
  isAlive,
  isExecutable,
  onPath,
  portAnswers,
  quoteCommand,
  run,
  StackError,
  tailFile,
  waitFor,
  type LogLine,
} from './run.js';

/** Later CLI versions carry a `replace` directive that `go install` refuses. */
export const TEMPORAL_CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal@v1.5.1';

export const LOCAL_TEMPORAL_ADDRESS = `127.0.0.1:${LOCAL_DEFAULTS.temporalPort}`;
export const LOCAL_TEMPORAL_UI_URL = `http://127.0.0.1:${LOCAL_DEFAULTS.temporalUiPort}`;

const goCommand = (): string | undefined =>
  onPath('go') ?? (isExecutable('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined);

/** Looks on PATH, where `go install` puts binaries, and in the stack's own bin dir. */
export async function findTemporalCli(paths: StackPaths): Promise<string | undefined> {
  const onPathCli = onPath('temporal');
  if (onPathCli) return onPathCli;
  const dirs = [
    process.env.GOBIN,
    ...(process.env.GOPATH ?? '').split(':').map((p) => p && join(p, 'bin')),
    paths.bin,
  ];
  const go = goCommand();
  if (go && !process.env.GOPATH)
    dirs.push(
      join(
        (await run(go, ['env', 'GOPATH']).catch(() => '')).trim() || join(homedir(), 'go'),
        'bin',
      ),
    );
  for (const dir of dirs)
    if (dir && isExecutable(join(dir, 'temporal'))) return join(dir, 'temporal');
  return undefined;
}

/**
 * Finds the temporal CLI, building it with `go install` into `<home>/bin` when `install` is set.
 */
export async function ensureTemporalCli(
  paths: StackPaths,
  install: boolean,
  log: LogLine,
): Promise<string> {
  const found = await findTemporalCli(paths);
  if (found) return found;
  if (!install)
    throw new StackError(
      'the temporal CLI is not installed: run `npx embedsync stack install`, or set TEMPORAL_ADDRESS, or run `docker compose up`',
    );
  const go = goCommand();
  if (!go) {
    throw new StackError(
      `the temporal CLI is not installed and Go is not available to build it: install Go and run \`go install ${TEMPORAL_CLI_MODULE}\`, or set TEMPORAL_ADDRESS, or run \`docker compose up\``,
    );
  }
  mkdirSync(paths.bin, { recursive: true });
  log('installing the temporal CLI with go install (takes a few minutes)…');
  try {
    // A pure-Go build, as the CLI's own releases are: no C toolchain needed.
    await run(go, ['install', TEMPORAL_CLI_MODULE], {
      env: { ...process.env, GOBIN: paths.bin, CGO_ENABLED: '0' },
      onTick: (ms) => log(`… still building the temporal CLI (${Math.round(ms / 1000)}s)`),
    });
  } catch (err) {
    const e = err as StackError;
    throw new StackError(`could not install the temporal CLI: ${e.message}`, e.command, e.detail);
  }
  const cli = join(paths.bin, 'temporal');
  if (!isExecutable(cli)) throw new StackError(`go install succeeded but ${cli} is missing`);
  log(`temporal CLI installed: ${cli}`);
  return cli;
}

/** Ready means: the port answers, the namespace is usable, and the search attributes exist. */
export async function waitForTemporal(
  address: string,
  namespace: string,
  opts: { timeoutMs: number; failed?: () => string | undefined; namespaceMustExist?: boolean },
): Promise<void> {
  const [host = '127.0.0.1', port = String(LOCAL_DEFAULTS.temporalPort)] = address.split(':');
  await waitFor(
    `Temporal at ${address}`,
    async () => {
      if (!(await portAnswers(Number(port), host))) return undefined;
      const connection = await Connection.connect({ address, connectTimeout: '3s' });
      try {
        await connection.workflowService
          .describeNamespace({ namespace })
          .catch((err: { code?: number }) => {
            // NOT_FOUND from a server that was already running will not fix itself by waiting.
            if (err.code === 5 && opts.namespaceMustExist) {
              throw new StackError(
                `namespace ${namespace} does not exist on ${address}: create it with \`temporal operator namespace create --address ${address} ${namespace}\``,
              );
            }
            throw err;
          });
        await ensureSearchAttributes(connection, namespace).catch((err: unknown) => {
          // Waiting will not change an attribute's type: a verdict, as a StackError is.
          throw err instanceof SearchAttributeError ? new StackError(err.message) : err;
        });
        return true;
      } finally {
        await connection.close();
      }
    },
    opts,
  );
}

export interface StartedTemporal {
  pid: number;
  stop(): Promise<void>;
}

/** Starts the dev server in its own process group, so it outlives this process until stopped. */
export async function startLocalTemporal(
  cli: string,
  paths: StackPaths,
  namespace: string,
  log: LogLine,
): Promise<StartedTemporal> {
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(LOCAL_DEFAULTS.temporalPort),
    '--ui-port',
    String(LOCAL_DEFAULTS.temporalUiPort),
    '--db-filename',
    paths.temporalDb,
    ...searchAttributeFlags(),
    ...(namespace === 'default' ? [] : ['--namespace', namespace]),
    // Activities on the workflow's own task queue go straight back to the worker that asked for
    // them, saving a round trip per stage (p50 sync latency 646 → 389 ms at 5 rows/s in the
    // benchmark).
    '--dynamic-config-value',
    'system.enableActivityEagerExecution=true',
    '--log-level',
    'warn',
  ];
  const command = quoteCommand(cli, args);
  log(`starting Temporal on ${LOCAL_TEMPORAL_ADDRESS} (log: ${paths.temporalLog})`);
  const logStart = fileSize(paths.temporalLog);
  const out = openSync(paths.temporalLog, 'a');
  const child = spawn(cli, args, { detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  let exited: string | undefined;
  child.on(
    'exit',
    (code, signal) => (exited = `the server exited with ${signal ?? `code ${String(code)}`}`),
  );
  child.on('error', (err) => (exited = `could not be run: ${err.message}`));
  child.unref();
  const pid = child.pid;
  if (pid === undefined)
    throw new StackError(`could not start Temporal: \`${command}\` did not start`, command);
  writeFileSync(paths.temporalPid, `${pid}\n`);
  const stop = async (): Promise<void> => {
    await stopProcessGroup(pid);
    if (readPid(paths) === pid) rmSync(paths.temporalPid, { force: true });
  };
  try {
    await waitForTemporal(LOCAL_TEMPORAL_ADDRESS, namespace, {
      timeoutMs: 90_000,
      failed: () => exited,
    });
  } catch (err) {
    await stop();
    throw new StackError(
      `could not start Temporal: ${(err as Error).message} (log: ${paths.temporalLog})`,
      command,
      tailFile(paths.temporalLog, 20, logStart),
    );
  }
  return { pid, stop };
}

function readPid(paths: StackPaths): number | undefined {
  try {
    const pid = Number(readFileSync(paths.temporalPid, 'utf8').trim());
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The pid of the dev server started from this home, if it still runs (and the pid was not reused).
 */
export function localTemporalPid(paths: StackPaths): number | undefined {
  const pid = readPid(paths);
  if (pid === undefined || !isAlive(pid)) return undefined;
  const cmdline = `/proc/${pid}/cmdline`;
  if (existsSync(cmdline) && !readFileSync(cmdline, 'utf8').includes('start-dev')) return undefined;
  return pid;
}

/** SIGTERM to the whole group, SIGKILL if it lingers; resolves once the leader is gone. */
export async function stopProcessGroup(pid: number, timeoutMs = 15_000): Promise<void> {
  const signal = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-pid, sig);
    } catch {
      // Already gone.
    }
  };
  signal('SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline) {
      signal('SIGKILL');
      await sleep(200);
      return;
    }
    await sleep(100);
  }
}

/** Stops the dev server started from this home; false when none was running. */
export async function stopLocalTemporal(paths: StackPaths): Promise<boolean> {
  const pid = localTemporalPid(paths);
  rmSync(paths.temporalPid, { force: true });
  if (pid === undefined) return false;
  await stopProcessGroup(pid);
  return true;
}
