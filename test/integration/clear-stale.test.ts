// onContentChange: clear (docs/architecture.md, decision 19): a changed row's old vectors are
// invisible to the view and to search from the commit of the change until its new ones are written,
// checked against the real pipeline with its sync held back, and the writers' settling of marks
// driven step by step from two connections.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { piecesOf } from '../../activities/batch-write.js';
import { emptyResult, writeRows } from '../../activities/walk-batch.js';
import type { ActivityDeps } from '../../activities/deps.js';
import { removePipeline } from '../../src/capture/apply.js';
import { startReembed } from '../../src/reembed/start.js';
import { chunkDocument } from '../../src/chunking/document.js';
import { getPipeline, setSyncPaused } from '../../src/db/catalog.js';
import type { Pool } from '../../src/db/pool.js';
import { readSourceRows } from '../../src/db/source.js';
import { featureHashEmbedding } from '../../src/providers/offline.js';
import { createProviders } from '../../src/providers/index.js';
import { search } from '../../src/search/index.js';
import { gatherStatus } from '../../src/status/index.js';
import {
  applyPipeline,
  PRODUCTS_TABLE,
  productsPipeline,
  startHarness,
  uniqueName,
  type Harness,
} from '../helpers/harness.js';
import { waitConverged } from '../helpers/converged.js';
import { waitFor } from '../helpers/wait.js';

let h: Harness;
const providers = createProviders();

async function insertProduct(table: string, name: string, description: string): Promise<string> {
  const { rows } = await h.db.pool.query<{ id: string }>(
    `insert into ${table} (name, description, category, price) values ($1, $2, 'kitchen', 10) returning id::text`,
    [name, description],
  );
  return rows[0]?.id ?? '';
}

const converged = (pipeline: string): Promise<unknown> => waitConverged(h.db.pool, pipeline);

/**
 * Four users' sessions, 25 transactions each, each setting `column` of two of the rows, always in
 * key order so the users' own writes cannot deadlock, while embedsync writes the same rows.
 */
async function concurrentUpdates(
  table: string,
  column: string,
  ids: readonly string[],
  text: string,
): Promise<{ failures: unknown[]; commits: number }> {
  const failures: unknown[] = [];
  let commits = 0;
  await Promise.all(
    [0, 1, 2, 3].map(async (w) => {
      const client = await h.db.pool.connect();
      try {
        for (let n = 0; n < 25; n += 1) {
          const keys = [ids[(w + n) % ids.length], ids[(w + n + 1) % ids.length]].sort();
          try {
            await client.query('begin');
            for (const k of keys)
              await client.query(`update ${table} set ${column} = $2 where id = $1`, [
                k,
                `${text} by writer ${w}, round ${n}`,
              ]);
            await client.query('commit');
            commits += 1;
          } catch (err) {
            failures.push(err);
            await client.query('rollback').catch(() => undefined);
          }
        }
      } finally {
        client.release();
      }
    }),
  );
  return { failures, commits };
}

/** The chunks the pipeline's view shows for the row. */
async function viewChunks(view: string, id: string): Promise<string[]> {
  const { rows } = await h.db.pool.query<{ chunk: string }>(
    `select chunk from ${view} where id = $1::bigint order by chunk_index`,
    [id],
  );
  return rows.map((r) => r.chunk);
}

/** The chunks in the vector table itself, which clear does not touch. */
async function tableChunks(table: string, id: string): Promise<string[]> {
  const { rows } = await h.db.pool.query<{ chunk: string }>(
    `select chunk from ${table} where pk = $1 order by chunk_index`,
    [id],
  );
  return rows.map((r) => r.chunk);
}

/** The keys search returns for the text, asking for more rows than the table has. */
async function searchKeys(pipeline: string, text: string): Promise<string[]> {
  const hits = await search(h.db.pool, providers, pipeline, text, { limit: 100, filters: [] });
  return hits.map((x) => x.pk);
}

async function marks(pipeline: string, pk?: string): Promise<number> {
  const { rows } = await h.db.pool.query<{ n: number }>(
    'select count(*)::int as n from embedsync.stale_keys where pipeline = $1 and ($2::text is null or pk = $2)',
    [pipeline, pk ?? null],
  );
  return rows[0]?.n ?? -1;
}

