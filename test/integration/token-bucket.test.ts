// The shared tokens-per-minute bucket, in the database: what it lets through at once, how long it makes
// a request wait, when it sends a request away to back off, and how a 429 holds everyone back.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { holdBack, MAX_TOKEN_WAIT_MS, takeTokens } from '../../src/providers/token-bucket.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let db: TestDatabase;
// 100 tokens a second, holding one second of them: slow enough that the test's own time barely counts.
const rate = { perSecond: 100, burst: 100 };
const level = async (provider: string): Promise<number> => {
  const { rows } = await db.pool.query<{ tokens: number }>('select tokens from embedsync.token_buckets where provider = $1', [provider]);
  return rows[0]?.tokens ?? NaN;
};
const near = (actual: number, expected: number, within: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= within, `${what}: ${actual}, expected ${expected} ± ${within}`);

describe('token bucket', () => {
  before(async () => {
    db = await createTestDatabase('token-bucket');
  });
  after(async () => db.drop());

  it('lets a full bucket’s worth through at once, then makes each request wait for its tokens', async () => {
    assert.deepEqual(await takeTokens(db.pool, 'a', 100, rate), { taken: true, waitMs: 0 });
    const second = await takeTokens(db.pool, 'a', 300, rate);
    assert.ok(second.taken);
    near(second.waitMs, 3000, 100, 'wait for 300 tokens at 100/s');
    const third = await takeTokens(db.pool, 'a', 200, rate);
    assert.ok(third.taken);
    near(third.waitMs, 5000, 100, 'the next request waits behind the first');
    near(await level('a'), -500, 10, 'tokens promised to waiting requests');
  });

  it('sends a request away, taking nothing, when its turn is further off than an activity should wait', async () => {
    const maxTokens = (MAX_TOKEN_WAIT_MS / 1000) * rate.perSecond;
    // Empties the full bucket and promises the next 19 s: a wait just under the cap.
    assert.ok((await takeTokens(db.pool, 'b', maxTokens, rate)).taken);
    const before = await level('b');
    const refused = await takeTokens(db.pool, 'b', 500, rate);
    assert.equal(refused.taken, false);
    near(refused.taken ? 0 : refused.retryAfterMs, 5000 - 1000, 150, 'back off until the wait would be short enough');
    near(await level('b'), before, 5, 'nothing taken');
  });

  it('keeps a bucket per provider', async () => {
    assert.deepEqual(await takeTokens(db.pool, 'c', 100, rate), { taken: true, waitMs: 0 });
  });

  it('a 429 holds every request back for as long as the provider asked', async () => {
    await holdBack(db.pool, 'd', 2000, rate);
    const next = await takeTokens(db.pool, 'd', 50, rate);
    assert.ok(next.taken);
    near(next.waitMs, 2500, 100, 'the held-back time plus the request’s own tokens');
  });
});
