// A table walk's progress in embedsync.pipelines (sql/000002): the rows it has been through, the
// source's size, its cursor and the tokens it spent, where `npx embedsync status`, the metrics and
// SQL (embedsync.pipeline_status) see them. Every write of those columns is here; the walk's own
// record of them is its continue-as-new input (docs/architecture.md, decision 7).
import type { Queryable } from './pool.js';

/** A backfill begins: nothing synced yet, out of `total` rows. */
export async function resetWalkProgress(
  db: Queryable,
  pipeline: string,
  total: number,
): Promise<void> {
  await db.query(
    `update embedsync.pipelines set total_rows = $2, synced_rows = 0, updated_at = now()
      where name = $1`,
    [pipeline, total],
  );
}

/** A page done: the walk's cursor, its rows so far, the tokens the page spent, the total now. */
export async function recordCheckpoint(
  db: Queryable,
  pipeline: string,
  {
    cursor,
    processed,
    tokens,
    total,
  }: {
    cursor: string | null;
    processed: number;
    tokens: number;
    total: number;
  },
): Promise<void> {
  await db.query(
    `update embedsync.pipelines
        set backfill_cursor = $2, synced_rows = $3, tokens_used = tokens_used + $4, total_rows = $5,
            last_synced_at = now()
      where name = $1`,
    [pipeline, cursor, processed, tokens, total],
  );
}

/** A completed walk went through `processed` rows: the total, whatever was counted first. */
export async function recordWalkCompleted(
  db: Queryable,
  pipeline: string,
  processed: number,
): Promise<void> {
  await db.query(
    `update embedsync.pipelines set synced_rows = $2, total_rows = $2 where name = $1`,
    [pipeline, processed],
  );
}
