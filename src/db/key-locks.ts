// The advisory locks writers of a vector table take (docs/architecture.md, decision 5): a pipeline
// lock, shared by every batch and taken exclusively by a sweep, and one lock per key, so two
// writers of one key serialise and a stale result can never overwrite a newer one.
import type { Queryable } from './pool.js';

export async function lockPipeline(
  db: Queryable,
  pipeline: string,
  mode: 'shared' | 'exclusive',
): Promise<void> {
  const fn = mode === 'shared' ? 'pg_advisory_xact_lock_shared' : 'pg_advisory_xact_lock';
  await db.query(`select ${fn}(hashtextextended('embedsync:' || $1, 0))`, [pipeline]);
}

/** Key locks are taken in one order (by hash) so that two batches sharing keys cannot deadlock. */
export async function lockKeys(db: Queryable, pipeline: string, keys: string[]): Promise<void> {
  if (keys.length === 0) return;
  await db.query(
    `select pg_advisory_xact_lock(hashtext('embedsync:' || $1), h)
       from (select distinct hashtext(k) as h from unnest($2::text[]) as k order by 1) as ordered`,
    [pipeline, keys],
  );
}

/**
 * A sink's per-key locks, apart from the writers' (a delivery never holds up a write): a delivery
 * reads its rows and sends under them, so for each row the states a sink receives follow commit
 * order (decision 23). Taken in hash order, like lockKeys.
 */
export async function lockSinkKeys(
  db: Queryable,
  pipeline: string,
  sink: number,
  keys: readonly string[],
): Promise<void> {
  if (keys.length === 0) return;
  await db.query(
    `select pg_advisory_xact_lock(hashtext('embedsync-sink:' || $1 || ':' || $2), h)
       from (select distinct hashtext(k) as h from unnest($3::text[]) as k order by 1) as ordered`,
    [pipeline, sink, keys],
  );
}
