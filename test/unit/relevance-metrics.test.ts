// The relevance benchmark's metrics against rankings worked out by hand.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dcgAt, mean, ndcgAt, recallAt } from '../../bench/relevance/metrics.js';

const close = (actual: number, expected: number): void =>
  assert.ok(Math.abs(actual - expected) < 1e-9, `${actual} ≈ ${expected}`);

// Row 1 is what was asked for (grade 2), rows 2 and 3 are acceptable (grade 1).
const grades = new Map([
  [1, 2],
  [2, 1],
  [3, 1],
]);

describe('relevance metrics', () => {
  it('recall@k counts relevant rows of any grade in the first k', () => {
    // 9, 1, 3 | 8, 2: two of the three relevant rows in the first 3.
    close(recallAt([9, 1, 3, 8, 2], grades, 3), 2 / 3);
    close(recallAt([9, 1, 3, 8, 2], grades, 5), 1);
    close(recallAt([9, 8, 7], grades, 3), 0);
  });

  it('recall@k is capped at k, so a query with more relevant rows than k can reach 1', () => {
    // Three relevant rows, k = 2: both of the first two relevant is a perfect score, one is half.
    close(recallAt([2, 3, 1], grades, 2), 1);
    close(recallAt([2, 9, 1], grades, 2), 1 / 2);
  });

  it('DCG uses 2^grade − 1 gains discounted by log2(rank + 1)', () => {
    // Grades 2, 0, 1: 3/1 + 0/log2(3) + 1/2.
    close(dcgAt([2, 0, 1], 3), 3.5);
    // Only the first k count.
    close(dcgAt([2, 0, 1], 1), 3);
  });

  it('nDCG@k is 1 for the ideal order and lower for a worse one', () => {
    close(ndcgAt([1, 2, 3], grades, 10), 1);
    close(ndcgAt([1, 3, 2, 9], grades, 10), 1); // equal grades may swap
    // 9, 1, 3, 8, 2: DCG = 3/log2(3) + 1/log2(4) + 1/log2(6) = 1.8928 + 0.5 + 0.3869 = 2.7796;
    // ideal 2, 1, 1: 3/1 + 1/log2(3) + 1/log2(4) = 3 + 0.6309 + 0.5 = 4.1309; ratio 0.6729.
    const expected = (3 / Math.log2(3) + 1 / 2 + 1 / Math.log2(6)) / (3 + 1 / Math.log2(3) + 1 / 2);
    close(ndcgAt([9, 1, 3, 8, 2], grades, 10), expected);
    assert.ok(Math.abs(expected - 0.6729) < 1e-4);
  });

  it('nDCG@k with a small k compares against the best k rows only', () => {
    // k = 1: row 2 (grade 1) first scores 1/3 of row 1 (grade 2) first.
    close(ndcgAt([2, 1], grades, 1), 1 / 3);
    close(ndcgAt([1], grades, 1), 1);
    close(ndcgAt([9, 8], grades, 2), 0);
  });

  it('refuses a ranking with a row twice, a k below 1, and a query with nothing relevant', () => {
    assert.throws(() => recallAt([1, 1], grades, 2), /twice/);
    assert.throws(() => ndcgAt([1, 2], grades, 0), /positive integer/);
    assert.throws(() => recallAt([1], new Map([[1, 0]]), 1), /at least one relevant/);
    assert.throws(() => ndcgAt([1], new Map(), 1), /at least one relevant/);
  });

  it('the mean of no scores is NaN, not a perfect score', () => {
    assert.ok(Number.isNaN(mean([])));
    close(mean([1, 0, 0.5]), 0.5);
  });
});
