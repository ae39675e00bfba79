// embedsync.staged_rows and embedsync.staged_chunks (sql/000001): every query of those tables.
// They carry a batch's texts and vectors between its stages, keyed by batch id, so that nothing
// but keys and counts crosses the Temporal boundary. Fetch stages rows, chunk stages their chunks,
// embed stores vectors on them, write moves them into the vector table; then the batch is cleared.
import type { StagedForWrite, StagedRow } from '../batch/decide.js';
import type { Pipeline } from './catalog.js';
import type { Queryable } from './pool.js';
import { vectorTable } from './vectors.js';

/** The batch's staged rows go: a retried fetch starts afresh, a dropped generation stages none. */
export async function clearStagedRows(db: Queryable, batchId: string): Promise<void> {
  await db.query('delete from embedsync.staged_rows where batch_id = $1', [batchId]);
}

export async function insertStagedRows(
  db: Queryable,
  batchId: string,
  generation: number,
  rows: readonly StagedRow[],
): Promise<void> {
  await db.query(
    `insert into embedsync.staged_rows
       (batch_id, pk, action, document, context, content_hash, generation)
     select $1, s.pk, s.action, s.document, s.context, s.hash, $2
       from unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
         as s(pk, action, document, context, hash)`,
    [
      batchId,
      generation,
      rows.map((r) => r.pk),
      rows.map((r) => r.action),
      rows.map((r) => r.document),
      rows.map((r) => r.context),
      rows.map((r) => r.contentHash),
    ],
  );
}

/** The staged rows whose content changed: they are to be chunked. */
export async function readRowsToChunk(
  db: Queryable,
  batchId: string,
): Promise<{ pk: string; document: string; context: string | null }[]> {
  const { rows } = await db.query<{ pk: string; document: string; context: string | null }>(
    `select pk, document, context from embedsync.staged_rows
      where batch_id = $1 and action = 'embed'`,
    [batchId],
  );
  return rows;
}

export interface ChunkColumns {
  pk: string[];
  index: number[];
  text: string[];
}

/** Stages the chunks; one keeps a vector from an earlier attempt only if its text is the same. */
export async function upsertStagedChunks(
  db: Queryable,
  batchId: string,
  chunks: ChunkColumns,
): Promise<void> {
  await db.query(
    `insert into embedsync.staged_chunks as c (batch_id, pk, chunk_index, chunk)
     select $1, s.pk, s.i, s.chunk from unnest($2::text[], $3::int[], $4::text[]) as s(pk, i, chunk)
     on conflict (batch_id, pk, chunk_index) do update
       set chunk = excluded.chunk,
           embedding = case when c.chunk = excluded.chunk then c.embedding end`,
    [batchId, chunks.pk, chunks.index, chunks.text],
  );
}

/** Drops the chunks an earlier attempt staged past each row's new chunk count. */
export async function deleteChunksBeyond(
  db: Queryable,
  batchId: string,
  counts: { pk: string[]; n: number[] },
): Promise<void> {
  await db.query(
    `delete from embedsync.staged_chunks c using unnest($2::text[], $3::int[]) as s(pk, n)
      where c.batch_id = $1 and c.pk = s.pk and c.chunk_index >= s.n`,
    [batchId, counts.pk, counts.n],
  );
}

/** A staged chunk; its text only while it has no vector (an embedded one is not sent again). */
export interface StagedChunk {
  pk: string;
  chunk_index: number;
  chunk: string | null;
}

export async function readStagedChunks(db: Queryable, batchId: string): Promise<StagedChunk[]> {
  const { rows } = await db.query<StagedChunk>(
    `select pk, chunk_index, case when embedding is null then chunk end as chunk
       from embedsync.staged_chunks where batch_id = $1 order by pk, chunk_index`,
    [batchId],
  );
  return rows;
}

/** Stores one request's vectors (pgvector's text form) on their chunks. */
export async function storeVectors(
  db: Queryable,
  batchId: string,
  chunks: { pk: string[]; index: number[]; vectors: string[] },
): Promise<void> {
  await db.query(
    `update embedsync.staged_chunks c set embedding = s.embedding::vector
       from unnest($2::text[], $3::int[], $4::text[]) as s(pk, i, embedding)
      where c.batch_id = $1 and c.pk = s.pk and c.chunk_index = s.i`,
    [batchId, chunks.pk, chunks.index, chunks.vectors],
  );
}

/**
 * Rows the provider refused leave the batch: their chunks go and they become 'keep', so write
 * leaves their existing vectors as they are. Two statements: run it in the caller's transaction.
 */
export async function markRowsKept(
  db: Queryable,
  batchId: string,
  keys: readonly string[],
): Promise<void> {
  await db.query(
    'delete from embedsync.staged_chunks where batch_id = $1 and pk = any($2::text[])',
    [batchId, keys],
  );
  await db.query(
    `update embedsync.staged_rows set action = 'keep', document = null
      where batch_id = $1 and pk = any($2::text[])`,
    [batchId, keys],
  );
}

export async function readRowsToWrite(db: Queryable, batchId: string): Promise<StagedForWrite[]> {
  const { rows } = await db.query<StagedForWrite>(
    `select pk, action, content_hash as "contentHash", generation
       from embedsync.staged_rows where batch_id = $1`,
    [batchId],
  );
  return rows;
}

