// embedsync's own processes, run the way users run them: `src/cli/worker.ts` and
// `src/cli/poller.ts` as child processes configured by environment, so that SIGKILL hits real
// processes.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { REPO_ROOT } from '../../../src/stack/paths.js';
import type { Child } from './processes.js';
import type { Scene } from './scene.js';

export interface Deployment {
  databaseUrl: string;
  temporalAddress: string;
  taskQueue: string;
  /**
   * When set, the worker (see counting-worker.ts) appends every text it sends to the provider to
   * this file.
   */
  embedLog?: string;
}

const COUNTING_WORKER = path.relative(
  REPO_ROOT,
  fileURLToPath(new URL('./counting-worker.ts', import.meta.url)),
);

export const uniqueTaskQueue = (label: string): string =>
  `chaos-${label}-${randomBytes(3).toString('hex')}`;

function environment(d: Deployment): NodeJS.ProcessEnv {
  return {
    DATABASE_URL: d.databaseUrl,
    TEMPORAL_ADDRESS: d.temporalAddress,
    EMBEDSYNC_TASK_QUEUE: d.taskQueue,
    LOG_FORMAT: 'json',
    // Info, not the tests' usual warn: on failure, what each process did is the evidence.
    LOG_LEVEL: 'info',
    ...(d.embedLog ? { EMBEDSYNC_TEST_EMBED_LOG: d.embedLog } : {}),
  };
}

function startCli(
  scene: Scene,
  name: string,
  script: string,
  d: Deployment,
  options: string[],
): Child {
  return scene.spawn(name, process.execPath, ['--import', 'tsx', script, ...options], {
    cwd: REPO_ROOT,
    env: environment(d),
  });
}

/** Starts `npx embedsync worker`'s program and waits until it polls its task queues. */
export async function startWorker(scene: Scene, d: Deployment, name = 'worker'): Promise<Child> {
  const worker = startCli(
    scene,
    name,
    d.embedLog ? COUNTING_WORKER : path.join('src', 'cli', 'worker.ts'),
    d,
    [],
  );
  await worker.waitForLine(/"msg":"worker running"/, 60_000);
  return worker;
}

/**
 * Starts `npx embedsync poller`'s program, claiming small batches often so that a kill lands
 * mid-claim.
 */
export async function startPoller(scene: Scene, d: Deployment, name = 'poller'): Promise<Child> {
  const poller = startCli(scene, name, path.join('src', 'cli', 'poller.ts'), d, [
    '--claim-limit',
    '50',
    '--interval',
    '100',
  ]);
  await poller.waitForLine(/"msg":"poller running"/, 60_000);
  return poller;
}
