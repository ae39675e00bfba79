// embedsync.failed_deliveries (sql/000020): every query of that table. A delivery a sink refused for
// good is kept with its keys and operations and the sink's last error (decision 23); it is sent
// again after a wait that doubles with each attempt, or at once on command, and deleted once sent.
import type { Queryable } from './pool.js';

const MAX_ERROR_LENGTH = 2000;

/** One key of a delivery: upsert (the row is there) or delete (it is gone). */
export interface Change {
  key: string;
  operation: 'upsert' | 'delete';
}

export interface FailedDelivery {
  deliveryId: string;
  pipeline: string;
  sink: number;
  generation: number;
  changes: Change[];
  /** A TRUNCATE's delivery: every row before it is gone. */
  truncated: boolean;
  error: string;
  attempts: number;
}

export interface DeliveryRetry {
  /** Wait after the first refusal; each further one doubles it. */
  firstAfterMs: number;
  maxAfterMs: number;
}

export const DEFAULT_DELIVERY_RETRY: DeliveryRetry = {
  firstAfterMs: 5 * 60_000,
  maxAfterMs: 6 * 3600_000,
};

/** Keeps a refused delivery, or counts one more refusal of one kept already. */
export async function recordFailedDelivery(
  db: Queryable,
  delivery: Omit<FailedDelivery, 'attempts'>,
  retry: DeliveryRetry = DEFAULT_DELIVERY_RETRY,
): Promise<void> {
  await db.query(
    `insert into embedsync.failed_deliveries
       (delivery_id, pipeline, sink, generation, changes, error, retry_at, truncated)
     values ($1, $2, $3, $4, $5::jsonb, $6, now() + $7 * interval '1 millisecond', $9)
     on conflict (delivery_id) do update
       set error = excluded.error, failed_at = now(),
           attempts = embedsync.failed_deliveries.attempts + 1,
           retry_at = now() + least($7 * power(2, least(embedsync.failed_deliveries.attempts, 30)),
                                    $8) * interval '1 millisecond'`,
    [
      delivery.deliveryId,
      delivery.pipeline,
      delivery.sink,
      delivery.generation,
      JSON.stringify(delivery.changes),
      delivery.error.slice(0, MAX_ERROR_LENGTH),
      retry.firstAfterMs,
      retry.maxAfterMs,
      delivery.truncated,
    ],
  );
}

/** A delivery sent: no longer a dead letter. */
export async function clearFailedDelivery(db: Queryable, deliveryId: string): Promise<void> {
  await db.query('delete from embedsync.failed_deliveries where delivery_id = $1', [deliveryId]);
}

/**
 * The kept deliveries to send again: those whose wait is over, or all of a pipeline's (`due:
 * false`, the redeliver command). Each is claimed by pushing its retry time on, so two pollers do
 * not both send it.
 */
export async function claimFailedDeliveries(
  db: Queryable,
  options: { pipeline?: string; due: boolean; limit: number; holdMs: number },
): Promise<FailedDelivery[]> {
  const { rows } = await db.query<{
    delivery_id: string;
    pipeline: string;
    sink: number;
    generation: number;
    changes: Change[];
    truncated: boolean;
    error: string;
    attempts: number;
  }>(
    `update embedsync.failed_deliveries f
        set retry_at = now() + $4 * interval '1 millisecond'
      where delivery_id in (
        select delivery_id from embedsync.failed_deliveries
         where ($1::text is null or pipeline = $1) and (not $2 or retry_at <= now())
         order by failed_at limit $3 for update skip locked)
     returning delivery_id, pipeline, sink, generation, changes, truncated, error, attempts`,
    [options.pipeline ?? null, options.due, options.limit, options.holdMs],
  );
  return rows.map((r) => ({
    deliveryId: r.delivery_id,
    pipeline: r.pipeline,
    sink: r.sink,
    generation: r.generation,
    changes: r.changes,
    truncated: r.truncated,
    error: r.error,
    attempts: r.attempts,
  }));
}

export interface FailedDeliveryCount {
  count: number;
  lastError: string | null;
  lastFailedAt: Date | null;
}

/** What `status` shows of a pipeline's kept deliveries. */
export async function countFailedDeliveries(
  db: Queryable,
  pipeline: string,
): Promise<FailedDeliveryCount> {
  const { rows } = await db.query<{ n: number; error: string | null; at: Date | null }>(
    `select count(*)::int as n,
            (array_agg(error order by failed_at desc))[1] as error, max(failed_at) as at
       from embedsync.failed_deliveries where pipeline = $1`,
    [pipeline],
  );
  const r = rows[0];
  return { count: r?.n ?? 0, lastError: r?.error ?? null, lastFailedAt: r?.at ?? null };
}

/** A removed pipeline's kept deliveries go with it. */
export async function deleteFailedDeliveries(db: Queryable, pipeline: string): Promise<void> {
  await db.query('delete from embedsync.failed_deliveries where pipeline = $1', [pipeline]);
}
