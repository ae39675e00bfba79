// Reranking's pure parts (config, bodies, answers, retry decisions, ordering) and the Bedrock
// adapter through the real AWS SDK client against the mock, which answers as Bedrock does.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { BedrockRuntimeClient, InvokeModelCommand } from '@aws-sdk/client-bedrock-runtime';
import {
  ConfigError,
  embeddingFingerprint,
  parsePipelines,
  type RerankConfig,
} from '../../src/config/pipeline.js';
import { overlapScore } from '../../src/mock-provider/bedrock-rerank.js';
import { startMockProvider, type MockProvider } from '../../src/mock-provider/server.js';
import { BedrockProvider } from '../../src/providers/bedrock.js';
import { checkLocalRerankModel } from '../../src/providers/local-models.js';
import {
  checkRerankModel,
  parseRerankResponse,
  rerankBody,
  rerankFamily,
} from '../../src/providers/bedrock-rerank.js';
import {
  InvalidInputError,
  ModelUnavailableError,
  ProviderRejectedError,
  ProviderUnavailableError,
  RateLimitedError,
} from '../../src/providers/errors.js';
import type { SearchHit } from '../../src/search/index.js';
import {
  candidatesFor,
  orderHits,
  RERANK_ATTEMPTS,
  RERANK_MAX_WAIT_MS,
  rerankRetryDelay,
} from '../../src/search/rerank.js';

Object.assign(process.env, {
  AWS_ACCESS_KEY_ID: 'AKIAMOCKRERANKUNIT00',
  AWS_SECRET_ACCESS_KEY: 'rerank-unit-secret',
});

const pipeline = (rerank?: unknown) => ({
  name: 'products',
  source: { table: 'public.products' },
  embed: { columns: ['name'] },
  embedding: { provider: 'offline', dimensions: 64 },
  ...(rerank === undefined ? {} : { rerank }),
});

