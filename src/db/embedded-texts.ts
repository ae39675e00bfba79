// embedsync.embedded_texts (sql/000014): every query of the content-addressed record of texts. A
// batch claims the texts of a request before sending it (claimTexts), stores their vectors after
// (storeTexts) or lets them go when the request failed (releaseTexts); the poller prunes the
// entries past the retention (pruneTexts). Keys are hex here and bytea in the table.
import type { TextLook } from '../texts/once.js';
import type { Queryable } from './pool.js';
import { encodeVectorArray, vectorTypeOid } from './vectors.js';

/**
 * How long a batch holds the texts of one request: above the longest turn a request waits for in
 * the token buckets (20 s) plus the provider's request timeout, so a live holder never loses it.
 */
export const TEXT_LEASE_MS = 60_000;

/**
 * One statement: takes the lease on each key nobody holds (new, released, or whose lease expired;
 * a key this very holder held, as a retry of the same batch does after a crash), and returns for
 * each key whether it was taken and, if not, its vector when known. Keys are taken in sorted order,
 * so two batches claiming overlapping texts never deadlock.
 */
export async function claimTexts(
  q: Queryable,
  keys: readonly string[],
  holder: string,
  leaseMs: number = TEXT_LEASE_MS,
): Promise<TextLook[]> {
  const sorted = [...new Set(keys)].sort();
  const { rows } = await q.query<TextLook>(
    `with wanted as (
       select decode(k, 'hex') as key, n from unnest($1::text[]) with ordinality as w(k, n)
     ), claimed as (
       insert into embedsync.embedded_texts as t (key, holder, lease_until, stored_at)
       select key, $2, clock_timestamp() + $3 * interval '1 millisecond', now()
         from wanted order by n
       on conflict (key) do update
         set holder = excluded.holder, lease_until = excluded.lease_until,
             stored_at = excluded.stored_at
         where t.embedding is null
           and (t.lease_until < clock_timestamp() or t.holder = excluded.holder)
       returning t.key
     )
     select encode(w.key, 'hex') as key, c.key is not null as claimed,
            case when c.key is null then t.embedding::text end as embedding
       from wanted w
       left join claimed c on c.key = w.key
       left join embedsync.embedded_texts t on t.key = w.key`,
    [sorted, holder, leaseMs],
  );
  return rows;
}

/** The vectors (pgvector's text form) of texts this batch embedded; their leases end. */
export async function storeTexts(
  q: Queryable,
  texts: { key: string[]; embedding: number[][] },
): Promise<void> {
  const order = texts.key.map((_, i) => i).sort((a, b) => (texts.key[a]! < texts.key[b]! ? -1 : 1));
  // In pgvector's binary form, as the vector tables' inserts (insertChunks): parsing them from text
  // cost PostgreSQL about 0.04 s of CPU per 1,000 texts of 512 dimensions.
  const vectors = encodeVectorArray(
    order.map((i) => texts.embedding[i] ?? []),
    await vectorTypeOid(q),
  );
  await q.query(
    `update embedsync.embedded_texts t
        set embedding = s.embedding, holder = null, lease_until = null, stored_at = now()
       from unnest($1::text[], $2::vector[]) as s(key, embedding)
      where t.key = decode(s.key, 'hex')`,
    [order.map((i) => texts.key[i]), vectors],
  );
}

/** The request failed: the texts this holder still holds go at once, for any batch to take. */
export async function releaseTexts(
  q: Queryable,
  keys: readonly string[],
  holder: string,
): Promise<void> {
  await q.query(
    `delete from embedsync.embedded_texts
      where key = any(array(select decode(k, 'hex') from unnest($1::text[]) as k))
        and holder = $2 and embedding is null`,
    [[...keys], holder],
  );
}

/**
 * Deletes up to `limit` entries stored more than `retentionMs` ago (vectors past the retention,
 * and leases their holders abandoned); returns how many went. Called again while it returns
 * `limit`: batches of a few thousand never hold many row locks at once.
 */
export async function pruneTexts(q: Queryable, retentionMs: number, limit = 5000): Promise<number> {
  const { rowCount } = await q.query(
    `delete from embedsync.embedded_texts
      where ctid = any(array(
        select ctid from embedsync.embedded_texts
         where stored_at < now() - $1 * interval '1 millisecond'
           and (lease_until is null or lease_until < now())
         limit $2))`,
    [retentionMs, limit],
  );
  return rowCount ?? 0;
}

/** Of these keys, those whose vector is on record (a dry run counts them as reused). */
export async function knownTexts(q: Queryable, keys: readonly string[]): Promise<Set<string>> {
  if (keys.length === 0) return new Set();
  const { rows } = await q.query<{ key: string }>(
    `select encode(key, 'hex') as key from embedsync.embedded_texts
      where key = any(select decode(k, 'hex') from unnest($1::text[]) k) and embedding is not null`,
    [keys],
  );
  return new Set(rows.map((r) => r.key));
}

/** How many texts are on record (for the benchmarks and the tests). */
export async function countTexts(q: Queryable): Promise<{ known: number; leased: number }> {
  const { rows } = await q.query<{ known: number; leased: number }>(
    `select count(embedding)::int as known, (count(*) - count(embedding))::int as leased
       from embedsync.embedded_texts`,
  );
  return rows[0] ?? { known: 0, leased: 0 };
}

/** The vectors on record (pgvector's text form) of those of these keys that have one. */
export async function readTextVectors(
  q: Queryable,
  keys: readonly string[],
): Promise<Map<string, string>> {
  if (keys.length === 0) return new Map();
  const { rows } = await q.query<{ key: string; embedding: string }>(
    `select encode(key, 'hex') as key, embedding::text as embedding from embedsync.embedded_texts
      where key = any(select decode(k, 'hex') from unnest($1::text[]) k) and embedding is not null`,
    [[...new Set(keys)]],
  );
  return new Map(rows.map((r) => [r.key, r.embedding]));
}

/**
 * Vectors paid for outside a claim (a provider batch's output): on record for any batch to reuse,
 * taking the place of a lease on the same text (its holder then finds the vector and pays nothing
 * more); a vector already on record stays.
 */
export async function recordTexts(
  q: Queryable,
  texts: { key: string[]; embedding: number[][] },
): Promise<void> {
  // One row per key (a statement may not update a row twice), in key order (no deadlocks).
  const byKey = new Map(texts.key.map((k, i) => [k, texts.embedding[i] ?? []]));
  const keys = [...byKey.keys()].sort();
  const vectors = encodeVectorArray(
    keys.map((k) => byKey.get(k) ?? []),
    await vectorTypeOid(q),
  );
  await q.query(
    `insert into embedsync.embedded_texts as t (key, embedding, stored_at)
     select decode(s.key, 'hex'), s.embedding, now()
       from unnest($1::text[], $2::vector[]) as s(key, embedding)
     on conflict (key) do update
       set embedding = excluded.embedding, holder = null, lease_until = null, stored_at = now()
       where t.embedding is null`,
    [keys, vectors],
  );
}
