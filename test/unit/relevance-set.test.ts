// The labelled relevance set in bench/relevance/: every label points at a row that exists, every
// query can be scored, nothing is listed twice; and the checks catch a set that breaks those.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  gradesOf,
  readRelevanceSet,
  setProblems,
  type RelevanceSet,
} from '../../bench/relevance/set.js';

const tiny = (): RelevanceSet => ({
  products: [
    {
      id: 1,
      name: 'Down Parka',
      description: 'Warm.',
      category: 'outdoor',
      price: 9,
      in_stock: true,
    },
    {
      id: 2,
      name: 'Woodworking',
      description: 'Book.',
      category: 'books',
      price: 9,
      in_stock: true,
    },
  ],
  queries: [{ id: 'q1', text: 'warm coat', relevant: [1], partial: [], traps: [2] }],
});

describe('relevance set', () => {
  it('the committed set is whole: a few hundred rows, 40 queries, no problems', async () => {
    const set = await readRelevanceSet();
    assert.deepEqual(setProblems(set), []);
    assert.ok(set.products.length >= 250 && set.products.length <= 400, `${set.products.length}`);
    assert.equal(set.queries.length, 40);
    // Near-misses are part of the point: most queries carry keyword traps.
    assert.ok(set.queries.filter((q) => q.traps.length > 0).length >= 35);
  });

  it('grades are 2 for relevant rows, 1 for partial ones, and traps are not graded', async () => {
    const set = await readRelevanceSet();
    const q = set.queries[0];
    assert.ok(q);
    const grades = gradesOf(q);
    for (const id of q.relevant) assert.equal(grades.get(id), 2);
    for (const id of q.partial) assert.equal(grades.get(id), 1);
    for (const id of q.traps) assert.equal(grades.get(id), undefined);
  });

  it('a well-formed small set has no problems', () => {
    assert.deepEqual(setProblems(tiny()), []);
  });

  it('names a label that points at a missing row', () => {
    const set = tiny();
    set.queries[0]?.partial.push(7);
    assert.deepEqual(setProblems(set), ['query q1 labels row 7, which does not exist']);
  });

  it('names a query with nothing relevant', () => {
    const set = tiny();
    if (set.queries[0]) set.queries[0].relevant = [];
    assert.deepEqual(setProblems(set), ['query q1 has no relevant row']);
  });

  it('names duplicates: a product id, a product, a query id, a query text, a row labelled twice', () => {
    const set = tiny();
    const [first] = set.products;
    assert.ok(first);
    set.products.push({ ...first }, { ...first, id: 3 });
    set.queries.push({ id: 'q1', text: 'Warm coat ', relevant: [1], partial: [], traps: [1] });
    assert.deepEqual(setProblems(set), [
      'product id 1 is used twice',
      'product "Down Parka" is written twice',
      'query id q1 is used twice',
      'query "warm coat" is asked twice',
      'query q1 labels row 1 twice',
    ]);
  });
});
