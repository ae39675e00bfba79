// Temporal is SIGKILLed while users keep writing and batches are in flight. While it is down the
// poller must keep every change in the outbox; once it is back on the same database, all converges.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTestDatabase } from '../helpers/db.js';
import {
  assertSyncWorkflowsCompleted,
  RECOVERY_MS,
  waitForConvergence,
} from './helpers/converge.js';
import { startPoller, startWorker, uniqueTaskQueue, type Deployment } from './helpers/embedsync.js';
import { startWriteLoad } from './helpers/load.js';
import { embedLogFile, paidPerDistinct } from './helpers/paid.js';
import { inScene } from './helpers/scene.js';
import {
  createProductsPipeline,
  leftOutbox,
  queuedChanges,
  temporalClient,
} from './helpers/setup.js';
import { startTemporalServer } from './helpers/temporal-server.js';

/**
 * Longer than the Temporal client keeps retrying a workflow start, so that the poller sees starts
 * fail.
 */
const OUTAGE_MS = 25_000;

describe('Temporal killed with SIGKILL', () => {
  it('Temporal killed mid-stream loses no change: the outbox holds them until it is back, then all converges', (t) =>
    inScene(async (scene) => {
      const temporal = await startTemporalServer(scene);
      const db = await createTestDatabase('chaos_temporal');
      scene.onCleanup(() => db.drop());
      await createProductsPipeline(db.pool);
      const deployment: Deployment = {
        databaseUrl: db.url,
        temporalAddress: temporal.address,
        taskQueue: uniqueTaskQueue('temporal'),
        embedLog: await embedLogFile(scene, 'temporal'),
      };
      const worker = await startWorker(scene, deployment);
      const poller = await startPoller(scene, deployment);

      const load = startWriteLoad(db.url, 'temporal-chaos');
      scene.onCleanup(async () => void (await load.stop()));
      await load.progressed(40);
      await temporal.kill();
      const killedAt = Date.now();

      // A claim that was starting workflows at the kill waits for the client, which retries a start
      // for ~20 s before it gives up; the claim then rolls back. Nothing may leave the outbox
      // meanwhile.
      await sleep(1000);
      const waiting = await queuedChanges(db.pool);
      await sleep(OUTAGE_MS - 1000);
      assert.deepEqual(
        await leftOutbox(db.pool, waiting),
        [],
        'changes left the outbox while Temporal was down',
      );
      await poller.waitForLine(/"msg":"poll failed/, 1000);
      const queued = (await queuedChanges(db.pool)).length;

      await temporal.start();
      t.diagnostic(
        `Temporal was down for ${((Date.now() - killedAt) / 1000).toFixed(1)} s; meanwhile the outbox grew from ${waiting.length} to ${queued} changes`,
      );
      const restartedAt = Date.now();
      await load.progressed(40);
      const written = await load.stop();
      const state = await waitForConvergence(db.pool, RECOVERY_MS);
      t.diagnostic(
        `${state.rows} rows converged ${((Date.now() - restartedAt) / 1000).toFixed(1)} s after Temporal was back`,
      );
      const client = await temporalClient(scene, temporal.address);
      await assertSyncWorkflowsCompleted(client, deployment.taskQueue);
      assert.ok(worker.running && poller.running, 'the worker and the poller outlived the outage');
      assert.equal(written.failed, 0);

      // The worker lived, so no reply was lost: a workflow task run again after the outage finds
      // its chunks' vectors staged or on record, and pays nothing more.
      const { paid, distinct, report } = paidPerDistinct(deployment.embedLog ?? '');
      t.diagnostic(report);
      assert.equal(paid, distinct, 'texts were paid for more than once');
    }));
});
