// Search end to end: rows synced through the real pipeline, then queried with text and metadata
// filters, through the API and through `npx embedsync search` as a process.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createProviders } from '../../src/providers/index.js';
import { parseFilter, search, type SearchHit } from '../../src/search/index.js';
import { verifyPipeline } from '../../src/verify/verify.js';
import {
  applyPipeline,
  PRODUCTS_TABLE,
  productsPipeline,
  startHarness,
  type Harness,
} from '../helpers/harness.js';
import { waitFor } from '../helpers/wait.js';

// [name, description, category, price, in_stock]
const PRODUCTS: [string, string, string, number, boolean][] = [
  ['Warm Hiking Jacket', 'Warm hiking jacket', 'outdoor', 120, true],
  ['Insulated Parka', 'Warm winter parka for hiking in snow. '.repeat(12), 'outdoor', 240, true],
  ['Rain Shell', 'Light hiking jacket for rain', 'outdoor', 95, false],
  ['Wool Sweater', 'Warm wool sweater', 'apparel', 70, true],
  ['Fleece Hoodie', 'Warm fleece hoodie for hiking', 'apparel', 60, true],
  ['Hiking Boots', 'Waterproof hiking boots', 'footwear', 160, true],
  ['Trail Socks', 'Warm socks for hiking', 'footwear', 15, true],
  ['Camp Stove', 'Compact stove for camping', 'outdoor', 55, true],
  ['Chef Knife', 'Sharp steel kitchen knife', 'kitchen', 80, true],
  ['Espresso Machine', 'Espresso machine with milk frother', 'kitchen', 400, false],
  ['Desk Lamp', 'LED desk lamp', 'home', 35, true],
  ['Down Jacket', 'Warm down jacket for hiking and skiing', 'apparel', 310, false],
];
// Many rows far from the kitchen items, so that a kitchen filter is selective.
const FILLER = 300;

let h: Harness;
const providers = createProviders();
const pkOf = new Map<string, string>();
const nameOf = new Map<string, string>();

const names = (hits: SearchHit[]): string[] =>
  hits.map((hit) => nameOf.get(hit.pk) ?? `filler ${hit.pk}`);
const run = (text: string, limit: number, ...filters: string[]): Promise<SearchHit[]> =>
  search(h.db.pool, providers, 'products', text, { limit, filters: filters.map(parseFilter) });

function assertDescending(hits: SearchHit[]): void {
  hits
    .slice(1)
    .forEach((hit, i) =>
      assert.ok(
        hit.score <= (hits[i]?.score ?? Infinity),
        `scores descend: ${hits.map((x) => x.score).join(', ')}`,
      ),
    );
}

