import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { toFailure } from '../../activities/errors.js';
import {
  parsePipelines,
  type PipelineConfig,
  type PipelineInput,
} from '../../src/config/pipeline.js';
import {
  InvalidInputError,
  ProviderAuthError,
  ProviderUnavailableError,
  QuotaExhaustedError,
  RateLimitedError,
  RequestRefusedError,
} from '../../src/providers/errors.js';
import { InputIsolator } from '../../src/providers/isolate.js';
import { planProviderQueue, samePlan } from '../../src/rate-limit/index.js';
import { nextRequest } from '../../src/providers/requests.js';
import {
  parseResetDuration,
  rateLimitDelay,
  retryDelayFromHeaders,
  retryDelayFromMessage,
} from '../../src/providers/retry-hints.js';

const headers = (h: Record<string, string>) => (name: string) => h[name];

describe('retry hints', () => {
  it('reads retry-after-ms, then retry-after (seconds or a date), then the exhausted budget’s reset', () => {
    assert.equal(
      retryDelayFromHeaders(headers({ 'retry-after-ms': '1500', 'retry-after': '9' })),
      1500,
    );
    assert.equal(retryDelayFromHeaders(headers({ 'retry-after': '2' })), 2000);
    assert.equal(
      retryDelayFromHeaders(headers({ 'retry-after': new Date(10_000).toUTCString() }), 4000),
      6000,
    );
    assert.equal(
      retryDelayFromHeaders(
        headers({
          'x-ratelimit-remaining-requests': '10',
          'x-ratelimit-reset-requests': '50ms',
          'x-ratelimit-remaining-tokens': '0',
          'x-ratelimit-reset-tokens': '6m0s',
        }),
      ),
      360_000,
    );
    assert.equal(
      retryDelayFromHeaders(
        headers({ 'x-ratelimit-reset-requests': '1s', 'x-ratelimit-reset-tokens': '250ms' }),
      ),
      1000,
    );
    assert.equal(retryDelayFromHeaders(headers({})), undefined);
  });

  it('reads the wait from OpenAI’s 429 message', () => {
    assert.equal(
      retryDelayFromMessage(
        'Rate limit reached for text-embedding-3-small on tokens per min (TPM): Limit 1000000, Used 999500, Requested 1200. Please try again in 42ms. Visit https://platform.openai.com/account/rate-limits to learn more.',
      ),
      42,
    );
    assert.equal(retryDelayFromMessage('… Please try again in 1.02s. Visit …'), 1020);
    assert.equal(retryDelayFromMessage('You exceeded your current quota'), undefined);
  });

  it('parses OpenAI’s reset durations', () => {
    assert.equal(parseResetDuration('120ms'), 120);
    assert.equal(parseResetDuration('1.5s'), 1500);
    assert.equal(parseResetDuration('1h2m3s'), 3_723_000);
    assert.equal(parseResetDuration('soon'), undefined);
  });

  it('never retries before the hint, and jitters after it', () => {
    assert.equal(
      rateLimitDelay(2000, 1, () => 0),
      2000,
    );
    assert.equal(
      rateLimitDelay(2000, 1, () => 1),
      2400,
    );
    assert.equal(
      rateLimitDelay(60_000, 1, () => 1),
      62_000,
    );
    // No hint (Bedrock): exponential, capped, within the upper half.
    assert.equal(
      rateLimitDelay(undefined, 1, () => 0),
      500,
    );
    assert.equal(
      rateLimitDelay(undefined, 3, () => 1),
      4000,
    );
    assert.equal(
      rateLimitDelay(undefined, 20, () => 1),
      60_000,
    );
  });

  it('classifies provider errors at the activity edge', () => {
    const limited = toFailure(new RateLimitedError('openai', 'slow down', 1000));
    assert.ok(limited instanceof ApplicationFailure);
    assert.equal(limited.nonRetryable, false);
    assert.ok(
      typeof limited.nextRetryDelay === 'number' &&
        limited.nextRetryDelay >= 1000 &&
        limited.nextRetryDelay <= 1200,
    );
    for (const err of [
      new QuotaExhaustedError('openai', 'no quota'),
      new ProviderAuthError('openai', 'bad key'),
      new InvalidInputError('bedrock', 'bad'),
      new RequestRefusedError('openai', 'all bad'),
    ]) {
      const failure = toFailure(err);
      assert.ok(failure instanceof ApplicationFailure && failure.nonRetryable, err.name);
      assert.equal(failure.type, err.name);
    }
    const unavailable = toFailure(new ProviderUnavailableError('bedrock', '503'));
    assert.ok(unavailable instanceof ApplicationFailure && !unavailable.nonRetryable);
  });
});

