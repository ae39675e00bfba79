// A vector table's full-text index, the text side of hybrid search (docs/architecture.md, decision
// 27): an expression GIN index on to_tsvector(<the pipeline's configuration>, chunk), built
// concurrently outside any transaction, so adding it to a large table that already exists never
// holds the application's queries or embedsync's writes (a stored generated column would rewrite the
// table under ACCESS EXCLUSIVE). A changed language builds it again. A column pipeline keeps no chunk
// text and has none.
import { destinationColumn, textSearchLanguage, ConfigError } from '../config/pipeline.js';
import type { Pipeline } from '../db/catalog.js';
import { qualified, quoteIdent, quoteLiteral } from '../db/ident.js';
import type { Pool, Queryable } from '../db/pool.js';

type VectorTableOf = Pick<Pipeline, 'vectorSchema' | 'vectorTable' | 'config'>;

/** Index names follow the table's, so a swap renames it with the table (as hnswName). */
export const textIndexName = (table: string): string => `${table}_fts`;

/**
 * The indexed expression, with the configuration as a literal: the planner uses an expression index
 * only for a query that writes the same expression, constant included.
 */
export function chunkVectorSql(p: Pick<Pipeline, 'config'>, alias?: string): string {
  const chunk = alias ? `${alias}.chunk` : 'chunk';
  return `to_tsvector(${quoteLiteral(textSearchLanguage(p.config))}::regconfig, ${chunk})`;
}

export function createTextIndexSql(
  p: VectorTableOf,
  options: { concurrently?: boolean } = {},
): string {
  const how = options.concurrently ? 'concurrently ' : '';
  return `create index ${how}if not exists ${quoteIdent(textIndexName(p.vectorTable))} on ${qualified(p.vectorSchema, p.vectorTable)} using gin (${chunkVectorSql(p)})`;
}

/** Whether the pipeline has a full-text side: a vector table, whose chunks it indexes. */
export const hasTextSide = (p: Pick<Pipeline, 'config'>): boolean =>
  destinationColumn(p.config) === undefined;

/**
 * The configuration's oid by name (schema.name, or a name on the search path), as regconfig's input
 * would find it, without failing when there is none (Postgres 15 has no to_regconfig).
 */
const FIND_CONFIG = `(select c.oid::regconfig from pg_ts_config c
                       join pg_namespace n on n.oid = c.cfgnamespace
                      where c.cfgname = split_part($1, '.', -1)
                        and case when strpos($1, '.') > 0 then n.nspname = split_part($1, '.', 1)
                                 else pg_ts_config_is_visible(c.oid) end)`;

/** Refuses a language the database does not have, naming the ones it does. */
export async function checkTextSearchLanguage(
  db: Queryable,
  p: Pick<Pipeline, 'config'>,
): Promise<void> {
  if (!hasTextSide(p)) return;
  const language = textSearchLanguage(p.config);
  const { rows } = await db.query<{ found: boolean; known: string }>(
    `select ${FIND_CONFIG} is not null as found,
            (select string_agg(cfgname, ', ' order by cfgname) from pg_ts_config) as known`,
    [language],
  );
  if (!rows[0]?.found)
    throw new ConfigError(
      'search.language',
      `text-search configuration "${language}" does not exist in this database (pg_ts_config has ${rows[0]?.known ?? 'none'})`,
    );
}

/**
 * What the table's full-text index is: missing, valid for the pipeline's language, or to be built
 * again (invalid after a cut-short concurrent build, or of another language).
 */
export async function textIndexState(
  db: Queryable,
  p: VectorTableOf,
): Promise<'missing' | 'valid' | 'stale'> {
  const { rows } = await db.query<{ valid: boolean; same: boolean }>(
    `select i.indisvalid as valid,
            pg_get_expr(i.indexprs, i.indrelid) =
              'to_tsvector(' || quote_literal(${FIND_CONFIG}::text) || '::regconfig, chunk)' as same
       from pg_index i where i.indexrelid = to_regclass($2)`,
    [
      textSearchLanguage(p.config),
      `${quoteIdent(p.vectorSchema)}.${quoteIdent(textIndexName(p.vectorTable))}`,
    ],
  );
  const row = rows[0];
  if (!row) return 'missing';
  return row.valid && row.same ? 'valid' : 'stale';
}

/**
 * Builds the full-text index if the table lacks a valid one of the pipeline's language; returns
 * whether it built one. Concurrently, so it takes a connection of its own (no transaction may hold
 * it): the application's queries and embedsync's writes go on throughout. One of another language
 * is dropped first, concurrently too; searches scan without it until the new one is valid.
 */
export async function buildTextIndex(pool: Pool, p: VectorTableOf): Promise<boolean> {
  if (!hasTextSide(p)) return false;
  const state = await textIndexState(pool, p);
  if (state === 'valid') return false;
  const client = await pool.connect();
  let broken = false;
  try {
    if (state === 'stale')
      await client.query(
        `drop index concurrently if exists ${qualified(p.vectorSchema, textIndexName(p.vectorTable))}`,
      );
    // A worker that dies mid-build stops it soon after, instead of leaving it to run for nothing.
    await client.query(`set client_connection_check_interval = '5s'`);
    await client.query(createTextIndexSql(p, { concurrently: true }));
    await client.query('reset client_connection_check_interval');
  } catch (err) {
    broken = true;
    throw err;
  } finally {
    client.release(broken);
  }
  return true;
}
