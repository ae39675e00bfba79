// Hybrid search end to end (docs/architecture.md, decision 27): rows synced through the real
// pipeline, a full-text index built concurrently by apply, vector and full-text rankings fused by
// reciprocal rank fusion under the same filters, through the API and `npx embedsync search`; the
// index follows a language change and a re-embed's swap; a column pipeline refuses it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { startReembed } from '../../src/reembed/start.js';
import { getPipeline } from '../../src/db/catalog.js';
import { textIndexName, textIndexState } from '../../src/capture/text-index.js';
import { createProviders } from '../../src/providers/index.js';
import { candidatePool } from '../../src/search/hybrid.js';
import { textMatchSql } from '../../src/search/text.js';
import {
  fuseRankings,
  parseFilter,
  rrfScore,
  search,
  type FusionWeights,
  type SearchHit,
  type SearchOptions,
} from '../../src/search/index.js';
import { verifyPipeline } from '../../src/verify/verify.js';
import type { PipelineInput } from '../../src/config/pipeline.js';
import {
  applyPipeline,
  PRODUCTS_TABLE,
  productsPipeline,
  startHarness,
  type Harness,
} from '../helpers/harness.js';
import { waitFor } from '../helpers/wait.js';

// [name, description, category, price]
const PRODUCTS: [string, string, string, number][] = [
  ['Warm Hiking Jacket', 'Warm hiking jacket', 'outdoor', 120],
  ['Rain Shell', 'Light hiking jacket for rain', 'outdoor', 95],
  ['Down Jacket', 'Warm down jacket for hiking and skiing', 'apparel', 310],
  ['Denim Jacket', 'Blue denim jacket', 'apparel', 80],
  ['Fleece Hoodie', 'Warm fleece hoodie for hiking', 'apparel', 60],
  ['Hiking Boots', 'Waterproof hiking boots', 'footwear', 160],
  ['Trail Socks', 'Warm socks for hiking', 'footwear', 15],
  ['Chef Knife', 'Sharp steel kitchen knife', 'kitchen', 80],
  // The one row naming the model number, in a long text about other things: its vector is far from
  // the short query's, but the word is in it.
  [
    'Expedition Parka',
    'Seams taped, storm flap, two-way zipper, adjustable hood, pit vents, cuffs with hook and loop, ' +
      'internal pockets, drawcord hem, reflective trim, recycled shell fabric, bluesign approved, ' +
      'goose down fill rated 800, baffled chambers, removable fur ruff, snow skirt, chin guard, ' +
      'fleece lined handwarmer pockets, map pocket, radio loop, ice axe keeper, harness compatible, ' +
      'model ZX81 jacket built for expeditions in polar regions where temperatures drop far below ' +
      'freezing, tested by guides on glaciers and summit pushes, packs into its own stuff sack, ' +
      'weighs under two kilograms, lifetime warranty on stitching, repairs offered at cost, ships ' +
      'in recycled packaging, available in orange, navy and charcoal, sizes from extra small to ' +
      'triple extra large, with a relaxed fit that leaves room for layers beneath it.',
    'outdoor',
    500,
  ],
];
const FILLER = 300;
const QUERY = 'zx81 jacket';
const KEYWORD = 'zx81';

let h: Harness;
const providers = createProviders();
const pkOf = new Map<string, string>();
const nameOf = new Map<string, string>();
const names = (hits: SearchHit[]): string[] =>
  hits.map((hit) => nameOf.get(hit.pk) ?? `filler ${hit.pk}`);
const run = (text: string, options: SearchOptions): Promise<SearchHit[]> =>
  search(h.db.pool, providers, 'products', text, options);
const pipeline = (overrides: Partial<PipelineInput> = {}): PipelineInput =>
  productsPipeline({
    metadata: ['category', 'price'],
    embedding: { provider: 'offline', model: 'feature-hash-v1', dimensions: 256 },
    // One chunk holds the whole parka: its words dilute its vector.
    chunking: { size: 1000, overlap: 100 },
    ...overrides,
  });

