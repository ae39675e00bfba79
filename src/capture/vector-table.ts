// The vector table of a pipeline, its HNSW index and the view that joins it back to the source. A
// column pipeline's table is its record (decision 18): no vector, no index, no view.
import { destinationColumn } from '../config/pipeline.js';
import type { Pipeline } from '../db/catalog.js';
import { qualified, quoteIdent } from '../db/ident.js';
import { keyMatches } from '../db/source.js';
import { clearsOnChange, staleKeyFilter } from '../db/stale-keys.js';
import { watchedColumns } from './triggers.js';

export const vectorColumnSql = (p: Pick<Pipeline, 'config'>): string =>
  `${p.config.vectorType}(${p.config.embedding.dimensions})`;

export const viewName = (p: Pick<Pipeline, 'vectorTable'>): string => `${p.vectorTable}_view`;

/** Index names follow the table's, so a swap can rename them along with it. */
export const pkeyName = (table: string): string => `${table}_pkey`;
export const hnswName = (table: string): string => `${table}_hnsw`;

const VIEW_COLUMNS = ['chunk_index', 'chunk', 'embedding', 'embedded_at'];

type VectorTableOf = Pick<Pipeline, 'vectorSchema' | 'vectorTable' | 'config'>;

/**
 * A column pipeline's record of what was embedded in its column: what readEmbeddedHeads, verify,
 * status and deletes read by key and hash, with no vector (that is in the source row) and no chunk
 * text. `truncated`: the row's text was cut to the model's limit (destination.truncate).
 */
function createRecordTableSql(p: VectorTableOf): string[] {
  return [
    `create table if not exists ${qualified(p.vectorSchema, p.vectorTable)} (
       pk           text not null,
       chunk_index  integer not null default 0,
       chunk        text,
       metadata     jsonb not null default '{}',
       content_hash text not null,
       generation   integer not null,
       truncated    boolean not null default false,
       embedded_at  timestamptz not null default now(),
       constraint ${quoteIdent(pkeyName(p.vectorTable))} primary key (pk, chunk_index))`,
  ];
}

/**
 * Rows up to this size keep their vector in the row (docs/architecture.md, decision 32). pgvector's
 * types are stored out of line once a row passes about 2 KB, i.e. from about 500 dimensions, which
 * costs every write a TOAST insert and every index build and search a fetch from the TOAST table;
 * inline, a 512-dimension 20,000-row load ran 24 % faster. Larger rows (long chunks, very wide
 * vectors) are still moved out as before.
 */
export const INLINE_ROW_BYTES = 8160;

/**
 * The table and its HNSW cosine index, for the pipeline's (or a generation's) vector table. A table
 * a walk is about to fill may be made without the index, which is built once the walk ends
 * (src/capture/vector-index.ts).
 */
export function createVectorTableSql(
  p: VectorTableOf,
  options: { index?: boolean } = {},
): string[] {
  if (destinationColumn(p.config) !== undefined) return createRecordTableSql(p);
  const table = qualified(p.vectorSchema, p.vectorTable);
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
       constraint ${quoteIdent(pkeyName(p.vectorTable))} primary key (pk, chunk_index))
     with (toast_tuple_target = ${INLINE_ROW_BYTES})`,
    ...(options.index === false ? [] : [createHnswIndexSql(p)]),
  ];
}

/** The HNSW cosine index; concurrently, writes to the table go on while it is built. */
export function createHnswIndexSql(
  p: VectorTableOf,
  options: { concurrently?: boolean } = {},
): string {
  const ops = p.config.vectorType === 'halfvec' ? 'halfvec_cosine_ops' : 'vector_cosine_ops';
  const how = options.concurrently ? 'concurrently ' : '';
  return `create index ${how}if not exists ${quoteIdent(hnswName(p.vectorTable))} on ${qualified(p.vectorSchema, p.vectorTable)} using hnsw (embedding ${ops})`;
}

/**
 * The view joining each chunk to its source row; made again whenever the table behind it changes.
 * It selects only the key and the columns the pipeline reads, those that still exist: a view pins
 * the columns it names, so any other column can still be dropped or retyped by the user.
 */
export function createViewSql(p: Pipeline, sourceColumns: readonly string[]): string[] {
  const view = qualified(p.vectorSchema, viewName(p));
  // The vector is in the source row: queries read the table itself.
  if (destinationColumn(p.config) !== undefined) return [`drop view if exists ${view}`];
  const present = new Set(sourceColumns);
  // Without its key the view cannot join; it waits for the next apply.
  if (!p.primaryKey.every((k) => present.has(k.name))) return [`drop view if exists ${view}`];
  // The view names the chunk's columns first; a source column of the same name is left to the
  // table.
  const sourceCols = [...new Set([...p.primaryKey.map((k) => k.name), ...watchedColumns(p)])]
    .filter((c) => present.has(c) && !VIEW_COLUMNS.includes(c))
    .map((c) => `s.${quoteIdent(c)}`);
  return [
    `drop view if exists ${view}`,
    `create view ${view} as
       select ${['v.chunk_index', 'v.chunk', 'v.embedding', 'v.embedded_at', ...sourceCols].join(', ')}
         from ${qualified(p.vectorSchema, p.vectorTable)} v
         join ${qualified(p.sourceSchema, p.sourceTable)} s on ${keyMatches(p, 's', 'v.pk')}${
           // With clear, a changed row's old vectors are left out until its new ones are written
           // (decision 19).
           clearsOnChange(p.config) ? `\n        where ${staleKeyFilter(p, 'v')}` : ''
         }`,
  ];
}
