// A column pipeline's destination (docs/architecture.md, decision 18): the vector lives in a column
// of the source row, and the pipeline's own table is the record of what was embedded there (key,
// content hash, generation, whether the text was cut), without the vector. Every query that writes
// the column or reads it with the record is here; the record table's other queries are the vector
// table's (src/db/vectors.ts: the record has the same key, chunk_index, content_hash and generation).
import { destinationColumn } from '../config/pipeline.js';
import type { Pipeline } from './catalog.js';
import { qualified, quoteIdent } from './ident.js';
import type { Pool, PoolClient, Queryable } from './pool.js';
import { keyMatches, readSourceRows, type SourceRow } from './source.js';
import { encodeVectorArray, vectorTypeOid } from './vector-binary.js';

/** Where a column pipeline's generation writes: the record table and the source column. */
export interface WriteTarget {
  recordSchema: string;
  recordTable: string;
  /** The source table's column the vector goes in. */
  column: string;
}

type Target = Pick<
  Pipeline,
  'config' | 'vectorSchema' | 'vectorTable' | 'sourceSchema' | 'sourceTable' | 'primaryKey'
>;

/**
 * Where `p` (as one generation sees it, src/db/catalog.ts atGeneration) writes its vectors, or
 * undefined for a vector-table pipeline. The one place that picks the column: a re-embed's pending
 * generation names its own column here.
 */
export function writeTarget(p: Target): WriteTarget | undefined {
  const column = destinationColumn(p.config);
  if (column === undefined) return undefined;
  return { recordSchema: p.vectorSchema, recordTable: p.vectorTable, column };
}

const source = (p: Target): string => qualified(p.sourceSchema, p.sourceTable);

/**
 * Where a pipeline's vectors are, as messages name it: a column pipeline's column (its record is
 * beside it, decision 18), or the vector table.
 */
export function vectorsPlace(
  p: Pick<Target, 'config' | 'sourceSchema' | 'sourceTable' | 'vectorSchema' | 'vectorTable'>,
): string {
  const column = destinationColumn(p.config);
  return column === undefined
    ? `${p.vectorSchema}.${p.vectorTable}`
    : `${p.sourceSchema}.${p.sourceTable}.${column}`;
}

/**
 * The content hash and generation on record for each key whose column holds a vector. A row whose
 * column is NULL (added by apply, or cleared by the user) counts as not embedded.
 */
export async function readColumnHeads(
  db: Queryable,
  p: Target,
  t: WriteTarget,
  keys: readonly string[],
): Promise<{ pk: string; contentHash: string; generation: number }[]> {
  const { rows } = await db.query<{ pk: string; contentHash: string; generation: number }>(
    `select r.pk, r.content_hash as "contentHash", r.generation
       from ${qualified(t.recordSchema, t.recordTable)} r
       join ${source(p)} s on ${keyMatches(p, 's', 'r.pk')}
      where r.pk = any($1::text[]) and r.chunk_index = 0 and s.${quoteIdent(t.column)} is not null`,
    [keys],
  );
  return rows;
}

/**
 * Locks the source rows of `keys` for the write, skipping any row another transaction holds: the
 * write never waits on a user's row lock, so it can never be part of a deadlock with one. Returns
 * the keys locked; the caller retries the others later.
 */
export async function lockSourceRows(
  db: Queryable,
  p: Target,
  keys: readonly string[],
): Promise<Set<string>> {
  if (keys.length === 0) return new Set();
  const { rows } = await db.query<{ pk: string }>(
    `select k.pk from unnest($1::text[]) as k(pk)
       join ${source(p)} s on ${keyMatches(p, 's', 'k.pk')}
       for no key update of s skip locked`,
    [keys],
  );
  return new Set(rows.map((r) => r.pk));
}

/** One row's vector as a column write takes it. */
export interface ColumnRow {
  pk: string;
  contentHash: string;
  /** The text was cut to the model's limit (destination.truncate). */
  truncated: boolean;
}

