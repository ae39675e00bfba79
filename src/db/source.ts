// Every query of a pipeline's source table (the user's): reading rows by key and turning them into
// the document that gets embedded (fetch and write both use it, so the content hash means the same
// thing in both), counting rows, and paging through keys in key order. Identifiers are quoted by
// src/db/ident.ts.
import { createHash } from 'node:crypto';
import { embedColumns, embeddingFingerprint, type PipelineConfig } from '../config/pipeline.js';
import type { Pipeline } from './catalog.js';
import { qualified, quoteIdent, quoteLiteral } from './ident.js';
import { KEY_TEXT_SETTINGS, type Pool, type PoolClient, type Queryable } from './pool.js';

/**
 * SQL for a row's primary key as text: the value for one column, a JSON array for several. Only
 * canonical under KEY_TEXT_SETTINGS, which embedsync's pool connections set, and the capture
 * functions as far as the key's types need them (keyTextSettings).
 */
export function keyText(p: Pick<Pipeline, 'primaryKey'>, alias: string): string {
  const cols = p.primaryKey.map((k) => `${alias}.${quoteIdent(k.name)}`);
  return cols.length === 1 ? `${cols[0]}::text` : `jsonb_build_array(${cols.join(', ')})::text`;
}

// Which of KEY_TEXT_SETTINGS a key type's text (and its JSON, in a composite key) depends on, by
// its format_type() name. A type not listed (a domain, an enum, an array, anything of a user's) is
// taken to depend on all of them.
const SETTINGS_BY_TYPE: readonly (readonly [RegExp, readonly string[]])[] = [
  [
    /^(smallint|integer|bigint|numeric(\(\d+(,\d+)?\))?|text|character( varying)?(\(\d+\))?|"char"|name|uuid|boolean|oid)$/,
    [],
  ],
  [/^timestamp(\(\d\))? with time zone$/, ['TimeZone', 'DateStyle']],
  [
    /^(timestamp(\(\d\))? without time zone|date|time(\(\d\))? with(out)? time zone)$/,
    ['DateStyle'],
  ],
  [/^interval\b/, ['IntervalStyle']],
  [/^(real|double precision)$/, ['extra_float_digits']],
  [/^bytea$/, ['bytea_output']],
];

/**
 * The KEY_TEXT_SETTINGS a pipeline's key text depends on: what its capture functions must set. Each
 * setting a function carries costs a save and restore on every call, so a bigint key sets none.
 */
export function keyTextSettings(p: Pick<Pipeline, 'primaryKey'>): Record<string, string> {
  const names = new Set(
    p.primaryKey.flatMap(
      (k) =>
        SETTINGS_BY_TYPE.find(([type]) => type.test(k.type))?.[1] ?? Object.keys(KEY_TEXT_SETTINGS),
    ),
  );
  return Object.fromEntries(Object.entries(KEY_TEXT_SETTINGS).filter(([name]) => names.has(name)));
}

/**
 * SQL that is true when the row `alias` has the key held in the text expression `key`. The key is
 * cast to the column types (not the columns to text) so the primary key index is used. Types come
 * from format_type(), which prints them ready for SQL. Key texts are ISO dates with their offset,
 * postgres-style intervals and exact floats, so they parse back alike under any DateStyle.
 */
export function keyMatches(p: Pick<Pipeline, 'primaryKey'>, alias: string, key: string): string {
  const [only, ...rest] = p.primaryKey;
  if (only && rest.length === 0)
    return `${alias}.${quoteIdent(only.name)} = (${key})::${only.type}`;
  const cols = p.primaryKey.map((k) => `${alias}.${quoteIdent(k.name)}`);
  const vals = p.primaryKey.map((k, i) => `((${key})::jsonb ->> ${i})::${k.type}`);
  return `(${cols.join(', ')}) = (${vals.join(', ')})`;
}

/**
 * FROM items for the source rows of the keys in the text array $1, as `k.pk` and `alias`: one index
 * probe per key. A plain join let the planner hash the whole table for a few hundred keys of a
 * table of tens of thousands of rows (measured: 8 ms against 1 ms for 500 keys of 20,000 rows);
 * `offset 0` keeps the lateral subquery from being flattened back into that join.
 */
export function sourceRowsOfKeys(
  p: Pick<Pipeline, 'sourceSchema' | 'sourceTable' | 'primaryKey'>,
  alias: string,
): string {
  const table = qualified(p.sourceSchema, p.sourceTable);
  return `unnest($1::text[]) as k(pk)
      cross join lateral (
        select * from ${table} ${alias} where ${keyMatches(p, alias, 'k.pk')} offset 0) ${alias}`;
}

/**
 * Keyset paging: SQL true for rows after the key held in the text expression `key`, and their
 * order.
 */
function keysetPage(
  p: Pick<Pipeline, 'primaryKey'>,
  alias: string,
  key: string,
): { after: string; orderBy: string } {
  const cols = p.primaryKey.map((k) => `${alias}.${quoteIdent(k.name)}`);
  const [only, ...rest] = p.primaryKey;
  if (only && rest.length === 0)
    return { after: `${cols[0]} > (${key})::${only.type}`, orderBy: cols.join(', ') };
  const vals = p.primaryKey.map((k, i) => `((${key})::jsonb ->> ${i})::${k.type}`);
  return { after: `(${cols.join(', ')}) > (${vals.join(', ')})`, orderBy: cols.join(', ') };
}

