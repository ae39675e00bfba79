// The --filter syntax and the SQL filters become: values typed as written, keys checked, nothing
// interpolated.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkFilterKeys,
  filterSql,
  FilterError,
  filterTypeProblem,
  parseFilter,
  type MetadataColumn,
} from '../../src/search/filters.js';

describe('search filter syntax', () => {
  it('reads each comparison operator', () => {
    assert.deepEqual(parseFilter('category=outdoor'), {
      key: 'category',
      op: 'eq',
      value: 'outdoor',
    });
    assert.deepEqual(parseFilter('category!=kitchen'), {
      key: 'category',
      op: 'ne',
      value: 'kitchen',
    });
    assert.deepEqual(parseFilter('price<100'), { key: 'price', op: 'lt', value: 100 });
    assert.deepEqual(parseFilter('price<=150'), { key: 'price', op: 'lte', value: 150 });
    assert.deepEqual(parseFilter('price>9.5'), { key: 'price', op: 'gt', value: 9.5 });
    assert.deepEqual(parseFilter(' price >= -2 '), { key: 'price', op: 'gte', value: -2 });
  });

  it('types values: booleans, numbers, text, and quotes force text', () => {
    assert.equal(parseFilter('in_stock=true').value, true);
    assert.equal(parseFilter('in_stock=false').value, false);
    assert.equal(parseFilter('sku="123"').value, '123');
    assert.equal(parseFilter("flag='true'").value, 'true');
    assert.equal(parseFilter('name=Alpine Tent').value, 'Alpine Tent');
    assert.equal(parseFilter('code=007').value, '007'); // a leading zero is an identifier, not a number
    assert.equal(parseFilter('note=a=b').value, 'a=b');
  });

  it('reads "key in a,b,c" as a list of typed values', () => {
    assert.deepEqual(parseFilter('category in outdoor,apparel'), {
      key: 'category',
      op: 'in',
      value: ['outdoor', 'apparel'],
    });
    assert.deepEqual(parseFilter('price IN 10, 20 ,"30"'), {
      key: 'price',
      op: 'in',
      value: [10, 20, '30'],
    });
  });

  it('rejects what it cannot read with a message naming the filter', () => {
    for (const bad of [
      'price',
      'price=',
      '=5',
      'price<<5',
      'price=>5',
      'in_stock<true',
      'category in a,,b',
      '',
    ]) {
      assert.throws(
        () => parseFilter(bad),
        (err: Error) => err instanceof FilterError && err.message.includes(`"${bad}"`),
        bad,
      );
    }
  });

  it('names an unknown key and the keys the pipeline keeps', () => {
    assert.throws(
      () => checkFilterKeys([parseFilter('colour=red')], ['category', 'price'], 'products'),
      {
        name: 'FilterError',
        message: 'unknown metadata key "colour" for pipeline products: it keeps category, price',
      },
    );
    assert.doesNotThrow(() =>
      checkFilterKeys([parseFilter('price<=5')], ['category', 'price'], 'products'),
    );
  });

  it('passes keys and values as parameters, never in the SQL text', () => {
    const { conditions, params } = filterSql(
      [
        parseFilter("category=x'; drop table t; --"),
        parseFilter('price<=150'),
        parseFilter('tag in a,b'),
      ],
      5,
    );
    assert.ok(conditions.every((c) => !c.includes('drop') && !c.includes('150')));
    assert.deepEqual(params, [
      'category',
      `"x'; drop table t; --"`,
      'price',
      150,
      'tag',
      ['"a"', '"b"'],
    ]);
    assert.match(conditions[1] ?? '', /\(metadata ->> \$7::text\)::numeric end\) <= \$8::numeric/);
  });

  it("says why a value cannot match its column's type, and lets through those that can", () => {
    const columns: Record<string, MetadataColumn> = {
      price: { name: 'price', type: 'numeric(10,2)', typname: 'numeric', category: 'N' },
      stock: { name: 'stock', type: 'integer', typname: 'int4', category: 'N' },
      in_stock: { name: 'in_stock', type: 'boolean', typname: 'bool', category: 'B' },
      category: {
        name: 'category',
        type: 'character varying(40)',
        typname: 'varchar',
        category: 'S',
      },
      cost: { name: 'cost', type: 'money', typname: 'money', category: 'N' },
      added: { name: 'added', type: 'date', typname: 'date', category: 'D' },
    };
    const problem = (text: string): string | undefined => {
      const f = parseFilter(text);
      const column = columns[f.key];
      assert.ok(column, f.key);
      return filterTypeProblem(f, column, 'public.products');
    };
    assert.equal(
      problem('price<=abc'),
      'price is numeric in public.products; "abc" is not a number',
    );
    assert.equal(
      problem('price="150"'),
      'price is numeric in public.products; "150" is not a number',
    );
    assert.equal(
      problem('stock in 1,2,many'),
      'stock is integer in public.products; "many" is not a number',
    );
    assert.equal(
      problem('price=true'),
      'price is numeric in public.products; true is not a number',
    );
    assert.equal(
      problem('in_stock=yes'),
      'in_stock is boolean in public.products; "yes" is not true or false',
    );
    assert.equal(
      problem('category=123'),
      'category is character varying in public.products; quote 123 to compare it as text ("123")',
    );
    const fines = [
      'price<=150',
      'price!=9.5',
      'stock in 1,2',
      'in_stock=false',
      'category=outdoor',
      'category="123"',
    ];
    for (const fine of [...fines, 'cost="$5.00"', 'added>2024-01-01']) {
      assert.equal(problem(fine), undefined, fine);
    }
  });
});
