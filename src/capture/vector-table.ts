// The vector table of a pipeline, its HNSW index and the view that joins it back to the source.
import type { Pipeline } from '../db/catalog.js';
import { qualified, quoteIdent } from '../db/ident.js';
import { keyMatches } from '../db/source.js';

export const vectorColumnSql = (p: Pick<Pipeline, 'config'>): string => `${p.config.vectorType}(${p.config.embedding.dimensions})`;

export const viewName = (p: Pick<Pipeline, 'vectorTable'>): string => `${p.vectorTable}_view`;

const VIEW_COLUMNS = ['chunk_index', 'chunk', 'embedding', 'embedded_at'];

export function createVectorTableSql(p: Pipeline, sourceColumns: readonly string[]): string[] {
  const table = qualified(p.vectorSchema, p.vectorTable);
  const ops = p.config.vectorType === 'halfvec' ? 'halfvec_cosine_ops' : 'vector_cosine_ops';
  // The view names the source row's columns after the chunk's; a clashing source column is left to s.*.
  const sourceCols = sourceColumns.filter((c) => !VIEW_COLUMNS.includes(c)).map((c) => `s.${quoteIdent(c)}`);
  return [
    `create table if not exists ${table} (
       pk           text not null,
       chunk_index  integer not null,
       embedding    ${vectorColumnSql(p)} not null,
       chunk        text not null,
       metadata     jsonb not null default '{}',
       content_hash text not null,
       generation   integer not null,
       embedded_at  timestamptz not null default now(),
       primary key (pk, chunk_index))`,
    `create index if not exists ${quoteIdent(`${p.vectorTable}_hnsw`)} on ${table} using hnsw (embedding ${ops})`,
    // Dropped and made again: source columns may have been added since it was last made.
    `drop view if exists ${qualified(p.vectorSchema, viewName(p))}`,
    `create view ${qualified(p.vectorSchema, viewName(p))} as
       select v.chunk_index, v.chunk, v.embedding, v.embedded_at, ${sourceCols.join(', ')}
         from ${table} v
         join ${qualified(p.sourceSchema, p.sourceTable)} s on ${keyMatches(p, 's', 'v.pk')}`,
  ];
}
