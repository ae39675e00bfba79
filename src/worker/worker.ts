// A worker process: the sync task queue (workflows and the database stages) plus one embedding task
// queue per provider, sharing one connection.
//
// Each embedding queue is paced by the Temporal server (maxTaskQueueActivitiesPerSecond, enforced
// across every worker of the queue) to its provider's rate plan: the strictest requests- and
// tokens-per-minute declared by the environment (EMBEDSYNC_<PROVIDER>_REQUESTS_PER_MINUTE, …) or by
// any pipeline of the provider in the catalog, read when the worker starts. Every worker reads the
// same catalog, so all of them set the same rate; after changing a limit, restart the workers.
import { Worker, type NativeConnection } from '@temporalio/worker';
import { createActivities, createEmbedActivities } from '../../activities/index.js';
import { listPipelines } from '../db/catalog.js';
import type { Pool } from '../db/pool.js';
import type { Logger } from '../log.js';
import { planProviderQueue, withBudget } from '../providers/rate-plan.js';
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
  // A pipeline's pending config (during a re-embed) may use another provider: it is paced as well.
  const configs = (await listPipelines(deps.pool)).flatMap((p) => (p.pendingConfig ? [p.config, p.pendingConfig] : [p.config]));
  const embed = await Promise.all(
    [...deps.providers.values()].map((provider) => {
      const plan = planProviderQueue(provider, configs.filter((c) => c.embedding.provider === provider.name));
      if (plan.activitiesPerSecond !== undefined) {
        deps.log.info({ provider: provider.name, ...plan.limit, activitiesPerSecond: plan.activitiesPerSecond, tokensPerRequest: plan.tokensPerRequest }, 'embedding queue paced');
      }
      return Worker.create({
        connection: deps.connection,
        namespace: deps.namespace,
        taskQueue: embedTaskQueue(deps.taskQueue, provider.name),
        activities: createEmbedActivities({ ...activityDeps, providers: new Map([[provider.name, withBudget(provider, plan)]]) }),
        ...(plan.activitiesPerSecond === undefined ? {} : { maxTaskQueueActivitiesPerSecond: plan.activitiesPerSecond }),
      });
    }),
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
