// A vector table's HNSW index during a table walk (docs/architecture.md, decision 14). Maintained
// row by row, the index cost a first backfill most of its database CPU; pgvector's own advice is to
// load first and build the index after. So a walk that starts on an empty vector table drops the
// index, and every end of a walk (done, cancelled, failed) builds it again, concurrently, so the
// sync writes that go on meanwhile are never blocked.
import type { Pipeline } from '../db/catalog.js';
import { qualified, quoteIdent, quoteLiteral } from '../db/ident.js';
import type { Pool, Queryable } from '../db/pool.js';
import { createHnswIndexSql, hnswName } from './vector-table.js';

type VectorTableOf = Pick<Pipeline, 'vectorSchema' | 'vectorTable' | 'config'>;

/**
 * The build's maintenance_work_mem: room for the whole graph (about twice the table), so pgvector
 * never falls back to its slower on-disk build, within a bound a shared server can spare.
 */
const BUILD_MEMORY_MIN = 64 * 2 ** 20;
const BUILD_MEMORY_MAX = 2 ** 30;

/** Drops the HNSW index if the vector table is empty: a walk is about to fill it. */
export async function deferIndexIfEmpty(db: Queryable, p: VectorTableOf): Promise<boolean> {
  const table = qualified(p.vectorSchema, p.vectorTable);
  const { rows } = await db.query<{ empty: boolean }>(
    `select not exists (select 1 from ${table}) as empty`,
  );
  if (!rows[0]?.empty) return false;
  await db.query(`drop index if exists ${qualified(p.vectorSchema, hnswName(p.vectorTable))}`);
  return true;
}

/** Whether the table has a valid HNSW index under its usual name. */
export async function hasValidIndex(db: Queryable, p: VectorTableOf): Promise<boolean> {
  const { rows } = await db.query<{ valid: boolean }>(
    `select i.indisvalid as valid from pg_index i
      where i.indexrelid = to_regclass($1)`,
    [`${quoteIdent(p.vectorSchema)}.${quoteIdent(hnswName(p.vectorTable))}`],
  );
  return rows[0]?.valid === true;
}

/**
 * Builds the HNSW index if the table has none (a no-op otherwise), concurrently: writes go on. An
 * earlier build that was cut short leaves an invalid index behind, which goes first. Returns
 * whether it built one. `CREATE INDEX CONCURRENTLY` cannot run in a transaction, so it takes a
 * connection of its own, whose settings it resets before handing it back.
 */
export async function buildIndex(pool: Pool, p: VectorTableOf): Promise<boolean> {
  if (await hasValidIndex(pool, p)) return false;
  const index = qualified(p.vectorSchema, hnswName(p.vectorTable));
  const table = qualified(p.vectorSchema, p.vectorTable);
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query(`drop index concurrently if exists ${index}`);
    const { rows } = await client.query<{ bytes: string }>(
      `select pg_table_size(${quoteLiteral(table)}::regclass)::text as bytes`,
    );
    const wanted = Math.min(
      Math.max(2 * Number(rows[0]?.bytes ?? 0), BUILD_MEMORY_MIN),
      BUILD_MEMORY_MAX,
    );
    const kb = Math.ceil(wanted / 1024);
    // Never lower what the server already grants; a worker that dies stops the build soon after.
    await client.query(
      `select set_config('maintenance_work_mem',
                greatest(${kb}, pg_size_bytes(current_setting('maintenance_work_mem')) / 1024)::text || 'kB',
                false),
              set_config('client_connection_check_interval', '5s', false)`,
    );
    await client.query(createHnswIndexSql(p, { concurrently: true }));
    await client.query('reset maintenance_work_mem; reset client_connection_check_interval');
    return true;
  } catch (err) {
    broken = true;
    throw err;
  } finally {
    client.release(broken);
  }
}
