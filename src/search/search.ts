// search(): a text query against one pipeline, embedded with that pipeline's own model, answered by
// its vector table's HNSW index, optionally narrowed by metadata filters, optionally fused with a
// full-text search of the chunks (hybrid, decision 27).
import { toSql } from 'pgvector';
import { canonicalJson, destinationColumn } from '../config/pipeline.js';
import { getPipeline, resolvePipeline, type Pipeline } from '../db/catalog.js';
import type { Pool } from '../db/pool.js';
import { getProvider, type ProviderRegistry } from '../providers/types.js';
import { checkFilterKeys, type MetadataFilter } from './filters.js';
import { FusionError, fusionWeights, type FusionWeights } from './fusion.js';
import { hybridCandidates } from './hybrid.js';
import { nearestHits, type SearchHit } from './query.js';
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
  /**
   * Fuse the vector results with a full-text search of the chunks (the pipeline's search.language)
   * by reciprocal rank fusion: true for equal weights and k = 60, or the weights (0 or more) and k.
   * Vector-table pipelines only: a column pipeline keeps no chunk text.
   */
  hybrid?: boolean | { vectorWeight?: number; textWeight?: number; k?: number };
}

export class SearchError extends Error {
  override name = 'SearchError';
}

const MAX_LIMIT = 1000;
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
  const fusion = hybridWeights(p, options.hybrid);

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
        const q = { vector, filters, limit, bestChunkPerRow };
        const hits = fusion
          ? (await hybridCandidates(client, live, { ...q, text }, fusion)).slice(0, limit)
          : await nearestHits(client, live, q);
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

/** The fusion weights a hybrid search asked for, or undefined for a vector search. */
function hybridWeights(p: Pipeline, hybrid: SearchOptions['hybrid']): FusionWeights | undefined {
  if (!hybrid) return undefined;
  const column = destinationColumn(p.config);
  if (column !== undefined)
    throw new SearchError(
      `pipeline ${p.name} keeps its vectors in the column ${column} of ${p.sourceSchema}.${p.sourceTable} and no chunk text, so it has no full-text side: search it without hybrid`,
    );
  try {
    return fusionWeights(hybrid === true ? {} : hybrid);
  } catch (err) {
    throw err instanceof FusionError ? new SearchError(`hybrid: ${err.message}`) : err;
  }
}
