// npx embedsync reembed: after a change of what a pipeline embeds (model, dimensions, columns,
// prefixes, chunking) has been applied, builds the new generation in a table of its own and swaps
// it in atomically. Search keeps working on the old generation until the swap, and never sees both.
import { failureMessage } from '../temporal/failure.js';
import { Command } from 'commander';
import {
  batchMode,
  DEFAULT_ENQUEUED_TOKENS,
  DEFAULT_POLL_SECONDS,
  DEFAULT_WINDOW,
  walkBatchSize,
} from '../backfill/start.js';
import { checkSourceSchemas } from '../capture/schema-check.js';
import { getPipeline, instanceId, resolvePipeline } from '../db/catalog.js';
import { vectorsPlace } from '../db/destination.js';
import { countSourceRows } from '../db/source.js';
import { NothingToReembedError, startReembed } from '../reembed/start.js';
import { webUiWorkflowUrl } from '../temporal/names.js';
import { positiveInt, runMain, UserError } from './common.js';
import { dryRun } from './dry-run.js';
import {
  connectTemporal,
  openDatabase,
  temporalUiUrl,
  type TemporalSession,
} from './connections.js';
import { plural, ranFor } from './format.js';
import { catchInterrupt, watchBackfill } from './watch.js';

const opts = new Command('embedsync reembed')
  .usage(
    '--table <pipeline> [--batch] [--batch-size <n>] [--window <n>] [--detach] [--dry-run [--json]]',
  )
  .description(
    'Re-embed a pipeline whose embedding config changed: build the new generation beside the live one, then swap it in atomically.',
  )
  .requiredOption('-t, --table <pipeline>', 'a pipeline name, or a source table one pipeline syncs')
  .option(
    '--batch-size <n>',
    "source keys per batch (default: the new config's batchSize, at least 500)",
    positiveInt,
  )
  .option('--window <n>', `batches in flight at once (default ${DEFAULT_WINDOW})`, positiveInt)
  .option('--detach', 'start the re-embed (or find the running one) and return at once')
  .option(
    '--batch',
    "batch mode: through OpenAI's Batch API at half the price, done within 24 hours (default: the new config's backfill.mode)",
  )
  .option('--no-batch', "online, whatever the new config's backfill.mode says")
  .option(
    '--enqueued-tokens <n>',
    `batch mode: the account's enqueued-token limit for the model (default: backfill.enqueuedTokens, else ${DEFAULT_ENQUEUED_TOKENS.toLocaleString('en-US')})`,
    positiveInt,
  )
  .option(
    '--poll-seconds <n>',
    `batch mode: seconds between polls of the provider's batches (default ${DEFAULT_POLL_SECONDS})`,
    positiveInt,
  )
  .option(
    '--dry-run',
    'start nothing, send nothing: count the rows, chunks and tokens the new config would embed, its price and how long the rate limits make it take',
  )
  .option('--json', 'with --dry-run: print the estimate as JSON')
  .addHelpText(
    'after',
    `
Examples:
  npx embedsync apply --config embedsync.yaml   # says "re-embed pending" for a changed model or columns
  npx embedsync reembed --table products --dry-run   # what the new generation would cost
  npx embedsync reembed --table products
  npx embedsync reembed --table products --batch   # OpenAI's Batch API: half price, within 24 h

While it runs, changes are written to both generations; pause and resume it like a backfill
(npx embedsync pause / resume --table products). Ctrl-C stops watching, never the re-embed.`,
  )
  .parse()
  .opts<{
    table: string;
    batchSize?: number;
    window?: number;
    detach?: boolean;
    batch?: boolean;
    enqueuedTokens?: number;
    pollSeconds?: number;
    dryRun?: boolean;
    json?: boolean;
  }>();

runMain(async (env) => {
  const pool = await openDatabase(env, 'embedsync-reembed');
  let session: TemporalSession | undefined;
  try {
    const named = await resolvePipeline(pool, opts.table);
    // A renamed source table is followed before its rows are counted.
    await checkSourceSchemas(pool, { pipeline: named.name });
    const p = await getPipeline(pool, named.name);
    if (!p.pendingConfig || p.pendingGeneration === null)
      throw new UserError(new NothingToReembedError(p.name).message);
    const next = { ...p, config: p.pendingConfig };
    const batch = batchMode(next, opts.batch);
    const provider = p.pendingConfig.embedding.provider;
    if (batch && provider !== 'openai')
      throw new UserError(
        `${p.name} embeds with ${provider}: batch mode needs OpenAI's Batch API (Bedrock's batch inference needs S3 buckets and an IAM role; see the README); run the re-embed without --batch`,
      );
    if (opts.dryRun) {
      const batchSize = opts.batchSize ?? walkBatchSize(p.pendingConfig.batchSize);
      await dryRun(pool, p, { kind: 'reembed', batchSize, json: opts.json === true });
      return;
    }
    if (opts.json) throw new UserError('--json goes with --dry-run');
    session = await connectTemporal(env);
    const { client } = session;
    const rows = await countSourceRows(pool, p);
    const handle = await startReembed(client, p, {
      taskQueue: env.taskQueue,
      instanceId: await instanceId(pool),
      rows,
      ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
      ...(opts.window ? { window: opts.window } : {}),
      ...(batch
        ? {
            batch: {
              ...(opts.enqueuedTokens ? { enqueuedTokens: opts.enqueuedTokens } : {}),
              ...(opts.pollSeconds ? { pollSeconds: opts.pollSeconds } : {}),
            },
          }
        : {}),
    });
    const url = webUiWorkflowUrl(temporalUiUrl(env), env.temporalNamespace, handle.workflowId);
    // Caught before the line a user may answer with Ctrl-C is printed, not once watching has begun.
    const interrupt = catchInterrupt();
    const e = p.pendingConfig.embedding;
    console.log(
      `${p.name}: re-embedding ${plural(rows, 'row')} as generation ${p.pendingGeneration} (${e.provider}/${e.model}, ${e.dimensions} dims)`,
    );
    if (opts.detach) {
      interrupt.dispose();
      console.log(`  workflow:  ${handle.workflowId}  ${url}`);
      console.log(`  status:    npx embedsync status --table ${p.name}`);
      return;
    }
    const outcome = await watchBackfill(
      client,
      handle,
      { pipeline: p.name, rows, tty: process.stdout.isTTY === true, taskQueue: env.taskQueue },
      interrupt,
    ).catch((err: Error) => {
      throw new UserError(
        `the re-embed of ${p.name} did not complete: ${failureMessage(err)} (${url})`,
      );
    });
    if (outcome.kind === 'detached') {
      console.log(`\n${p.name}: stopped watching; the re-embed continues in Temporal (${url}).`);
      return;
    }
    const walked = `${plural(outcome.result.processed, 'row')}${ranFor(outcome.result)}`;
    const live = `generation ${p.pendingGeneration} is live: ${walked}`;
    console.log(`${p.name}: ${live}; vectors in ${vectorsPlace(p)}`);
  } finally {
    await session?.close();
    await pool.end();
  }
});