function configError(raw: unknown): ConfigError {
  try {
    parsePipelines({ pipelines: [raw] });
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the config to be refused');
}

const hit = (pk: string, chunk: string): SearchHit => ({
  score: 0.5,
  pk,
  chunkIndex: 0,
  chunk,
  metadata: {},
});

describe('rerank config', () => {
  it('takes 50 candidates by default, and is no part of what a vector is', () => {
    const [plain] = parsePipelines({ pipelines: [pipeline()] });
    const [reranked] = parsePipelines({
      pipelines: [pipeline({ provider: 'bedrock', model: 'cohere.rerank-v3-5:0' })],
    });
    assert.equal(plain?.rerank, undefined);
    assert.deepEqual(reranked?.rerank, {
      provider: 'bedrock',
      model: 'cohere.rerank-v3-5:0',
      candidates: 50,
    });
    assert.ok(plain && reranked);
    assert.equal(embeddingFingerprint(plain), embeddingFingerprint(reranked));
  });

  it('names the field of a bad provider, region, candidates count or unknown option', () => {
    const base = { provider: 'bedrock', model: 'cohere.rerank-v3-5:0' };
    const cases: [unknown, string][] = [
      [{ ...base, provider: 'cohere' }, 'pipelines[0].rerank.provider'],
      [{ ...base, region: 'Oregon' }, 'pipelines[0].rerank.region'],
      [{ ...base, candidates: 0 }, 'pipelines[0].rerank.candidates'],
      [{ ...base, candidates: 1001 }, 'pipelines[0].rerank.candidates'],
      [{ ...base, topN: 5 }, 'pipelines[0].rerank'],
    ];
    for (const [rerank, field] of cases) assert.equal(configError(pipeline(rerank)).field, field);
  });

  it('knows the two Bedrock rerank models, by id, inference profile or ARN, and refuses others', () => {
    assert.equal(rerankFamily('cohere.rerank-v3-5:0'), 'cohere-rerank');
    assert.equal(rerankFamily('amazon.rerank-v1:0'), 'amazon-rerank');
    assert.equal(
      rerankFamily('arn:aws:bedrock:us-west-2::foundation-model/amazon.rerank-v1:0'),
      'amazon-rerank',
    );
    assert.equal(rerankFamily('us.cohere.rerank-v3-5:0'), 'cohere-rerank');
    assert.equal(rerankFamily('cohere.embed-english-v3'), undefined);
    checkRerankModel({});
    checkRerankModel({
      rerank: { provider: 'bedrock', model: 'amazon.rerank-v1:0', candidates: 50 },
    });
    assert.throws(
      () =>
        checkRerankModel({
          rerank: { provider: 'bedrock', model: 'rerank-v3.5', candidates: 50 },
        }),
      {
        name: 'ConfigError',
        message:
          'rerank.model: bedrock has no rerank model "rerank-v3.5" that embedsync knows; known: cohere.rerank-v3-5:0, amazon.rerank-v1:0',
      },
    );
  });

  it('takes a local cross-encoder: 50 candidates by default, at most 200, no Bedrock settings', () => {
    const local = { provider: 'local', model: 'ms-marco-MiniLM-L-12-v2' };
    const [parsed] = parsePipelines({ pipelines: [pipeline({ ...local, modelDir: '/srv/m' })] });
    assert.deepEqual(parsed?.rerank, { ...local, modelDir: '/srv/m', candidates: 50 });
    const [plain] = parsePipelines({ pipelines: [pipeline()] });
    assert.ok(plain && parsed);
    assert.equal(embeddingFingerprint(plain), embeddingFingerprint(parsed));
    const cases: [unknown, string][] = [
      [{ ...local, candidates: 201 }, 'pipelines[0].rerank.candidates'],
      [{ ...local, region: 'us-west-2' }, 'pipelines[0].rerank'],
      [{ ...local, endpoint: 'http://127.0.0.1:1' }, 'pipelines[0].rerank'],
      [{ ...local, model: '' }, 'pipelines[0].rerank.model'],
    ];
    for (const [rerank, field] of cases) assert.equal(configError(pipeline(rerank)).field, field);
    // Bedrock keeps its own bound.
    parsePipelines({
      pipelines: [pipeline({ provider: 'bedrock', model: 'amazon.rerank-v1:0', candidates: 1000 })],
    });
  });

  it('knows the local cross-encoders by name, and leaves each provider’s models to its own check', () => {
    checkLocalRerankModel({});
    checkLocalRerankModel({
      rerank: { provider: 'local', model: 'ms-marco-MiniLM-L-12-v2', candidates: 50 },
    });
    assert.throws(
      () =>
        checkLocalRerankModel({
          rerank: {
            provider: 'local',
            model: 'cross-encoder/ms-marco-MiniLM-L-6-v2',
            candidates: 50,
          },
        }),
      {
        name: 'ConfigError',
        message:
          'rerank.model: local has no rerank model "cross-encoder/ms-marco-MiniLM-L-6-v2"; known: ms-marco-MiniLM-L-12-v2',
      },
    );
    // Neither check judges the other provider's model names.
    checkRerankModel({ rerank: { provider: 'local', model: 'nonesuch', candidates: 50 } });
    checkLocalRerankModel({ rerank: { provider: 'bedrock', model: 'nonesuch', candidates: 50 } });
  });

  it('never gathers fewer candidates than the limit', () => {
    const config: RerankConfig = { provider: 'bedrock', model: 'x', candidates: 50 };
    assert.equal(candidatesFor(config, 10), 50);
    assert.equal(candidatesFor(config, 80), 80);
  });
});

describe('rerank bodies and answers', () => {
  it('sends Cohere api_version 2 and Amazon its plain body', () => {
    assert.deepEqual(rerankBody('cohere-rerank', 'q', ['a', 'b'], 1), {
      query: 'q',
      documents: ['a', 'b'],
      top_n: 1,
      api_version: 2,
    });
    assert.deepEqual(rerankBody('amazon-rerank', 'q', ['a'], 1), {
      query: 'q',
      documents: ['a'],
      top_n: 1,
    });
  });

  it('reads results, and refuses ones that name no document sent or name one twice', () => {
    const json = {
      id: 'x',
      results: [
        { index: 1, relevance_score: 0.9 },
        { index: 0, relevance_score: 0.1 },
      ],
    };
    assert.deepEqual(parseRerankResponse('m', json, 2), [
      { index: 1, relevanceScore: 0.9 },
      { index: 0, relevanceScore: 0.1 },
    ]);
    for (const bad of [
      {},
      { results: [{ index: 2, relevance_score: 0.5 }] },
      { results: [{ index: -1, relevance_score: 0.5 }] },
      { results: [{ index: 0 }] },
      {
        results: [
          { index: 0, relevance_score: 0.5 },
          { index: 0, relevance_score: 0.4 },
        ],
      },
    ])
      assert.throws(() => parseRerankResponse('m', bad, 2), { name: 'MalformedResponseError' });
  });

  it('orders hits by the model’s score, keeps its order for ties, cuts to the limit', () => {
    const hits = [hit('a', 'A'), hit('b', 'B'), hit('c', 'C')];
    const ordered = orderHits(
      hits,
      [
        { index: 2, relevanceScore: 0.5 },
        { index: 0, relevanceScore: 0.9 },
        { index: 1, relevanceScore: 0.5 },
      ],
      2,
    );
    assert.deepEqual(
      ordered.map((h) => [h.pk, h.rerankScore, h.score]),
      [
        ['a', 0.9, 0.5],
        ['c', 0.5, 0.5],
      ],
    );
  });

  it('the mock scores a document by the share of the query’s words it holds', () => {
    assert.equal(overlapScore('Warm parka', 'a PARKA, warm and dry'), 1);
    assert.equal(overlapScore('warm parka for hiking', 'warm socks'), 0.25);
    assert.equal(overlapScore('warm', 'cold'), 0);
    assert.equal(overlapScore('', 'anything'), 0);
  });
});

describe('rerank retries', () => {
  const throttled = new RateLimitedError('bedrock', 'ThrottlingException: slow down', undefined);
  const full = () => 1;

  it('backs off a throttle exponentially from a second, and honours a hint', () => {
    assert.deepEqual(
      [1, 2, 3].map((attempt) => rerankRetryDelay(throttled, attempt, 0, full)),
      [1000, 2000, 4000],
    );
    const hinted = new RateLimitedError('bedrock', 'wait', 3000);
    assert.equal(
      rerankRetryDelay(hinted, 1, 0, () => 0),
      3000,
    );
  });

  it('retries an outage the same way, and never a refused request', () => {
    assert.equal(
      rerankRetryDelay(new ProviderUnavailableError('bedrock', '503'), 1, 0, full),
      1000,
    );
    for (const err of [
      new InvalidInputError('bedrock', 'ValidationException'),
      new ModelUnavailableError('bedrock', 'ResourceNotFoundException'),
      new ProviderRejectedError('bedrock', '400'),
      new Error('a bug'),
    ])
      assert.equal(rerankRetryDelay(err, 1, 0, full), undefined);
  });

  it('gives up after its attempts, or before waiting past its bound', () => {
    assert.equal(rerankRetryDelay(throttled, RERANK_ATTEMPTS, 0, full), undefined);
    assert.equal(rerankRetryDelay(throttled, 1, RERANK_MAX_WAIT_MS - 999, full), undefined);
    assert.equal(
      rerankRetryDelay(new RateLimitedError('bedrock', 'wait', 60_000), 1, 0, full),
      undefined,
      'a hint longer than a search waits is not waited for',
    );
  });
});

describe('rerank through the AWS SDK against the mock', () => {
  let mock: MockProvider;
  let provider: BedrockProvider;
  const config = (model: string): RerankConfig => ({
    provider: 'bedrock',
    model,
    region: 'eu-central-1',
    endpoint: mock.url,
    candidates: 50,
  });
  before(async () => {
    mock = await startMockProvider({ poisonMarker: 'POISON' });
    provider = new BedrockProvider({});
  });
  after(async () => mock.close());
  beforeEach(() => mock.reset());

  it('returns the relevant document first, top_n of them, signed for the config’s region', async () => {
    const { results } = await provider.rerank({
      query: 'warm parka',
      documents: ['desk lamp', 'warm socks', 'a warm parka'],
      topN: 2,
      rerank: config('cohere.rerank-v3-5:0'),
    });
    assert.deepEqual(results, [
      { index: 2, relevanceScore: 1 },
      { index: 1, relevanceScore: 0.5 },
    ]);
    assert.equal(mock.requests[0]?.region, 'eu-central-1');
    assert.deepEqual(mock.requests[0]?.inputs, ['desk lamp', 'warm socks', 'a warm parka']);
  });

  it('classifies throttling, refused input, outages and an unknown model', async () => {
    const rerank = (query: string, model = 'amazon.rerank-v1:0') =>
      provider.rerank({ query, documents: ['a'], topN: 1, rerank: config(model) });
    mock.inject({ kind: 'rate-limit' });
    await assert.rejects(rerank('q'), RateLimitedError);
    mock.inject({ kind: 'quota' });
    await assert.rejects(rerank('q'), RateLimitedError);
    await assert.rejects(rerank('POISON'), InvalidInputError);
    mock.inject({ kind: 'server-error', status: 503 });
    await assert.rejects(rerank('q'), ProviderUnavailableError);
    await assert.rejects(rerank('q', 'cohere.rerank-v9:0'), ModelUnavailableError);
    assert.equal(mock.requests.length, 4, 'no retry inside the adapter');
  });

  it('answers a malformed body as Bedrock does (the reason api_version is sent)', async () => {
    const client = new BedrockRuntimeClient({
      region: 'us-west-2',
      endpoint: mock.url,
      maxAttempts: 1,
    });
    const invoke = (model: string, body: unknown) =>
      client.send(
        new InvokeModelCommand({
          modelId: model,
          contentType: 'application/json',
          body: JSON.stringify(body),
        }),
      );
    const cases: [string, unknown, string][] = [
      [
        'cohere.rerank-v3-5:0',
        { query: 'q', documents: ['a'] },
        '#: required key [api_version] not found',
      ],
      [
        'cohere.rerank-v3-5:0',
        { query: 'q', documents: ['a'], api_version: 1 },
        '#/api_version: 1 is not greater or equal to 2',
      ],
      [
        'amazon.rerank-v1:0',
        { query: 'q', documents: [] },
        '#/documents: expected minimum item count: 1, found: 0',
      ],
      [
        'amazon.rerank-v1:0',
        { query: 'q', documents: Array.from({ length: 1001 }, () => 'd') },
        '#/documents: expected maximum item count: 1000, found: 1001',
      ],
      [
        'amazon.rerank-v1:0',
        { query: 'q', documents: ['a'], api_version: 2 },
        'extraneous key [api_version] is not permitted',
      ],
      [
        'cohere.rerank-v3-5:0',
        { query: 'q', documents: ['a'], api_version: 2, top_n: 0 },
        '#/top_n: 0 is not greater or equal to 1',
      ],
    ];
    for (const [model, body, detail] of cases) {
      await assert.rejects(invoke(model, body), {
        name: 'ValidationException',
        message: `Malformed input request: ${detail}, please reformat your input and try again.`,
      });
    }
    client.destroy();
  });
});
