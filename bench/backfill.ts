// Backfill: how fast the existing rows of a table are embedded, what the worker's memory does as
// the table grows, and how large the backfill's workflow histories get. Offline provider, so the
// figures are embedsync's own cost (database, Temporal, worker), not a provider's.
import { DEFAULT_WINDOW } from '../src/backfill/start.js';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { demoProducts } from '../src/demo/products.js';
import { connectClient } from '../src/temporal/connect.js';
import {
  applyBenchPipeline,
  benchTaskQueue,
  fillSourceTable,
  serviceEnv,
  timeBackfill,
  type TimedBackfill,
} from './helpers/backfill-run.js';
import { cpuBetween, sampleCpu, type CpuUse } from './helpers/cpu.js';
import { runSizes, type RunSize } from './helpers/histories.js';
import { onInterrupt } from './helpers/interrupt.js';
import { terminateLeftovers } from './helpers/leftovers.js';
import { sampleMemory, thin, type MemoryUse } from './helpers/memory.js';
import { startService, type Service } from './helpers/processes.js';
import { round } from './helpers/stats.js';
import type {
  BenchContext,
  BenchOptions,
  BenchReport,
  Benchmark,
  Figure,
} from './helpers/types.js';

/** Options of this benchmark beyond the shared ones (registered in run.ts). */
interface BackfillBenchOptions extends BenchOptions {
  window?: number;
  batchSize?: number;
}

// The product's own defaults (startBackfill's window, the pipeline's batchSize): 8 / 500 was no
// faster here.
const DEFAULTS = { rows: 100_000, smallRows: 10_000, window: DEFAULT_WINDOW, batchSize: 200 };
const AIMS = {
  rowsPerSecond: 2000,
  historyBytes: 4 * 2 ** 20,
  historyEvents: 10_000,
  rssGrowth: 1.25,
};

interface Round {
  rows: number;
  backfill: TimedBackfill;
  memory: MemoryUse | undefined;
  cpu: CpuUse | undefined;
  runs: RunSize[];
  listedRuns: number;
}

export const backfillBench: Benchmark = {
  name: 'backfill',
  title: 'Backfill: existing rows embedded (offline provider), worker memory, history size',
  run,
};

async function run(ctx: BenchContext): Promise<BenchReport> {
  const options = ctx.options as BackfillBenchOptions;
  const rows = options.rows ?? DEFAULTS.rows;
  const smallRows = Math.min(DEFAULTS.smallRows, Math.max(1, Math.floor(rows / 10)));
  const window = options.window ?? DEFAULTS.window;
  const batchSize = options.batchSize ?? DEFAULTS.batchSize;
  const rounds: Round[] = [];
  for (const n of [smallRows, rows]) {
    ctx.log(`${n} rows: filling the table`);
    rounds.push(await runRound(ctx, n, window, batchSize));
    const r = rounds[rounds.length - 1];
    if (r)
      ctx.log(
        `${n} rows: ${round(r.backfill.seconds)} s, ${Math.round(r.backfill.rowsPerSecond)} rows/s, worker peak RSS ${r.memory?.peakMiB ?? '?'} MiB, ${r.runs.length} runs`,
      );
  }
  return report(rounds, { rows, smallRows, window, batchSize });
}

async function runRound(
  ctx: BenchContext,
  rows: number,
  window: number,
  batchSize: number,
): Promise<Round> {
  const table = `backfill_${rows}`;
  const products = demoProducts(500);
  await fillSourceTable(ctx.db.pool, table, rows, (i) => {
    const p = products[i % products.length] ?? { name: 'Item', description: '' };
    // The row number keeps every document distinct, as real rows are.
    return { name: `${p.name} #${i}`, description: p.description };
  });
  // The worker reads the catalog when it starts, so the pipeline comes first; its triggers see no
  // rows.
  await applyBenchPipeline(ctx.db.pool, table, {
    provider: 'offline',
    model: 'feature-hash-v1',
    dimensions: 256,
  });
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
    worker = startService('worker', serviceEnv(ctx, taskQueue), logDir);
    await worker.ready;
    ctx.log(`${rows} rows: backfill with window ${window}, batch size ${batchSize}`);
    const stopMemory = sampleMemory(worker.pid);
    const pids = { worker: worker.pid, 'benchmark process': process.pid };
    const cpuBefore = sampleCpu(pids);
    const backfill = await timeBackfill(client, ctx.db.pool, table, {
      taskQueue,
      rows,
      window,
      batchSize,
    });
    const cpu = cpuBetween(cpuBefore, sampleCpu(pids));
    const memory = stopMemory();
    const { count } = (
      await ctx.db.pool.query<{ count: number }>(
        `select count(distinct pk)::int as count from public.${table}_embeddings`,
      )
    ).rows[0] ?? { count: 0 };
    if (count !== rows)
      throw new Error(
        `the backfill reported ${backfill.result.processed} rows but ${count} of ${rows} have vectors`,
      );
    const { runs, listed } = await runSizes(client, backfill.workflowId, backfill.firstRunId);
    ok = true;
    return { rows, backfill, memory, cpu, runs, listedRuns: listed };
  } finally {
    await worker?.stop();
    await terminateLeftovers(client, taskQueue).catch(() => []);
    forgetLeftovers();
    await connection.close();
    if (ok) await rm(logDir, { recursive: true, force: true });
    else ctx.log(`worker log kept in ${logDir}`);
  }
}

