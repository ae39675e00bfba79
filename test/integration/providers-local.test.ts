// provider: local end to end: a pipeline synced by a real worker on the real Temporal, embedding
// with the real model in the worker's process, then searched by meaning; and a text too long for
// the model set aside as a dead letter, never cut.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LocalProvider } from '../../src/providers/local.js';
import { search } from '../../src/search/index.js';
import {
  applyPipeline,
  PRODUCTS_TABLE,
  productsPipeline,
  startHarness,
  type Harness,
} from '../helpers/harness.js';
import { TEST_MODELS_DIR, testModel } from '../helpers/local-model.js';
import { waitFor } from '../helpers/wait.js';

const PRODUCTS: [string, string, string][] = [
  [
    'Northwind Down Parka',
    'A warm down parka for winter hikes and cold summit mornings.',
    'outdoor',
  ],
  ['Beginner Woodworking', 'A hardcover book for curious beginners in the workshop.', 'books'],
  ['Beginner Woodworking, lay-flat', 'An illustrated edition for rainy evenings.', 'books'],
  ['Cast Iron Skillet', 'Enamelled cast iron for slow Sunday braises.', 'kitchen'],
  ['Noise-Cancelling Headphones', 'Quiet for long flights and video calls.', 'electronics'],
  ['Merino Trail Socks', 'Merino wool socks that keep feet warm on long hikes.', 'outdoor'],
  ['Espresso Grinder', 'Stainless steel burrs for precise morning coffee.', 'kitchen'],
];

let h: Harness;
let local: LocalProvider;
const pkOf = new Map<string, string>();

async function insert(name: string, description: string, category: string): Promise<string> {
  const { rows } = await h.db.pool.query<{ id: string }>(
    'insert into products (name, description, category, price) values ($1, $2, $3, 10) returning id::text',
    [name, description, category],
  );
  const id = rows[0]?.id ?? '';
  pkOf.set(name, id);
  return id;
}

const vectorRows = async (): Promise<number> =>
  Number(
    (
      await h.db.pool.query<{ n: string }>(
        'select count(distinct pk) as n from public.products_embeddings',
      )
    ).rows[0]?.n,
  );

describe('provider: local, through the worker', () => {
  before(async () => {
    await testModel();
    local = new LocalProvider({ modelsDir: TEST_MODELS_DIR, threads: 1 });
    h = await startHarness('local', { providers: [local] });
    await h.db.pool.query(PRODUCTS_TABLE);
    await applyPipeline(
      h,
      productsPipeline({
        embedding: { provider: 'local', model: 'all-MiniLM-L6-v2', dimensions: 384 },
        chunking: { size: 254, overlap: 32 },
      }),
    );
  });

  after(async () => {
    await h?.stop();
    await local?.close();
  });

  it('syncs rows with the model and finds warm hiking clothing for "something warm for hiking"', async () => {
    for (const [name, description, category] of PRODUCTS) await insert(name, description, category);
    await waitFor(
      'every product embedded',
      async () => (await vectorRows()) === PRODUCTS.length,
      60_000,
    );
    const { rows } = await h.db.pool.query<{ dims: number }>(
      'select distinct vector_dims(embedding) as dims from public.products_embeddings',
    );
    assert.deepEqual(rows, [{ dims: 384 }]);

    const registry = new Map([['local', local]]);
    const hits = await search(h.db.pool, registry, 'products', 'something warm for hiking', {
      limit: PRODUCTS.length,
    });
    const ranked = hits.map((hit) => [...pkOf].find(([, pk]) => pk === hit.pk)?.[0] ?? hit.pk);
    assert.deepEqual(
      new Set(ranked.slice(0, 2)),
      new Set(['Northwind Down Parka', 'Merino Trail Socks']),
      ranked.join(', '),
    );
  });

  it('sets aside a row whose text has more tokens than the model takes, and embeds the rest', async () => {
    // Within the character bound, but Hangul syllables come apart into letters: well over 256
    // tokens. The provider refuses it rather than cut it; bisection isolates the row.
    const long = await insert(
      '긴 설명',
      '한국어 텍스트를 임베딩합니다 '.repeat(14).trim(),
      'books',
    );
    const fine = await insert(
      'Wool Beanie',
      'A warm wool beanie for cold trail mornings.',
      'apparel',
    );
    const letter = await waitFor(
      'the dead letter',
      async () =>
        (
          await h.db.pool.query<{ pk: string; error: string }>(
            'select pk, error from embedsync.dead_letters where pipeline = $1',
            ['products'],
          )
        ).rows[0],
      60_000,
    );
    assert.equal(letter.pk, long);
    assert.match(
      letter.error,
      /tokens, longer than the 256 all-MiniLM-L6-v2 takes; it was not cut short/,
    );
    await waitFor(
      'the other row embedded',
      async () => {
        const { rows } = await h.db.pool.query(
          'select 1 from public.products_embeddings where pk = $1',
          [fine],
        );
        return rows.length === 1;
      },
      60_000,
    );
    const { rows } = await h.db.pool.query(
      'select 1 from public.products_embeddings where pk = $1',
      [long],
    );
    assert.equal(rows.length, 0, 'no vector of a cut text');
  });
});
