// Gemini through the real @google/genai client against the mock provider's Gemini API, and its
// errors classified from the bodies Google sends.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import {
  ConfigError,
  parsePipelines,
  type GeminiEmbeddingConfig,
  type PipelineInput,
} from '../../src/config/pipeline.js';
import { readProviderEnv } from '../../src/config/env.js';
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
import { GeminiProvider } from '../../src/providers/gemini.js';
import { translateStatus } from '../../src/providers/gemini-errors.js';
import { InputIsolator } from '../../src/providers/isolate.js';
import { checkEmbeddingModel, modelFacts } from '../../src/providers/models.js';
import { listPrice } from '../../src/providers/prices.js';
import { featureHashEmbedding } from '../../src/providers/offline.js';

// Shaped like Google's keys (AIza + 35), so the shape-based scrubbing is exercised too.
const KEY = 'AIzaUnitTestKey0000000000000000000000000';
const WRONG_KEY = 'AIzaUnitWrongKey999999999999999999999999';
for (const name of ['GEMINI_API_KEY', 'GOOGLE_API_KEY', 'GOOGLE_GENAI_USE_VERTEXAI'])
  delete process.env[name];
Object.assign(process.env, {
  EMBEDSYNC_GEMINI_UNIT_KEY: KEY,
  EMBEDSYNC_GEMINI_UNIT_WRONG_KEY: WRONG_KEY,
});

const norm = (v: readonly number[]): number => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
const close = (a: readonly number[], b: readonly number[]): boolean =>
  a.length === b.length && a.every((x, i) => Math.abs(x - (b[i] ?? NaN)) < 1e-6);

let mock: MockProvider;
before(async () => {
  mock = await startMockProvider({ apiKey: KEY, poisonMarker: 'POISON' });
});
after(async () => mock.close());
beforeEach(() => {
  mock.reset();
  mock.options.echoKeyInErrors = false;
  mock.options.requestsPerMinute = undefined;
});