const mib = (bytes: number): string => `${round(bytes / 2 ** 20, 2)} MiB`;

function report(
  rounds: Round[],
  settings: { rows: number; smallRows: number; window: number; batchSize: number },
): BenchReport {
  const [small, large] = rounds;
  if (!small || !large) throw new Error('both table sizes must have run');
  const largest = (r: Round, by: 'events' | 'bytes'): number =>
    Math.max(...r.runs.map((x) => x[by]));
  const events = Math.max(largest(small, 'events'), largest(large, 'events'));
  const bytes = Math.max(largest(small, 'bytes'), largest(large, 'bytes'));
  const growth =
    small.memory && large.memory ? large.memory.peakMiB / small.memory.peakMiB : Number.NaN;
  const figures: Figure[] = [
    {
      label: `rows/s, ${large.rows.toLocaleString('en-US')} rows`,
      value: `${Math.round(large.backfill.rowsPerSecond)} (${round(large.backfill.seconds)} s)`,
      aim: `≥ ${AIMS.rowsPerSecond}`,
      met: large.backfill.rowsPerSecond >= AIMS.rowsPerSecond,
    },
    {
      label: `rows/s, ${small.rows.toLocaleString('en-US')} rows`,
      value: `${Math.round(small.backfill.rowsPerSecond)} (${round(small.backfill.seconds)} s)`,
    },
    {
      label: `worker peak RSS, ${small.rows.toLocaleString('en-US')} → ${large.rows.toLocaleString('en-US')} rows`,
      value: `${small.memory?.peakMiB ?? '?'} → ${large.memory?.peakMiB ?? '?'} MiB (× ${round(growth, 2)})`,
      aim: `flat (≤ × ${AIMS.rssGrowth})`,
      met: Number.isFinite(growth) ? growth <= AIMS.rssGrowth : undefined,
    },
    {
      label: 'largest run history: events',
      value: String(events),
      aim: `≤ ${AIMS.historyEvents.toLocaleString('en-US')}`,
      met: events <= AIMS.historyEvents,
    },
    {
      label: 'largest run history: size',
      value: mib(bytes),
      aim: '≤ 4 MiB',
      met: bytes <= AIMS.historyBytes,
    },
    { label: 'runs (continue-as-new chain)', value: `${small.runs.length} / ${large.runs.length}` },
  ];
  const cpu = (r: Round): string =>
    r.cpu
      ? `${r.cpu.machineBusyPct} % machine; worker ${r.cpu.processPctOfCore.worker ?? '?'} % of a core`
      : '?';
  return {
    settings: {
      rows: settings.rows,
      smallRows: settings.smallRows,
      window: settings.window,
      batchSize: settings.batchSize,
      provider: 'offline feature-hash-v1, 256 dimensions',
      workers: 1,
    },
    figures,
    tables: [
      {
        title: 'Each table size',
        columns: [
          'rows',
          'seconds',
          'rows/s',
          'RSS start → peak → end (MiB)',
          'runs',
          'largest run (events / bytes)',
          'CPU busy',
        ],
        rows: rounds.map((r) => [
          r.rows.toLocaleString('en-US'),
          String(round(r.backfill.seconds)),
          String(Math.round(r.backfill.rowsPerSecond)),
          r.memory ? `${r.memory.startMiB} → ${r.memory.peakMiB} → ${r.memory.endMiB}` : '?',
          String(r.runs.length),
          `${largest(r, 'events')} / ${mib(largest(r, 'bytes'))}`,
          cpu(r),
        ]),
      },
    ],
    data: {
      rounds: rounds.map((r) => ({
        rows: r.rows,
        seconds: round(r.backfill.seconds, 2),
        rowsPerSecond: round(r.backfill.rowsPerSecond),
        result: r.backfill.result,
        memory: r.memory ? { ...r.memory, samples: thin(r.memory.samples) } : null,
        cpu: r.cpu ?? null,
        runs: r.runs,
        runsListedByVisibility: r.listedRuns,
      })),
    },
    notes: [
      'Rows are inserted before the pipeline is applied, so the backfill alone embeds them; every row is checked to have a vector afterwards.',
      'Time runs from the start request to the completion of the workflow’s last run. One worker process, started as `npm run worker` starts it, pid sampled from /proc every 200 ms (VmRSS, and the kernel’s VmHWM for peaks between samples).',
      'Each table size has its own pipeline, table and freshly started worker, the smaller first.',
      `The worker, PostgreSQL and the Temporal dev server share the machine's ${os.cpus().length} CPUs (and any other work on it): rows/s is bounded by all three together.`,
    ],
  };
}
