// The nearest-neighbour query on a pipeline's vector table, and the index settings it runs under.
import { embedColumns } from '../config/pipeline.js';
import type { Pipeline } from '../db/catalog.js';
import { writeTarget } from '../db/destination.js';
import { qualified, quoteIdent, quoteLiteral } from '../db/ident.js';
import { keyText } from '../db/source.js';
import type { PoolClient } from '../db/pool.js';
import { vectorColumnSql } from '../capture/vector-table.js';
import { clearsOnChange, staleKeyFilter } from '../db/stale-keys.js';
import { filterSql, type MetadataFilter } from './filters.js';

export interface SearchHit {
  /** 1 − cosine distance: 1 is the same direction, 0 unrelated. */
  score: number;
  /**
   * The source row's primary key as the vector table keeps it (JSON array text for composite keys).
   */
  pk: string;
  chunkIndex: number;
  chunk: string;
  metadata: Record<string, unknown>;
  /** The rerank model's relevance score, when the search was reranked (it decides the order). */
  rerankScore?: number;
  /**
   * Hybrid search only (decision 27): what the results are ordered by, the weighted reciprocal rank
   * fusion of the vector and full-text rankings. `score` stays the cosine similarity.
   */
  fusedScore?: number;
  /** Hybrid search only: 1-based rank among the vector candidates; null when not among them. */
  vectorRank?: number | null;
  /** Hybrid search only: the chunk's cosine distance to the query (1 − score). */
  vectorDistance?: number;
  /** Hybrid search only: 1-based rank among the full-text matches; null when the text does not match. */
  textRank?: number | null;
  /** Hybrid search only: ts_rank_cd of the row's best-matching chunk; null when none matches. */
  textScore?: number | null;
}

export interface NearestQuery {
  vector: string;
  filters: readonly MetadataFilter[];
  /** Chunks the index is asked for. */
  candidates: number;
  /** Rows returned. */
  limit: number;
  /** Keep only the best chunk of each source row. */
  bestChunkPerRow: boolean;
}

/** pgvector caps ef_search at 1,000; its default, 40, is also the fewest worth asking for. */
const efSearch = (candidates: number): number => Math.min(1000, Math.max(40, candidates));

/**
 * Iterative scans (pgvector 0.8) let a filtered HNSW search keep walking the graph until it has
 * enough matching rows, instead of filtering the first ef_search and returning fewer than asked.
 * relaxed_order may return neighbours slightly out of order, so the outer query sorts again.
 */
export async function setIndexOptions(
  client: PoolClient,
  candidates: number,
  iterative: boolean,
): Promise<void> {
  await client.query(`select set_config('hnsw.ef_search', $1, true)`, [
    String(efSearch(candidates)),
  ]);
  if (iterative)
    await client.query(`select set_config('hnsw.iterative_scan', 'relaxed_order', true)`);
}

/** Whether the installed pgvector has iterative index scans (0.8 and later). */
export async function hasIterativeScan(client: PoolClient): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>(
    `select coalesce(string_to_array(extversion, '.')::int[] >= '{0,8}', false) as ok from pg_extension where extname = 'vector'`,
  );
  return rows[0]?.ok ?? false;
}

/**
 * The nearest chunks, and how many candidates the index gave (fewer than asked: it has no more).
 */
export async function nearestChunks(
  client: PoolClient,
  p: Pipeline,
  q: NearestQuery,
): Promise<{ hits: SearchHit[]; candidatesFound: number }> {
  if (writeTarget(p)) return nearestRows(client, p, q);
  const table = qualified(p.vectorSchema, p.vectorTable);
  const filters = filterSql(q.filters, 5);
  // With clear, a row whose content changed is not found by its old vectors (decision 19).
  const fresh = clearsOnChange(p.config) ? [staleKeyFilter(p, 'v')] : [];
  const where = ['generation = $2', ...filters.conditions, ...fresh].join(' and ');
  // Materialized, so the planner cannot fold the outer sort into the index scan.
  const best = q.bestChunkPerRow
    ? 'select distinct on (pk) * from candidates order by pk, distance'
    : 'select * from candidates';
  const { rows } = await client.query<{
    distance: number;
    pk: string;
    chunk_index: number;
    chunk: string;
    metadata: Record<string, unknown>;
    found: number;
  }>(
    `with candidates as materialized (
       select pk, chunk_index, chunk, metadata, embedding <=> $1::${vectorColumnSql(p)} as distance
         from ${table} v
        where ${where}
        order by embedding <=> $1::${vectorColumnSql(p)}
        limit $3)
     select hits.*, (select count(*)::int from candidates) as found
       from (${best}) hits order by distance, pk, chunk_index limit $4`,
    [q.vector, p.generation, q.candidates, q.limit, ...filters.params],
  );
  const hits = rows.map((r) => ({
    score: 1 - Number(r.distance),
    pk: r.pk,
    chunkIndex: r.chunk_index,
    chunk: r.chunk,
    metadata: r.metadata,
  }));
  return { hits, candidatesFound: rows[0]?.found ?? 0 };
}

/**
 * A column pipeline's nearest rows (docs/architecture.md, decision 18): the source table's own
 * column, through its own index if it has one; each row is one chunk, its text the document as
 * embedded (before any cut).
 */
async function nearestRows(
  client: PoolClient,
  p: Pipeline,
  q: NearestQuery,
): Promise<{ hits: SearchHit[]; candidatesFound: number }> {
  const column = `s.${quoteIdent(writeTarget(p)?.column ?? '')}`;
  const parts = embedColumns(p.config).map((c) => {
    const value = `s.${quoteIdent(c.column)}::text`;
    return `case when btrim(${value}) <> '' then ${quoteLiteral(c.prefix)} || ${value} end`;
  });
  const document = `concat_ws(${quoteLiteral(p.config.embed.separator)}, ${parts.join(', ')})`;
  const { rows } = await client.query<{
    distance: number;
    pk: string;
    chunk: string;
    found: number;
  }>(
    `with candidates as materialized (
       select ${keyText(p, 's')} as pk, ${document} as chunk,
              ${column} <=> $1::${vectorColumnSql(p)} as distance
         from ${qualified(p.sourceSchema, p.sourceTable)} s
        where ${column} is not null
        order by ${column} <=> $1::${vectorColumnSql(p)}
        limit $2)
     select c.*, (select count(*)::int from candidates) as found
       from candidates c order by distance, pk limit $3`,
    [q.vector, q.candidates, q.limit],
  );
  const hits = rows.map((r) => ({
    score: 1 - Number(r.distance),
    pk: r.pk,
    chunkIndex: 0,
    chunk: r.chunk,
    metadata: {},
  }));
  return { hits, candidatesFound: rows[0]?.found ?? 0 };
}

// Chunks asked of the index per row wanted when collapsing; doubled while rows with several
// matching chunks leave fewer than `limit` distinct rows.
const FIRST_OVERFETCH = 4;
const MAX_CANDIDATES = 20_000;

/** The nearest rows (or chunks), asking the index for more while collapsing leaves too few. */
export async function nearestHits(
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
