// npx embedsync worker: runs the Temporal worker against DATABASE_URL and TEMPORAL_ADDRESS until
// SIGTERM.
// First: the worker's memory defaults must be in place before anything else is loaded.
import './worker-memory.js';
import path from 'node:path';
import { Client } from '@temporalio/client';
import { Command } from 'commander';
import { migrate } from '../db/migrator.js';
import { createPool } from '../db/pool.js';
import { createLogger } from '../log.js';
import { Poller } from '../poller/poller.js';
import { createProviders } from '../providers/index.js';
import { temporalAddress } from '../temporal/connect.js';
import { ensureSearchAttributes } from '../temporal/search-attributes.js';
import { connectWorker } from '../worker/connect.js';
import { createWorker } from '../worker/worker.js';
import { databaseUrl, metricsPortError, runMain } from './common.js';

const opts = new Command('embedsync worker')
  .description(
    'Run an embedsync worker: the sync workflows, their database stages, and the embedding activities.',
  )
  .option(
    '--poller',
    'also run a poller in this process; it starts each sync eagerly on this worker (no task queue round trip: the lowest latency)',
  )
  .addHelpText(
    'after',
    `
Environment:
  DATABASE_URL          Postgres holding the source tables and embedsync's schema
  TEMPORAL_ADDRESS      host:port of the Temporal frontend (default 127.0.0.1:7233)
  TEMPORAL_NAMESPACE    (default "default")
  EMBEDSYNC_TASK_QUEUE  (default "embedsync"); give each deployment sharing a namespace its own
  LOG_LEVEL, LOG_FORMAT json|pretty
  EMBEDSYNC_INDEX_BUILD_MEMORY
                        most maintenance_work_mem the HNSW build after a first backfill may take
                        (default 1GB; 0: the server's own setting)
  MALLOC_ARENA_MAX, NODE_OPTIONS=--max-semi-space-size=<MiB>
                        the worker's memory defaults (2 arenas, 8 MiB): when either is unset the
                        worker restarts itself in place with it (Linux); set your own to keep them
  EMBEDSYNC_SINK_CONCURRENCY
                        deliveries to sinks this worker runs at once, each holding a database
                        connection while it sends (default 3; the worker's pool has 10)

Metrics (Prometheus; the Temporal SDK's worker metrics come in the same scrape):
  EMBEDSYNC_WORKER_METRICS_PORT
                        /metrics port (default 9464; 0: off). Each worker on one host needs its own
  EMBEDSYNC_METRICS_HOST
                        address to listen on (default 0.0.0.0: reachable by a Prometheus elsewhere)

Providers (credentials only from the environment):
  OPENAI_API_KEY        or the variable a pipeline names in embedding.apiKeyEnv
  OPENAI_BASE_URL       an OpenAI-compatible server (Ollama, vLLM, …) when a pipeline sets none
  AWS_REGION, AWS_ENDPOINT_URL_BEDROCK_RUNTIME, and the AWS default credential chain
  GOOGLE_API_KEY or GEMINI_API_KEY
                        or the variable a Gemini pipeline names in embedding.apiKeyEnv
  GOOGLE_GEMINI_BASE_URL
                        a proxy or test server for the Gemini API when a pipeline sets none
  VOYAGE_API_KEY        or the variable a Voyage pipeline names in embedding.apiKeyEnv
  VOYAGE_BASE_URL       a Voyage-compatible or test server when a pipeline sets none
  EMBEDSYNC_OPENAI_REQUESTS_PER_MINUTE, EMBEDSYNC_OPENAI_TOKENS_PER_MINUTE,
  EMBEDSYNC_BEDROCK_REQUESTS_PER_MINUTE, EMBEDSYNC_BEDROCK_TOKENS_PER_MINUTE,
  EMBEDSYNC_GEMINI_REQUESTS_PER_MINUTE, EMBEDSYNC_GEMINI_TOKENS_PER_MINUTE,
  EMBEDSYNC_VOYAGE_REQUESTS_PER_MINUTE, EMBEDSYNC_VOYAGE_TOKENS_PER_MINUTE
                        limits for every pipeline of the provider (pipelines may declare stricter
                        ones); give every worker the same. Changes in the pipelines are followed
                        within 5 s, without a restart.
  EMBEDSYNC_LOCAL_MODELS
                        where provider: local finds its models (default <EMBEDSYNC_HOME>/models;
                        \`embedsync model fetch\` puts them there; a pipeline's modelDir wins)
  EMBEDSYNC_LOCAL_THREADS
                        CPU threads a local model's inference may use (default 1)

With --poller, the poller's metrics are served on EMBEDSYNC_POLLER_METRICS_PORT (see
\`embedsync poller --help\`).

Stops gracefully on SIGTERM or SIGINT: running activities finish first.`,
  )
  .parse()
  .opts<{ poller?: boolean }>();

runMain(async (env) => {
  const log = createLogger(env, 'worker');
  const pool = createPool(databaseUrl(env), { max: 10, applicationName: 'embedsync-worker' });
  await migrate(pool);
  const metricsPort = env.metrics.workerPort;
  const connection = await connectWorker(env, log, { metrics: metricsPort !== 0 });
  const worker = await createWorker({
    connection,
    namespace: env.temporalNamespace,
    taskQueue: env.taskQueue,
    pool,
    providers: createProviders(),
    log,
    cacheDir: path.resolve(env.home, 'cache'),
    indexBuildMemory: env.indexBuildMemory,
    sinkConcurrency: env.sinkConcurrency,
  });
  const metrics =
    metricsPort === 0
      ? undefined
      : await worker
          .serveMetrics({ host: env.metrics.host, port: metricsPort })
          .catch(metricsPortError('EMBEDSYNC_WORKER_METRICS_PORT'));
  const where = {
    temporal: temporalAddress(env),
    namespace: env.temporalNamespace,
    taskQueue: env.taskQueue,
  };
  log.info({ ...where, metrics }, 'worker running');
  // Beside the worker, on its connection: the server can hand each started sync's first workflow
  // task back in the start call's reply (eager workflow start).
  let poller: Poller | undefined;
  // Connections of its own, as a poller process has: its claim, held open across the start call,
  // never waits behind the stages for one.
  const pollerPool = opts.poller
    ? createPool(databaseUrl(env), { max: 4, applicationName: 'embedsync-poller' })
    : undefined;
  if (pollerPool) {
    await ensureSearchAttributes(connection, env.temporalNamespace);
    const temporal = new Client({ connection, namespace: env.temporalNamespace });
    const url = databaseUrl(env);
    poller = new Poller(
      { pool: pollerPool, databaseUrl: url, temporal, taskQueue: env.taskQueue, log },
      { eagerStart: true, textRetentionMs: env.textRetentionMs },
    );
    const port = env.metrics.pollerPort;
    const pollerMetrics =
      port === 0
        ? undefined
        : await poller
            .serveMetrics({ host: env.metrics.host, port })
            .catch(metricsPortError('EMBEDSYNC_POLLER_METRICS_PORT'));
    poller.start();
    // Stops claiming at once; the claim in progress commits or rolls back first.
    const stopping = poller;
    for (const signal of ['SIGTERM', 'SIGINT'] as const)
      process.once(signal, () => void stopping.stop());
    log.info({ ...where, metrics: pollerMetrics }, 'poller running beside the worker');
  }
  try {
    // The SDK shuts the workers down on SIGINT/SIGTERM; run() resolves once they have drained.
    await worker.run();
  } finally {
    await poller?.stop();
    await connection.close();
    await pool.end();
    await pollerPool?.end();
    log.info('worker stopped');
  }
});