async function converged(expectedRows: number): Promise<void> {
  await waitFor(
    'every product to be embedded',
    async () => {
      const { rows } = await h.db.pool.query<{ n: number }>(
        'select count(*)::int as n from embedsync.outbox',
      );
      if (rows[0]?.n !== 0) return false;
      const r = await verifyPipeline(h.db.pool, 'products');
      return r.rows === expectedRows && r.missing.length + r.stale.length === 0;
    },
    60_000,
  );
}

/**
 * The text ranking written plainly, as decision 27 states it: rows with a chunk holding any of the
 * query's words; those holding the whole query first, then by ts_rank_cd of their best chunk.
 */
async function textRanking(text: string, language = 'english'): Promise<string[]> {
  const { rows } = await h.db.pool.query<{ pk: string }>(
    `with q as (select websearch_to_tsquery($2::regconfig, $1) as every,
                       to_tsquery($2::regconfig, array_to_string(tsvector_to_array(to_tsvector($2::regconfig, $1)), ' | ')) as anyq),
          c as (select pk, to_tsvector($2::regconfig, chunk) @@ every as whole,
                       ts_rank_cd(to_tsvector($2::regconfig, chunk), anyq) as rank
                  from products_embeddings, q
                 where to_tsvector($2::regconfig, chunk) @@ anyq),
          m as (select distinct on (pk) * from c order by pk, whole desc, rank desc)
     select pk from m order by whole desc, rank desc, pk`,
    [text, language],
  );
  return rows.map((r) => r.pk);
}

