// npx embedsync poller: moves captured changes from the outbox into Temporal workflows until
// SIGTERM.
import { Command } from 'commander';
import { migrate } from '../db/migrator.js';
import { createPool } from '../db/pool.js';
import { createLogger } from '../log.js';
import { Poller, DEFAULT_POLLER_OPTIONS } from '../poller/poller.js';
import { connectClient, temporalAddress } from '../temporal/connect.js';
import { ensureSearchAttributes } from '../temporal/search-attributes.js';
import { databaseUrl, metricsPortError, runMain } from './common.js';

const opts = new Command('embedsync poller')
  .description(
    'Run an embedsync poller: claims outbox rows and starts one sync workflow per batch. Several may run at once.',
  )
  .option(
    '--claim-limit <n>',
    'most keys one claim takes',
    (v) => Number.parseInt(v, 10),
    DEFAULT_POLLER_OPTIONS.claimLimit,
  )
  .option(
    '--interval <ms>',
    'how often to look for changes while none are flowing (a NOTIFY on embedsync_outbox wakes it sooner)',
    (v) => Number.parseInt(v, 10),
    DEFAULT_POLLER_OPTIONS.fallbackIntervalMs,
  )
  .option(
    '--busy-interval <ms>',
    'how soon to look again after a look that found changes, for --busy-hold ms (then doubling while none come, up to --interval)',
    (v) => Number.parseInt(v, 10),
    DEFAULT_POLLER_OPTIONS.busyIntervalMs,
  )
  .option(
    '--busy-hold <ms>',
    'how long to keep looking at the busy interval after the last look that found changes',
    (v) => Number.parseInt(v, 10),
    DEFAULT_POLLER_OPTIONS.busyHoldMs,
  )
  .addHelpText(
    'after',
    `
Environment: DATABASE_URL, TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, EMBEDSYNC_TASK_QUEUE
(see \`embedsync worker --help\`).

Metrics (Prometheus: outbox backlog, dead letters, backfill progress, read from Postgres at each scrape):
  EMBEDSYNC_POLLER_METRICS_PORT
                        /metrics port (default 9465; 0: off). Each poller on one host needs its own
  EMBEDSYNC_METRICS_HOST
                        address to listen on (default 0.0.0.0: reachable by a Prometheus elsewhere)`,
  )
  .parse()
  .opts<{ claimLimit: number; interval: number; busyInterval: number; busyHold: number }>();

runMain(async (env) => {
  const log = createLogger(env, 'poller');
  const url = databaseUrl(env);
  const pool = createPool(url, { max: 4, applicationName: 'embedsync-poller' });
  await migrate(pool);
  const { client: temporal, connection } = await connectClient(env);
  await ensureSearchAttributes(connection, env.temporalNamespace);
  const poller = new Poller(
    { pool, databaseUrl: url, temporal, taskQueue: env.taskQueue, log },
    {
      claimLimit: opts.claimLimit,
      fallbackIntervalMs: opts.interval,
      busyIntervalMs: opts.busyInterval,
      busyHoldMs: opts.busyHold,
      textRetentionMs: env.textRetentionMs,
    },
  );
  const metricsPort = env.metrics.pollerPort;
  const metrics =
    metricsPort === 0
      ? undefined
      : await poller
          .serveMetrics({ host: env.metrics.host, port: metricsPort })
          .catch(metricsPortError('EMBEDSYNC_POLLER_METRICS_PORT'));
  poller.start();
  log.info({ temporal: temporalAddress(env), taskQueue: env.taskQueue, metrics }, 'poller running');
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  log.info('stopping: the claim in progress commits or rolls back first');
  await poller.stop();
  await connection.close();
  await pool.end();
});
