// A worker process: the sync task queue (workflows and the database stages) plus one embedding task
// queue per provider, sharing one connection.
import { Worker, type NativeConnection } from '@temporalio/worker';
import { createActivities, createEmbedActivities } from '../../activities/index.js';
import type { Pool } from '../db/pool.js';
import type { Logger } from '../log.js';
import type { ProviderRegistry } from '../providers/types.js';
import { embedTaskQueue } from '../temporal/names.js';
import { workflowBundle } from './bundle.js';

export interface WorkerDeps {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  pool: Pool;
  providers: ProviderRegistry;
  log: Logger;
  /** Where the workflow bundle is cached. */
  cacheDir: string;
}

export interface EmbedsyncWorker {
  workers: Worker[];
  /** Resolves when every worker has stopped (after shutdown(), or a fatal error). */
  run(): Promise<void>;
  shutdown(): void;
}

export async function createWorker(deps: WorkerDeps): Promise<EmbedsyncWorker> {
  const activityDeps = { pool: deps.pool, providers: deps.providers, log: deps.log };
  const main = await Worker.create({
    connection: deps.connection,
    namespace: deps.namespace,
    taskQueue: deps.taskQueue,
    workflowBundle: await workflowBundle(deps.cacheDir),
    activities: createActivities(activityDeps),
  });
  const embed = await Promise.all(
    [...deps.providers.keys()].map((provider) =>
      Worker.create({
        connection: deps.connection,
        namespace: deps.namespace,
        taskQueue: embedTaskQueue(deps.taskQueue, provider),
        activities: createEmbedActivities(activityDeps),
      }),
    ),
  );
  const workers = [main, ...embed];
  return {
    workers,
    run: async () => {
      await Promise.all(workers.map((w) => w.run()));
    },
    shutdown: () => {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    },
  };
}
