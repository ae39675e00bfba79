// The full-text side of hybrid search (docs/architecture.md, decision 27): the chunks of a
// pipeline's vector table that contain any of the query's words, those matching the whole query
// first, then by ts_rank_cd; under the same generation, metadata filters and stale-key rule as the
// vector side.
import type { Pipeline } from '../db/catalog.js';
import { qualified, quoteLiteral } from '../db/ident.js';
import type { PoolClient } from '../db/pool.js';
import { textSearchLanguage } from '../config/pipeline.js';
import { chunkVectorSql } from '../capture/text-index.js';
import { vectorColumnSql } from '../capture/vector-table.js';
import { clearsOnChange, staleKeyFilter } from '../db/stale-keys.js';
import { filterSql, type MetadataFilter } from './filters.js';

export interface TextQuery {
  text: string;
  /** The query's vector, so every match also has its cosine distance. */
  vector: string;
  filters: readonly MetadataFilter[];
  /** Rows (or chunks) returned, best first. */
  limit: number;
  bestChunkPerRow: boolean;
}

export interface TextMatch {
  pk: string;
  chunkIndex: number;
  chunk: string;
  metadata: Record<string, unknown>;
  /** ts_rank_cd of the chunk for the query's words. */
  textScore: number;
  distance: number;
}

/**
 * The statement and its parameters; the tests EXPLAIN it. The configuration is written as a literal
 * (it was checked against pg_ts_config at apply): the GIN index is on that exact expression.
 */
export function textMatchSql(p: Pipeline, q: TextQuery): { sql: string; params: unknown[] } {
  const table = qualified(p.vectorSchema, p.vectorTable);
  const language = `${quoteLiteral(textSearchLanguage(p.config))}::regconfig`;
  const filters = filterSql(q.filters, 5);
  // With clear, a row whose content changed is not found by its old chunks (decision 19).
  const fresh = clearsOnChange(p.config) ? [staleKeyFilter(p, 'v')] : [];
  // Matched: any of the query's words as the configuration normalises them (each lexeme quoted for
  // tsquery's input), so a row with the one rare word a query names is found though it lacks the
  // others. Ranked: rows that match the whole query as websearch_to_tsquery reads it ("a phrase",
  // -word, or) first, then by ts_rank_cd.
  const anyWord = `(select string_agg('''' || replace(replace(lexeme, '\\', '\\\\'), '''', '''''') || '''', ' | ')::tsquery
                      from unnest(to_tsvector(${language}, $3)))`;
  const everyWord = `websearch_to_tsquery(${language}, $3)`;
  const chunkVector = chunkVectorSql(p, 'v');
  const where = [
    'v.generation = $2',
    `${chunkVector} @@ ${anyWord}`,
    ...filters.conditions,
    ...fresh,
  ].join(' and ');
  const best = q.bestChunkPerRow
    ? 'select distinct on (pk) * from ranked order by pk, whole desc, rank desc, chunk_index'
    : 'select * from ranked';
  const order = 'whole desc, rank desc, pk, chunk_index';
  // The index finds the matches; each match's tsvector is then computed once (the index holds
  // lexemes, not the tsvector) and both rankings read it. The distance is computed only for the rows
  // returned, after the limit, by their primary key.
  const sql = `with matches as materialized (
       select v.pk, v.chunk_index, v.chunk, v.metadata, ${chunkVector} as words
         from ${table} v
        where ${where}),
     ranked as (
       select pk, chunk_index, chunk, metadata, words @@ ${everyWord} as whole,
              ts_rank_cd(words, ${anyWord}) as rank
         from matches)
     select best.pk, best.chunk_index, best.chunk, best.metadata, best.rank,
            (select w.embedding <=> $1::${vectorColumnSql(p)} from ${table} w
              where w.pk = best.pk and w.chunk_index = best.chunk_index) as distance
       from (select * from (${best}) b order by ${order} limit $4) best
      order by ${order}`;
  return { sql, params: [q.vector, p.generation, q.text, q.limit, ...filters.params] };
}

export async function textMatches(
  client: PoolClient,
  p: Pipeline,
  q: TextQuery,
): Promise<TextMatch[]> {
  const { sql, params } = textMatchSql(p, q);
  const { rows } = await client.query<{
    pk: string;
    chunk_index: number;
    chunk: string;
    metadata: Record<string, unknown>;
    rank: number;
    distance: number;
  }>(sql, params);
  return rows.map((r) => ({
    pk: r.pk,
    chunkIndex: r.chunk_index,
    chunk: r.chunk,
    metadata: r.metadata,
    textScore: Number(r.rank),
    distance: Number(r.distance),
  }));
}
