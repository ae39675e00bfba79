// Building a vector table's HNSW index after a walk (src/capture/vector-index.ts): its vectors are
// stored out of line, so PostgreSQL alone would build it in one process; the build asks for the
// server's parallel maintenance workers, and leaves the table's settings as they were.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { applyPipelines } from '../../src/capture/apply.js';
import { buildIndex, deferIndexIfEmpty } from '../../src/capture/vector-index.js';
import { parsePipelines } from '../../src/config/pipeline.js';
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

async function reloptions(): Promise<string[] | null> {
  const { rows } = await db.pool.query<{ o: string[] | null }>(
    `select reloptions as o from pg_class where oid = $1::regclass`,
    [qualified(p.vectorSchema, p.vectorTable)],
  );
  return rows[0]?.o ?? null;
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
    assert.equal(await reloptions(), null, 'parallel_workers is taken off the table again');
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
    assert.equal(await reloptions(), null);
  });
});