/** SQL for the metadata object kept beside each vector. */
export function metadataJson(config: PipelineConfig, alias: string): string {
  if (config.metadata.length === 0) return `'{}'::jsonb`;
  const pairs = config.metadata.map((c) => `${quoteLiteral(c)}, ${alias}.${quoteIdent(c)}`);
  return `jsonb_build_object(${pairs.join(', ')})`;
}

export interface SourceRow {
  pk: string;
  document: string;
  /** The head of the document repeated on every chunk ('' when no column is repeated). */
  context: string;
  contentHash: string;
  /** JSON text of the metadata object. */
  metadata: string;
}

/** The text sent to the model: each non-empty column with its prefix, in order. */
export function buildDocument(config: PipelineConfig, values: readonly (string | null)[]): string {
  const parts: string[] = [];
  embedColumns(config).forEach((col, i) => {
    const value = values[i];
    if (value != null && value.trim() !== '') parts.push(col.prefix + value);
  });
  return parts.join(config.embed.separator);
}

/** The repeated columns' part of the document (they come first, so the document starts with it). */
export function buildContext(config: PipelineConfig, values: readonly (string | null)[]): string {
  const columns = embedColumns(config);
  const repeated = columns.filter((c) => c.repeat).length;
  return repeated === 0
    ? ''
    : buildDocument(
        { ...config, embed: { ...config.embed, columns: config.embed.columns.slice(0, repeated) } },
        values.slice(0, repeated),
      );
}

export function contentHash(config: PipelineConfig, document: string): string {
  return hashWithFingerprint(embeddingFingerprint(config), document);
}

/** contentHash with the config's fingerprint already computed (once per batch, not per row). */
function hashWithFingerprint(fingerprint: string, document: string): string {
  return createHash('sha256').update(fingerprint).update('\0').update(document).digest('hex');
}

/** Reads the rows with these keys; keys with no row are simply absent from the result. */
export async function readSourceRows(
  db: Pool | PoolClient,
  p: Pipeline,
  keys: readonly string[],
): Promise<SourceRow[]> {
  const cols = embedColumns(p.config).map((c, i) => `s.${quoteIdent(c.column)}::text as c${i}`);
  const sql = `
    select k.pk, ${cols.join(', ')}, ${metadataJson(p.config, 's')}::text as metadata
      from ${sourceRowsOfKeys(p, 's')}`;
  const { rows } = await db.query<Record<string, string | null>>(sql, [keys]);
  const fingerprint = embeddingFingerprint(p.config);
  return rows.map((r) => {
    const values = embedColumns(p.config).map((_, i) => r[`c${i}`] ?? null);
    const document = buildDocument(p.config, values);
    const context = buildContext(p.config, values);
    return {
      pk: r.pk ?? '',
      document,
      context,
      contentHash: hashWithFingerprint(fingerprint, document),
      metadata: r.metadata ?? '{}',
    };
  });
}

/** How many rows the source table has. */
export async function countSourceRows(
  db: Queryable,
  p: Pick<Pipeline, 'sourceSchema' | 'sourceTable'>,
): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `select count(*) as n from ${qualified(p.sourceSchema, p.sourceTable)}`,
  );
  return rows[0]?.n ?? 0;
}

/**
 * The next page of keys after `after` (null: from the start), in primary key order: keyset, never
 * OFFSET, so every page costs the same however far the walk has gone.
 */
export async function readKeyPage(
  db: Queryable,
  p: Pipeline,
  after: string | null,
  limit: number,
): Promise<string[]> {
  const page = keysetPage(p, 's', '$1');
  const { rows } = await db.query<{ pk: string }>(
    `select ${keyText(p, 's')} as pk from ${qualified(p.sourceSchema, p.sourceTable)} s
      where $1::text is null or ${page.after}
      order by ${page.orderBy} limit $2`,
    [after, limit],
  );
  return rows.map((r) => r.pk);
}

/**
 * How many keys come after `after`, counting up to `cap`: walks the primary key index alone, so it
 * is cheap however big the table.
 */
export async function countKeysAfter(
  db: Queryable,
  p: Pipeline,
  after: string | null,
  cap: number,
): Promise<number> {
  const page = keysetPage(p, 's', '$1');
  const { rows } = await db.query<{ n: number }>(
    `select count(*)::int as n from (
       select 1 from ${qualified(p.sourceSchema, p.sourceTable)} s
        where $1::text is null or ${page.after}
        order by ${page.orderBy} limit $2) ahead`,
    [after, cap],
  );
  return rows[0]?.n ?? 0;
}

/**
 * Which of these keys have a row now, with the named columns' current values (as JSON): what a
 * delivery to a sink reports (decision 23). Keys with no row are absent.
 */
export async function readRowStates(
  db: Queryable,
  p: Pick<Pipeline, 'sourceSchema' | 'sourceTable' | 'primaryKey'>,
  keys: readonly string[],
  columns: readonly string[],
): Promise<Map<string, Record<string, unknown>>> {
  const pairs = columns.map((c) => `${quoteLiteral(c)}, s.${quoteIdent(c)}`);
  const sql = `
    select k.pk, jsonb_build_object(${pairs.join(', ')}) as columns
      from ${sourceRowsOfKeys(p, 's')}`;
  const { rows } = await db.query<{ pk: string; columns: Record<string, unknown> }>(sql, [keys]);
  return new Map(rows.map((r) => [r.pk, r.columns]));
}
