// The pure pieces of a batch-mode backfill: cutting a table into parts under OpenAI's limits and
// the enqueued-token budget, naming request lines, reading OpenAI's statuses and output lines, and
// the config that makes batch mode the default.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  addSize,
  customId,
  EMPTY_PART,
  fits,
  MAX_BATCH_FILE_BYTES,
  MAX_BATCH_INPUTS,
  nextPartBudget,
  partLimits,
  partName,
  rowOf,
  type PartSize,
} from '../../src/batch/parts.js';
import { ConfigError, parsePipelines } from '../../src/config/pipeline.js';
import type { OpenAIEmbeddingConfig } from '../../src/config/pipeline.js';
import { batchPhase, parseOutputLine, requestLine } from '../../src/providers/openai-batch.js';

const row = (inputs: number, tokens: number, bytes = 100): PartSize => ({ inputs, tokens, bytes });

/** Fills parts in order the way the submit activity does. */
function cut(rows: PartSize[], limits: PartSize): number[] {
  const sizes: number[] = [];
  let held = EMPTY_PART;
  let n = 0;
  for (const r of rows) {
    if (!fits(held, r, limits)) {
      sizes.push(n);
      held = EMPTY_PART;
      n = 0;
    }
    held = addSize(held, r);
    n += 1;
  }
  if (n > 0) sizes.push(n);
  return sizes;
}

describe('cutting a table into parts', () => {
  it("keeps to OpenAI's 50,000 inputs and 200 MB per file whatever the budget", () => {
    const limits = partLimits(Number.MAX_SAFE_INTEGER);
    assert.equal(limits.inputs, MAX_BATCH_INPUTS);
    assert.equal(limits.bytes, MAX_BATCH_FILE_BYTES);
    assert.deepEqual(
      cut(Array<PartSize>(120_000).fill(row(1, 10)), limits),
      [50_000, 50_000, 20_000],
    );
    assert.equal(partLimits(1000, 80_000).inputs, MAX_BATCH_INPUTS, 'never more than OpenAI takes');
    const big = Array<PartSize>(5).fill(row(1, 10, 80 * 1024 * 1024));
    assert.deepEqual(cut(big, limits), [2, 2, 1]);
  });

  it('keeps each part within its token budget, counting every chunk of a row', () => {
    assert.deepEqual(cut(Array<PartSize>(10).fill(row(3, 30)), partLimits(100)), [3, 3, 3, 1]);
  });

  it('sends a row larger than the budget alone rather than stopping', () => {
    assert.deepEqual(cut([row(1, 10), row(5, 500), row(1, 10)], partLimits(100)), [1, 1, 1]);
  });

  it('submits a new part only while the parts in flight leave room for a whole one', () => {
    assert.equal(nextPartBudget(0, 1000), 1000, 'nothing in flight: a whole part');
    assert.equal(nextPartBudget(1, 1000), 0, 'by default parts run in turn');
    assert.equal(nextPartBudget(400, 1000, 500), 500);
    assert.equal(nextPartBudget(600, 1000, 500), 0);
    assert.equal(nextPartBudget(0, 1000, 5000), 1000, 'a part never exceeds the limit');
  });
});

