// Backfill: how fast the existing rows of a table are embedded (until the vector table's HNSW index
// exists too), what it costs PostgreSQL, what the worker's memory does as the table grows, how large
// the backfill's workflow histories get, and what a second worker adds. Offline provider, so the
// figures are embedsync's own cost (database, Temporal, worker), not a provider's.
import { DEFAULT_WINDOW, WALK_BATCH_SIZE } from '../src/backfill/start.js';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Pool } from '../src/db/pool.js';
import { demoProducts } from '../src/demo/products.js';
import { connectClient } from '../src/temporal/connect.js';
import {
  applyBenchPipeline,
  benchTaskQueue,
  fillSourceTable,
  forgetEarlierRuns,
  serviceEnv,
  timeBackfill,
  type TimedBackfill,
} from './helpers/backfill-run.js';
import { cpuBetween, sampleCpu, type CpuUse } from './helpers/cpu.js';
import { activitySeconds, runSizes, type RunSize } from './helpers/histories.js';
import { onInterrupt } from './helpers/interrupt.js';
import { terminateLeftovers } from './helpers/leftovers.js';
import { peaksBeforeAndAfter, sampleMemory, thin, type MemoryUse } from './helpers/memory.js';
import { samplePostgresCpu } from './helpers/database-cpu.js';
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
  workers?: number;
  /** Where the vectors go: a vector table, or a column of the source row (decision 18). */
  destination?: 'table' | 'column';
}

// The product's own defaults (startBackfill's window, a walk's batch size for the demo pipeline).
const DEFAULTS = {
  rows: 100_000,
  smallRows: 10_000,
  window: DEFAULT_WINDOW,
  batchSize: WALK_BATCH_SIZE,
  workers: 1,
};
// Three times pgai's vectorizer at its best on the peer benchmark (~950 rows/s); a second worker
// adding at least 70 %.
// A walk's first tenth holds the worker's warming up: its young generation growing to the
// allocation rate, native memory settling (decision 31). A worker whose memory grows with the rows
// it has walked peaks higher in the other nine tenths.
const WARM_SHARE = 0.1;
const AIMS = {
  rowsPerSecond: 3000,
  historyBytes: 4 * 2 ** 20,
  historyEvents: 10_000,
  rssGrowth: 1.25,
  workerScaling: 1.7,
};

interface Round {
  rows: number;
  workers: number;
  backfill: TimedBackfill;
  /** Seconds the walk's HNSW index build took, at its end. */
  indexSeconds: number | undefined;
  memory: MemoryUse | undefined;
  cpu: CpuUse | undefined;
  postgresCpuSeconds: number | undefined;
  /** WAL the backfill wrote, and the source and vector (or record) tables' size after it. */
  walBytes: number;
  tableBytes: { source: number; vectors: number };
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
  const workers = options.workers ?? DEFAULTS.workers;
  const destination = options.destination ?? 'table';
  const rounds: Round[] = [];
  // One worker on both sizes; then, with --workers, the larger size again with that many.
  const plan: [number, number][] = [
    [smallRows, 1],
    [rows, 1],
    ...(workers > 1 ? [[rows, workers] as [number, number]] : []),
  ];
  for (const [n, w] of plan) {
    ctx.log(`${n} rows: filling the table`);
    rounds.push(await runRound(ctx, { rows: n, workers: w, window, batchSize, destination }));
    const r = rounds[rounds.length - 1];
    if (r)
      ctx.log(
        `${n} rows, ${w} worker(s), into a ${destination}: ${round(r.backfill.seconds)} s, ${Math.round(r.backfill.rowsPerSecond)} rows/s (index build ${r.indexSeconds ?? '?'} s), PostgreSQL CPU ${r.postgresCpuSeconds ?? '?'} s, WAL ${mib(r.walBytes)}, source ${mib(r.tableBytes.source)} and vectors ${mib(r.tableBytes.vectors)} after, worker peak RSS ${r.memory?.peakMiB ?? '?'} MiB, ${r.runs.length} runs`,
      );
  }
  return report(rounds, { rows, smallRows, window, batchSize, workers, destination });
}

