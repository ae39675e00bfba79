import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ALL_STANDINGS,
  BASE_STATES,
  HELD_STATES,
  isHeld,
  nextState,
  StateTransitionError,
  type StateAndHold,
  type StateEvent,
} from '../../src/db/pipeline-state.js';

// A standing as the table writes it: the state, and after a slash the state a hold keeps.
const show = (s: StateAndHold): string => (s.heldState ? `${s.state}/${s.heldState}` : s.state);

const EVENTS: [string, StateEvent][] = [
  ['backfillStarted', { name: 'backfillStarted' }],
  ['backfillFinished', { name: 'backfillFinished' }],
  ['reembedDue', { name: 'reembedDue' }],
  ['reembedWithdrawn', { name: 'reembedWithdrawn' }],
  ['reembedStarted', { name: 'reembedStarted' }],
  ['reembedFinished', { name: 'reembedFinished' }],
  ['reembedAbandoned', { name: 'reembedAbandoned' }],
  ['held schema_changed', { name: 'held', hold: 'schema_changed', reason: 'column gone' }],
  ['held source_missing', { name: 'held', hold: 'source_missing', reason: 'table gone' }],
  ['released', { name: 'released' }],
];

// Every standing × every event: where it goes, or '-' where the event is refused (nothing moves).
// prettier-ignore
const TABLE: Record<string, string[]> = {
  //                                   backfillStarted backfillFinished         reembedDue                        reembedWithdrawn         reembedStarted reembedFinished reembedAbandoned                  held schema_changed               held source_missing               released
  'active':                          ['backfilling',  '-',                     'reembed_pending',                '-',                     'reembedding', '-',            '-',                              'schema_changed/active',          'source_missing/active',          '-'],
  'backfilling':                     ['-',            'active',                'reembed_pending',                '-',                     'reembedding', '-',            '-',                              'schema_changed/backfilling',     'source_missing/backfilling',     '-'],
  'reembed_pending':                 ['-',            '-',                     'reembed_pending',                'active',                'reembedding', '-',            'reembed_pending',                'schema_changed/reembed_pending', 'source_missing/reembed_pending', '-'],
  'reembedding':                     ['-',            '-',                     '-',                              '-',                     'reembedding', 'active',       'reembed_pending',                'schema_changed/reembedding',     'source_missing/reembedding',     '-'],
  'schema_changed/active':           ['-',            '-',                     'schema_changed/reembed_pending', '-',                     'reembedding', '-',            '-',                              'schema_changed/active',          'source_missing/active',          'active'],
  'schema_changed/backfilling':      ['-',            'schema_changed/active', 'schema_changed/reembed_pending', '-',                     'reembedding', '-',            '-',                              'schema_changed/backfilling',     'source_missing/backfilling',     'backfilling'],
  'schema_changed/reembed_pending':  ['-',            '-',                     'schema_changed/reembed_pending', 'schema_changed/active', 'reembedding', '-',            'schema_changed/reembed_pending', 'schema_changed/reembed_pending', 'source_missing/reembed_pending', 'reembed_pending'],
  'schema_changed/reembedding':      ['-',            '-',                     '-',                              '-',                     'reembedding', '-',            'schema_changed/reembed_pending', 'schema_changed/reembedding',     'source_missing/reembedding',     'reembedding'],
  'source_missing/active':           ['-',            '-',                     'source_missing/reembed_pending', '-',                     'reembedding', '-',            '-',                              'schema_changed/active',          'source_missing/active',          'active'],
  'source_missing/backfilling':      ['-',            'source_missing/active', 'source_missing/reembed_pending', '-',                     'reembedding', '-',            '-',                              'schema_changed/backfilling',     'source_missing/backfilling',     'backfilling'],
  'source_missing/reembed_pending':  ['-',            '-',                     'source_missing/reembed_pending', 'source_missing/active', 'reembedding', '-',            'source_missing/reembed_pending', 'schema_changed/reembed_pending', 'source_missing/reembed_pending', 'reembed_pending'],
  'source_missing/reembedding':      ['-',            '-',                     '-',                              '-',                     'reembedding', '-',            'source_missing/reembed_pending', 'schema_changed/reembedding',     'source_missing/reembedding',     'reembedding'],
};

