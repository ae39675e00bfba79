// The pacing decisions taken from a provider's answers (src/rate-limit/observed.ts): the token
// ratio the buckets are charged by, how far a bucket is lowered to what the provider says is left,
// and the limits learned from its headers. Times are given, never read from the clock.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mockTokenCount } from '../../src/mock-provider/limits.js';
import { observedLimits } from '../../src/providers/retry-hints.js';
import {
  allowedLevels,
  chargedTokens,
  LEARNED_LIMITS_STAND_MS,
  nextTokenRatio,
  providerLearnedLimits,
  RATIO_BOUNDS,
  type TokenRatio,
} from '../../src/rate-limit/observed.js';
import { planProviderQueue } from '../../src/rate-limit/plan.js';

const headers = (h: Record<string, string>) => (name: string) => h[name];
const none: TokenRatio = { ratio: 1, samples: 0 };
const learn = (answers: [estimate: number, reported: number][], from = none): TokenRatio =>
  answers.reduce((r, [estimate, reported]) => nextTokenRatio(r, estimate, reported), from);

describe('the token ratio', () => {
  it('is set by the first answer and converges on the provider’s count', () => {
    assert.deepEqual(learn([[100, 150]]), { ratio: 1.5, samples: 1 });
    // A provider that counts 1.25× on average, each answer a little off.
    const answers = Array.from({ length: 200 }, (_, i): [number, number] => [
      400,
      400 * (1.25 + (i % 2 === 0 ? 0.05 : -0.05)),
    ]);
    const learned = learn(answers);
    assert.equal(learned.samples, 200);
    assert.ok(Math.abs(learned.ratio - 1.25) < 0.01, `ratio ${learned.ratio}`);
    assert.equal(chargedTokens(1000, learned.ratio), 1000 * learned.ratio);
  });

  it('moves little for one odd answer once learned, and follows a lasting change', () => {
    const steady = learn(Array.from({ length: 50 }, (): [number, number] => [100, 120]));
    const odd = nextTokenRatio(steady, 100, 300);
    assert.ok(odd.ratio < 1.45, `one answer of 3× moved the ratio to ${odd.ratio}`);
    const moved = learn(
      Array.from({ length: 60 }, (): [number, number] => [100, 200]),
      steady,
    );
    assert.ok(Math.abs(moved.ratio - 2) < 0.01, `ratio ${moved.ratio} after the count doubled`);
  });

  it('is bounded, and ignores answers that report no count', () => {
    assert.equal(learn([[100, 100_000]]).ratio, RATIO_BOUNDS.max);
    assert.equal(learn([[100, 1]]).ratio, RATIO_BOUNDS.min);
    assert.deepEqual(learn([[100, 0]]), none, 'a 429 or a server that reports no usage');
    assert.deepEqual(learn([[0, 50]]), none);
    assert.equal(chargedTokens(100, 50), 100 * RATIO_BOUNDS.max, 'the charge is bounded too');
  });
});

describe('lowering a bucket to what the provider says is left', () => {
  const tokens = { perSecond: 1000, burst: 1000 };
  const requests = { perSecond: 10, burst: 10 };
  const T = 1_000_000;

  it('subtracts what the fleet may have sent while the request was in flight', () => {
    // 300 ms in flight at 1,000 tokens/s: up to 300 tokens sent meanwhile, not counted yet.
    assert.deepEqual(
      allowedLevels(
        { remainingTokens: 500, remainingRequests: 4 },
        { tokens, requests },
        T,
        T + 300,
      ),
      [
        { budget: 'requests', level: 1 },
        { budget: 'tokens', level: 200 },
      ],
    );
  });

  it('goes below zero when the provider is spent, so the next turns wait for the refill', () => {
    assert.deepEqual(allowedLevels({ remainingTokens: 0 }, { tokens }, T, T + 2000), [
      { budget: 'tokens', level: -2000 },
    ]);
  });

  it('leaves a bucket alone when the provider has more left than the bucket can hold', () => {
    assert.deepEqual(
      allowedLevels(
        { remainingTokens: 900_000, remainingRequests: 2999 },
        { tokens, requests },
        T,
        T + 50,
      ),
      [],
    );
  });

  it('touches only the buckets that exist and the budgets the answer reports', () => {
    assert.deepEqual(allowedLevels({ remainingRequests: 0 }, { tokens }, T, T), []);
    assert.deepEqual(allowedLevels(undefined, { tokens, requests }, T, T), []);
    assert.deepEqual(allowedLevels({ remainingTokens: 10 }, {}, T, T), []);
  });

  it('never counts time before the request was sent', () => {
    assert.deepEqual(allowedLevels({ remainingTokens: 10 }, { tokens }, T, T - 500), [
      { budget: 'tokens', level: 10 },
    ]);
  });
});

