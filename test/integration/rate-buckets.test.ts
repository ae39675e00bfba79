// The shared requests- and tokens-per-minute buckets, in the database: what they let through at
// once, how long they make a request wait, when they send a request away to back off, and how a 429
// holds everyone back. Every turn is taken at a time the test gives, so the arithmetic is exact
// however slow the machine is.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { lowerBucket } from '../../src/rate-limit/buckets.js';
import { holdBack, MAX_TURN_WAIT_MS, takeTurn } from '../../src/rate-limit/index.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let db: TestDatabase;
// 100 tokens a second, holding one second of them.
const tokensOnly = { requests: undefined, tokens: { perSecond: 100, burst: 100 } };
// Two requests a second, holding two.
const requestsOnly = { requests: { perSecond: 2, burst: 2 }, tokens: undefined };
const both = { requests: requestsOnly.requests, tokens: tokensOnly.tokens };
type Plan = Parameters<typeof takeTurn>[3];

/** A moment `ms` after an arbitrary fixed start. */
const T0 = Date.parse('2030-01-01T00:00:00Z');
const at = (ms: number): Date => new Date(T0 + ms);

const bucket = async (
  provider: string,
  budget: 'requests' | 'tokens',
): Promise<{ level: number; updatedAt: Date }> => {
  const { rows } = await db.pool.query<{ level: number; updated_at: Date }>(
    'select level, updated_at from embedsync.rate_buckets where provider = $1 and budget = $2',
    [provider, budget],
  );
  assert.ok(rows[0], `no ${budget} bucket for ${provider}`);
  return { level: rows[0].level, updatedAt: rows[0].updated_at };
};

/** The wait of a turn that was taken. */
const waitOf = async (
  provider: string,
  tokens: number,
  plan: Plan,
  ms: number,
): Promise<number> => {
  const turn = await takeTurn(db.pool, provider, tokens, plan, at(ms));
  assert.ok(turn.taken, 'the turn was refused');
  return turn.waitMs;
};