describe('Gemini through the @google/genai SDK', () => {
  const provider = new GeminiProvider();
  const gemini = (overrides: Partial<GeminiEmbeddingConfig> = {}): GeminiEmbeddingConfig => ({
    provider: 'gemini',
    model: 'gemini-embedding-001',
    dimensions: 768,
    baseURL: mock.url,
    apiKeyEnv: 'EMBEDSYNC_GEMINI_UNIT_KEY',
    ...overrides,
  });
  const embed = (
    texts: string[],
    embedding = gemini(),
    inputType: 'document' | 'query' = 'document',
  ) =>
    provider.embed({
      model: embedding.model,
      dimensions: embedding.dimensions,
      inputType,
      texts,
      embedding,
    });

  it('sends documents in one batchEmbedContents request as RETRIEVAL_DOCUMENT, the key in a header', async () => {
    const texts = ['alpine tent', 'camping stove', 'trail runners'];
    const { vectors, tokens } = await embed(texts);
    assert.equal(mock.requests.length, 1);
    const [request] = mock.requests;
    // The SDK's default API version for the Gemini API is v1.
    assert.equal(request?.path, '/v1/models/gemini-embedding-001:batchEmbedContents');
    assert.deepEqual(request?.inputs, texts);
    assert.deepEqual(request?.params, {
      method: 'batchEmbedContents',
      taskType: 'RETRIEVAL_DOCUMENT',
      outputDimensionality: 768,
      auth: 'x-goog-api-key',
    });
    assert.equal(vectors.length, 3);
    texts.forEach((t, i) =>
      assert.ok(close(vectors[i] ?? [], featureHashEmbedding(t, 768)), `vector ${i} out of order`),
    );
    // No count in the answer: the budget's estimate, 3 characters a token.
    assert.equal(tokens, Math.ceil(11 / 3) + Math.ceil(13 / 3) + Math.ceil(13 / 3));
  });

  it('sends a search query as RETRIEVAL_QUERY', async () => {
    await embed(['warm sleeping bag'], gemini(), 'query');
    assert.equal(mock.requests[0]?.params.taskType, 'RETRIEVAL_QUERY');
  });

  it('normalises reduced vectors, which Gemini sends shorter than unit length', async () => {
    for (const dimensions of [128, 768, 1536, 3072]) {
      mock.reset();
      const { vectors } = await embed(['headlamp'], gemini({ dimensions }));
      assert.equal(vectors[0]?.length, dimensions);
      assert.ok(Math.abs(norm(vectors[0] ?? []) - 1) < 1e-9, `${dimensions}: not unit length`);
      assert.equal(mock.requests[0]?.params.outputDimensionality, dimensions);
    }
  });

  it('takes the model by its resource name too', async () => {
    const { vectors } = await embed(['a'], gemini({ model: 'models/gemini-embedding-001' }));
    assert.equal(vectors.length, 1);
    assert.equal(mock.requests[0]?.model, 'gemini-embedding-001');
  });

  it('turns a 429 into a rate limit with RetryInfo’s delay, and what it says of the budget', async () => {
    mock.inject({ kind: 'rate-limit', retryAfterMs: 1500 });
    const injected = await embed(['a']).catch((e: unknown) => e);
    assert.ok(injected instanceof RateLimitedError);
    assert.equal(injected.retryAfterMs, 1500);
    // No limit configured, so the 429 names none.
    assert.equal(injected.limits, undefined);

    mock.reset();
    mock.options.requestsPerMinute = 2;
    await embed(['a']);
    await embed(['b']);
    const budget = await embed(['c']).catch((e: unknown) => e);
    assert.ok(budget instanceof RateLimitedError);
    assert.deepEqual(budget.limits, { requestsPerMinute: 2 });
    // Half a minute for the next of 2 per minute, less the moments the first two took.
    assert.ok((budget.retryAfterMs ?? 0) > 20_000 && (budget.retryAfterMs ?? 0) <= 30_000);
    assert.equal(mock.requests.length, 3, 'the SDK retried on its own');
  });

  it('tells a daily quota from a rate limit, whatever wait its RetryInfo names', async () => {
    mock.inject({ kind: 'quota' });
    const err = await embed(['a']).catch((e: unknown) => e);
    assert.ok(err instanceof QuotaExhaustedError);
    assert.match(err.message, /EmbedContentRequestsPerDayPerProjectPerModel of 1000/);
  });

  it('refuses a wrong key as credentials, without repeating it though Google quotes it', async () => {
    mock.options.echoKeyInErrors = true;
    const err = await embed(['a'], gemini({ apiKeyEnv: 'EMBEDSYNC_GEMINI_UNIT_WRONG_KEY' })).catch(
      (e: unknown) => e,
    );
    assert.ok(err instanceof ProviderAuthError);
    assert.match(err.message, /API key not valid/);
    assert.ok(!err.message.includes(WRONG_KEY), err.message);
    assert.ok(mock.requests.every((r) => r.status === 400));
  });

  it('reads GOOGLE_API_KEY or GEMINI_API_KEY as the SDK does, and names both when neither is set', async () => {
    const keyless = { ...gemini(), apiKeyEnv: undefined };
    const err = await embed(['a'], keyless).catch((e: unknown) => e);
    assert.ok(err instanceof ProviderAuthError);
    assert.match(err.message, /neither GOOGLE_API_KEY nor GEMINI_API_KEY is set/);
    // A provider each: clients are kept per key variable, once made.
    const embedWith = (env: Record<string, string>) => {
      Object.assign(process.env, env);
      return new GeminiProvider()
        .embed({
          model: keyless.model,
          dimensions: keyless.dimensions,
          inputType: 'document',
          texts: ['a'],
          embedding: keyless,
        })
        .finally(() => {
          for (const name of Object.keys(env)) delete process.env[name];
        });
    };
    assert.equal((await embedWith({ GEMINI_API_KEY: KEY })).vectors.length, 1);
    // Both set: GOOGLE_API_KEY, as the SDK warns; the wrong one in GEMINI_API_KEY is not used.
    assert.equal(
      (await embedWith({ GOOGLE_API_KEY: KEY, GEMINI_API_KEY: WRONG_KEY })).vectors.length,
      1,
    );
    await assert.rejects(
      embedWith({ GOOGLE_API_KEY: WRONG_KEY, GEMINI_API_KEY: KEY }),
      ProviderAuthError,
    );
  });

  it('classifies refused input, unknown models, server errors and an unreachable server', async () => {
    await assert.rejects(embed(['fine', 'POISON here']), InvalidInputError);
    await assert.rejects(embed(['x'.repeat(8200)]), InvalidInputError);
    await assert.rejects(
      embed(['a'], gemini({ model: 'text-embedding-004' })),
      ModelUnavailableError,
    );
    mock.inject({ kind: 'server-error', status: 503 });
    await assert.rejects(embed(['a']), ProviderUnavailableError);
    mock.inject({ kind: 'server-error', status: 500 });
    await assert.rejects(embed(['a']), ProviderUnavailableError);
    assert.equal(mock.requests.length, 5, 'the SDK retried on its own');
    await assert.rejects(
      embed(['a'], gemini({ baseURL: 'http://127.0.0.1:9' })),
      (err: unknown) => {
        assert.ok(err instanceof ProviderUnavailableError);
        assert.match(err.message, /cannot reach the server/);
        return true;
      },
    );
  });

  it('a refused input is isolated to its own row; the others are embedded once', async () => {
    const inputs = ['one', 'two', 'POISON three', 'four', 'five'].map((text, i) => ({
      pk: `row${i}`,
      id: `row${i}:0`,
      text,
    }));
    const embedded: string[] = [];
    const isolator = new InputIsolator<(typeof inputs)[number]>(async (group) => {
      const { vectors } = await embed(group.map((g) => g.text));
      assert.equal(vectors.length, group.length);
      embedded.push(...group.map((g) => g.text));
    });
    await isolator.run(inputs);
    const failures = isolator.takeFailures();
    assert.deepEqual([...failures.keys()], ['row2']);
    assert.match(failures.get('row2') ?? '', /INVALID_ARGUMENT/);
    assert.deepEqual(embedded.sort(), ['five', 'four', 'one', 'two']);
  });
});

