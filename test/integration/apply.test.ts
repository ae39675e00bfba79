// Declaring pipelines against a real database: what is installed, and what is refused with which
// message.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { applyPipelines, removePipeline } from '../../src/capture/apply.js';
import { ConfigError, parsePipelines, type PipelineInput } from '../../src/config/pipeline.js';
import { getPipeline } from '../../src/db/catalog.js';
import { readSourceRows } from '../../src/db/source.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { PRODUCTS_TABLE, productsPipeline } from '../helpers/harness.js';

let db: TestDatabase;

const apply = (...pipelines: PipelineInput[]) =>
  applyPipelines(db.pool, parsePipelines({ pipelines }));

async function refused(pipelines: PipelineInput[]): Promise<ConfigError> {
  try {
    await apply(...pipelines);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the pipelines to be refused');
}

async function installed(): Promise<{ pipelines: number; triggers: number; tables: string[] }> {
  const p = await db.pool.query<{ n: number }>(
    'select count(*)::int as n from embedsync.pipelines',
  );
  const t = await db.pool.query<{ n: number }>(
    `select count(*)::int as n from pg_trigger where tgname like 'embedsync_%'`,
  );
  const v = await db.pool.query<{ name: string }>(
    `select tablename as name from pg_tables where tablename like '%_embeddings' order by 1`,
  );
  return {
    pipelines: p.rows[0]?.n ?? -1,
    triggers: t.rows[0]?.n ?? -1,
    tables: v.rows.map((r) => r.name),
  };
}

async function outbox(): Promise<{ pk: string; op: string }[]> {
  const { rows } = await db.pool.query<{ pk: string; op: string }>(
    'select pk, op from embedsync.outbox_keys order by id, position',
  );
  return rows;
}

describe('applying pipelines', () => {
  before(async () => {
    db = await createTestDatabase('apply');
    await db.pool.query(PRODUCTS_TABLE);
    await db.pool.query(`create table nopk (id int, name text)`);
    await db.pool.query(`create table files (id int primary key, name text, body bytea)`);
  });
  after(async () => db.drop());
  beforeEach(async () => {
    for (const { name } of (
      await db.pool.query<{ name: string }>('select name from embedsync.pipelines')
    ).rows) {
      await removePipeline(db.pool, name, { dropVectorTable: true });
    }
  });

  it('installs the catalog row, the vector table with its HNSW index and view, and four triggers', async () => {
    const [result] = await apply(productsPipeline());
    assert.deepEqual(result, {
      pipeline: 'products',
      outcome: 'created',
      vectorTable: 'public.products_embeddings',
      vectors: 'public.products_embeddings',
    });
    assert.deepEqual(await installed(), {
      pipelines: 1,
      triggers: 4,
      tables: ['products_embeddings'],
    });
    const idx = await db.pool.query<{ def: string }>(
      `select indexdef as def from pg_indexes where tablename = 'products_embeddings' and indexdef like '%hnsw%'`,
    );
    assert.match(idx.rows[0]?.def ?? '', /hnsw \(embedding vector_cosine_ops\)/);
    const type = await db.pool.query<{ t: string }>(
      `select format_type(atttypid, atttypmod) as t from pg_attribute where attrelid = 'products_embeddings'::regclass and attname = 'embedding'`,
    );
    assert.equal(type.rows[0]?.t, 'vector(64)');
    await db.pool.query('select * from products_embeddings_view limit 1');
  });

  it('applying the same file again changes nothing; a new metadata column is picked up by the triggers', async () => {
    await apply(productsPipeline());
    assert.equal((await apply(productsPipeline()))[0]?.outcome, 'unchanged');
    await db.pool.query(`insert into products (name) values ('x')`);
    await db.pool.query('delete from embedsync.outbox');
    await db.pool.query(`update products set notes = 'n'`);
    assert.equal((await outbox()).length, 0);
    assert.equal(
      (await apply(productsPipeline({ metadata: ['category', 'notes'] })))[0]?.outcome,
      'updated',
    );
    await db.pool.query(`update products set notes = 'changed'`);
    assert.ok((await outbox()).length > 0, 'an update of a new metadata column must be captured');
  });

  it('refuses a table without a primary key, and installs nothing', async () => {
    const err = await refused([
      productsPipeline({ source: { table: 'nopk' }, embed: { columns: ['name'] }, metadata: [] }),
    ]);
    assert.equal(
      err.message,
      'pipelines[0].source.table: table public.nopk has no primary key; embedsync needs one to tell rows apart',
    );
    assert.deepEqual(await installed(), { pipelines: 0, triggers: 0, tables: [] });
  });

  it('refuses a missing table, a missing column, a column without a text form and a missing metadata column, naming each', async () => {
    assert.equal(
      (await refused([productsPipeline({ source: { table: 'nope' } })])).field,
      'pipelines[0].source.table',
    );
    const col = await refused([productsPipeline({ embed: { columns: ['name', 'descr'] } })]);
    assert.equal(
      col.message,
      'pipelines[0].embed.columns[1]: column "descr" does not exist in public.products',
    );
    const bytea = await refused([
      productsPipeline({
        source: { table: 'files' },
        embed: { columns: ['name', 'body'] },
        metadata: [],
      }),
    ]);
    assert.equal(
      bytea.message,
      'pipelines[0].embed.columns[1]: column "body" has type bytea, which has no text form to embed',
    );
    assert.equal(
      (await refused([productsPipeline({ metadata: ['colour'] })])).field,
      'pipelines[0].metadata[0]',
    );
    assert.equal(
      (await refused([productsPipeline({ source: { table: 'products', primaryKey: ['name'] } })]))
        .field,
      'pipelines[0].source.primaryKey',
    );
  });

  it('a bad second pipeline leaves the first one uninstalled too', async () => {
    const err = await refused([
      productsPipeline(),
      productsPipeline({ name: 'broken', embed: { columns: ['missing'] } }),
    ]);
    assert.equal(err.field, 'pipelines[1].embed.columns[0]');
    assert.deepEqual(await installed(), { pipelines: 0, triggers: 0, tables: [] });
  });

  it('a change of what is embedded waits as the pending config; the live one is untouched', async () => {
    await apply(productsPipeline());
    const [result] = await apply(
      productsPipeline({ embedding: { provider: 'offline', dimensions: 128 } }),
    );
    assert.equal(result?.outcome, 'reembed pending');
    const p = await getPipeline(db.pool, 'products');
    assert.deepEqual(
      [
        p.config.embedding.dimensions,
        p.pendingConfig?.embedding.dimensions,
        p.generation,
        p.pendingGeneration,
        p.state,
      ],
      [64, 128, 1, 2, 'reembed_pending'],
    );
    // Applying the live config again withdraws the pending change.
    await apply(productsPipeline());
    const back = await getPipeline(db.pool, 'products');
    assert.deepEqual(
      [back.pendingConfig, back.pendingGeneration, back.state],
      [null, null, 'active'],
    );
  });

  it('a change to a newly embedded column is captured as soon as it is pending', async () => {
    await apply(productsPipeline());
    await db.pool.query(`insert into products (name) values ('x')`);
    await apply(productsPipeline({ embed: { columns: ['name', 'description', 'notes'] } }));
    await db.pool.query('delete from embedsync.outbox');
    await db.pool.query(`update products set notes = 'now embedded'`);
    assert.ok((await outbox()).length > 0);
  });

  it('refuses another change while a re-embed is running', async () => {
    await apply(productsPipeline());
    await apply(productsPipeline({ embedding: { provider: 'offline', dimensions: 128 } }));
    await db.pool.query(
      `update embedsync.pipelines set state = 'reembedding' where name = 'products'`,
    );
    const err = await refused([
      productsPipeline({ embedding: { provider: 'offline', dimensions: 96 } }),
    ]);
    assert.equal(err.field, 'pipelines[0].embedding');
    assert.match(err.message, /re-embed of "products" to generation 2 is running/);
  });

  it("refuses a second pipeline writing into another pipeline's vector table", async () => {
    await apply(productsPipeline());
    const err = await refused([
      productsPipeline({ name: 'products_b', vectorTable: 'public.products_embeddings' }),
    ]);
    assert.match(err.message, /already belongs to pipeline "products"/);
  });

  it('removing a pipeline removes its triggers: later writes queue nothing', async () => {
    await apply(productsPipeline());
    await removePipeline(db.pool, 'products');
    await db.pool.query(`insert into products (name) values ('after removal')`);
    assert.deepEqual(await outbox(), []);
    assert.deepEqual(await installed(), {
      pipelines: 0,
      triggers: 0,
      tables: ['products_embeddings'],
    });
  });

  it('a role with no rights on the embedsync schema can still write to its table', async () => {
    await apply(productsPipeline());
    await db.pool.query(
      `do $$ begin create role app_writer; exception when duplicate_object then null; end $$`,
    );
    await db.pool.query('grant select, insert, update, delete on products to app_writer');
    await db.pool.query('grant usage on all sequences in schema public to app_writer');
    const client = await db.pool.connect();
    try {
      await client.query('set role app_writer');
      await client.query(`insert into products (name) values ('written by the app')`);
      await client.query('reset role');
    } finally {
      client.release();
    }
    assert.deepEqual(
      (await outbox()).map((r) => r.op),
      ['I'],
    );
  });

  it('composite and non-integer keys round-trip from the trigger to the source lookup', async () => {
    await db.pool.query(
      `create table parts (maker text, code uuid, name text, primary key (maker, code))`,
    );
    await apply(
      productsPipeline({
        name: 'parts',
        source: { table: 'parts' },
        embed: { columns: ['name'] },
        metadata: [],
      }),
    );
    await db.pool.query(
      `insert into parts values ('acme "co"', '7c9e6679-7425-40de-944b-e07fc1f90ae7', 'Sprocket')`,
    );
    const [queued] = await outbox();
    assert.equal(queued?.pk, '["acme \\"co\\"", "7c9e6679-7425-40de-944b-e07fc1f90ae7"]');
    const rows = await readSourceRows(db.pool, await getPipeline(db.pool, 'parts'), [
      queued?.pk ?? '',
    ]);
    assert.equal(rows[0]?.document, 'Sprocket');
  });
});
