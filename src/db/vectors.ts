// A pipeline's vector table, as the sync stages read and write it: fetch reads each key's chunk 0
// to see whether its content changed, write replaces, deletes and refreshes rows inside its
// compare-and-set transaction. (The staged chunks are written into it by src/db/staging.ts, in one
// statement; search, verify and the re-embed's DDL keep their own queries.)
import type { EmbeddedHead } from '../batch/decide.js';
import type { Pipeline } from './catalog.js';
import { qualified } from './ident.js';
import type { Queryable } from './pool.js';
import { keyMatches } from './source.js';
import { readColumnHeads, writeTarget } from './destination.js';
import { encodeVectorArray, vectorTypeOid } from './vector-binary.js';

export { encodeVectorArray, vectorTypeOid };

type VectorTable = Pick<Pipeline, 'vectorSchema' | 'vectorTable'>;
type HeadsOf = Pick<
  Pipeline,
  'config' | 'vectorSchema' | 'vectorTable' | 'sourceSchema' | 'sourceTable' | 'primaryKey'
>;

/** The vector table of `p`, quoted. */
export const vectorTable = (p: VectorTable): string => qualified(p.vectorSchema, p.vectorTable);

/**
 * The content hash and generation of each key's vectors now (chunk 0 stands for the row). For a
 * column pipeline, the record's, of the rows whose column holds a vector.
 */
export async function readEmbeddedHeads(
  db: Queryable,
  p: HeadsOf,
  keys: readonly string[],
): Promise<Map<string, EmbeddedHead>> {
  const target = writeTarget(p);
  if (target) {
    const heads = await readColumnHeads(db, p, target, keys);
    return new Map(heads.map((r) => [r.pk, r]));
  }
  const { rows } = await db.query<EmbeddedHead & { pk: string }>(
    `select pk, content_hash as "contentHash", generation from ${vectorTable(p)}
      where pk = any($1::text[]) and chunk_index = 0`,
    [keys],
  );
  return new Map(rows.map((r) => [r.pk, r]));
}

/** All chunks of these keys. */
export async function deleteVectors(
  db: Queryable,
  p: VectorTable,
  keys: readonly string[],
): Promise<void> {
  await db.query(`delete from ${vectorTable(p)} where pk = any($1::text[])`, [keys]);
}

/** Sets each key's metadata on its chunks where it differs; returns how many chunks changed. */
export async function updateMetadata(
  db: Queryable,
  p: VectorTable,
  rows: readonly { pk: string; metadata: string }[],
): Promise<number> {
  const { rowCount } = await db.query(
    `update ${vectorTable(p)} v set metadata = s.metadata
       from unnest($1::text[], $2::jsonb[]) as s(pk, metadata)
      where v.pk = s.pk and v.metadata is distinct from s.metadata`,
    [rows.map((r) => r.pk), rows.map((r) => r.metadata)],
  );
  return rowCount ?? 0;
}

/**
 * After a TRUNCATE: vectors whose source row no longer exists. Returns how many chunks went. The
 * caller holds the pipeline's exclusive lock.
 */
export async function sweepDeleted(db: Queryable, p: Pipeline): Promise<number> {
  const { rowCount } = await db.query(
    `delete from ${vectorTable(p)} v
      where not exists (select 1 from ${qualified(p.sourceSchema, p.sourceTable)} s
                         where ${keyMatches(p, 's', 'v.pk')})`,
  );
  return rowCount ?? 0;
}

/** New chunks with their vectors, as a walk's batch writes them. */
export interface ChunkColumns {
  pk: string[];
  index: number[];
  chunk: string[];
  vector: number[][];
  metadata: string[];
  contentHash: string[];
}

/**
 * Inserts chunks in one statement; the caller has deleted the keys' old ones. The vectors go as one
 * binary array parameter (pgvector's own binary form), which the server reads without parsing
 * text: measured, parsing 20,000 vectors of 512 dimensions from text cost it about 0.8 s of CPU.
 */
export async function insertChunks(
  db: Queryable,
  p: VectorTable,
  generation: number,
  c: ChunkColumns,
): Promise<number> {
  const vectors = encodeVectorArray(c.vector, await vectorTypeOid(db));
  const { rowCount } = await db.query(
    `insert into ${vectorTable(p)}
       (pk, chunk_index, embedding, chunk, metadata, content_hash, generation)
     select s.pk, s.i, s.e, s.chunk, s.metadata, s.hash, $7
       from unnest($1::text[], $2::int[], $3::vector[], $4::text[], $5::jsonb[], $6::text[])
         as s(pk, i, e, chunk, metadata, hash)`,
    [c.pk, c.index, vectors, c.chunk, c.metadata, c.contentHash, generation],
  );
  return rowCount ?? 0;
}
