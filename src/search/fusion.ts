// Reciprocal rank fusion (pure): two ranked lists, the vector search's and the full-text search's,
// become one (docs/architecture.md, decision 27). Each list contributes weight / (k + rank) for
// every item it holds; an item a list does not hold gets nothing from it. Ranks, not scores, are
// fused: cosine distances and ts_rank_cd values are on scales that cannot be added.

export interface FusionWeights {
  /** Weight of the vector ranking (default 1). */
  vectorWeight: number;
  /** Weight of the full-text ranking (default 1). */
  textWeight: number;
  /** Rank constant (default 60, as in Cormack et al.): larger flattens the head of each list. */
  k: number;
}

export const DEFAULT_FUSION: FusionWeights = { vectorWeight: 1, textWeight: 1, k: 60 };

export interface FusedRank {
  key: string;
  score: number;
  /** 1-based; null when the vector list does not hold the key. */
  vectorRank: number | null;
  /** 1-based; null when the full-text list does not hold the key. */
  textRank: number | null;
}

/** One list's share of an item's fused score: weight / (k + rank), nothing without a rank. */
export const rrfTerm = (rank: number | null, weight: number, k: number): number =>
  rank === null ? 0 : weight / (k + rank);

/** The fused score of an item at these ranks. */
export const rrfScore = (
  vectorRank: number | null,
  textRank: number | null,
  w: FusionWeights,
): number => rrfTerm(vectorRank, w.vectorWeight, w.k) + rrfTerm(textRank, w.textWeight, w.k);

/**
 * Fuses two rankings (keys best first; a key repeated keeps its first rank), best first. Ties are
 * broken by the better rank on either side, then the vector rank, then the key, so equal inputs
 * always give the same order.
 */
export function fuseRankings(
  vectorKeys: readonly string[],
  textKeys: readonly string[],
  w: FusionWeights = DEFAULT_FUSION,
): FusedRank[] {
  const vectorRank = firstRanks(vectorKeys);
  const textRank = firstRanks(textKeys);
  const keys = [...new Set([...vectorRank.keys(), ...textRank.keys()])];
  const fused = keys.map((key) => {
    const v = vectorRank.get(key) ?? null;
    const t = textRank.get(key) ?? null;
    return { key, score: rrfScore(v, t, w), vectorRank: v, textRank: t };
  });
  const bestRank = (f: FusedRank): number =>
    Math.min(f.vectorRank ?? Infinity, f.textRank ?? Infinity);
  return fused.sort(
    (a, b) =>
      b.score - a.score ||
      bestRank(a) - bestRank(b) ||
      (a.vectorRank ?? Infinity) - (b.vectorRank ?? Infinity) ||
      (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
  );
}

function firstRanks(keys: readonly string[]): Map<string, number> {
  const ranks = new Map<string, number>();
  keys.forEach((key, i) => {
    if (!ranks.has(key)) ranks.set(key, i + 1);
  });
  return ranks;
}

export class FusionError extends Error {
  override name = 'FusionError';
}

/** The weights a caller asked for, checked: finite, not negative, not both zero; k positive. */
export function fusionWeights(asked: Partial<FusionWeights> = {}): FusionWeights {
  const w = {
    vectorWeight: asked.vectorWeight ?? DEFAULT_FUSION.vectorWeight,
    textWeight: asked.textWeight ?? DEFAULT_FUSION.textWeight,
    k: asked.k ?? DEFAULT_FUSION.k,
  };
  for (const name of ['vectorWeight', 'textWeight'] as const) {
    if (!Number.isFinite(w[name]) || w[name] < 0)
      throw new FusionError(`${name} must be a number of 0 or more (got ${w[name]})`);
  }
  if (w.vectorWeight === 0 && w.textWeight === 0)
    throw new FusionError('vectorWeight and textWeight must not both be 0');
  if (!Number.isFinite(w.k) || w.k <= 0)
    throw new FusionError(`k must be a number greater than 0 (got ${w.k})`);
  return w;
}
