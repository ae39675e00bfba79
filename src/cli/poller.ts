// npm run poller: moves captured changes from the outbox into Temporal workflows until SIGTERM.
import { Command } from 'commander';
import { migrate } from '../db/migrator.js';
import { createPool } from '../db/pool.js';
import { createLogger } from '../log.js';
import { Poller, DEFAULT_POLLER_OPTIONS } from '../poller/poller.js';
import { ensureSearchAttributes } from '../stack/index.js';
import { connectClient, temporalAddress } from '../temporal/connect.js';
import { databaseUrl, runMain } from './common.js';

const opts = new Command('embedsync poller')
  .description('Run an embedsync poller: claims outbox rows and starts one sync workflow per batch. Several may run at once.')
  .option('--claim-limit <n>', 'most outbox rows one claim takes', (v) => Number.parseInt(v, 10), DEFAULT_POLLER_OPTIONS.claimLimit)
  .option('--interval <ms>', 'how often to look for changes (a NOTIFY on embedsync_outbox wakes it sooner)', (v) => Number.parseInt(v, 10), DEFAULT_POLLER_OPTIONS.fallbackIntervalMs)
  .addHelpText('after', `
Environment: DATABASE_URL, TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, EMBEDSYNC_TASK_QUEUE
(see \`embedsync worker --help\`).`)
  .parse()
  .opts<{ claimLimit: number; interval: number }>();

runMain(async (env) => {
  const log = createLogger(env, 'poller');
  const url = databaseUrl(env);
  const pool = createPool(url, { max: 4, applicationName: 'embedsync-poller' });
  await migrate(pool);
  const { client: temporal, connection } = await connectClient(env);
  await ensureSearchAttributes(connection, env.temporalNamespace);
  const poller = new Poller({ pool, databaseUrl: url, temporal, taskQueue: env.taskQueue, log }, { claimLimit: opts.claimLimit, fallbackIntervalMs: opts.interval });
  poller.start();
  log.info({ temporal: temporalAddress(env), taskQueue: env.taskQueue }, 'poller running');
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  log.info('stopping: the claim in progress commits or rolls back first');
  await poller.stop();
  await connection.close();
  await pool.end();
});
