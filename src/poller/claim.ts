// The poller's hot queries. Claimed rows stay locked (and invisible to other pollers, which skip
// them) until the transaction that starts their workflows commits or rolls back.
import { HELD_STATES } from '../db/pipeline-state.js';
import type { PoolClient } from '../db/pool.js';

export interface OutboxRow {
  id: number;
  pipeline: string;
  pk: string;
  op: 'I' | 'U' | 'D' | 'T';
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
