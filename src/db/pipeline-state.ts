// A pipeline's state machine, the one owner of embedsync.pipelines' state, held_state and
// state_reason (state_since follows by trigger, sql/000007): the states, a closed set; the events
// that move a pipeline, a closed set; the pure rule saying where each event takes each state; and
// the one statement that applies it, as a compare-and-set on the state the pipeline is in.
import type { Pool, PoolClient } from './pool.js';

/** What a pipeline does: follow changes, and maybe walk its whole table. */
export const BASE_STATES = ['active', 'backfilling', 'reembed_pending', 'reembedding'] as const;
export type BaseState = (typeof BASE_STATES)[number];

/**
 * Held: the source table lost or changed a column the pipeline reads, or is gone. A held pipeline's
 * changes wait in the outbox (the poller starts no sync for it) until its table is in shape again.
 */
export const HELD_STATES = ['schema_changed', 'source_missing'] as const;
export type HeldState = (typeof HELD_STATES)[number];

export const PIPELINE_STATES = [...BASE_STATES, ...HELD_STATES] as const;
export type PipelineState = (typeof PIPELINE_STATES)[number];

/** A new pipeline's state (the column's default). */
export const INITIAL_STATE: BaseState = 'active';

export const isHeld = (state: string): state is HeldState =>
  (HELD_STATES as readonly string[]).includes(state);

/**
 * Where a pipeline stands: its state and, while held, the state it returns to once the hold ends
 * (held_state, which a hold keeps and the other events move).
 */
export type StateAndHold =
  { state: BaseState; heldState: null } | { state: HeldState; heldState: BaseState };

export type StateEvent =
  /** A backfill counted the source: an active pipeline is backfilling. */
  | { name: 'backfillStarted' }
  /** The backfill ended (completed or cancelled). */
  | { name: 'backfillFinished' }
  /** Apply: the embedding config changed; the new one waits as the pending generation. */
  | { name: 'reembedDue' }
  /** Apply: the config no longer needs a re-embed; the pending generation is dropped. */
  | { name: 'reembedWithdrawn' }
  /**
   * A re-embed builds the pending generation; from a hold too, which it lifts: it is the fix for
   * columns only the live generation reads.
   */
  | { name: 'reembedStarted' }
  /** The pending generation was swapped in: it is the live one. */
  | { name: 'reembedFinished' }
  /** The re-embed was cancelled: the config change stays pending. */
  | { name: 'reembedAbandoned' }
  /** The schema check holds the pipeline (or changes why); `reason`: what changed, and the fix. */
  | { name: 'held'; hold: HeldState; reason: string }
  /** The source table is in shape again: back to the state the hold kept. */
  | { name: 'released' };
export type StateEventName = StateEvent['name'];

export const STATE_EVENTS: readonly StateEventName[] = [
  'backfillStarted',
  'backfillFinished',
  'reembedDue',
  'reembedWithdrawn',
  'reembedStarted',
  'reembedFinished',
  'reembedAbandoned',
  'held',
  'released',
];

/** Every state a pipeline can stand in: each base state, and each hold over each base state. */
export const ALL_STANDINGS: readonly StateAndHold[] = [
  ...BASE_STATES.map((state) => ({ state, heldState: null })),
  ...HELD_STATES.flatMap((state) => BASE_STATES.map((heldState) => ({ state, heldState }))),
];

export const describeState = (s: StateAndHold): string =>
  s.heldState === null ? s.state : `${s.state} (held over ${s.heldState})`;

/** An event the pipeline's state does not allow: nothing changes. */
export class StateTransitionError extends Error {
  constructor(
    readonly pipeline: string,
    readonly from: StateAndHold | string,
    readonly event: StateEventName,
  ) {
    const state = typeof from === 'string' ? from : describeState(from);
    super(`pipeline "${pipeline}" is ${state}: ${event} does not apply`);
    this.name = 'StateTransitionError';
  }
}

/** Where an event takes a base state; undefined where it does not apply. */
function nextBase(state: BaseState, event: StateEventName): BaseState | undefined {
  switch (event) {
    case 'backfillStarted':
      // A pending or running re-embed stays what it is: generations depend on it.
      return state === 'active' ? 'backfilling' : undefined;
    case 'backfillFinished':
      return state === 'backfilling' ? 'active' : undefined;
    case 'reembedDue':
      // A running re-embed of the same change is left running (apply refuses another change).
      return state === 'reembedding' ? undefined : 'reembed_pending';
    case 'reembedWithdrawn':
      return state === 'reembed_pending' ? 'active' : undefined;
    case 'reembedStarted':
      return 'reembedding';
    case 'reembedFinished':
      return state === 'reembedding' ? 'active' : undefined;
    case 'reembedAbandoned':
      return state === 'reembedding' || state === 'reembed_pending' ? 'reembed_pending' : undefined;
    case 'held':
    case 'released':
      return undefined;
  }
}