function outcome(from: StateAndHold, event: StateEvent): string {
  try {
    return show(nextState('products', from, event));
  } catch (err) {
    if (err instanceof StateTransitionError) return '-';
    throw err;
  }
}

describe('pipeline state machine', () => {
  it('the table covers every standing a pipeline can be in, each once', () => {
    assert.deepEqual(Object.keys(TABLE).sort(), ALL_STANDINGS.map(show).sort());
    assert.equal(ALL_STANDINGS.length, BASE_STATES.length * (1 + HELD_STATES.length));
  });

  for (const from of ALL_STANDINGS) {
    it(`from ${show(from)}, every event goes where the table says or is refused`, () => {
      const expected = TABLE[show(from)] ?? assert.fail(`no row for ${show(from)}`);
      assert.deepEqual(
        EVENTS.map(([label, event]) => `${label} → ${outcome(from, event)}`),
        EVENTS.map(([label], i) => `${label} → ${expected[i]}`),
      );
    });
  }

  it('every move ends in a standing a pipeline can be in: held exactly when a hold keeps a state', () => {
    const valid = new Set(ALL_STANDINGS.map(show));
    for (const from of ALL_STANDINGS)
      for (const [label, event] of EVENTS) {
        const to = outcome(from, event);
        if (to !== '-') assert.ok(valid.has(to), `${show(from)} + ${label} → ${to}`);
      }
  });

  it('a hold keeps the state it holds, and releasing it returns there, after any event underneath', () => {
    for (const base of BASE_STATES)
      for (const hold of HELD_STATES) {
        const held = nextState(
          'p',
          { state: base, heldState: null },
          { name: 'held', hold, reason: 'r' },
        );
        assert.deepEqual(held, { state: hold, heldState: base });
        // A second hold (the table also disappeared) changes why, not what is kept.
        const other = HELD_STATES.find((h) => h !== hold) ?? hold;
        const again = nextState('p', held, { name: 'held', hold: other, reason: 'r2' });
        assert.deepEqual(again, { state: other, heldState: base });
        for (const [, event] of EVENTS) {
          if (event.name === 'held' || event.name === 'released' || event.name === 'reembedStarted')
            continue;
          const underneath = outcome({ state: base, heldState: null }, event);
          const moved = outcome(held, event);
          if (moved === '-') continue;
          assert.ok(isHeld(moved.split('/')[0] ?? ''), `${event.name} lifted a hold`);
          // What the event does under a hold is what it does without one.
          assert.equal(moved, `${hold}/${underneath}`);
          const after = nextState('p', held, event);
          assert.equal(show(nextState('p', after, { name: 'released' })), underneath);
        }
      }
  });

  it('a re-embed starting lifts a hold: it is the fix for columns only the live generation reads', () => {
    for (const from of ALL_STANDINGS)
      assert.deepEqual(nextState('p', from, { name: 'reembedStarted' }), {
        state: 'reembedding',
        heldState: null,
      });
  });

  it('a refused event names the pipeline, the state it is in and the event', () => {
    const from: StateAndHold = { state: 'schema_changed', heldState: 'backfilling' };
    assert.throws(
      () => nextState('products', from, { name: 'reembedFinished' }),
      (err: unknown) => {
        assert.ok(err instanceof StateTransitionError);
        assert.equal(err.pipeline, 'products');
        assert.deepEqual(err.from, from);
        assert.equal(err.event, 'reembedFinished');
        assert.equal(
          err.message,
          'pipeline "products" is schema_changed (held over backfilling): reembedFinished does not apply',
        );
        return true;
      },
    );
  });
});
