// The worker is SIGKILLed while it is half way through embedding a large batch, with user writes
// going on. Nothing may be lost, and the chunks it had already embedded must not be paid for again:
// it reports paid ÷ distinct texts counted at the provider, whose only excess may be the replies of
// the requests in flight at the kill.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Pool } from '../../src/db/pool.js';
import { createTestDatabase } from '../helpers/db.js';
import { waitFor } from '../helpers/wait.js';
import {
  assertSyncWorkflowsCompleted,
  RECOVERY_MS,
  waitForConvergence,
} from './helpers/converge.js';
import { startPoller, startWorker, uniqueTaskQueue, type Deployment } from './helpers/embedsync.js';
import { startWriteLoad } from './helpers/load.js';
import { embedLogFile, textsSent } from './helpers/paid.js';
import { inScene } from './helpers/scene.js';
import { createProductsPipeline, sharedTemporalAddress, temporalClient } from './helpers/setup.js';

const LARGE_ROWS = 600;
/** Most texts in one request to the offline provider (src/providers/offline.ts). */
const OFFLINE_MAX_INPUTS = 256;

/**
 * ~3,000 characters per row, every sentence naming its row, so that each chunk's text is unique.
 */
async function insertLargeBatch(pool: Pool): Promise<void> {
  await pool.query(
    `insert into products (name, description, category, price)
     select 'Large ' || g,
            (select string_agg('Large row ' || g || ', sentence ' || s || ': a long description that the chunker has to split into pieces.', ' ')
               from generate_series(1, 40) s),
            'large', g
       from generate_series(1, $1::int) g`,
    [LARGE_ROWS],
  );
}

/**
 * Once the embed stage is half way through the large rows (some of their chunks have vectors, some
 * not), the texts of those that have. Only large rows count: the write load rewrites its own rows,
 * and two batches may then legitimately both embed a row's newest text.
 */
async function midEmbed(pool: Pool): Promise<string[]> {
  const large = `from embedsync.staged_chunks c join products p on p.id::text = c.pk where p.category = 'large'`;
  return waitFor(
    'the embed stage to be half way through the large rows',
    async () => {
      const { rows } = await pool.query<{ done: number; pending: number }>(
        `select count(*) filter (where c.embedding is not null)::int as done, count(*) filter (where c.embedding is null)::int as pending ${large}`,
      );
      const progress = rows[0];
      if (!progress || progress.done === 0 || progress.pending === 0) return false;
      const embedded = await pool.query<{ chunk: string }>(
        `select c.chunk ${large} and c.embedding is not null`,
      );
      return embedded.rows.map((r) => r.chunk);
    },
    60_000,
    5,
  );
}

describe('a worker killed with SIGKILL', () => {
  it('a worker killed mid-embed loses no change and does not pay again for chunks it had embedded', (t) =>
    inScene(async (scene) => {
      const db = await createTestDatabase('chaos_worker');
      scene.onCleanup(() => db.drop());
      const embedLog = await embedLogFile(scene, 'worker');
      await createProductsPipeline(db.pool);
      const deployment: Deployment = {
        databaseUrl: db.url,
        temporalAddress: sharedTemporalAddress(),
        taskQueue: uniqueTaskQueue('worker'),
        embedLog,
      };
      const client = await temporalClient(scene, deployment.temporalAddress);
      const worker = await startWorker(scene, deployment);
      const poller = await startPoller(scene, deployment);

      const load = startWriteLoad(db.url, 'worker-chaos');
      scene.onCleanup(async () => void (await load.stop()));
      await load.progressed(20);
      await insertLargeBatch(db.pool);
      const paidBeforeKill = await midEmbed(db.pool);
      // At most one request per batch is in flight: its reply is what a kill can lose.
      const { rows: inFlight } = await db.pool.query<{ n: number }>(
        'select count(distinct batch_id)::int as n from embedsync.staged_chunks where embedding is null',
      );
      const exit = await worker.kill('SIGKILL');
      const killedAt = Date.now();
      assert.equal(exit.signal, 'SIGKILL', 'the worker was not killed but exited by itself');

      // Work queues up in Temporal while no worker runs; then a new worker takes over the batches.
      await load.progressed(20);
      const successor = await startWorker(scene, deployment, 'worker-2');
      await load.progressed(20);
      const written = await load.stop();
      // The killed worker's activities are retried only once their timeouts expire (see
      // RECOVERY_MS).
      const state = await waitForConvergence(db.pool, RECOVERY_MS);
      t.diagnostic(
        `${state.rows} rows converged ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill`,
      );
      await assertSyncWorkflowsCompleted(client, deployment.taskQueue);
      assert.ok(
        successor.running && poller.running,
        'the new worker and the poller are still running',
      );
      assert.equal(written.failed, 0);

      const sent = textsSent(embedLog);
      assert.ok(paidBeforeKill.length > 0);
      const paidTwice = paidBeforeKill
        .filter((text) => sent.get(text) !== 1)
        .map((text) => `${sent.get(text) ?? 0}× ${text.slice(0, 60)}`);
      assert.deepEqual(
        paidTwice,
        [],
        'chunks embedded before the kill were sent to the provider again',
      );
      // Paid ÷ distinct texts, counted at the provider: each text once (decision 16), but for the
      // replies of the requests in flight at the kill, which the batch's retry pays for again.
      const paid = [...sent.values()].reduce((sum, n) => sum + n, 0);
      const excess = paid - sent.size;
      const lostReplies = (inFlight[0]?.n ?? 0) * OFFLINE_MAX_INPUTS;
      t.diagnostic(
        `paid ÷ distinct texts: ${(paid / sent.size).toFixed(4)} (${paid} paid, ${sent.size} distinct; ${paidBeforeKill.length} embedded before the kill, ${inFlight[0]?.n ?? 0} batches had a request in flight)`,
      );
      assert.ok(
        excess <= lostReplies,
        `${excess} texts paid twice: more than the ${lostReplies} of the requests in flight at the kill`,
      );
      const { rows } = await db.pool.query<{ n: number }>(
        `select count(distinct pk)::int as n from products_embeddings where metadata->>'category' = 'large'`,
      );
      assert.equal(rows[0]?.n, LARGE_ROWS);
    }));
});
