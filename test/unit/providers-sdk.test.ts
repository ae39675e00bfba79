// Each provider through its real SDK client against the mock provider server.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { BedrockEmbeddingConfig, OpenAIEmbeddingConfig } from '../../src/config/pipeline.js';
import { startMockProvider, type MockProvider } from '../../src/mock-provider/server.js';
import { BedrockProvider } from '../../src/providers/bedrock.js';
import {
  InvalidInputError,
  ModelUnavailableError,
  ProviderAuthError,
  ProviderUnavailableError,
  QuotaExhaustedError,
  RateLimitedError,
} from '../../src/providers/errors.js';
import { featureHashEmbedding } from '../../src/providers/offline.js';
import { OpenAIProvider } from '../../src/providers/openai.js';

const KEY = 'sk-unit-test-key-0123456789';
Object.assign(process.env, {
  EMBEDSYNC_UNIT_KEY: KEY,
  EMBEDSYNC_UNIT_WRONG_KEY: 'sk-unit-wrong-key-9876543210',
  AWS_ACCESS_KEY_ID: 'AKIAMOCKUNITTEST0000',
  AWS_SECRET_ACCESS_KEY: 'unit-secret',
});

let mock: MockProvider;
before(async () => {
  mock = await startMockProvider({ apiKey: KEY, poisonMarker: 'POISON' });
});
after(async () => mock.close());
beforeEach(() => {
  mock.reset();
  mock.options.retryHint = 'retry-after';
  mock.options.echoKeyInErrors = false;
});

