import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ConfigError,
  embeddingFingerprint,
  isEventsOnly,
  parsePipelineFile,
  parsePipelines,
} from '../../src/config/pipeline.js';
import { readEnv } from '../../src/config/env.js';

const valid = {
  name: 'products',
  source: { table: 'public.products' },
  embed: { columns: [{ column: 'name', prefix: 'Product: ' }, 'description'] },
  metadata: ['category'],
  embedding: { provider: 'offline', dimensions: 64 },
};

function errorOf(raw: unknown): ConfigError {
  try {
    parsePipelines(raw);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected the config to be refused');
}

describe('pipeline config', () => {
  it('fills in the defaults of a minimal pipeline', () => {
    const [p] = parsePipelines({ pipelines: [valid] });
    assert.equal(p?.embedding.model, 'feature-hash-v1');
    assert.deepEqual(p?.chunking, { size: 2000, overlap: 200 });
    assert.equal(p?.vectorType, 'vector');
    assert.equal(p?.batchSize, 200);
    assert.equal(p?.embed.separator, '\n');
  });

  it('names the field of an empty column list', () => {
    const err = errorOf({
      pipelines: [valid, { ...valid, name: 'other', embed: { columns: [] } }],
    });
    assert.equal(err.field, 'pipelines[1].embed.columns');
    assert.match(err.message, /^pipelines\[1\]\.embed\.columns: must not be empty/);
  });

  it('refuses a duplicate pipeline name and says where the first one is', () => {
    const err = errorOf({ pipelines: [valid, valid] });
    assert.equal(err.field, 'pipelines[1].name');
    assert.match(err.message, /duplicate pipeline name "products" \(also pipelines\[0\]\)/);
  });

  it('refuses names that would not survive as SQL identifiers', () => {
    assert.equal(
      errorOf({ pipelines: [{ ...valid, name: 'Products-2' }] }).field,
      'pipelines[0].name',
    );
    assert.equal(
      errorOf({ pipelines: [{ ...valid, name: 'a'.repeat(41) }] }).field,
      'pipelines[0].name',
    );
  });

  it('refuses unknown keys instead of ignoring a typo', () => {
    const err = errorOf({ pipelines: [{ ...valid, metdata: ['x'] }] });
    assert.equal(err.field, 'pipelines[0]');
    assert.match(err.message, /metdata/);
  });

  it('only leading columns may be repeated on every chunk', () => {
    const late = {
      ...valid,
      embed: { columns: ['name', { column: 'description', repeat: true }] },
    };
    assert.equal(errorOf({ pipelines: [late] }).field, 'pipelines[0].embed.columns[1].repeat');
    const early = {
      ...valid,
      embed: { columns: [{ column: 'name', repeat: true }, 'description'] },
    };
    assert.equal(parsePipelines({ pipelines: [early] }).length, 1);
  });

  it('refuses an unknown provider', () => {
    assert.equal(
      errorOf({ pipelines: [{ ...valid, embedding: { provider: 'nope' } }] }).field,
      'pipelines[0].embedding.provider',
    );
  });

  it('refuses an overlap of half the chunk size or more', () => {
    assert.equal(
      errorOf({ pipelines: [{ ...valid, chunking: { size: 100, overlap: 50 } }] }).field,
      'pipelines[0].chunking.overlap',
    );
  });

  it('asks for halfvec above the 2,000 dimensions HNSW indexes for vector', () => {
    const err = errorOf({
      pipelines: [{ ...valid, embedding: { provider: 'offline', dimensions: 3072 } }],
    });
    assert.equal(err.field, 'pipelines[0].vectorType');
    assert.deepEqual(
      parsePipelines({
        pipelines: [
          { ...valid, vectorType: 'halfvec', embedding: { provider: 'offline', dimensions: 3072 } },
        ],
      })[0]?.vectorType,
      'halfvec',
    );
  });

  it('an empty file is refused with a message, not a crash', () => {
    assert.match(errorOf(null).message, /expected object/i);
    assert.equal(errorOf({ pipelines: [] }).field, 'pipelines');
  });

  it('the fingerprint moves with what decides a vector and not with metadata or batch size', () => {
    const [base] = parsePipelines({ pipelines: [valid] });
    const [moreMeta] = parsePipelines({
      pipelines: [{ ...valid, metadata: ['category', 'price'], batchSize: 10 }],
    });
    const [otherPrefix] = parsePipelines({
      pipelines: [{ ...valid, embed: { columns: ['name', 'description'] } }],
    });
    const [otherDims] = parsePipelines({
      pipelines: [{ ...valid, embedding: { provider: 'offline', dimensions: 128 } }],
    });
    assert.ok(base && moreMeta && otherPrefix && otherDims);
    assert.equal(embeddingFingerprint(base), embeddingFingerprint(moreMeta));
    assert.notEqual(embeddingFingerprint(base), embeddingFingerprint(otherPrefix));
    assert.notEqual(embeddingFingerprint(base), embeddingFingerprint(otherDims));
  });

  it('the fingerprint does not depend on key order (the catalog stores jsonb, which reorders keys)', () => {
    const [base] = parsePipelines({ pipelines: [valid] });
    assert.ok(base);
    const reordered = JSON.parse(
      JSON.stringify({
        ...base,
        embedding: { dimensions: 64, model: 'feature-hash-v1', provider: 'offline' },
      }),
    ) as typeof base;
    assert.equal(embeddingFingerprint(reordered), embeddingFingerprint(base));
  });
});

describe('sinks', () => {
  const webhook = { url: 'https://example.com/hook', secretEnv: 'HOOK_SECRET' };

  it('takes notify, webhook and workflow sinks, none by default', () => {
    const [none] = parsePipelines({ pipelines: [valid] });
    assert.deepEqual(none?.sinks, []);
    const sinks = [
      { notify: 'product_changes' },
      { webhook: { ...webhook, columns: ['name'] } },
      { workflow: { type: 'onProductChange', taskQueue: 'shop' } },
    ];
    const [p] = parsePipelines({ pipelines: [{ ...valid, sinks }] });
    assert.deepEqual(p?.sinks, sinks);
  });

  it('refuses a bad channel, url, environment variable name or an unknown option, naming the field', () => {
    const at = (sink: unknown): ConfigError =>
      errorOf({ pipelines: [{ ...valid, sinks: [sink] }] });
    assert.equal(at({ notify: 'Bad-Channel' }).field, 'pipelines[0].sinks[0].notify');
    assert.match(at({ notify: 'x; drop' }).message, /channel name/);
    assert.equal(
      at({ webhook: { ...webhook, url: 'ftp://x' } }).field,
      'pipelines[0].sinks[0].webhook.url',
    );
    assert.match(
      at({ webhook: { ...webhook, secretEnv: 'not a name' } }).message,
      /environment variable name/,
    );
    assert.match(
      at({ webhook: { ...webhook, url: 'https://u:p@example.com/h' } }).message,
      /credentials/,
    );
    // A secret is never config: only the variable's name is accepted.
    assert.ok(at({ webhook: { ...webhook, secret: 's3cret' } }));
    assert.ok(at({ workflow: { type: 'x' } }));
    assert.ok(at({ notify: 'a', webhook }));
  });

  it('are operational: changing them leaves the fingerprint', () => {
    const [base] = parsePipelines({ pipelines: [valid] });
    const [withSinks] = parsePipelines({
      pipelines: [{ ...valid, sinks: [{ notify: 'changes' }, { webhook }] }],
    });
    assert.ok(base && withSinks);
    assert.equal(embeddingFingerprint(withSinks), embeddingFingerprint(base));
  });
});

describe('events-only pipelines', () => {
  const orders = { name: 'orders', source: { table: 'public.orders' }, sinks: [{ notify: 'c' }] };
  const refusal = (entry: unknown): ConfigError => {
    try {
      parsePipelineFile({ pipelines: [valid, entry] });
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err;
    }
    assert.fail('expected the config to be refused');
  };

  it('are told apart by sinks with neither embed nor embedding, beside pipelines that embed', () => {
    const [products, events] = parsePipelineFile({ pipelines: [valid, orders] });
    assert.ok(products && events);
    assert.equal(isEventsOnly(products), false);
    assert.ok(isEventsOnly(events));
    assert.deepEqual(events, { ...orders, batchSize: 200 });
  });

  it('need a sink, and take none of the embedding fields', () => {
    assert.equal(refusal({ ...orders, sinks: [] }).field, 'pipelines[1].sinks');
    assert.match(refusal({ ...orders, sinks: [] }).message, /needs at least one sink/);
    assert.match(refusal({ ...orders, metadata: ['total'] }).message, /metadata/);
    // Neither embedding nor sinks: read as a pipeline that embeds, missing its embedding.
    const bare = { name: orders.name, source: orders.source };
    assert.match(refusal(bare).field, /^pipelines\[1\]\.(embed|embedding)$/);
  });

  it('are refused where every pipeline must embed', () => {
    assert.throws(
      () => parsePipelines({ pipelines: [orders] }),
      /pipelines\[0\]: pipeline orders has no embedding/,
    );
  });
});

describe('EMBEDSYNC_INDEX_BUILD_MEMORY', () => {
  it('is 1 GB unless set, and reads PostgreSQL memory sizes', () => {
    assert.equal(readEnv({}).indexBuildMemory, 2 ** 30);
    assert.equal(readEnv({ EMBEDSYNC_INDEX_BUILD_MEMORY: '4GB' }).indexBuildMemory, 4 * 2 ** 30);
    assert.equal(readEnv({ EMBEDSYNC_INDEX_BUILD_MEMORY: '512MB' }).indexBuildMemory, 2 ** 29);
    assert.equal(readEnv({ EMBEDSYNC_INDEX_BUILD_MEMORY: '0' }).indexBuildMemory, 0);
  });

  it('names the variable when it is not a size', () => {
    assert.throws(
      () => readEnv({ EMBEDSYNC_INDEX_BUILD_MEMORY: 'lots' }),
      /EMBEDSYNC_INDEX_BUILD_MEMORY: a PostgreSQL memory size/,
    );
  });
});

describe('EMBEDSYNC_TEXT_RETENTION', () => {
  it('is 15 minutes unless set, and reads durations', () => {
    assert.equal(readEnv({}).textRetentionMs, 15 * 60_000);
    assert.equal(readEnv({ EMBEDSYNC_TEXT_RETENTION: '2h' }).textRetentionMs, 2 * 3_600_000);
    assert.equal(readEnv({ EMBEDSYNC_TEXT_RETENTION: '1d' }).textRetentionMs, 86_400_000);
    assert.equal(readEnv({ EMBEDSYNC_TEXT_RETENTION: '30s' }).textRetentionMs, 30_000);
  });

  it('names the variable when it is not a duration', () => {
    assert.throws(
      () => readEnv({ EMBEDSYNC_TEXT_RETENTION: '15 minutes' }),
      /EMBEDSYNC_TEXT_RETENTION: a duration such as 15min/,
    );
  });
});
