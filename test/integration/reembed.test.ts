// Re-embedding by atomic swap: live queries never fail and never see two generations, changes made
// meanwhile are not lost, and a re-embed interrupted by its worker going away resumes.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { applyPipelines } from '../../src/capture/apply.js';
import { parsePipelines } from '../../src/config/pipeline.js';
import { startBackfill } from '../../src/backfill/start.js';
import { startReembed } from '../../src/reembed/start.js';
import { getPipeline } from '../../src/db/catalog.js';
import { verifyPipeline } from '../../src/verify/verify.js';
import { progressQuery } from '../../workflows/definitions.js';
import { productsPipeline, startHarness, uniqueName, type Harness } from '../helpers/harness.js';
import { waitFor } from '../helpers/wait.js';

let h: Harness;
const name = uniqueName('catalog');
const v1 = productsPipeline({
  name,
  source: { table: 'catalog' },
  metadata: ['category'],
  batchSize: 200,
});
const v2 = {
  ...v1,
  embed: { columns: [{ column: 'name', prefix: 'Item: ' }, 'description'] },
  embedding: { provider: 'offline' as const, dimensions: 32 },
};

/** Reads the live table the way an application does, as fast as it can, until stopped. */
function readLoop(): {
  stop: () => Promise<{ queries: number; failures: string[]; mixed: string[] }>;
} {
  let running = true;
  const failures: string[] = [];
  const mixed: string[] = [];
  let queries = 0;
  const loop = (async () => {
    while (running) {
      try {
        const { rows } = await h.db.pool.query<{ generations: number[]; dims: number[] }>(
          `select array_agg(distinct generation) as generations, array_agg(distinct vector_dims(embedding)) as dims from ${name}_embeddings`,
        );
        const r = rows[0];
        if ((r?.generations.length ?? 0) > 1 || (r?.dims.length ?? 0) > 1)
          mixed.push(JSON.stringify(r));
        await h.db.pool.query(
          `select pk from ${name}_embeddings order by embedding <=> (select embedding from ${name}_embeddings limit 1) limit 5`,
        );
        queries += 2;
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return { queries, failures, mixed };
    },
  };
}

describe('re-embed by atomic swap', () => {
  before(async () => {
    h = await startHarness('reembed');
    await h.db.pool.query(
      `create table catalog (id bigint primary key, name text, description text, category text)`,
    );
    await h.db.pool.query(
      `insert into catalog select g, 'Thing ' || g, 'About thing ' || g, 'c' || (g % 5) from generate_series(1, 3000) g`,
    );
    await applyPipelines(h.db.pool, parsePipelines({ pipelines: [v1] }));
    const p = await getPipeline(h.db.pool, name);
    await (
      await startBackfill(h.client, p, {
        taskQueue: h.taskQueue,
        instanceId: h.instanceId,
        rows: 3000,
      })
    ).result();
  });
  after(async () => h.stop());

  it('a changed embedding config waits as pending; the live generation is untouched', async () => {
    const [result] = await applyPipelines(h.db.pool, parsePipelines({ pipelines: [v2] }));
    assert.equal(result?.outcome, 'reembed pending');
    const p = await getPipeline(h.db.pool, name);
    assert.deepEqual(
      [
        p.generation,
        p.pendingGeneration,
        p.state,
        p.config.embedding.dimensions,
        p.pendingConfig?.embedding.dimensions,
      ],
      [1, 2, 'reembed_pending', 64, 32],
    );
    // Changes keep flowing to the live generation meanwhile.
    await h.db.pool.query(
      `update catalog set description = 'Updated before the swap' where id = 1`,
    );
    await waitFor(
      'the live update',
      async () =>
        (
          await h.db.pool.query(
            `select 1 from ${name}_embeddings where pk = '1' and chunk like '%before the swap%'`,
          )
        ).rowCount === 1,
    );
  });

  it('swaps with zero failed queries, never a mixed generation, and converges with writes made during it', async () => {
    const reader = readLoop();
    let seen: Awaited<ReturnType<typeof reader.stop>>;
    let workerStopped = false;
    try {
      const p = await getPipeline(h.db.pool, name);
      const handle = await startReembed(h.client, p, {
        taskQueue: h.taskQueue,
        instanceId: h.instanceId,
        rows: 3000,
        window: 2,
      });
      await waitFor(
        'the re-embed to get going',
        async () => (await handle.query(progressQuery)).processed >= 600,
        60_000,
      );
      // The worker goes away mid-walk and comes back: the re-embed resumes from its checkpoint.
      await h.stopWorker();
      workerStopped = true;
      for (let i = 0; i < 10; i += 1) {
        await h.db.pool.query(
          `insert into catalog values (${10_000 + i}, 'Late ${i}', 'Inserted during the swap', 'c1')`,
        );
        await h.db.pool.query(
          `update catalog set description = 'Changed during the swap ${i}' where id = ${2990 - i * 7}`,
        );
        await h.db.pool.query(`delete from catalog where id = ${100 + i * 11}`);
      }
      await h.startWorker();
      workerStopped = false;
      const result = await handle.result();
      assert.equal(result.generation, 2);
      await waitFor(
        'the outbox to drain',
        async () =>
          (await h.db.pool.query('select 1 from embedsync.outbox limit 1')).rowCount === 0,
      );
      await waitFor('convergence', async () => {
        const r = await verifyPipeline(h.db.pool, name);
        return r.missing.length + r.stale.length + r.orphaned.length === 0;
      });
    } finally {
      // The read loop runs until stopped: an assertion failing above must not leave it reading
      // forever.
      seen = await reader.stop();
      if (workerStopped) await h.startWorker();
    }
    assert.deepEqual(seen.failures, [], 'queries failed during the swap');
    assert.deepEqual(seen.mixed, [], 'a query saw two generations or two dimensions at once');
    assert.ok(seen.queries > 50, `only ${seen.queries} queries ran during the swap`);

    const after = await getPipeline(h.db.pool, name);
    assert.deepEqual(
      [after.generation, after.pendingGeneration, after.state, after.config.embedding.dimensions],
      [2, null, 'active', 32],
    );
    const { rows } = await h.db.pool.query<{
      generations: number[];
      dims: number[];
      item: boolean;
    }>(
      `select array_agg(distinct generation) as generations, array_agg(distinct vector_dims(embedding)) as dims,
              bool_and(chunk like 'Item: %') as item from ${name}_embeddings`,
    );
    assert.deepEqual(rows[0], { generations: [2], dims: [32], item: true });
    const tables = await h.db.pool.query<{ t: string }>(
      `select tablename as t from pg_tables where tablename like '${name}_embeddings%' order by 1`,
    );
    assert.deepEqual(
      tables.rows.map((r) => r.t),
      [`${name}_embeddings`],
    );
    await h.db.pool.query(`select * from ${name}_embeddings_view limit 1`);
  });
});
