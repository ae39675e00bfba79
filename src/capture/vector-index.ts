// A vector table's HNSW index during a table walk (docs/architecture.md, decision 14). Maintained
// row by row, the index cost a first backfill most of its database CPU; pgvector's own advice is to
// load first and build the index after. So a walk that starts on an empty vector table drops the
// index, and every end of a walk (done, cancelled, failed) builds it again, concurrently, so the
// sync writes that go on meanwhile are never blocked. A column pipeline's index is on the user's
// column (decision 18): never dropped, built only when the pipeline asks for it.
import { destinationColumn } from '../config/pipeline.js';
import type { Pipeline } from '../db/catalog.js';
import { qualified, quoteIdent, quoteLiteral } from '../db/ident.js';
import type { Pool, Queryable } from '../db/pool.js';
import {
  columnIndexName,
  columnIndexRegclass,
  createColumnIndexSql,
  wantsColumnIndex,
} from './destination-column.js';
import { createHnswIndexSql, hnswName } from './vector-table.js';

type VectorTableOf = Pick<
  Pipeline,
  'vectorSchema' | 'vectorTable' | 'config' | 'sourceSchema' | 'sourceTable'
>;
const isColumn = (p: Pick<Pipeline, 'config'>): boolean =>
  destinationColumn(p.config) !== undefined;

/**
 * The build's maintenance_work_mem: room for the whole graph (about twice the table), so pgvector
 * never falls back to inserting what does not fit one tuple at a time. Measured on 1,000,000 rows of
 * 256 dimensions (a 1.3 GB table): with 1 GB the graph filled it at two thirds of the rows and the
 * rest ran about 7× slower. Bounded by what the server can spare for one session for a while: the
 * operator's EMBEDSYNC_INDEX_BUILD_MEMORY, 1 GB unless set (a small server must not run out of
 * memory for an index build it did not ask for). A server that cannot grant it (shared memory for a
 * parallel build) gets the build at its own setting, in one process.
 */
const BUILD_MEMORY_MIN = 64 * 2 ** 20;
export const DEFAULT_INDEX_BUILD_MEMORY = 2 ** 30;

/** Drops the HNSW index if the vector table is empty: a walk is about to fill it. */
export async function deferIndexIfEmpty(db: Queryable, p: VectorTableOf): Promise<boolean> {
  if (isColumn(p)) return deferColumnIndex(db, p);
  const table = qualified(p.vectorSchema, p.vectorTable);
  const { rows } = await db.query<{ empty: boolean }>(
    `select not exists (select 1 from ${table}) as empty`,
  );
  if (!rows[0]?.empty) return false;
  await db.query(`drop index if exists ${qualified(p.vectorSchema, hnswName(p.vectorTable))}`);
  return true;
}

/**
 * A column pipeline's own index (destination.index) goes while no row of the column has a vector
 * yet: nothing searches it, and the walk that fills it builds it once at its end. Dropped
 * concurrently, as it was built: the user's writes never wait for it. An index on a column that
 * already holds vectors stays, so searches keep it while a walk runs.
 */
async function deferColumnIndex(db: Queryable, p: VectorTableOf): Promise<boolean> {
  if (!wantsColumnIndex(p)) return false;
  const { rows } = await db.query<{ empty: boolean }>(
    `select not exists (select 1 from ${qualified(p.sourceSchema, p.sourceTable)}
                         where ${quoteIdent(destinationColumn(p.config) ?? '')} is not null) as empty`,
  );
  if (!rows[0]?.empty) return false;
  await db.query(
    `drop index concurrently if exists ${qualified(p.sourceSchema, columnIndexName(p))}`,
  );
  return true;
}

/** Whether the table has a valid HNSW index under its usual name. */
export async function hasValidIndex(db: Queryable, p: VectorTableOf): Promise<boolean> {
  const { rows } = await db.query<{ valid: boolean }>(
    `select i.indisvalid as valid from pg_index i
      where i.indexrelid = to_regclass($1)`,
    [
      isColumn(p)
        ? columnIndexRegclass(p)
        : `${quoteIdent(p.vectorSchema)}.${quoteIdent(hnswName(p.vectorTable))}`,
    ],
  );
  return rows[0]?.valid === true;
}

/**
 * Builds the HNSW index if the table has no valid one (a no-op otherwise), concurrently: writes go
 * on. Returns whether it built one. `CREATE INDEX CONCURRENTLY` cannot run in a transaction, so it
 * takes a connection of its own, whose settings it resets before handing it back (or drops it).
 */