/**
 * Writes each row's vector into its source row and its record, in the caller's transaction, after
 * the caller has locked the rows (readRowsForWrite) and deleted their old records. The vectors come
 * either from memory (one binary array parameter, as the vector tables' inserts take them; a row
 * with no text has none and its column is set NULL) or from a sync batch's staged chunk 0. One
 * UPDATE for the batch: one new row version per row, and the capture trigger compares only the
 * columns the pipeline reads, so the write queues no change. Returns the source rows updated.
 */
export async function writeColumnRows(
  db: Queryable,
  p: Target,
  t: WriteTarget,
  generation: number,
  rows: readonly ColumnRow[],
  vectors: { memory: readonly (readonly number[] | undefined)[] } | { stagedBatch: string },
): Promise<number> {
  if (rows.length === 0) return 0;
  const type = `${p.config.vectorType}(${p.config.embedding.dimensions})`;
  const set = (from: string): string =>
    `update ${source(p)} s set ${quoteIdent(t.column)} = v.e::${type}
       from ${from} where ${keyMatches(p, 's', 'v.pk')}`;
  let updated = 0;
  if ('memory' in vectors) {
    const some = rows.flatMap((r, i) => {
      const v = vectors.memory[i];
      return v && v.length > 0 ? [{ pk: r.pk, v }] : [];
    });
    const none = rows.filter((r, i) => !(vectors.memory[i]?.length ?? 0)).map((r) => r.pk);
    if (some.length > 0) {
      const vecs = encodeVectorArray(
        some.map((x) => x.v),
        await vectorTypeOid(db),
      );
      const { rowCount } = await db.query(set(`unnest($1::text[], $2::vector[]) as v(pk, e)`), [
        some.map((x) => x.pk),
        vecs,
      ]);
      updated += rowCount ?? 0;
    }
    if (none.length > 0) {
      const { rowCount } = await db.query(
        set(`(select k.pk, null::vector as e from unnest($1::text[]) as k(pk)) v`),
        [none],
      );
      updated += rowCount ?? 0;
    }
  } else {
    const { rowCount } = await db.query(
      set(`(select k.pk, c.embedding as e from unnest($1::text[]) as k(pk)
              left join embedsync.staged_chunks c
                on c.batch_id = $2 and c.pk = k.pk and c.chunk_index = 0) v`),
      [rows.map((r) => r.pk), vectors.stagedBatch],
    );
    updated += rowCount ?? 0;
  }
  await db.query(
    `insert into ${qualified(t.recordSchema, t.recordTable)}
       (pk, chunk_index, content_hash, generation, truncated)
     select s.pk, 0, s.hash, $4, s.truncated
       from unnest($1::text[], $2::text[], $3::boolean[]) as s(pk, hash, truncated)`,
    [
      rows.map((r) => r.pk),
      rows.map((r) => r.contentHash),
      rows.map((r) => r.truncated),
      generation,
    ],
  );
  return updated;
}

/** How many of the record's rows were embedded from a text cut to the model's limit. */
export async function countTruncated(db: Queryable, t: WriteTarget): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `select count(*)::int as n from ${qualified(t.recordSchema, t.recordTable)} where truncated`,
  );
  return rows[0]?.n ?? 0;
}

/**
 * The source rows of `keys` as a write reads them again under its key locks, and, for a column
 * pipeline, locked for the write first (skip locked): `busy` are the rows another transaction holds,
 * which this write leaves for a later try. Locking before reading means no change can commit
 * between the compare and the set.
 */
export async function readRowsForWrite(
  db: Pool | PoolClient,
  p: Pipeline,
  keys: readonly string[],
): Promise<{ current: Map<string, SourceRow>; busy: Set<string> }> {
  const target = writeTarget(p);
  const locked = target ? await lockSourceRows(db, p, keys) : undefined;
  const rows = await readSourceRows(db, p, keys);
  const current = new Map(rows.map((r) => [r.pk, r]));
  const busy = new Set(locked ? rows.filter((r) => !locked.has(r.pk)).map((r) => r.pk) : []);
  for (const pk of busy) current.delete(pk);
  return { current, busy };
}
