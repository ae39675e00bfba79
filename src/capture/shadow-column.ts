// The shadow column a re-embed of a column pipeline fills, and the swap that puts it in place of the
// live column (docs/architecture.md, decision 20). Adding, dropping and renaming a column are
// catalog changes only (no table rewrite) but each takes ACCESS EXCLUSIVE on the user's table, so
// the callers run these inside withShortLocks (src/db/lock-retry.ts): every wait for that lock is
// bounded by lock_timeout, and nothing queues the user's queries for longer.
import { destinationColumn, type PipelineConfig } from '../config/pipeline.js';
import { shadowColumnName, type Pipeline } from '../db/catalog.js';
import { qualified, quoteIdent, quoteLiteral } from '../db/ident.js';
import { indexNameOf } from './destination-column.js';
import type { Queryable } from '../db/pool.js';

/** Where a column pipeline's vectors live, and the type a generation stores them in. */
export interface ColumnTarget {
  schema: string;
  table: string;
  /** The live column, the one the user's queries read. */
  column: string;
  vectorType: 'vector' | 'halfvec';
  dimensions: number;
}

/** The live column of a column pipeline, typed as `config` stores it; undefined for a vector table. */
export function columnTarget(
  p: Pick<Pipeline, 'sourceSchema' | 'sourceTable'>,
  config: PipelineConfig,
): ColumnTarget | undefined {
  const column = destinationColumn(config);
  if (column === undefined) return undefined;
  return {
    schema: p.sourceSchema,
    table: p.sourceTable,
    column,
    vectorType: config.vectorType,
    dimensions: config.embedding.dimensions,
  };
}

/** Whose shadow column it is: the comment on the column says so, for the user and for retries. */
export interface ShadowOwner {
  pipeline: string;
  generation: number;
}

export const columnTypeSql = (t: Pick<ColumnTarget, 'vectorType' | 'dimensions'>): string =>
  `${t.vectorType}(${t.dimensions})`;

const MARK = 'embedsync:';
const marker = (t: ColumnTarget, o: ShadowOwner): string =>
  `${MARK} pipeline ${o.pipeline} re-embeds into this column as generation ${o.generation}; it replaces "${t.column}" when done`;
const ownedBy = (comment: string | null, pipeline: string): boolean =>
  comment?.startsWith(`${MARK} pipeline ${pipeline} re-embeds`) === true;

export class ShadowColumnTakenError extends Error {
  constructor(
    readonly table: string,
    readonly column: string,
  ) {
    super(
      `column "${column}" of ${table} exists and is not embedsync's: a re-embed needs that name ` +
        "for the new generation's column; rename or drop it, then run the re-embed again",
    );
    this.name = 'ShadowColumnTakenError';
  }
}

export class ShadowColumnMissingError extends Error {
  constructor(
    readonly table: string,
    readonly column: string,
  ) {
    super(
      `column "${column}" of ${table}, which the re-embed filled, is gone: ` +
        'run npx embedsync reembed again to build it anew',
    );
    this.name = 'ShadowColumnMissingError';
  }
}

/** Something of the user's reads the live column, so it cannot be dropped at the swap. */
export class LiveColumnPinnedError extends Error {
  constructor(
    readonly table: string,
    readonly column: string,
    detail: string,
  ) {
    super(
      `the swap cannot drop the old column "${column}" of ${table}: ${detail}; ` +
        'drop what depends on it (and recreate it after the swap); the swap tries again by itself',
    );
    this.name = 'LiveColumnPinnedError';
  }
}

interface ColumnRow {
  type: string;
  comment: string | null;
}

async function readColumn(
  db: Queryable,
  t: ColumnTarget,
  column: string,
): Promise<ColumnRow | undefined> {
  const { rows } = await db.query<ColumnRow>(
    `select format_type(a.atttypid, a.atttypmod) as type, col_description(a.attrelid, a.attnum) as comment
       from pg_attribute a
      where a.attrelid = $1::regclass and a.attname = $2 and a.attnum > 0 and not a.attisdropped`,
    [qualified(t.schema, t.table), column],
  );
  return rows[0];
}

/**
 * Takes the pipeline's source table ACCESS EXCLUSIVE, found by its oid (a renamed table is still
 * found), before any weaker lock on it: a transaction that took a weaker one first and then asked
 * for this could deadlock with a user's transaction reading the table and then writing it.
 */