/**
 * Writes the staged chunks of `rows` into the pipeline's vector table, with each row's hash and
 * metadata and the batch's generation: one statement, so the vectors never leave Postgres. Returns
 * how many chunks were written.
 */
export async function writeStagedChunks(
  db: Queryable,
  p: Pick<Pipeline, 'vectorSchema' | 'vectorTable'>,
  batchId: string,
  generation: number,
  rows: readonly { pk: string; contentHash: string; metadata: string }[],
): Promise<number> {
  const { rowCount } = await db.query(
    `insert into ${vectorTable(p)}
       (pk, chunk_index, embedding, chunk, metadata, content_hash, generation)
     select c.pk, c.chunk_index, c.embedding, c.chunk, s.metadata, s.hash, $2
       from embedsync.staged_chunks c
       join unnest($3::text[], $4::jsonb[], $5::text[]) as s(pk, metadata, hash) on s.pk = c.pk
      where c.batch_id = $1`,
    [
      batchId,
      generation,
      rows.map((r) => r.pk),
      rows.map((r) => r.metadata),
      rows.map((r) => r.contentHash),
    ],
  );
  return rowCount ?? 0;
}

/** The batch has ended: what it staged goes. */
export async function clearBatch(db: Queryable, batchId: string): Promise<void> {
  await db.query('delete from embedsync.staged_chunks where batch_id = $1', [batchId]);
  await db.query('delete from embedsync.staged_rows where batch_id = $1', [batchId]);
}

/** A sync's batches: `<workflow id>`, and `<workflow id>:g<generation>` during a re-embed. */
export async function clearSyncBatches(db: Queryable, workflowId: string): Promise<void> {
  const batches = `batch_id = $1 or starts_with(batch_id, $1 || ':g')`;
  await db.query(`delete from embedsync.staged_chunks where ${batches}`, [workflowId]);
  await db.query(`delete from embedsync.staged_rows where ${batches}`, [workflowId]);
}

/** Every batch whose id starts with `prefix`: a finished walk's. */
export async function clearBatchesByPrefix(db: Queryable, prefix: string): Promise<void> {
  await db.query('delete from embedsync.staged_chunks where starts_with(batch_id, $1)', [prefix]);
  await db.query('delete from embedsync.staged_rows where starts_with(batch_id, $1)', [prefix]);
}

/** How many of `keys` are staged in a stuck batch of the pipeline, by stage and error. */
export interface StuckKeys {
  stage: string;
  lastError: string;
  retryable: boolean;
  keys: number;
}

export async function stuckKeys(
  db: Queryable,
  pipeline: string,
  keys: string[],
): Promise<StuckKeys[]> {
  if (keys.length === 0) return [];
  const { rows } = await db.query<StuckKeys>(
    `select b.stage, b.last_error as "lastError", b.retryable, count(distinct r.pk)::int as keys
       from embedsync.stuck_batches b
       join embedsync.staged_rows r on r.batch_id = b.batch_id
      where b.pipeline = $1 and r.pk = any($2::text[])
      group by b.stage, b.last_error, b.retryable
      order by keys desc`,
    [pipeline, keys],
  );
  return rows;
}

/**
 * A walk's batch stages only the vectors of a row it could not write yet (its chunks span several
 * requests), so that a retry pays for none of them again; these are read, written and cleared here.
 */
export async function readStagedVectors(
  db: Queryable,
  batchId: string,
): Promise<Map<string, { chunk: string; vector: string }>> {
  const { rows } = await db.query<{ pk: string; i: number; chunk: string; vector: string }>(
    `select pk, chunk_index as i, chunk, embedding::text as vector from embedsync.staged_chunks
      where batch_id = $1 and embedding is not null`,
    [batchId],
  );
  return new Map(rows.map((r) => [`${r.pk}\u0000${r.i}`, { chunk: r.chunk, vector: r.vector }]));
}

export async function stageVectors(
  db: Queryable,
  batchId: string,
  c: { pk: string[]; index: number[]; chunk: string[]; vector: string[] },
): Promise<void> {
  await db.query(
    `insert into embedsync.staged_chunks (batch_id, pk, chunk_index, chunk, embedding)
     select $1, s.pk, s.i, s.chunk, s.e::vector
       from unnest($2::text[], $3::int[], $4::text[], $5::text[]) as s(pk, i, chunk, e)
     on conflict (batch_id, pk, chunk_index) do update
       set chunk = excluded.chunk, embedding = excluded.embedding`,
    [batchId, c.pk, c.index, c.chunk, c.vector],
  );
}

export async function clearStagedVectors(
  db: Queryable,
  batchId: string,
  keys: readonly string[],
): Promise<void> {
  await db.query(
    'delete from embedsync.staged_chunks where batch_id = $1 and pk = any($2::text[])',
    [batchId, keys],
  );
}

/** These keys of a batch are done: their staged rows and chunks go, the batch's others stay. */
export async function clearStagedKeys(
  db: Queryable,
  batchId: string,
  keys: readonly string[],
): Promise<void> {
  await db.query(
    'delete from embedsync.staged_chunks where batch_id = $1 and pk = any($2::text[])',
    [batchId, keys],
  );
  await db.query('delete from embedsync.staged_rows where batch_id = $1 and pk = any($2::text[])', [
    batchId,
    keys,
  ]);
}
