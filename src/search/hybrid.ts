// Hybrid retrieval (docs/architecture.md, decision 27): a pool of the nearest rows and a pool of the
// best full-text matches, each larger than the results wanted, fused by weighted reciprocal rank
// fusion (fusion.ts) into one list of candidates, best first.
import type { Pipeline } from '../db/catalog.js';
import type { PoolClient } from '../db/pool.js';
import type { MetadataFilter } from './filters.js';
import { fuseRankings, type FusionWeights } from './fusion.js';
import { nearestHits, type SearchHit } from './query.js';
import { textMatches, type TextMatch } from './text.js';

export interface HybridQuery {
  text: string;
  vector: string;
  filters: readonly MetadataFilter[];
  limit: number;
  bestChunkPerRow: boolean;
}

// Each side's pool: five times the results wanted, at least 50, so an item ranked modestly by both
// sides can still rise to the top; at most 1,000, pgvector's ef_search ceiling.
const POOL_FACTOR = 5;
const MIN_POOL = 50;
const MAX_POOL = 1000;

export const candidatePool = (limit: number): number =>
  Math.min(MAX_POOL, Math.max(MIN_POOL, limit * POOL_FACTOR, limit));

/**
 * Every fused candidate, best first (the caller applies the limit). A side whose weight is 0 still
 * reports its ranks, but brings no result of its own.
 */
export async function hybridCandidates(
  client: PoolClient,
  p: Pipeline,
  q: HybridQuery,
  weights: FusionWeights,
): Promise<SearchHit[]> {
  const pool = candidatePool(q.limit);
  const vectorHits = await nearestHits(client, p, { ...q, limit: pool });
  const textHits = await textMatches(client, p, { ...q, limit: pool });
  const key = (h: { pk: string; chunkIndex: number }): string =>
    q.bestChunkPerRow ? h.pk : JSON.stringify([h.pk, h.chunkIndex]);
  const byVector = new Map(vectorHits.map((h) => [key(h), h]));
  const byText = new Map(textHits.map((m) => [key(m), m]));
  return fuseRankings(vectorHits.map(key), textHits.map(key), weights)
    .filter((f) => f.score > 0)
    .map((f) => {
      const text = byText.get(f.key);
      // A row both sides found shows the vector side's chunk, whose distance `score` is.
      const hit = byVector.get(f.key) ?? fromText(text as TextMatch);
      return {
        ...hit,
        fusedScore: f.score,
        vectorRank: f.vectorRank,
        vectorDistance: 1 - hit.score,
        textRank: f.textRank,
        textScore: text?.textScore ?? null,
      };
    });
}

const fromText = (m: TextMatch): SearchHit => ({
  score: 1 - m.distance,
  pk: m.pk,
  chunkIndex: m.chunkIndex,
  chunk: m.chunk,
  metadata: m.metadata,
});
