import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EMBED_KIND, EMBED_PIPELINE, SEARCH_ATTRIBUTES } from '../../src/temporal/names.js';
import { hasSearchAttributes, searchAttributeFlags } from '../../src/temporal/search-attributes.js';

describe('search attributes', () => {
  it('are the ones workflows are tagged with, as Keyword', () => {
    assert.deepEqual(
      SEARCH_ATTRIBUTES.map((key) => [key.name, key.type]),
      [
        ['EmbedPipeline', 'KEYWORD'],
        ['EmbedKind', 'KEYWORD'],
      ],
    );
    assert.deepEqual(SEARCH_ATTRIBUTES, [EMBED_PIPELINE, EMBED_KIND]);
  });

  it('become the dev server flags that register them, one --search-attribute each', () => {
    assert.deepEqual(searchAttributeFlags(), [
      '--search-attribute',
      'EmbedPipeline=Keyword',
      '--search-attribute',
      'EmbedKind=Keyword',
    ]);
  });

  it('count as registered only when every one of them is', () => {
    assert.equal(hasSearchAttributes({ EmbedPipeline: 2, EmbedKind: 2, Other: 1 }), true);
    assert.equal(hasSearchAttributes({ EmbedPipeline: 2 }), false);
    assert.equal(hasSearchAttributes({}), false);
  });
});
