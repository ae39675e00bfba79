// A worker process: the sync task queue (workflows, the database stages, and a sync's stages as
// local activities) plus one embedding task queue per provider, sharing one connection.
//
// Each embedding queue is paced to its provider's rate plan (src/rate-limit/task-queues.ts): the
// strictest requests- and tokens-per-minute declared by the environment
// (EMBEDSYNC_<PROVIDER>_REQUESTS_PER_MINUTE, …) or by any pipeline of the provider in the catalog,
// followed as they change.
import { Worker, type NativeConnection } from '@temporalio/worker';
import {
  createActivities,
  createEmbedActivities,
  createSinkActivities,
} from '../../activities/index.js';
import type { Pool } from '../db/pool.js';
import type { Logger } from '../log.js';
import { serveMetrics, type MetricsListen, type MetricsServer } from '../metrics/server.js';
import { createWorkerMetrics, type WorkerMetrics } from '../metrics/worker.js';
import type { ProviderRegistry } from '../providers/types.js';
import { DEFAULT_SINK_CONCURRENCY, DeliverySlots } from '../sinks/slots.js';
import { embedTaskQueue, sinkTaskQueue } from '../temporal/names.js';
import { workflowBundle } from './bundle.js';
import { RatePlans } from '../rate-limit/index.js';
import { temporalSdkMetricsUrl } from './runtime.js';

export interface WorkerDeps {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  pool: Pool;
  providers: ProviderRegistry;
  log: Logger;
  /** Where the workflow bundle is cached. */
  cacheDir: string;
  /** How often the rate limits are re-read from the catalog (default src/rate-limit/task-queues.ts). */
  rateRefreshMs?: number;
  /** The most memory an HNSW build after a walk may take, in bytes (see ActivityDeps). */
  indexBuildMemory?: number;
  /** Deliveries to sinks this worker runs at once (default DEFAULT_SINK_CONCURRENCY). */
  sinkConcurrency?: number;
}

export { DEFAULT_SINK_CONCURRENCY } from '../sinks/slots.js';

export interface EmbedsyncWorker {
  workers: Worker[];
  /** What the activities count, in a registry of this worker's own. */
  metrics: WorkerMetrics;
  /**
   * Serves /metrics (with the Temporal SDK's metrics appended, when the runtime exports them) until
   * the worker stops; returns its URL.
   */
  serveMetrics(listen: MetricsListen): Promise<string>;
  /** Resolves when every worker has stopped (after shutdown(), or a fatal error). */
  run(): Promise<void>;
  shutdown(): void;
}

export async function createWorker(deps: WorkerDeps): Promise<EmbedsyncWorker> {
  const metrics = createWorkerMetrics();
  const sinkConcurrency = deps.sinkConcurrency ?? DEFAULT_SINK_CONCURRENCY;
  const activityDeps = {
    // One bound for the syncs' first attempts and the sinks' task queue (decision 23).
    deliverySlots: new DeliverySlots(sinkConcurrency),
    pool: deps.pool,
    providers: deps.providers,
    log: deps.log,
    metrics,
    ...(deps.indexBuildMemory === undefined ? {} : { indexBuildMemory: deps.indexBuildMemory }),
  };
  const rates = new RatePlans({ ...deps, refreshMs: deps.rateRefreshMs });
  await rates.start();
  // With the rate plans: a sync's embed runs here as a local activity when its provider's queue
  // does not pace it (workflows/batch.ts).
  const main = await Worker.create({
    connection: deps.connection,
    namespace: deps.namespace,
    taskQueue: deps.taskQueue,
    workflowBundle: await workflowBundle(deps.cacheDir),
    activities: createActivities({ ...activityDeps, rates }),
  });
  const embed = await Promise.all(
    [...deps.providers.values()].map((provider) => {
      // Only where the server takes no queue rate by API: a worker option, fixed until restart.
      const perSecond = rates.serverPaced
        ? undefined
        : rates.plan(provider.name)?.activitiesPerSecond;
      return Worker.create({
        connection: deps.connection,
        namespace: deps.namespace,
        taskQueue: embedTaskQueue(deps.taskQueue, provider.name),
        activities: createEmbedActivities({ ...activityDeps, rates }),
        ...(perSecond === undefined ? {} : { maxTaskQueueActivitiesPerSecond: perSecond }),
      });
    }),
  );
  const sinks = await Worker.create({
    connection: deps.connection,
    namespace: deps.namespace,
    taskQueue: sinkTaskQueue(deps.taskQueue),
    activities: createSinkActivities(activityDeps),
    maxConcurrentActivityTaskExecutions: sinkConcurrency,
  });
  const workers = [main, ...embed, sinks];
  let server: MetricsServer | undefined;
  return {
    workers,
    metrics,
    serveMetrics: async (listen) => {
      const sources = { registry: metrics.registry, appendUrl: temporalSdkMetricsUrl() };
      server ??= await serveMetrics(listen, sources, deps.log);
      return server.url;
    },
    run: async () => {
      try {
        await Promise.all(workers.map((w) => w.run()));
      } finally {
        await rates.stop();
        await server?.close();
      }
    },
    shutdown: () => {
      void rates.stop();
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    },
  };
}
