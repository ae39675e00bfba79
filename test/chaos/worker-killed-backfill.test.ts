// The worker is SIGKILLed half way through a backfill whose rows are long (a batch's rows span
// several requests). The backfill must finish with every row embedded, and the chunks already
// written into the vector table before the kill must not be paid for again.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startBackfill } from '../../src/backfill/start.js';
import { getPipeline, instanceId } from '../../src/db/catalog.js';
import { createTestDatabase } from '../helpers/db.js';
import { waitFor } from '../helpers/wait.js';
import { startWorker, uniqueTaskQueue, type Deployment } from './helpers/embedsync.js';
import { embedLogFile, textsSent } from './helpers/paid.js';
import { inScene } from './helpers/scene.js';
import { applyPipelines } from '../../src/capture/apply.js';
import { parsePipelines } from '../../src/config/pipeline.js';
import { PRODUCTS_TABLE, productsPipeline, uniqueName } from '../helpers/harness.js';
import { sharedTemporalAddress, temporalClient } from './helpers/setup.js';

const ROWS = 3000;

describe('a worker killed with SIGKILL during a backfill', () => {
  it('the backfill finishes on a new worker and pays again for nothing it had written', () =>
    inScene(async (scene) => {
      const db = await createTestDatabase('chaos_backfill');
      scene.onCleanup(() => db.drop());
      const embedLog = await embedLogFile(scene, 'backfill');
      // A pipeline name of its own: workflow ids (backfill:<pipeline>) are per namespace.
      const name = uniqueName('chaos_backfill');
      await db.pool.query(PRODUCTS_TABLE);
      await applyPipelines(db.pool, parsePipelines({ pipelines: [productsPipeline({ name })] }));
      const vectors = (await getPipeline(db.pool, name)).vectorTable;
      // No poller runs: the backfill alone embeds the rows. Every sentence names its row, so every
      // chunk's text is unique.
      await db.pool.query(
        `insert into products (name, description, category, price)
         select 'Long ' || g,
                (select string_agg('Long row ' || g || ', sentence ' || s || ': a description the chunker splits.', ' ')
                   from generate_series(1, 40) s),
                'long', g
           from generate_series(1, $1::int) g`,
        [ROWS],
      );
      const deployment: Deployment = {
        databaseUrl: db.url,
        temporalAddress: sharedTemporalAddress(),
        taskQueue: uniqueTaskQueue('backfill'),
        embedLog,
      };
      const client = await temporalClient(scene, deployment.temporalAddress);
      const worker = await startWorker(scene, deployment);
      const handle = await startBackfill(client, await getPipeline(db.pool, name), {
        taskQueue: deployment.taskQueue,
        instanceId: await instanceId(db.pool),
        rows: ROWS,
      });
      scene.onCleanup(async () => {
        await handle.terminate().catch(() => undefined);
      });
      const written = await waitFor(
        'part of the table written',
        async () => {
          const { rows } = await db.pool.query<{ chunk: string }>(`select chunk from ${vectors}`);
          const keys = await db.pool.query<{ n: number }>(
            `select count(distinct pk)::int as n from ${vectors}`,
          );
          const n = keys.rows[0]?.n ?? 0;
          return n > 0 && n < ROWS / 2 ? rows.map((r) => r.chunk) : false;
        },
        120_000,
        5,
      );
      const exit = await worker.kill('SIGKILL');
      assert.equal(exit.signal, 'SIGKILL', 'the worker was not killed but exited by itself');
      await startWorker(scene, deployment, 'worker-2');
      const result = await handle.result();
      assert.equal(result.processed, ROWS);
      const { rows } = await db.pool.query<{ n: number }>(
        `select count(distinct pk)::int as n from ${vectors}`,
      );
      assert.equal(rows[0]?.n, ROWS);
      const sent = textsSent(embedLog);
      const paidTwice = written
        .filter((text) => sent.get(text) !== 1)
        .map((text) => `${sent.get(text) ?? 0}× ${text.slice(0, 60)}`);
      assert.deepEqual(paidTwice, [], 'chunks written before the kill were sent again');
      const { rows: index } = await db.pool.query<{ n: number }>(
        `select count(*)::int as n from pg_indexes where tablename = $1 and indexdef ilike '%hnsw%'`,
        [vectors],
      );
      assert.equal(index[0]?.n, 1, 'the HNSW index is built');
    }));
});
