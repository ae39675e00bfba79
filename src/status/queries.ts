// The SQL behind status: the embedsync.pipeline_status view, and the rows in sync. (Counting a
// source table is src/db/source.ts's; the sync pause switch is the catalog's, src/db/catalog.ts;
// the token ledger is src/db/token-ledger.ts's.)
import type { Pipeline } from '../db/catalog.js';
import { writeTarget } from '../db/destination.js';
import { qualified, quoteIdent } from '../db/ident.js';
import type { Pool } from '../db/pool.js';
import { keyMatches } from '../db/source.js';
import { vectorTable } from '../db/vectors.js';

/** One row of embedsync.pipeline_status (sql/000002_progress.sql), in the code's words. */
export interface PipelineFacts {
  pipeline: string;
  sourceTable: string;
  vectorTable: string;
  /** Where the vectors are: the vector table, or a column pipeline's `schema.table.column`. */
  destination: string;
  state: string;
  syncPaused: boolean;
  generation: number;
  /** The generation a re-embed is building or will build, if the config changed. */
  pendingGeneration: number | null;
  provider: string;
  model: string;
  dimensions: number;
  /**
   * Rows the last (or running) walk has been through, and the source's size when it began: the
   * walk's progress, not what is in sync (countSyncedRows).
   */
  syncedRows: number;
  totalRows: number | null;
  lastSyncedAt: Date | null;
  /** Tokens the walks' checkpoints counted; kept for compatibility: the ledger counts every token. */
  tokensUsed: number;
  outboxBacklog: number;
  /** How long the oldest waiting change has waited; null when nothing waits. */
  oldestChangeSeconds: number | null;
  deadLetters: number;
  /**
   * The pipeline's provider requests that failed since the last one that succeeded, and the last
   * error.
   */
  providerFailuresInARow: number;
  providerLastError: string | null;
  providerLastErrorAt: Date | null;
  providerLastSuccessAt: Date | null;
  /**
   * False when the last error is one that is never retried (wrong dimensions, bad credentials, …).
   */
  providerLastErrorRetryable: boolean | null;
  /** The limits the pipeline declares (the workers' environment may set stricter ones). */
  requestsPerMinute: number | null;
  tokensPerMinute: number | null;
}

export async function readPipelineFacts(pool: Pool, pipeline?: string): Promise<PipelineFacts[]> {
  const { rows } = await pool.query<PipelineFacts>(
    `select pipeline, source_table as "sourceTable", vector_table as "vectorTable", destination, state,
            sync_paused as "syncPaused", generation, pending_generation as "pendingGeneration",
            provider, model, dimensions,
            synced_rows as "syncedRows", total_rows as "totalRows",
            last_synced_at as "lastSyncedAt",
            tokens_used as "tokensUsed", outbox_backlog as "outboxBacklog",
            extract(epoch from oldest_change_age)::float8 as "oldestChangeSeconds",
            dead_letters as "deadLetters",
            provider_failures_in_a_row as "providerFailuresInARow",
            provider_last_error as "providerLastError",
            provider_last_error_at as "providerLastErrorAt",
            provider_last_success_at as "providerLastSuccessAt",
            requests_per_minute as "requestsPerMinute", tokens_per_minute as "tokensPerMinute",
            (select h.last_error_retryable from embedsync.provider_health h
              where h.pipeline = s.pipeline) as "providerLastErrorRetryable"
       from embedsync.pipeline_status s
      where $1::text is null or pipeline = $1
      order by pipeline`,
    [pipeline ?? null],
  );
  return rows;
}

/**
 * Rows in sync, whoever wrote their vectors (a walk or change sync): keys with vectors in the live
 * vector table (a re-embed builds the next generation in a table of its own, so these are all of
 * the live generation) and neither a change waiting in the outbox nor a dead letter at the live
 * generation. A TRUNCATE waiting counts every key as waiting. One pass over the vector table's
 * primary key index; `verify` is what compares content hashes.
 */
export async function countSyncedRows(
  pool: Pool,
  p: Pick<
    Pipeline,
    | 'name'
    | 'generation'
    | 'vectorSchema'
    | 'vectorTable'
    | 'config'
    | 'sourceSchema'
    | 'sourceTable'
    | 'primaryKey'
  >,
): Promise<number> {
  // A column pipeline's record counts only where the column holds a vector (decision 18).
  const target = writeTarget(p);
  const filled = target
    ? `and exists (select 1 from ${qualified(p.sourceSchema, p.sourceTable)} s
                    where ${keyMatches(p, 's', 'v.pk')} and s.${quoteIdent(target.column)} is not null)`
    : '';
  try {
    const { rows } = await pool.query<{ n: string }>(
      `with waiting as (
         select k.pk from embedsync.outbox o
          cross join lateral unnest(coalesce(o.pks, array[o.pk])) as k(pk)
          where o.pipeline = $1
         union
         select pk from embedsync.dead_letters where pipeline = $1 and generation = $2)
       select count(*) as n from ${vectorTable(p)} v
        where v.chunk_index = 0 ${filled}
          and not exists (select 1 from waiting w where w.pk = v.pk)
          and not exists (select 1 from embedsync.outbox t where t.pipeline = $1 and t.op = 'T')`,
      [p.name, p.generation],
    );
    return Number(rows[0]?.n ?? 0);
  } catch (err) {
    // A vector table not made yet (or dropped by hand) holds no synced rows.
    if ((err as { code?: string }).code === '42P01') return 0;
    throw err;
  }
}
