// Peers: embedsync beside pgai's vectorizer worker (the peer users would pick instead), on the same
// PostgreSQL, the same OpenAI-compatible mock (50 ms a request, 512 dimensions) and copies of the
// same rows, in alternating runs: backfill until every row has its vector and an HNSW index, the
// CPU that costs PostgreSQL and the workers, commit → vector latency, a rate-limited backfill,
// and what a metadata-only change sends to the provider.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startMockProvider } from '../src/mock-provider/server.js';
import { connectClient } from '../src/temporal/connect.js';
import { createBenchDatabase } from './helpers/database.js';
import { onInterrupt } from './helpers/interrupt.js';
import {
  MOCK_LATENCY_MS,
  TOKENS_PER_MINUTE,
  type BackfillMeasure,
  type LiveMeasure,
  type PeerContext,
} from './helpers/peer-common.js';
import { embedsyncBackfill, embedsyncLive } from './helpers/peer-embedsync.js';
import { pgaiBackfill, pgaiLive } from './helpers/peer-pgai.js';
import { peersReport, skippedReport, type PeerSettings } from './helpers/peers-report.js';
import { ensurePgai, installPgaiCatalog, pgaiRequirements } from './helpers/pgai.js';
import { postmasterPid } from './helpers/postgres-cpu.js';
import { round } from './helpers/stats.js';
import type { BenchContext, BenchOptions, BenchReport, Benchmark } from './helpers/types.js';

export const PARTS = ['backfill', 'rate', 'latency', 'metadata'] as const;
type Part = (typeof PARTS)[number];

/** Options of this benchmark beyond the shared ones (registered in run.ts). */
interface PeersOptions extends BenchOptions {
  only?: Part[];
  workers?: number;
  pgaiConcurrency?: number;
}

const DEFAULTS = {
  rows: 20_000,
  rounds: 2,
  workers: 2,
  pgaiConcurrency: 4,
  rate: 10,
  duration: 20,
  metadataRows: 1_000,
};

export const peers: Benchmark = {
  name: 'peers',
  title: 'Peers: embedsync and pgai’s vectorizer worker side by side (same PostgreSQL, same mock)',
  run,
};