describe('hybrid search', () => {
  before(async () => {
    h = await startHarness('hybrid');
    await h.db.pool.query(PRODUCTS_TABLE);
    await applyPipeline(h, pipeline());
    for (const [name, description, category, price] of PRODUCTS) {
      const { rows } = await h.db.pool.query<{ id: string }>(
        'insert into products (name, description, category, price) values ($1, $2, $3, $4) returning id::text',
        [name, description, category, price],
      );
      pkOf.set(name, rows[0]?.id ?? '');
      nameOf.set(rows[0]?.id ?? '', name);
    }
    // Rows whose vectors are near the query's (they share its letters: zx8…, jac…) but whose words
    // are not its words.
    await h.db.pool.query(
      `insert into products (name, description, category, price)
       select 'ZX80 Jacquard ' || g, 'zx80 jacquard blanket, pattern ' || g, 'bulk', 1000
         from generate_series(1, ${FILLER}) g`,
    );
    await converged(PRODUCTS.length + FILLER);
  });
  after(async () => h.stop());

  it('a model number only full text finds rises from outside the vector top ten to the top three', async () => {
    const vectorOnly = await run(KEYWORD, { limit: 10 });
    assert.ok(!names(vectorOnly).includes('Expedition Parka'), names(vectorOnly).join(', '));
    const hybrid = await run(KEYWORD, { limit: 3, hybrid: true });
    assert.ok(names(hybrid).includes('Expedition Parka'), names(hybrid).join(', '));
    const parka = hybrid.find((hit) => hit.pk === pkOf.get('Expedition Parka'));
    assert.equal(parka?.textRank, 1);
    assert.ok(parka.vectorRank === null || (parka.vectorRank ?? 0) > 10, String(parka.vectorRank));
    // Every hit says why it is there, and `score` stays the cosine similarity.
    for (const hit of hybrid) {
      assert.equal(typeof hit.fusedScore, 'number');
      assert.ok(Math.abs((hit.vectorDistance ?? NaN) - (1 - hit.score)) < 1e-9);
    }
    // With more weight on the words, it comes first.
    const wordy = await run(KEYWORD, { limit: 3, hybrid: { textWeight: 3 } });
    assert.equal(names(wordy)[0], 'Expedition Parka');
  });

  it('a query of stop words has no text side; quotes and backslashes are words like any other', async () => {
    const stopWords = await run('the and of', { limit: 5, hybrid: true });
    assert.equal(stopWords.length, 5);
    assert.ok(stopWords.every((hit) => hit.textRank === null && hit.vectorRank !== null));
    const odd = await run(`O'Neil's \\ "ZX81" -- back\\slash`, {
      limit: 3,
      hybrid: { textWeight: 3 },
    });
    assert.equal(names(odd)[0], 'Expedition Parka');
  });

  it('fuses the vector search’s ranks and the text ranks exactly as reciprocal rank fusion says, and weights move the order', async () => {
    const limit = 8;
    const pool = candidatePool(limit);
    // The two rankings, each found independently of the hybrid search.
    const vectorKeys = (await run(QUERY, { limit: pool })).map((hit) => hit.pk);
    const textKeys = (await textRanking(QUERY)).slice(0, pool);
    assert.ok(textKeys.length >= 5, `text matches: ${textKeys.length}`);
    const orders: string[][] = [];
    for (const w of [
      { vectorWeight: 1, textWeight: 1, k: 60 },
      { vectorWeight: 4, textWeight: 1, k: 60 },
      { vectorWeight: 1, textWeight: 4, k: 5 },
    ] satisfies FusionWeights[]) {
      const hits = await run(QUERY, { limit, hybrid: w });
      const expected = fuseRankings(vectorKeys, textKeys, w).slice(0, limit);
      assert.deepEqual(
        hits.map((hit) => hit.pk),
        expected.map((f) => f.key),
        JSON.stringify(w),
      );
      hits.forEach((hit, i) => {
        assert.equal(hit.vectorRank, expected[i]?.vectorRank);
        assert.equal(hit.textRank, expected[i]?.textRank);
        const score = rrfScore(hit.vectorRank ?? null, hit.textRank ?? null, w);
        assert.ok(Math.abs((hit.fusedScore ?? NaN) - score) < 1e-12);
      });
      orders.push(hits.map((hit) => hit.pk));
    }
    assert.notDeepEqual(orders[1], orders[2], 'the weights change the order');
  });

  it('filters apply to both sides', async () => {
    // The parka is the text side's best, the jackets the vector side's: a price filter removes the
    // parka and the dear jackets from both.
    const hits = await run(QUERY, {
      limit: 20,
      hybrid: { textWeight: 3 },
      filters: [parseFilter('price<100'), parseFilter('category in outdoor,apparel')],
    });
    assert.deepEqual(names(hits).sort(), ['Denim Jacket', 'Fleece Hoodie', 'Rain Shell']);
    assert.ok(hits.every((hit) => Number(hit.metadata.price) < 100));
    // Rain Shell and Denim Jacket match "jacket" in text; the hoodie only by its vector.
    const hoodie = hits.find((hit) => hit.pk === pkOf.get('Fleece Hoodie'));
    assert.equal(hoodie?.textRank, null);
    assert.deepEqual(
      hits.filter((hit) => hit.textRank !== null).map((hit) => hit.textRank),
      [1, 2],
    );
  });

  it('the text side is answered by the GIN index on the chunk expression', async () => {
    const p = await getPipeline(h.db.pool, 'products');
    const { sql, params } = textMatchSql(p, {
      text: QUERY,
      vector: `[${new Array(256).fill(0.1).join(',')}]`,
      filters: [parseFilter('price<100')],
      limit: 10,
      bestChunkPerRow: true,
    });
    const client = await h.db.pool.connect();
    try {
      // With sequential scans priced out, the index is used only if its expression is the query's.
      await client.query('set enable_seqscan = off');
      const { rows } = await client.query<{ 'QUERY PLAN': string }>(`explain ${sql}`, params);
      const plan = rows.map((r) => r['QUERY PLAN']).join('\n');
      assert.match(plan, /Bitmap Index Scan on products_embeddings_fts/, plan);
    } finally {
      await client.query('reset enable_seqscan').catch(() => undefined);
      client.release();
    }
  });

  it('apply adds the index to an existing table concurrently: writes and reads go on while it waits', async () => {
    await h.db.pool.query('drop index products_embeddings_fts');
    const holder = await h.db.pool.connect();
    const other = new pg.Client({ connectionString: h.db.url });
    await other.connect();
    let applying: Promise<void> | undefined;
    try {
      // An open transaction that wrote the vector table: a concurrent build waits for it to end.
      await holder.query('begin');
      await holder.query(
        `insert into products_embeddings (pk, chunk_index, embedding, chunk, content_hash, generation)
         values ('held', 0, $1, 'held', 'x', 99)`,
        [`[${new Array(256).fill(0.1).join(',')}]`],
      );
      applying = applyPipeline(h, pipeline());
      const progress = await waitFor('the build to wait for the open transaction', async () => {
        const { rows } = await other.query<{ command: string; phase: string }>(
          `select command, phase from pg_stat_progress_create_index
            where relid = 'products_embeddings'::regclass`,
        );
        return rows[0];
      });
      assert.equal(progress.command, 'CREATE INDEX CONCURRENTLY');
      // A plain CREATE INDEX would hold a SHARE lock here: writes would queue behind it.
      await other.query(`set lock_timeout = '3s'`);
      await other.query(
        `insert into products_embeddings (pk, chunk_index, embedding, chunk, content_hash, generation)
         values ('during', 0, $1, 'during', 'x', 99)`,
        [`[${new Array(256).fill(0.2).join(',')}]`],
      );
      await other.query(`delete from products_embeddings where pk = 'during'`);
      const hits = await run(QUERY, { limit: 3, hybrid: true });
      assert.equal(hits.length, 3);
      await holder.query('rollback');
      await applying;
      applying = undefined;
      const p = await getPipeline(h.db.pool, 'products');
      assert.equal(await textIndexState(h.db.pool, p), 'valid');
    } finally {
      await holder.query('rollback').catch(() => undefined);
      holder.release();
      await applying?.catch(() => undefined);
      await other.end();
    }
  });

  it('a changed language builds the index again; an unknown one is refused naming pg_ts_config', async () => {
    // english stems "hikes" and "hiking" alike; simple does not.
    const english = await run('hikes', { limit: 5, hybrid: true });
    assert.ok(english.some((hit) => hit.textRank !== null));
    await applyPipeline(h, pipeline({ search: { language: 'simple' } }));
    const p = await getPipeline(h.db.pool, 'products');
    assert.equal(await textIndexState(h.db.pool, p), 'valid');
    const { rows } = await h.db.pool.query<{ def: string }>(
      `select pg_get_indexdef('products_embeddings_fts'::regclass) as def`,
    );
    assert.match(rows[0]?.def ?? '', /to_tsvector\('simple'::regconfig, chunk\)/);
    const simple = await run('hikes', { limit: 5, hybrid: true });
    assert.ok(simple.every((hit) => hit.textRank === null));
    assert.deepEqual(
      (await run('hiking', { limit: 50, hybrid: true }))
        .filter((hit) => hit.textRank !== null)
        .map((hit) => hit.pk)
        .sort(),
      (await textRanking('hiking', 'simple')).sort(),
    );
    await assert.rejects(applyPipeline(h, pipeline({ search: { language: 'klingon' } })), {
      name: 'ConfigError',
      message:
        /pipelines\[0\]\.search\.language: text-search configuration "klingon" does not exist in this database \(pg_ts_config has .*english/,
    });
    await applyPipeline(h, pipeline());
    assert.equal(
      await textIndexState(h.db.pool, await getPipeline(h.db.pool, 'products')),
      'valid',
    );
  });

  it('a re-embed’s swap keeps the full-text index on the new table, and hybrid search working', async () => {
    await applyPipeline(
      h,
      pipeline({ embedding: { provider: 'offline', model: 'feature-hash-v1', dimensions: 128 } }),
    );
    const p = await getPipeline(h.db.pool, 'products');
    const handle = await startReembed(h.client, p, {
      taskQueue: h.taskQueue,
      instanceId: h.instanceId,
      rows: PRODUCTS.length + FILLER,
    });
    assert.equal((await handle.result()).generation, 2);
    const live = await getPipeline(h.db.pool, 'products');
    assert.equal(live.config.embedding.dimensions, 128);
    assert.equal(await textIndexState(h.db.pool, live), 'valid');
    const { rows } = await h.db.pool.query<{ indexes: string[] }>(
      `select array_agg(indexname::text order by indexname) as indexes from pg_indexes
        where tablename like 'products_embeddings%'`,
    );
    assert.deepEqual(rows[0]?.indexes, [
      textIndexName('products_embeddings'),
      'products_embeddings_hnsw',
      'products_embeddings_pkey',
    ]);
    const hits = await run(KEYWORD, { limit: 3, hybrid: { textWeight: 3 } });
    assert.equal(names(hits)[0], 'Expedition Parka');
    assert.equal(hits[0]?.textRank, 1);
  });

  describe('embedsync search --hybrid', () => {
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, ['bin/embedsync.js', 'search', ...args], {
        env: { ...process.env, DATABASE_URL: h.db.url },
        encoding: 'utf8',
        timeout: 60_000,
      });

    it('prints the fused score and each side’s rank', () => {
      const r = cli('--table', 'products', '--hybrid', '--text-weight', '3', KEYWORD);
      assert.equal(r.status, 0, r.stderr);
      const lines = r.stdout.trim().split('\n');
      assert.match(lines[0] ?? '', /^fused\s+vector\s+text\s+score\s+pk\s+metadata\s+chunk$/);
      assert.match(
        lines[1] ?? '',
        new RegExp(
          `^0\\.\\d{5}\\s+(\\d+|-)\\s+1\\s+\\d\\.\\d{3}\\s+${pkOf.get('Expedition Parka')}\\s+category=outdoor price=500\\s+Product: Expedition Parka`,
        ),
      );
    });

    it('--json carries the fusion and every hit’s ranks; a weight alone implies --hybrid', () => {
      const r = cli('--table', 'products', '--vector-weight', '2', QUERY, '--limit', '4', '--json');
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { hybrid: FusionWeights; results: SearchHit[] };
      assert.deepEqual(out.hybrid, { vectorWeight: 2, textWeight: 1, k: 60 });
      assert.equal(out.results.length, 4);
      for (const hit of out.results) {
        assert.equal(typeof hit.fusedScore, 'number');
        assert.ok('vectorRank' in hit && 'textRank' in hit && 'textScore' in hit);
      }
    });

    it('exits 1 with one line for a negative weight', () => {
      const r = cli('--table', 'products', '--hybrid', '--text-weight', '-1', QUERY);
      assert.equal(r.status, 1, r.stdout);
      assert.match(r.stderr, /--text-weight.*must be a number of 0 or more/);
    });
  });

  describe('a column pipeline', () => {
    before(async () => {
      await h.db.pool.query(
        `create table notes (id bigint primary key, body text, embedding vector(64))`,
      );
      await applyPipeline(h, {
        name: 'notes',
        source: { table: 'public.notes' },
        embed: { columns: ['body'] },
        embedding: { provider: 'offline', model: 'feature-hash-v1', dimensions: 64 },
        destination: { column: 'embedding' },
      });
      await h.db.pool.query(`insert into notes values (1, 'zx81 jacket', null)`);
    });

    it('has no full-text index and refuses hybrid search, saying why', async () => {
      const { rows } = await h.db.pool.query(
        `select 1 from pg_indexes where indexname like 'notes%fts'`,
      );
      assert.equal(rows.length, 0);
      const message =
        /pipeline notes keeps its vectors in the column embedding of public\.notes and no chunk text, so it has no full-text side: search it without hybrid/;
      await assert.rejects(search(h.db.pool, providers, 'notes', QUERY, { hybrid: true }), {
        name: 'SearchError',
        message,
      });
      const r = spawnSync(
        process.execPath,
        ['bin/embedsync.js', 'search', '--table', 'notes', '--hybrid', QUERY],
        { env: { ...process.env, DATABASE_URL: h.db.url }, encoding: 'utf8', timeout: 60_000 },
      );
      assert.equal(r.status, 1, r.stdout);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, message);
      // Without --hybrid it searches its column as before.
      await waitFor('the note to be embedded', async () => {
        const hits = await search(h.db.pool, providers, 'notes', QUERY, { limit: 1 });
        return hits.length === 1;
      });
    });
  });
});
