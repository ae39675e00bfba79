// Building a vector table's HNSW index after a walk (src/capture/vector-index.ts): PostgreSQL sizes
// its parallel build by the table's pages, which understate what a build reads; the build asks for
// the server's parallel maintenance workers, and leaves the table's settings as they were. And the
// vectors of 512 dimensions the build reads are in their rows, not in the TOAST table
// (decision 32), for new tables and, by migration 000023, for tables made before.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { applyPipelines } from '../../src/capture/apply.js';
import { buildIndex, deferIndexIfEmpty } from '../../src/capture/vector-index.js';
import { parsePipelines } from '../../src/config/pipeline.js';
import { REPO_ROOT } from '../../src/stack/paths.js';
import { getPipeline, type Pipeline } from '../../src/db/catalog.js';
import { qualified } from '../../src/db/ident.js';
import type { Pool } from '../../src/db/pool.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { PRODUCTS_TABLE, productsPipeline } from '../helpers/harness.js';

let db: TestDatabase;
let p: Pipeline;
const ROWS = 300;
// 512 dimensions: over 2 kB a vector, stored out of line as real embeddings of that size are.
const DIMENSIONS = 512;

/** A pool whose sessions report what the server decides (DEBUG), with `settings` applied. */
function reportingPool(settings: string[]): { pool: Pool; notices: string[] } {
  const options = ['client_min_messages=debug1', ...settings].map((s) => `-c ${s}`).join(' ');
  const pool = new pg.Pool({ connectionString: db.url, max: 2, options });
  const notices: string[] = [];
  pool.on('connect', (client) => client.on('notice', (n) => notices.push(n.message ?? '')));
  return { pool, notices };
}

async function reloptions(
  table = qualified(p.vectorSchema, p.vectorTable),
): Promise<string[] | null> {
  const { rows } = await db.pool.query<{ o: string[] | null }>(
    `select reloptions as o from pg_class where oid = $1::regclass`,
    [table],
  );
  return rows[0]?.o ?? null;
}

const INLINE = ['toast_tuple_target=8160'];

/** Bytes in the vector table's TOAST relation. */
async function toastBytes(): Promise<number> {
  const { rows } = await db.pool.query<{ n: string }>(
    `select pg_relation_size(reltoastrelid) as n from pg_class where oid = $1::regclass`,
    [qualified(p.vectorSchema, p.vectorTable)],
  );
  return Number(rows[0]?.n ?? Number.NaN);
}

/** Empties the vector table's index, as a first walk does, and fills the table. */
async function tableWithoutIndex(): Promise<void> {
  const table = qualified(p.vectorSchema, p.vectorTable);
  await db.pool.query(`truncate ${table}`);
  assert.equal(await deferIndexIfEmpty(db.pool, p), true);
  await db.pool.query(
    `insert into ${table} (pk, chunk_index, embedding, chunk, metadata, content_hash, generation)
     select i::text, 0, (select array_agg(sin(i * d))::real[]::vector from generate_series(1, $1) d),
            'chunk', '{}', 'h', $2
       from generate_series(1, $3) i`,
    [DIMENSIONS, p.generation, ROWS],
  );
}

describe('building the HNSW index after a walk', () => {
  before(async () => {
    db = await createTestDatabase('index_build');
    await db.pool.query(PRODUCTS_TABLE);
    const config = productsPipeline({
      embedding: { provider: 'openai', model: 'text-embedding-3-small', dimensions: DIMENSIONS },
    });
    await applyPipelines(db.pool, parsePipelines({ pipelines: [config] }));
    p = await getPipeline(db.pool, 'products');
  });
  after(async () => db.drop());

  it("uses the server's parallel maintenance workers and leaves the table's settings as they were", async () => {
    await tableWithoutIndex();
    const { pool, notices } = reportingPool(['max_parallel_maintenance_workers=1']);
    try {
      assert.equal(await buildIndex(pool, p, 256 * 2 ** 20), true);
    } finally {
      await pool.end();
    }
    assert.ok(
      notices.some((n) => /using 1 parallel workers?/.test(n)),
      `a parallel build; the server said: ${notices.filter((n) => /parallel|serial/.test(n)).join(' | ')}`,
    );
    assert.deepEqual(await reloptions(), INLINE, 'parallel_workers is taken off the table again');
  });

  it('builds in one process where the server allows no parallel maintenance workers', async () => {
    await tableWithoutIndex();
    const { pool, notices } = reportingPool(['max_parallel_maintenance_workers=0']);
    try {
      assert.equal(await buildIndex(pool, p, 256 * 2 ** 20), true);
    } finally {
      await pool.end();
    }
    assert.ok(!notices.some((n) => /parallel workers/.test(n)), notices.join(' | '));
    assert.deepEqual(await reloptions(), INLINE);
  });

  it('keeps vectors of 512 dimensions in their rows, and migration 000023 makes older tables do so', async () => {
    await tableWithoutIndex();
    assert.equal(await toastBytes(), 0, 'no vector went to the TOAST table');
    // A table made before: out of line, as PostgreSQL stores pgvector's types by default.
    const table = qualified(p.vectorSchema, p.vectorTable);
    await db.pool.query(`alter table ${table} reset (toast_tuple_target)`);
    await db.pool.query(`alter table embedsync.embedded_texts reset (toast_tuple_target)`);
    await tableWithoutIndex();
    assert.ok((await toastBytes()) > 0, 'without the setting, the vectors go out of line');
    await db.pool.query(
      readFileSync(path.join(REPO_ROOT, 'sql/000023_vectors_inline.sql'), 'utf8'),
    );
    assert.deepEqual(await reloptions(), INLINE);
    assert.deepEqual(await reloptions('embedsync.embedded_texts'), INLINE);
    assert.deepEqual(await reloptions('embedsync.staged_chunks'), INLINE);
    await tableWithoutIndex();
    assert.equal(await toastBytes(), 0, 'rows written after the migration are inline');
  });
});
