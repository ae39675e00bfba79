// The statement that applies a state event does in the database what the pure rule says, for every
// standing and every event: the same next state, the hold kept, the reason set or cleared, and
// nothing changed where the event is refused.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import {
  ALL_STANDINGS,
  changeState,
  nextState,
  StateTransitionError,
  type StateAndHold,
  type StateEvent,
} from '../../src/db/pipeline-state.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let db: TestDatabase;
const name = 'machine';

const EVENTS: StateEvent[] = [
  { name: 'backfillStarted' },
  { name: 'backfillFinished' },
  { name: 'reembedDue' },
  { name: 'reembedWithdrawn' },
  { name: 'reembedStarted' },
  { name: 'reembedFinished' },
  { name: 'reembedAbandoned' },
  { name: 'held', hold: 'schema_changed', reason: 'column "body" of public.t is gone' },
  { name: 'held', hold: 'source_missing', reason: 'table public.t is gone' },
  { name: 'released' },
];

interface Row {
  state: string;
  heldState: string | null;
  stateReason: string | null;
}

// Fixtures are written directly: the statement under test is the only other writer.
async function standAt(s: StateAndHold): Promise<void> {
  await db.pool.query(
    'update embedsync.pipelines set state = $2, held_state = $3, state_reason = $4 where name = $1',
    [name, s.state, s.heldState, s.heldState ? 'held before' : null],
  );
}

async function row(): Promise<Row> {
  const { rows } = await db.pool.query<Row>(
    `select state, held_state as "heldState", state_reason as "stateReason"
       from embedsync.pipelines where name = $1`,
    [name],
  );
  return rows[0] ?? assert.fail('no pipeline row');
}

function expected(from: StateAndHold, event: StateEvent): StateAndHold | undefined {
  try {
    return nextState(name, from, event);
  } catch (err) {
    if (err instanceof StateTransitionError) return undefined;
    throw err;
  }
}

describe('pipeline state changes in the database', () => {
  before(async () => {
    db = await createTestDatabase('pipeline-state');
    await db.pool.query(
      `insert into embedsync.pipelines
         (name, source_schema, source_table, primary_key, vector_schema, vector_table, config)
       values ($1, 'public', 't', '[]', 'public', 't_embeddings', '{}')`,
      [name],
    );
  });
  after(async () => db.drop());

  it('a new pipeline starts active', async () => {
    assert.equal((await row()).state, 'active');
  });

  it('every event moves every standing as the pure rule says, or leaves it as it was', async () => {
    for (const from of ALL_STANDINGS)
      for (const event of EVENTS) {
        await standAt(from);
        const before = await row();
        const to = expected(from, event);
        const returned = await changeState(db.pool, name, event);
        const after = await row();
        const what = `${from.state}/${from.heldState ?? '-'} + ${event.name}`;
        if (!to) {
          assert.equal(returned, undefined, what);
          assert.deepEqual(after, before, what);
          continue;
        }
        assert.deepEqual(returned, to, what);
        const reason =
          event.name === 'held' ? event.reason : to.heldState === null ? null : 'held before';
        assert.deepEqual(
          after,
          { state: to.state, heldState: to.heldState, stateReason: reason },
          what,
        );
      }
  });

  it('an event that must apply and does not names the pipeline, its state and the event', async () => {
    await standAt({ state: 'schema_changed', heldState: 'backfilling' });
    await assert.rejects(
      changeState(db.pool, name, { name: 'reembedFinished' }, { required: true }),
      (err: unknown) =>
        err instanceof StateTransitionError &&
        err.message ===
          'pipeline "machine" is schema_changed (held over backfilling): reembedFinished does not apply',
    );
  });

  it('state_since moves when the state does, not when only the reason of a hold changes', async () => {
    await standAt({ state: 'active', heldState: null });
    const since = async () =>
      (
        await db.pool.query<{ t: Date }>(
          'select state_since as t from embedsync.pipelines where name = $1',
          [name],
        )
      ).rows[0]?.t.getTime();
    await changeState(db.pool, name, { name: 'held', hold: 'schema_changed', reason: 'one' });
    const held = await since();
    await changeState(db.pool, name, { name: 'held', hold: 'schema_changed', reason: 'two' });
    assert.equal(await since(), held);
    assert.equal((await row()).stateReason, 'two');
  });

  it('migration 000011 renames the re-embed states of pipelines in flight and keeps their state_since', async () => {
    // The catalog as it was before: the old names, no closed set.
    await db.pool.query(
      `alter table embedsync.pipelines drop constraint pipelines_state_known,
         drop constraint pipelines_held_state_known`,
    );
    await db.pool.query(
      `update embedsync.pipelines set state = 'schema_changed', held_state = 'swapping',
         state_since = '2030-01-01T00:00:00Z' where name = $1`,
      [name],
    );
    const sql = await readFile(
      new URL('../../sql/000011_reembed_states.sql', import.meta.url),
      'utf8',
    );
    await db.pool.query(sql);
    const { rows } = await db.pool.query<{ state: string; held: string; since: Date }>(
      'select state, held_state as held, state_since as since from embedsync.pipelines where name = $1',
      [name],
    );
    assert.deepEqual(rows[0], {
      state: 'schema_changed',
      held: 'reembedding',
      since: new Date('2030-01-01T00:00:00Z'),
    });
  });

  it('the catalog refuses a state outside the closed set', async () => {
    await assert.rejects(
      db.pool.query(`update embedsync.pipelines set state = 'swapping' where name = $1`, [name]),
      /pipelines_state_known/,
    );
  });
});
