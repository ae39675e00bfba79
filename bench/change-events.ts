// Change events: how long after an INSERT commits a LISTENing client hears of it, for an events-only
// pipeline (delivered straight after the outbox) and, side by side on the same rows, for the
// products pipeline with a notify sink (delivered once the row's vectors are written). A worker with
// its poller beside it runs as the separate process users run.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { applyPipelines } from '../src/capture/apply.js';
import { loadPipelineFile } from '../src/config/load.js';
import { createPool } from '../src/db/pool.js';
import { demoProducts } from '../src/demo/products.js';
import type { ChangeEvent } from '../src/sinks/payload.js';
import { connectClient } from '../src/temporal/connect.js';
import { now, sleep } from './helpers/clock.js';
import { cpuBetween, sampleCpu } from './helpers/cpu.js';
import { PRODUCTS_PIPELINE_FILE } from './helpers/database.js';
import { onInterrupt } from './helpers/interrupt.js';
import { terminateLeftovers } from './helpers/leftovers.js';
import { runOpenLoop } from './helpers/load.js';
import { startService, type Service } from './helpers/processes.js';
import { distribution, roundAll } from './helpers/stats.js';
import type { BenchContext, BenchReport, Benchmark } from './helpers/types.js';

const DEFAULTS = { duration: 30, rate: 50 };
const WARMUP_ROWS = 20;
const DRAIN_TIMEOUT_MS = 60_000;
const CHANNELS = { eventsOnly: 'bench_events_only', embedded: 'bench_embedded' } as const;
type Channel = keyof typeof CHANNELS;

const INSERT_SQL = `insert into public.products (name, description, category, price, in_stock)
                    values ($1, $2, $3, $4, $5) returning id::text as pk`;

export const changeEvents: Benchmark = {
  name: 'change-events',
  title: 'Change events: INSERT committed → event heard by a LISTEN client',
  run,
};

/** When each key committed, and when each channel first heard of it. */
class Listener {
  readonly committed = new Map<string, number>();
  readonly heard: Record<Channel, Map<string, number>> = {
    eventsOnly: new Map(),
    embedded: new Map(),
  };
  /** Deliveries per channel, and how many came again under an id already heard. */
  readonly deliveries: Record<Channel, Set<string>> = {
    eventsOnly: new Set(),
    embedded: new Set(),
  };
  repeats = 0;
  private readonly client: pg.Client;

  constructor(url: string) {
    this.client = new pg.Client({ connectionString: url, application_name: 'bench-listener' });
    this.client.on('error', () => undefined);
    this.client.on('notification', (n) => {
      const at = now();
      const channel = (Object.keys(CHANNELS) as Channel[]).find((c) => CHANNELS[c] === n.channel);
      if (!channel || !n.payload) return;
      const event = JSON.parse(n.payload) as ChangeEvent;
      if (this.deliveries[channel].has(event.deliveryId)) this.repeats += 1;
      this.deliveries[channel].add(event.deliveryId);
      for (const c of event.changes)
        if (!this.heard[channel].has(c.key)) this.heard[channel].set(c.key, at);
    });
  }

  async start(): Promise<void> {
    await this.client.connect();
    for (const channel of Object.values(CHANNELS)) await this.client.query(`listen ${channel}`);
  }

  unheard(): number {
    let n = 0;
    for (const key of this.committed.keys())
      for (const c of Object.keys(CHANNELS) as Channel[]) if (!this.heard[c].has(key)) n += 1;
    return n;
  }

  async drain(timeoutMs: number): Promise<number> {
    const deadline = now() + timeoutMs;
    while (this.unheard() > 0 && now() < deadline) await sleep(50);
    return this.unheard();
  }

  latencies(channel: Channel, keys: Iterable<string>): number[] {
    const out: number[] = [];
    for (const key of keys) {
      const committed = this.committed.get(key);
      const heard = this.heard[channel].get(key);
      if (committed !== undefined && heard !== undefined) out.push(heard - committed);
    }
    return out;
  }

  stop(): Promise<void> {
    return this.client.end();
  }
}