export async function buildIndex(
  pool: Pool,
  p: VectorTableOf,
  maxMemory = DEFAULT_INDEX_BUILD_MEMORY,
): Promise<boolean> {
  if (isColumn(p) && !wantsColumnIndex(p)) return false;
  if (await hasValidIndex(pool, p)) return false;
  try {
    await build(pool, p, maxMemory);
  } catch (err) {
    // Insufficient resources (SQLSTATE class 53): the server's own setting, once more.
    if (!(err instanceof Error && 'code' in err && String(err.code).startsWith('53'))) throw err;
    await build(pool, p, 0);
  }
  return true;
}

/**
 * Raises the session's maintenance_work_mem for a build of an index on `table` (see
 * BUILD_MEMORY_MIN); `maxMemory` 0 leaves the server's own setting. The caller resets it.
 */
export async function setBuildMemory(
  client: Queryable,
  table: string,
  maxMemory: number,
): Promise<void> {
  if (maxMemory <= 0) return;
  const { rows } = await client.query<{ bytes: string }>(
    `select pg_table_size(${quoteLiteral(table)}::regclass)::text as bytes`,
  );
  const wanted = Math.min(
    Math.max(2 * Number(rows[0]?.bytes ?? 0), Math.min(BUILD_MEMORY_MIN, maxMemory)),
    maxMemory,
  );
  // Never lower what the server already grants.
  await client.query(
    `select set_config('maintenance_work_mem',
              greatest($1::bigint, pg_size_bytes(current_setting('maintenance_work_mem')) / 1024)::text || 'kB',
              false)`,
    [Math.ceil(wanted / 1024)],
  );
}

/**
 * Lets a build of an index on `table` (a vector table: embedsync's own) use the parallel workers the
 * server allows for maintenance. PostgreSQL sizes a parallel build by the table's heap, which says
 * little of an HNSW build's work, bound by CPU; and where vectors are stored out of line (a table
 * made before decision 32, rows over 8160 bytes) the heap looks a few pages long, and the build ran
 * in one process whatever the server allowed. The table's parallel_workers setting stands in for
 * that estimate; max_parallel_maintenance_workers (the
 * server's, the role's or the session's; 0: serial) still bounds it. Returns whether it set one;
 * resetBuildWorkers takes it off again.
 */
export async function setBuildWorkers(client: Queryable, table: string): Promise<boolean> {
  const { rows } = await client.query<{ n: number }>(
    `select current_setting('max_parallel_maintenance_workers')::int as n`,
  );
  const n = rows[0]?.n ?? 0;
  if (n <= 0) return false;
  await client.query(`alter table ${table} set (parallel_workers = ${Math.min(n, 1024)})`);
  return true;
}

export async function resetBuildWorkers(client: Queryable, table: string): Promise<void> {
  await client.query(`alter table ${table} reset (parallel_workers)`);
}

/**
 * `maxMemory` 0: the server's own maintenance_work_mem, built serially (a parallel build keeps its
 * graph in shared memory, which is what a server short of resources may lack).
 */
async function build(pool: Pool, p: VectorTableOf, maxMemory: number): Promise<void> {
  const index = isColumn(p)
    ? qualified(p.sourceSchema, columnIndexName(p))
    : qualified(p.vectorSchema, hnswName(p.vectorTable));
  const table = isColumn(p)
    ? qualified(p.sourceSchema, p.sourceTable)
    : qualified(p.vectorSchema, p.vectorTable);
  const client = await pool.connect();
  let broken = false;
  try {
    // An earlier build cut short leaves an invalid index under the name.
    await client.query(`drop index concurrently if exists ${index}`);
    await setBuildMemory(client, table, maxMemory);
    // Only embedsync's own table: a column pipeline's index is on the user's table, left as it is.
    // Left behind by a build cut short, the setting only lets queries scan the table in parallel.
    const parallel = !isColumn(p) && maxMemory > 0 && (await setBuildWorkers(client, table));
    // A worker that dies mid-build stops it soon after, instead of leaving it to run for nothing.
    await client.query(`set client_connection_check_interval = '5s'`);
    try {
      await client.query(
        isColumn(p) ? createColumnIndexSql(p) : createHnswIndexSql(p, { concurrently: true }),
      );
    } finally {
      if (parallel) await resetBuildWorkers(client, table).catch(() => undefined);
    }
    await client.query('reset maintenance_work_mem; reset client_connection_check_interval');
  } catch (err) {
    broken = true;
    throw err;
  } finally {
    client.release(broken);
  }
}
