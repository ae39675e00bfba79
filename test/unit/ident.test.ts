import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseTableName, qualified, quoteIdent, quoteLiteral } from '../../src/db/ident.js';

describe('identifier quoting', () => {
  it('quotes every identifier and doubles embedded quotes', () => {
    assert.equal(quoteIdent('products'), '"products"');
    assert.equal(quoteIdent('we"ird'), '"we""ird"');
    assert.equal(qualified('public', 'Mixed Case'), '"public"."Mixed Case"');
    assert.equal(quoteLiteral("it's"), "'it''s'");
  });

  it('refuses empty identifiers and NUL bytes', () => {
    assert.throws(() => quoteIdent(''));
    assert.throws(() => quoteIdent('a\u0000b'));
  });

  it('parses table names as Postgres does: unquoted parts fold to lower case', () => {
    assert.deepEqual(parseTableName('products'), { schema: 'public', table: 'products' });
    assert.deepEqual(parseTableName('Shop.Products'), { schema: 'shop', table: 'products' });
    assert.deepEqual(parseTableName('"Shop"."My ""Table"""'), {
      schema: 'Shop',
      table: 'My "Table"',
    });
    assert.throws(() => parseTableName('a.b.c'), /must be "table" or "schema.table"/);
    assert.throws(() => parseTableName('"open'), /unterminated/);
  });
});
