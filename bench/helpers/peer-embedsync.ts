// embedsync's side of the `peers` benchmark: a backfill timed until every row has its vector and
// the vector table's HNSW index exists, and a live session (commit → vector latency, then a
// metadata-only change), with workers and a poller started as `npm run worker` / `poller` start
// them.
import { mkdtemp } from 'node:fs/promises';
import path from 'node:path';
import { applyPipelines, removePipeline } from '../../src/capture/apply.js';
import { pipelineSchema } from '../../src/config/pipeline.js';
import { getPipeline, type Pipeline } from '../../src/db/catalog.js';
import { qualified } from '../../src/db/ident.js';
import {
  benchTaskQueue,
  fillSourceTable,
  forgetEarlierRuns,
  serviceEnv,
  timeBackfill,
} from './backfill-run.js';
import { now } from './clock.js';
import { activitySeconds } from './histories.js';
import { onInterrupt } from './interrupt.js';
import { terminateLeftovers } from './leftovers.js';
import {
  DIMENSIONS,
  drainTokenBudget,
  hasHnswIndex,
  measureUsage,
  METADATA,
  MODEL,
  productRow,
  providerCounts,
  TOKENS_PER_MINUTE,
  waitUntil,
  type BackfillMeasure,
  type LiveMeasure,
  type PeerContext,
} from './peer-common.js';
import { measureLatency } from './peer-latency.js';
import { startService, type Service } from './processes.js';

/** A deferred index may be built after the workflow completes; this long is allowed for it. */
const INDEX_TIMEOUT_MS = 600_000;
const METADATA_TIMEOUT_MS = 60_000;

async function applyPeerPipeline(
  pc: PeerContext,
  table: string,
  rateLimited: boolean,
): Promise<Pipeline> {
  const config = pipelineSchema.parse({
    name: table,
    source: { table: `public.${table}` },
    embed: { columns: [{ column: 'name', prefix: 'Product: ' }, 'description'] },
    metadata: METADATA,
    embedding: {
      provider: 'openai',
      model: MODEL,
      dimensions: DIMENSIONS,
      baseURL: pc.mock.openaiBaseURL,
      ...(rateLimited ? { tokensPerMinute: TOKENS_PER_MINUTE } : {}),
    },
  });
  await applyPipelines(pc.ctx.db.pool, [config]);
  return getPipeline(pc.ctx.db.pool, table);
}

/** A table filled with `rows` rows before its pipeline exists, so only a backfill embeds them. */
async function withPipeline<T>(
  pc: PeerContext,
  table: string,
  rows: number,
  rateLimited: boolean,
  body: (p: Pipeline) => Promise<T>,
): Promise<T> {
  const { pool } = pc.ctx.db;
  try {
    await fillSourceTable(pool, table, rows, productRow);
    // Each run as on a fresh database: no texts on record, no limits learned from another run.
    await forgetEarlierRuns(pool);
    return await body(await applyPeerPipeline(pc, table, rateLimited));
  } finally {
    await removePipeline(pool, table, { dropVectorTable: true }).catch(() => undefined);
    await pool.query(`drop table if exists public.${table}`);
  }
}

async function withServices<T>(
  pc: PeerContext,
  workers: number,
  poller: boolean,
  body: (services: Service[], taskQueue: string) => Promise<T>,
): Promise<T> {
  const taskQueue = benchTaskQueue();
  const dir = await mkdtemp(path.join(pc.logDir, 'embedsync-'));
  const env = serviceEnv(pc.ctx, taskQueue);
  const forget = onInterrupt(() => terminateLeftovers(pc.client, taskQueue));
  const services: Service[] = [];
  try {
    // The poller runs beside the first worker (`worker --poller`), as deployed for the lowest
    // latency: it starts each sync eagerly on that worker.
    for (let w = 0; w < workers; w++) {
      const args = poller && w === 0 ? ['--poller'] : [];
      services.push(startService('worker', env, await mkdtemp(path.join(dir, 'worker-')), args));
    }
    await Promise.all(services.map((s) => s.ready));
    return await body(services, taskQueue);
  } finally {
    await Promise.all(services.map((s) => s.stop()));
    await terminateLeftovers(pc.client, taskQueue).catch(() => []);
    forget();
  }
}