describe('OpenAI through the openai SDK', () => {
  const provider = new OpenAIProvider();
  const openai = (overrides: Partial<OpenAIEmbeddingConfig> = {}): OpenAIEmbeddingConfig => ({
    provider: 'openai',
    model: 'text-embedding-3-small',
    dimensions: 64,
    baseURL: mock.openaiBaseURL,
    apiKeyEnv: 'EMBEDSYNC_UNIT_KEY',
    encodingFormat: 'float',
    ...overrides,
  });
  const embed = (texts: string[], embedding = openai()) =>
    provider.embed({
      model: embedding.model,
      dimensions: embedding.dimensions,
      inputType: 'document',
      texts,
      embedding,
    });

  it('reads float and base64 replies alike, in input order, with the tokens counted', async () => {
    const float = await embed(['first text', 'second text']);
    const base64 = await embed(['first text', 'second text'], openai({ encodingFormat: 'base64' }));
    assert.equal(float.vectors.length, 2);
    assert.equal(float.vectors[0]?.length, 64);
    const expected = featureHashEmbedding('second text', 64);
    assert.ok(float.vectors[1]?.every((v, i) => Math.abs(v - (expected[i] ?? 0)) < 1e-6));
    assert.ok(
      base64.vectors[1]?.every((v, i) => Math.abs(v - (float.vectors[1]?.[i] ?? 0)) < 1e-6),
    );
    assert.equal(float.tokens, 4);
    assert.deepEqual(
      mock.requests.map((r) => r.params.encoding_format),
      ['float', 'base64'],
    );
  });

  it('asks for base64 when the config names no format, and for floats from a server that refuses it', async () => {
    const unset = openai({ encodingFormat: undefined });
    const expected = featureHashEmbedding('first text', 64);
    const close = (v: number[] | undefined) =>
      v?.length === 64 && v.every((x, i) => Math.abs(x - (expected[i] ?? 0)) < 1e-6);
    const fromBase64 = await embed(['first text'], unset);
    assert.ok(close(fromBase64.vectors[0]));
    assert.deepEqual(
      mock.requests.map((r) => [r.params.encoding_format, r.status]),
      [['base64', 200]],
    );

    // Another server (another client) that knows only floats.
    const floatOnly = await startMockProvider({ apiKey: KEY, floatOnly: true });
    try {
      const there = openai({ encodingFormat: undefined, baseURL: floatOnly.openaiBaseURL });
      const first = await embed(['first text'], there);
      const second = await embed(['first text'], there);
      assert.ok(close(first.vectors[0]) && close(second.vectors[0]));
      assert.deepEqual(
        floatOnly.requests.map((r) => [r.params.encoding_format, r.status]),
        [
          ['base64', 400],
          ['float', 200],
          ['float', 200],
        ],
        'refused once, then asked for floats',
      );
      // A format the config names is sent as named: the server's refusal is the pipeline's error.
      const named = await embed(['first text'], { ...there, encodingFormat: 'base64' }).catch(
        (e: unknown) => e,
      );
      assert.ok(named instanceof InvalidInputError);
      assert.match(named.message, /encoding_format/);
    } finally {
      await floatOnly.close();
    }
    // The first server's client still asks for base64.
    await embed(['first text'], unset);
    assert.equal(mock.requests.at(-1)?.params.encoding_format, 'base64');
  });

  it('asks for dimensions only where the model can reduce them', async () => {
    await embed(['a'], openai({ model: 'text-embedding-ada-002', dimensions: 1536 }));
    await embed(['a'], openai({ model: 'text-embedding-3-large', dimensions: 256 }));
    assert.deepEqual(
      mock.requests.map((r) => r.params.dimensions),
      [undefined, 256],
    );
  });

  it('turns a 429 into a rate limit with the delay the server asked for', async () => {
    for (const [hint, expected] of [
      ['retry-after', 2000],
      ['retry-after-ms', 1500],
      ['reset-headers', 1500],
    ] as const) {
      mock.options.retryHint = hint;
      mock.inject({ kind: 'rate-limit', retryAfterMs: 1500 });
      const err = await embed(['a']).catch((e: unknown) => e);
      assert.ok(err instanceof RateLimitedError, hint);
      assert.equal(err.retryAfterMs, expected, hint);
    }
    assert.equal(mock.requests.length, 3, 'the SDK retried on its own');
  });

  it('returns what the server says of its budgets and counts, with every answer and every 429', async () => {
    mock.options.requestsPerMinute = 60;
    mock.options.tokensPerMinute = 1000;
    mock.options.tokenCounting = 'bytes/4';
    try {
      const answer = await embed(['river stone maple']); // 17 bytes: 5 tokens counted as bytes/4
      assert.equal(answer.tokens, 5);
      assert.deepEqual(answer.limits, {
        requestsPerMinute: 60,
        tokensPerMinute: 1000,
        remainingRequests: 59,
        remainingTokens: 995,
        resetRequestsMs: 1000,
        resetTokensMs: 300,
      });
      const err = await embed(['x'.repeat(4000)]).catch((e: unknown) => e);
      assert.ok(err instanceof RateLimitedError);
      assert.equal(err.limits?.tokensPerMinute, 1000);
      assert.ok((err.limits?.remainingTokens ?? Infinity) < 1000);
    } finally {
      mock.options.requestsPerMinute = undefined;
      mock.options.tokensPerMinute = undefined;
      mock.options.tokenCounting = undefined;
    }
  });

  it('tells an exhausted quota from a rate limit', async () => {
    mock.inject({ kind: 'quota' });
    await assert.rejects(embed(['a']), QuotaExhaustedError);
  });

  it('refuses a wrong key without repeating it, even when the server does', async () => {
    mock.options.echoKeyInErrors = true;
    const err = await embed(['a'], openai({ apiKeyEnv: 'EMBEDSYNC_UNIT_WRONG_KEY' })).catch(
      (e: unknown) => e,
    );
    assert.ok(err instanceof ProviderAuthError);
    assert.ok(!err.message.includes('sk-unit-wrong-key'), err.message);
    assert.match(err.message, /\[redacted\]/);
  });

  it('classifies invalid input, unknown models and server errors', async () => {
    await assert.rejects(embed(['fine', 'POISON here']), InvalidInputError);
    await assert.rejects(
      embed(['a'], openai({ model: 'text-embedding-4-huge' })),
      ModelUnavailableError,
    );
    mock.inject({ kind: 'server-error', status: 503 });
    await assert.rejects(embed(['a']), ProviderUnavailableError);
    await assert.rejects(
      embed(['a'], openai({ baseURL: 'http://127.0.0.1:9/v1' })),
      ProviderUnavailableError,
    );
  });

  it('refuses to call OpenAI itself without a key, saying which variable is missing', async () => {
    const err = await embed(
      ['a'],
      openai({ baseURL: undefined, apiKeyEnv: 'EMBEDSYNC_UNIT_UNSET_KEY' }),
    ).catch((e: unknown) => e);
    assert.ok(err instanceof ProviderAuthError);
    assert.match(err.message, /EMBEDSYNC_UNIT_UNSET_KEY is not set/);
  });
});