/** What status says is hidden (undefined: the pipeline keeps its old vectors). */
async function hiddenInStatus(pipeline: string): Promise<number | null | undefined> {
  const report = await gatherStatus(
    h.db.pool,
    { address: '', namespace: '', base: '', client: undefined, error: 'not asked' },
    pipeline,
  );
  return report.pipelines[0]?.hidden;
}

/** Runs fn with the pipeline's sync paused: its changes wait in the outbox. */
async function heldBack<T>(pipeline: string, fn: () => Promise<T>): Promise<T> {
  await setSyncPaused(h.db.pool, pipeline, true);
  try {
    return await fn();
  } finally {
    await setSyncPaused(h.db.pool, pipeline, false);
  }
}

/**
 * A pool whose connections run `after` once, right after the first statement that matches `when`:
 * a step of another connection placed exactly there in the writer's transaction.
 */
function interleaved(pool: Pool, when: RegExp, after: () => Promise<void>): Pool {
  let done = false;
  const connect = async (): Promise<pg.PoolClient> => {
    const client = await pool.connect();
    const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
    const release = client.release.bind(client);
    const wrapped = async (...args: unknown[]): Promise<unknown> => {
      const result = await query(...args);
      if (!done && typeof args[0] === 'string' && when.test(args[0])) {
        done = true;
        await after();
      }
      return result;
    };
    client.query = wrapped as typeof client.query;
    // Back to the pool as it came: the prototype's query, the pool's release.
    client.release = (...args) => {
      Reflect.deleteProperty(client, 'query');
      client.release = release;
      release(...args);
    };
    return client;
  };
  return Object.assign(Object.create(pool) as Pool, { connect });
}

before(async () => {
  h = await startHarness('clear-stale');
});
after(async () => h.stop());

