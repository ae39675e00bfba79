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
