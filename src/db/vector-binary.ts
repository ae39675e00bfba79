// pgvector's binary form, in which embedsync sends vectors to the server: reading text costs the
// server CPU (measured: about 0.8 s for 20,000 vectors of 512 dimensions).
import type { Queryable } from './pool.js';

// The vector type's oid differs from database to database; a connection stays in one.
const vectorOids = new WeakMap<object, number>();

/** The vector type's oid in this database, as encodeVectorArray wants it. */
export async function vectorTypeOid(db: Queryable): Promise<number> {
  const known = vectorOids.get(db);
  if (known !== undefined) return known;
  const { rows } = await db.query<{ oid: number }>(`select 'vector'::regtype::oid::int as oid`);
  const oid = rows[0]?.oid;
  if (oid === undefined) throw new Error('the vector type is missing');
  vectorOids.set(db, oid);
  return oid;
}

/**
 * A one-dimensional array of vectors in PostgreSQL's binary array format (array_recv), each element
 * in pgvector's binary form (vector_recv): dimensions and a reserved int16, then big-endian float4s.
 */
export function encodeVectorArray(vectors: readonly (readonly number[])[], oid: number): Buffer {
  const size = vectors.reduce((n, v) => n + 4 + 4 + 4 * v.length, 20);
  const out = Buffer.alloc(size);
  let at = out.writeInt32BE(1, 0); // dimensions of the array
  at = out.writeInt32BE(0, at); // no nulls
  at = out.writeInt32BE(oid, at);
  at = out.writeInt32BE(vectors.length, at);
  at = out.writeInt32BE(1, at); // lower bound
  for (const v of vectors) {
    at = out.writeInt32BE(4 + 4 * v.length, at);
    at = out.writeInt16BE(v.length, at);
    at = out.writeInt16BE(0, at);
    for (const x of v) at = out.writeFloatBE(x, at);
  }
  return out;
}
