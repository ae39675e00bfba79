import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { OutboxRow } from '../../src/db/outbox.js';
import { planBatches, planStamped } from '../../src/poller/plan.js';

// Ids commit out of order, so a row's enqueued_at need not follow its id: here it runs backwards.
const row = (id: number, pipeline: string, pk: string, op: OutboxRow['op'] = 'I'): OutboxRow => ({
  id,
  pipeline,
  pk,
  op,
  enqueuedAt: new Date(Date.UTC(2026, 0, 1, 0, 0, 100 - id)),
});
const size = (n: number) => () => n;

describe('planning batches from claimed outbox rows', () => {
  it('groups by pipeline and folds repeated changes of one key into one key', () => {
    const batches = planBatches(
      [row(1, 'a', '1'), row(2, 'b', '1'), row(3, 'a', '1', 'U'), row(4, 'a', '2')],
      size(10),
      'i',
    );
    const a = batches.find((b) => b.pipeline === 'a');
    assert.deepEqual(a?.keys, ['1', '2']);
    assert.deepEqual(a?.outboxIds, [1, 3, 4]);
    assert.deepEqual(batches.find((b) => b.pipeline === 'b')?.keys, ['1']);
  });

  it('splits a pipeline into batches of its batch size and accounts for every outbox row', () => {
    const rows = Array.from({ length: 25 }, (_, i) => row(i + 1, 'a', String(i % 21)));
    const batches = planBatches(rows, size(10), 'i');
    assert.deepEqual(
      batches.map((b) => b.keys.length),
      [10, 10, 1],
    );
    assert.deepEqual(
      batches.flatMap((b) => b.outboxIds).sort((x, y) => x - y),
      rows.map((r) => r.id),
    );
  });

  it('turns a TRUNCATE into a sweep batch of its own', () => {
    const batches = planBatches([row(1, 'a', '1'), row(2, 'a', '*', 'T')], size(10), 'i');
    const sweep = batches.find((b) => b.sweep);
    assert.deepEqual(sweep?.keys, []);
    assert.deepEqual(sweep?.outboxIds, [2]);
  });

  it('names the same rows the same workflow, and different rows a different one', () => {
    const first = planBatches([row(5, 'a', 'x'), row(7, 'a', 'y')], size(10), 'i')[0]?.workflowId;
    const again = planBatches([row(7, 'a', 'y'), row(5, 'a', 'x')], size(10), 'i')[0]?.workflowId;
    const more = planBatches(
      [row(5, 'a', 'x'), row(6, 'a', 'z'), row(7, 'a', 'y')],
      size(10),
      'i',
    )[0]?.workflowId;
    assert.equal(first, again);
    assert.notEqual(first, more);
    assert.match(first ?? '', /^sync:a:5-[0-9a-f]{8}$/);
  });

  it("splits a statement's row of many keys over batches, each named apart, its id counted once", () => {
    const keys = ['k1', 'k2', 'k3', 'k4', 'k5'];
    const part = (pk: string, index: number): OutboxRow => ({
      ...row(9, 'a', pk, 'U'),
      part: { index, of: 7 },
    });
    const batches = planBatches(
      [...keys.map((k, i) => part(k, i + 1)), row(10, 'a', 'k1')],
      size(2),
      'i',
    );
    assert.deepEqual(
      batches.map((b) => b.keys),
      [['k1', 'k2'], ['k3', 'k4'], ['k5']],
    );
    assert.deepEqual(
      batches.map((b) => b.outboxIds),
      [[9, 10], [9], [9]],
    );
    assert.equal(new Set(batches.map((b) => b.workflowId)).size, 3);
    // The same keys claimed again after a crash name the same workflows.
    const again = planBatches(
      [...keys.map((k, i) => part(k, i + 1)), row(10, 'a', 'k1')],
      size(2),
      'i',
    );
    assert.deepEqual(
      again.map((b) => b.workflowId),
      batches.map((b) => b.workflowId),
    );
    // The rest of the row, claimed next, is a batch of its own.
    const rest = planBatches([part('k6', 1), part('k7', 2)], size(2), 'i');
    assert.ok(!batches.some((b) => b.workflowId === rest[0]?.workflowId));
  });

  it('two databases sharing a namespace never produce the same workflow id', () => {
    const one = planBatches([row(1, 'a', 'x')], size(10), 'instance-1')[0]?.workflowId;
    const two = planBatches([row(1, 'a', 'x')], size(10), 'instance-2')[0]?.workflowId;
    assert.notEqual(one, two);
  });

  it('dates each batch by the earliest change it carries, for the commit → vector latency', () => {
    const rows = [row(1, 'a', 'x'), row(2, 'a', 'y'), row(3, 'a', 'x', 'U'), row(4, 'b', 'z')];
    const batches = planBatches(rows, size(1), 'i');
    const of = (pipeline: string, key: string) =>
      batches.find((b) => b.pipeline === pipeline && b.keys[0] === key)?.enqueuedAt;
    assert.deepEqual(of('a', 'x'), row(3, 'a', 'x').enqueuedAt);
    assert.deepEqual(of('a', 'y'), row(2, 'a', 'y').enqueuedAt);
    assert.deepEqual(of('b', 'z'), row(4, 'b', 'z').enqueuedAt);
  });
});

describe('resuming the batches an earlier claim stamped', () => {
  const stamped = (id: number, keys: string[], startedAs: string, op: OutboxRow['op'] = 'U') =>
    keys.map((pk, i) => ({
      ...row(id, 'a', pk, op),
      startedAs,
      ...(keys.length > 1 ? { part: { index: i + 1, of: keys.length } } : {}),
    }));

  it('a stamped row is its batch again, under the workflow id it was stamped with', () => {
    const batches = planStamped([
      ...stamped(7, ['x', 'y', 'z'], 'sync:a:3-aaaa'),
      ...stamped(9, ['w'], 'sync:a:5-bbbb'),
    ]);
    assert.deepEqual(
      batches.map((b) => [b.workflowId, b.keys, b.outboxIds, b.sweep]),
      [
        ['sync:a:3-aaaa', ['x', 'y', 'z'], [7], false],
        ['sync:a:5-bbbb', ['w'], [9], false],
      ],
    );
  });

  it('a stamped sweep is a sweep again', () => {
    const [sweep] = planStamped(stamped(4, ['*'], 'sync:a:1-cccc', 'T'));
    assert.deepEqual([sweep?.sweep, sweep?.keys], [true, []]);
  });

  it('rows no claim stamped are left to planBatches', () => {
    assert.deepEqual(planStamped([row(1, 'a', 'x'), row(2, 'a', 'y')]), []);
  });
});
