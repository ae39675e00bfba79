// Voyage AI through its official SDK (voyageai) against the mock provider's Voyage protocol: what
// goes on the wire, how each failure is classified, and its model table.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { VoyageAIError } from 'voyageai';
import { countTokens, estimateTokens } from '../../src/chunking/tokens.js';
import { readProviderEnv } from '../../src/config/env.js';
import {
  ConfigError,
  parsePipelines,
  type PipelineInput,
  type VoyageEmbeddingConfig,
} from '../../src/config/pipeline.js';
import { startMockProvider, type MockProvider } from '../../src/mock-provider/server.js';
import {
  InvalidInputError,
  ModelUnavailableError,
  ProviderAuthError,
  ProviderRejectedError,
  ProviderUnavailableError,
  QuotaExhaustedError,
  RateLimitedError,
} from '../../src/providers/errors.js';
import { InputIsolator } from '../../src/providers/isolate.js';
import {
  canProduce,
  checkEmbeddingModel,
  modelFacts,
  reducesDimensions,
} from '../../src/providers/models.js';
import { featureHashEmbedding } from '../../src/providers/offline.js';
import { listPrice } from '../../src/providers/prices.js';
import { translate, VoyageProvider } from '../../src/providers/voyage.js';

const KEY = 'pa-unit-voyage-key-0123456789';
const WRONG_KEY = 'pa-unit-voyage-wrong-9876543210';
Object.assign(process.env, {
  EMBEDSYNC_UNIT_VOYAGE_KEY: KEY,
  EMBEDSYNC_UNIT_VOYAGE_WRONG_KEY: WRONG_KEY,
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

const voyage = (overrides: Partial<VoyageEmbeddingConfig> = {}): VoyageEmbeddingConfig => ({
  provider: 'voyage',
  model: 'voyage-3.5',
  dimensions: 1024,
  baseURL: mock.voyageBaseURL,
  apiKeyEnv: 'EMBEDSYNC_UNIT_VOYAGE_KEY',
  ...overrides,
});

describe('Voyage AI through the voyageai SDK', () => {
  const provider = new VoyageProvider();
  const embed = (
    texts: string[],
    embedding = voyage(),
    inputType: 'document' | 'query' = 'document',
  ) =>
    provider.embed({
      model: embedding.model,
      dimensions: embedding.dimensions,
      inputType,
      texts,
      embedding,
    });

  it('embeds documents and queries as such, never truncating, in input order, with the tokens counted', async () => {
    const docs = await embed(['first text', 'second text']);
    const query = await embed(['where is the second text'], voyage(), 'query');
    assert.equal(docs.vectors.length, 2);
    const expected = featureHashEmbedding('second text', 1024);
    assert.ok(docs.vectors[1]?.every((v, i) => Math.abs(v - (expected[i] ?? 0)) < 1e-6));
    assert.equal(query.vectors[0]?.length, 1024);
    // usage.total_tokens, as the mock counts (cl100k by default).
    assert.equal(docs.tokens, countTokens('first text') + countTokens('second text'));
    assert.equal(query.tokens, countTokens('where is the second text'));
    assert.deepEqual(
      mock.requests.map((r) => [r.path, r.api, r.params]),
      [
        [
          '/voyage/v1/embeddings',
          'voyage',
          { model: 'voyage-3.5', input_type: 'document', truncation: false, output_dtype: 'float' },
        ],
        [
          '/voyage/v1/embeddings',
          'voyage',
          { model: 'voyage-3.5', input_type: 'query', truncation: false, output_dtype: 'float' },
        ],
      ],
    );
  });

  it('asks for output_dimension only when it differs from the model’s 1024', async () => {
    const small = await embed(['a'], voyage({ model: 'voyage-3.5-lite', dimensions: 256 }));
    const large = await embed(['a'], voyage({ model: 'voyage-3-large', dimensions: 2048 }));
    assert.equal(small.vectors[0]?.length, 256);
    assert.equal(large.vectors[0]?.length, 2048);
    await embed(['a'], voyage({ model: 'voyage-code-3' }));
    assert.deepEqual(
      mock.requests.map((r) => r.params.output_dimension),
      [256, 2048, undefined],
    );
  });

  it('turns a 429 into a rate limit with the delay the server asked for, and does not retry it itself', async () => {
    for (const [hint, expected] of [
      ['retry-after', 2000],
      ['retry-after-ms', 1500],
      ['reset-headers', undefined],
    ] as const) {
      mock.options.retryHint = hint;
      mock.inject({ kind: 'rate-limit', retryAfterMs: 1500 });
      const err = await embed(['a']).catch((e: unknown) => e);
      assert.ok(err instanceof RateLimitedError, hint);
      assert.equal(err.retryAfterMs, expected, hint);
      assert.match(err.message, /^429: Rate limit exceeded/);
    }
    assert.equal(mock.requests.length, 3, 'the SDK retried on its own');
  });

  it('a 429 from the per-minute budget says when to come back', async () => {
    mock.options.requestsPerMinute = 1;
    try {
      await embed(['a']);
      const err = await embed(['b']).catch((e: unknown) => e);
      assert.ok(err instanceof RateLimitedError);
      // One request a minute: the next is a minute off (retry-after is in whole seconds).
      assert.ok((err.retryAfterMs ?? 0) > 50_000, `retry after ${err.retryAfterMs} ms`);
    } finally {
      mock.options.requestsPerMinute = undefined;
    }
  });

  it('tells exhausted credits from a rate limit, and does not retry them', async () => {
    mock.inject({ kind: 'quota' });
    const err = await embed(['a']).catch((e: unknown) => e);
    assert.ok(err instanceof QuotaExhaustedError);
    assert.match(err.message, /^429: .*credits/);
    assert.equal(mock.requests.length, 1);
  });

  it('refuses a wrong key without repeating it, even when the server does', async () => {
    mock.options.echoKeyInErrors = true;
    const err = await embed(['a'], voyage({ apiKeyEnv: 'EMBEDSYNC_UNIT_VOYAGE_WRONG_KEY' })).catch(
      (e: unknown) => e,
    );
    assert.ok(err instanceof ProviderAuthError);
    assert.equal(mock.requests[0]?.status, 401);
    assert.ok(!err.message.includes(WRONG_KEY), err.message);
    assert.match(err.message, /\[redacted\]/);
  });

  it('classifies a refused input, an input too long for the model, outages and an unreachable server', async () => {
    const refused = await embed(['fine', 'POISON here']).catch((e: unknown) => e);
    assert.ok(refused instanceof InvalidInputError);
    assert.match(refused.message, /index 1/);
    // Over 32,000 tokens: with truncation off, Voyage refuses it instead of cutting it.
    const long = await embed(['word '.repeat(33_000)]).catch((e: unknown) => e);
    assert.ok(long instanceof InvalidInputError);
    assert.match(long.message, /context window of 32000 tokens/);
    mock.inject({ kind: 'server-error', status: 503 });
    await assert.rejects(embed(['a']), ProviderUnavailableError);
    // A short timeout: the SDK leaves its timer armed after a connection failure.
    const unreachable = voyage({ baseURL: 'http://127.0.0.1:9/v1' });
    await assert.rejects(
      new VoyageProvider({}, 1).embed({
        model: unreachable.model,
        dimensions: unreachable.dimensions,
        inputType: 'document',
        texts: ['a'],
        embedding: unreachable,
      }),
      (err: unknown) =>
        err instanceof ProviderUnavailableError &&
        err.message === 'no answer from http://127.0.0.1:9/v1: fetch failed',
    );
  });

  it('passes on vectors of the wrong dimensions as they came: the embed activity refuses them', async () => {
    mock.inject({ kind: 'wrong-dimensions' });
    const { vectors } = await embed(['a']);
    assert.equal(vectors[0]?.length, 1023);
  });

  it('refuses to call Voyage itself without a key, saying which variable is missing', async () => {
    const err = await embed(
      ['a'],
      voyage({ baseURL: undefined, apiKeyEnv: 'EMBEDSYNC_UNIT_UNSET_VOYAGE_KEY' }),
    ).catch((e: unknown) => e);
    assert.ok(err instanceof ProviderAuthError);
    assert.match(err.message, /EMBEDSYNC_UNIT_UNSET_VOYAGE_KEY is not set/);
    assert.equal(mock.requests.length, 0);
  });

  it('isolates a refused input to its row by bisection, embedding every other input once', async () => {
    const inputs = ['one', 'two', 'three', 'POISON four', 'five', 'six', 'seven', 'eight'].map(
      (text, i) => ({ pk: String(i + 1), id: `${i + 1}:0`, text }),
    );
    const embedded: string[] = [];
    const isolator = new InputIsolator<(typeof inputs)[number]>(async (group) => {
      const { vectors } = await embed(group.map((g) => g.text));
      assert.equal(vectors.length, group.length);
      embedded.push(...group.map((g) => g.text));
    });
    await isolator.run(inputs);
    const failures = isolator.takeFailures();
    assert.deepEqual([...failures.keys()], ['4']);
    assert.match(failures.get('4') ?? '', /^400: .*index 0/);
    assert.deepEqual(embedded.sort(), ['eight', 'five', 'one', 'seven', 'six', 'three', 'two']);
    assert.ok(mock.requests.length <= 1 + 2 * Math.ceil(Math.log2(8)));
  });
});

describe('the mock’s Voyage protocol on the wire', () => {
  const post = async (body: unknown, key = KEY) => {
    const res = await fetch(`${mock.voyageBaseURL}/embeddings`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it('answers as Voyage does: a list of embeddings by index, the model, usage.total_tokens', async () => {
    const { status, body } = await post({ input: ['alpha', 'beta'], model: 'voyage-3.5' });
    assert.equal(status, 200);
    assert.deepEqual(Object.keys(body).sort(), ['data', 'model', 'object', 'usage']);
    assert.equal(body.object, 'list');
    assert.equal(body.model, 'voyage-3.5');
    assert.deepEqual(body.usage, { total_tokens: countTokens('alpha') + countTokens('beta') });
    const data = body.data as { object: string; index: number; embedding: number[] }[];
    assert.deepEqual(
      data.map((d) => [d.object, d.index, d.embedding.length]),
      [
        ['embedding', 0, 1024],
        ['embedding', 1, 1024],
      ],
    );
  });

  it('truncates by default, as Voyage does, and refuses instead with truncation false', async () => {
    const long = 'word '.repeat(33_000);
    assert.equal((await post({ input: [long], model: 'voyage-3.5' })).status, 200);
    const refused = await post({ input: [long], model: 'voyage-3.5', truncation: false });
    assert.equal(refused.status, 400);
    assert.match(String(refused.body.detail), /index 0 .*context window of 32000 tokens/);
  });

  it('sends base64 float32s when asked, and errors as {detail}', async () => {
    const { body } = await post({ input: 'gamma', model: 'voyage-3.5', encoding_format: 'base64' });
    const [item] = body.data as { embedding: string }[];
    const bytes = Buffer.from(item?.embedding ?? '', 'base64');
    assert.equal(bytes.byteLength, 1024 * 4);
    assert.deepEqual(await post({ input: 'x', model: 'voyage-3.5' }, 'pa-other'), {
      status: 401,
      body: { detail: 'Provided API key is invalid.' },
    });
    const tooMany = await post({ input: Array(1001).fill('x'), model: 'voyage-3.5' });
    assert.equal(tooMany.status, 400);
    assert.match(String(tooMany.body.detail), /batch size limit is 1000/);
    const dims = await post({ input: 'x', model: 'voyage-3.5', output_dimension: 768 });
    assert.equal(dims.status, 400);
    assert.match(String(dims.body.detail), /256, 512, 1024, 2048/);
  });
});

describe('Voyage errors in embedsync’s terms', () => {
  const sdkError = (status: number, detail: string, headers: Record<string, string> = {}) =>
    new VoyageAIError({
      message: `Status code: ${status}`,
      statusCode: status,
      body: { detail },
      rawResponse: {
        headers: new Headers(headers),
        redirected: false,
        status,
        statusText: '',
        type: 'basic',
        url: 'https://api.voyageai.com/v1/embeddings',
      },
    });
  const classify = (status: number, detail: string, headers?: Record<string, string>) =>
    translate(sdkError(status, detail, headers), [KEY]);

  it('money is a quota, not a rate limit or a credential', () => {
    assert.ok(classify(402, 'Payment required.') instanceof QuotaExhaustedError);
    assert.ok(
      classify(403, 'Your billing account has no remaining balance.') instanceof
        QuotaExhaustedError,
    );
    assert.ok(
      classify(429, 'You have exhausted your free tokens; add a payment method.') instanceof
        QuotaExhaustedError,
    );
  });

  it('a 429 reads retry-after in seconds or as a date', () => {
    const seconds = classify(429, 'Rate limit exceeded.', { 'retry-after': '7' });
    assert.ok(seconds instanceof RateLimitedError);
    assert.equal(seconds.retryAfterMs, 7000);
    const none = classify(429, 'Rate limit exceeded.');
    assert.ok(none instanceof RateLimitedError);
    assert.equal(none.retryAfterMs, undefined);
  });

  it('credentials, models, inputs, outages and the rest', () => {
    assert.ok(classify(401, 'Provided API key is invalid.') instanceof ProviderAuthError);
    assert.ok(classify(403, 'Forbidden.') instanceof ProviderAuthError);
    assert.ok(classify(404, 'Not found.') instanceof ModelUnavailableError);
    assert.ok(classify(400, 'bad input') instanceof InvalidInputError);
    assert.ok(classify(500, 'oops') instanceof ProviderUnavailableError);
    assert.ok(classify(502, 'bad gateway') instanceof ProviderUnavailableError);
    assert.ok(classify(418, 'teapot') instanceof ProviderRejectedError);
    assert.ok(translate(new Error('socket hang up'), []) instanceof ProviderUnavailableError);
  });

  it('scrubs the key from a message that repeats it', () => {
    const err = classify(401, `Provided API key is invalid: ${KEY}`);
    assert.ok(!err.message.includes(KEY));
    assert.equal(err.message, '401: Provided API key is invalid: [redacted]');
  });
});

describe('the Voyage model table', () => {
  const pipeline = (
    embedding: Partial<VoyageEmbeddingConfig> & Record<string, unknown>,
    chunking = { size: 2000, overlap: 200 },
  ): PipelineInput => ({
    name: 'docs',
    source: { table: 'public.docs' },
    embed: { columns: ['body'] },
    embedding: { provider: 'voyage', model: 'voyage-3.5', dimensions: 1024, ...embedding },
    chunking,
  });
  const parse = (input: PipelineInput) => {
    const [config] = parsePipelines({ pipelines: [input] });
    assert.ok(config);
    return config;
  };

  it('knows the models, their dimensions, 1,000 inputs and their per-request tokens', () => {
    for (const [model, perRequest] of [
      ['voyage-3.5', 320_000],
      ['voyage-3.5-lite', 1_000_000],
      ['voyage-3-large', 120_000],
      ['voyage-code-3', 120_000],
      ['voyage-4', 320_000],
      ['voyage-4-lite', 1_000_000],
      ['voyage-4-large', 120_000],
    ] as const) {
      const facts = modelFacts(voyage({ model }));
      assert.equal(facts.maxTokensPerRequest, perRequest, model);
      assert.equal(facts.maxInputsPerRequest, 1000, model);
      assert.equal(facts.maxTokensPerInput, 32_000, model);
      assert.equal(facts.nativeDimensions, 1024, model);
      for (const d of [256, 512, 1024, 2048]) assert.ok(canProduce(facts, d), `${model} ${d}`);
      for (const d of [64, 768, 1536, 4096]) assert.ok(!canProduce(facts, d), `${model} ${d}`);
      assert.equal(reducesDimensions(facts, 1024), false);
      assert.equal(reducesDimensions(facts, 512), true);
      assert.ok(listPrice('voyage', model), model);
    }
  });

  it('measures chunks in characters, at most one per token the model takes, and estimates tokens', () => {
    const config = parse(pipeline({}));
    assert.equal(modelFacts(config.embedding).unit, 'characters');
    assert.equal(estimateTokens(config.embedding, 'x'.repeat(300)), 100);
    assert.doesNotThrow(() =>
      checkEmbeddingModel(parse(pipeline({}, { size: 32_000, overlap: 0 }))),
    );
    assert.throws(
      () => checkEmbeddingModel(parse(pipeline({}, { size: 40_000, overlap: 0 }))),
      (err: unknown) => err instanceof ConfigError && err.field === 'chunking.size',
    );
  });

  it('refuses dimensions the model cannot produce and models it does not know, at apply time', () => {
    assert.throws(
      () => checkEmbeddingModel(parse(pipeline({ dimensions: 768 }))),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.field === 'embedding.dimensions' &&
        /256, 512, 1024, 2048/.test(err.message),
    );
    assert.throws(
      () => checkEmbeddingModel(parse(pipeline({ model: 'voyage-9' }))),
      (err: unknown) =>
        err instanceof ConfigError && /known: voyage-3\.5, voyage-3\.5-lite/.test(err.message),
    );
  });

  it('defaults the key variable to VOYAGE_API_KEY, and has no way to turn truncation on or ask for other dtypes', () => {
    assert.deepEqual(parse(pipeline({})).embedding, {
      provider: 'voyage',
      model: 'voyage-3.5',
      dimensions: 1024,
      apiKeyEnv: 'VOYAGE_API_KEY',
    });
    assert.throws(() => parse(pipeline({ truncation: true })), /truncation/);
    assert.throws(() => parse(pipeline({ outputDtype: 'int8' })), /outputDtype/);
  });

  it('reads its base URL and limits from the environment', () => {
    assert.deepEqual(
      readProviderEnv({
        VOYAGE_BASE_URL: 'http://127.0.0.1:8080/v1',
        EMBEDSYNC_VOYAGE_REQUESTS_PER_MINUTE: '2000',
        EMBEDSYNC_VOYAGE_TOKENS_PER_MINUTE: '8000000',
      }).voyage,
      { baseURL: 'http://127.0.0.1:8080/v1', requestsPerMinute: 2000, tokensPerMinute: 8_000_000 },
    );
  });
});
