// pgai's side of the `peers` benchmark, run the way its documentation sets it up: a vectorizer
// created in SQL over the table (its trigger and queue), and `pgai vectorizer worker` embedding
// what the queue holds. Without TimescaleDB pgai builds no vector index, so the backfill builds
// the HNSW index embedsync keeps, once the queue is empty, and counts that time too.
import path from 'node:path';
import {
  resetBuildWorkers,
  setBuildMemory,
  setBuildWorkers,
} from '../../src/capture/vector-index.js';
import { memoryBytes } from '../../src/config/env.js';
import type { Pool } from '../../src/db/pool.js';
import { fillSourceTable } from './backfill-run.js';
import { now } from './clock.js';
import {
  DIMENSIONS,
  drainTokenBudget,
  measureUsage,
  MODEL,
  productRow,
  providerCounts,
  waitUntil,
  type BackfillMeasure,
  type LiveMeasure,
  type PeerContext,
} from './peer-common.js';
import { measureLatency } from './peer-latency.js';
import { startPgaiWorker } from './pgai.js';
import { BENCH_INDEX_BUILD_MEMORY, type Service } from './processes.js';

/** The text embedsync's pipeline builds from the same columns: the prefix, name, newline, description. */
const TEMPLATE = 'Product: $name\n$chunk';
const QUEUE_TIMEOUT_MS = 900_000;
const METADATA_TIMEOUT_MS = 60_000;

interface Vectorizer {
  id: number;
  /** Qualified and quoted. */
  queue: string;
  store: string;
}

/** The vectorizer of one table; creating it queues every existing row. */
async function createVectorizer(pool: Pool, table: string, baseUrl: string): Promise<Vectorizer> {
  const { rows } = await pool.query<{ id: number }>(
    `select ai.create_vectorizer(
              $1::regclass,
              name => $2,
              loading => ai.loading_column('description'),
              embedding => ai.embedding_openai($3, $4, base_url => $5),
              chunking => ai.chunking_none(),
              formatting => ai.formatting_python_template($6),
              indexing => ai.indexing_none(),
              scheduling => ai.scheduling_none(),
              destination => ai.destination_table(target_table => $7)) as id`,
    [`public.${table}`, table, MODEL, DIMENSIONS, baseUrl, TEMPLATE, `${table}_embeddings`],
  );
  const id = rows[0]?.id;
  if (id === undefined) throw new Error('ai.create_vectorizer returned no id');
  const q = await pool.query<{ queue: string }>(
    `select format('%I.%I', queue_schema, queue_table) as queue from ai.vectorizer where id = $1`,
    [id],
  );
  return { id, queue: q.rows[0]?.queue ?? '', store: `public.${table}_embeddings` };
}

/**
 * The HNSW index pgai leaves to its user, built with the settings embedsync's worker gives its own
 * build (src/capture/vector-index.ts): maintenance_work_mem sized to the table within the same
 * EMBEDSYNC_INDEX_BUILD_MEMORY, and the server's parallel maintenance workers. Like with like: only
 * the CONCURRENTLY, which embedsync needs and a user building it by hand would not, differs.
 */
async function buildPgaiIndex(pool: Pool, store: string): Promise<void> {
  const client = await pool.connect();
  try {
    await setBuildMemory(client, store, memoryBytes(BENCH_INDEX_BUILD_MEMORY));
    await setBuildWorkers(client, store);
    await client.query(`create index on ${store} using hnsw (embedding vector_cosine_ops)`);
    await resetBuildWorkers(client, store);
    await client.query('reset maintenance_work_mem');
  } finally {
    client.release();
  }
}

/** Whether the queue is empty; throws if the worker that should empty it has exited. */
async function queueEmpty(pool: Pool, v: Vectorizer, worker: Service): Promise<boolean> {
  const { rows } = await pool.query<{ empty: boolean }>(
    `select not exists (select 1 from ${v.queue}) as empty`,
  );
  if (rows[0]?.empty) return true;
  try {
    if (worker.pid !== undefined) process.kill(worker.pid, 0);
  } catch {
    throw new Error(`pgai's worker exited with work queued:\n${worker.tail()}`);
  }
  return false;
}

/**
 * A table of `rows` rows and a pgai worker polling every second; the body creates the vectorizer.
 */