describe('Bedrock through InvokeModel', () => {
  let provider: BedrockProvider;
  before(() => {
    provider = new BedrockProvider({ region: 'us-west-2', endpoint: mock.url });
  });
  const embed = (
    embedding: BedrockEmbeddingConfig,
    texts: string[],
    inputType: 'document' | 'query' = 'document',
  ) =>
    provider.embed({
      model: embedding.model,
      dimensions: embedding.dimensions,
      inputType,
      texts,
      embedding,
    });

  it('sends Titan v2 one text per call with its dimensions and normalize, signed for the region', async () => {
    const { vectors, tokens } = await embed(
      {
        provider: 'bedrock',
        model: 'amazon.titan-embed-text-v2:0',
        dimensions: 512,
        normalize: false,
      },
      ['one', 'two words'],
    );
    assert.equal(vectors.length, 2);
    assert.equal(vectors[0]?.length, 512);
    assert.ok(tokens > 0);
    assert.equal(mock.requests.length, 2);
    for (const r of mock.requests) {
      assert.equal(r.path, '/model/amazon.titan-embed-text-v2%3A0/invoke');
      assert.equal(r.signed, true);
      assert.equal(r.region, 'us-west-2');
      assert.deepEqual(r.params, { dimensions: 512, normalize: false });
    }
  });

  it('sends Titan v1 the text alone', async () => {
    const { vectors } = await embed(
      { provider: 'bedrock', model: 'amazon.titan-embed-text-v1', dimensions: 1536 },
      ['one'],
    );
    assert.equal(vectors[0]?.length, 1536);
    assert.deepEqual(mock.requests[0]?.params, {});
  });

  it('sends Cohere v3 many texts per call, documents as search_document and queries as search_query', async () => {
    const texts = Array.from({ length: 96 }, (_, i) => `text ${i}`);
    const { vectors } = await embed(
      { provider: 'bedrock', model: 'cohere.embed-english-v3', dimensions: 1024 },
      texts,
    );
    assert.equal(vectors.length, 96);
    await embed(
      { provider: 'bedrock', model: 'cohere.embed-multilingual-v3', dimensions: 1024 },
      ['query'],
      'query',
    );
    assert.deepEqual(
      mock.requests.map((r) => r.params.input_type),
      ['search_document', 'search_query'],
    );
    assert.ok(mock.requests.every((r) => r.params.truncate === 'NONE'));
  });

  it('asks Cohere v4 for floats of the pipeline’s dimensions, through an inference profile', async () => {
    const { vectors } = await embed(
      { provider: 'bedrock', model: 'us.cohere.embed-v4:0', dimensions: 256 },
      ['a', 'b'],
    );
    assert.deepEqual(
      vectors.map((v) => v.length),
      [256, 256],
    );
    assert.deepEqual(mock.requests[0]?.params, {
      input_type: 'search_document',
      embedding_types: ['float'],
      output_dimension: 256,
      truncate: 'NONE',
    });
    assert.equal(mock.requests[0]?.path, '/model/us.cohere.embed-v4%3A0/invoke');
  });

  it('classifies throttling, refusals and outages', async () => {
    const titan: BedrockEmbeddingConfig = {
      provider: 'bedrock',
      model: 'amazon.titan-embed-text-v2:0',
      dimensions: 256,
    };
    mock.inject({ kind: 'rate-limit' });
    const throttled = await embed(titan, ['a']).catch((e: unknown) => e);
    assert.ok(throttled instanceof RateLimitedError);
    assert.equal(
      throttled.retryAfterMs,
      undefined,
      'Bedrock gives no hint: the activity backs off with jitter',
    );
    await assert.rejects(embed(titan, ['POISON']), InvalidInputError);
    await assert.rejects(embed({ ...titan, dimensions: 768 }, ['a']), InvalidInputError);
    mock.inject({ kind: 'server-error', status: 503 });
    await assert.rejects(embed(titan, ['a']), ProviderUnavailableError);
    await assert.rejects(
      embed({ provider: 'bedrock', model: 'cohere.embed-english-v3', dimensions: 1024 }, [
        'x'.repeat(3000),
      ]),
      InvalidInputError,
    );
    assert.equal(mock.requests.length, 5, 'the SDK retried on its own');
  });
});
