// Reranking end to end: rows synced through the real pipeline, searched, and their nearest
// candidates reordered by a Bedrock rerank model through the real AWS SDK client against the mock
// provider, through the API and through `npx embedsync search --rerank` as a process.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, beforeEach, describe, it } from 'node:test';
import { applyPipelines } from '../../src/capture/apply.js';
import { readProviderEnv } from '../../src/config/env.js';
import { parsePipelines, type RerankConfig } from '../../src/config/pipeline.js';
import { getPipeline, type Pipeline } from '../../src/db/catalog.js';
import { startMockProvider, type MockProvider } from '../../src/mock-provider/server.js';
import { createProviders } from '../../src/providers/index.js';
import { search, type SearchHit } from '../../src/search/index.js';
import { RERANK_ATTEMPTS, rerankHits } from '../../src/search/rerank.js';
import { verifyPipeline } from '../../src/verify/verify.js';
import {
  insertProducts,
  PRODUCTS_TABLE,
  productsPipeline,
  startHarness,
  type Harness,
} from '../helpers/harness.js';
import { waitFor } from '../helpers/wait.js';

const ACCESS_KEY = 'AKIAMOCKRERANKTEST00';
const AWS_ENV = {
  AWS_ACCESS_KEY_ID: ACCESS_KEY,
  AWS_SECRET_ACCESS_KEY: 'rerank-test-secret',
  AWS_REGION: 'us-west-2',
};
Object.assign(process.env, AWS_ENV);

const QUERY = 'warm parka for winter hiking';
// [name, description]. Short texts sharing one or two of the query's words lie nearer to it by
// vector (cosine rewards short texts) than the parka, whose long description holds every word.
const PRODUCTS: [string, string][] = [
  ['Warm Socks', 'Warm warm socks'],
  ['Winter Hat', 'Winter hat, warm'],
  ['Hiking Poles', 'Hiking poles for hiking'],
  ['Warm Gloves', 'Warm gloves for winter'],
  ['Trail Map', 'Hiking map'],
  [
    'Expedition Parka',
    'A parka made for winter hiking: warm down fill, a storm hood, two chest pockets, taped seams, ' +
      'a two way zip, reflective trim, packable into its own pocket, tested on glaciers and ridges ' +
      'and long approaches in deep snow and strong wind',
  ],
  ['Chef Knife', 'Sharp steel kitchen knife'],
  ['Desk Lamp', 'LED desk lamp'],
];
const FILLER = 40;

let h: Harness;
let mock: MockProvider;
const providers = createProviders([], readProviderEnv({ ...AWS_ENV }));
const nameOf = new Map<string, string>();
let live: Pipeline;

const names = (hits: SearchHit[]): string[] =>
  hits.map((hit) => nameOf.get(hit.pk) ?? `filler ${hit.pk}`);
const rerankRequests = () => mock.requests.filter((r) => r.model.includes('rerank'));
const withRerank = (rerank: RerankConfig | undefined): Pipeline => ({
  ...live,
  config: { ...live.config, rerank },
});