const config = (embedding: PipelineInput['embedding'], size = 500): PipelineConfig => {
  const [c] = parsePipelines({
    pipelines: [
      {
        name: 'docs',
        source: { table: 'docs' },
        embed: { columns: ['body'] },
        embedding,
        chunking: { size, overlap: 50 },
      },
    ],
  });
  assert.ok(c);
  return c;
};

describe('rate plan', () => {
  const openai = { maxInputsPerRequest: 2048, rateLimit: {} };
  const small = (limits: { requestsPerMinute?: number; tokensPerMinute?: number }, size = 500) =>
    config(
      { provider: 'openai', model: 'text-embedding-3-small', dimensions: 256, ...limits },
      size,
    );

  it('paces nothing when no limit is declared', () => {
    const plan = planProviderQueue(openai, [small({})]);
    assert.equal(plan.activitiesPerSecond, undefined);
    assert.equal(plan.tokens, undefined);
    assert.equal(plan.requests, undefined);
    assert.equal(plan.tokensPerRequest, 300_000);
  });

  it('paces activities to the requests per minute and tokens through the shared bucket', () => {
    const plan = planProviderQueue(openai, [
      small({ requestsPerMinute: 3000, tokensPerMinute: 1_000_000 }),
    ]);
    assert.equal(plan.activitiesPerSecond, 50);
    assert.equal(plan.requestsPerActivity, 1);
    // The tokens budget no longer shrinks requests: they carry what the model takes.
    assert.equal(plan.tokensPerRequest, 300_000);
    assert.ok(Math.abs((plan.tokens?.perSecond ?? 0) - 1_000_000 / 60) < 1e-9);
    assert.ok(
      Math.abs((plan.tokens?.burst ?? 0) - 1_000_000 / 60) < 1e-6,
      'a full bucket holds one second of the budget',
    );
    assert.deepEqual(plan.requests, { perSecond: 50, burst: 50 });
  });

  it('never makes a request larger than a minute of the tokens budget', () => {
    const plan = planProviderQueue(openai, [small({ tokensPerMinute: 40_000 })]);
    assert.equal(plan.tokensPerRequest, 40_000);
    assert.equal(plan.activitiesPerSecond, undefined);
  });

  it('takes the strictest of the environment’s and every pipeline’s limits', () => {
    const plan = planProviderQueue({ ...openai, rateLimit: { requestsPerMinute: 600 } }, [
      small({ requestsPerMinute: 1200, tokensPerMinute: 90_000 }),
      small({ requestsPerMinute: 900, tokensPerMinute: 60_000 }),
    ]);
    assert.deepEqual(plan.limit, { requestsPerMinute: 600, tokensPerMinute: 60_000 });
    assert.equal(plan.activitiesPerSecond, 10);
    assert.equal(plan.tokens?.perSecond, 1000);
  });

  it('gives a model that takes one text per call several requests per activity', () => {
    const plan = planProviderQueue({ maxInputsPerRequest: 96, rateLimit: {} }, [
      config(
        {
          provider: 'bedrock',
          model: 'amazon.titan-embed-text-v2:0',
          dimensions: 256,
          requestsPerMinute: 480,
        },
        3000,
      ),
    ]);
    assert.equal(plan.requestsPerActivity, 8);
    assert.equal(plan.activitiesPerSecond, 1);
    // The bucket counts requests, not activities.
    assert.deepEqual(plan.requests, { perSecond: 8, burst: 8 });
  });

  it('lets at least one request through at once however low the requests per minute', () => {
    assert.deepEqual(planProviderQueue(openai, [small({ requestsPerMinute: 6 })]).requests, {
      perSecond: 0.1,
      burst: 1,
    });
  });

  it('tells a changed plan from the same one', () => {
    const a = planProviderQueue(openai, [
      small({ requestsPerMinute: 60, tokensPerMinute: 10_000 }),
    ]);
    assert.ok(
      samePlan(
        a,
        planProviderQueue(openai, [small({ requestsPerMinute: 60, tokensPerMinute: 10_000 })]),
      ),
    );
    assert.ok(
      !samePlan(
        a,
        planProviderQueue(openai, [small({ requestsPerMinute: 60, tokensPerMinute: 20_000 })]),
      ),
    );
    assert.ok(
      !samePlan(
        a,
        planProviderQueue(openai, [small({ requestsPerMinute: 120, tokensPerMinute: 10_000 })]),
      ),
    );
    assert.ok(!samePlan(undefined, a));
  });
});