async function withWorker<T>(
  pc: PeerContext,
  run: { table: string; rows: number; concurrency: number },
  body: (worker: Service) => Promise<T>,
): Promise<T> {
  const { pool, url } = pc.pgaiDb;
  const worker = startPgaiWorker(
    pc.pgai,
    url,
    { concurrency: run.concurrency, pollIntervalS: 1, apiKey: 'bench' },
    path.join(pc.logDir, `pgai-${run.table}.log`),
  );
  try {
    await fillSourceTable(pool, run.table, run.rows, productRow);
    await worker.ready;
    return await body(worker);
  } finally {
    await worker.stop();
    await pool.query(`drop view if exists public.${run.table}_seen`);
    await pool
      .query(`select ai.drop_vectorizer(id, drop_all => true) from ai.vectorizer where name = $1`, [
        run.table,
      ])
      .catch(() => undefined);
    await pool.query(`drop table if exists public.${run.table}`);
  }
}

export async function pgaiBackfill(
  pc: PeerContext,
  run: { table: string; rows: number; concurrency: number; rateLimited: boolean },
): Promise<BackfillMeasure> {
  const { pool } = pc.pgaiDb;
  return withWorker(pc, run, async (worker) => {
    pc.mock.reset();
    if (run.rateLimited) await drainTokenBudget(pc.mock);
    const from = pc.mock.requests.length;
    const usage = measureUsage(pc.postmaster, [worker.pid]);
    const started = now();
    const v = await createVectorizer(pool, run.table, pc.mock.openaiBaseURL);
    // The queue rows are deleted in the transaction that writes their vectors.
    if (!(await waitUntil(() => queueEmpty(pool, v, worker), QUEUE_TIMEOUT_MS, 200)))
      throw new Error(`pgai's queue was not empty after ${QUEUE_TIMEOUT_MS / 1000} s`);
    const embedded = now();
    await buildPgaiIndex(pool, v.store);
    const end = now();
    const used = usage();
    const { rows } = await pool.query<{ n: number }>(
      `select count(distinct id)::int as n from ${v.store}`,
    );
    if (rows[0]?.n !== run.rows)
      throw new Error(
        `${rows[0]?.n ?? 0} of ${run.rows} rows have vectors after pgai's queue emptied:\n${worker.tail()}`,
      );
    const seconds = (end - started) / 1000;
    return {
      system: 'pgai' as const,
      setting: `concurrency ${run.concurrency}`,
      rows: run.rows,
      seconds,
      rowsPerSecond: run.rows / seconds,
      indexSeconds: (end - embedded) / 1000,
      indexDuringLoad: false,
      usage: used,
      provider: providerCounts(pc.mock, from),
    };
  });
}

export async function pgaiLive(
  pc: PeerContext,
  run: { table: string; rows: number; rate: number; duration: number; metadataRows: number },
): Promise<LiveMeasure> {
  const { pool, url } = pc.pgaiDb;
  return withWorker(pc, { ...run, concurrency: 1 }, async (worker) => {
    const v = await createVectorizer(pool, run.table, pc.mock.openaiBaseURL);
    if (!(await waitUntil(() => queueEmpty(pool, v, worker), QUEUE_TIMEOUT_MS, 200)))
      throw new Error(`pgai's queue was not empty after ${QUEUE_TIMEOUT_MS / 1000} s`);
    // The watcher asks for text keys and chunk 0, as embedsync's vector table has them.
    const seen = `public.${run.table}_seen`;
    await pool.query(
      `create view ${seen} as select id::text as pk, chunk_seq as chunk_index from ${v.store}`,
    );
    const latency = await measureLatency(url, `public.${run.table}`, seen, run);
    pc.mock.reset();
    const started = now();
    await pool.query(`update public.${run.table} set price = price + 1 where id <= $1`, [
      run.metadataRows,
    ]);
    // pgai queues the rows whatever column changed; done once its queue is empty again.
    const done = await waitUntil(() => queueEmpty(pool, v, worker), METADATA_TIMEOUT_MS, 200);
    return {
      system: 'pgai' as const,
      ...latency,
      metadata: {
        rows: run.metadataRows,
        seconds: (now() - started) / 1000,
        done,
        ...providerCounts(pc.mock),
      },
    };
  });
}
