// Change sync end to end: trigger → outbox → poller → Temporal → pgvector, checked in the database.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { verifyPipeline } from '../../src/verify/verify.js';
import {
  applyPipeline,
  PRODUCTS_TABLE,
  productsPipeline,
  startHarness,
  type Harness,
} from '../helpers/harness.js';
import { waitFor } from '../helpers/wait.js';

let h: Harness;

async function outboxSize(): Promise<number> {
  const { rows } = await h.db.pool.query<{ n: number }>(
    'select count(*)::int as n from embedsync.outbox',
  );
  return rows[0]?.n ?? -1;
}

/** Waits until the outbox is drained and every row's vectors match its current content. */
async function converged(): Promise<void> {
  await waitFor(
    'the pipeline to converge',
    async () => {
      if ((await outboxSize()) > 0) return false;
      const r = await verifyPipeline(h.db.pool, 'products');
      return r.missing.length + r.stale.length + r.orphaned.length === 0 ? r : false;
    },
    60_000,
  ); // a megabyte of text is thousands of chunks: on a busy machine, more than 20 s
}

async function vectors(
  pk: string,
): Promise<{ chunk: string; generation: number; metadata: Record<string, unknown> }[]> {
  const { rows } = await h.db.pool.query(
    'select chunk, generation, metadata from public.products_embeddings where pk = $1 order by chunk_index',
    [pk],
  );
  return rows as { chunk: string; generation: number; metadata: Record<string, unknown> }[];
}