describe('the mock Gemini API on the wire', () => {
  interface Answer {
    error?: { status?: string; message?: string };
    embedding?: { values?: number[] };
  }
  /** An empty key sends none. */
  const post = async (path: string, body: unknown, key = KEY) => {
    const response = await fetch(`${mock.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { 'x-goog-api-key': key } : {}) },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as Answer };
  };
  const request = (text: string, extra: Record<string, unknown> = {}) => ({
    model: 'models/gemini-embedding-001',
    content: { parts: [{ text }] },
    ...extra,
  });

  it('answers embedContent with one embedding, and takes the key as ?key= too', async () => {
    const url = `/v1beta/models/gemini-embedding-001:embedContent?key=${KEY}`;
    const { status, body } = await post(
      url,
      { content: { parts: [{ text: 'tent' }] }, outputDimensionality: 3072 },
      '',
    );
    assert.equal(status, 200);
    const values = body.embedding?.values ?? [];
    assert.equal(values.length, 3072);
    // The full size comes unit length; only reduced ones are shorter.
    assert.ok(Math.abs(norm(values) - 1) < 1e-9);
    assert.equal(mock.requests[0]?.params.auth, 'key');
  });

  it('refuses what Google refuses, as a google.rpc.Status', async () => {
    const path = '/v1/models/gemini-embedding-001:batchEmbedContents';
    const unkeyed = await post(path, { requests: [request('a')] }, '');
    assert.equal(unkeyed.status, 403);
    assert.equal(unkeyed.body.error?.status, 'PERMISSION_DENIED');
    const many = await post(path, {
      requests: Array.from({ length: 101 }, (_, i) => request(`t${i}`)),
    });
    assert.equal(many.status, 400);
    assert.match(many.body.error?.message ?? '', /at most 100 requests can be in one batch/);
    const task = await post(path, { requests: [request('a', { taskType: 'RETRIEVAL' })] });
    assert.equal(task.body.error?.status, 'INVALID_ARGUMENT');
    const small = await post(path, { requests: [request('a', { outputDimensionality: 64 })] });
    assert.match(small.body.error?.message ?? '', /between 128 and 3072/);
    const other = await post(path, {
      requests: [request('a', { model: 'models/text-embedding-004' })],
    });
    assert.equal(other.status, 400);
  });
});

describe('Gemini errors from the bodies Google sends', () => {
  const body = (error: Record<string, unknown>) => JSON.stringify({ error });
  const quotaFailure = (...violations: Record<string, string>[]) => ({
    '@type': 'type.googleapis.com/google.rpc.QuotaFailure',
    violations,
  });
  const retryInfo = (retryDelay: string) => ({
    '@type': 'type.googleapis.com/google.rpc.RetryInfo',
    retryDelay,
  });

  it('a per-minute 429 waits what RetryInfo says, and learns the limit it names', () => {
    const err = translateStatus(
      429,
      body({
        code: 429,
        status: 'RESOURCE_EXHAUSTED',
        message: 'You exceeded your current quota …',
        details: [
          quotaFailure({
            quotaMetric: 'generativelanguage.googleapis.com/embed_content_input_token_count',
            quotaId: 'EmbedContentInputTokensPerModelPerMinute',
            quotaValue: '1000000',
          }),
          retryInfo('47.174066935s'),
        ],
      }),
      [],
    );
    assert.ok(err instanceof RateLimitedError);
    assert.equal(err.retryAfterMs, 47_175);
    assert.deepEqual(err.limits, { tokensPerMinute: 1_000_000 });
  });

  it('a 429 that names a daily or a zero quota is an exhausted quota, even beside a per-minute one', () => {
    const daily = translateStatus(
      429,
      body({
        code: 429,
        status: 'RESOURCE_EXHAUSTED',
        message: 'You exceeded your current quota, please check your plan and billing details.',
        details: [
          quotaFailure(
            { quotaId: 'EmbedContentRequestsPerMinutePerProjectPerModel-FreeTier' },
            { quotaId: 'EmbedContentRequestsPerDayPerProjectPerModel-FreeTier' },
          ),
          retryInfo('59s'),
        ],
      }),
      [],
    );
    assert.ok(daily instanceof QuotaExhaustedError);
    const zero = translateStatus(
      429,
      body({
        code: 429,
        status: 'RESOURCE_EXHAUSTED',
        message: 'Quota exceeded, limit: 0',
        details: [quotaFailure({ quotaId: 'EmbedContentRequestsPerMinute', quotaValue: '0' })],
      }),
      [],
    );
    assert.ok(zero instanceof QuotaExhaustedError);
  });

  it('a bare 429 is a rate limit: with the message’s wait, else none (the activity backs off)', () => {
    const worded = translateStatus(
      429,
      body({ code: 429, status: 'RESOURCE_EXHAUSTED', message: '… Please retry in 2.5s.' }),
      [],
    );
    assert.ok(worded instanceof RateLimitedError);
    assert.equal(worded.retryAfterMs, 2500);
    const bare = translateStatus(429, 'Too Many Requests', []);
    assert.ok(bare instanceof RateLimitedError);
    assert.equal(bare.retryAfterMs, undefined);
  });

  it('a wrong key is credentials, billing or location is the account’s, other 400s the input’s', () => {
    const key = translateStatus(
      400,
      body({
        code: 400,
        status: 'INVALID_ARGUMENT',
        message: 'API key not valid. Please pass a valid API key.',
        details: [
          {
            '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
            reason: 'API_KEY_INVALID',
          },
          {
            '@type': 'type.googleapis.com/google.rpc.DebugInfo',
            detail: `Invalid API key: ${WRONG_KEY}`,
          },
        ],
      }),
      [],
    );
    assert.ok(key instanceof ProviderAuthError);
    assert.ok(!key.message.includes(WRONG_KEY));
    const billing = translateStatus(
      400,
      body({
        code: 400,
        status: 'FAILED_PRECONDITION',
        message: 'Gemini API free tier is not available in your country. Please enable billing.',
      }),
      [],
    );
    assert.ok(billing instanceof ProviderRejectedError);
    assert.ok(
      translateStatus(
        403,
        body({ code: 403, status: 'PERMISSION_DENIED', message: 'no' }),
        [],
      ) instanceof ProviderAuthError,
    );
    assert.ok(
      translateStatus(
        400,
        body({ code: 400, status: 'INVALID_ARGUMENT', message: 'bad' }),
        [],
      ) instanceof InvalidInputError,
    );
    assert.ok(
      translateStatus(
        504,
        body({ code: 504, status: 'DEADLINE_EXCEEDED', message: 'slow' }),
        [],
      ) instanceof ProviderUnavailableError,
    );
  });
});

describe('the Gemini model table', () => {
  const pipeline = (embedding: PipelineInput['embedding'], size = 2000): PipelineInput => ({
    name: 'docs',
    source: { table: 'public.docs' },
    embed: { columns: ['body'] },
    embedding,
    chunking: { size, overlap: 100 },
    // Past 2,000 dimensions HNSW needs halfvec.
    vectorType: 'halfvec',
  });
  const check = (input: PipelineInput) => {
    const [config] = parsePipelines({ pipelines: [input] });
    assert.ok(config);
    return checkEmbeddingModel(config);
  };

  it('knows gemini-embedding-001: 128 to 3072 dimensions, 100 inputs of 2,048 tokens, in characters', () => {
    const facts = modelFacts({
      provider: 'gemini',
      model: 'gemini-embedding-001',
      dimensions: 768,
    });
    assert.equal(facts.nativeDimensions, 3072);
    assert.deepEqual(facts.dimensions, { kind: 'any', min: 128 });
    assert.equal(facts.maxInputsPerRequest, 100);
    assert.equal(facts.maxTokensPerInput, 2048);
    assert.equal(facts.unit, 'characters');
    assert.equal(facts.maxInputSize, 8192);
    for (const dimensions of [128, 768, 1536, 3072])
      assert.doesNotThrow(() =>
        check(pipeline({ provider: 'gemini', model: 'gemini-embedding-001', dimensions })),
      );
    assert.equal(listPrice('gemini', 'models/gemini-embedding-001')?.online, 0.15);
  });

  it('refuses what the model cannot do, naming the field', () => {
    const refused = (input: PipelineInput): ConfigError => {
      try {
        check(input);
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err;
      }
      assert.fail('accepted');
    };
    const small = refused(
      pipeline({ provider: 'gemini', model: 'gemini-embedding-001', dimensions: 64 }),
    );
    assert.equal(small.field, 'embedding.dimensions');
    assert.match(small.message, /128 to 3072/);
    const long = refused(
      pipeline({ provider: 'gemini', model: 'gemini-embedding-001', dimensions: 768 }, 9000),
    );
    assert.equal(long.field, 'chunking.size');
    const old = refused(
      pipeline({ provider: 'gemini', model: 'text-embedding-004', dimensions: 768 }),
    );
    assert.equal(old.field, 'embedding.model');
    assert.match(old.message, /known: gemini-embedding-001/);
  });

  it('takes the key by the name of its variable only, never the key itself', () => {
    const field = (embedding: Record<string, unknown>): string => {
      try {
        parsePipelines({
          pipelines: [pipeline(embedding as unknown as PipelineInput['embedding'])],
        });
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.message;
      }
      assert.fail('accepted');
    };
    const base = { provider: 'gemini', model: 'gemini-embedding-001', dimensions: 768 };
    assert.match(field({ ...base, apiKey: KEY }), /apiKey/);
    assert.match(field({ ...base, apiKeyEnv: 'not a name' }), /environment variable name/);
    assert.match(field({ ...base, baseURL: 'nowhere' }), /baseURL/);
  });

  it('reads the Gemini base URL and limits from the environment', () => {
    const env = readProviderEnv({
      GOOGLE_GEMINI_BASE_URL: 'http://127.0.0.1:8080',
      EMBEDSYNC_GEMINI_REQUESTS_PER_MINUTE: '3000',
    });
    assert.deepEqual(env.gemini, {
      baseURL: 'http://127.0.0.1:8080',
      requestsPerMinute: 3000,
      tokensPerMinute: undefined,
    });
  });
});
