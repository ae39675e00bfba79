// Batch: a batch-mode backfill (OpenAI's Batch API, through the mock provider in this process) of a
// whole table. What does it cost against the same tokens online, did it pay for each text once, and
// how long did it take end to end? The mock completes each batch as soon as it is polled past
// finalizing: the wall time is embedsync's own (gathering, uploading, polling, writing), not the
// provider's 24-hour window.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startBatchBackfill, DEFAULT_ENQUEUED_TOKENS } from '../src/backfill/start.js';
import { countTokens } from '../src/chunking/tokens.js';
import { getPipeline, instanceId } from '../src/db/catalog.js';
import { startMockProvider } from '../src/mock-provider/server.js';
import { costOf, listPrice } from '../src/providers/prices.js';
import { connectClient } from '../src/temporal/connect.js';
import {
  applyBenchPipeline,
  benchTaskQueue,
  fillSourceTable,
  serviceEnv,
} from './helpers/backfill-run.js';
import { onInterrupt } from './helpers/interrupt.js';
import { terminateLeftovers } from './helpers/leftovers.js';
import { startService, type Service } from './helpers/processes.js';
import { round } from './helpers/stats.js';
import type { BenchContext, BenchOptions, BenchReport, Benchmark } from './helpers/types.js';

interface BatchOptions extends BenchOptions {
  /** Seconds between the workflow's polls of its batches. */
  pollSeconds?: number;
  enqueuedTokens?: number;
}

const MODEL = 'text-embedding-3-small';
const DEFAULTS = { rows: 100_000, pollSeconds: 2 };
const AIM_PRICE_RATIO = 0.5;

export const batchBench: Benchmark = {
  name: 'batch',
  title: "Batch mode: a whole-table backfill through OpenAI's Batch API, its price against online",
  run,
};

