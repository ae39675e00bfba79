// Sync latency: how long after an INSERT commits its vector row can be read, under a steady load of
// single-row inserts, with a worker and a poller running as the separate processes users run.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { getPipeline } from '../src/db/catalog.js';
import { qualified } from '../src/db/ident.js';
import { createPool } from '../src/db/pool.js';
import { demoProducts } from '../src/demo/products.js';
import { connectClient } from '../src/temporal/connect.js';
import { syncBreakdown } from './helpers/breakdown.js';
import { now } from './helpers/clock.js';
import { cpuBetween, sampleCpu } from './helpers/cpu.js';
import { applyProductsPipeline } from './helpers/database.js';
import { onInterrupt } from './helpers/interrupt.js';
import { terminateLeftovers, workerSessions } from './helpers/leftovers.js';
import { runOpenLoop } from './helpers/load.js';
import { startService, type Service } from './helpers/processes.js';
import { syncLatencyReport } from './helpers/sync-report.js';
import type { BenchContext, BenchReport, Benchmark } from './helpers/types.js';
import { VisibilityWatcher } from './helpers/watcher.js';

const DEFAULTS = { duration: 60, rate: 50 };
const WARMUP_ROWS = 20;
/** How long, after the last insert, rows may still take to appear before they count as not seen. */
const DRAIN_TIMEOUT_MS = 60_000;

const INSERT_SQL = `insert into public.products (name, description, category, price, in_stock)
                    values ($1, $2, $3, $4, $5) returning id::text as pk`;

export const syncLatency: Benchmark = {
  name: 'sync-latency',
  title: 'Sync latency: INSERT committed → vector row visible',
  run,
};

async function run(ctx: BenchContext): Promise<BenchReport> {
  const duration = ctx.options.duration ?? DEFAULTS.duration;
  const rate = ctx.options.rate ?? DEFAULTS.rate;
  const separate = ctx.options.separatePoller ?? false;
  const { db } = ctx;
  await applyProductsPipeline(db.pool);
  const pipeline = await getPipeline(db.pool, 'products');
  const taskQueue = `bench-${randomBytes(3).toString('hex')}`;
  const serviceEnv = {
    databaseUrl: db.url,
    temporalAddress: ctx.temporal.address,
    temporalNamespace: ctx.temporal.namespace,
    taskQueue,
  };
  const logDir = await mkdtemp(path.join(os.tmpdir(), 'embedsync-bench-'));
  let keepLogs = true;
  const services: Service[] = [];
  // Writers: enough connections that a slow commit never holds up the next scheduled insert.
  const writers = createPool(db.url, { max: 8, applicationName: 'bench-writer' });
  const watcher = new VisibilityWatcher(
    db.url,
    qualified(pipeline.vectorSchema, pipeline.vectorTable),
  );
  const { client, connection } = await connectClient({
    temporalAddress: ctx.temporal.address,
    temporalNamespace: ctx.temporal.namespace,
  });
  const forgetLeftovers = onInterrupt(() => terminateLeftovers(client, taskQueue));
  try {
    // As deployed for the lowest latency: the poller beside the worker (`embedsync worker
    // --poller`), starting syncs eagerly on it; or, asked for, as a process of its own.
    services.push(
      ...(separate
        ? [startService('worker', serviceEnv, logDir), startService('poller', serviceEnv, logDir)]
        : [startService('worker', serviceEnv, logDir, ['--poller'])]),
    );
    await Promise.all(services.map((s) => s.ready));
    await watcher.start();
    const products = demoProducts(300);
    const insert = async (i: number): Promise<void> => {
      const p = products[i % products.length];
      if (!p) return;
      const { rows } = await writers.query<{ pk: string }>(INSERT_SQL, [
        p.name,
        p.description,
        p.category,
        p.price,
        p.in_stock,
      ]);
      watcher.expect(rows[0]?.pk ?? '', now());
    };

    // The first workflows of a fresh worker pay for its caches and connections; they are not the
    // steady state.
    ctx.log(`warming up with ${WARMUP_ROWS} rows`);
    await runOpenLoop(10, WARMUP_ROWS, insert);
    if ((await watcher.drain(120_000)) > 0)
      throw new Error(
        `warm-up rows never became visible; worker log:\n${services[0]?.tail() ?? ''}`,
      );
    watcher.take();

    ctx.log(`offering ${rate} inserts/s for ${duration} s`);
    const pids = {
      worker: services[0]?.pid,
      ...(separate ? { poller: services[1]?.pid } : {}),
      'load generator and watcher': process.pid,
    };
    const cpuBefore = sampleCpu(pids);
    const load = await runOpenLoop(rate, Math.round(rate * duration), insert);
    const cpu = cpuBetween(cpuBefore, sampleCpu(pids));
    ctx.log(`load done (${load.completed} committed); waiting for the last rows`);
    const unseen = await watcher.drain(DRAIN_TIMEOUT_MS);
    const sightings = watcher.take();
    // Described while the worker still runs: these are the rows that never arrived, and why.
    const sessions = unseen > 0 ? await workerSessions(db.pool) : [];
    const leftovers = await terminateLeftovers(client, taskQueue, 10_000);
    ctx.log('reading the stage breakdown back from the workflow histories');
    const breakdown = await syncBreakdown(client, taskQueue, load.startedAt, sightings);
    keepLogs = unseen > 0 || leftovers.length > 0;
    return syncLatencyReport({
      rate,
      duration,
      separatePoller: separate,
      warmupRows: WARMUP_ROWS,
      drainTimeoutMs: DRAIN_TIMEOUT_MS,
      load,
      sightings,
      unseen,
      leftovers,
      sessions,
      breakdown,
      cpu,
      meanPollMs: watcher.meanPollMs(),
    });
  } finally {
    await watcher.stop().catch(() => undefined);
    await Promise.all(services.map((s) => s.stop()));
    await terminateLeftovers(client, taskQueue).catch(() => []);
    forgetLeftovers();
    await writers.end();
    await connection.close();
    if (keepLogs) ctx.log(`worker and poller logs kept in ${logDir}`);
    else await rm(logDir, { recursive: true, force: true });
  }
}
