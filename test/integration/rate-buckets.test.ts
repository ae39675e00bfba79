// The shared requests- and tokens-per-minute buckets, in the database: what they let through at once,
// how long they make a request wait, when they send a request away to back off, and how a 429 holds
// everyone back.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { holdBack, MAX_TURN_WAIT_MS, takeTurn } from '../../src/providers/rate-buckets.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let db: TestDatabase;
// 100 tokens a second, holding one second of them: slow enough that the test's own time barely counts.
const tokensOnly = { requests: undefined, tokens: { perSecond: 100, burst: 100 } };
// Two requests a second, holding two.
const requestsOnly = { requests: { perSecond: 2, burst: 2 }, tokens: undefined };
const level = async (provider: string, budget: 'requests' | 'tokens'): Promise<number> => {
  const { rows } = await db.pool.query<{ level: number }>('select level from embedsync.rate_buckets where provider = $1 and budget = $2', [provider, budget]);
  return rows[0]?.level ?? NaN;
};
const near = (actual: number, expected: number, within: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= within, `${what}: ${actual}, expected ${expected} ± ${within}`);
const waitOf = async (provider: string, tokens: number, plan: Parameters<typeof takeTurn>[3]): Promise<number> => {
  const turn = await takeTurn(db.pool, provider, tokens, plan);
  assert.ok(turn.taken, 'the turn was refused');
  return turn.waitMs;
};

describe('rate buckets', () => {
  before(async () => {
    db = await createTestDatabase('rate-buckets');
  });
  after(async () => db.drop());

  it('let a full bucket’s worth of tokens through at once, then make each request wait for its tokens', async () => {
    assert.equal(await waitOf('a', 100, tokensOnly), 0);
    near(await waitOf('a', 300, tokensOnly), 3000, 100, 'wait for 300 tokens at 100/s');
    near(await waitOf('a', 200, tokensOnly), 5000, 100, 'the next request waits behind the first');
    near(await level('a', 'tokens'), -500, 10, 'tokens promised to waiting requests');
  });

  it('space requests to the requests per minute, whatever their size', async () => {
    const waits = [];
    for (let i = 0; i < 5; i++) waits.push(await waitOf('r', 1, requestsOnly));
    // Two at once (the burst), then one every half second.
    near(waits[1] ?? NaN, 0, 20, 'second request');
    near(waits[2] ?? NaN, 500, 50, 'third request');
    near(waits[4] ?? NaN, 1500, 50, 'fifth request');
  });

  it('with both limits, a request waits for the later of its two turns', async () => {
    const both = { requests: requestsOnly.requests, tokens: tokensOnly.tokens };
    assert.equal(await waitOf('ab', 50, both), 0);
    near(await waitOf('ab', 10, both), 0, 20, 'within both bursts');
    near(await waitOf('ab', 10, both), 500, 50, 'the requests bucket decides');
    near(await waitOf('ab', 300, both), 2700, 60, 'the tokens bucket decides');
  });

  it('send a request away, taking nothing, when its turn is further off than an activity should wait', async () => {
    const maxTokens = (MAX_TURN_WAIT_MS / 1000) * tokensOnly.tokens.perSecond;
    // Empties the full bucket and promises the next 19 s: a wait just under the cap.
    await waitOf('b', maxTokens, tokensOnly);
    const before = await level('b', 'tokens');
    const refused = await takeTurn(db.pool, 'b', 500, tokensOnly);
    assert.equal(refused.taken, false);
    near(refused.taken ? 0 : refused.retryAfterMs, 5000 - 1000, 150, 'back off until the wait would be short enough');
    near(await level('b', 'tokens'), before, 5, 'nothing taken');
  });

  it('keep buckets per provider', async () => {
    assert.equal(await waitOf('c', 100, tokensOnly), 0);
  });

  it('a 429 holds every request back for as long as the provider asked', async () => {
    await holdBack(db.pool, 'd', 2000, tokensOnly);
    near(await waitOf('d', 50, tokensOnly), 2500, 100, 'the held-back time plus the request’s own tokens');
    await holdBack(db.pool, 'e', 2000, requestsOnly);
    near(await waitOf('e', 50, requestsOnly), 2500, 100, 'the held-back time plus one request');
  });
});