async function run(ctx: BenchContext): Promise<BenchReport> {
  const options = ctx.options as BatchOptions;
  const rows = options.rows ?? DEFAULTS.rows;
  const pollSeconds = options.pollSeconds ?? DEFAULTS.pollSeconds;
  const enqueuedTokens = options.enqueuedTokens ?? DEFAULT_ENQUEUED_TOKENS;
  const table = 'batch_mode';
  const mock = await startMockProvider({ batch: { enqueuedTokenLimit: enqueuedTokens } });
  const forgetMock = onInterrupt(() => mock.close());
  const taskQueue = benchTaskQueue();
  const logDir = await mkdtemp(path.join(os.tmpdir(), 'embedsync-bench-'));
  const { client, connection } = await connectClient({
    temporalAddress: ctx.temporal.address,
    temporalNamespace: ctx.temporal.namespace,
  });
  const forgetLeftovers = onInterrupt(() => terminateLeftovers(client, taskQueue));
  let worker: Service | undefined;
  let ok = false;
  try {
    ctx.log(`filling ${rows} rows`);
    await fillSourceTable(ctx.db.pool, table, rows, (i) => ({
      name: `Item ${i}`,
      description: `Item ${i} of the batch benchmark: a product description long enough to be a realistic row, number ${i}.`,
    }));
    await applyBenchPipeline(ctx.db.pool, table, {
      provider: 'openai',
      model: MODEL,
      dimensions: 256,
      baseURL: mock.openaiBaseURL,
      // A quarter of the output file's bytes: 50,000 vectors as JSON floats would be ~250 MB.
      encodingFormat: 'base64',
    });
    worker = startService('worker', serviceEnv(ctx, taskQueue), logDir);
    await worker.ready;
    ctx.log(`batch backfill of ${rows} rows, polls every ${pollSeconds} s`);
    const p = await getPipeline(ctx.db.pool, table);
    const started = performance.now();
    const handle = await startBatchBackfill(client, p, {
      taskQueue,
      instanceId: await instanceId(ctx.db.pool),
      rows,
      pollSeconds,
      enqueuedTokens,
    });
    const result = await handle.result();
    const seconds = (performance.now() - started) / 1000;
    ctx.log(`done in ${round(seconds)} s: ${result.parts} parts`);
    const paid = mock.batches.paidInputs;
    const distinct = new Set(paid).size;
    const online = mock.requests.filter((r) => r.batch === undefined && r.inputs.length > 0);
    const paidTokens = paid.reduce((sum, t) => sum + countTokens(t), 0);
    const price = listPrice('openai', MODEL);
    const batchCost = costOf(paidTokens, price, 'batch') ?? NaN;
    const onlineCost = costOf(paidTokens, price, 'online') ?? NaN;
    const ratio = batchCost / onlineCost;
    const { rows: written } = await ctx.db.pool.query<{ n: number }>(
      `select count(distinct pk)::int as n from public.${table}_embeddings`,
    );
    const embedded = written[0]?.n ?? 0;
    const dollars = (d: number): string => `$${d.toFixed(4)}`;
    ok = true;
    return {
      settings: { rows, model: MODEL, pollSeconds, enqueuedTokens },
      figures: [
        {
          label: 'price in batch mode against online',
          value: `${dollars(batchCost)} against ${dollars(onlineCost)} = ${round(ratio, 3)}×`,
          aim: `≤ ${AIM_PRICE_RATIO}× online`,
          met: ratio <= AIM_PRICE_RATIO,
        },
        {
          label: 'texts paid ÷ distinct texts (counted at the mock)',
          value: `${paid.length.toLocaleString('en-US')} ÷ ${distinct.toLocaleString('en-US')} = ${round(paid.length / Math.max(1, distinct), 3).toFixed(3)}`,
          aim: '1.000',
          met: paid.length === distinct,
        },
        {
          label: 'rows written',
          value: `${embedded.toLocaleString('en-US')} of ${rows.toLocaleString('en-US')}, in ${result.parts} parts`,
        },
        {
          label: 'tokens',
          value: `${paidTokens.toLocaleString('en-US')} (the workflow counted ${result.tokens.toLocaleString('en-US')})`,
        },
        { label: 'requests sent online', value: String(online.length) },
        {
          label: 'wall time, start to completion',
          value: `${round(seconds)} s (${Math.round(rows / seconds).toLocaleString('en-US')} rows/s)`,
        },
      ],
      data: {
        seconds: round(seconds, 2),
        processed: result.processed,
        embedded,
        parts: result.parts,
        paidTexts: paid.length,
        distinctTexts: distinct,
        tokens: paidTokens,
        workflowTokens: result.tokens,
        onlineRequests: online.length,
        priceBatchUsd: batchCost,
        priceOnlineUsd: onlineCost,
        priceRatio: round(ratio, 4),
        batches: mock.batches.created.map((b) => ({
          status: b.status,
          lines: b.request_counts.total,
        })),
      },
      notes: [
        `Prices are the list prices of src/providers/prices.ts for ${MODEL} (batch: half the online price), applied to the tokens the mock counted (cl100k) for the texts completed batches billed.`,
        `The mock provider runs in the benchmark's process; each batch completes at the first polls after it is created, so the wall time is embedsync's own work: gathering and recording each part, uploading its JSONL file, ${pollSeconds} s polls, downloading the output and writing the vectors (compare-and-set), then the HNSW index. A real batch takes up to 24 hours.`,
        `Parts hold at most 50,000 inputs (OpenAI's limit per embeddings batch) and fit the ${enqueuedTokens.toLocaleString('en-US')}-token enqueued limit, which the mock enforces; by default one part is in flight at a time.`,
        'One worker process, started as `npm run worker` starts it. The pipeline asks for base64 vectors (encodingFormat), which keeps each output file about a quarter of its JSON-float size.',
      ],
    };
  } finally {
    await worker?.stop();
    await terminateLeftovers(client, taskQueue).catch(() => []);
    forgetLeftovers();
    await connection.close();
    await mock.close();
    forgetMock();
    if (ok) await rm(logDir, { recursive: true, force: true });
    else ctx.log(`worker logs kept in ${logDir}`);
  }
}
