// Reranking with the local cross-encoder (ms-marco-MiniLM-L-12-v2, int8, fetched from PyPI once):
// what its scores say, how a document longer than the model takes and the thread budget are
// handled, what a missing model says, and a search whose answering row is not the vector-nearest
// moved to the top, through the API and through `npx embedsync search --rerank` as a process.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { applyPipelines } from '../../src/capture/apply.js';
import { parsePipelines, type LocalRerankConfig } from '../../src/config/pipeline.js';
import { getPipeline, type Pipeline } from '../../src/db/catalog.js';
import { createProviders } from '../../src/providers/index.js';
import type { LocalRerankModel } from '../../src/providers/local-models.js';
import type { LocalRuntime } from '../../src/providers/local-runtime.js';
import { LocalModelMissingError, LocalProvider } from '../../src/providers/local.js';
import { search, type SearchHit } from '../../src/search/index.js';
import { RerankError, rerankHits } from '../../src/search/rerank.js';
import { verifyPipeline } from '../../src/verify/verify.js';
import {
  insertProducts,
  PRODUCTS_TABLE,
  productsPipeline,
  startHarness,
  type Harness,
} from '../helpers/harness.js';
import { TEST_MODELS_DIR, testModel, testRerankModel } from '../helpers/local-model.js';
import { waitFor } from '../helpers/wait.js';

const MODEL = 'ms-marco-MiniLM-L-12-v2';
const rerank = (extra: Partial<LocalRerankConfig> = {}): LocalRerankConfig => ({
  provider: 'local',
  model: MODEL,
  modelDir: TEST_MODELS_DIR,
  candidates: 50,
  ...extra,
});

// The issue's own query. Rows sharing its words lie nearer to it by the offline model's hashed
// words than the parka, whose description answers it in other words.
const QUERY = 'something warm for hiking';
const PRODUCTS: [string, string][] = [
  ['Hiking Poles', 'Hiking poles for hiking'],
  ['Warm Socks', 'Warm warm socks'],
  ['Winter Hiking Map', 'Winter hiking map'],
  [
    'Warm Up Your Workshop',
    'A woodworking book: warm up your workshop with simple winter projects',
  ],
  [
    'Northwind Down Parka',
    'An insulated down parka with a storm hood that keeps you warm on cold trails and summit mornings',
  ],
  ['Chef Knife', 'Sharp steel kitchen knife'],
  ['Desk Lamp', 'LED desk lamp'],
];
const FILLER = 30;
const documentOf = ([name, description]: [string, string]): string =>
  `Product: ${name}\n${description}`;

let model: LocalRerankModel;
let provider: LocalProvider;

before(async () => {
  model = await testRerankModel();
  provider = new LocalProvider({ modelsDir: TEST_MODELS_DIR, threads: 1 });
});
after(() => provider.close());