describe('rerank', () => {
  before(async () => {
    mock = await startMockProvider({ poisonMarker: 'POISON' });
    h = await startHarness('rerank');
    await h.db.pool.query(PRODUCTS_TABLE);
    await applyPipelines(
      h.db.pool,
      parsePipelines({
        pipelines: [
          productsPipeline({
            rerank: {
              provider: 'bedrock',
              model: 'cohere.rerank-v3-5:0',
              endpoint: mock.url,
              candidates: 20,
            },
          }),
          productsPipeline({ name: 'products_plain' }),
        ],
      }),
    );
    for (const [pk, name] of await insertProducts(h, PRODUCTS, FILLER)) nameOf.set(pk, name);
    await waitFor(
      'every product to be embedded by both pipelines',
      async () => {
        for (const name of ['products', 'products_plain']) {
          const r = await verifyPipeline(h.db.pool, name);
          if (r.rows !== PRODUCTS.length + FILLER) return false;
          if (r.missing.length + r.stale.length + r.orphaned.length > 0) return false;
        }
        return true;
      },
      60_000,
    );
    live = await getPipeline(h.db.pool, 'products');
  });
  after(async () => {
    await h?.stop();
    await mock?.close();
  });
  beforeEach(() => mock.reset());

  it('moves the document holding every query word to the top, in the model’s order', async () => {
    const plain = await search(h.db.pool, providers, 'products', QUERY, { limit: 20 });
    const parka = plain.find((hit) => nameOf.get(hit.pk) === 'Expedition Parka');
    assert.ok(parka, 'the parka is among the 20 candidates');
    assert.ok(names(plain).indexOf('Expedition Parka') > 0, names(plain).join(', '));
    assert.equal(rerankRequests().length, 0, 'no rerank unless asked');

    const hits = await search(h.db.pool, providers, 'products', QUERY, { limit: 5, rerank: true });
    assert.equal(names(hits)[0], 'Expedition Parka');
    assert.equal(hits[0]?.rerankScore, 1);
    assert.equal(hits.length, 5);
    const scores = hits.map((hit) => hit.rerankScore ?? -1);
    assert.deepEqual(
      scores,
      [...scores].sort((a, b) => b - a),
    );
    // The vector score stays what it was; the rerank score is beside it.
    assert.equal(hits[0]?.score, parka.score);
    assert.ok(hits.every((hit) => hit.score >= 0 && hit.score <= 1.000001));

    const [request] = rerankRequests();
    assert.equal(request?.path, '/model/cohere.rerank-v3-5%3A0/invoke');
    assert.equal(request?.signed, true);
    assert.equal(request?.region, 'us-west-2');
    assert.equal(request?.status, 200);
    assert.deepEqual(request?.params, { query: QUERY, top_n: 5, api_version: 2 });
  });

  it('sends the configured candidates and returns at most the limit; a larger limit is sent whole', async () => {
    const three = await search(h.db.pool, providers, 'products', QUERY, { limit: 3, rerank: true });
    assert.equal(three.length, 3);
    assert.equal(rerankRequests()[0]?.inputs.length, 20, 'candidates: 20');
    assert.equal(rerankRequests()[0]?.params.top_n, 3);
    // The candidates are the nearest rows, each its best chunk's text.
    const nearest = await search(h.db.pool, providers, 'products', QUERY, { limit: 20 });
    assert.deepEqual(
      rerankRequests()[0]?.inputs,
      nearest.map((hit) => hit.chunk),
    );

    mock.reset();
    const many = await search(h.db.pool, providers, 'products', QUERY, { limit: 30, rerank: true });
    assert.equal(many.length, 30);
    assert.equal(rerankRequests()[0]?.inputs.length, 30, 'never fewer candidates than the limit');
    assert.equal(rerankRequests()[0]?.params.top_n, 30);
    assert.equal(new Set(many.map((hit) => hit.pk)).size, 30);
  });

  it('asks amazon.rerank-v1:0 with its own body, through an ARN', async () => {
    const p = withRerank({
      provider: 'bedrock',
      model: 'arn:aws:bedrock:us-west-2::foundation-model/amazon.rerank-v1:0',
      endpoint: mock.url,
      candidates: 10,
    });
    const hits = await search(h.db.pool, providers, p, QUERY, { limit: 2, rerank: true });
    assert.equal(names(hits)[0], 'Expedition Parka');
    assert.equal(hits.length, 2);
    assert.deepEqual(rerankRequests()[0]?.params, { query: QUERY, top_n: 2 });
    assert.equal(rerankRequests()[0]?.inputs.length, 10);
  });

  it('retries a throttled rerank and answers', async () => {
    mock.inject({ kind: 'rate-limit' });
    const hits = await search(h.db.pool, providers, 'products', QUERY, { limit: 3, rerank: true });
    assert.equal(names(hits)[0], 'Expedition Parka');
    assert.deepEqual(
      rerankRequests().map((r) => r.status),
      [429, 200],
    );
  });

  it('gives up on a model throttled past its bound with one clear error, having backed off', async () => {
    mock.inject({ kind: 'rate-limit' }, Infinity);
    const waits: number[] = [];
    const candidates = await search(h.db.pool, providers, 'products', QUERY, { limit: 5 });
    const failure = (await rerankHits(providers, live, QUERY, candidates, 5, {
      sleep: (ms) => {
        waits.push(ms);
        return Promise.resolve();
      },
      random: () => 1,
    }).catch((e: unknown) => e)) as Error;
    assert.equal(failure.name, 'RerankError');
    assert.equal(
      failure.message,
      `rerank model cohere.rerank-v3-5:0 is throttled: gave up after ${RERANK_ATTEMPTS} attempts (ThrottlingException: Too many requests, please wait before trying again.)`,
    );
    assert.equal(rerankRequests().length, RERANK_ATTEMPTS);
    assert.deepEqual(waits, [1000, 2000, 4000], 'exponential backoff from a second');
  });

  it('a request the model refuses is one clear error, not retried, with no credential in it', async () => {
    const failure = (await search(h.db.pool, providers, 'products', `${QUERY} POISON`, {
      limit: 3,
      rerank: true,
    }).catch((e: unknown) => e)) as Error;
    assert.equal(failure.name, 'RerankError');
    assert.equal(
      failure.message,
      'rerank model cohere.rerank-v3-5:0 refused the request (ValidationException: The input contains content that the model cannot process.)',
    );
    assert.equal(rerankRequests().length, 1);
    assert.ok(!failure.message.includes(ACCESS_KEY));
  });

  it('a pipeline with no rerank config asked to rerank is refused before anything is sent', async () => {
    await assert.rejects(
      search(h.db.pool, providers, 'products_plain', QUERY, { limit: 3, rerank: true }),
      {
        name: 'RerankError',
        message:
          'pipeline products_plain has no rerank model: add rerank: { provider: local, model: ms-marco-MiniLM-L-12-v2 } (or a Bedrock model) to its config and apply it',
      },
    );
    assert.equal(mock.requests.length, 0);
  });

  it('apply refuses a rerank model it does not know, and a changed rerank config re-embeds nothing', async () => {
    const config = (rerank: RerankConfig) =>
      parsePipelines({ pipelines: [productsPipeline({ rerank })] });
    await assert.rejects(
      applyPipelines(
        h.db.pool,
        config({ provider: 'bedrock', model: 'cohere.rerank-english-v2', candidates: 20 }),
      ),
      {
        name: 'ConfigError',
        message:
          'pipelines[0].rerank.model: bedrock has no rerank model "cohere.rerank-english-v2" that embedsync knows; known: cohere.rerank-v3-5:0, amazon.rerank-v1:0',
      },
    );
    const [changed] = await applyPipelines(
      h.db.pool,
      config({
        provider: 'bedrock',
        model: 'cohere.rerank-v3-5:0',
        endpoint: mock.url,
        candidates: 30,
      }),
    );
    assert.equal(changed?.outcome, 'updated');
    const after = await getPipeline(h.db.pool, 'products');
    assert.equal(after.generation, live.generation);
    assert.equal(after.config.rerank?.candidates, 30);
    await search(h.db.pool, providers, 'products', QUERY, { limit: 3, rerank: true });
    assert.equal(rerankRequests()[0]?.inputs.length, 30);
    // Back as it was for the tests that follow.
    await applyPipelines(
      h.db.pool,
      parsePipelines({ pipelines: [productsPipeline({ rerank: live.config.rerank })] }),
    );
  });

  describe('embedsync search --rerank', () => {
    // Asynchronous: the mock answering the process runs in this one.
    const cli = (...args: string[]) =>
      new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          ['bin/embedsync.js', 'search', ...args],
          { env: { ...process.env, ...AWS_ENV, DATABASE_URL: h.db.url }, timeout: 60_000 },
          (err, stdout, stderr) =>
            resolve({
              status: err ? ((err.code as number | undefined) ?? null) : 0,
              stdout,
              stderr,
            }),
        );
      });

    it('prints the reranked results with the model’s score in a column of its own', async () => {
      const r = await cli('--table', 'products', QUERY, '--limit', '3', '--rerank');
      assert.equal(r.status, 0, r.stderr);
      const lines = r.stdout.trim().split('\n');
      assert.match(lines[0] ?? '', /^rerank\s+score\s+pk\s+metadata\s+chunk$/);
      assert.equal(lines.length, 4);
      assert.match(
        lines[1] ?? '',
        /^1\.000\s+\d\.\d{3}\s+\d+\s+category=outdoor .*Expedition Parka/,
      );
      assert.equal(rerankRequests().length, 1);

      const json = await cli('--table', 'products', QUERY, '--limit', '2', '--rerank', '--json');
      assert.equal(json.status, 0, json.stderr);
      const out = JSON.parse(json.stdout) as { results: SearchHit[] };
      assert.equal(out.results[0]?.rerankScore, 1);
    });

    it('exits 1 with one line for a pipeline that has no rerank model', async () => {
      const r = await cli('--table', 'products_plain', QUERY, '--rerank');
      assert.equal(r.status, 1, r.stdout);
      assert.equal(
        r.stderr,
        'embedsync: pipeline products_plain has no rerank model: add rerank: { provider: local, model: ms-marco-MiniLM-L-12-v2 } (or a Bedrock model) to its config and apply it\n',
      );
      assert.equal(mock.requests.length, 0);
    });

    it('says what --rerank does in --help', async () => {
      const r = await cli('--help');
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /--rerank\s+reorder the nearest candidates/);
    });
  });
});
