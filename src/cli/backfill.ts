// npx embedsync backfill: embeds every existing row of a pipeline's source table as one durable
// workflow, and watches it until it is done. A second run attaches to the running backfill instead
// of starting another; Ctrl-C stops watching, never the backfill.
import { failureMessage } from '../temporal/failure.js';
import { Command } from 'commander';
import {
  batchMode,
  DEFAULT_ENQUEUED_TOKENS,
  DEFAULT_POLL_SECONDS,
  DEFAULT_WINDOW,
  startBackfill,
  startBatchBackfill,
  walkBatchSize,
} from '../backfill/start.js';
import { checkSourceSchemas } from '../capture/schema-check.js';
import { getPipeline, instanceId, resolvePipeline } from '../db/catalog.js';
import { vectorsPlace } from '../db/destination.js';
import { countSourceRows } from '../db/source.js';
import { runningBackfill } from '../status/index.js';
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

const opts = new Command('embedsync backfill')
  .usage(
    '--table <pipeline> [--batch] [--batch-size <n>] [--window <n>] [--detach] [--dry-run [--json]]',
  )
  .description(
    "Embed every existing row of a pipeline's source table: a Temporal workflow that checkpoints, survives restarts and can be paused. Shows its progress until it is done.",
  )
  .requiredOption('-t, --table <pipeline>', 'a pipeline name, or a source table one pipeline syncs')
  .option(
    '--batch-size <n>',
    "source keys per batch (default: the pipeline's batchSize, at least 500)",
    positiveInt,
  )
  .option('--window <n>', `batches in flight at once (default ${DEFAULT_WINDOW})`, positiveInt)
  .option('--detach', 'start the backfill (or find the running one) and return at once')
  .option(
    '--batch',
    "batch mode: through OpenAI's Batch API at half the price, done within 24 hours (default: the pipeline's backfill.mode)",
  )
  .option('--no-batch', "online, whatever the pipeline's backfill.mode says")
  .option(
    '--enqueued-tokens <n>',
    `batch mode: the account's enqueued-token limit for the model (default: the pipeline's backfill.enqueuedTokens, else ${DEFAULT_ENQUEUED_TOKENS.toLocaleString('en-US')})`,
    positiveInt,
  )
  .option(
    '--poll-seconds <n>',
    `batch mode: seconds between polls of the provider's batches (default ${DEFAULT_POLL_SECONDS})`,
    positiveInt,
  )
  .option(
    '--dry-run',
    'start nothing, send nothing: count the rows, chunks and tokens it would embed, its price and how long the rate limits make it take',
  )
  .option('--json', 'with --dry-run: print the estimate as JSON')
  .addHelpText(
    'after',
    `
Examples:
  npx embedsync backfill --table products
  npx embedsync backfill --table products --detach --window 8
  npx embedsync backfill --table products --batch --enqueued-tokens 3000000
  npx embedsync backfill --table products --dry-run   # what it would cost, before it starts

Rows whose vectors already match their content are checked, not embedded again, so running a
backfill twice costs little. Ctrl-C while watching leaves the backfill running; run the same command
again to watch it, and \`npx embedsync pause --table <pipeline>\` to hold it.

Batch mode cuts the table into parts (50,000 inputs, 200 MB and the enqueued-token limit each),
submits a part only while the parts in flight leave room for it under the limit, polls them and
writes their vectors as they complete. Pausing stops new parts; cancelling the workflow
(\`temporal workflow cancel --workflow-id backfill:<pipeline>\`) cancels the provider's batches too.
Only OpenAI pipelines have it.`,
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
  const pool = await openDatabase(env, 'embedsync-backfill');
  let session: TemporalSession | undefined;
  try {
    const named = await resolvePipeline(pool, opts.table);
    // A renamed table is followed first; a held pipeline's batches would fail on what its table
    // lost.
    const [check] = await checkSourceSchemas(pool, { pipeline: named.name });
    const hold = check?.verdict.hold;
    if (hold) throw new UserError(`${named.name} is ${hold.state}: ${hold.reason}`);
    const p = await getPipeline(pool, named.name);
    if (opts.dryRun) {
      const batchSize = opts.batchSize ?? walkBatchSize(p.config.batchSize);
      await dryRun(pool, p, { kind: 'backfill', batchSize, json: opts.json === true });
      return;
    }
    if (opts.json) throw new UserError('--json goes with --dry-run');
    session = await connectTemporal(env);
    const { client } = session;
    const running = await runningBackfill(client, p.name);
    if (!running && p.syncPaused) {
      throw new UserError(
        `${p.name} is paused: resume it first (npx embedsync resume --table ${p.name}), then backfill`,
      );
    }
    const batch = batchMode(p, opts.batch);
    const provider = p.config.embedding.provider;
    if (batch && provider !== 'openai')
      throw new UserError(
        `${p.name} embeds with ${provider}: batch mode needs OpenAI's Batch API (Bedrock's batch inference needs S3 buckets and an IAM role; see the README); run the backfill without --batch`,
      );
    const rows = running ? 0 : await countSourceRows(pool, p);
    const common = { taskQueue: env.taskQueue, instanceId: await instanceId(pool), rows };
    const handle = batch
      ? await startBatchBackfill(client, p, {
          ...common,
          ...(opts.enqueuedTokens ? { enqueuedTokens: opts.enqueuedTokens } : {}),
          ...(opts.pollSeconds ? { pollSeconds: opts.pollSeconds } : {}),
        })
      : await startBackfill(client, p, {
          ...common,
          ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
          ...(opts.window ? { window: opts.window } : {}),
        });
    const url = webUiWorkflowUrl(temporalUiUrl(env), env.temporalNamespace, handle.workflowId);
    // Caught before the line a user may answer with Ctrl-C is printed, not once watching has begun.
    const interrupt = catchInterrupt();
    if (running) {
      const ignored =
        opts.batchSize || opts.window
          ? ' (--batch-size and --window apply to new backfills only)'
          : '';
      console.log(
        `${p.name}: a backfill is already running${opts.detach ? '' : '; following it'}${ignored}`,
      );
    } else {
      const mode = batch ? ' in batch mode (OpenAI Batch API, half price, within 24 h)' : '';
      console.log(
        `${p.name}: backfill started${mode} for ${plural(rows, 'row')} of ${p.sourceSchema}.${p.sourceTable}`,
      );
    }
    if (opts.detach) {
      interrupt.dispose();
      console.log(`  workflow:  ${handle.workflowId}  ${url}`);
      console.log(`  watch:     npx embedsync backfill --table ${p.name}`);
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
        `the backfill of ${p.name} did not complete: ${failureMessage(err)} (${url})`,
      );
    });
    if (outcome.kind === 'detached') {
      console.log(`\n${p.name}: stopped watching; the backfill continues in Temporal.`);
      console.log(`  watch again:  npx embedsync backfill --table ${p.name}`);
      console.log(`  pause it:     npx embedsync pause --table ${p.name}`);
      console.log(`  workflow:     ${url}`);
      return;
    }
    // The workflow's running time, not this command's: pauses do not count, and an attached watch
    // saw only part.
    const { processed, tokens } = outcome.result;
    const done = `${plural(processed, 'row')}${ranFor(outcome.result)}, ${plural(tokens, 'token')}`;
    console.log(`${p.name}: backfill done: ${done}; vectors in ${vectorsPlace(p)}`);
  } finally {
    await session?.close();
    await pool.end();
  }
});
