// Backfill: a durable, checkpointed workflow that survives a worker going away, pauses and resumes
// on signals, continues as new without gaps or repeats, and converges with writes made meanwhile.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { startBackfill } from '../../src/backfill/start.js';
import { getPipeline } from '../../src/db/catalog.js';
import { verifyPipeline } from '../../src/verify/verify.js';
import { pauseSignal, progressQuery, resumeSignal } from '../../workflows/definitions.js';
import type { backfill } from '../../workflows/index.js';
import {
  applyPipeline,
  productsPipeline,
  startHarness,
  uniqueName,
  type Harness,
} from '../helpers/harness.js';
import { waitFor } from '../helpers/wait.js';

let h: Harness;

async function freshTable(base: string, rows: number): Promise<string> {
  const name = uniqueName(base);
  await h.db.pool.query(
    `create table ${name} (id bigint primary key, name text, description text, category text)`,
  );
  // Rows exist before the pipeline: only a backfill can embed them.
  await h.db.pool.query(
    `insert into ${name} select g, 'Item ' || g, 'Description of item number ' || g, 'c' || (g % 7) from generate_series(1, $1) g`,
    [rows],
  );
  await applyPipeline(
    h,
    productsPipeline({ name, source: { table: name }, metadata: ['category'], batchSize: 250 }),
  );
  return name;
}

async function begin(
  name: string,
  extra: { maxHistoryEvents?: number; window?: number } = {},
): Promise<WorkflowHandle<typeof backfill>> {
  const p = await getPipeline(h.db.pool, name);
  // The pipeline's batch size (a walk's default is larger), so that the pages here stay small.
  return startBackfill(h.client, p, {
    taskQueue: h.taskQueue,
    instanceId: h.instanceId,
    rows: 0,
    batchSize: p.config.batchSize,
    ...extra,
  });
}

async function vectorRows(name: string): Promise<number> {
  const { rows } = await h.db.pool.query<{ n: number }>(
    `select count(distinct pk) as n from ${name}_embeddings`,
  );
  return rows[0]?.n ?? 0;
}

/** What the Web UI shows as the workflow's current details. */
async function currentDetails(handle: WorkflowHandle): Promise<string> {
  const meta = await handle.query<{ currentDetails?: string | null }>(
    '__temporal_workflow_metadata',
  );
  return meta.currentDetails ?? '';
}

/** The summary of every activity the run scheduled, by activity type, in order. */
async function activitySummaries(
  handle: WorkflowHandle,
): Promise<{ type: string; summary: string | undefined }[]> {
  const history = await handle.fetchHistory();
  return (history.events ?? []).flatMap((e) => {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (!scheduled) return [];
    const payload = e.userMetadata?.summary;
    const summary = payload ? defaultPayloadConverter.fromPayload<string>(payload) : undefined;
    return [{ type: scheduled.activityType?.name ?? '?', summary }];
  });
}

function assertEmbeddedOnce(name: string): void {
  const texts = h.provider.seen.filter((t) => t.startsWith('Product: Item '));
  const distinct = new Set(texts);
  assert.equal(
    texts.length,
    distinct.size,
    `${texts.length - distinct.size} texts of ${name} were sent to the provider twice`,
  );
}

