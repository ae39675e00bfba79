// What the database says about a source table, read once when a pipeline is applied.
import type { KeyColumn } from '../db/catalog.js';
import type { PoolClient } from '../db/pool.js';

export interface ColumnInfo {
  name: string;
  type: string;
  typname: string;
  category: string;
}

export interface TableInfo {
  relid: number;
  schema: string;
  table: string;
  primaryKey: KeyColumn[];
  columns: Map<string, ColumnInfo>;
}

export async function inspectTable(
  client: PoolClient,
  schema: string,
  table: string,
): Promise<TableInfo | undefined> {
  const rel = await client.query<{ oid: number }>(
    `select c.oid from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p')`,
    [schema, table],
  );
  const oid = rel.rows[0]?.oid;
  if (oid === undefined) return undefined;
  const cols = await client.query<ColumnInfo>(
    `select a.attname as name, format_type(a.atttypid, a.atttypmod) as type, t.typname, t.typcategory as category
       from pg_attribute a join pg_type t on t.oid = a.atttypid
      where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped order by a.attnum`,
    [oid],
  );
  const pk = await client.query<KeyColumn>(
    `select a.attname as name, format_type(a.atttypid, a.atttypmod) as type
       from pg_index i
       join lateral unnest(i.indkey) with ordinality as k(attnum, ord) on true
       join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
      where i.indrelid = $1 and i.indisprimary
      order by k.ord`,
    [oid],
  );
  return {
    relid: oid,
    schema,
    table,
    primaryKey: pk.rows,
    columns: new Map(cols.rows.map((c) => [c.name, c])),
  };
}

// Types with a text form worth embedding: strings, numbers, booleans, dates, enums, intervals,
// arrays of those, and the common structured types. Binary, geometric and bit types are refused.
const EMBEDDABLE_CATEGORIES = new Set(['S', 'N', 'B', 'D', 'E', 'T', 'A']);
const EMBEDDABLE_TYPES = new Set(['json', 'jsonb', 'uuid', 'xml', 'citext']);

export function isEmbeddable(col: ColumnInfo): boolean {
  if (col.typname === 'bytea' || col.typname === '_bytea') return false;
  return EMBEDDABLE_CATEGORIES.has(col.category) || EMBEDDABLE_TYPES.has(col.typname);
}

/**
 * Describes the embedding column of an existing vector table, e.g. "vector(256)", if there is one.
 */
export async function vectorColumnType(
  client: PoolClient,
  schema: string,
  table: string,
): Promise<string | undefined | null> {
  const { rows } = await client.query<{ type: string | null }>(
    `select (select format_type(a.atttypid, a.atttypmod) from pg_attribute a
              where a.attrelid = c.oid and a.attname = 'embedding' and not a.attisdropped) as type
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relname = $2`,
    [schema, table],
  );
  // undefined: no such table; null: a table without an embedding column
  return rows.length === 0 ? undefined : (rows[0]?.type ?? null);
}