describe('request sizing', () => {
  const inputs = (tokens: number[]) => tokens.map((t, i) => ({ id: String(i), tokens: t }));

  it('fills a request up to the input count and the token budget, in order', () => {
    assert.equal(
      nextRequest(inputs(Array<number>(10).fill(10)), { maxInputs: 4, maxTokens: 1000 }).length,
      4,
    );
    assert.deepEqual(
      nextRequest(inputs([40, 40, 40, 40]), { maxInputs: 100, maxTokens: 100 }).map((i) => i.id),
      ['0', '1'],
    );
    // An input larger than the budget still goes, alone.
    assert.deepEqual(
      nextRequest(inputs([500, 10]), { maxInputs: 100, maxTokens: 100 }).map((i) => i.id),
      ['0'],
    );
  });
});

describe('isolating a refused input', () => {
  const chunks = (n: number) =>
    Array.from({ length: n }, (_, i) => ({ pk: `row${i}`, id: `c${i}` }));

  function fakeProvider(refuse: (id: string) => boolean) {
    const requests: string[][] = [];
    const stored = new Set<string>();
    const send = (group: { id: string }[]): Promise<void> => {
      requests.push(group.map((c) => c.id));
      if (group.some((c) => refuse(c.id)))
        return Promise.reject(new InvalidInputError('openai', `refused ${group.length}`));
      for (const c of group) stored.add(c.id);
      return Promise.resolve();
    };
    return { send, requests, stored };
  }

  it('finds one bad input among 64 in a few requests, storing every other input once', async () => {
    const provider = fakeProvider((id) => id === 'c37');
    const isolator = new InputIsolator(provider.send);
    await isolator.run(chunks(64));
    assert.deepEqual([...isolator.takeFailures().keys()], ['row37']);
    assert.equal(provider.stored.size, 63);
    assert.ok(provider.requests.length <= 1 + 2 * 6, `${provider.requests.length} requests`);
    const accepted = provider.requests.filter((r) => !r.includes('c37')).flat();
    assert.equal(accepted.length, new Set(accepted).size, 'an input was sent (and paid for) twice');
  });

  it('sets aside the whole row of a refused chunk, skipping its other chunks', async () => {
    const rows = [
      { pk: 'a', id: 'a0' },
      { pk: 'a', id: 'a1' },
      { pk: 'b', id: 'b0' },
      { pk: 'b', id: 'b1' },
    ];
    const provider = fakeProvider((id) => id === 'a0');
    const isolator = new InputIsolator(provider.send);
    await isolator.run(rows);
    assert.deepEqual([...isolator.takeFailures().keys()], ['a']);
    assert.ok(!provider.stored.has('a1'));
    assert.ok(provider.stored.has('b0') && provider.stored.has('b1'));
  });

  it('blames the request, not the inputs, when everything tried is refused', async () => {
    const provider = fakeProvider(() => true);
    const isolator = new InputIsolator(provider.send);
    await assert.rejects(isolator.run(chunks(50)), RequestRefusedError);
    assert.ok(
      provider.requests.length <= 2 * 6 + 2,
      `${provider.requests.length} requests before giving up`,
    );
  });

  it('still isolates two bad neighbours when the rest of the batch is good', async () => {
    const provider = fakeProvider((id) => id === 'c0' || id === 'c1');
    const isolator = new InputIsolator(provider.send);
    await isolator.run(chunks(16));
    assert.deepEqual([...isolator.takeFailures().keys()].sort(), ['row0', 'row1']);
    assert.equal(provider.stored.size, 14);
  });
});
