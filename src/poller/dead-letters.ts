// Failed batches' keys (embedsync.dead_letters with content_hash '') go back into the outbox after
// a wait that doubles with each failure: a quota topped up or a credential fixed is picked up
// without anyone stepping in, and a provider that stays down costs one failed request per key now
// and then. Rows the provider refused are left alone: the same content would be refused again. A
// held pipeline's letters wait for its fix, which sends them round at once
// (src/db/pipeline-state.ts).
import { HELD_STATES } from '../db/pipeline-state.js';
import type { Pool } from '../db/pool.js';

export interface DeadLetterRetry {
  /** Wait after the first failure; each further failure doubles it. */
  firstAfterMs: number;
  maxAfterMs: number;
}

export const DEFAULT_DEAD_LETTER_RETRY: DeadLetterRetry = {
  firstAfterMs: 5 * 60_000,
  maxAfterMs: 6 * 3600_000,
};

/** Requeues the failed keys whose wait is over; returns how many per pipeline. */
export async function requeueFailedBatches(
  pool: Pool,
  retry: DeadLetterRetry,
): Promise<Map<string, number>> {
  // Several pollers may run this at once: a letter one of them requeued no longer qualifies for the
  // others.
  const { rows } = await pool.query<{ pipeline: string; n: number }>(
    `with due as (
       update embedsync.dead_letters d set requeued_at = now()
        where content_hash = ''
          and coalesce(requeued_at, failed_at) <= failed_at
          and failed_at < now() - least($1 * power(2, least(attempts - 1, 30)), $2) * interval '1 millisecond'
          and exists (select 1 from embedsync.pipelines p
                       where p.name = d.pipeline and not p.sync_paused and p.state <> all($3::text[]))
       returning pipeline, pk),
     queued as (insert into embedsync.outbox (pipeline, pk, op) select pipeline, pk, 'U' from due returning pipeline)
     select pipeline, count(*)::int as n from queued group by pipeline`,
    [retry.firstAfterMs, retry.maxAfterMs, HELD_STATES],
  );
  return new Map(rows.map((r) => [r.pipeline, r.n]));
}