describe('change sync', () => {
  before(async () => {
    h = await startHarness('sync');
    await h.db.pool.query(PRODUCTS_TABLE);
    await applyPipeline(h, productsPipeline());
  });
  after(async () => h.stop());
  beforeEach(() => h.provider.reset());

  it('an inserted row gets the chunks of its content', async () => {
    const { rows } = await h.db.pool.query<{ id: string }>(
      `insert into products (name, description, category, price) values ('Alpine Tent', 'Two-person tent for storms', 'outdoor', 249) returning id::text`,
    );
    const pk = rows[0]?.id ?? '';
    const chunks = await waitFor('the vector row', async () =>
      (await vectors(pk)).length > 0 ? vectors(pk) : false,
    );
    assert.deepEqual(
      chunks.map((c) => c.chunk),
      ['Product: Alpine Tent\nTwo-person tent for storms'],
    );
    assert.deepEqual(chunks[0]?.metadata, { category: 'outdoor', price: 249, in_stock: true });
    assert.equal(chunks[0]?.generation, 1);
    await converged();
  });

  it('an update re-embeds the new content and a delete removes the vectors', async () => {
    const { rows } = await h.db.pool.query<{ id: string }>(
      `insert into products (name, description, category, price) values ('Kettle', 'Stovetop kettle', 'kitchen', 40) returning id::text`,
    );
    const pk = rows[0]?.id ?? '';
    await converged();
    await h.db.pool.query(
      `update products set description = 'Electric kettle with a thermostat' where id = $1`,
      [pk],
    );
    await waitFor('the new content', async () =>
      (await vectors(pk))[0]?.chunk.includes('thermostat'),
    );
    await converged();
    await h.db.pool.query('delete from products where id = $1', [pk]);
    await waitFor('the vectors to go', async () => (await vectors(pk)).length === 0);
    await converged();
  });

  it('an update of a column the pipeline does not read enqueues nothing', async () => {
    await converged();
    const { rowCount } = await h.db.pool.query(`update products set notes = 'restock in May'`);
    assert.ok((rowCount ?? 0) > 0);
    assert.equal(await outboxSize(), 0);
  });

  it('rewriting identical content does not call the provider again', async () => {
    await converged();
    h.provider.reset();
    await h.db.pool.query("update products set name = name || '', description = description");
    // The trigger compares text, so nothing is even queued; a metadata-only change is queued but
    // not embedded.
    assert.equal(await outboxSize(), 0);
    await h.db.pool.query('update products set price = price + 1');
    await converged();
    assert.equal(h.provider.texts, 0);
    const { rows } = await h.db.pool.query<{ ok: boolean }>(
      `select bool_and((v.metadata->>'price')::numeric = p.price) as ok from products p join products_embeddings v on v.pk = p.id::text`,
    );
    assert.equal(rows[0]?.ok, true);
  });

  it('one statement inserting 2,000 rows is captured in one go and every row arrives', async () => {
    await converged();
    const before = await h.db.pool.query<{ n: number }>('select count(*)::int as n from products');
    const client = await h.db.pool.connect();
    try {
      // Stop the poller from draining mid-statement so the outbox can be counted right after
      // commit.
      await client.query('begin');
      await client.query(`lock table embedsync.outbox in exclusive mode`);
      await client.query(
        `insert into products (name, description, category, price)
         select 'Item ' || g, 'Description of item ' || g, 'bulk', g from generate_series(1, 2000) g`,
      );
      // One outbox row for the statement, holding its 2,000 keys.
      const { rows } = await client.query<{ rows: number; keys: number }>(
        'select count(*)::int as rows, sum(cardinality(pks))::int as keys from embedsync.outbox',
      );
      assert.deepEqual(rows[0], { rows: 1, keys: 2000 });
      await client.query('commit');
    } finally {
      client.release();
    }
    await converged();
    const after = await h.db.pool.query<{ n: number }>(
      'select count(distinct pk)::int as n from products_embeddings',
    );
    assert.equal(after.rows[0]?.n, (before.rows[0]?.n ?? 0) + 2000 - (await emptyRows()));
  });

  it('NULLs, empty strings, emoji, CJK and 1 MB of text neither fail the write nor the batch', async () => {
    const megabyte = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit. '.repeat(18_500);
    const { rows } = await h.db.pool.query<{ id: string }>(
      `insert into products (name, description, category, price) values
        (null, null, null, null), ('', '', 'x', 1), ('🏔️🥾⛺', '🔥🔥', 'emoji', 2),
        ('登山靴', '防水性に優れた軽量の登山靴です。', 'cjk', 3), ('Huge', $1, 'big', 4)
       returning id::text`,
      [megabyte],
    );
    assert.equal(rows.length, 5);
    await converged();
    const [nothing, empty, emoji, cjk, huge] = await Promise.all(rows.map((r) => vectors(r.id)));
    assert.equal(nothing?.length, 0);
    assert.equal(empty?.length, 0);
    assert.equal(emoji?.[0]?.chunk, 'Product: 🏔️🥾⛺\n🔥🔥');
    assert.equal(cjk?.[0]?.chunk, 'Product: 登山靴\n防水性に優れた軽量の登山靴です。');
    assert.ok(
      (huge?.length ?? 0) > 2000,
      `1 MB of text should make thousands of chunks, got ${huge?.length}`,
    );
  });

  it('a primary key change moves the vectors to the new key', async () => {
    const { rows } = await h.db.pool.query<{ id: string }>(
      `insert into products (id, name, description) values (900001, 'Rename me', 'Key will change') returning id::text`,
    );
    await waitFor('the first key', async () => (await vectors(rows[0]?.id ?? '')).length === 1);
    await h.db.pool.query('update products set id = 900002 where id = 900001');
    await waitFor(
      'the new key',
      async () => (await vectors('900002')).length === 1 && (await vectors('900001')).length === 0,
    );
    await converged();
  });

  it('a repeated column heads every chunk of a long row', async () => {
    await h.db.pool.query(`create table guides (id int primary key, title text, body text)`);
    await applyPipeline(
      h,
      productsPipeline({
        name: 'guides',
        source: { table: 'guides' },
        embed: { columns: [{ column: 'title', prefix: 'Guide: ', repeat: true }, 'body'] },
        metadata: [],
        chunking: { size: 200, overlap: 20 },
      }),
    );
    const body = Array.from(
      { length: 40 },
      (_, i) => `Step ${i}: tighten the strap and check the buckle.`,
    ).join(' ');
    await h.db.pool.query(`insert into guides values (1, 'Packing a tent', $1)`, [body]);
    const chunks = await waitFor("the guide's chunks", async () => {
      const { rows } = await h.db.pool.query<{ chunk: string }>(
        `select chunk from guides_embeddings where pk = '1' order by chunk_index`,
      );
      return rows.length > 1 ? rows.map((r) => r.chunk) : false;
    });
    assert.ok(
      chunks.every((c) => c.startsWith('Guide: Packing a tent\n')),
      `a chunk lost its context: ${chunks.find((c) => !c.startsWith('Guide:'))}`,
    );
    assert.ok(chunks.every((c) => Array.from(c).length <= 200));
    const report = await verifyPipeline(h.db.pool, 'guides');
    assert.deepEqual([report.missing, report.stale, report.orphaned], [[], [], []]);
  });

  it('an UPDATE of many rows after single-row ones in one session joins its transition tables by hash or merge', async () => {
    // The capture's plan is cached by the session from its first call. A plan made for one row
    // that re-read a transition table per row took 100 s for 20,000 rows (0.1 s planned afresh).
    const { rows } = await h.db.pool.query<{ id: number }>(
      `insert into products (name, description, category, price)
       select 'Plan ' || g, 'Planned once ' || g, 'plan', g from generate_series(1, 50) g returning id`,
    );
    const ids = rows.map((r) => r.id);
    const session = await h.db.pool.connect();
    const plans: string[] = [];
    session.on('notice', (n) => plans.push(n.message ?? ''));
    try {
      for (const id of ids.slice(0, 3))
        await session.query(`update products set description = description || '.' where id = $1`, [
          id,
        ]);
      await session.query(`load 'auto_explain'`);
      await session.query(`set auto_explain.log_min_duration = 0`);
      await session.query(`set auto_explain.log_nested_statements = on`);
      await session.query(`set client_min_messages = log`);
      await session.query(
        `update products set description = description || '!' where id = any($1)`,
        [ids],
      );
    } finally {
      // auto_explain stays loaded in that backend: it does not go back to the pool.
      session.release(true);
    }
    const capture = plans.find((p) => p.includes('Named Tuplestore Scan'));
    assert.ok(capture, `no plan of the capture statement among ${plans.length} notices`);
    assert.match(capture, /(Hash|Merge) Full Join/);
    await converged();
  });

  it('TRUNCATE removes every vector and later inserts arrive again', async () => {
    await converged();
    await h.db.pool.query('truncate products');
    await h.db.pool.query(
      `insert into products (name, description) values ('After truncate', 'Fresh start')`,
    );
    await converged();
    const { rows } = await h.db.pool.query<{ n: number }>(
      'select count(*)::int as n from products_embeddings',
    );
    assert.equal(rows[0]?.n, 1);
  });
});

async function emptyRows(): Promise<number> {
  const { rows } = await h.db.pool.query<{ n: number }>(
    `select count(*)::int as n from products where coalesce(trim(name), '') = '' and coalesce(trim(description), '') = ''`,
  );
  return rows[0]?.n ?? 0;
}
