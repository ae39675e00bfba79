// A batch-mode backfill's worker is SIGKILLed twice: while the workflow waits for the provider's
// batch, and while it writes a completed part (held at a row's key lock, so the kill lands mid-write).
// Each time a new worker takes over; the backfill must finish with every row embedded, one provider
// batch per part, and every text paid for once, counted at the mock provider.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startBatchBackfill } from '../../src/backfill/start.js';
import { applyPipelines } from '../../src/capture/apply.js';
import { parsePipelines } from '../../src/config/pipeline.js';
import { getPipeline, instanceId } from '../../src/db/catalog.js';
import { startMockProvider } from '../../src/mock-provider/server.js';
import { createTestDatabase } from '../helpers/db.js';
import { uniqueName } from '../helpers/harness.js';
import { waitFor } from '../helpers/wait.js';
import { startWorker, uniqueTaskQueue, type Deployment } from './helpers/embedsync.js';
import { inScene } from './helpers/scene.js';
import { sharedTemporalAddress, temporalClient } from './helpers/setup.js';

const ROWS = 1500;
// The row whose write the test holds at its key lock: in the part's second group of 500.
const HELD_ROW = '1200';

describe('a worker killed with SIGKILL during a batch-mode backfill', () => {
  it('a kill while waiting and a kill while writing pay for nothing twice and lose no row', (t) =>
    inScene(async (scene) => {
      // The provider's batches complete when the test moves this clock, not before.
      let now = 0;
      const mock = await startMockProvider({ batch: { completionMs: 60_000, clock: () => now } });
      scene.onCleanup(() => mock.close());
      const db = await createTestDatabase('chaos_batch');
      scene.onCleanup(() => db.drop());
      const name = uniqueName('chaos_batch');
      await db.pool.query(`create table ${name} (id bigint primary key, name text, body text)`);
      await db.pool.query(
        `insert into ${name} select g, 'Item ' || g, 'Row ' || g || ' of the batch chaos test, ' || md5(g::text)
           from generate_series(1, $1::int) g`,
        [ROWS],
      );
      const pipeline = {
        name,
        source: { table: name },
        embed: { columns: ['name', 'body'] },
        embedding: {
          provider: 'openai' as const,
          model: 'text-embedding-3-small',
          dimensions: 64,
          baseURL: mock.openaiBaseURL,
        },
      };
      await applyPipelines(db.pool, parsePipelines({ pipelines: [pipeline] }));
      const deployment: Deployment = {
        databaseUrl: db.url,
        temporalAddress: sharedTemporalAddress(),
        taskQueue: uniqueTaskQueue('batch'),
      };
      const client = await temporalClient(scene, deployment.temporalAddress);
      let worker = await startWorker(scene, deployment);
      const handle = await startBatchBackfill(client, await getPipeline(db.pool, name), {
        taskQueue: deployment.taskQueue,
        instanceId: await instanceId(db.pool),
        rows: ROWS,
        pollSeconds: 1,
        enqueuedTokens: 10_000_000,
      });
      scene.onCleanup(async () => {
        await handle.terminate().catch(() => undefined);
      });
      const count = async (sql: string): Promise<number> =>
        (await db.pool.query<{ n: number }>(sql)).rows[0]?.n ?? 0;

      // 1. Killed while the workflow waits on its timer for the provider's batch.
      await waitFor('the part submitted', () => Promise.resolve(mock.batches.created.length === 1));
      let exit = await worker.kill('SIGKILL');
      assert.equal(exit.signal, 'SIGKILL', 'the worker was not killed but exited by itself');
      worker = await startWorker(scene, deployment, 'worker-2');

      // 2. Killed while it writes: the held row's write waits on its key lock.
      const holder = await db.pool.connect();
      try {
        await holder.query('begin');
        await holder.query(
          `select pg_advisory_xact_lock(hashtext('embedsync:' || $1), hashtext($2))`,
          [name, HELD_ROW],
        );
        now += 60_000;
        await waitFor(
          'the write blocked on the key lock',
          async () =>
            (await count(
              `select count(*)::int as n from pg_locks
                where locktype = 'advisory' and not granted
                  and database = (select oid from pg_database where datname = current_database())`,
            )) > 0,
          120_000,
        );
        const before = await count(`select count(distinct pk)::int as n from ${name}_embeddings`);
        t.diagnostic(`${before} of ${ROWS} rows written when the writing worker was killed`);
        exit = await worker.kill('SIGKILL');
        assert.equal(exit.signal, 'SIGKILL', 'the worker was not killed but exited by itself');
        await holder.query('commit');
      } finally {
        await holder.query('rollback').catch(() => undefined);
        holder.release();
      }
      await startWorker(scene, deployment, 'worker-3');

      const result = await handle.result();
      assert.equal(result.processed, ROWS);
      assert.equal(
        await count(`select count(distinct pk)::int as n from ${name}_embeddings`),
        ROWS,
      );
      assert.equal(mock.batches.created.length, 1, 'one provider batch for the part');
      const paid = mock.batches.paidInputs;
      const distinct = new Set(paid).size;
      t.diagnostic(
        `paid ÷ distinct texts: ${(paid.length / distinct).toFixed(4)} (${paid.length} paid, ${distinct} distinct)`,
      );
      assert.equal(distinct, ROWS);
      assert.equal(paid.length, distinct, 'texts were paid for more than once');
      const { rows } = await db.pool.query<{ texts: number }>(
        `select coalesce(sum(texts), 0)::int as texts from embedsync.token_ledger
          where pipeline = $1 and mode = 'batch'`,
        [name],
      );
      assert.equal(rows[0]?.texts, ROWS, 'the ledger counts the part once');
    }));
});
