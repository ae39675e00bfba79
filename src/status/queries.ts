// The SQL behind status: the embedsync.pipeline_status view. (Counting a source table is
// src/db/source.ts's; the sync pause switch is the catalog's, src/db/catalog.ts.)
import type { Pool } from '../db/pool.js';

/** One row of embedsync.pipeline_status (sql/000002_progress.sql), in the code's words. */
export interface PipelineFacts {
  pipeline: string;
  sourceTable: string;
  vectorTable: string;
  state: string;
  syncPaused: boolean;
  generation: number;
  /** The generation a re-embed is building or will build, if the config changed. */
  pendingGeneration: number | null;
  provider: string;
  model: string;
  dimensions: number;
  /** Rows the last (or running) backfill has been through, and the source's size when it began. */
  syncedRows: number;
  totalRows: number | null;
  lastSyncedAt: Date | null;
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
    `select pipeline, source_table as "sourceTable", vector_table as "vectorTable", state,
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