describe('search', () => {
  before(async () => {
    h = await startHarness('search');
    await h.db.pool.query(PRODUCTS_TABLE);
    await applyPipeline(
      h,
      productsPipeline({
        embedding: { provider: 'offline', model: 'feature-hash-v1', dimensions: 256 },
        chunking: { size: 200, overlap: 20 },
      }),
    );
    for (const [name, description, category, price, inStock] of PRODUCTS) {
      const { rows } = await h.db.pool.query<{ id: string }>(
        'insert into products (name, description, category, price, in_stock) values ($1, $2, $3, $4, $5) returning id::text',
        [name, description, category, price, inStock],
      );
      pkOf.set(name, rows[0]?.id ?? '');
      nameOf.set(rows[0]?.id ?? '', name);
    }
    await h.db.pool.query(
      `insert into products (name, description, category, price, in_stock)
       select 'Item ' || g, 'Description of item ' || g, 'bulk', 1000, false from generate_series(1, ${FILLER}) g`,
    );
    await waitFor(
      'every product to be embedded',
      async () => {
        const { rows } = await h.db.pool.query<{ n: number }>(
          'select count(*)::int as n from embedsync.outbox',
        );
        if (rows[0]?.n !== 0) return false;
        const r = await verifyPipeline(h.db.pool, 'products');
        return (
          r.rows === PRODUCTS.length + FILLER &&
          r.missing.length + r.stale.length + r.orphaned.length === 0
        );
      },
      60_000,
    );
  });
  after(async () => h.stop());

  it('finds the warm hiking jacket first for "warm hiking jacket", with scores descending', async () => {
    const hits = await run('warm hiking jacket', 5);
    assert.equal(names(hits)[0], 'Warm Hiking Jacket');
    assert.equal(hits.length, 5);
    assertDescending(hits);
    assert.ok((hits[0]?.score ?? 0) > 0.5 && (hits[0]?.score ?? 2) <= 1.000001);
    assert.deepEqual(hits[0]?.metadata, { category: 'outdoor', price: 120, in_stock: true });
    assert.equal(hits[0]?.chunkIndex, 0);
    assert.match(hits[0]?.chunk ?? '', /^Product: Warm Hiking Jacket/);
  });

  it('in_stock=true leaves out the out-of-stock rain shell', async () => {
    assert.equal(names(await run('hiking jacket for rain', 3))[0], 'Rain Shell');
    const hits = await run('hiking jacket for rain', 3, 'in_stock=true');
    assert.equal(hits.length, 3);
    assert.ok(!names(hits).includes('Rain Shell'));
    assert.ok(hits.every((hit) => hit.metadata.in_stock === true));
  });

  it('price<=150 compares numerically and returns exactly the affordable rows', async () => {
    const hits = await run('warm hiking jacket', 50, 'price<=150');
    const affordable = PRODUCTS.filter((p) => p[3] <= 150).map((p) => p[0]);
    assert.deepEqual(names(hits).sort(), affordable.sort());
    assert.equal(names(hits)[0], 'Warm Hiking Jacket');
    assertDescending(hits);
    // 95 < 150 < 1000 numerically, though "1000" < "150" < "95" as text.
    assert.deepEqual(names(await run('jacket', 50, 'price>150', 'price<1000')).sort(), [
      'Down Jacket',
      'Espresso Machine',
      'Hiking Boots',
      'Insulated Parka',
    ]);
  });

  it('"category in outdoor,apparel" and != keep only the categories asked for', async () => {
    const inList = await run('warm', 50, 'category in outdoor,apparel');
    assert.deepEqual(
      names(inList).sort(),
      PRODUCTS.filter((p) => ['outdoor', 'apparel'].includes(p[2]))
        .map((p) => p[0])
        .sort(),
    );
    const notBulk = await run('item', 50, 'category!=bulk');
    assert.equal(notBulk.length, PRODUCTS.length);
  });

  it('a selective filter still returns limit rows when the index is used (iterative scan)', async () => {
    // A pool that cannot choose a sequential scan, so the HNSW index answers.
    const indexOnly = new pg.Pool({
      connectionString: h.db.url,
      max: 2,
      options: '-c enable_seqscan=off',
    });
    try {
      const client = await indexOnly.connect();
      try {
        // Without an iterative scan the index yields its 40 nearest (all filler) and the filter
        // empties them.
        const vector =
          (
            await providers.get('offline')?.embed({
              model: 'feature-hash-v1',
              dimensions: 256,
              inputType: 'query',
              texts: ['description of item'],
            })
          )?.vectors[0] ?? [];
        const plain = await client.query(
          `select pk from products_embeddings where metadata->>'category' = 'kitchen' order by embedding <=> $1::vector(256) limit 2`,
          [`[${vector.join(',')}]`],
        );
        assert.ok(plain.rows.length < 2, 'the control query should be starved by the filter');
      } finally {
        client.release();
      }
      const hits = await search(indexOnly, providers, 'products', 'description of item', {
        limit: 2,
        filters: [parseFilter('category=kitchen')],
      });
      assert.deepEqual(names(hits).sort(), ['Chef Knife', 'Espresso Machine']);
      assertDescending(hits);
    } finally {
      await indexOnly.end();
    }
  });

  it('returns one result per row (its best chunk) unless asked for all chunks', async () => {
    const chunks = await search(h.db.pool, providers, 'products', 'warm winter parka snow', {
      limit: 3,
      bestChunkPerRow: false,
    });
    assert.ok(
      chunks.filter((hit) => hit.pk === pkOf.get('Insulated Parka')).length > 1,
      'the parka has several matching chunks',
    );
    const rows = await run('warm winter parka snow', 3);
    assert.equal(rows.length, 3);
    assert.equal(new Set(rows.map((hit) => hit.pk)).size, 3);
    assert.equal(names(rows)[0], 'Insulated Parka');
  });

  it('an unknown metadata key is an error naming it', async () => {
    await assert.rejects(run('jacket', 5, 'colour=red'), {
      name: 'FilterError',
      message:
        /unknown metadata key "colour" for pipeline products: it keeps category, price, in_stock/,
    });
  });

  describe('embedsync search', () => {
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, ['bin/embedsync.js', 'search', ...args], {
        env: { ...process.env, DATABASE_URL: h.db.url },
        encoding: 'utf8',
        timeout: 60_000,
      });

    it('prints a table of results and exits 0', () => {
      const r = cli(
        '--table',
        'products',
        'warm',
        'hiking',
        'jacket',
        '--limit',
        '3',
        '--filter',
        'in_stock=true',
        '--filter',
        'price<=150',
      );
      assert.equal(r.status, 0, r.stderr);
      const lines = r.stdout.trim().split('\n');
      assert.match(lines[0] ?? '', /^score\s+pk\s+metadata\s+chunk$/);
      assert.equal(lines.length, 4);
      assert.match(
        lines[1] ?? '',
        new RegExp(
          `^\\d\\.\\d{3}\\s+${pkOf.get('Warm Hiking Jacket')}\\s+category=outdoor price=120 in_stock=true\\s+Product: Warm Hiking Jacket`,
        ),
      );
    });

    it('prints JSON with --json', () => {
      const r = cli(
        '--table',
        'public.products',
        'warm hiking jacket',
        '--limit',
        '2',
        '--filter',
        'category in outdoor,apparel',
        '--json',
      );
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { pipeline: string; results: SearchHit[] };
      assert.equal(out.pipeline, 'products');
      assert.equal(out.results.length, 2);
      assert.equal(out.results[0]?.pk, pkOf.get('Warm Hiking Jacket'));
    });

    it('exits 1 with one line for a bad filter, an unknown key or an unknown table', () => {
      for (const [args, message] of [
        [['--filter', 'price<<5'], /cannot read filter "price<<5"/],
        [['--filter', 'colour=red'], /unknown metadata key "colour"/],
        [['--table', 'nothing'], /no pipeline named "nothing"/],
      ] as const) {
        const r = cli('--table', 'products', 'jacket', ...args);
        assert.equal(r.status, 1, r.stdout);
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
        assert.match(r.stderr, message);
      }
    });

    it('says why a filter cannot match its column, instead of printing no results', () => {
      for (const [filter, message] of [
        ['price<=abc', 'price is numeric in public.products; "abc" is not a number'],
        ['price in 10,twenty', 'price is numeric in public.products; "twenty" is not a number'],
        ['in_stock=yes', 'in_stock is boolean in public.products; "yes" is not true or false'],
        ['category=7', 'category is text in public.products; quote 7 to compare it as text ("7")'],
      ] as const) {
        const r = cli(
          '--table',
          'products',
          'x',
          '--filter',
          'category=outdoor',
          '--filter',
          filter,
        );
        assert.equal(r.status, 1, r.stdout);
        assert.equal(r.stderr, `embedsync: --filter "${filter}": ${message}\n`);
      }
    });
  });
});
