// embedsync.dead_letters (sql/000001, 000006): every query of that table. A letter is either a row
// the provider refused (with the content hash it was refused for) or a key of a batch that failed
// for good (content hash ''). Write clears letters once their key is in step again; failed
// batches' keys go back into the outbox after a wait that doubles with each failure, or at once
// when what made them fail has been put right. That move is one statement (the letters marked and
// their keys queued commit together), so it lives here, inserting with the outbox's OUTBOX_INSERT.
import { OUTBOX_INSERT } from './outbox.js';
import { HELD_STATES } from './pipeline-state.js';
import type { Queryable } from './pool.js';

const MAX_ERROR_LENGTH = 2000;

/** The keys of a batch that failed for good. Their content was never read: content hash ''. */
export async function recordFailedBatch(
  db: Queryable,
  pipeline: string,
  keys: readonly string[],
  generation: number | undefined,
  error: string,
): Promise<void> {
  await db.query(
    `insert into embedsync.dead_letters (pipeline, pk, generation, content_hash, error)
     select $1, k, coalesce($3, p.generation), '', $4
       from unnest($2::text[]) as k cross join embedsync.pipelines p where p.name = $1
     on conflict (pipeline, pk, content_hash)
       do update set error = excluded.error, failed_at = now(),
                     attempts = embedsync.dead_letters.attempts + 1`,
    [pipeline, keys, generation ?? null, error.slice(0, MAX_ERROR_LENGTH)],
  );
}

/**
 * Rows the provider refused, by key with the error, each with the content hash and generation the
 * batch staged for it.
 */
export async function recordRefusedRows(
  db: Queryable,
  pipeline: string,
  batchId: string,
  refused: ReadonlyMap<string, string>,
): Promise<void> {
  const keys = [...refused.keys()];
  await db.query(
    `insert into embedsync.dead_letters (pipeline, pk, generation, content_hash, error)
     select $1, s.pk, s.generation, s.content_hash, e.error
       from embedsync.staged_rows s
       join unnest($3::text[], $4::text[]) as e(pk, error) on e.pk = s.pk
      where s.batch_id = $2
     on conflict (pipeline, pk, content_hash)
       do update set error = excluded.error, generation = excluded.generation, failed_at = now()`,
    [pipeline, batchId, keys, keys.map((k) => refused.get(k) ?? '')],
  );
}

/** Rows a walk's batch found refused, with the content the provider refused. */
export async function recordRefusedContent(
  db: Queryable,
  pipeline: string,
  generation: number,
  refused: readonly { pk: string; contentHash: string; error: string }[],
): Promise<void> {
  if (refused.length === 0) return;
  await db.query(
    `insert into embedsync.dead_letters (pipeline, pk, generation, content_hash, error)
     select $1, e.pk, $2, e.hash, e.error from unnest($3::text[], $4::text[], $5::text[]) as e(pk, hash, error)
     on conflict (pipeline, pk, content_hash)
       do update set error = excluded.error, generation = excluded.generation, failed_at = now()`,
    [
      pipeline,
      generation,
      refused.map((r) => r.pk),
      refused.map((r) => r.contentHash),
      refused.map((r) => r.error.slice(0, MAX_ERROR_LENGTH)),
    ],
  );
}

/**
 * Of `keys`, each one's content the provider refused for this generation: a walk does not send it
 * again (it is tried again when the content changes, like a sync).
 */
export async function refusedContent(
  db: Queryable,
  pipeline: string,
  generation: number,
  keys: readonly string[],
): Promise<Set<string>> {
  const { rows } = await db.query<{ pk: string; hash: string }>(
    `select pk, content_hash as hash from embedsync.dead_letters
      where pipeline = $1 and generation = $2 and pk = any($3::text[]) and content_hash <> ''`,
    [pipeline, generation, keys],
  );
  return new Set(rows.map((r) => `${r.pk}\u0000${r.hash}`));
}

/** Letters no longer true: all of `allOf`'s, and the whole-batch failures of `batchFailuresOf`. */
export async function clearDeadLetters(
  db: Queryable,
  pipeline: string,
  { allOf, batchFailuresOf }: { allOf: readonly string[]; batchFailuresOf: readonly string[] },
): Promise<void> {
  if (allOf.length + batchFailuresOf.length === 0) return;
  await db.query(
    `delete from embedsync.dead_letters
      where pipeline = $1
        and (pk = any($2::text[]) or (pk = any($3::text[]) and content_hash = ''))`,
    [pipeline, allOf, batchFailuresOf],
  );
}

/** Of `keys`, those with a letter, in order. */
export async function deadLetteredKeys(
  db: Queryable,
  pipeline: string,
  keys: readonly string[],
): Promise<string[]> {
  const { rows } = await db.query<{ pk: string }>(
    `select distinct pk from embedsync.dead_letters
      where pipeline = $1 and pk = any($2::text[]) order by 1`,
    [pipeline, keys],
  );
  return rows.map((r) => r.pk);
}

export interface DeadLetterRetry {
  /** Wait after the first failure; each further failure doubles it. */
  firstAfterMs: number;
  maxAfterMs: number;
}

export const DEFAULT_DEAD_LETTER_RETRY: DeadLetterRetry = {
  firstAfterMs: 5 * 60_000,
  maxAfterMs: 6 * 3600_000,
};

/**
 * Requeues the failed batches' keys whose wait is over; returns how many per pipeline. A quota
 * topped up or a credential fixed is picked up without anyone stepping in, and a provider that
 * stays down costs one failed request per key now and then. Refused rows are left alone: the same
 * content would be refused again. A paused or held pipeline's letters wait.
 */
export async function requeueFailedBatches(
  db: Queryable,
  retry: DeadLetterRetry,
): Promise<Map<string, number>> {
  // Several pollers may run this at once: a letter one of them requeued no longer qualifies for the
  // others.
  const { rows } = await db.query<{ pipeline: string; n: number }>(
    `with due as (
       update embedsync.dead_letters d set requeued_at = now()
        where content_hash = ''
          and coalesce(requeued_at, failed_at) <= failed_at
          and failed_at < now()
                - least($1 * power(2, least(attempts - 1, 30)), $2) * interval '1 millisecond'
          and exists (select 1 from embedsync.pipelines p
                       where p.name = d.pipeline and not p.sync_paused
                         and p.state <> all($3::text[]))
       returning pipeline, pk),
     queued as (${OUTBOX_INSERT}
                select pipeline, pk, 'U' from due returning pipeline)
     select pipeline, count(*)::int as n from queued group by pipeline`,
    [retry.firstAfterMs, retry.maxAfterMs, HELD_STATES],
  );
  return new Map(rows.map((r) => [r.pipeline, r.n]));
}

/**
 * Sends the keys of the pipeline's failed batches round again now, instead of after their backoff:
 * called when what made them fail (the table's shape, the live generation's columns) has just been
 * put right.
 */
export async function requeueFailedBatchesNow(db: Queryable, pipeline: string): Promise<number> {
  const { rowCount } = await db.query(
    `with due as (
       update embedsync.dead_letters d set requeued_at = now()
        where pipeline = $1 and content_hash = '' and coalesce(requeued_at, failed_at) <= failed_at
       returning pipeline, pk)
     ${OUTBOX_INSERT} select pipeline, pk, 'U' from due`,
    [pipeline],
  );
  return rowCount ?? 0;
}
