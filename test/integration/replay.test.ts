// Workflow determinism: histories recorded from real runs replay cleanly against today's workflow
// code. The committed fixtures (protobuf-encoded) are histories of earlier versions: a change that
// breaks them breaks the workflows still running in production when it is deployed.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { WorkflowExecutionInfo } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import proto from '@temporalio/proto';

const { History } = proto.temporal.api.history.v1;
type HistoryEvent = proto.temporal.api.history.v1.IHistoryEvent;
import { Worker } from '@temporalio/worker';
import { startBackfill } from '../../src/backfill/start.js';
import { getPipeline } from '../../src/db/catalog.js';
import { startReembed } from '../../src/reembed/start.js';
import { workflowBundle } from '../../src/worker/bundle.js';
import { pauseSignal, progressQuery, resumeSignal } from '../../workflows/definitions.js';
import {
  applyPipeline,
  PRODUCTS_TABLE,
  productsPipeline,
  startHarness,
  uniqueName,
  type Harness,
} from '../helpers/harness.js';
import { waitFor } from '../helpers/wait.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/histories/', import.meta.url));
let h: Harness;

async function replayAll(histories: { workflowId: string; history: unknown }[]): Promise<string[]> {
  const bundle = await workflowBundle(path.join(os.tmpdir(), 'embedsync-test-cache'));
  const failures: string[] = [];
  for await (const result of Worker.runReplayHistories({ workflowBundle: bundle }, histories)) {
    if (result.error) failures.push(`${result.workflowId}: ${String(result.error)}`);
  }
  return failures;
}

