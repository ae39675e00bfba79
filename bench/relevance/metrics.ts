// Ranking metrics for the relevance benchmark, pure: a ranked list of row ids and the graded labels
// of one query in, a number from 0 to 1 out.

/** A query's labels: row id → grade (2 what was asked for, 1 acceptable); unlisted rows are 0. */
export type Grades = ReadonlyMap<number, number>;

function checkRanking(ranked: readonly number[], k: number): void {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`k must be a positive integer, not ${k}`);
  // A row counted twice would inflate both metrics; search returns each row once.
  if (new Set(ranked).size !== ranked.length)
    throw new RangeError(`the ranking lists a row twice: ${ranked.join(', ')}`);
}

function relevantCount(grades: Grades): number {
  const n = [...grades.values()].filter((g) => g > 0).length;
  if (n === 0) throw new RangeError('a query needs at least one relevant row to be scored');
  return n;
}

/**
 * The share of the query's relevant rows (any grade above 0) found in the first k, out of at most k:
 * a query with more relevant rows than k scores 1 when the first k are all relevant (the "capped"
 * recall), so every query can reach 1.
 */
export function recallAt(ranked: readonly number[], grades: Grades, k: number): number {
  checkRanking(ranked, k);
  const found = ranked.slice(0, k).filter((id) => (grades.get(id) ?? 0) > 0).length;
  return found / Math.min(k, relevantCount(grades));
}

/** Gain of a grade: 2^grade − 1, so a grade-2 row is worth three grade-1 rows. */
const gain = (grade: number): number => 2 ** grade - 1;

/** Discounted cumulative gain of the first k: gain / log2(rank + 1), ranks from 1. */
export function dcgAt(gradesInOrder: readonly number[], k: number): number {
  return gradesInOrder.slice(0, k).reduce((sum, g, i) => sum + gain(g) / Math.log2(i + 2), 0);
}

/** DCG of the first k over the DCG of the best possible order of the query's labelled rows. */
export function ndcgAt(ranked: readonly number[], grades: Grades, k: number): number {
  checkRanking(ranked, k);
  relevantCount(grades);
  const ideal = [...grades.values()].sort((a, b) => b - a);
  return (
    dcgAt(
      ranked.map((id) => grades.get(id) ?? 0),
      k,
    ) / dcgAt(ideal, k)
  );
}

/** The mean of per-query scores (NaN for none, so an empty run cannot pass for a perfect one). */
export const mean = (values: readonly number[]): number =>
  values.length ? values.reduce((s, v) => s + v, 0) / values.length : Number.NaN;
