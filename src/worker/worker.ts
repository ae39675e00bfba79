// A worker process: the sync task queue (workflows and the database stages) plus one embedding task
// queue per provider, sharing one connection.
//
// Each embedding queue is paced to its provider's rate plan (src/worker/rate-plans.ts): the strictest
// requests- and tokens-per-minute declared by the environment (EMBEDSYNC_<PROVIDER>_REQUESTS_PER_MINUTE,
// …) or by any pipeline of the provider in the catalog, followed as they change.
import { Worker, type NativeConnection } from '@temporalio/worker';
import { createActivities, createEmbedActivities } from '../../activities/index.js';
import type { Pool } from '../db/pool.js';
import type { Logger } from '../log.js';
import type { ProviderRegistry } from '../providers/types.js';
import { embedTaskQueue } from '../temporal/names.js';
import { workflowBundle } from './bundle.js';
import { RatePlans } from './rate-plans.js';

export interface WorkerDeps {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  pool: Pool;
  providers: ProviderRegistry;
  log: Logger;
  /** Where the workflow bundle is cached. */
  cacheDir: string;
  /** How often the rate limits are re-read from the catalog (default src/worker/rate-plans.ts). */
  rateRefreshMs?: number;
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
  const rates = new RatePlans({ ...deps, refreshMs: deps.rateRefreshMs });
  await rates.start();
  const embed = await Promise.all(
    [...deps.providers.values()].map((provider) => {
      // Only where the server takes no queue rate by API: a worker option, fixed until restart.
      const perSecond = rates.serverPaced ? undefined : rates.plan(provider.name)?.activitiesPerSecond;
      return Worker.create({
        connection: deps.connection,
        namespace: deps.namespace,
        taskQueue: embedTaskQueue(deps.taskQueue, provider.name),
        activities: createEmbedActivities({ ...activityDeps, rates }),
        ...(perSecond === undefined ? {} : { maxTaskQueueActivitiesPerSecond: perSecond }),
      });
    }),
  );
  const workers = [main, ...embed];
  return {
    workers,
    run: async () => {
      try {
        await Promise.all(workers.map((w) => w.run()));
      } finally {
        await rates.stop();
      }
    },
    shutdown: () => {
      void rates.stop();
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    },
  };
}