describe('clearing stale vectors, vector-table mode', () => {
  before(async () => {
    await h.db.pool.query(PRODUCTS_TABLE);
    await h.db.pool.query(PRODUCTS_TABLE.replace('products', 'gadgets'));
    await applyPipeline(
      h,
      productsPipeline({ onContentChange: 'clear' }),
      productsPipeline({ name: 'gadgets', source: { table: 'public.gadgets' } }),
    );
  });

  it('a changed row is not found by its old vectors until its new ones are written', async () => {
    const id = await insertProduct('products', 'Kettle', 'Stovetop kettle in enamel');
    const other = await insertProduct('products', 'Teapot', 'Stovetop teapot in enamel');
    await converged('products');
    assert.ok((await searchKeys('products', 'Stovetop kettle in enamel')).includes(id));
    await heldBack('products', async () => {
      await h.db.pool.query(
        `update products set description = 'Electric kettle with a thermostat' where id = $1`,
        [id],
      );
      // The old vectors are still there, but neither the view nor search return them.
      assert.deepEqual(await tableChunks('products_embeddings', id), [
        'Product: Kettle\nStovetop kettle in enamel',
      ]);
      assert.deepEqual(await viewChunks('products_embeddings_view', id), []);
      const found = await searchKeys('products', 'Stovetop kettle in enamel');
      assert.ok(!found.includes(id), `search returned the changed row: ${found.join(', ')}`);
      assert.ok(found.includes(other), 'an unchanged row is still found');
      assert.equal(await marks('products', id), 1);
      assert.equal(await hiddenInStatus('products'), 1);
    });
    await waitFor('the new vectors in the view', async () =>
      (await viewChunks('products_embeddings_view', id))[0]?.includes('thermostat'),
    );
    assert.ok((await searchKeys('products', 'Electric kettle with a thermostat')).includes(id));
    await converged('products');
    assert.equal(await marks('products'), 0);
  });

  it('a metadata-only change does not hide the row', async () => {
    const id = await insertProduct('products', 'Whisk', 'Balloon whisk');
    await converged('products');
    await heldBack('products', async () => {
      await h.db.pool.query('update products set price = price + 5, category = $2 where id = $1', [
        id,
        'baking',
      ]);
      assert.equal(await marks('products', id), 0);
      assert.deepEqual(await viewChunks('products_embeddings_view', id), [
        'Product: Whisk\nBalloon whisk',
      ]);
      assert.ok((await searchKeys('products', 'Balloon whisk')).includes(id));
    });
    await converged('products');
  });

  it('keep, the default, serves the old vectors until the new ones are written', async () => {
    const id = await insertProduct('gadgets', 'Lamp', 'Brass desk lamp');
    await converged('gadgets');
    await heldBack('gadgets', async () => {
      await h.db.pool.query(`update gadgets set description = 'LED floor lamp' where id = $1`, [
        id,
      ]);
      assert.equal(await marks('gadgets'), 0);
      assert.equal(await hiddenInStatus('gadgets'), undefined);
      assert.deepEqual(await viewChunks('gadgets_embeddings_view', id), [
        'Product: Lamp\nBrass desk lamp',
      ]);
      assert.ok((await searchKeys('gadgets', 'Brass desk lamp')).includes(id));
    });
    await waitFor('the new vectors', async () =>
      (await viewChunks('gadgets_embeddings_view', id))[0]?.includes('LED'),
    );
    await converged('gadgets');
  });

  it('a change committed after a write read the row keeps its mark; one committed before loses it', async () => {
    const id = await insertProduct('products', 'Grater', 'Box grater');
    await converged('products');
    await heldBack('products', async () => {
      await h.db.pool.query(`update products set description = 'Rotary grater' where id = $1`, [
        id,
      ]);
      const p = await getPipeline(h.db.pool, 'products');
      const [row] = await readSourceRows(h.db.pool, p, [id]);
      assert.ok(row);
      const chunks = chunkDocument(p.config, row.document, row.context);
      const vectors = chunks.map((c) => featureHashEmbedding(c, 64));
      // The writer's transaction re-reads the source row; right then, another connection commits a
      // second change of it.
      const pool = interleaved(h.db.pool, /from unnest\(\$1::text\[\]\) as k\(pk\)/, async () => {
        await h.db.pool.query(`update products set description = 'Microplane' where id = $1`, [id]);
      });
      const deps = { pool, log: h.log, providers: new Map() } as unknown as ActivityDeps;
      const result = emptyResult();
      await writeRows(
        deps,
        p,
        'test:interleaved',
        [
          {
            row: {
              pk: id,
              action: 'embed',
              document: null,
              context: null,
              contentHash: row.contentHash,
            },
            pieces: piecesOf(id, chunks, vectors),
          },
        ],
        result,
      );
      assert.equal(result.written, 1, 'the row as read was written');
      // The first change's mark went with the write; the second's stays, so the row stays hidden.
      assert.deepEqual(await tableChunks('products_embeddings', id), [
        'Product: Grater\nRotary grater',
      ]);
      assert.equal(await marks('products', id), 1);
      assert.deepEqual(await viewChunks('products_embeddings_view', id), []);
    });
    await waitFor('the last content in the view', async () =>
      (await viewChunks('products_embeddings_view', id))[0]?.includes('Microplane'),
    );
    await converged('products');
    assert.equal(await marks('products'), 0);
  });

  it('a row the write finds changed again is dropped as stale and keeps its mark', async () => {
    const id = await insertProduct('products', 'Sieve', 'Fine sieve');
    await converged('products');
    await heldBack('products', async () => {
      const p = await getPipeline(h.db.pool, 'products');
      const [before] = await readSourceRows(h.db.pool, p, [id]);
      assert.ok(before);
      await h.db.pool.query(`update products set description = 'Coarse sieve' where id = $1`, [id]);
      const chunks = chunkDocument(p.config, before.document, before.context);
      const result = emptyResult();
      await writeRows(
        { pool: h.db.pool, log: h.log, providers: new Map() },
        p,
        'test:stale',
        [
          {
            row: {
              pk: id,
              action: 'embed',
              document: null,
              context: null,
              contentHash: before.contentHash,
            },
            pieces: piecesOf(
              id,
              chunks,
              chunks.map((c) => featureHashEmbedding(c, 64)),
            ),
          },
        ],
        result,
      );
      assert.equal(result.stale, 1);
      assert.equal(await marks('products', id), 1);
      assert.deepEqual(await viewChunks('products_embeddings_view', id), []);
    });
    await converged('products');
    assert.equal(await marks('products'), 0);
  });

  it('a key deleted and inserted again is hidden until the new row is embedded', async () => {
    const id = await insertProduct('products', 'Ladle', 'Steel ladle');
    await converged('products');
    await heldBack('products', async () => {
      await h.db.pool.query('delete from products where id = $1', [id]);
      await h.db.pool.query(
        `insert into products (id, name, description, category, price) values ($1, 'Spatula', 'Silicone spatula', 'kitchen', 4)`,
        [id],
      );
      assert.deepEqual(await tableChunks('products_embeddings', id), [
        'Product: Ladle\nSteel ladle',
      ]);
      assert.deepEqual(await viewChunks('products_embeddings_view', id), []);
    });
    await waitFor('the new row in the view', async () =>
      (await viewChunks('products_embeddings_view', id))[0]?.includes('Spatula'),
    );
    await converged('products');
    assert.equal(await marks('products'), 0);
  });

  it('concurrent user updates and embedsync writes on the same keys never fail a user transaction', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i += 1) ids.push(await insertProduct('products', `Pan ${i}`, 'Pan'));
    await converged('products');
    const { failures, commits } = await concurrentUpdates('products', 'description', ids, 'Pan');
    assert.deepEqual(failures, []);
    assert.equal(commits, 100);
    await converged('products');
    assert.equal(await marks('products'), 0);
    const { rows } = await h.db.pool.query<{ ok: boolean }>(
      `select bool_and(v.chunk = 'Product: ' || p.name || E'\\n' || p.description) as ok
         from products p join products_embeddings_view v on v.id = p.id where p.id = any($1::bigint[])`,
      [ids],
    );
    assert.equal(rows[0]?.ok, true);
  });

  it('a TRUNCATE hides every row until its sync has swept the vectors', async () => {
    await insertProduct('products', 'Colander', 'Steel colander');
    await converged('products');
    await heldBack('products', async () => {
      await h.db.pool.query('truncate products');
      const id = await insertProduct('products', 'Funnel', 'Steel funnel');
      assert.deepEqual(await viewChunks('products_embeddings_view', id), []);
      const { rows } = await h.db.pool.query<{ n: number }>(
        'select count(*)::int as n from products_embeddings_view',
      );
      assert.equal(rows[0]?.n, 0);
      assert.equal(await hiddenInStatus('products'), null);
    });
    await converged('products');
    assert.equal(await marks('products'), 0);
    assert.equal(await hiddenInStatus('products'), 0);
    const { rows } = await h.db.pool.query<{ n: number }>(
      'select count(*)::int as n from products_embeddings_view',
    );
    assert.equal(rows[0]?.n, 1);
  });

  it("a re-embed's swap settles the marks its new table's vectors answer", async () => {
    // Workflow ids name the pipeline, and every test file shares the namespace.
    const name = uniqueName('shelf');
    const pipeline = (dimensions: number) =>
      productsPipeline({
        name,
        source: { table: `public.${name}` },
        embedding: { provider: 'offline', model: 'feature-hash-v1', dimensions },
        onContentChange: 'clear',
      });
    await h.db.pool.query(PRODUCTS_TABLE.replace('products', name));
    await applyPipeline(h, pipeline(64));
    const id = await insertProduct(name, 'Shelf', 'Pine shelf');
    await converged(name);
    await heldBack(name, async () => {
      await h.db.pool.query(`update ${name} set description = 'Oak shelf' where id = $1`, [id]);
      assert.equal(await marks(name, id), 1);
      await applyPipeline(h, pipeline(32));
      // The re-embed's walk reads the row as it is now; its sync is still held back.
      const p = await getPipeline(h.db.pool, name);
      const handle = await startReembed(h.client, p, {
        taskQueue: h.taskQueue,
        instanceId: h.instanceId,
        rows: 1,
      });
      assert.equal((await handle.result()).generation, 2);
      assert.equal(await marks(name, id), 0);
      assert.deepEqual(await viewChunks(`${name}_embeddings_view`, id), [
        'Product: Shelf\nOak shelf',
      ]);
    });
    await converged(name);
  });

  it('removing the pipeline takes its marks with it', async () => {
    const id = await insertProduct('products', 'Tongs', 'Steel tongs');
    await converged('products');
    await setSyncPaused(h.db.pool, 'products', true);
    await h.db.pool.query(`update products set description = 'Bamboo tongs' where id = $1`, [id]);
    assert.equal(await marks('products'), 1);
    await removePipeline(h.db.pool, 'products');
    assert.equal(await marks('products'), 0);
  });
});

