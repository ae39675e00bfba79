// A pipeline's states, a closed set, and the transitions into and out of a hold. A held pipeline's
// changes wait in the outbox (the poller starts no sync for it) until its source table is in shape
// again.
import type { Pool, PoolClient } from './pool.js';

export const PIPELINE_STATES = [
  'active',
  'backfilling',
  'pending_rebackfill',
  'swapping',
  'schema_changed',
  'source_missing',
] as const;
export type PipelineState = (typeof PIPELINE_STATES)[number];

/** The source table lost or changed a column the pipeline reads; or the table itself is gone. */
export const HELD_STATES = ['schema_changed', 'source_missing'] as const;
export type HeldState = (typeof HELD_STATES)[number];

export const isHeld = (state: string): state is HeldState =>
  (HELD_STATES as readonly string[]).includes(state);

/**
 * Serialises applies, removes and schema checks: each changes a pipeline's capture and catalog row
 * together.
 */
export const CATALOG_LOCK = 7_146_221_032;

/** The state a pipeline is in, or returns to once its hold is lifted. */
export async function baseState(db: Pool | PoolClient, name: string): Promise<string | undefined> {
  const { rows } = await db.query<{ state: string }>(
    'select coalesce(held_state, state) as state from embedsync.pipelines where name = $1',
    [name],
  );
  return rows[0]?.state;
}

/**
 * Holds the pipeline (or changes why it is held); the state it was in is kept for when the hold
 * ends.
 */
export async function holdPipeline(
  client: PoolClient,
  name: string,
  state: HeldState,
  reason: string,
): Promise<void> {
  await client.query(
    `update embedsync.pipelines
        set held_state = case when state = any($4::text[]) then held_state else state end,
            state = $2, state_reason = $3, updated_at = now()
      where name = $1`,
    [name, state, reason, HELD_STATES],
  );
}

/**
 * Lifts the hold: the pipeline returns to the state it was in. Returns that state, or undefined
 * when it was not held.
 */
export async function releasePipeline(
  client: PoolClient,
  name: string,
): Promise<string | undefined> {
  const { rows } = await client.query<{ state: string }>(
    `update embedsync.pipelines
        set state = coalesce(held_state, 'active'), held_state = null, state_reason = null, updated_at = now()
      where name = $1 and state = any($2::text[])
      returning state`,
    [name, HELD_STATES],
  );
  return rows[0]?.state;
}

export interface HoldFacts {
  stateReason: string | null;
  stateSince: Date | null;
}

/**
 * Why each pipeline is in its state and since when, for status (the SQL view is not ours to
 * change).
 */
export async function readStateReasons(db: Pool | PoolClient): Promise<Map<string, HoldFacts>> {
  const { rows } = await db.query<HoldFacts & { name: string }>(
    'select name, state_reason as "stateReason", state_since as "stateSince" from embedsync.pipelines',
  );
  return new Map(
    rows.map((r) => [r.name, { stateReason: r.stateReason, stateSince: r.stateSince }]),
  );
}