describe('rate buckets', () => {
  before(async () => {
    db = await createTestDatabase('rate-buckets');
  });
  after(async () => db.drop());

  it('let a full bucket’s worth of tokens through at once, then make each request wait for its tokens', async () => {
    assert.equal(await waitOf('a', 100, tokensOnly, 0), 0);
    assert.equal(await waitOf('a', 300, tokensOnly, 0), 3000, 'wait for 300 tokens at 100/s');
    assert.equal(
      await waitOf('a', 200, tokensOnly, 0),
      5000,
      'the next request waits behind the first',
    );
    assert.deepEqual(
      await bucket('a', 'tokens'),
      { level: -500, updatedAt: at(0) },
      'tokens promised to waiting requests',
    );
  });

  it('refill at their rate as time passes, up to the burst and no further', async () => {
    assert.equal(await waitOf('g', 100, tokensOnly, 0), 0);
    assert.equal(
      await waitOf('g', 50, tokensOnly, 250),
      250,
      'a quarter second has refilled 25 of 50 tokens',
    );
    assert.equal(await bucket('g', 'tokens').then((b) => b.level), -25);
    assert.equal(
      await waitOf('g', 75, tokensOnly, 1250),
      0,
      'a second later, 100 tokens have come back',
    );
    // An hour idle refills to the burst, not to 360,000 tokens.
    assert.equal(await waitOf('g', 100, tokensOnly, 3_600_000), 0);
    assert.equal(await waitOf('g', 100, tokensOnly, 3_600_000), 1000);
  });

  it('space requests to the requests per minute, whatever their size', async () => {
    const waits = [];
    for (let i = 0; i < 5; i++) waits.push(await waitOf('r', 1 + i * 1000, requestsOnly, 0));
    // Two at once (the burst), then one every half second.
    assert.deepEqual(waits, [0, 0, 500, 1000, 1500]);
    // 1.5 s later the refill has paid for the promised turns: the next one is half a second off.
    assert.equal(await waitOf('r', 1, requestsOnly, 1500), 500);
  });

  it('with both limits, a request waits for the later of its two turns', async () => {
    assert.equal(await waitOf('ab', 50, both, 0), 0);
    assert.equal(await waitOf('ab', 10, both, 0), 0, 'within both bursts');
    assert.equal(await waitOf('ab', 10, both, 0), 500, 'the requests bucket decides');
    assert.equal(await waitOf('ab', 280, both, 0), 2500, 'the tokens bucket decides');
    assert.deepEqual(
      [(await bucket('ab', 'requests')).level, (await bucket('ab', 'tokens')).level],
      [-2, -250],
      'each bucket holds what was taken from it',
    );
  });

  it('send a request away, taking nothing, when its turn is further off than an activity should wait', async () => {
    const maxTokens = (MAX_TURN_WAIT_MS / 1000) * tokensOnly.tokens.perSecond;
    // Empties the full bucket and promises the next 19 s: a wait just under the cap.
    assert.equal(await waitOf('b', maxTokens, tokensOnly, 0), 19_000);
    const refused = await takeTurn(db.pool, 'b', 500, tokensOnly, at(0));
    assert.deepEqual(
      refused,
      { taken: false, retryAfterMs: 4000 },
      'back off until the wait would be short enough',
    );
    assert.deepEqual(
      await bucket('b', 'tokens'),
      { level: -1900, updatedAt: at(0) },
      'nothing taken',
    );
    // Asked again after the back-off, the same request is let through, at the longest wait allowed.
    assert.deepEqual(await takeTurn(db.pool, 'b', 500, tokensOnly, at(4000)), {
      taken: true,
      waitMs: MAX_TURN_WAIT_MS,
    });
  });

  it('keep buckets per provider', async () => {
    assert.equal(await waitOf('c', 100, tokensOnly, 0), 0);
    assert.equal(await waitOf('c2', 100, tokensOnly, 0), 0);
  });

  it('a 429 holds every request back for as long as the provider asked', async () => {
    await holdBack(db.pool, 'd', 2000, tokensOnly, at(0));
    assert.equal(
      await waitOf('d', 50, tokensOnly, 0),
      2500,
      'the held-back time plus the request’s own tokens',
    );
    await holdBack(db.pool, 'e', 2000, requestsOnly, at(0));
    assert.equal(
      await waitOf('e', 50, requestsOnly, 0),
      2500,
      'the held-back time plus one request',
    );
    assert.equal(
      await waitOf('e', 50, requestsOnly, 3000),
      0,
      'after the hold and the turns promised, at once again',
    );
  });

  it('a 429 asking for less than is already promised shortens no wait', async () => {
    assert.equal(await waitOf('f', 600, tokensOnly, 0), 5000);
    await holdBack(db.pool, 'f', 1000, tokensOnly, at(0));
    assert.equal(await waitOf('f', 100, tokensOnly, 0), 6000);
  });

  it('a hold is a time: a plan whose rate changes during it neither stretches nor shortens it', async () => {
    // 60,000 requests a minute declared; the 429 asks for half a second and names a limit of 600
    // a minute, which the plan then follows (as a Gemini quotaValue or an x-ratelimit-limit does).
    const declared = { requests: { perSecond: 1000, burst: 1000 }, tokens: undefined };
    const learned = { requests: { perSecond: 10, burst: 10 }, tokens: undefined };
    await holdBack(db.pool, 'h', 500, declared, at(0));
    assert.deepEqual(
      await takeTurn(db.pool, 'h', 1, learned, at(0)),
      { taken: true, waitMs: 600 },
      'the half second asked for, then one request at the learned rate',
    );
    assert.equal(await waitOf('h', 1, learned, 500), 200, 'and the next one behind it');
    // A rate that rises during a hold does not cut it short either.
    await holdBack(db.pool, 'i', 2000, learned, at(0));
    assert.equal(await waitOf('i', 1, declared, 0), 2001);
  });

  it('a shorter 429 during a longer hold shortens nothing', async () => {
    await holdBack(db.pool, 'j', 3000, requestsOnly, at(0));
    await holdBack(db.pool, 'j', 500, requestsOnly, at(1000));
    assert.equal(await waitOf('j', 1, requestsOnly, 1000), 2500, 'the first hold ends at 3 s');
  });

  it('a bucket first used during a hold (a limit learned meanwhile) is held too, and empty', async () => {
    await holdBack(db.pool, 'n', 1000, tokensOnly, at(0));
    // The plan now has a requests limit as well: its new bucket lines up behind the hold.
    const waits = [];
    for (let i = 0; i < 3; i++) waits.push(await waitOf('n', 1, both, 0));
    assert.deepEqual(waits, [1500, 2000, 2500]);
    // A plan with only a requests limit left is held all the same.
    await holdBack(db.pool, 'o', 1000, tokensOnly, at(0));
    assert.equal(await waitOf('o', 1, requestsOnly, 0), 1500);
  });

  it('a hold longer than an activity should wait sends the request away, taking nothing', async () => {
    await holdBack(db.pool, 'k', 30_000, requestsOnly, at(0));
    assert.deepEqual(await takeTurn(db.pool, 'k', 1, requestsOnly, at(0)), {
      taken: false,
      retryAfterMs: 30_500 - MAX_TURN_WAIT_MS,
    });
    assert.deepEqual(await takeTurn(db.pool, 'k', 1, requestsOnly, at(10_500)), {
      taken: true,
      waitMs: MAX_TURN_WAIT_MS,
    });
  });

  it('what the 429 says is left lowers a held bucket as of the hold’s end, not on top of it', async () => {
    // The provider says nothing is left, less a second in flight at 2 requests a second: the hold
    // of half a second then waits for the second in flight, not for both one after the other.
    await holdBack(db.pool, 'l', 500, requestsOnly, at(0));
    assert.equal(
      await lowerBucket(db.pool, 'l', 'requests', -2, requestsOnly.requests, at(0)),
      true,
    );
    assert.equal(await waitOf('l', 1, requestsOnly, 0), 1500, 'a second in flight, then one turn');
    // Told again that nothing is left, a held bucket that holds nothing is not lowered.
    await holdBack(db.pool, 'm', 500, requestsOnly, at(0));
    assert.equal(
      await lowerBucket(db.pool, 'm', 'requests', 0, requestsOnly.requests, at(0)),
      false,
    );
    assert.equal(await waitOf('m', 1, requestsOnly, 0), 1000);
  });

  it('callers that give no time are on the database’s clock, through one function of each name', async () => {
    assert.deepEqual(await takeTurn(db.pool, 'now', 1, both), { taken: true, waitMs: 0 });
    await holdBack(db.pool, 'now', 1000, both);
    const turn = await takeTurn(db.pool, 'now', 1, both);
    // However long the machine took since the hold, the wait cannot exceed the hold plus one turn.
    assert.ok(turn.taken && turn.waitMs <= 1500, JSON.stringify(turn));
    const { rows } = await db.pool.query<{ name: string; n: number }>(
      `select proname as name, count(*)::int as n from pg_proc
        where pronamespace = 'embedsync'::regnamespace
          and proname in ('take_turn', 'hold_back', 'hold_bucket', 'held_for', 'refilled_bucket',
                          'set_bucket', 'lower_bucket')
        group by proname order by proname`,
    );
    assert.deepEqual(
      rows.map((r) => `${r.name}:${r.n}`),
      [
        'held_for:1',
        'hold_back:1',
        'hold_bucket:1',
        'lower_bucket:1',
        'refilled_bucket:1',
        'set_bucket:1',
        'take_turn:1',
      ],
    );
  });
});
