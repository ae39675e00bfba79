import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { indexNameOf } from '../../src/capture/destination-column.js';
import { parsePipelines } from '../../src/config/pipeline.js';
import { atGeneration, shadowColumnName, type Pipeline } from '../../src/db/catalog.js';
import { fitIdent } from '../../src/db/ident.js';

describe('shadow column names', () => {
  it('are <column>_next while that fits in 63 bytes', () => {
    assert.equal(shadowColumnName('embedding'), 'embedding_next');
    assert.equal(indexNameOf('documents', 'embedding'), 'documents_embedding_hnsw');
  });

  it('cut a long name at a character, keep the suffix, and tell two cuts apart by a digest', () => {
    const a = shadowColumnName(`${'é'.repeat(40)}a`);
    const b = shadowColumnName(`${'é'.repeat(40)}b`);
    for (const n of [a, b]) {
      assert.ok(Buffer.byteLength(n) <= 63, n);
      assert.ok(n.endsWith('_next'));
      assert.ok(!n.includes('\ufffd'));
    }
    assert.notEqual(a, b);
    assert.equal(fitIdent('x'.repeat(58), '_next'), `${'x'.repeat(58)}_next`);
    assert.notEqual(fitIdent('x'.repeat(59), '_next'), `${'x'.repeat(59)}_next`);
  });
});

describe('the pending generation of a column pipeline', () => {
  const [live, next] = parsePipelines({
    pipelines: [
      {
        name: 'docs',
        source: { table: 'docs' },
        embed: { columns: ['body'] },
        embedding: { provider: 'offline', dimensions: 64 },
        destination: { column: 'embedding' },
      },
    ],
  }).flatMap((c) => [c, { ...c, embedding: { ...c.embedding, dimensions: 32 } }]);
  const p = {
    name: 'docs',
    vectorSchema: 'public',
    vectorTable: 'docs_embeddings',
    config: live,
    generation: 1,
    pendingConfig: next,
    pendingGeneration: 2,
    state: 'reembedding',
  } as Pipeline;

  it('writes the shadow column and the _swap record; the live generation the live column', () => {
    const building = atGeneration(p, 2);
    assert.equal(building?.config.destination?.column, 'embedding_next');
    assert.equal(building?.vectorTable, 'docs_embeddings_swap');
    assert.equal(building?.config.embedding.dimensions, 32);
    assert.equal(atGeneration(p, 1)?.config.destination?.column, 'embedding');
    // Not being built: no generation 2 to write.
    assert.equal(atGeneration({ ...p, state: 'reembed_pending' }, 2), undefined);
  });
});
