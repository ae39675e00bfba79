// PostgreSQL is SIGKILLed — the postmaster and every backend at once — while users keep writing and
// batches are in flight; it restarts with crash recovery. The worker and the poller ride it out,
// and every change that the database kept reaches the vector table.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { migrate } from '../../src/db/migrator.js';
import { createPool } from '../../src/db/pool.js';
import {
  assertSyncWorkflowsCompleted,
  RECOVERY_MS,
  waitForConvergence,
} from './helpers/converge.js';
import { startPoller, startWorker, uniqueTaskQueue, type Deployment } from './helpers/embedsync.js';
import { startWriteLoad } from './helpers/load.js';
import { startPostgresServer } from './helpers/postgres-server.js';
import { embedLogFile, paidPerDistinct } from './helpers/paid.js';
import { inScene } from './helpers/scene.js';
import { createProductsPipeline, sharedTemporalAddress, temporalClient } from './helpers/setup.js';

describe('PostgreSQL killed with SIGKILL', () => {
  it('PostgreSQL killed mid-stream loses no committed change: after crash recovery all converges', (t) =>
    inScene(async (scene) => {
      const server = await startPostgresServer(scene);
      const admin = new pg.Client({ connectionString: server.url('postgres') });
      await admin.connect();
      await admin.query('create database embedsync_chaos');
      await admin.end();
      const databaseUrl = server.url('embedsync_chaos');
      const pool = createPool(databaseUrl, { max: 4, applicationName: 'chaos-test' });
      scene.onCleanup(() => pool.end());
      await migrate(pool);
      await createProductsPipeline(pool);

      const deployment: Deployment = {
        databaseUrl,
        temporalAddress: sharedTemporalAddress(),
        taskQueue: uniqueTaskQueue('postgres'),
        embedLog: await embedLogFile(scene, 'postgres'),
      };
      const client = await temporalClient(scene, deployment.temporalAddress);
      const worker = await startWorker(scene, deployment);
      const poller = await startPoller(scene, deployment);

      const load = startWriteLoad(databaseUrl, 'postgres-chaos');
      scene.onCleanup(async () => void (await load.stop()));
      await load.progressed(40);
      await server.kill();
      const failedBefore = load.stats.failed;
      await sleep(2000);
      assert.ok(
        load.stats.failed > failedBefore,
        'writes did not fail while the database was down',
      );

      await server.start();
      const restartedAt = Date.now();
      await load.progressed(40);
      const written = await load.stop();
      const state = await waitForConvergence(pool, RECOVERY_MS);
      t.diagnostic(
        `${written.failed} write rounds failed during the outage; ${state.rows} rows converged ${((Date.now() - restartedAt) / 1000).toFixed(1)} s after PostgreSQL was back`,
      );
      await assertSyncWorkflowsCompleted(client, deployment.taskQueue);
      assert.ok(
        worker.running && poller.running,
        'the worker and the poller outlived the database crash',
      );
      // Reported, not bounded: a request in flight at the crash whose vectors could not be stored
      // is paid for again, and crash recovery empties the unlogged record of texts (decision 16),
      // so batches that raced on a text across the crash may each pay for it.
      t.diagnostic(paidPerDistinct(deployment.embedLog ?? '').report);
    }));
});