async function run(ctx: BenchContext): Promise<BenchReport> {
  const o = ctx.options as PeersOptions;
  const settings: PeerSettings = {
    rows: o.rows ?? DEFAULTS.rows,
    rounds: o.rounds ?? DEFAULTS.rounds,
    workers: o.workers ?? DEFAULTS.workers,
    pgaiConcurrency: o.pgaiConcurrency ?? DEFAULTS.pgaiConcurrency,
    rate: o.rate ?? DEFAULTS.rate,
    duration: o.duration ?? DEFAULTS.duration,
    metadataRows: DEFAULTS.metadataRows,
    parts: o.only?.length ? o.only : [...PARTS],
  };
  if (!Number.isInteger(settings.workers) || !Number.isInteger(settings.pgaiConcurrency))
    throw new Error('--workers and --pgai-concurrency must be whole numbers');
  if (settings.pgaiConcurrency > 10)
    throw new Error('--pgai-concurrency must be at most 10 (pgai’s worker refuses more)');
  const loadAtStart = os.loadavg()[0] ?? 0;
  const install = await ensurePgai((line) => ctx.log(line));
  if (!install.ok) {
    ctx.log(`skipped: pgai cannot be installed here; missing: ${install.missing}`);
    return skippedReport(settings, install.missing);
  }
  const { pgai } = install;
  const has = (p: Part): boolean => settings.parts.includes(p);
  const pgaiDb = await createBenchDatabase(ctx.adminDatabaseUrl, 'peers_pgai');
  const forgetDb = onInterrupt(() => pgaiDb.drop());
  const mock = await startMockProvider({ latencyMs: MOCK_LATENCY_MS });
  const forgetMock = onInterrupt(() => mock.close());
  const { client, connection } = await connectClient({
    temporalAddress: ctx.temporal.address,
    temporalNamespace: ctx.temporal.namespace,
  });
  const logDir = await mkdtemp(path.join(os.tmpdir(), 'embedsync-bench-peers-'));
  let ok = false;
  try {
    await installPgaiCatalog(pgai, pgaiDb.url);
    const pc: PeerContext = {
      ctx,
      client,
      mock,
      pgaiDb,
      pgai,
      postmaster: await postmasterPid(ctx.db.pool),
      logDir,
    };
    const backfills: BackfillMeasure[] = [];
    const rateLimited: BackfillMeasure[] = [];
    const live: LiveMeasure[] = [];
    const keep = (list: BackfillMeasure[], m: BackfillMeasure): void => {
      list.push(m);
      ctx.log(
        `${m.system}, ${m.setting}: ${Math.round(m.rowsPerSecond)} rows/s (${round(m.seconds)} s, index ${round(m.indexSeconds)} s), PostgreSQL ${round(m.usage.postgresCpuS ?? Number.NaN)} s CPU, worker ${round(m.usage.workerCpuS ?? Number.NaN)} s, ${m.provider.rateLimited}/${m.provider.requests} answered 429`,
      );
    };
    for (let r = 1; r <= settings.rounds; r++) {
      ctx.log(`round ${r} of ${settings.rounds}`);
      if (has('backfill'))
        for (const [workers, concurrency] of [
          [1, 1],
          [settings.workers, settings.pgaiConcurrency],
        ] as const) {
          const rows = settings.rows;
          const rateLimited = false;
          keep(
            backfills,
            await embedsyncBackfill(pc, {
              table: `es_r${r}_w${workers}`,
              rows,
              workers,
              rateLimited,
            }),
          );
          keep(
            backfills,
            await pgaiBackfill(pc, {
              table: `pgai_r${r}_c${concurrency}`,
              rows,
              concurrency,
              rateLimited,
            }),
          );
        }
      if (has('rate')) {
        mock.options.tokensPerMinute = TOKENS_PER_MINUTE;
        try {
          const rows = Math.max(1, Math.round(settings.rows / 2));
          keep(
            rateLimited,
            await embedsyncBackfill(pc, {
              table: `es_rate_r${r}`,
              rows,
              workers: settings.workers,
              rateLimited: true,
            }),
          );
          keep(
            rateLimited,
            await pgaiBackfill(pc, {
              table: `pgai_rate_r${r}`,
              rows,
              concurrency: settings.pgaiConcurrency,
              rateLimited: true,
            }),
          );
        } finally {
          delete mock.options.tokensPerMinute;
        }
      }
      if (has('latency') || has('metadata')) {
        const liveRun = {
          rows: settings.metadataRows,
          rate: settings.rate,
          duration: settings.duration,
          metadataRows: settings.metadataRows,
        };
        for (const m of [
          await embedsyncLive(pc, { ...liveRun, table: `es_live_r${r}` }),
          await pgaiLive(pc, { ...liveRun, table: `pgai_live_r${r}` }),
        ]) {
          ctx.log(
            `${m.system}: commit → vector p50 ${round(m.latencyMs.p50)} ms, p99 ${round(m.latencyMs.p99)} ms (${m.unseen} unseen); price change on ${m.metadata.rows} rows: ${m.metadata.requests} requests, ${m.metadata.inputs} inputs`,
          );
          live.push(m);
        }
      }
    }
    ok = true;
    return peersReport(settings, {
      backfills,
      rateLimited,
      live,
      postgresCpuReadable: pc.postmaster !== undefined,
      load: { start: loadAtStart, end: os.loadavg()[0] ?? 0, cpus: os.cpus().length },
      requirements: await pgaiRequirements(pgai),
    });
  } finally {
    await connection.close();
    await mock.close();
    forgetMock();
    await pgaiDb.drop();
    forgetDb();
    if (ok) await rm(logDir, { recursive: true, force: true });
    else ctx.log(`worker logs kept in ${logDir}`);
  }
}
