// A provider's answers in the shared state (src/rate-limit/observe.ts against the database): the
// token ratio every worker charges by, the limits learned from the headers, and buckets lowered to
// what the provider says is left. Every answer arrives at a time the test gives.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readRateObservations } from '../../src/db/rate-observations.js';
import { observe, takeTurn, type Answer } from '../../src/rate-limit/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let db: TestDatabase;
const T0 = Date.parse('2030-01-01T00:00:00Z');
const at = (ms: number): Date => new Date(T0 + ms);
// 1,000 tokens and 10 requests a second, each bucket holding one second of them.
const buckets = {
  requests: { perSecond: 10, burst: 10 },
  tokens: { perSecond: 1000, burst: 1000 },
};

const answer = (provider: string, overrides: Partial<Answer> = {}): Answer => ({
  provider,
  model: 'm',
  estimate: 100,
  charged: 100,
  reported: 100,
  limits: undefined,
  rateLimited: false,
  buckets,
  sentAt: T0,
  ...overrides,
});

const level = async (provider: string, budget: 'requests' | 'tokens'): Promise<number> => {
  const { rows } = await db.pool.query<{ level: number }>(
    'select level from embedsync.rate_buckets where provider = $1 and budget = $2',
    [provider, budget],
  );
  assert.ok(rows[0], `no ${budget} bucket for ${provider}`);
  return rows[0].level;
};

describe('rate observations', () => {
  before(async () => {
    db = await createTestDatabase('rate-observations');
  });
  after(async () => db.drop());

  it('learn the provider’s token count per provider and model, from answers of any worker', async () => {
    // Two workers' answers, interleaved and at once: every one counts.
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        observe(db.pool, answer('p', { reported: 150, charged: 100 + i }), T0 + i),
      ),
    );
    await observe(db.pool, answer('p', { model: 'other', reported: 80 }), T0);
    const rows = await readRateObservations(db.pool);
    const p = rows.find((r) => r.provider === 'p' && r.model === 'm');
    assert.equal(p?.tokenRatio, 1.5);
    assert.equal(p?.ratioSamples, 20);
    assert.equal(p?.answers, 20);
    assert.equal(p?.reportedTokens, 3000);
    assert.equal(p?.estimatedTokens, 2000);
    assert.equal(rows.find((r) => r.model === 'other')?.tokenRatio, 0.8);
  });

  it('keep the latest limits the provider reported, and count its 429s', async () => {
    await observe(
      db.pool,
      answer('q', { limits: { requestsPerMinute: 3000, tokensPerMinute: 1_000_000 } }),
      T0,
    );
    await observe(db.pool, answer('q', { reported: 0, rateLimited: true, limits: {} }), T0);
    let [q] = (await readRateObservations(db.pool)).filter((r) => r.provider === 'q');
    assert.deepEqual(
      [q?.requestsPerMinute, q?.tokensPerMinute, q?.rateLimited, q?.ratioSamples],
      [3000, 1_000_000, 1, 1],
      'a 429 that reports no limits forgets none, and its count of 0 teaches no ratio',
    );
    assert.ok(q?.limitsSeenAt, 'when they were seen');
    // A raised tier is followed.
    await observe(db.pool, answer('q', { limits: { tokensPerMinute: 2_000_000 } }), T0);
    [q] = (await readRateObservations(db.pool)).filter((r) => r.provider === 'q');
    assert.deepEqual([q?.requestsPerMinute, q?.tokensPerMinute], [3000, 2_000_000]);
    // A successful answer that reports no limit at all: the server keeps none now.
    await observe(db.pool, answer('q'), T0);
    [q] = (await readRateObservations(db.pool)).filter((r) => r.provider === 'q');
    assert.deepEqual(
      [q?.requestsPerMinute, q?.tokensPerMinute, q?.limitsSeenAt],
      [undefined, undefined, null],
      'limits no answer reports any more are not kept',
    );
  });

  it('lower a bucket to what the provider says is left, less what went out while in flight', async () => {
    // The bucket starts full (1,000); the provider has 400 left when it answers, 200 ms after the
    // send: 200 more tokens may have gone out since.
    assert.deepEqual(await takeTurn(db.pool, 'r', 0, buckets, at(0)), { taken: true, waitMs: 0 });
    await observe(
      db.pool,
      answer('r', { limits: { remainingTokens: 400, remainingRequests: 50 }, sentAt: T0 }),
      T0 + 200,
    );
    assert.equal(await level('r', 'tokens'), 200);
    assert.equal(await level('r', 'requests'), 9, 'the provider has more requests left: untouched');
    const [r] = (await readRateObservations(db.pool)).filter((o) => o.provider === 'r');
    assert.equal(r?.bucketsLowered, 1);
    // The next turn of 700 tokens waits for the refill of 500 at 1,000 a second.
    assert.deepEqual(await takeTurn(db.pool, 'r', 700, buckets, at(200)), {
      taken: true,
      waitMs: 500,
    });
    // A provider with more left than the bucket holds never raises it.
    await observe(db.pool, answer('r', { limits: { remainingTokens: 900_000 } }), T0 + 200);
    assert.equal(await level('r', 'tokens'), -500);
  });

  it('leave an unpaced provider’s buckets alone', async () => {
    await observe(
      db.pool,
      answer('s', { buckets: undefined, limits: { remainingTokens: 0 } }),
      T0 + 100,
    );
    const { rows } = await db.pool.query(
      `select 1 from embedsync.rate_buckets where provider = 's'`,
    );
    assert.equal(rows.length, 0);
  });
});
