// A column pipeline's column in the source table (docs/architecture.md, decision 18): apply checks
// that it holds vectors of the pipeline's type and dimensions, or adds it, and its HNSW index is
// created when the pipeline asks for one.
import { ConfigError, destinationColumn } from '../config/pipeline.js';
import type { Pipeline } from '../db/catalog.js';
import { fitIdent, qualified, quoteIdent } from '../db/ident.js';
import type { PoolClient } from '../db/pool.js';
import type { TableInfo } from './inspect.js';
import { vectorColumnSql } from './vector-table.js';

type ColumnOf = Pick<Pipeline, 'config' | 'sourceSchema' | 'sourceTable'>;

/** Adding a column is metadata-only, but it waits for every open transaction on the table. */
const ADD_LOCK_TIMEOUT = '200ms';
const ADD_ATTEMPTS = 5;

/**
 * The column exists with the pipeline's type, or is added (inside the apply's transaction). The
 * ALTER waits at most ADD_LOCK_TIMEOUT for the table's lock, a few times: while it waits in the lock
 * queue every later write to the table waits behind it, so apply gives up rather than stall the
 * user's writers.
 */
export async function prepareDestinationColumn(
  client: PoolClient,
  p: ColumnOf,
  info: TableInfo,
): Promise<void> {
  const column = destinationColumn(p.config);
  if (column === undefined) return;
  const want = vectorColumnSql(p);
  const table = `${info.schema}.${info.table}`;
  const have = info.columns.get(column);
  if (have) {
    if (have.type !== want)
      throw new ConfigError(
        'destination.column',
        `column "${column}" of ${table} is ${have.type}, but the pipeline writes ${want} ` +
          `(vectorType ${p.config.vectorType}, embedding.dimensions ${p.config.embedding.dimensions}): ` +
          `name another column (apply adds it), or change the column's type`,
      );
    return;
  }
  const sql = `alter table ${qualified(p.sourceSchema, p.sourceTable)} add column ${quoteIdent(column)} ${want}`;
  for (let attempt = 1; ; attempt += 1) {
    await client.query('savepoint embedsync_add_column');
    try {
      await client.query(`set local lock_timeout = '${ADD_LOCK_TIMEOUT}'`);
      await client.query(sql);
      await client.query('release savepoint embedsync_add_column');
      await client.query(`set local lock_timeout = default`);
      return;
    } catch (err) {
      await client.query('rollback to savepoint embedsync_add_column');
      const busy = err instanceof Error && 'code' in err && err.code === '55P03';
      if (!busy) throw err;
      if (attempt >= ADD_ATTEMPTS)
        throw new ConfigError(
          'destination.column',
          `could not add column "${column}" to ${table}: other transactions kept the table locked ` +
            `(${ADD_ATTEMPTS} tries of ${ADD_LOCK_TIMEOUT}); apply again when they are done, or add it ` +
            `yourself: ${sql}`,
        );
      await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
    }
  }
}

/**
 * The HNSW index of a table's column: `<table>_<column>_hnsw`, a long name cut so that a re-embed's
 * shadow column (`<column>_next`) never gets the live column's index name (fitIdent).
 */
export const indexNameOf = (table: string, column: string): string =>
  fitIdent(`${table}_${column}`, '_hnsw');

/** The column's HNSW index, in the source table's schema. */
export const columnIndexName = (p: ColumnOf): string =>
  indexNameOf(p.sourceTable, destinationColumn(p.config) ?? '');

/** The index's name as to_regclass takes it. */
export const columnIndexRegclass = (p: ColumnOf): string =>
  `${quoteIdent(p.sourceSchema)}.${quoteIdent(columnIndexName(p))}`;

/** CREATE INDEX CONCURRENTLY for the column: a connection of its own, no transaction. */
export function createColumnIndexSql(p: ColumnOf): string {
  const ops = p.config.vectorType === 'halfvec' ? 'halfvec_cosine_ops' : 'vector_cosine_ops';
  const column = quoteIdent(destinationColumn(p.config) ?? '');
  return `create index concurrently if not exists ${quoteIdent(columnIndexName(p))}
            on ${qualified(p.sourceSchema, p.sourceTable)} using hnsw (${column} ${ops})`;
}

/** Whether embedsync builds an index for this pipeline's column. */
export const wantsColumnIndex = (p: Pick<Pipeline, 'config'>): boolean =>
  p.config.destination?.index === true;
