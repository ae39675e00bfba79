import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { readProviderEnv, readSecret } from '../../src/config/env.js';
import {
  canonicalJson,
  ConfigError,
  embedColumns,
  embeddingFingerprint,
  parsePipelines,
  type PipelineInput,
} from '../../src/config/pipeline.js';
import { baseModelId, checkEmbeddingModel, modelFacts } from '../../src/providers/models.js';

const pipeline = (
  embedding: PipelineInput['embedding'],
  chunking = { size: 1000, overlap: 100 },
): PipelineInput => ({
  name: 'docs',
  source: { table: 'public.docs' },
  embed: { columns: ['body'] },
  embedding,
  chunking,
});

const parse = (input: PipelineInput) => {
  const [config] = parsePipelines({ pipelines: [input] });
  assert.ok(config);
  return config;
};

function refusal(input: PipelineInput): ConfigError {
  try {
    checkEmbeddingModel(parse(input));
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err;
  }
  assert.fail('the pipeline was accepted');
}

describe('model facts and the apply-time check', () => {
  it('accepts the dimensions each model can produce', () => {
    for (const embedding of [
      { provider: 'openai', model: 'text-embedding-3-small', dimensions: 512 },
      { provider: 'openai', model: 'text-embedding-3-large', dimensions: 1024 },
      { provider: 'openai', model: 'text-embedding-ada-002', dimensions: 1536 },
      {
        provider: 'bedrock',
        model: 'amazon.titan-embed-text-v2:0',
        dimensions: 256,
        normalize: false,
      },
      { provider: 'bedrock', model: 'amazon.titan-embed-text-v1', dimensions: 1536 },
      { provider: 'bedrock', model: 'cohere.embed-multilingual-v3', dimensions: 1024 },
      { provider: 'bedrock', model: 'us.cohere.embed-v4:0', dimensions: 512 },
      { provider: 'offline', model: 'feature-hash-v1', dimensions: 64 },
    ] as const) {
      assert.doesNotThrow(() => checkEmbeddingModel(parse(pipeline(embedding))), embedding.model);
    }
  });

  it('refuses dimensions the model cannot produce, naming the field and what it can', () => {
    const ada = refusal(
      pipeline({ provider: 'openai', model: 'text-embedding-ada-002', dimensions: 512 }),
    );
    assert.equal(ada.field, 'embedding.dimensions');
    assert.match(ada.message, /only 1536/);
    assert.match(
      refusal(
        pipeline({ provider: 'bedrock', model: 'amazon.titan-embed-text-v2:0', dimensions: 768 }),
      ).message,
      /256, 512, 1024/,
    );
    assert.match(
      refusal(pipeline({ provider: 'openai', model: 'text-embedding-3-small', dimensions: 1600 }))
        .message,
      /1 to 1536/,
    );
    assert.equal(
      refusal(pipeline({ provider: 'bedrock', model: 'cohere.embed-v4:0', dimensions: 768 })).field,
      'embedding.dimensions',
    );
  });

  it('refuses chunks longer than the model takes, in its unit', () => {
    const tokens = refusal(
      pipeline(
        { provider: 'openai', model: 'text-embedding-3-small', dimensions: 512 },
        { size: 9000, overlap: 100 },
      ),
    );
    assert.equal(tokens.field, 'chunking.size');
    assert.match(tokens.message, /8191 tokens/);
    assert.match(
      refusal(
        pipeline(
          { provider: 'bedrock', model: 'cohere.embed-english-v3', dimensions: 1024 },
          { size: 4000, overlap: 100 },
        ),
      ).message,
      /2048 characters/,
    );
  });

  it('refuses unknown models unless an OpenAI-compatible server is named', () => {
    assert.equal(
      refusal(
        pipeline({ provider: 'bedrock', model: 'amazon.titan-embed-image-v1', dimensions: 1024 }),
      ).field,
      'embedding.model',
    );
    assert.equal(
      refusal(pipeline({ provider: 'openai', model: 'nomic-embed-text', dimensions: 768 })).field,
      'embedding.model',
    );
    const facts = checkEmbeddingModel(
      parse(
        pipeline({
          provider: 'openai',
          model: 'nomic-embed-text',
          dimensions: 768,
          baseURL: 'http://127.0.0.1:11434/v1',
          maxInputsPerRequest: 16,
        }),
      ),
    );
    assert.deepEqual(
      [facts.nativeDimensions, facts.maxInputsPerRequest, facts.unit],
      [768, 16, 'characters'],
    );
  });

  it('takes normalize for Titan v2 only', () => {
    assert.equal(
      refusal(
        pipeline({
          provider: 'bedrock',
          model: 'cohere.embed-english-v3',
          dimensions: 1024,
          normalize: true,
        }),
      ).field,
      'embedding.normalize',
    );
  });

  it('knows inference profiles and ARNs by their base model', () => {
    assert.equal(baseModelId('bedrock', 'eu.cohere.embed-v4:0'), 'cohere.embed-v4:0');
    assert.equal(
      baseModelId(
        'bedrock',
        'arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0',
      ),
      'amazon.titan-embed-text-v2:0',
    );
    assert.equal(
      modelFacts({ provider: 'bedrock', model: 'cohere.embed-v4', dimensions: 1536 }).family,
      'cohere-v4',
    );
  });
});

