// Rebuilding a pipeline's HNSW index in place (docs/architecture.md, decision 24). Rows that churn
// leave the graph with dead tuples and worse links; REINDEX INDEX CONCURRENTLY builds a fresh copy
// beside the old one and swaps them, so reads and writes go on throughout: it takes only a SHARE
// UPDATE EXCLUSIVE lock on the table, and an ACCESS EXCLUSIVE lock on the index for the moment of
// the swap. An index left INVALID by a failed concurrent build is dropped and built again instead.
import { destinationColumn } from '../config/pipeline.js';
import type { Pipeline } from '../db/catalog.js';
import { qualified, quoteIdent } from '../db/ident.js';
import type { Pool } from '../db/pool.js';
import { UpkeepError } from './upkeep-error.js';
import { columnIndexName, wantsColumnIndex } from './destination-column.js';
import { buildIndex, DEFAULT_INDEX_BUILD_MEMORY, setBuildMemory } from './vector-index.js';
import { hnswName } from './vector-table.js';

type IndexOf = Pick<
  Pipeline,
  'name' | 'vectorSchema' | 'vectorTable' | 'config' | 'sourceSchema' | 'sourceTable'
>;

export interface ReindexResult {
  pipeline: string;
  /** schema.name of the index. */
  index: string;
  /** What was done: reindexed a valid index, or built one that was invalid or missing. */
  action: 'reindexed' | 'rebuilt invalid' | 'built missing';
  bytesBefore: number;
  bytesAfter: number;
}

/** The pipeline's index and the table it is on: the vector table's, or the column's (decision 18). */
export function indexTarget(p: IndexOf): { schema: string; index: string; table: string } {
  if (destinationColumn(p.config) !== undefined) {
    if (!wantsColumnIndex(p))
      throw new UpkeepError(
        `pipeline ${p.name} writes into column ${destinationColumn(p.config)} of ${p.sourceSchema}.${p.sourceTable} ` +
          `and has no index of embedsync's (destination.index is not set): nothing to reindex`,
      );
    return {
      schema: p.sourceSchema,
      index: columnIndexName(p),
      table: qualified(p.sourceSchema, p.sourceTable),
    };
  }
  return {
    schema: p.vectorSchema,
    index: hnswName(p.vectorTable),
    table: qualified(p.vectorSchema, p.vectorTable),
  };
}

/**
 * Rebuilds the pipeline's index without blocking reads or writes. REINDEX CONCURRENTLY cannot run in
 * a transaction: it takes a connection of its own, whose settings it resets (or drops it).
 */
export async function reindexPipeline(
  pool: Pool,
  p: IndexOf,
  maxMemory = DEFAULT_INDEX_BUILD_MEMORY,
): Promise<ReindexResult> {
  const { schema, index, table } = indexTarget(p);
  const name = `${schema}.${index}`;
  const regclass = `${quoteIdent(schema)}.${quoteIdent(index)}`;
  const state = await indexState(pool, regclass);
  const result = (action: ReindexResult['action'], bytesAfter: number): ReindexResult => ({
    pipeline: p.name,
    index: name,
    action,
    bytesBefore: state?.bytes ?? 0,
    bytesAfter,
  });
  if (!state?.valid) {
    // buildIndex drops an invalid index under the name, concurrently, and builds it again.
    await buildIndex(pool, p, maxMemory);
    const after = await indexState(pool, regclass);
    if (!after?.valid)
      throw new UpkeepError(`index ${name} of pipeline ${p.name} is still invalid after a build`);
    return result(state ? 'rebuilt invalid' : 'built missing', after.bytes);
  }
  const client = await pool.connect();
  let broken = false;
  try {
    // A REINDEX CONCURRENTLY cut short leaves its invalid copy, <index>_ccnew[N], behind.
    const { rows: leftovers } = await client.query<{ name: string }>(
      `select c.relname as name from pg_index i join pg_class c on c.oid = i.indexrelid
        where i.indrelid = $1::regclass and not i.indisvalid and c.relname like $2`,
      [table, `${index.replace(/[_%\\]/g, '\\$&')}\\_ccnew%`],
    );
    for (const l of leftovers)
      await client.query(`drop index concurrently if exists ${qualified(schema, l.name)}`);
    await setBuildMemory(client, table, maxMemory);
    await client.query(`set client_connection_check_interval = '5s'`);
    await client.query(`reindex index concurrently ${qualified(schema, index)}`);
    await client.query('reset maintenance_work_mem; reset client_connection_check_interval');
  } catch (err) {
    broken = true;
    throw new UpkeepError(
      `reindex of ${name} (pipeline ${p.name}) failed: ${(err as Error).message}`,
      { cause: err },
    );
  } finally {
    client.release(broken);
  }
  const after = await indexState(pool, regclass);
  return result('reindexed', after?.bytes ?? 0);
}

/** Whether the index exists, is valid, and its size in bytes; undefined when it does not exist. */
export async function indexState(
  pool: Pool,
  regclass: string,
): Promise<{ valid: boolean; bytes: number } | undefined> {
  const { rows } = await pool.query<{ valid: boolean; bytes: string }>(
    `select i.indisvalid as valid, pg_relation_size(i.indexrelid)::text as bytes
       from pg_index i where i.indexrelid = to_regclass($1)`,
    [regclass],
  );
  const r = rows[0];
  return r ? { valid: r.valid, bytes: Number(r.bytes) } : undefined;
}