describe('limits learned from the headers', () => {
  it('are read from every x-ratelimit header an answer carries', () => {
    assert.deepEqual(
      observedLimits(
        headers({
          'x-ratelimit-limit-requests': '3000',
          'x-ratelimit-limit-tokens': '1000000',
          'x-ratelimit-remaining-requests': '2999',
          'x-ratelimit-remaining-tokens': '999950',
          'x-ratelimit-reset-requests': '20ms',
          'x-ratelimit-reset-tokens': '6m0s',
        }),
      ),
      {
        requestsPerMinute: 3000,
        tokensPerMinute: 1_000_000,
        remainingRequests: 2999,
        remainingTokens: 999_950,
        resetRequestsMs: 20,
        resetTokensMs: 360_000,
      },
    );
    assert.deepEqual(observedLimits(headers({ 'x-ratelimit-remaining-tokens': '0' })), {
      remainingTokens: 0,
    });
    assert.equal(observedLimits(headers({ 'x-ratelimit-limit-tokens': 'lots' })), undefined);
    assert.equal(observedLimits(headers({})), undefined);
  });

  it('are the strictest any of the provider’s models reported lately', () => {
    const now = Date.parse('2030-01-01T12:00:00Z');
    const seen = (msAgo: number) => new Date(now - msAgo);
    const rows = [
      {
        provider: 'openai',
        model: 'a',
        requestsPerMinute: 3000,
        tokensPerMinute: 1_000_000,
        limitsSeenAt: seen(1000),
      },
      {
        provider: 'openai',
        model: 'b',
        requestsPerMinute: 5000,
        tokensPerMinute: 500_000,
        limitsSeenAt: seen(LEARNED_LIMITS_STAND_MS),
      },
      { provider: 'bedrock', model: 'c', requestsPerMinute: 10, limitsSeenAt: seen(0) },
      { provider: 'openai', model: 'd', limitsSeenAt: null },
      // Reported by a server this provider no longer talks to, an hour and more ago.
      {
        provider: 'openai',
        model: 'e',
        requestsPerMinute: 1,
        limitsSeenAt: seen(LEARNED_LIMITS_STAND_MS + 1),
      },
    ];
    assert.deepEqual(providerLearnedLimits(rows, 'openai', now), {
      requestsPerMinute: 3000,
      tokensPerMinute: 500_000,
    });
    assert.deepEqual(providerLearnedLimits(rows, 'cohere', now), {
      requestsPerMinute: undefined,
      tokensPerMinute: undefined,
    });
  });

  it('pace a provider with nothing declared, and the strictest of declared and learned applies', () => {
    const openai = { maxInputsPerRequest: 2048, rateLimit: {} };
    const unpaced = planProviderQueue(openai, []);
    assert.equal(unpaced.tokens, undefined);
    const learned = planProviderQueue(openai, [], {
      requestsPerMinute: 3000,
      tokensPerMinute: 1_000_000,
    });
    assert.deepEqual(learned.limit, { requestsPerMinute: 3000, tokensPerMinute: 1_000_000 });
    assert.equal(learned.activitiesPerSecond, 50);
    assert.equal(learned.tokens?.perSecond, 1_000_000 / 60);
    const both = planProviderQueue({ ...openai, rateLimit: { tokensPerMinute: 600_000 } }, [], {
      requestsPerMinute: 3000,
      tokensPerMinute: 1_000_000,
    });
    assert.deepEqual(both.limit, { requestsPerMinute: 3000, tokensPerMinute: 600_000 });
  });
});

describe('the mock provider’s token counting', () => {
  it('counts cl100k by default and UTF-8 bytes ÷ 4 when told', () => {
    assert.equal(mockTokenCount('river stone maple'), 3);
    assert.equal(mockTokenCount('river stone maple', 'bytes/4'), 5); // 17 bytes
    assert.equal(mockTokenCount('é', 'bytes/4'), 1);
  });
});