describe('backfill', () => {
  before(async () => {
    h = await startHarness('backfill');
  });
  after(async () => h.stop());

  it('a 20,000-row backfill whose worker goes away mid-way resumes from its checkpoint without paying twice', async () => {
    const big = await freshTable('big', 20_000);
    h.provider.reset();
    const handle = await begin(big);
    const checkpointed = async () =>
      (
        await h.db.pool.query<{ n: number }>(
          `select synced_rows as n from embedsync.pipelines where name = $1`,
          [big],
        )
      ).rows[0]?.n ?? 0;
    await waitFor(
      'a few checkpoints in the catalog',
      async () => (await checkpointed()) >= 4000,
      120_000,
    );
    await h.stopWorker();
    try {
      const { rows } = await h.db.pool.query<{ synced_rows: number; backfill_cursor: string }>(
        `select synced_rows, backfill_cursor from embedsync.pipelines where name = $1`,
        [big],
      );
      assert.ok((rows[0]?.synced_rows ?? 0) >= 4000, 'the checkpoint is in the catalog');
      assert.ok(rows[0]?.backfill_cursor, 'the cursor is in the catalog');
    } finally {
      await h.startWorker(); // the later tests need it, whatever happened here
    }
    const result = await handle.result();
    assert.equal(result.processed, 20_000);
    assert.equal(await vectorRows(big), 20_000);
    assertEmbeddedOnce(big);
    const report = await verifyPipeline(h.db.pool, big);
    assert.deepEqual([report.missing, report.stale, report.orphaned], [[], [], []]);
    const state = await h.db.pool.query<{ state: string; synced_rows: number; total_rows: number }>(
      `select state, synced_rows, total_rows from embedsync.pipelines where name = $1`,
      [big],
    );
    assert.deepEqual(state.rows[0], { state: 'active', synced_rows: 20_000, total_rows: 20_000 });
  });

  it('pause holds before the next batch, resume finishes, and progress agrees with the catalog', async () => {
    const pausable = await freshTable('pausable', 6000);
    const handle = await begin(pausable, { window: 1 });
    await waitFor(
      'the backfill to get going',
      async () => (await handle.query(progressQuery)).processed > 0,
      60_000,
    );
    await handle.signal(pauseSignal);
    const paused = await waitFor('the pause to take hold', async () => {
      const p = await handle.query(progressQuery);
      return p.phase === 'paused' ? p : false;
    });
    assert.equal(paused.etaSeconds, null, 'no ETA while paused');
    assert.ok(
      paused.rowsPerSecond !== null && paused.rowsPerSecond > 0,
      'the rate of the running time so far',
    );
    assert.match(await currentDetails(handle), /^Paused at [\d,]+ of 6,000 rows \(\d+ %\)$/);
    await new Promise((r) => setTimeout(r, 1500));
    const still = await handle.query(progressQuery);
    assert.equal(still.processed, paused.processed, 'no batch may start while paused');
    assert.equal(still.etaSeconds, null);
    assert.equal(still.runningSeconds, paused.runningSeconds, 'paused time is not running time');
    assert.equal(still.rowsPerSecond, paused.rowsPerSecond, 'the rate does not decay while paused');
    const pausedFor = `paused ${paused.pausedSeconds} s, then ${still.pausedSeconds} s`;
    assert.ok(still.pausedSeconds >= paused.pausedSeconds + 1.5, pausedFor);
    assert.equal(await vectorRows(pausable), paused.processed);
    const { rows } = await h.db.pool.query<{ synced_rows: number }>(
      `select synced_rows from embedsync.pipelines where name = $1`,
      [pausable],
    );
    assert.equal(rows[0]?.synced_rows, paused.processed);
    assert.equal(still.total, 6000);
    await handle.signal(resumeSignal);
    const result = await handle.result();
    assert.equal(result.processed, 6000);
    assert.ok(
      result.pausedSeconds >= 1.5,
      `the result counts the pause apart: ${result.pausedSeconds} s`,
    );
    assert.ok(
      result.runningSeconds >= still.runningSeconds,
      'running time went on after the resume',
    );
    assert.equal(await vectorRows(pausable), 6000);
  });

  it('rows added and removed during a backfill move its total: never below processed, exact at the end', async () => {
    const growing = await freshTable('growing', 3000);
    const handle = await begin(growing, { window: 1 });
    await waitFor(
      'the backfill to get going',
      async () => (await handle.query(progressQuery)).processed > 0,
      60_000,
    );
    // Paused, the walk stands still while the table changes ahead of its cursor.
    await handle.signal(pauseSignal);
    const paused = await waitFor('the pause to take hold', async () => {
      const p = await handle.query(progressQuery);
      return p.phase === 'paused' ? p : false;
    });
    const cursor = Number(paused.cursor);
    assert.ok(
      cursor + 1100 <= 3000,
      `the pause came early enough to remove rows ahead (cursor ${cursor})`,
    );
    await h.db.pool.query(
      `insert into ${growing} select g, 'Late ' || g, 'Added meanwhile', 'c1' from generate_series(100001, 100500) g`,
    );
    await h.db.pool.query(`delete from ${growing} where id between $1 and $2`, [
      cursor + 1001,
      cursor + 1100,
    ]);
    await handle.signal(resumeSignal);

    const seen: { processed: number; total: number | null }[] = [];
    let finished = false;
    const result = handle.result().finally(() => (finished = true));
    while (!finished) {
      const p = await handle.query(progressQuery);
      seen.push({ processed: p.processed, total: p.total });
      await new Promise((r) => setTimeout(r, 100));
    }
    const { processed, total } = await result;
    assert.equal(
      processed,
      3400,
      'every row there was, the added ones included and the removed ones not',
    );
    assert.equal(total, processed);
    const over = seen.filter((p) => p.total === null || p.processed > p.total);
    assert.deepEqual(over, [], 'progress never says more rows done than in all');
    assert.ok(
      seen.some((p) => p.total === 3400 && p.processed < 3400),
      'the total was exact before the end',
    );
    const { rows } = await h.db.pool.query<{ synced_rows: number; total_rows: number }>(
      'select synced_rows, total_rows from embedsync.pipelines where name = $1',
      [growing],
    );
    assert.deepEqual(rows[0], { synced_rows: 3400, total_rows: 3400 });
  });

  it('every activity of a backfill says what it does; a second backfill pays for nothing', async () => {
    const titled = await freshTable('titled', 600);
    const first = await begin(titled, { window: 2 });
    assert.equal((await first.result()).processed, 600);
    const summaries = await activitySummaries(first);
    assert.deepEqual(
      summaries.filter((s) => !s.summary),
      [],
      'an activity without a summary',
    );
    const of = (type: string) => summaries.filter((s) => s.type === type).map((s) => s.summary);
    assert.deepEqual(of('startBackfill'), [`Count the rows of ${titled}`]);
    // A scan fills the window (2 batches of 250); the next one, once a batch has finished, finds
    // the last 100 keys and so the end.
    assert.deepEqual(of('scanKeys'), [
      `Find the next 500 keys of ${titled} from the start`,
      `Find the next 500 keys of ${titled} after 500`,
    ]);
    const checkpoints = of('checkpointBackfill');
    for (const c of checkpoints)
      assert.match(c ?? '', new RegExp(`^Checkpoint ${titled} at \\d+ rows$`));
    assert.equal(checkpoints.at(-1), `Checkpoint ${titled} at 600 rows`);
    assert.deepEqual(of('buildVectorIndex'), [
      `Build the HNSW index of ${titled}'s vector table if the walk left it out`,
    ]);
    assert.deepEqual(of('finishBackfill'), [
      `Finish the backfill of ${titled} at 600 rows; clear its staged batches`,
    ]);
    const batch = new RegExp(
      `^Read (250|100) rows of ${titled} from key \\d+, embed those that changed and write their vectors$`,
    );
    assert.equal(of('walkBatch').length, 3);
    for (const w of of('walkBatch')) assert.match(w ?? '', batch);

    h.provider.reset();
    const again = await begin(titled, { window: 2 });
    assert.equal((await again.result()).processed, 600);
    const batches = (await activitySummaries(again)).filter((s) => s.type === 'walkBatch');
    assert.equal(batches.length, 3);
    assert.equal(h.provider.texts, 0, 'nothing changed, so nothing is embedded again');
  });

  it('continues as new with the cursor carried over: no gaps, no repeats', async () => {
    const longrun = await freshTable('longrun', 5000);
    h.provider.reset();
    const handle = await begin(longrun, { maxHistoryEvents: 80, window: 2 });
    assert.equal((await handle.result()).processed, 5000);
    const runs = [];
    for await (const w of h.client.workflow.list({ query: `WorkflowId = "backfill:${longrun}"` }))
      runs.push(w.runId);
    assert.ok(runs.length >= 3, `expected several runs, got ${runs.length}`);
    assert.equal(await vectorRows(longrun), 5000);
    assertEmbeddedOnce(longrun);
  });

  it('cancelling a backfill leaves the pipeline active and nothing staged', async () => {
    const cancelled = await freshTable('cancelled', 6000);
    const handle = await begin(cancelled, { window: 1 });
    await waitFor(
      'the backfill to get going',
      async () => (await handle.query(progressQuery)).processed > 0,
      60_000,
    );
    await handle.cancel();
    await assert.rejects(handle.result(), /cancel/i);
    const { rows } = await h.db.pool.query<{ state: string }>(
      `select state from embedsync.pipelines where name = $1`,
      [cancelled],
    );
    assert.equal(rows[0]?.state, 'active');
    const staged = await h.db.pool.query(
      `select 1 from embedsync.staged_rows where starts_with(batch_id, $1)`,
      [`backfill:${cancelled}:`],
    );
    assert.equal(staged.rowCount, 0);
  });

  it('inserts, updates and deletes made during a backfill converge', async () => {
    const busy = await freshTable('busy', 8000);
    const handle = await begin(busy, { window: 2 });
    for (let i = 0; i < 20; i += 1) {
      await h.db.pool.query(
        `insert into ${busy} values (${100_000 + i}, 'New ${i}', 'Added during the backfill', 'c1')`,
      );
      await h.db.pool.query(
        `update ${busy} set description = 'Changed during the backfill ${i}' where id = ${1 + i * 397}`,
      );
      await h.db.pool.query(`delete from ${busy} where id = ${7000 - i * 13}`);
    }
    await handle.result();
    await waitFor(
      'convergence',
      async () => {
        const outbox = await h.db.pool.query('select 1 from embedsync.outbox limit 1');
        if (outbox.rowCount) return false;
        const r = await verifyPipeline(h.db.pool, busy);
        return r.missing.length + r.stale.length + r.orphaned.length === 0;
      },
      60_000,
    );
  });
});