async function runRound(
  ctx: BenchContext,
  settings: {
    rows: number;
    workers: number;
    window: number;
    batchSize: number;
    destination: 'table' | 'column';
  },
): Promise<Round> {
  const { rows, workers, window, batchSize, destination } = settings;
  const table = `backfill_${rows}_${workers}w`;
  const products = demoProducts(500);
  await fillSourceTable(ctx.db.pool, table, rows, (i) => {
    const p = products[i % products.length] ?? { name: 'Item', description: '' };
    // The row number keeps every document distinct, as real rows are.
    return { name: `${p.name} #${i}`, description: p.description };
  });
  // Each round as on a fresh database: an earlier round's texts are not on record.
  await forgetEarlierRuns(ctx.db.pool);
  // The worker reads the catalog when it starts, so the pipeline comes first; its triggers see no
  // rows.
  await applyBenchPipeline(
    ctx.db.pool,
    table,
    { provider: 'offline', model: 'feature-hash-v1', dimensions: 256 },
    undefined,
    destination === 'column' ? { destination: { column: 'embedding', index: true } } : {},
  );
  const taskQueue = benchTaskQueue();
  const logDir = await mkdtemp(path.join(os.tmpdir(), 'embedsync-bench-'));
  const { client, connection } = await connectClient({
    temporalAddress: ctx.temporal.address,
    temporalNamespace: ctx.temporal.namespace,
  });
  const forgetLeftovers = onInterrupt(() => terminateLeftovers(client, taskQueue));
  const services: Service[] = [];
  let ok = false;
  try {
    for (let w = 0; w < workers; w++) {
      const dir = workers === 1 ? logDir : await mkdtemp(path.join(logDir, `worker-${w}-`));
      services.push(startService('worker', serviceEnv(ctx, taskQueue), dir));
    }
    await Promise.all(services.map((s) => s.ready));
    const [worker] = services;
    ctx.log(
      `${rows} rows: backfill with window ${window}, batch size ${batchSize}, ${workers} worker(s)`,
    );
    const stopMemory = sampleMemory(worker?.pid);
    const pids = {
      ...Object.fromEntries(
        services.map((s, i) => [i === 0 ? 'worker' : `worker ${i + 1}`, s.pid]),
      ),
      'benchmark process': process.pid,
    };
    const cpuBefore = sampleCpu(pids);
    const stopPostgresCpu = await samplePostgresCpu(ctx.db.pool);
    const walBefore = await walPosition(ctx.db.pool);
    const backfill = await timeBackfill(client, ctx.db.pool, table, {
      taskQueue,
      rows,
      window,
      batchSize,
    });
    const postgresCpuSeconds = await stopPostgresCpu();
    const walBytes = await walSince(ctx.db.pool, walBefore);
    const tableBytes = {
      source: await relationBytes(ctx.db.pool, `public.${table}`),
      vectors: await relationBytes(ctx.db.pool, `public.${table}_embeddings`),
    };
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
    const indexSeconds = await activitySeconds(client, backfill.workflowId, 'buildVectorIndex');
    ok = true;
    return {
      rows,
      workers,
      backfill,
      indexSeconds,
      memory,
      cpu,
      postgresCpuSeconds,
      walBytes,
      tableBytes,
      runs,
      listedRuns: listed,
    };
  } finally {
    await Promise.all(services.map((s) => s.stop()));
    await terminateLeftovers(client, taskQueue).catch(() => []);
    forgetLeftovers();
    await connection.close();
    if (ok) await rm(logDir, { recursive: true, force: true });
    else ctx.log(`worker log kept in ${logDir}`);
  }
}

const mib = (bytes: number): string => `${round(bytes / 2 ** 20, 2)} MiB`;

async function walPosition(pool: Pool): Promise<string> {
  const { rows } = await pool.query<{ lsn: string }>('select pg_current_wal_lsn()::text as lsn');
  return rows[0]?.lsn ?? '0/0';
}

/** WAL bytes the whole server wrote since `lsn` (the benchmark's database is the busy one). */
async function walSince(pool: Pool, lsn: string): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(
    'select pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::text as n',
    [lsn],
  );
  return Number(rows[0]?.n ?? 0);
}

/** A table's size with its indexes and TOAST. */
async function relationBytes(pool: Pool, table: string): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(
    'select pg_total_relation_size($1::regclass)::text as n',
    [table],
  );
  return Number(rows[0]?.n ?? 0);
}

