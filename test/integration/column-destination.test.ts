// A pipeline whose destination is a column of the source table (docs/architecture.md, decision 18):
// the column holds the vector of the row's current content through inserts, updates, deletes, a
// key change and a TRUNCATE; writing it queues no change; a backfill fills it; a row a user's
// transaction holds is skipped, never waited on, and written once it is released; a text too long
// for the model is a dead letter unless the pipeline cuts it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { startBackfill, startBatchBackfill } from '../../src/backfill/start.js';
import { ConfigError, parsePipelines } from '../../src/config/pipeline.js';
import { applyPipelines } from '../../src/capture/apply.js';
import { getPipeline, setSyncPaused } from '../../src/db/catalog.js';
import { startMockProvider, type MockProvider } from '../../src/mock-provider/server.js';
import { featureHashEmbedding } from '../../src/providers/offline.js';
import { OpenAIProvider } from '../../src/providers/openai.js';
import { checkSourceSchemas } from '../../src/capture/schema-check.js';
import { startReembed } from '../../src/reembed/start.js';
import { estimateWalk } from '../../src/cost/estimate.js';
import { search } from '../../src/search/search.js';
import { readPipelineFacts } from '../../src/status/index.js';
import { countSyncedRows } from '../../src/status/queries.js';
import { verifyPipeline } from '../../src/verify/verify.js';
import { pauseSignal, progressQuery, resumeSignal } from '../../workflows/definitions.js';
import {
  applyPipeline,
  productsPipeline,
  startHarness,
  uniqueName,
  type Harness,
} from '../helpers/harness.js';
import { waitConverged } from '../helpers/converged.js';
import { waitFor } from '../helpers/wait.js';

let h: Harness;
let mock: MockProvider;
const DIMENSIONS = 64;

/** A docs-shaped table with a column pipeline over it; the pipeline has the table's name. */
async function freshTable(
  base: string,
  options: { rows?: number; pipeline?: Parameters<typeof productsPipeline>[0] } = {},
): Promise<string> {
  const name = uniqueName(base);
  await h.db.pool.query(
    `create table ${name} (id bigint primary key, name text, description text, price int)`,
  );
  if (options.rows)
    await h.db.pool.query(
      `insert into ${name} select g, 'Item ' || g, 'Description of item number ' || g, g
         from generate_series(1, $1::int) g`,
      [options.rows],
    );
  await applyPipeline(
    h,
    productsPipeline({
      name,
      source: { table: name },
      metadata: [],
      destination: { column: 'embedding' },
      ...options.pipeline,
    }),
  );
  return name;
}

/** The document the pipeline embeds for a row (productsPipeline's columns). */
const documentOf = (name: string, description: string): string =>
  `Product: ${name}\n${description}`;

/** The offline provider's vector for a text, as float4 keeps it. */
const expected = (text: string): number[] =>
  featureHashEmbedding(text, DIMENSIONS).map((x) => Math.fround(x));

async function columnOf(table: string, id: number): Promise<number[] | null | undefined> {
  const { rows } = await h.db.pool.query<{ v: string | null }>(
    `select embedding::text as v from ${table} where id = $1`,
    [id],
  );
  if (rows.length === 0) return undefined;
  const v = rows[0]?.v;
  return v == null ? null : (JSON.parse(v) as number[]);
}

/** Whether the column holds the vector of `text`. */
function holds(actual: number[] | null | undefined, text: string): boolean {
  const want = expected(text);
  return (
    !!actual &&
    actual.length === want.length &&
    actual.every((x, i) => Math.abs(x - (want[i] ?? NaN)) < 1e-6)
  );
}

function assertVector(actual: number[] | null | undefined, text: string): void {
  assert.ok(actual, `a vector for ${JSON.stringify(text)}`);
  const want = expected(text);
  assert.equal(actual.length, want.length);
  actual.forEach((x, i) => assert.ok(Math.abs(x - (want[i] ?? NaN)) < 1e-6, `dimension ${i}`));
}

async function count(sql: string, params: unknown[] = []): Promise<number> {
  const { rows } = await h.db.pool.query<{ n: number }>(sql, params);
  return Number(rows[0]?.n ?? 0);
}