describe('workflow determinism', () => {
  before(async () => {
    h = await startHarness('replay');
    await h.db.pool.query(PRODUCTS_TABLE);
    await applyPipeline(h, productsPipeline());
  });
  after(async () => h.stop());

  it('histories of syncs that inserted, updated, deleted and truncated replay without nondeterminism', async () => {
    const drained = () =>
      waitFor(
        'the outbox to drain',
        async () =>
          (await h.db.pool.query('select 1 from embedsync.outbox limit 1')).rowCount === 0,
      );
    // One statement at a time, so that each becomes a sync of its own.
    for (const sql of [
      `insert into products (name, description) select 'p' || g, 'd' || g from generate_series(1, 30) g`,
      `update products set description = 'changed' where id % 2 = 0`,
      'delete from products where id % 5 = 0',
      'truncate products',
    ]) {
      await h.db.pool.query(sql);
      await drained();
    }

    const query = `TaskQueue = "${h.taskQueue}"`;
    const runs = await waitFor('the syncs to complete', async () => {
      const all: WorkflowExecutionInfo[] = [];
      for await (const w of h.client.workflow.list({ query })) all.push(w);
      return all.length >= 4 && all.every((w) => w.status.name === 'COMPLETED') ? all : false;
    });
    const histories = await Promise.all(
      runs.map(async (w) => ({
        workflowId: w.workflowId,
        history: await h.client.workflow.getHandle(w.workflowId, w.runId).fetchHistory(),
      })),
    );
    assert.deepEqual(await replayAll(histories), []);

    // Recording fresh fixtures is a deliberate act: EMBEDSYNC_RECORD_HISTORIES=1 npm test.
    // sync-embed.history.bin is a sync from before its stages ran as local activities; it stays.
    // sync-sinks.history.bin is a sync that delivered to its sink on the sinks' task queue, from
    // before a delivery's first attempt ran as a local activity; it stays too.
    if (process.env.EMBEDSYNC_RECORD_HISTORIES === '1') {
      const localEmbed = (e: HistoryEvent): boolean => {
        const marker = e.markerRecordedEventAttributes;
        const data = marker?.markerName === 'core_local_activity' && marker.details?.data;
        const payload = data ? data.payloads?.[0] : undefined;
        if (!payload) return false;
        const { activity_type } = defaultPayloadConverter.fromPayload<{ activity_type: string }>(
          payload,
        );
        return activity_type === 'embedBatch';
      };
      const sample = histories.find((x) => x.history.events?.some(localEmbed));
      // The syncs of the four statements may overlap (the truncate's before the insert's fetch):
      // record again if none embedded.
      assert.ok(sample, 'no history with a local embedBatch to record');
      writeFileSync(
        path.join(FIXTURES, 'sync-local.history.bin'),
        History.encode(sample.history).finish(),
      );
    }
  });

  it('histories of a backfill that paused, resumed and continued as new replay without nondeterminism', async () => {
    const name = uniqueName('replayed');
    await h.db.pool.query(
      `create table ${name} (id bigint primary key, name text, description text, category text)`,
    );
    await h.db.pool.query(
      `insert into ${name} select g, 'Item ' || g, 'Description ' || g, 'c' || (g % 3) from generate_series(1, 2000) g`,
    );
    await applyPipeline(
      h,
      productsPipeline({ name, source: { table: name }, metadata: ['category'] }),
    );
    const p = await getPipeline(h.db.pool, name);
    const handle = await startBackfill(h.client, p, {
      taskQueue: h.taskQueue,
      instanceId: h.instanceId,
      rows: 2000,
      batchSize: 100,
      window: 2,
      maxHistoryEvents: 150,
    });
    await waitFor(
      'the backfill to get going',
      async () => (await handle.query(progressQuery)).processed > 0,
      60_000,
    );
    await handle.signal(pauseSignal);
    await waitFor(
      'the pause to take hold',
      async () => (await handle.query(progressQuery)).phase === 'paused',
    );
    await handle.signal(resumeSignal);
    assert.equal((await handle.result()).processed, 2000);

    const runs: WorkflowExecutionInfo[] = [];
    for await (const w of h.client.workflow.list({ query: `WorkflowId = "${handle.workflowId}"` }))
      runs.push(w);
    assert.ok(
      runs.length >= 2,
      `expected the backfill to continue as new, got ${runs.length} run(s)`,
    );
    const fetch = async (w: WorkflowExecutionInfo) => ({
      workflowId: w.workflowId,
      history: await h.client.workflow.getHandle(w.workflowId, w.runId).fetchHistory(),
    });
    const histories = await Promise.all(runs.map(fetch));
    assert.deepEqual(await replayAll(histories), []);

    if (process.env.EMBEDSYNC_RECORD_HISTORIES === '1') {
      // The run that paused and resumed, and the last run (carried state, finish): the walk's two
      // sides.
      type Recorded = (typeof histories)[number];
      const signalled = (x: Recorded) =>
        x.history.events?.some(
          (e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'pause',
        );
      const finished = (x: Recorded) =>
        x.history.events?.some(
          (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'finishBackfill',
        );
      const paused = histories.find(signalled);
      const last = histories.find(finished);
      assert.ok(paused && last, 'no paused or no finishing run to record');
      writeFileSync(
        path.join(FIXTURES, 'backfill-pause.history.bin'),
        History.encode(paused.history).finish(),
      );
      if (last !== paused) {
        writeFileSync(
          path.join(FIXTURES, 'backfill-finish.history.bin'),
          History.encode(last.history).finish(),
        );
      }
    }
  });

  it('the history of a re-embed, from its first step to its swap and finish, replays without nondeterminism', async () => {
    const name = uniqueName('reembedded');
    await h.db.pool.query(
      `create table ${name} (id bigint primary key, name text, description text)`,
    );
    await h.db.pool.query(
      `insert into ${name} select g, 'Item ' || g, 'Description ' || g from generate_series(1, 300) g`,
    );
    const v1 = productsPipeline({ name, source: { table: name }, metadata: [] });
    await applyPipeline(h, v1);
    await applyPipeline(h, { ...v1, embedding: { ...v1.embedding, dimensions: 32 } });
    const p = await getPipeline(h.db.pool, name);
    const handle = await startReembed(h.client, p, {
      taskQueue: h.taskQueue,
      instanceId: h.instanceId,
      rows: 300,
      batchSize: 100,
      window: 2,
    });
    assert.equal((await handle.result()).processed, 300);
    const history = await handle.fetchHistory();
    assert.deepEqual(await replayAll([{ workflowId: handle.workflowId, history }]), []);
    if (process.env.EMBEDSYNC_RECORD_HISTORIES === '1') {
      writeFileSync(path.join(FIXTURES, 'reembed.history.bin'), History.encode(history).finish());
    }
  });

  it('the committed histories of earlier versions still replay', async () => {
    const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.history.bin'));
    assert.ok(files.length > 0, 'no committed histories to replay');
    const histories = files.map((f) => ({
      workflowId: f,
      history: History.decode(readFileSync(path.join(FIXTURES, f))),
    }));
    assert.deepEqual(await replayAll(histories), []);
  });
});