export async function lockSourceTable(db: Queryable, pipeline: string): Promise<void> {
  const { rows } = await db.query<{ name: string }>(
    `select format('%I.%I', n.nspname, c.relname) as name
       from embedsync.pipelines p
       join pg_class c on c.oid = p.source_relid
       join pg_namespace n on n.oid = c.relnamespace
      where p.name = $1`,
    [pipeline],
  );
  // A table gone is the schema check's to report.
  if (rows[0]) await db.query(`lock table ${rows[0].name} in access exclusive mode`);
}

/** Takes the table first, so what is read next cannot change before the DDL runs. */
const lockTable = (db: Queryable, t: ColumnTarget): Promise<unknown> =>
  db.query(`lock table ${qualified(t.schema, t.table)} in access exclusive mode`);

/**
 * Adds the pending generation's column (null everywhere: catalog only, no rewrite). `fresh`
 * rebuilds one an earlier attempt left; otherwise one of the right type is kept (a retry).
 */
export async function addShadowColumn(
  db: Queryable,
  t: ColumnTarget,
  owner: ShadowOwner,
  options: { fresh: boolean },
): Promise<'added' | 'kept'> {
  const shadow = shadowColumnName(t.column);
  const table = qualified(t.schema, t.table);
  await lockTable(db, t);
  const existing = await readColumn(db, t, shadow);
  if (existing) {
    if (!ownedBy(existing.comment, owner.pipeline))
      throw new ShadowColumnTakenError(`${t.schema}.${t.table}`, shadow);
    if (
      !options.fresh &&
      existing.type === columnTypeSql(t) &&
      existing.comment === marker(t, owner)
    )
      return 'kept';
    await db.query(`alter table ${table} drop column ${quoteIdent(shadow)}`);
  }
  await db.query(`alter table ${table} add column ${quoteIdent(shadow)} ${columnTypeSql(t)}`);
  await db.query(
    `comment on column ${table}.${quoteIdent(shadow)} is ${quoteLiteral(marker(t, owner))}`,
  );
  return 'added';
}

/**
 * The swap, in the caller's short-locked transaction: drops the live column (its index goes with it),
 * renames the shadow column to the live name and its index to the live index's. Every statement is
 * a catalog change; the table is held ACCESS EXCLUSIVE for their few milliseconds, and queries that
 * arrive meanwhile wait for the commit, then see the new column. The live column's comment carries
 * over.
 */
export async function swapShadowColumn(
  db: Queryable,
  t: ColumnTarget,
  owner: ShadowOwner,
): Promise<void> {
  const shadow = shadowColumnName(t.column);
  const table = qualified(t.schema, t.table);
  const name = `${t.schema}.${t.table}`;
  await lockTable(db, t);
  const next = await readColumn(db, t, shadow);
  if (!next || !ownedBy(next.comment, owner.pipeline))
    throw new ShadowColumnMissingError(name, shadow);
  const live = await readColumn(db, t, t.column);
  if (live) {
    try {
      await db.query('savepoint drop_live');
      await db.query(`alter table ${table} drop column ${quoteIdent(t.column)}`);
      await db.query('release savepoint drop_live');
    } catch (err) {
      // dependent_objects_still_exist: a view, a function's SQL body, a constraint reads it.
      if (err instanceof Error && 'code' in err && err.code === '2BP01') {
        await db.query('rollback to savepoint drop_live');
        const detail = 'detail' in err && typeof err.detail === 'string' ? err.detail : err.message;
        throw new LiveColumnPinnedError(name, t.column, detail.replaceAll('\n', '; '));
      }
      throw err;
    }
  }
  await db.query(
    `alter table ${table} rename column ${quoteIdent(shadow)} to ${quoteIdent(t.column)}`,
  );
  await db.query(
    `comment on column ${table}.${quoteIdent(t.column)} is ${live?.comment ? quoteLiteral(live.comment) : 'null'}`,
  );
  const shadowIndex = qualified(t.schema, indexNameOf(t.table, shadow));
  const { rows } = await db.query<{ found: boolean }>(
    'select to_regclass($1) is not null as found',
    [shadowIndex],
  );
  if (rows[0]?.found) {
    await db.query(
      `alter index ${shadowIndex} rename to ${quoteIdent(indexNameOf(t.table, t.column))}`,
    );
  }
}

/** Abandoning a re-embed: drops the shadow column (and its index), if it is this pipeline's. */
export async function dropShadowColumn(
  db: Queryable,
  t: ColumnTarget,
  owner: ShadowOwner,
): Promise<boolean> {
  const shadow = shadowColumnName(t.column);
  await lockTable(db, t);
  const existing = await readColumn(db, t, shadow);
  if (!existing || !ownedBy(existing.comment, owner.pipeline)) return false;
  await db.query(`alter table ${qualified(t.schema, t.table)} drop column ${quoteIdent(shadow)}`);
  return true;
}
