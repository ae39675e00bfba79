// The benchmark command: brings up the stack (installing what is missing), runs each named
// benchmark (all by default) in a database of its own, and writes results/<name>.json and
// results/README.md.
//   npm run bench                                   every benchmark, default settings
//   npm run bench -- sync-latency --duration 10     one benchmark, a shorter run
import { Command, InvalidArgumentError } from 'commander';
import { readEnv } from '../src/config/env.js';
import { ensureStack } from '../src/stack/index.js';
import { connectClient } from '../src/temporal/connect.js';
import { backfillBench } from './backfill.js';
import { batchBench } from './batch.js';
import { captureOverhead } from './capture-overhead.js';
import { changeEvents } from './change-events.js';
import { createBenchDatabase } from './helpers/database.js';
import { machineFacts } from './helpers/machine.js';
import { localModelBench } from './local-model.js';
import { handleInterrupts, onInterrupt } from './helpers/interrupt.js';
import { printable, writeResult, writeSummary, type ResultFile } from './helpers/results.js';
import type { Benchmark, BenchOptions } from './helpers/types.js';
import { PARTS, peers } from './peers.js';
import { rateLimit, RUNS } from './rate-limit.js';
import { relevanceBench, VARIANT_NAMES } from './relevance.js';
import { syncLatency } from './sync-latency.js';

const BENCHMARKS: readonly Benchmark[] = [
  syncLatency,
  captureOverhead,
  backfillBench,
  rateLimit,
  peers,
  batchBench,
  changeEvents,
  localModelBench,
  relevanceBench,
];

const positive =
  (name: string) =>
  (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0)
      throw new InvalidArgumentError(`${name} must be a positive number`);
    return n;
  };

const program = new Command('bench')
  .description(
    'Runs embedsync benchmarks against the local stack (or DATABASE_URL / TEMPORAL_ADDRESS) and writes bench/results/.',
  )
  .argument(
    '[benchmarks...]',
    `which to run: ${BENCHMARKS.map((b) => b.name).join(', ')} (default: all)`,
  )
  .option(
    '--duration <s>',
    'seconds of load: the whole sync-latency run (60), change-events (30), each pgbench run of capture-overhead (10), each latency run of peers (20)',
    positive('--duration'),
  )
  .option(
    '--rate <n>',
    'sync-latency: inserts offered per second (50); change-events (50); peers: in its latency runs (10)',
    positive('--rate'),
  )
  .option(
    '--clients <n>',
    'capture-overhead: concurrent pgbench connections (4)',
    positive('--clients'),
  )
  .option(
    '--rounds <n>',
    'capture-overhead: repetitions of each measurement, median reported (5); peers: alternations of the two systems (2)',
    positive('--rounds'),
  )
  .option(
    '--rows <n>',
    'capture-overhead: rows in the table and in the bulk UPDATE; backfill: rows of the larger table; rate-limit, batch: rows backfilled (100000); peers: rows of each backfill (20000); local-model: texts embedded at each thread count (3200)',
    positive('--rows'),
  )
  .option(
    '--window <n>',
    'backfill, rate-limit: batches in flight at once (8)',
    positive('--window'),
  )
  .option(
    '--batch-size <n>',
    "backfill, rate-limit: source keys per batch (a walk's default: 500)",
    positive('--batch-size'),
  )

  .option(
    '--destination <where>',
    'backfill: where the vectors go: table (a vector table) or column (a column of the source row, with its HNSW index) (table)',
    (value: string) => {
      if (value !== 'table' && value !== 'column')
        throw new InvalidArgumentError(`choose table or column (not ${value})`);
      return value;
    },
  )
  .option(
    '--text-tokens <n>',
    "rate-limit: words (one token each) in each row's description (16)",
    positive('--text-tokens'),
  )
  .option(
    '--runs <names>',
    `rate-limit: which runs, comma-separated: ${RUNS.join(', ')} (all)`,
    (value: string) => {
      const runs = value.split(',').map((r) => r.trim());
      const unknown = runs.filter((r) => !(RUNS as readonly string[]).includes(r));
      if (unknown.length > 0)
        throw new InvalidArgumentError(
          `choose from ${RUNS.join(', ')} (not ${unknown.join(', ')})`,
        );
      return runs;
    },
  )
  .option(
    '--only <parts>',
    `peers: which parts to run, comma-separated: ${PARTS.join(', ')} (all)`,
    (value: string) => {
      const parts = value.split(',').map((p) => p.trim());
      const unknown = parts.filter((p) => !(PARTS as readonly string[]).includes(p));
      if (unknown.length > 0)
        throw new InvalidArgumentError(
          `choose from ${PARTS.join(', ')} (not ${unknown.join(', ')})`,
        );
      return parts;
    },
  )
  .option(
    '--workers <n>',
    'peers: embedsync workers in the second backfill pair and the rate-limited runs (2); backfill: also run the larger table with this many workers, against one (1: not)',
    positive('--workers'),
  )
  .option(
    '--pgai-concurrency <n>',
    "peers: pgai worker's --concurrency in the second backfill pair and the rate-limited runs (4; at most 10)",
    positive('--pgai-concurrency'),
  )
  .option(
    '--poll-seconds <n>',
    "batch: seconds between the workflow's polls of its provider batches (2)",
    positive('--poll-seconds'),
  )
  .option(
    '--enqueued-tokens <n>',
    'batch: the enqueued-token limit the mock enforces and the backfill keeps under (3000000)',
    positive('--enqueued-tokens'),
  )
  .option(
    '--variants <names>',
    `relevance: which retrieval set-ups, comma-separated: ${VARIANT_NAMES.join(', ')} (all that can run here)`,
    (value: string) => {
      const variants = value.split(',').map((v) => v.trim());
      const unknown = variants.filter((v) => !VARIANT_NAMES.includes(v));
      if (unknown.length > 0)
        throw new InvalidArgumentError(
          `choose from ${VARIANT_NAMES.join(', ')} (not ${unknown.join(', ')})`,
        );
      return variants;
    },
  )
  .option(
    '--separate-poller',
    'sync-latency: run the poller as a process of its own, not beside the worker (so no eager workflow start)',
  )
  .showHelpAfterError()
  .parse();

