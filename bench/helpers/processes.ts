// The worker and the poller as child processes, started the way users start them (`npm run worker`,
// `npm run poller`), so they do not share an event loop with the load generator and the watcher.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { onInterrupt } from './interrupt.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
// A first start builds the workflow bundle (webpack), which takes a while on a busy machine.
const READY_TIMEOUT_MS = 180_000;

/** Room for a million rows' HNSW graph (bench/README.md); the default is for smaller servers. */
export const BENCH_INDEX_BUILD_MEMORY = process.env.EMBEDSYNC_INDEX_BUILD_MEMORY ?? '4GB';

export interface ServiceEnv {
  databaseUrl: string;
  temporalAddress: string;
  temporalNamespace: string;
  taskQueue: string;
}

export interface Service {
  name: string;
  pid: number | undefined;
  /** Resolves once the process has logged that it is running. */
  ready: Promise<void>;
  /** SIGTERM, then SIGKILL if it has not exited after graceMs. Safe to call twice. */
  stop(graceMs?: number): Promise<void>;
  /** The last lines it wrote, for error messages. */
  tail(): string;
  /** Where everything it wrote is kept. */
  logFile: string;
}

/**
 * Runs src/cli/<cli>.ts with node + tsx directly (not npx), so the pid we hold is the service
 * itself. Its output goes to <logDir>/<cli>.log.
 */
export function startService(
  cli: 'worker' | 'poller',
  env: ServiceEnv,
  logDir: string,
  args: readonly string[] = [],
): Service {
  const child = spawn(process.execPath, ['--import', 'tsx', `src/cli/${cli}.ts`, ...args], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      DATABASE_URL: env.databaseUrl,
      TEMPORAL_ADDRESS: env.temporalAddress,
      TEMPORAL_NAMESPACE: env.temporalNamespace,
      EMBEDSYNC_TASK_QUEUE: env.taskQueue,
      // No /metrics: the rate-limit benchmark's two workers (or a worker already running here)
      // would contend for the default port, and a worker that cannot serve it exits.
      EMBEDSYNC_WORKER_METRICS_PORT: '0',
      EMBEDSYNC_POLLER_METRICS_PORT: '0',
      LOG_LEVEL: 'info',
      LOG_FORMAT: 'json',
      EMBEDSYNC_INDEX_BUILD_MEMORY: BENCH_INDEX_BUILD_MEMORY,
    },
  });
  const logFile = path.join(logDir, `${cli}.log`);
  const log = createWriteStream(logFile);
  const lines: string[] = [];
  const exited = new Promise<void>((resolve) =>
    child.once('close', () => log.end(() => resolve())),
  );
  const ready = new Promise<void>((resolve, reject) => {
    const remember = (chunk: Buffer): void => {
      log.write(chunk);
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
        lines.push(line);
        if (lines.length > 40) lines.shift();
        if (line.includes(`"msg":"${cli} running"`)) resolve();
      }
    };
    child.stdout?.on('data', remember);
    child.stderr?.on('data', remember);
    child.once('exit', (code, signal) =>
      reject(
        new Error(`${cli} exited (${signal ?? code}) before it was ready:\n${lines.join('\n')}`),
      ),
    );
    // The CLIs log "<name> running" at info once they serve; without it, say so rather than wait
    // forever.
    setTimeout(
      () =>
        reject(
          new Error(
            `${cli} did not log "${cli} running" within ${READY_TIMEOUT_MS / 1000} s:\n${lines.join('\n')}`,
          ),
        ),
      READY_TIMEOUT_MS,
    ).unref();
  });
  // A stop() before ready must not leave an unhandled rejection behind.
  ready.catch(() => undefined);
  // An interrupted run must not leave the service running without its parent.
  const forget = onInterrupt(() => stopChild(child, exited, 5_000));
  return {
    name: cli,
    pid: child.pid,
    ready,
    tail: () => lines.join('\n'),
    logFile,
    stop: async (graceMs = 20_000) => {
      await stopChild(child, exited, graceMs);
      forget();
    },
  };
}

/** SIGTERM, then SIGKILL after graceMs; resolves once the process has closed its output. */
export async function stopChild(
  child: ChildProcess,
  exited: Promise<void>,
  graceMs: number,
): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}
