// Re-embedding a column pipeline to a new model and dimension: built in a shadow column beside the
// live one while queries run, swapped in by rename with none of them failing or mixing models,
// converging with the writes made meanwhile; a cancelled re-embed leaves the live column as it was.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startBackfill } from '../../src/backfill/start.js';
import type { PipelineInput } from '../../src/config/pipeline.js';
import { getPipeline, shadowColumnName } from '../../src/db/catalog.js';
import { readSourceRows } from '../../src/db/source.js';
import { startReembed } from '../../src/reembed/start.js';
import { verifyPipeline } from '../../src/verify/verify.js';
import { progressQuery } from '../../workflows/definitions.js';
import { applyPipeline, startHarness, uniqueName, type Harness } from '../helpers/harness.js';
import { startQueryLoop, type QueryLoop } from '../helpers/query-loop.js';
import { waitFor } from '../helpers/wait.js';

let h: Harness;
const ROWS = 2000;
const name = uniqueName('articles');
const table = `${name}_src`;
const v1: PipelineInput = {
  name,
  source: { table },
  embed: { columns: ['title', 'body'] },
  embedding: { provider: 'offline', model: 'feature-hash-v1', dimensions: 64 },
  destination: { column: 'embedding', index: true },
  batchSize: 200,
};
const v2: PipelineInput = {
  ...v1,
  embedding: { provider: 'offline', model: 'feature-hash-v1', dimensions: 32 },
};
const v3: PipelineInput = {
  ...v1,
  embedding: { provider: 'offline', model: 'feature-hash-v1', dimensions: 16 },
};

// The offline model's vectors differ by dimension only: an answer's model is its vectors' length.
const modelOf = (v: number[]): string => `${v.length} dims`;
const queryVector = (d: number): number[] => Array.from({ length: d }, (_, i) => ((i * 7) % 5) + 1);

async function columnType(column: string): Promise<string | undefined> {
  const { rows } = await h.db.pool.query<{ type: string }>(
    `select format_type(atttypid, atttypmod) as type from pg_attribute
      where attrelid = $1::regclass and attname = $2 and not attisdropped`,
    [table, column],
  );
  return rows[0]?.type;
}

const liveDigest = async (): Promise<string | undefined> =>
  (
    await h.db.pool.query<{ d: string }>(
      `select md5(string_agg(embedding::text, ',' order by id)) as d from ${table}`,
    )
  ).rows[0]?.d;

/** How many outbox rows were ever made: the identity's last value. */
const outboxIds = async (): Promise<string | null> =>
  (
    await h.db.pool.query<{ v: string | null }>(
      `select last_value::text as v from pg_sequences
        where schemaname = 'embedsync' and sequencename = 'outbox_id_seq'`,
    )
  ).rows[0]?.v ?? null;

