// The shadow column of a column pipeline's re-embed, against real Postgres: added and swapped in
// short attempts that give way to a transaction holding the table instead of queueing the user's
// queries behind it, and swapped by rename while queries run, none failing and none mixing models.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import {
  addShadowColumn,
  dropShadowColumn,
  LiveColumnPinnedError,
  ShadowColumnTakenError,
  swapShadowColumn,
  type ColumnTarget,
} from '../../src/capture/shadow-column.js';
import { indexNameOf } from '../../src/capture/destination-column.js';
import { LockUnavailableError, withShortLocks } from '../../src/db/lock-retry.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startQueryLoop, type QueryLoop } from '../helpers/query-loop.js';
import { waitFor } from '../helpers/wait.js';

let db: TestDatabase;
const ROWS = 2000;
const owner = { pipeline: 'docs', generation: 2 };
const noPause = (): Promise<void> => Promise.resolve();

// A model's vectors carry its number in their first component, so an answer's model is known.
const modelVectorSql = (model: number, dims: number): string =>
  `('[' || ${model} || ',' || array_to_string(array(select ((id * k) % 13 + 1)::float8 from generate_series(1, ${dims - 1}) k), ',') || ']')::vector(${dims})`;
const modelOf = (v: number[]): string => `model ${v[0]} (${v.length} dims)`;
const queryVector = (d: number): number[] => Array.from({ length: d }, (_, i) => (i % 5) + 1);

const target = (dimensions: number): ColumnTarget => ({
  schema: 'public',
  table: 'docs',
  column: 'embedding',
  vectorType: 'vector',
  dimensions,
});

async function columnType(column: string): Promise<string | undefined> {
  const { rows } = await db.pool.query<{ type: string }>(
    `select format_type(atttypid, atttypmod) as type from pg_attribute
      where attrelid = 'docs'::regclass and attname = $1 and not attisdropped`,
    [column],
  );
  return rows[0]?.type;
}

/** A connection holding the table ACCESS SHARE in an open transaction: a long report, say. */
async function holdTable(): Promise<pg.Client> {
  const holder = new pg.Client({ connectionString: db.url });
  await holder.connect();
  await holder.query('begin');
  await holder.query('select count(*) from docs');
  return holder;
}

/** Fills the shadow column with `model`'s vectors in batches, as a re-embed's walk does. */
async function fillShadow(model: number, dims: number): Promise<void> {
  for (let from = 0; from < ROWS; from += 500) {
    await db.pool.query(
      `update docs set embedding_next = ${modelVectorSql(model, dims)} where id > $1 and id <= $2`,
      [from, from + 500],
    );
  }
}

