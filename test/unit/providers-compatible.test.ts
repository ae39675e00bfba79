// A model of an OpenAI-compatible server, in pure terms: what its config declares of it, what apply
// checks, what the probe concludes, how prefixes are put on, and what status and the CLI say.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ActivityFailure, ApplicationFailure, WorkflowFailedError } from '@temporalio/client';
import { DimensionMismatchError } from '../../activities/errors.js';
import { chunkOptions, countTokens } from '../../src/chunking/tokens.js';
import { chunkDocument } from '../../src/chunking/document.js';
import {
  ConfigError,
  embeddingFingerprint,
  parsePipelines,
  vectorSettings,
  type OpenAIEmbeddingConfig,
  type PipelineInput,
} from '../../src/config/pipeline.js';
import { checkEmbeddingModel, modelFacts, RESERVED_TOKENS } from '../../src/providers/models.js';
import { withPrefix } from '../../src/providers/openai.js';
import { requestLine } from '../../src/providers/openai-batch.js';
import { checkProbedDimensions, needsProbe, serverName } from '../../src/providers/probe.js';
import { stateWords, walkMissing } from '../../src/status/state.js';
import type { PipelineWorkflows } from '../../src/status/temporal.js';
import { failureMessage } from '../../src/temporal/failure.js';

const e5 = (extra: Record<string, unknown> = {}) =>
  ({
    provider: 'openai',
    model: 'multilingual-e5-small',
    dimensions: 384,
    queryPrefix: 'query: ',
    documentPrefix: 'passage: ',
    maxInputTokens: 512,
    ...extra,
  }) as PipelineInput['embedding'];

const parse = (embedding: PipelineInput['embedding'], chunking = { size: 400, overlap: 40 }) => {
  const [config] = parsePipelines({
    pipelines: [
      {
        name: 'docs',
        source: { table: 'public.docs' },
        embed: { columns: ['body'] },
        embedding,
        chunking,
      },
    ],
  });
  assert.ok(config);
  return config;
};

const openai = (config: ReturnType<typeof parse>): OpenAIEmbeddingConfig => {
  assert.ok(config.embedding.provider === 'openai');
  return config.embedding;
};

function refusal(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }
  assert.fail('accepted');
}