describe('request lines and their names', () => {
  const config: OpenAIEmbeddingConfig = {
    provider: 'openai',
    model: 'text-embedding-3-small',
    dimensions: 256,
    apiKeyEnv: 'OPENAI_API_KEY',
    encodingFormat: 'float',
  };

  it("a row's custom_id is its place in the part's keys, and reads back", () => {
    assert.equal(customId(17), 'row-17');
    assert.equal(rowOf(customId(17)), 17);
    assert.equal(rowOf('request-1'), undefined, 'a line this backfill did not write');
    assert.equal(partName('inst', 'backfill:p@1a2b', 3, 2), 'inst/backfill:p@1a2b/3/2');
  });

  it("a line is an embeddings request with the row's chunks as its inputs", () => {
    const line = JSON.parse(requestLine(config, 'row-0', ['a', 'b'])) as Record<string, unknown>;
    assert.deepEqual(line, {
      custom_id: 'row-0',
      method: 'POST',
      url: '/v1/embeddings',
      body: {
        model: 'text-embedding-3-small',
        input: ['a', 'b'],
        encoding_format: 'float',
        dimensions: 256,
      },
    });
  });

  it("reads OpenAI's output and error lines", () => {
    const ok = parseOutputLine(
      JSON.stringify({
        id: 'batch_req_1',
        custom_id: 'row-2',
        response: {
          status_code: 200,
          request_id: 'req_1',
          body: {
            object: 'list',
            data: [
              { object: 'embedding', index: 1, embedding: [0, 1] },
              { object: 'embedding', index: 0, embedding: [1, 0] },
            ],
            usage: { prompt_tokens: 7, total_tokens: 7 },
          },
        },
        error: null,
      }),
    );
    assert.deepEqual(ok, {
      customId: 'row-2',
      vectors: [
        [1, 0],
        [0, 1],
      ],
      tokens: 7,
    });
    const base64 = Buffer.from(new Float32Array([0.5, -1]).buffer).toString('base64');
    const encoded = parseOutputLine(
      JSON.stringify({
        custom_id: 'row-0',
        response: { status_code: 200, body: { data: [{ index: 0, embedding: base64 }] } },
        error: null,
      }),
    );
    assert.deepEqual(encoded.vectors, [[0.5, -1]]);
    const failed = parseOutputLine(
      JSON.stringify({
        custom_id: 'row-3',
        response: { status_code: 400, body: { error: { message: "'$.input[0]' is invalid." } } },
        error: null,
      }),
    );
    assert.deepEqual(failed, {
      customId: 'row-3',
      tokens: 0,
      error: "'$.input[0]' is invalid.",
      retryable: false,
    });
    const expired = parseOutputLine(
      JSON.stringify({
        custom_id: 'row-4',
        response: null,
        error: { code: 'batch_expired', message: 'not executed before the window expired' },
      }),
    );
    assert.equal(expired.retryable, true, "a line that never ran is not its input's fault");
    const overloaded = parseOutputLine(
      JSON.stringify({ custom_id: 'row-5', response: { status_code: 503, body: {} }, error: null }),
    );
    assert.equal(overloaded.retryable, true);
  });

  it("maps OpenAI's statuses to running or over", () => {
    for (const s of ['validating', 'in_progress', 'finalizing', 'cancelling'])
      assert.equal(batchPhase(s), 'running', s);
    assert.equal(batchPhase('completed'), 'completed');
    assert.equal(batchPhase('failed'), 'failed');
    assert.equal(batchPhase('expired'), 'expired');
    assert.equal(batchPhase('cancelled'), 'cancelled');
  });
});

describe('backfill.mode in the config', () => {
  const pipeline = (embedding: object) => ({
    name: 'products',
    source: { table: 'products' },
    embed: { columns: ['name'] },
    embedding,
    backfill: { mode: 'batch', enqueuedTokens: 1000 },
  });

  it('makes batch mode the default for an OpenAI pipeline', () => {
    const [p] = parsePipelines({
      pipelines: [pipeline({ provider: 'openai', model: 'text-embedding-3-small', dimensions: 8 })],
    });
    assert.deepEqual(p?.backfill, { mode: 'batch', enqueuedTokens: 1000 });
  });

  it('is refused for a provider without a Batch API, naming the pipeline and provider', () => {
    for (const embedding of [
      { provider: 'bedrock', model: 'amazon.titan-embed-text-v2:0', dimensions: 256 },
      { provider: 'offline', dimensions: 64 },
    ]) {
      assert.throws(
        () => parsePipelines({ pipelines: [pipeline(embedding)] }),
        (err: unknown) =>
          err instanceof ConfigError &&
          err.message.includes('pipeline products embeds with') &&
          err.message.includes(embedding.provider) &&
          err.message.includes('backfill.mode'),
      );
    }
  });
});