const outboxOf = (pipeline: string): Promise<number> =>
  count('select count(*)::int as n from embedsync.outbox where pipeline = $1', [pipeline]);

const converged = (pipeline: string): Promise<unknown> => waitConverged(h.db.pool, pipeline);

describe('a column of the source table as the destination', () => {
  before(async () => {
    mock = await startMockProvider({});
    h = await startHarness('column_destination', {
      providers: [new OpenAIProvider({ baseURL: mock.openaiBaseURL })],
    });
  });
  after(async () => {
    await h?.stop();
    await mock?.close();
  });

  it('apply adds the column, keeps a record table without vectors, and makes no view', async () => {
    const t = await freshTable('col_apply');
    const { rows } = await h.db.pool.query<{ type: string }>(
      `select format_type(atttypid, atttypmod) as type from pg_attribute
        where attrelid = $1::regclass and attname = 'embedding'`,
      [t],
    );
    assert.deepEqual(rows, [{ type: `vector(${DIMENSIONS})` }]);
    const recordColumns = await h.db.pool.query<{ attname: string }>(
      `select attname from pg_attribute where attrelid = $1::regclass and attnum > 0 order by attnum`,
      [`${t}_embeddings`],
    );
    const names = recordColumns.rows.map((r) => r.attname);
    assert.ok(names.includes('content_hash') && names.includes('truncated'));
    assert.ok(!names.includes('embedding'), 'the record holds no vector');
    // Applied again: unchanged, and its vectors are named where they are, in the column.
    const [again] = await applyPipelines(
      h.db.pool,
      parsePipelines({
        pipelines: [
          productsPipeline({
            name: t,
            source: { table: t },
            metadata: [],
            destination: { column: 'embedding' },
          }),
        ],
      }),
    );
    assert.equal(again?.outcome, 'unchanged');
    assert.equal(again?.vectors, `public.${t}.embedding`);
    assert.equal(
      await count(`select count(*)::int as n from pg_class where relname = $1`, [
        `${t}_embeddings_view`,
      ]),
      0,
    );
  });

  it('apply refuses a column of another type or dimension, naming it and the fix', async () => {
    const t = uniqueName('col_wrong');
    await h.db.pool.query(
      `create table ${t} (id bigint primary key, name text, description text, embedding vector(3))`,
    );
    await assert.rejects(
      applyPipeline(
        h,
        productsPipeline({
          name: t,
          source: { table: t },
          metadata: [],
          destination: { column: 'embedding' },
        }),
      ),
      (err: unknown) =>
        err instanceof ConfigError &&
        /column "embedding" of public\.\S+ is vector\(3\), but the pipeline writes vector\(64\)/.test(
          err.message,
        ) &&
        /name another column/.test(err.message),
    );
    await h.db.pool.query(
      `alter table ${t} drop column embedding, add column embedding halfvec(64)`,
    );
    await assert.rejects(
      applyPipeline(
        h,
        productsPipeline({
          name: t,
          source: { table: t },
          metadata: [],
          destination: { column: 'embedding' },
        }),
      ),
      /is halfvec\(64\), but the pipeline writes vector\(64\)/,
    );
    // The same column with vectorType halfvec is taken as it is.
    await applyPipeline(
      h,
      productsPipeline({
        name: t,
        source: { table: t },
        metadata: [],
        vectorType: 'halfvec',
        destination: { column: 'embedding' },
      }),
    );
    // And written as halfvec.
    await h.db.pool.query(
      `insert into ${t} (id, name, description) values (1, 'Half', 'precision')`,
    );
    await converged(t);
    const { rows: half } = await h.db.pool.query<{ v: string }>(
      `select embedding::vector::text as v from ${t} where id = 1`,
    );
    const v = JSON.parse(half[0]?.v ?? '[]') as number[];
    const want = expected(documentOf('Half', 'precision'));
    assert.equal(v.length, DIMENSIONS);
    v.forEach((x, i) => assert.ok(Math.abs(x - (want[i] ?? NaN)) < 1e-3, `dimension ${i}`));
  });

  it('destination.index builds an HNSW cosine index on the column', async () => {
    const t = await freshTable('col_index', {
      pipeline: { destination: { column: 'embedding', index: true } },
    });
    const { rows } = await h.db.pool.query<{ def: string; valid: boolean }>(
      `select pg_get_indexdef(i.indexrelid) as def, i.indisvalid as valid from pg_index i
        where i.indrelid = $1::regclass and i.indexrelid <> ($1 || '_pkey')::regclass`,
      [t],
    );
    assert.equal(rows.length, 1);
    assert.match(rows[0]?.def ?? '', /USING hnsw \(embedding vector_cosine_ops\)/);
    assert.equal(rows[0]?.valid, true);
  });

  it('insert, update, delete, a key change and TRUNCATE each leave the column in step', async () => {
    const t = await freshTable('col_sync');
    await h.db.pool.query(
      `insert into ${t} (id, name, description, price) values
         (1, 'Alpine Tent', 'Two-person tent for storms', 249),
         (2, 'Kettle', 'Stovetop kettle', 40),
         (3, 'Lamp', 'Reading lamp', 25)`,
    );
    await converged(t);
    assertVector(await columnOf(t, 1), documentOf('Alpine Tent', 'Two-person tent for storms'));
    assertVector(await columnOf(t, 2), documentOf('Kettle', 'Stovetop kettle'));

    await h.db.pool.query(`update ${t} set description = 'Electric kettle' where id = 2`);
    await waitFor('the new vector', async () => {
      const v = await columnOf(t, 2);
      return holds(v, documentOf('Kettle', 'Electric kettle'));
    });
    await converged(t);
    assertVector(await columnOf(t, 2), documentOf('Kettle', 'Electric kettle'));

    // A key change: the row under its new key is embedded and the old key's record goes.
    await h.db.pool.query(`update ${t} set id = 30 where id = 3`);
    await converged(t);
    assertVector(await columnOf(t, 30), documentOf('Lamp', 'Reading lamp'));
    assert.equal(await count(`select count(*)::int as n from ${t}_embeddings where pk = '3'`), 0);
    assert.equal(await count(`select count(*)::int as n from ${t}_embeddings where pk = '30'`), 1);

    await h.db.pool.query(`delete from ${t} where id = 1`);
    await converged(t);
    assert.equal(await count(`select count(*)::int as n from ${t}_embeddings where pk = '1'`), 0);

    await h.db.pool.query(`truncate ${t}`);
    await waitFor('the record to empty', async () =>
      (await count(`select count(*)::int as n from ${t}_embeddings`)) === 0 ? true : false,
    );
    await h.db.pool.query(
      `insert into ${t} (id, name, description) values (5, 'Mug', 'Enamel mug')`,
    );
    await converged(t);
    assertVector(await columnOf(t, 5), documentOf('Mug', 'Enamel mug'));
    const p = await getPipeline(h.db.pool, t);
    assert.equal(await countSyncedRows(h.db.pool, p), 1);
  });

  it('writing the vector queues no change, and an unrelated column does not re-embed', async () => {
    const t = await freshTable('col_quiet');
    await h.db.pool.query(
      `insert into ${t} (id, name, description) select g, 'Q ' || g, 'quiet ' || g from generate_series(1, 50) g`,
    );
    await converged(t);
    const paidBefore = h.provider.texts;
    // In one transaction, before any poller could claim it: what writing the column queues.
    const client = await h.db.pool.connect();
    try {
      await client.query('begin');
      const before = await client.query<{ n: number }>(
        'select count(*)::int as n from embedsync.outbox where pipeline = $1',
        [t],
      );
      await client.query(`update ${t} set embedding = embedding where true`);
      await client.query(`update ${t} set price = 7 where id <= 10`);
      const afterWrite = await client.query<{ n: number }>(
        'select count(*)::int as n from embedsync.outbox where pipeline = $1',
        [t],
      );
      assert.equal(afterWrite.rows[0]?.n, before.rows[0]?.n, 'no outbox row for the column write');
    } finally {
      await client.query('rollback');
      client.release();
    }
    // The capture's fallback, taken once a column it reads is dropped, compares the whole row but
    // the destination column.
    const ddl = await h.db.pool.connect();
    try {
      await ddl.query('begin');
      await ddl.query(`alter table ${t} drop column description`);
      const queued = async () =>
        (
          await ddl.query<{ n: number }>(
            `select coalesce(sum(coalesce(cardinality(pks), 1)), 0)::int as n
               from embedsync.outbox where pipeline = $1`,
            [t],
          )
        ).rows[0]?.n;
      await ddl.query(`update ${t} set embedding = embedding where id <= 10`);
      assert.equal(await queued(), 0, 'the fallback queues no row for the column write');
      await ddl.query(`update ${t} set name = name || '!' where id <= 3`);
      assert.equal(await queued(), 3, 'the fallback still queues a changed row');
    } finally {
      await ddl.query('rollback');
      ddl.release();
    }
    assert.equal(await outboxOf(t), 0);
    assert.equal(h.provider.texts, paidBefore);
  });

  it('a row a user transaction holds is skipped, never waited on, and written once released', async () => {
    const t = await freshTable('col_locked');
    await h.db.pool.query(
      `insert into ${t} (id, name, description) values (1, 'A', 'first'), (2, 'B', 'second')`,
    );
    await converged(t);
    // Both rows change while sync is paused, so one batch carries them both.
    await setSyncPaused(h.db.pool, t, true);
    await h.db.pool.query(`update ${t} set description = description || ' again'`);
    const user = new pg.Client({ connectionString: h.db.url });
    await user.connect();
    try {
      await user.query('begin');
      await user.query(`update ${t} set price = 1 where id = 1`); // holds row 1 until commit
      await setSyncPaused(h.db.pool, t, false);
      // Row 2 is written while row 1 is held: the write did not wait on the user's lock.
      await waitFor(
        'row 2 to be written',
        async () => {
          const v = await columnOf(t, 2);
          return holds(v, documentOf('B', 'second again'));
        },
        60_000,
      );
      assertVector(await columnOf(t, 2), documentOf('B', 'second again'));
      // Nothing waits on the user's transaction, through the write's tries of row 1.
      const { rows: mine } = await user.query<{ pid: number }>('select pg_backend_pid() as pid');
      for (let look = 0; look < 40; look += 1) {
        const blocked = await count(
          `select count(*)::int as n from pg_stat_activity where $1 = any(pg_blocking_pids(pid))`,
          [mine[0]?.pid],
        );
        assert.equal(blocked, 0, 'no session waits on the row the user holds');
        await new Promise((r) => setTimeout(r, 50));
      }
      // Row 1 still has the vector of its old text while the user's transaction holds it.
      assertVector(await columnOf(t, 1), documentOf('A', 'first'));
      await user.query('commit');
    } finally {
      await user.query('rollback').catch(() => undefined);
      await user.end();
    }
    await converged(t);
    assertVector(await columnOf(t, 1), documentOf('A', 'first again'));
  });

  it('a backfill fills the column of existing rows, paused and resumed, and verify agrees', async () => {
    const t = await freshTable('col_backfill', {
      rows: 1200,
      pipeline: { batchSize: 100, destination: { column: 'embedding', index: true } },
    });
    assert.equal(await count(`select count(*)::int as n from ${t} where embedding is not null`), 0);
    const before = await verifyPipeline(h.db.pool, t);
    assert.equal(before.missing.length, 1200, 'verify counts an empty column as missing');
    const p = await getPipeline(h.db.pool, t);
    const handle = await startBackfill(h.client, p, {
      taskQueue: h.taskQueue,
      instanceId: h.instanceId,
      rows: 0,
      batchSize: 100,
      window: 1,
    });
    await waitFor(
      'the backfill to get going',
      async () => (await handle.query(progressQuery)).processed > 0,
      60_000,
    );
    await handle.signal(pauseSignal);
    const paused = await waitFor('the pause to take hold', async () => {
      const q = await handle.query(progressQuery);
      return q.phase === 'paused' ? q : false;
    });
    assert.ok(paused.processed < 1200);
    await handle.signal(resumeSignal);
    const result = await handle.result();
    assert.equal(result.processed, 1200);
    assert.equal(
      await count(`select count(*)::int as n from ${t} where embedding is not null`),
      1200,
    );
    assertVector(await columnOf(t, 7), documentOf('Item 7', 'Description of item number 7'));
    // The index, left out while the walk filled an empty column, is built at its end.
    const index = await h.db.pool.query<{ valid: boolean }>(
      `select indisvalid as valid from pg_index where indexrelid = to_regclass($1)`,
      [`${t}_embedding_hnsw`],
    );
    assert.deepEqual(index.rows, [{ valid: true }]);
    const report = await verifyPipeline(h.db.pool, t);
    assert.deepEqual([report.missing, report.stale, report.orphaned], [[], [], []]);
    // A column a user empties by hand counts as not embedded again.
    await h.db.pool.query(`update ${t} set embedding = null where id = 9`);
    assert.deepEqual((await verifyPipeline(h.db.pool, t)).missing, ['9']);
  });

  it('search reads the column and finds the row by its text', async () => {
    const t = await freshTable('col_search');
    await h.db.pool.query(
      `insert into ${t} (id, name, description) values
         (1, 'Alpine Tent', 'Two-person tent for storms'),
         (2, 'Kettle', 'Stovetop kettle'),
         (3, 'Lamp', 'Reading lamp')`,
    );
    await converged(t);
    const providers = new Map([[h.provider.name, h.provider]]);
    const hits = await search(h.db.pool, providers, t, documentOf('Kettle', 'Stovetop kettle'), {
      limit: 2,
    });
    assert.equal(hits[0]?.pk, '2');
    assert.equal(hits[0]?.chunk, documentOf('Kettle', 'Stovetop kettle'));
    assert.ok((hits[0]?.score ?? 0) > 0.999);
    assert.equal(hits.length, 2);
  });

  it('a text longer than the model takes is a dead letter naming the row, its length and the limit', async () => {
    const long = 'word '.repeat(9000);
    const openai = {
      provider: 'openai' as const,
      model: 'text-embedding-3-small',
      dimensions: DIMENSIONS,
      baseURL: mock.openaiBaseURL,
    };
    const t = await freshTable('col_long', { pipeline: { embedding: openai } });
    await h.db.pool.query(
      `insert into ${t} (id, name, description) values (1, 'Short', 'fits'), (2, 'Long', $1)`,
      [long],
    );
    const letter = await waitFor(
      'the dead letter',
      async () => {
        const { rows } = await h.db.pool.query<{ error: string }>(
          `select error from embedsync.dead_letters where pipeline = $1 and pk = '2'`,
          [t],
        );
        return rows[0]?.error ?? false;
      },
      60_000,
    );
    assert.match(
      letter,
      /^row 2: its text is \d+ tokens, longer than the model's limit of 8191 tokens per input/,
    );
    assert.match(letter, /destination\.truncate: true/);
    await waitFor('row 1', async () => ((await columnOf(t, 1)) ? true : false), 60_000);
    assert.equal(await columnOf(t, 2), null, 'the long row is not embedded');
    assert.ok(
      mock.requests.every((r) => r.inputs.every((i) => i.length < long.length)),
      'the long text was never sent',
    );

    const cut = await freshTable('col_cut', {
      pipeline: { embedding: openai, destination: { column: 'embedding', truncate: true } },
    });
    await h.db.pool.query(`insert into ${cut} (id, name, description) values (2, 'Long', $1)`, [
      long,
    ]);
    await converged(cut);
    assert.ok(await columnOf(cut, 2));
    assert.equal(
      await count(`select count(*)::int as n from ${cut}_embeddings where truncated and pk = '2'`),
      1,
    );
    assert.equal((await verifyPipeline(h.db.pool, cut)).truncated, 1);
  });

  it('status names the column, a dry run counts one text per row, and a dropped column holds the pipeline', async () => {
    const t = await freshTable('col_status', { rows: 30 });
    const [facts] = await readPipelineFacts(h.db.pool, t);
    assert.equal(facts?.destination, `public.${t}.embedding`);
    assert.equal(facts?.vectorTable, `public.${t}_embeddings`, 'the record table');
    const p = await getPipeline(h.db.pool, t);
    const estimate = await estimateWalk(h.db.pool, p, {
      kind: 'backfill',
      batchSize: 10,
      provider: { name: 'offline', maxInputsPerRequest: 256, rateLimit: undefined },
      providerConfigs: [p.config],
    });
    assert.equal(estimate.rowsToEmbed, 30);
    assert.equal(estimate.chunks, 30, 'one text per row');

    await h.db.pool.query(`alter table ${t} drop column embedding`);
    // The user's writes go on; the pipeline waits, saying why.
    await h.db.pool.query(`update ${t} set description = 'changed' where id = 1`);
    await checkSourceSchemas(h.db.pool, { pipeline: t });
    const { rows } = await h.db.pool.query<{ state: string; state_reason: string }>(
      'select state, state_reason from embedsync.pipelines where name = $1',
      [t],
    );
    assert.equal(rows[0]?.state, 'schema_changed');
    assert.match(
      rows[0]?.state_reason ?? '',
      /column "embedding" of public\.\S+, the pipeline's destination, is gone: run npx embedsync apply/,
    );
    // Apply adds it again and lifts the hold; the waiting change is written.
    await applyPipeline(
      h,
      productsPipeline({
        name: t,
        source: { table: t },
        metadata: [],
        destination: { column: 'embedding' },
      }),
    );
    await waitFor(
      'row 1 written',
      async () => holds(await columnOf(t, 1), documentOf('Item 1', 'changed')),
      60_000,
    );
  });

  it('a batch-mode backfill writes the column through the same write, a too-long row set aside', async () => {
    mock.options.batch = { completionMs: 0, clock: () => 0 };
    const openai = {
      provider: 'openai' as const,
      model: 'text-embedding-3-small',
      dimensions: DIMENSIONS,
      baseURL: mock.openaiBaseURL,
    };
    const t = await freshTable('col_batch', { rows: 40, pipeline: { embedding: openai } });
    await h.db.pool.query(`update ${t} set description = $1 where id = 40`, ['word '.repeat(9000)]);
    const handle = await startBatchBackfill(h.client, await getPipeline(h.db.pool, t), {
      taskQueue: h.taskQueue,
      instanceId: h.instanceId,
      rows: 0,
      pollSeconds: 1,
      enqueuedTokens: 10_000_000,
    });
    await handle.result();
    assert.equal(
      await count(`select count(*)::int as n from ${t} where embedding is not null`),
      39,
    );
    const report = await verifyPipeline(h.db.pool, t);
    assert.deepEqual(report.missing, ['40']);
    assert.deepEqual(report.deadLettered, ['40']);
    assert.deepEqual(report.stale, []);
  });
  it('a re-embed in batch mode fills the shadow column through the Batch API and swaps it in', async () => {
    mock.options.batch = { completionMs: 0, clock: () => 0 };
    const openai = (dimensions: number) => ({
      provider: 'openai' as const,
      model: 'text-embedding-3-small',
      dimensions,
      baseURL: mock.openaiBaseURL,
    });
    const t = await freshTable('col_batch_reembed', {
      rows: 30,
      pipeline: { embedding: openai(DIMENSIONS) },
    });
    const batch = { pollSeconds: 1, enqueuedTokens: 10_000_000 };
    const options = { taskQueue: h.taskQueue, instanceId: h.instanceId, rows: 0 };
    await (
      await startBatchBackfill(h.client, await getPipeline(h.db.pool, t), { ...options, ...batch })
    ).result();
    await applyPipeline(
      h,
      productsPipeline({
        name: t,
        source: { table: t },
        metadata: [],
        destination: { column: 'embedding' },
        embedding: openai(32),
      }),
    );
    const pending = await getPipeline(h.db.pool, t);
    assert.equal(pending.state, 'reembed_pending');
    const result = await (await startReembed(h.client, pending, { ...options, batch })).result();
    assert.equal(result.processed, 30);
    const dims = await h.db.pool.query<{ d: number; n: number }>(
      `select vector_dims(embedding) as d, count(*)::int as n from ${t} group by 1`,
    );
    assert.deepEqual(dims.rows, [{ d: 32, n: 30 }]);
    const columns = await h.db.pool.query<{ name: string; type: string }>(
      `select attname as name, format_type(atttypid, atttypmod) as type from pg_attribute
        where attrelid = $1::regclass and attname like 'embedding%' and not attisdropped`,
      [t],
    );
    assert.deepEqual(columns.rows, [{ name: 'embedding', type: 'vector(32)' }]);
    const live = await getPipeline(h.db.pool, t);
    assert.equal(live.state, 'active');
    assert.equal(live.generation, pending.pendingGeneration);
    const report = await verifyPipeline(h.db.pool, t);
    assert.deepEqual([report.missing, report.stale, report.orphaned], [[], [], []]);
  });
});
