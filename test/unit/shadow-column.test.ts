import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { indexNameOf } from '../../src/capture/destination-column.js';
import { shadowColumnName } from '../../src/db/catalog.js';
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