describe('the local cross-encoder', () => {
  it('scores the row that answers the query above rows that only share its words', async () => {
    const { results } = await provider.rerank({
      query: QUERY,
      documents: PRODUCTS.map(documentOf),
      topN: 4,
      rerank: rerank(),
    });
    const names = results.map((r) => PRODUCTS[r.index]?.[0]);
    assert.equal(names[0], 'Northwind Down Parka', JSON.stringify(results));
    assert.equal(results.length, 4, 'topN of them');
    const scores = results.map((r) => r.relevanceScore);
    assert.deepEqual(
      scores,
      [...scores].sort((a, b) => b - a),
    );
    // Logits, not probabilities: the answer clearly above the next, the woodworking book (a
    // keyword trap) far below.
    assert.ok((scores[0] ?? 0) > (scores[1] ?? 0) + 1, JSON.stringify(scores));
    assert.ok(!names.includes('Warm Up Your Workshop'));

    // The Berlin example of the model card: the passage that answers far above the one that does not.
    const berlin = await provider.rerank({
      query: 'How many people live in Berlin?',
      documents: [
        'New York City is famous for the Metropolitan Museum of Art.',
        'Berlin has a population of 3,520,031 registered inhabitants in an area of 891.82 square kilometers.',
      ],
      topN: 2,
      rerank: rerank(),
    });
    assert.equal(berlin.results[0]?.index, 1);
    assert.ok((berlin.results[0]?.relevanceScore ?? 0) > 8);
    assert.ok((berlin.results[1]?.relevanceScore ?? 0) < -8);
  });

  it('scores a document longer than the model takes on its beginning, refusing nothing', async () => {
    const answer = documentOf(PRODUCTS[4] ?? ['', '']);
    const padding = ' Shipping and returns are handled by the store.'.repeat(120); // ~1,200 tokens
    const { results } = await provider.rerank({
      query: QUERY,
      documents: [answer + padding, padding + answer],
      topN: 2,
      rerank: rerank(),
    });
    const scoreOf = (i: number) => results.find((r) => r.index === i)?.relevanceScore ?? NaN;
    // The answer at the start is read; at the end it is past the cut, and the rest says nothing.
    assert.ok(scoreOf(0) > scoreOf(1) + 3, JSON.stringify(results));
    assert.ok(Number.isFinite(scoreOf(1)));
  });

  it('runs on EMBEDSYNC_LOCAL_THREADS, one inference at a time with the embedding model', async () => {
    const two = new LocalProvider({ modelsDir: TEST_MODELS_DIR, threads: 2 });
    try {
      const runtime = await two.warm(rerank());
      assert.deepEqual(runtime.sessionThreads, { intraOp: 2, interOp: 1 });
    } finally {
      await two.close();
    }

    // Embeddings and reranks asked at once reach their runtimes one at a time, each model loaded
    // once.
    const embedding = await testModel();
    let running = 0;
    let most = 0;
    const tasks: string[] = [];
    const busy = async <T>(value: T): Promise<T> => {
      running += 1;
      most = Math.max(most, running);
      await new Promise((r) => setImmediate(r));
      running -= 1;
      return value;
    };
    const counting = new LocalProvider(
      { modelsDir: TEST_MODELS_DIR, threads: 1 },
      {
        load: (settings): Promise<LocalRuntime> => {
          tasks.push(settings.task);
          return Promise.resolve({
            sessionThreads: { intraOp: settings.threads, interOp: 1 },
            embed: (texts) =>
              busy({ tokens: texts.map(() => 3), vectors: texts.map(() => [1, 0]) }),
            score: (_query, documents) =>
              busy({ tokens: documents.map(() => 5), scores: documents.map((_, i) => -i) }),
            close: () => Promise.resolve(),
          });
        },
        models: [embedding],
        rerankModels: [model],
      },
    );
    const config = { provider: 'local' as const, model: embedding.name, dimensions: 384 };
    const embed = (text: string) =>
      counting.embed({ ...config, inputType: 'query', texts: [text], embedding: config });
    await Promise.all([
      ...[1, 2, 3].map((i) =>
        counting.rerank({ query: `q ${i}`, documents: ['a', 'b'], topN: 1, rerank: rerank() }),
      ),
      embed('one'),
      embed('two'),
    ]);
    assert.equal(most, 1);
    assert.deepEqual(tasks.sort(), ['embed', 'score'], 'each model loads once per process');
  });

  it('without its files, says which are missing and the command that fetches them', async () => {
    const empty = await mkdtemp(path.join(os.tmpdir(), 'embedsync-no-models-'));
    const missing = new LocalProvider({ modelsDir: empty });
    try {
      await assert.rejects(
        missing.rerank({
          query: 'q',
          documents: ['d'],
          topN: 1,
          rerank: rerank({ modelDir: undefined }),
        }),
        (err: unknown) =>
          err instanceof LocalModelMissingError &&
          err.message.includes(
            'missing onnx/model_quantized.onnx, tokenizer.json, tokenizer_config.json',
          ) &&
          err.message.includes(`npx embedsync model fetch --model ${MODEL} --dir ${empty}`),
      );
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it('embedsync model fetch checks its files against their pinned hashes, and list shows it', async () => {
    const run = (...args: string[]) =>
      promisify(execFile)(process.execPath, ['bin/embedsync.js', 'model', ...args], {
        cwd: path.resolve(import.meta.dirname, '../..'),
      });
    const fetched = await run('fetch', '--model', MODEL, '--dir', TEST_MODELS_DIR);
    for (const f of model.files)
      assert.ok(
        fetched.stdout.includes(`${f.path}: already there, sha256 ${f.sha256}`),
        fetched.stdout,
      );
    assert.match(
      fetched.stdout,
      /ms-marco-MiniLM-L-12-v2 is ready \(a cross-encoder for rerank, 512 tokens per query and document\)/,
    );
    assert.match(
      (await run('list', '--dir', TEST_MODELS_DIR)).stdout,
      /^ms-marco-MiniLM-L-12-v2 +cross-encoder \(rerank\), 512 tokens per pair +fetched \(/m,
    );
  });
});

describe('search with rerank: { provider: local }', () => {
  let h: Harness;
  let live: Pipeline;
  let nameOf = new Map<string, string>();
  const names = (hits: SearchHit[]): string[] =>
    hits.map((hit) => nameOf.get(hit.pk) ?? `filler ${hit.pk}`);
  const providers = createProviders();

  before(async () => {
    h = await startHarness('rerank_local');
    await h.db.pool.query(PRODUCTS_TABLE);
    await applyPipelines(
      h.db.pool,
      parsePipelines({
        pipelines: [productsPipeline({ rerank: rerank({ candidates: 20 }) })],
      }),
    );
    nameOf = await insertProducts(h, PRODUCTS, FILLER);
    await waitFor(
      'every product to be embedded',
      async () => {
        const r = await verifyPipeline(h.db.pool, 'products');
        return (
          r.rows === PRODUCTS.length + FILLER &&
          r.missing.length + r.stale.length + r.orphaned.length === 0
        );
      },
      60_000,
    );
    live = await getPipeline(h.db.pool, 'products');
  });
  after(async () => {
    await h?.stop();
  });

  it('moves the row that answers the query from below the vector-nearest to the top', async () => {
    const plain = await search(h.db.pool, providers, 'products', QUERY, { limit: 20 });
    const parka = plain.find((hit) => nameOf.get(hit.pk) === 'Northwind Down Parka');
    assert.ok(parka, 'the parka is among the 20 candidates');
    assert.ok(names(plain).indexOf('Northwind Down Parka') > 0, names(plain).join(', '));

    const hits = await search(h.db.pool, providers, 'products', QUERY, { limit: 5, rerank: true });
    assert.equal(names(hits)[0], 'Northwind Down Parka', names(hits).join(', '));
    assert.equal(hits.length, 5);
    const scores = hits.map((hit) => hit.rerankScore ?? NaN);
    assert.ok(scores.every(Number.isFinite));
    assert.deepEqual(
      scores,
      [...scores].sort((a, b) => b - a),
    );
    // The vector score stays what it was; the model's logit is beside it.
    assert.equal(hits[0]?.score, parka.score);
  });

  it('a model not fetched is one RerankError naming the fetch command, nothing retried', async () => {
    const empty = await mkdtemp(path.join(os.tmpdir(), 'embedsync-no-models-'));
    const unfetched: Pipeline = {
      ...live,
      config: { ...live.config, rerank: rerank({ modelDir: empty }) },
    };
    const hits = await search(h.db.pool, providers, 'products', QUERY, { limit: 5 });
    try {
      await assert.rejects(
        rerankHits(providers, unfetched, QUERY, hits, 5, {
          sleep: () => assert.fail('a missing model is not waited for'),
        }),
        (err: unknown) =>
          err instanceof RerankError &&
          err.message.startsWith(
            `rerank model ${MODEL} cannot be used (local model ${MODEL} is not in`,
          ) &&
          err.message.includes(`npx embedsync model fetch --model ${MODEL} --dir ${empty}`),
      );
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it('apply refuses a local rerank model it does not know, and settings only Bedrock has', async () => {
    const config = (r: unknown) =>
      parsePipelines({ pipelines: [productsPipeline({ rerank: r as LocalRerankConfig })] });
    await assert.rejects(
      applyPipelines(h.db.pool, config({ provider: 'local', model: 'bge-reranker-base' })),
      {
        name: 'ConfigError',
        message:
          'pipelines[0].rerank.model: local has no rerank model "bge-reranker-base"; known: ms-marco-MiniLM-L-12-v2',
      },
    );
    assert.throws(() => config({ provider: 'local', model: MODEL, region: 'us-west-2' }), {
      name: 'ConfigError',
    });
    assert.equal((await getPipeline(h.db.pool, 'products')).config.rerank?.model, MODEL);
  });

  it('embedsync search --rerank prints the model’s logit in a column of its own', async () => {
    const r = await promisify(execFile)(
      process.execPath,
      ['bin/embedsync.js', 'search', '--table', 'products', QUERY, '--limit', '3', '--rerank'],
      { env: { ...process.env, DATABASE_URL: h.db.url }, timeout: 120_000 },
    );
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0] ?? '', /^rerank\s+score\s+pk\s+metadata\s+chunk$/);
    assert.equal(lines.length, 4, r.stdout);
    assert.match(
      lines[1] ?? '',
      /^-?\d+\.\d{3}\s+\d\.\d{3}\s+\d+\s+category=outdoor .*Northwind Down Parka/,
    );
  });
});