describe('the shadow column of a column re-embed', () => {
  before(async () => {
    db = await createTestDatabase('shadow_column');
    await db.pool.query('create extension if not exists vector');
    await db.pool.query(
      'create table docs (id bigint primary key, body text, embedding vector(8))',
    );
    await db.pool.query(
      `insert into docs (id, body) select g, 'Document ' || g from generate_series(1, ${ROWS}) g`,
    );
    await db.pool.query(`update docs set embedding = ${modelVectorSql(1, 8)}`);
    await db.pool.query(
      `create index ${indexNameOf('docs', 'embedding')} on docs using hnsw (embedding vector_cosine_ops)`,
    );
    await db.pool.query(`comment on column docs.embedding is 'the document''s meaning'`);
  });
  after(async () => db?.drop());

  it("refuses a column of the user's that has the shadow column's name", async () => {
    await db.pool.query('alter table docs add column embedding_next text');
    try {
      await assert.rejects(
        withShortLocks(db.pool, 'add', (c) =>
          addShadowColumn(c, target(4), owner, { fresh: true }),
        ),
        (err: Error) =>
          err instanceof ShadowColumnTakenError &&
          /"embedding_next" of public.docs/.test(err.message),
      );
      assert.equal(await columnType('embedding_next'), 'text');
    } finally {
      await db.pool.query('alter table docs drop column embedding_next');
    }
  });

  it('gives way to a transaction holding the table, attempt after attempt, without queueing readers', async () => {
    const holder = await holdTable();
    const readsBetween: number[] = [];
    try {
      const { result, attempts } = await withShortLocks(
        db.pool,
        'add the shadow column',
        (c) => addShadowColumn(c, target(4), owner, { fresh: true }),
        {
          lockTimeoutMs: 50,
          sleep: noPause,
          onRetry: async (attempt) => {
            // Between attempts nothing waits for the table: a reader is answered at once.
            const { rows } = await db.pool.query<{ n: number }>(
              'select count(*)::int as n from docs',
            );
            readsBetween.push(rows[0]?.n ?? -1);
            if (attempt === 3) await holder.query('commit');
          },
        },
      );
      assert.equal(result, 'added');
      assert.equal(attempts, 4); // three gave way to the holder, the fourth found the table free
      assert.deepEqual(readsBetween, [ROWS, ROWS, ROWS]);
      assert.equal(await columnType('embedding_next'), 'vector(4)');
      // Added again by a retry of the step: kept, not rebuilt.
      const again = await withShortLocks(db.pool, 'add', (c) =>
        addShadowColumn(c, target(4), owner, { fresh: false }),
      );
      assert.equal(again.result, 'kept');
    } finally {
      await holder.end();
    }
  });

  it('gives up after its attempts with an error that says what held it, leaving the table as it was', async () => {
    const holder = await holdTable();
    try {
      await assert.rejects(
        withShortLocks(
          db.pool,
          'drop the shadow column',
          (c) => dropShadowColumn(c, target(4), owner),
          { lockTimeoutMs: 20, attempts: 3, sleep: noPause },
        ),
        (err: Error) =>
          err instanceof LockUnavailableError &&
          err.attempts === 3 &&
          /drop the shadow column/.test(err.message),
      );
      assert.equal(await columnType('embedding_next'), 'vector(4)');
      // The holder's transaction was never disturbed.
      const { rows } = await holder.query<{ n: number }>('select count(*)::int as n from docs');
      assert.equal(rows[0]?.n, ROWS);
    } finally {
      await holder.end();
    }
  });

  it('a view reading the live column stops the swap with an error naming it, changing nothing', async () => {
    await db.pool.query('create view docs_vectors as select id, embedding from docs');
    try {
      await assert.rejects(
        withShortLocks(db.pool, 'swap', (c) => swapShadowColumn(c, target(4), owner)),
        (err: Error) => err instanceof LiveColumnPinnedError && /docs_vectors/.test(err.message),
      );
      assert.equal(await columnType('embedding'), 'vector(8)');
      assert.equal(await columnType('embedding_next'), 'vector(4)');
    } finally {
      await db.pool.query('drop view docs_vectors');
    }
  });

  /**
   * Query loops run before, through and after the swap, which first gives way to a holder of the
   * table; returns what they saw.
   */
  async function swapUnderQueries(dims: number): Promise<Map<string, number>> {
    const loops: QueryLoop[] = [];
    let swap: { attempts: number } | undefined;
    try {
      for (let i = 0; i < 3; i += 1)
        loops.push(startQueryLoop(db.pool, 'docs', 'embedding', { modelOf, queryVector }));
      await waitFor('queries before the swap', () =>
        Promise.resolve(loops.every((l) => l.queries >= 20)),
      );
      const holder = await holdTable();
      try {
        swap = await withShortLocks(
          db.pool,
          'swap',
          (c) => swapShadowColumn(c, target(dims), owner),
          {
            lockTimeoutMs: 50,
            sleep: noPause,
            onRetry: async (attempt) => {
              if (attempt === 2) await holder.query('commit');
            },
          },
        );
      } finally {
        await holder.end();
      }
      const at = loops.map((l) => l.queries);
      await waitFor('queries after the swap', () =>
        Promise.resolve(loops.every((l, i) => l.queries >= (at[i] ?? 0) + 20)),
      );
    } finally {
      loops.forEach((l) => void l.stop()); // stopped at once whatever failed; awaited below
    }
    const results = await Promise.all(loops.map((l) => l.stop()));
    // Two gave way to the holder; under load a reader's query can outlast a 50 ms attempt too, so
    // more may give way before one finds the table free.
    assert.ok((swap?.attempts ?? 0) >= 3, `the swap took ${swap?.attempts} attempts`);
    assert.deepEqual(
      results.flatMap((r) => r.failures),
      [],
      'no query failed',
    );
    assert.deepEqual(
      results.flatMap((r) => r.mixed),
      [],
      'no answer mixed models',
    );
    const models = new Map<string, number>();
    for (const r of results) for (const [m, n] of r.models) models.set(m, (models.get(m) ?? 0) + n);
    return models;
  }

  it('swaps by rename while queries run: none fails, none mixes models, the column and its index follow', async () => {
    await fillShadow(2, 4);
    // As a walk's end builds it (buildIndex): concurrently, under the shadow column's own name.
    await db.pool.query(
      `create index concurrently ${indexNameOf('docs', 'embedding_next')} on docs using hnsw (embedding_next vector_cosine_ops)`,
    );
    const models = await swapUnderQueries(4);
    assert.deepEqual([...models.keys()].sort(), ['model 1 (8 dims)', 'model 2 (4 dims)']);
    assert.equal(await columnType('embedding'), 'vector(4)');
    assert.equal(await columnType('embedding_next'), undefined);
    const { rows } = await db.pool.query<{ index: string; comment: string; nulls: number }>(
      `select (select indexrelid::regclass::text from pg_index i join pg_attribute a
                  on a.attrelid = i.indrelid and a.attnum = i.indkey[0]
                where i.indrelid = 'docs'::regclass and a.attname = 'embedding') as index,
              col_description('docs'::regclass, (select attnum from pg_attribute
                where attrelid = 'docs'::regclass and attname = 'embedding')) as comment,
              (select count(*)::int from docs where embedding is null) as nulls`,
    );
    assert.deepEqual(rows[0], {
      index: indexNameOf('docs', 'embedding'),
      comment: "the document's meaning",
      nulls: 0,
    });
  });

  it('a model of the same dimension swaps in the same way, each answer all old or all new', async () => {
    await withShortLocks(db.pool, 'add', (c) =>
      addShadowColumn(c, target(4), { ...owner, generation: 3 }, { fresh: true }),
    );
    await fillShadow(3, 4);
    const models = await swapUnderQueries(4);
    assert.deepEqual([...models.keys()].sort(), ['model 2 (4 dims)', 'model 3 (4 dims)']);
  });

  it('abandoning drops the shadow column and leaves the live column untouched', async () => {
    const before = await db.pool.query<{ v: string }>(
      "select md5(string_agg(embedding::text, '' order by id)) as v from docs",
    );
    await withShortLocks(db.pool, 'add', (c) =>
      addShadowColumn(c, target(16), { ...owner, generation: 4 }, { fresh: true }),
    );
    await fillShadow(4, 16);
    const dropped = await withShortLocks(db.pool, 'abandon', (c) =>
      dropShadowColumn(c, target(16), owner),
    );
    assert.equal(dropped.result, true);
    assert.equal(await columnType('embedding_next'), undefined);
    assert.equal(await columnType('embedding'), 'vector(4)');
    const afterwards = await db.pool.query<{ v: string }>(
      "select md5(string_agg(embedding::text, '' order by id)) as v from docs",
    );
    assert.equal(afterwards.rows[0]?.v, before.rows[0]?.v);
  });

  it('a statement prepared before a dimension change that returns the column fails on that connection; one that returns no vector does not', async () => {
    // The cost decision 20 names: the column's type is part of the statement's result.
    const client = await db.pool.connect();
    try {
      const withVectors = {
        name: 'nearest_with_vectors',
        text: 'select id, embedding from docs order by embedding <=> $1 limit 3',
      };
      const idsOnly = {
        name: 'nearest_ids',
        text: 'select id, embedding <=> $1 as distance from docs order by embedding <=> $1 limit 3',
      };
      await client.query({ ...withVectors, values: [JSON.stringify(queryVector(4))] });
      await client.query({ ...idsOnly, values: [JSON.stringify(queryVector(4))] });
      await withShortLocks(db.pool, 'add', (c) =>
        addShadowColumn(c, target(6), { ...owner, generation: 5 }, { fresh: true }),
      );
      await fillShadow(5, 6);
      await withShortLocks(db.pool, 'swap', (c) => swapShadowColumn(c, target(6), owner));
      // On every use, on that connection, until it is prepared again there.
      for (let i = 0; i < 2; i += 1) {
        await assert.rejects(
          client.query({ ...withVectors, values: [JSON.stringify(queryVector(6))] }),
          /cached plan must not change result type/,
        );
      }
      // A statement that returns no vector (ids, distances) is planned again silently.
      const ids = await client.query({ ...idsOnly, values: [JSON.stringify(queryVector(6))] });
      assert.equal(ids.rowCount, 3);
    } finally {
      client.release(true);
    }
  });
});