describe('a model of a compatible server', () => {
  it('needs a server: the pipeline baseURL or OPENAI_BASE_URL', () => {
    const config = parse(e5());
    const err = refusal(() => checkEmbeddingModel(config));
    assert.equal(err.field, 'embedding.model');
    assert.match(err.detail, /embedding\.baseURL, or OPENAI_BASE_URL in the environment/);
    assert.doesNotThrow(() => checkEmbeddingModel(config, 'http://127.0.0.1:8080/v1'));
    assert.doesNotThrow(() =>
      checkEmbeddingModel(parse(e5({ baseURL: 'http://127.0.0.1:8080/v1' }))),
    );
    assert.equal(needsProbe(config.embedding), true);
    assert.equal(
      needsProbe(
        parse({ provider: 'openai', model: 'text-embedding-3-small', dimensions: 256 }).embedding,
      ),
      false,
    );
  });

  it('is measured in characters by default, its limit less the document prefix and the tokens the server adds', () => {
    const facts = modelFacts(parse(e5()).embedding);
    assert.equal(facts.unit, 'characters');
    assert.equal(facts.maxTokensPerInput, 512);
    assert.equal(facts.maxInputSize, 512 - 'passage: '.length - RESERVED_TOKENS);
    assert.equal(chunkOptions(parse(e5())).measure, undefined, 'code points');
    const cl100k = modelFacts(parse(e5({ tokenizer: 'cl100k' })).embedding);
    assert.equal(cl100k.unit, 'tokens');
    assert.equal(chunkOptions(parse(e5({ tokenizer: 'cl100k' }))).measure, countTokens);
    // No limit declared: no ceiling, as before.
    assert.equal(
      modelFacts(parse(e5({ maxInputTokens: undefined })).embedding).maxInputSize,
      Infinity,
    );
  });

  it('refuses a chunk size above the limit, and a limit or tokenizer for a model embedsync knows', () => {
    const server = 'http://127.0.0.1:8080/v1';
    const big = refusal(() => checkEmbeddingModel(parse(e5(), { size: 600, overlap: 60 }), server));
    assert.equal(big.field, 'chunking.size');
    assert.match(big.detail, /takes at most 499 characters per input \(maxInputTokens 512/);
    const known = refusal(() =>
      checkEmbeddingModel(
        parse({
          provider: 'openai',
          model: 'text-embedding-3-small',
          dimensions: 256,
          maxInputTokens: 512,
        }),
      ),
    );
    assert.equal(known.field, 'embedding.maxInputTokens');
  });

  it('chunks a long document within the limit', () => {
    const config = parse(e5({ maxInputTokens: 128 }), { size: 100, overlap: 10 });
    const chunks = chunkDocument(
      config,
      'Warm socks for cold feet on long hikes. '.repeat(40),
      null,
    );
    assert.ok(chunks.length > 1);
    const limit = modelFacts(config.embedding).maxInputSize;
    for (const c of chunks) assert.ok(Array.from(c).length <= limit, c);
  });

  it('puts the query prefix on search texts and the document prefix on chunks, in online and batch requests', () => {
    const embedding = openai(parse(e5()));
    assert.deepEqual(withPrefix(embedding, 'query', ['warm jacket']), ['query: warm jacket']);
    assert.deepEqual(withPrefix(embedding, 'document', ['a', 'b']), ['passage: a', 'passage: b']);
    const plain = openai(
      parse({ provider: 'openai', model: 'text-embedding-3-small', dimensions: 256 }),
    );
    assert.deepEqual(withPrefix(plain, 'query', ['x']), ['x']);
    const line = JSON.parse(requestLine(embedding, 'id-1', ['a'])) as { body: { input: string[] } };
    assert.deepEqual(line.body.input, ['passage: a']);
  });

  it('re-embeds when a prefix, the limit or the tokenizer changes; a text keeps its vector across limit and tokenizer', () => {
    const base = parse(e5());
    const fingerprint = embeddingFingerprint(base);
    for (const changed of [
      e5({ queryPrefix: 'q: ' }),
      e5({ documentPrefix: '' }),
      e5({ maxInputTokens: 256 }),
      e5({ tokenizer: 'cl100k' }),
    ])
      assert.notEqual(embeddingFingerprint(parse(changed)), fingerprint, JSON.stringify(changed));
    const settings = vectorSettings(base.embedding);
    assert.equal(vectorSettings(parse(e5({ maxInputTokens: 256 })).embedding), settings);
    assert.equal(vectorSettings(parse(e5({ tokenizer: 'cl100k' })).embedding), settings);
    assert.notEqual(vectorSettings(parse(e5({ documentPrefix: 'doc: ' })).embedding), settings);
  });

  it('is probed: equal dimensions pass, others and an unreachable server are refused without credentials', async () => {
    const embedding = openai(parse(e5()));
    const server = 'http://svc:hunter22pass@127.0.0.1:8080/v1?key=abc123secret';
    assert.equal(serverName(server), 'http://127.0.0.1:8080/v1');
    await checkProbedDimensions(embedding, server, () => Promise.resolve(384));
    await assert.rejects(
      checkProbedDimensions(embedding, server, () => Promise.resolve(512)),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.field === 'embedding.dimensions' &&
        err.detail ===
          'is 384, but multilingual-e5-small at http://127.0.0.1:8080/v1 produces 512-dimension vectors (asked at apply); declare dimensions: 512',
    );
    await assert.rejects(
      checkProbedDimensions(embedding, server, () =>
        Promise.reject(new Error('connect ECONNREFUSED as svc:hunter22pass')),
      ),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.field === 'embedding.model' &&
        !/hunter22pass|abc123secret/.test(err.message) &&
        /--no-probe/.test(err.detail),
    );
  });
});

describe('a failed walk, as the CLI and status tell it', () => {
  it('the CLI prints the innermost cause, not "Activity task failed"', () => {
    const dims = new DimensionMismatchError(384, 512, 'openai/multilingual-e5-small');
    const app = ApplicationFailure.nonRetryable(dims.message, dims.name);
    const activity = new ActivityFailure(
      'Activity task failed',
      'walkBatch',
      '1',
      'NON_RETRYABLE_FAILURE',
      undefined,
      app,
    );
    const workflow = new WorkflowFailedError(
      'Workflow execution failed',
      activity,
      'NON_RETRYABLE_FAILURE',
    );
    assert.equal(
      failureMessage(workflow),
      'openai/multilingual-e5-small returned 512-dimension vectors, but the pipeline stores 384 (embedding.dimensions): declare dimensions: 512, apply, and re-embed',
    );
    assert.equal(failureMessage(new Error('plain')), 'plain');
  });

  it('status says a walk the catalog claims is not running when Temporal runs none', () => {
    const none = { backfill: null } as PipelineWorkflows;
    const one = {
      backfill: { workflowId: 'backfill:docs', url: '', progress: null },
    } as PipelineWorkflows;
    assert.equal(walkMissing('backfilling', none), true);
    assert.equal(walkMissing('reembedding', none), true);
    assert.equal(walkMissing('backfilling', one), false);
    assert.equal(walkMissing('backfilling', null), false, 'unknown without Temporal');
    assert.equal(walkMissing('active', none), false);
    assert.equal(stateWords({ pipeline: 'docs', state: 'backfilling' }), 'backfilling');
    assert.match(
      stateWords({ pipeline: 'docs', state: 'reembedding', walkMissing: true }),
      /^reembedding per the catalog, but no re-embed is running: .*npx embedsync reembed --table docs/,
    );
  });
});
