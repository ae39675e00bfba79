// The token ledger: what a request paid is added to its pipeline's row for the day and mode, and read
// back today, over the last 30 days and in all, with days given by the test so the periods are exact.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readLedger, recordSpend, type Spend } from '../../src/db/token-ledger.js';
import { costOf, listPrice, priceOf } from '../../src/providers/prices.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let db: TestDatabase;
const day = (iso: string): Date => new Date(`${iso}T12:00:00Z`);
const spend = (over: Partial<Spend>): Spend => ({
  pipeline: 'products',
  generation: 1,
  mode: 'sync',
  provider: 'openai',
  model: 'text-embedding-3-small',
  tokens: 100,
  requests: 1,
  texts: 4,
  reused: 0,
  ...over,
});

describe('token ledger', () => {
  before(async () => {
    db = await createTestDatabase('token_ledger');
  });
  after(async () => {
    await db.drop();
  });

  it('adds each request to the day and mode it was paid in, and reads today, 30 days and all', async () => {
    await recordSpend(db.pool, spend({ at: day('2030-03-01') }));
    await recordSpend(db.pool, spend({ at: day('2030-03-01'), tokens: 50, texts: 2, reused: 3 }));
    await recordSpend(db.pool, spend({ at: day('2030-02-20'), mode: 'backfill', tokens: 1000 }));
    await recordSpend(db.pool, spend({ at: day('2030-01-01'), mode: 'backfill', tokens: 7 }));
    await recordSpend(db.pool, spend({ at: day('2030-03-01'), pipeline: 'other', tokens: 9 }));

    const lines = await readLedger(db.pool, 'products', day('2030-03-01'));
    const of = (period: string, mode: string) =>
      lines.find((l) => l.period === period && l.mode === mode);
    assert.deepEqual(
      { tokens: of('today', 'sync')?.tokens, texts: of('today', 'sync')?.texts },
      { tokens: 150, texts: 6 },
    );
    assert.equal(of('today', 'sync')?.reused, 3);
    assert.equal(of('today', 'sync')?.requests, 2);
    assert.equal(of('today', 'backfill'), undefined);
    assert.equal(of('last30Days', 'backfill')?.tokens, 1000);
    assert.equal(of('total', 'backfill')?.tokens, 1007);
    assert.equal(of('total', 'sync')?.tokens, 150);
    assert.ok(lines.every((l) => l.pipeline === 'products'));

    const all = await readLedger(db.pool, undefined, day('2030-03-01'));
    assert.equal(all.find((l) => l.pipeline === 'other' && l.period === 'total')?.tokens, 9);
  });

  it('records nothing for a request that paid nothing', async () => {
    await recordSpend(
      db.pool,
      spend({ pipeline: 'idle', tokens: 0, requests: 0, texts: 0, reused: 0 }),
    );
    const { rows } = await db.pool.query(
      "select 1 from embedsync.token_ledger where pipeline = 'idle'",
    );
    assert.equal(rows.length, 0);
  });
});

describe('prices', () => {
  it('prices tokens at the list price online and at half of it in OpenAI batch mode', () => {
    const price = listPrice('openai', 'text-embedding-3-small');
    assert.equal(costOf(1_000_000, price), 0.02);
    assert.equal(costOf(1_000_000, price, 'batch'), 0.01);
  });

  it('takes a price the pipeline declares over the list price, and knows none for an unknown model', () => {
    const declared = priceOf({
      provider: 'openai',
      model: 'text-embedding-3-small',
      dimensions: 512,
      apiKeyEnv: 'OPENAI_API_KEY',
      encodingFormat: 'float',
      price: { online: 0.01 },
    });
    assert.deepEqual(declared, { online: 0.01 });
    assert.equal(costOf(1000, declared, 'batch'), undefined);
    assert.equal(listPrice('openai', 'e5-small'), undefined);
    assert.equal(listPrice('bedrock', 'us.amazon.titan-embed-text-v2:0')?.online, 0.02);
  });
});
