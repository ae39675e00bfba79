// embedsync.outbox (sql/000001): every query of that table. The capture functions insert into it
// in the user's transaction (src/capture/triggers.ts builds them from OUTBOX_INSERT); the poller
// claims, starts and deletes (docs/architecture.md, decision 4). Claimed rows stay locked (and
// invisible to other pollers, which skip them) until the transaction that starts their workflows
// commits or rolls back.
import { HELD_STATES } from './pipeline-state.js';
import type { PoolClient, Queryable } from './pool.js';

/** Still listened to by the poller: `verify --requeue`, a resume and operators wake it at once. */
export const NOTIFY_CHANNEL = 'embedsync_outbox';

/** How every change enters the outbox; followed by the rows' `select` or `values`. */
export const OUTBOX_INSERT = 'insert into embedsync.outbox (pipeline, pk, op)';

/** Insert, update, delete, truncate ('*' as the key). */
export type OutboxOp = 'I' | 'U' | 'D' | 'T';

export interface OutboxRow {
  id: number;
  pipeline: string;
  pk: string;
  op: OutboxOp;
  enqueuedAt: Date;
}

/**
 * Oldest changes first, skipping pipelines whose sync is paused or held (their source table changed
 * shape: src/capture/schema-check.ts). No cursor: ids commit out of order.
 */
export async function claimOutboxBatch(client: PoolClient, limit: number): Promise<OutboxRow[]> {
  const { rows } = await client.query<OutboxRow>(
    `select o.id, o.pipeline, o.pk, o.op, o.enqueued_at as "enqueuedAt"
       from embedsync.outbox o
      where not exists (select 1 from embedsync.pipelines p
                         where p.name = o.pipeline and (p.sync_paused or p.state = any($2::text[])))
      order by o.id
      limit $1
        for update of o skip locked`,
    [limit, HELD_STATES],
  );
  return rows;
}

export async function deleteClaimed(client: PoolClient, ids: number[]): Promise<void> {
  await client.query('delete from embedsync.outbox where id = any($1::bigint[])', [ids]);
}

/** Queues changes of the pipeline's keys, in the order given; returns how many were queued. */
export async function enqueueKeys(
  db: Queryable,
  pipeline: string,
  changes: readonly { pk: string; op: OutboxOp }[],
): Promise<number> {
  const { rowCount } = await db.query(
    `${OUTBOX_INSERT}
     select $1, k.pk, k.op::"char" from unnest($2::text[], $3::text[]) with ordinality as k(pk, op, n) order by k.n`,
    [pipeline, changes.map((c) => c.pk), changes.map((c) => c.op)],
  );
  return rowCount ?? 0;
}

/** A removed pipeline's changes that were still waiting. */
export async function dropQueuedChanges(db: Queryable, pipeline: string): Promise<void> {
  await db.query('delete from embedsync.outbox where pipeline = $1', [pipeline]);
}

/** Wakes the pollers for the pipeline; in a transaction, at its commit. */
export async function wakePollers(db: Queryable, pipeline: string): Promise<void> {
  await db.query('select pg_notify($1, $2)', [NOTIFY_CHANNEL, pipeline]);
}
