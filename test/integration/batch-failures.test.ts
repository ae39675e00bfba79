// The record of a batch's failing stage counts failures in a row: afresh for a new run of the stage,
// on for the same workflow run's stage when a sync's stage goes on from its local attempts to the
// task queue, whose attempts start at 1 again.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { recordStageFailure } from '../../src/db/batch-failures.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { applyPipeline, PRODUCTS_TABLE, productsPipeline } from '../helpers/harness.js';

let db: TestDatabase;

const failure = (batchId: string, runId: string, attempt: number) => ({
  pipeline: 'products',
  batchId,
  stage: 'write',
  workflowId: batchId,
  runId,
  attempt,
  errorClass: 'DatabaseError',
  error: 'the write is refused',
  retryable: true,
});

async function attempts(batchId: string): Promise<number | undefined> {
  const { rows } = await db.pool.query<{ attempts: number }>(
    'select attempts from embedsync.batch_failures where batch_id = $1',
    [batchId],
  );
  return rows[0]?.attempts;
}

describe('the record of a failing stage', () => {
  before(async () => {
    db = await createTestDatabase('batch_failures');
    await db.pool.query(PRODUCTS_TABLE);
    await applyPipeline({ db }, productsPipeline());
  });
  after(async () => db.drop());

  it('keeps counting when the same run fails the stage again from a first attempt, and says when it became stuck', async () => {
    const stuck: boolean[] = [];
    for (const attempt of [1, 2, 3, 1, 2])
      stuck.push(await recordStageFailure(db.pool, failure('sync:a', 'run-1', attempt)));
    assert.equal(await attempts('sync:a'), 5);
    assert.deepEqual(stuck, [false, false, true, false, false]);
  });

  it('counts afresh for a new run of the stage', async () => {
    for (const attempt of [1, 2])
      await recordStageFailure(db.pool, failure('sync:b', 'run-1', attempt));
    await recordStageFailure(db.pool, failure('sync:b', 'run-2', 1));
    assert.equal(await attempts('sync:b'), 1);
  });
});