export async function embedsyncBackfill(
  pc: PeerContext,
  run: { table: string; rows: number; workers: number; rateLimited: boolean },
): Promise<BackfillMeasure> {
  const { pool } = pc.ctx.db;
  return withPipeline(pc, run.table, run.rows, run.rateLimited, (p) =>
    withServices(pc, run.workers, false, async (services, taskQueue) => {
      const vectors = qualified(p.vectorSchema, p.vectorTable);
      pc.mock.reset();
      if (run.rateLimited) await drainTokenBudget(pc.mock);
      const from = pc.mock.requests.length;
      const usage = measureUsage(
        pc.postmaster,
        services.map((s) => s.pid),
      );
      const started = now();
      const backfill = await timeBackfill(pc.client, pool, run.table, {
        taskQueue,
        rows: run.rows,
      });
      const completed = now();
      // A first backfill leaves the index out and builds it before it completes (an activity of
      // its own); otherwise the index was there, maintained row by row, all along.
      const built = await activitySeconds(pc.client, backfill.workflowId, 'buildVectorIndex');
      const indexDuringLoad = built === undefined && (await hasHnswIndex(pool, vectors));
      if (
        !indexDuringLoad &&
        !(await waitUntil(() => hasHnswIndex(pool, vectors), INDEX_TIMEOUT_MS))
      )
        throw new Error(
          `${vectors} has no HNSW index ${INDEX_TIMEOUT_MS / 1000} s after the backfill`,
        );
      const end = now();
      const used = usage();
      const { rows } = await pool.query<{ n: number }>(
        `select count(distinct pk)::int as n from ${vectors}`,
      );
      if (rows[0]?.n !== run.rows)
        throw new Error(`${rows[0]?.n ?? 0} of ${run.rows} rows have vectors after the backfill`);
      const seconds = (end - started) / 1000;
      return {
        system: 'embedsync' as const,
        setting: `${run.workers} worker${run.workers === 1 ? '' : 's'}`,
        rows: run.rows,
        seconds,
        rowsPerSecond: run.rows / seconds,
        indexSeconds: built ?? (end - completed) / 1000,
        indexDuringLoad,
        usage: used,
        provider: providerCounts(pc.mock, from),
      };
    }),
  );
}

export async function embedsyncLive(
  pc: PeerContext,
  run: { table: string; rows: number; rate: number; duration: number; metadataRows: number },
): Promise<LiveMeasure> {
  const { pool } = pc.ctx.db;
  return withPipeline(pc, run.table, run.rows, false, (p) =>
    withServices(pc, 1, true, async (_services, taskQueue) => {
      const vectors = qualified(p.vectorSchema, p.vectorTable);
      await timeBackfill(pc.client, pool, run.table, { taskQueue, rows: run.rows });
      const latency = await measureLatency(pc.ctx.db.url, `public.${run.table}`, vectors, run);
      pc.mock.reset();
      const started = now();
      await pool.query(`update public.${run.table} set price = price + 1 where id <= $1`, [
        run.metadataRows,
      ]);
      // Done once every changed row's vector carries the new price.
      const done = await waitUntil(
        async () => {
          const { rows } = await pool.query<{ n: number }>(
            `select count(*)::int as n from ${vectors} v join public.${run.table} s on v.pk = s.id::text
              where s.id <= $1 and v.chunk_index = 0 and (v.metadata->>'price')::numeric = s.price`,
            [run.metadataRows],
          );
          return rows[0]?.n === run.metadataRows;
        },
        METADATA_TIMEOUT_MS,
        200,
      );
      return {
        system: 'embedsync' as const,
        ...latency,
        metadata: {
          rows: run.metadataRows,
          seconds: (now() - started) / 1000,
          done,
          ...providerCounts(pc.mock),
        },
      };
    }),
  );
}