describe('re-embedding a column pipeline', () => {
  before(async () => {
    h = await startHarness('column_reembed');
    await h.db.pool.query(`create table ${table} (id bigint primary key, title text, body text)`);
    await h.db.pool.query(
      `insert into ${table} select g, 'Article ' || g, 'About subject ' || (g % 37) || ' and more' from generate_series(1, ${ROWS}) g`,
    );
    await applyPipeline(h, v1);
    const p = await getPipeline(h.db.pool, name);
    await (
      await startBackfill(h.client, p, {
        taskQueue: h.taskQueue,
        instanceId: h.instanceId,
        rows: ROWS,
      })
    ).result();
  });
  after(async () => h.stop());

  it('swaps to a new dimension with zero failed queries, never a mixed model, and converges with writes made during it', async () => {
    await applyPipeline(h, v2);
    const pending = await getPipeline(h.db.pool, name);
    assert.deepEqual([pending.state, pending.pendingGeneration], ['reembed_pending', 2]);
    assert.equal(
      await columnType('embedding'),
      'vector(64)',
      'the live column waits for the re-embed',
    );

    const loops: QueryLoop[] = [];
    let statements = 0;
    try {
      for (let i = 0; i < 3; i += 1)
        loops.push(startQueryLoop(h.db.pool, table, 'embedding', { modelOf, queryVector }));
      const handle = await startReembed(h.client, pending, {
        taskQueue: h.taskQueue,
        instanceId: h.instanceId,
        rows: ROWS,
        window: 2,
      });
      await waitFor(
        'the walk to fill part of the shadow column',
        async () => (await handle.query(progressQuery)).processed >= 400,
        60_000,
      );
      assert.equal(await columnType(shadowColumnName('embedding')), 'vector(32)');
      // Writes while the shadow column fills: synced into both columns.
      for (let i = 0; i < 10; i += 1) {
        await h.db.pool.query(
          `insert into ${table} values (${10_000 + i}, 'Late ${i}', 'Inserted during the re-embed')`,
        );
        await h.db.pool.query(
          `update ${table} set body = 'Changed during the re-embed ${i}' where id = ${1990 - i * 7}`,
        );
        await h.db.pool.query(`delete from ${table} where id = ${100 + i * 11}`);
        statements += 3;
      }
      const result = await handle.result();
      assert.equal(result.generation, 2);
      const at = loops.map((l) => l.queries);
      await waitFor('queries after the swap', () =>
        Promise.resolve(loops.every((l, i) => l.queries >= (at[i] ?? 0) + 20)),
      );
    } finally {
      loops.forEach((l) => void l.stop());
    }
    const seen = await Promise.all(loops.map((l) => l.stop()));
    assert.deepEqual(
      seen.flatMap((s) => s.failures),
      [],
      'no query failed',
    );
    assert.deepEqual(
      seen.flatMap((s) => s.mixed),
      [],
      'no answer mixed models',
    );
    const models = new Set(seen.flatMap((s) => [...s.models.keys()]));
    assert.deepEqual(
      [...models].sort(),
      ['32 dims', '64 dims'],
      'queries ran on both sides of the swap',
    );
    assert.equal(statements, 30);

    const p = await getPipeline(h.db.pool, name);
    assert.deepEqual(
      [p.generation, p.pendingGeneration, p.state, p.config.embedding.dimensions],
      [2, null, 'active', 32],
    );
    assert.equal(await columnType('embedding'), 'vector(32)');
    assert.equal(await columnType(shadowColumnName('embedding')), undefined);
    const index = await h.db.pool.query<{ valid: boolean; def: string }>(
      `select i.indisvalid as valid, pg_get_indexdef(i.indexrelid) as def from pg_index i
        where i.indexrelid = to_regclass($1)`,
      [`${table}_embedding_hnsw`],
    );
    assert.equal(index.rows[0]?.valid, true);
    assert.match(index.rows[0]?.def ?? '', /hnsw \(embedding vector_cosine_ops\)/);
    const tables = await h.db.pool.query<{ t: string }>(
      `select tablename as t from pg_tables where tablename like '${name}_embeddings%' order by 1`,
    );
    assert.deepEqual(
      tables.rows.map((r) => r.t),
      [`${name}_embeddings`],
    );

    // Converged: every row holds a 32-dimension vector, on record at generation 2 with the hash of
    // its current text, the late writes included.
    await waitFor(
      'the outbox to drain',
      async () => (await h.db.pool.query('select 1 from embedsync.outbox limit 1')).rowCount === 0,
    );
    const keys = (
      await h.db.pool.query<{ pk: string }>(`select id::text as pk from ${table}`)
    ).rows.map((r) => r.pk);
    assert.equal(keys.length, ROWS);
    const expected = new Map(
      (await readSourceRows(h.db.pool, p, keys)).map((r) => [r.pk, r.contentHash]),
    );
    await waitFor('every row at generation 2 with its current content', async () => {
      const { rows } = await h.db.pool.query<{
        pk: string;
        hash: string;
        generation: number;
        dims: number | null;
      }>(
        `select s.id::text as pk, r.content_hash as hash, r.generation, vector_dims(s.embedding) as dims
           from ${table} s left join ${name}_embeddings r on r.pk = s.id::text and r.chunk_index = 0`,
      );
      const off = rows.filter(
        (r) => r.generation !== 2 || r.dims !== 32 || r.hash !== expected.get(r.pk),
      );
      return off.length === 0 || undefined;
    });
    // A drained outbox means every change was claimed, not that its sync has written: a delete may
    // still be on its way to the record.
    await waitFor(
      'deleted rows to be gone from the record',
      async () =>
        (
          await h.db.pool.query(
            `select 1 from ${name}_embeddings r where not exists (select 1 from ${table} s where s.id::text = r.pk)`,
          )
        ).rowCount === 0,
    );
    const report = await verifyPipeline(h.db.pool, name);
    assert.deepEqual([report.missing, report.stale, report.orphaned], [[], [], []]);
  });

  it('a cancelled re-embed drops its shadow column and leaves the live column untouched; filling it captures nothing', async () => {
    await waitFor(
      'the outbox to drain',
      async () => (await h.db.pool.query('select 1 from embedsync.outbox limit 1')).rowCount === 0,
    );
    const before = await liveDigest();
    const captured = await outboxIds();
    assert.notEqual(captured, null, 'the earlier test queued changes');
    await applyPipeline(h, v3);
    const pending = await getPipeline(h.db.pool, name);
    const handle = await startReembed(h.client, pending, {
      taskQueue: h.taskQueue,
      instanceId: h.instanceId,
      rows: ROWS,
      window: 1,
      batchSize: 100,
    });
    await waitFor(
      'the walk to start filling the shadow column',
      async () => (await handle.query(progressQuery)).processed >= 200,
      60_000,
    );
    assert.equal(await columnType(shadowColumnName('embedding')), 'vector(16)');
    // No one else writes the table: the walk's UPDATEs of the shadow column queued no change.
    assert.equal(await outboxIds(), captured);
    await handle.cancel();
    await assert.rejects(handle.result());
    await waitFor(
      'the re-embed to be abandoned',
      async () => (await getPipeline(h.db.pool, name)).state === 'reembed_pending',
    );
    assert.equal(await columnType(shadowColumnName('embedding')), undefined);
    assert.equal(await columnType('embedding'), 'vector(32)');
    assert.equal(await liveDigest(), before);
    const swap = await h.db.pool.query(`select to_regclass($1) as t`, [`${name}_embeddings_swap`]);
    assert.equal((swap.rows[0] as { t: string | null }).t, null);
  });
});