/**
 * The pure rule: where `event` takes a pipeline standing at `from`. A hold keeps the state it holds
 * and other events move that one underneath it, except a re-embed starting, which lifts the hold.
 * Throws StateTransitionError where the event does not apply.
 */
export function nextState(pipeline: string, from: StateAndHold, event: StateEvent): StateAndHold {
  const refuse = (): never => {
    throw new StateTransitionError(pipeline, from, event.name);
  };
  if (event.name === 'held') {
    return { state: event.hold, heldState: from.heldState === null ? from.state : from.heldState };
  }
  if (event.name === 'released') {
    return from.heldState === null ? refuse() : { state: from.heldState, heldState: null };
  }
  if (event.name === 'reembedStarted') return { state: 'reembedding', heldState: null };
  if (from.heldState === null) {
    const state = nextBase(from.state, event.name) ?? refuse();
    return { state, heldState: null };
  }
  // A held pipeline's backfill waits for the hold: only its end is recorded underneath.
  if (event.name === 'backfillStarted') return refuse();
  // A re-embed cannot swap in while the pipeline is held: the cut-over's schema check fails first.
  if (event.name === 'reembedFinished') return refuse();
  const heldState = nextBase(from.heldState, event.name) ?? refuse();
  return { state: from.state, heldState };
}

/** Every move `event` allows, as the rows the statement below joins on. */
function allowedMoves(event: StateEvent) {
  return ALL_STANDINGS.flatMap((from) => {
    try {
      const to = nextState('', from, event);
      return [
        {
          from_state: from.state,
          from_held: from.heldState,
          to_state: to.state,
          to_held: to.heldState,
        },
      ];
    } catch (err) {
      if (err instanceof StateTransitionError) return [];
      throw err;
    }
  });
}

// Compare-and-set: the row moves only from a state the event allows, atomically with the check (a
// concurrent change is re-checked against the row as it is then). Outside a hold held_state is not
// compared; a hold recorded without one holds 'active'. The reason is the hold's, or nothing.
const CHANGE_STATE_SQL = `
  update embedsync.pipelines p
     set state = m.to_state, held_state = m.to_held,
         state_reason = case when $3::text is not null then $3::text
                             when m.to_held is null then null
                             else p.state_reason end,
         updated_at = now()
    from jsonb_to_recordset($2::jsonb) as m(from_state text, from_held text, to_state text, to_held text)
   where p.name = $1 and p.state = m.from_state
     and (m.from_held is null or coalesce(p.held_state, 'active') = m.from_held)
  returning p.state, p.held_state as "heldState"`;

export interface ChangeOptions {
  /** Throw StateTransitionError when the event does not apply (default: leave the pipeline be). */
  required?: boolean;
}

/**
 * Applies `event` to the pipeline. Returns where it now stands, or undefined when the event did not
 * apply to the state it was in (or there is no such pipeline): then nothing changed.
 */
export async function changeState(
  db: Pool | PoolClient,
  pipeline: string,
  event: StateEvent,
  { required = false }: ChangeOptions = {},
): Promise<StateAndHold | undefined> {
  const reason = event.name === 'held' ? event.reason : null;
  const { rows } = await db.query<StateAndHold>(CHANGE_STATE_SQL, [
    pipeline,
    JSON.stringify(allowedMoves(event)),
    reason,
  ]);
  const to = rows[0];
  if (!to && required) {
    const { rows: now } = await db.query<StateAndHold>(
      'select state, held_state as "heldState" from embedsync.pipelines where name = $1',
      [pipeline],
    );
    throw new StateTransitionError(pipeline, now[0] ?? 'not in the catalog', event.name);
  }
  return to;
}

/**
 * Serialises applies, removes and schema checks: each changes a pipeline's capture and catalog row
 * together.
 */
export const CATALOG_LOCK = 7_146_221_032;

/** The state a pipeline is in, or returns to once its hold is lifted. */
export async function baseState(
  db: Pool | PoolClient,
  name: string,
): Promise<BaseState | undefined> {
  // As the state statement sees it: a hold recorded without the state it keeps holds 'active'.
  const { rows } = await db.query<{ state: BaseState }>(
    `select case when state = any($2::text[]) then coalesce(held_state, 'active') else state end as state
       from embedsync.pipelines where name = $1`,
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