describe('clearing stale vectors, column mode', () => {
  const docs = (onContentChange: 'keep' | 'clear') =>
    productsPipeline({
      name: 'docs',
      source: { table: 'public.docs' },
      embed: { columns: ['title', 'body'] },
      metadata: [],
      destination: { column: 'embedding', truncate: false, index: false },
      onContentChange,
    });
  const VECTOR = `[${Array.from({ length: 64 }, (_, i) => (i === 0 ? 1 : 0)).join(',')}]`;

  /** A row with a vector in its column, its sync held back so only the trigger touches it. */
  async function docWithVector(): Promise<string> {
    const { rows } = await h.db.pool.query<{ id: string }>(
      `insert into docs (title, body, notes, embedding) values ('Care guide', 'Wash cold', 'n', $1) returning id::text`,
      [VECTOR],
    );
    return rows[0]?.id ?? '';
  }
  async function hasVector(id: string): Promise<boolean> {
    const { rows } = await h.db.pool.query<{ has: boolean }>(
      'select embedding is not null as has from docs where id = $1',
      [id],
    );
    return rows[0]?.has ?? false;
  }

  before(async () => {
    await h.db.pool.query(
      `create table docs (id bigint generated by default as identity primary key, title text, body text,
                          notes text, embedding vector(64))`,
    );
    await applyPipeline(h, docs('clear'));
    await setSyncPaused(h.db.pool, 'docs', true);
  });

  it("a content change sets the row's vector to NULL in the user's own transaction", async () => {
    const id = await docWithVector();
    const client = await h.db.pool.connect();
    try {
      await client.query('begin');
      const { rows } = await client.query<{ cleared: boolean }>(
        `update docs set body = 'Wash warm' where id = $1 returning embedding is null as cleared`,
        [id],
      );
      assert.equal(rows[0]?.cleared, true);
      await client.query('commit');
    } finally {
      client.release();
    }
    assert.equal(await hasVector(id), false);
    // Ordered by distance, the row is not found by the vector it had.
    const { rows } = await h.db.pool.query<{ id: string }>(
      'select id::text from docs where embedding is not null order by embedding <=> $1 limit 10',
      [VECTOR],
    );
    assert.ok(!rows.some((r) => r.id === id));
  });

  it('a change of another column, the same content again, or a new vector leaves it', async () => {
    const id = await docWithVector();
    await h.db.pool.query(`update docs set notes = 'restocked' where id = $1`, [id]);
    assert.equal(await hasVector(id), true);
    await h.db.pool.query(`update docs set title = title, body = body where id = $1`, [id]);
    assert.equal(await hasVector(id), true);
    // What the writer of the new vector does: only the vector column changes.
    await h.db.pool.query(`update docs set embedding = $2 where id = $1`, [id, VECTOR]);
    assert.equal(await hasVector(id), true);
  });

  it('while a re-embed is pending, a content change clears the shadow column too, which may not exist yet', async () => {
    const pending = docs('clear');
    await applyPipeline(h, {
      ...pending,
      embedding: { provider: 'offline', model: 'feature-hash-v1', dimensions: 32 },
    });
    try {
      assert.equal((await getPipeline(h.db.pool, 'docs')).state, 'reembed_pending');
      // Before the re-embed's prepare adds the shadow column: the update works, the live one clears.
      const first = await docWithVector();
      await h.db.pool.query(`update docs set body = 'Iron low' where id = $1`, [first]);
      assert.equal(await hasVector(first), false);
      // With the shadow column holding a vector of the old text, both are cleared.
      await h.db.pool.query('alter table docs add column embedding_next vector(32)');
      const second = await docWithVector();
      const shadow = `[${Array.from({ length: 32 }, () => 0.5).join(',')}]`;
      await h.db.pool.query('update docs set embedding_next = $2 where id = $1', [second, shadow]);
      const { rows } = await h.db.pool.query<{ live: boolean; next: boolean }>(
        `update docs set title = 'Care card' where id = $1
         returning embedding is null as live, embedding_next is null as next`,
        [second],
      );
      assert.deepEqual(rows[0], { live: true, next: true });
      // A change of another column leaves the shadow's vector.
      await h.db.pool.query('update docs set embedding_next = $2 where id = $1', [second, shadow]);
      const other = await h.db.pool.query<{ next: boolean }>(
        `update docs set notes = 'x' where id = $1 returning embedding_next is null as next`,
        [second],
      );
      assert.equal(other.rows[0]?.next, false);
    } finally {
      await h.db.pool.query('alter table docs drop column if exists embedding_next');
      await applyPipeline(h, docs('clear'));
    }
  });

  it('keep drops the trigger: the vector stays until the new one is written', async () => {
    await applyPipeline(h, docs('keep'));
    try {
      const id = await docWithVector();
      await h.db.pool.query(`update docs set body = 'Dry clean' where id = $1`, [id]);
      assert.equal(await hasVector(id), true);
    } finally {
      await applyPipeline(h, docs('clear'));
    }
  });

  it('end to end: a changed row is not found by its old vector until the sync writes the new one', async () => {
    await setSyncPaused(h.db.pool, 'docs', false);
    try {
      const { rows } = await h.db.pool.query<{ id: string }>(
        `insert into docs (title, body) values ('Tent care', 'Dry the fly before packing') returning id::text`,
      );
      const id = rows[0]?.id ?? '';
      await converged('docs');
      const old = await h.db.pool.query<{ v: string }>(
        'select embedding::text as v from docs where id = $1',
        [id],
      );
      const oldVector = old.rows[0]?.v ?? '';
      assert.ok(oldVector);
      assert.ok((await searchKeys('docs', 'Tent care Dry the fly before packing')).includes(id));
      await heldBack('docs', async () => {
        await h.db.pool.query(
          `update docs set body = 'Seal the seams every season' where id = $1`,
          [id],
        );
        // The nearest rows to its old vector, with or without the index, and search: not it.
        const nearest = await h.db.pool.query<{ id: string }>(
          'select id::text from docs where embedding is not null order by embedding <=> $1 limit 100',
          [oldVector],
        );
        assert.ok(!nearest.rows.some((r) => r.id === id));
        const found = await searchKeys('docs', 'Tent care Dry the fly before packing');
        assert.ok(!found.includes(id), `search returned the changed row: ${found.join(', ')}`);
      });
      await converged('docs');
      assert.equal(await hasVector(id), true);
      const now = await h.db.pool.query<{ v: string }>(
        'select embedding::text as v from docs where id = $1',
        [id],
      );
      assert.notEqual(now.rows[0]?.v, oldVector);
      assert.ok((await searchKeys('docs', 'Tent care Seal the seams every season')).includes(id));
    } finally {
      await setSyncPaused(h.db.pool, 'docs', true);
    }
  });

  it("concurrent user updates and the column's writes never fail a user transaction", async () => {
    await setSyncPaused(h.db.pool, 'docs', false);
    try {
      const ids: string[] = [];
      for (let i = 0; i < 5; i += 1) {
        const { rows } = await h.db.pool.query<{ id: string }>(
          `insert into docs (title, body) values ($1, 'Pole') returning id::text`,
          [`Pole ${i}`],
        );
        ids.push(rows[0]?.id ?? '');
      }
      await converged('docs');
      const { failures, commits } = await concurrentUpdates('docs', 'body', ids, 'Pole');
      assert.deepEqual(failures, []);
      assert.equal(commits, 100);
      await converged('docs');
      for (const id of ids) assert.equal(await hasVector(id), true);
    } finally {
      await setSyncPaused(h.db.pool, 'docs', true);
    }
  });

  it("an embedded column renamed or dropped never fails the user's update", async () => {
    const id = await docWithVector();
    await h.db.pool.query('alter table docs rename column body to content');
    await h.db.pool.query(`update docs set content = 'Hand wash', title = 'Guide' where id = $1`, [
      id,
    ]);
    await h.db.pool.query('alter table docs drop column content cascade');
    await h.db.pool.query(`update docs set title = 'Care' where id = $1`, [id]);
    const { rows } = await h.db.pool.query<{ title: string }>(
      'select title from docs where id = $1',
      [id],
    );
    assert.equal(rows[0]?.title, 'Care');
  });
});