function report(
  rounds: Round[],
  settings: {
    rows: number;
    smallRows: number;
    window: number;
    batchSize: number;
    workers: number;
    destination: 'table' | 'column';
  },
): BenchReport {
  const [small, large, more] = rounds;
  if (!small || !large) throw new Error('both table sizes must have run');
  const largest = (r: Round, by: 'events' | 'bytes'): number =>
    Math.max(...r.runs.map((x) => x[by]));
  const events = Math.max(...rounds.map((r) => largest(r, 'events')));
  const bytes = Math.max(...rounds.map((r) => largest(r, 'bytes')));
  const growth =
    small.memory && large.memory ? large.memory.peakMiB / small.memory.peakMiB : Number.NaN;
  // Within the large walk: its first tenth against the other nine (the samples run from the start
  // request to the index's end).
  const within = large.memory && peaksBeforeAndAfter(large.memory.samples, WARM_SHARE);
  const withinGrowth = within ? within.after / within.before : Number.NaN;
  const perThousand = (r: Round): string =>
    r.postgresCpuSeconds === undefined
      ? '?'
      : `${round((r.postgresCpuSeconds / r.rows) * 1000, 3)} s (${round(r.postgresCpuSeconds, 1)} s in all)`;
  const scaling = more ? more.backfill.rowsPerSecond / large.backfill.rowsPerSecond : undefined;
  const figures: Figure[] = [
    {
      label: `rows/s, ${large.rows.toLocaleString('en-US')} rows, until the HNSW index exists`,
      value: `${Math.round(large.backfill.rowsPerSecond)} (${round(large.backfill.seconds)} s, of which the index build ${large.indexSeconds ?? '?'} s)`,
      aim: `≥ ${AIMS.rowsPerSecond.toLocaleString('en-US')}`,
      met: large.backfill.rowsPerSecond >= AIMS.rowsPerSecond,
    },
    {
      label: `rows/s, ${small.rows.toLocaleString('en-US')} rows`,
      value: `${Math.round(small.backfill.rowsPerSecond)} (${round(small.backfill.seconds)} s)`,
    },
    {
      label: `PostgreSQL CPU per 1,000 rows, ${large.rows.toLocaleString('en-US')} rows`,
      value: perThousand(large),
    },
    {
      label: `WAL per 1,000 rows, ${large.rows.toLocaleString('en-US')} rows, into a ${settings.destination}`,
      value: `${mib((large.walBytes / large.rows) * 1000)} (${mib(large.walBytes)} in all)`,
    },
    {
      label: `source and ${settings.destination === 'column' ? 'record' : 'vector'} table after, ${large.rows.toLocaleString('en-US')} rows`,
      value: `${mib(large.tableBytes.source)} and ${mib(large.tableBytes.vectors)}`,
    },
    ...(more && scaling !== undefined
      ? [
          {
            label: `${more.workers} workers against 1, ${more.rows.toLocaleString('en-US')} rows`,
            value: `× ${round(scaling, 2)} (${Math.round(more.backfill.rowsPerSecond)} rows/s)`,
            aim: `≥ × ${AIMS.workerScaling}`,
            met: scaling >= AIMS.workerScaling,
          },
        ]
      : []),
    {
      label: `worker peak RSS within the ${large.rows.toLocaleString('en-US')}-row walk, its first tenth → the rest`,
      value: within
        ? `${within.before} → ${within.after} MiB (× ${round(withinGrowth, 2)})`
        : 'too few samples',
      aim: `flat (≤ × ${AIMS.rssGrowth})`,
      met: Number.isFinite(withinGrowth) ? withinGrowth <= AIMS.rssGrowth : undefined,
    },
    {
      label: `worker peak RSS, ${small.rows.toLocaleString('en-US')}-row walk → ${large.rows.toLocaleString('en-US')}-row walk`,
      value: `${small.memory?.peakMiB ?? '?'} → ${large.memory?.peakMiB ?? '?'} MiB (× ${round(growth, 2)})`,
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
      workers: settings.workers,
      destination: settings.destination,
    },
    figures,
    tables: [
      {
        title: 'Each round',
        columns: [
          'rows',
          'workers',
          'seconds (index build)',
          'rows/s',
          'PostgreSQL CPU per 1,000 rows',
          'RSS start → peak → end (MiB)',
          'runs',
          'largest run (events / bytes)',
          'CPU busy',
        ],
        rows: rounds.map((r) => [
          r.rows.toLocaleString('en-US'),
          String(r.workers),
          `${round(r.backfill.seconds)} (${r.indexSeconds ?? '?'})`,
          String(Math.round(r.backfill.rowsPerSecond)),
          perThousand(r),
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
        workers: r.workers,
        seconds: round(r.backfill.seconds, 2),
        indexSeconds: r.indexSeconds ?? null,
        rowsPerSecond: round(r.backfill.rowsPerSecond),
        postgresCpuSeconds: r.postgresCpuSeconds ?? null,
        result: r.backfill.result,
        memory: r.memory ? { ...r.memory, samples: thin(r.memory.samples) } : null,
        cpu: r.cpu ?? null,
        runs: r.runs,
        runsListedByVisibility: r.listedRuns,
      })),
    },
    notes: [
      'Rows are inserted before the pipeline is applied, so the backfill alone embeds them; every row is checked to have a vector afterwards.',
      'Time runs from the start request to the completion of the workflow’s last run, which builds the vector table’s HNSW index (left out while the empty table filled) before it completes: the time is until every row has its vector and the index exists.',
      'PostgreSQL CPU: user + system time, from /proc, of every server process serving the benchmark’s database during the backfill (connections and parallel workers, found in pg_stat_activity every 100 ms).',
      'Worker processes are started as `npm run worker` starts them; the first one’s pid is sampled from /proc every 200 ms (VmRSS, and the kernel’s VmHWM for peaks between samples).',
      'Each round has its own pipeline, table and freshly started workers: the smaller size first, then the larger, then (with --workers) the larger again with that many workers.',
      `The workers, PostgreSQL and the Temporal dev server share the machine's ${os.cpus().length} CPUs (and any other work on it): rows/s is bounded by all of them together.`,
    ],
  };
}