async function run(ctx: BenchContext): Promise<BenchReport> {
  const duration = ctx.options.duration ?? DEFAULTS.duration;
  const rate = ctx.options.rate ?? DEFAULTS.rate;
  const { db } = ctx;
  const [products] = await loadPipelineFile(PRODUCTS_PIPELINE_FILE);
  if (!products) throw new Error(`${PRODUCTS_PIPELINE_FILE} declares no pipeline`);
  await applyPipelines(db.pool, [
    { ...products, sinks: [{ notify: CHANNELS.embedded }] },
    {
      name: 'products_events',
      source: { table: 'public.products' },
      sinks: [{ notify: CHANNELS.eventsOnly }],
      batchSize: 200,
    },
  ]);
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
  const writers = createPool(db.url, { max: 8, applicationName: 'bench-writer' });
  const listener = new Listener(db.url);
  const { client, connection } = await connectClient({
    temporalAddress: ctx.temporal.address,
    temporalNamespace: ctx.temporal.namespace,
  });
  const forgetLeftovers = onInterrupt(() => terminateLeftovers(client, taskQueue));
  try {
    services.push(startService('worker', serviceEnv, logDir, ['--poller']));
    await Promise.all(services.map((s) => s.ready));
    await listener.start();
    const rows = demoProducts(300);
    const insert = async (i: number): Promise<void> => {
      const p = rows[i % rows.length];
      if (!p) return;
      const { rows: inserted } = await writers.query<{ pk: string }>(INSERT_SQL, [
        p.name,
        p.description,
        p.category,
        p.price,
        p.in_stock,
      ]);
      listener.committed.set(inserted[0]?.pk ?? '', now());
    };

    ctx.log(`warming up with ${WARMUP_ROWS} rows`);
    await runOpenLoop(10, WARMUP_ROWS, insert);
    if ((await listener.drain(120_000)) > 0)
      throw new Error(`warm-up events never arrived; worker log:\n${services[0]?.tail() ?? ''}`);
    const warm = new Set(listener.committed.keys());

    ctx.log(`offering ${rate} inserts/s for ${duration} s`);
    const pids = { worker: services[0]?.pid, 'load generator and listener': process.pid };
    const cpuBefore = sampleCpu(pids);
    const load = await runOpenLoop(rate, Math.round(rate * duration), insert);
    const cpu = cpuBetween(cpuBefore, sampleCpu(pids));
    ctx.log(`load done (${load.completed} committed); waiting for the last events`);
    const unheard = await listener.drain(DRAIN_TIMEOUT_MS);
    const measured = [...listener.committed.keys()].filter((k) => !warm.has(k));
    const eventsOnly = roundAll(distribution(listener.latencies('eventsOnly', measured)));
    const embedded = roundAll(distribution(listener.latencies('embedded', measured)));
    const leftovers = await terminateLeftovers(client, taskQueue, 10_000);
    keepLogs = unheard > 0 || leftovers.length > 0;
    const achieved =
      Math.round((load.completed / ((load.finishedAt - load.startedAt) / 1000)) * 10) / 10;
    return {
      settings: {
        duration,
        rate,
        services:
          'a worker with its poller beside it as a child process (src/cli/worker.ts --poller), default options',
        pipelines:
          'products_events (events-only, notify) and examples/products.yaml with a notify sink, on the same rows',
      },
      figures: [
        {
          label: 'rows committed / heard on both channels',
          value: `${load.completed} / ${Math.min(eventsOnly.count, embedded.count)}${unheard ? ` (${unheard} events not heard within ${DRAIN_TIMEOUT_MS / 1000} s)` : ''}`,
        },
        { label: 'insert rate achieved', value: `${achieved} rows/s (offered ${rate})` },
        {
          label: 'events-only: commit → heard p50',
          value: `${eventsOnly.p50} ms`,
          aim: '≤ 100 ms',
          met: eventsOnly.p50 <= 100,
        },
        {
          label: 'events-only: p99',
          value: `${eventsOnly.p99} ms`,
          aim: '≤ 300 ms',
          met: eventsOnly.p99 <= 300,
        },
        { label: 'events-only: max', value: `${eventsOnly.max} ms` },
        { label: 'after the vectors (products + notify): p50', value: `${embedded.p50} ms` },
        { label: 'after the vectors: p99', value: `${embedded.p99} ms` },
        {
          label: 'deliveries heard again under the same id',
          value: String(listener.repeats),
        },
        ...(cpu
          ? [
              {
                label: 'machine CPU busy during the load',
                value: `${cpu.machineBusyPct} % of ${os.cpus().length} cores (worker ${cpu.processPctOfCore.worker ?? '?'} % of a core)`,
              },
            ]
          : []),
      ],
      data: { load, eventsOnly, embedded, unheard, repeats: listener.repeats, cpu },
      notes: [
        'Each INSERT is captured by both pipelines: the events-only one delivers straight after the outbox, the products one after writing the row’s vectors (offline provider), so the difference is the embed and write.',
        'A notify is sent when embedsync’s delivery transaction commits; the latency is measured from the INSERT’s commit to its arrival at a separate LISTEN connection.',
      ],
    };
  } finally {
    await listener.stop().catch(() => undefined);
    await Promise.all(services.map((s) => s.stop()));
    await terminateLeftovers(client, taskQueue).catch(() => []);
    forgetLeftovers();
    await writers.end();
    await connection.close();
    if (keepLogs) ctx.log(`worker log kept in ${logDir}`);
    else await rm(logDir, { recursive: true, force: true });
  }
}