const names = program.args;
const unknown = names.filter((n) => !BENCHMARKS.some((b) => b.name === n));
if (unknown.length > 0)
  program.error(
    `unknown benchmark ${unknown.join(', ')}; choose from ${BENCHMARKS.map((b) => b.name).join(', ')}`,
  );
const selected = names.length ? BENCHMARKS.filter((b) => names.includes(b.name)) : BENCHMARKS;
const options = program.opts<BenchOptions>();
const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
const log = (line: string): void => console.log(`[bench] ${line}`);

handleInterrupts(log);

const env = readEnv();
const against = [
  env.databaseUrl ? 'the PostgreSQL of DATABASE_URL' : 'the local stack’s PostgreSQL',
  env.temporalAddress ? 'the Temporal of TEMPORAL_ADDRESS' : 'the local stack’s Temporal',
].join(' and ');
const stack = await ensureStack(env, {
  install: true,
  log: (line) => console.log(`[stack] ${line}`),
});
const { client, connection } = await connectClient({
  temporalAddress: stack.temporalAddress,
  temporalNamespace: stack.temporalNamespace,
});
onInterrupt(() => stack.stop());
const done: ResultFile[] = [];
let failed = false;
try {
  for (const benchmark of selected) {
    log(`${benchmark.name}: starting`);
    const db = await createBenchDatabase(stack.adminDatabaseUrl, benchmark.name.replace(/-/g, '_'));
    const forgetDb = onInterrupt(() => db.drop());
    const startedAt = Date.now();
    try {
      const machine = await machineFacts(db.pool, client);
      const report = await benchmark.run({
        db,
        adminDatabaseUrl: stack.adminDatabaseUrl,
        temporal: { address: stack.temporalAddress, namespace: stack.temporalNamespace },
        options,
        log: (line) => log(`${benchmark.name}: ${line}`),
      });
      const result: ResultFile = {
        benchmark: benchmark.name,
        title: benchmark.title,
        command,
        stack: against,
        durationS: (Date.now() - startedAt) / 1000,
        machine,
        ...report,
      };
      log(`${benchmark.name}: wrote ${await writeResult(result)}`);
      done.push(result);
    } catch (err) {
      failed = true;
      console.error(
        `[bench] ${benchmark.name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
      );
    } finally {
      await db.drop();
      forgetDb();
    }
  }
  if (done.length > 0) log(`summary: ${await writeSummary()}`);
} finally {
  await connection.close();
  await stack.stop();
}
console.log('');
for (const r of done) console.log(`${printable(r)}\n`);
process.exit(failed ? 1 : 0);