describe('provider config', () => {
  it('holds the name of a key variable, never a key', () => {
    assert.throws(
      () =>
        parse(
          pipeline({
            provider: 'openai',
            model: 'text-embedding-3-small',
            dimensions: 512,
            apiKey: 'sk-abc',
          } as unknown as PipelineInput['embedding']),
        ),
      /apiKey/,
    );
    const config = parse(
      pipeline({ provider: 'openai', model: 'text-embedding-3-small', dimensions: 512 }),
    );
    assert.deepEqual(config.embedding, {
      provider: 'openai',
      model: 'text-embedding-3-small',
      dimensions: 512,
      apiKeyEnv: 'OPENAI_API_KEY',
    });
  });

  it('does not count rate limits, key variables or regions as a change of what is embedded', () => {
    const base = parse(
      pipeline({ provider: 'bedrock', model: 'amazon.titan-embed-text-v2:0', dimensions: 512 }),
    );
    const tuned = parse(
      pipeline({
        provider: 'bedrock',
        model: 'amazon.titan-embed-text-v2:0',
        dimensions: 512,
        region: 'eu-west-1',
        requestsPerMinute: 100,
        tokensPerMinute: 10_000,
      }),
    );
    assert.equal(embeddingFingerprint(base), embeddingFingerprint(tuned));
    const reduced = parse(
      pipeline({ provider: 'bedrock', model: 'amazon.titan-embed-text-v2:0', dimensions: 256 }),
    );
    assert.notEqual(embeddingFingerprint(base), embeddingFingerprint(reduced));
  });

  it('leaves the fingerprint of offline pipelines as it was, so their vectors stay current', () => {
    const config = parse(
      pipeline({ provider: 'offline', model: 'feature-hash-v1', dimensions: 64 }),
    );
    // Columns as they were before `repeat` existed: column and prefix only.
    const before = {
      columns: embedColumns(config).map(({ column, prefix }) => ({ column, prefix })),
      separator: config.embed.separator,
      embedding: config.embedding,
      chunking: config.chunking,
      vectorType: config.vectorType,
    };
    assert.equal(
      embeddingFingerprint(config),
      createHash('sha256').update(canonicalJson(before)).digest('hex').slice(0, 16),
    );
  });

  it('reads provider settings from the environment, ignoring empty variables', () => {
    const env = readProviderEnv({
      OPENAI_BASE_URL: '',
      AWS_DEFAULT_REGION: 'eu-west-1',
      EMBEDSYNC_OPENAI_REQUESTS_PER_MINUTE: '3000',
      EMBEDSYNC_BEDROCK_TOKENS_PER_MINUTE: '20000',
    });
    assert.deepEqual(env.openai, {
      baseURL: undefined,
      requestsPerMinute: 3000,
      tokensPerMinute: undefined,
    });
    assert.equal(env.bedrock.region, 'eu-west-1');
    assert.equal(env.bedrock.tokensPerMinute, 20_000);
    assert.throws(
      () => readProviderEnv({ EMBEDSYNC_OPENAI_TOKENS_PER_MINUTE: 'lots' }),
      /EMBEDSYNC_OPENAI_TOKENS_PER_MINUTE/,
    );
    assert.equal(readSecret('MY_KEY', { MY_KEY: '' }), undefined);
  });
});
