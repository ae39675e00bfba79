// search(): a text query against one pipeline, embedded with that pipeline's own model, answered by
// its vector table's HNSW index, optionally narrowed by metadata filters.
import { toSql } from 'pgvector';
import { canonicalJson } from '../config/pipeline.js';
import { getPipeline, resolvePipeline, type Pipeline } from '../db/catalog.js';
import type { Pool, PoolClient } from '../db/pool.js';
import { getProvider, type ProviderRegistry } from '../providers/types.js';
import { checkFilterKeys, type MetadataFilter } from './filters.js';
import { hasIterativeScan, nearestChunks, setIndexOptions, type SearchHit } from './query.js';
import { candidatesFor, rerankConfigOf, rerankHits } from './rerank.js';

export interface SearchOptions {
  /** Results wanted (default 10, at most 1,000). */
  limit?: number;
  /** All must hold. */
  filters?: readonly MetadataFilter[];
  /**
   * Default true: one result per source row, its best-matching chunk, which is what a reader of
   * "the 5 nearest products" means. False returns chunks, several of one row possibly.
   */
  bestChunkPerRow?: boolean;
  /**
   * Reorder the nearest candidates with the pipeline's rerank model (its `rerank` config) before
   * the limit applies; each hit then carries `rerankScore`.
   */
  rerank?: boolean;
}

export class SearchError extends Error {
  override name = 'SearchError';
}

const MAX_LIMIT = 1000;
// Chunks asked of the index per row wanted when collapsing; doubled while rows with several
// matching chunks leave fewer than `limit` distinct rows.
const FIRST_OVERFETCH = 4;
const MAX_CANDIDATES = 20_000;
// A re-embed that swaps generations mid-search means the query must be embedded again; twice in a
// row is not worth chasing.
const ATTEMPTS = 3;

export async function search(
  pool: Pool,
  providers: ProviderRegistry,
  pipeline: Pipeline | string,
  text: string,
  options: SearchOptions = {},
): Promise<SearchHit[]> {
  const limit = options.limit ?? 10;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT)
    throw new SearchError(`limit must be a whole number from 1 to ${MAX_LIMIT}`);
  if (text.trim() === '') throw new SearchError('the search text must not be empty');
  const filters = options.filters ?? [];
  const bestChunkPerRow = options.bestChunkPerRow ?? true;
  let p = typeof pipeline === 'string' ? await resolvePipeline(pool, pipeline) : pipeline;
  if (options.rerank) {
    // Candidates are gathered as any search's, then reordered and cut to the limit (decision 28).
    const candidates = candidatesFor(rerankConfigOf(p), limit);
    const hits = await search(pool, providers, p, text, {
      ...options,
      rerank: false,
      limit: candidates,
    });
    return rerankHits(providers, p, text, hits, limit);
  }

  for (let attempt = 1; ; attempt += 1) {
    checkFilterKeys(filters, p.config.metadata, p.name);
    const vector = await embedQuery(providers, p, text);
    const client = await pool.connect();
    try {
      await client.query('begin');
      // Shares the lock writers take; a swap takes it for update before renaming tables, so the
      // vector table read below is the one of this generation, with this model's dimensions.
      const live = await getPipeline(client, p.name, 'for share');
      if (live.generation === p.generation && sameEmbedding(live, p)) {
        const hits = await nearest(client, live, { vector, filters, limit, bestChunkPerRow });
        await client.query('commit');
        return hits;
      }
      await client.query('rollback');
      if (attempt >= ATTEMPTS)
        throw new SearchError(`pipeline ${p.name} changed generation during the search; try again`);
      p = live;
    } catch (err) {
      await client.query('rollback').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }
}

async function embedQuery(providers: ProviderRegistry, p: Pipeline, text: string): Promise<string> {
  const embedding = p.config.embedding;
  const provider = getProvider(providers, embedding.provider);
  // 'query' lets models trained with separate query and document inputs (Cohere's search_query) use
  // them.
  const { vectors } = await provider.embed({
    model: embedding.model,
    dimensions: embedding.dimensions,
    inputType: 'query',
    texts: [text],
    embedding,
  });
  const vector = vectors[0];
  if (!vector || vector.length !== embedding.dimensions) {
    throw new SearchError(
      `${embedding.provider} returned a vector of ${vector?.length ?? 0} dimensions for ${embedding.model}; the pipeline stores ${embedding.dimensions}`,
    );
  }
  return toSql(vector) as string;
}

const sameEmbedding = (a: Pipeline, b: Pipeline): boolean =>
  a.config.vectorType === b.config.vectorType &&
  canonicalJson(a.config.embedding) === canonicalJson(b.config.embedding);

async function nearest(
  client: PoolClient,
  p: Pipeline,
  q: {
    vector: string;
    filters: readonly MetadataFilter[];
    limit: number;
    bestChunkPerRow: boolean;
  },
): Promise<SearchHit[]> {
  const iterative = await hasIterativeScan(client);
  let candidates = q.bestChunkPerRow ? q.limit * FIRST_OVERFETCH : q.limit;
  for (;;) {
    await setIndexOptions(client, candidates, iterative);
    const { hits, candidatesFound } = await nearestChunks(client, p, { ...q, candidates });
    // Fewer rows than asked only matters if the index had more chunks to give.
    if (hits.length >= q.limit || candidatesFound < candidates || candidates >= MAX_CANDIDATES)
      return hits;
    candidates = Math.min(MAX_CANDIDATES, candidates * 2);
  }
}
