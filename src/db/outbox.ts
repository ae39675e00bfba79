// embedsync.outbox (sql/000001, 000012, 000014): every query of that table. The capture functions
// insert into it in the user's transaction (src/capture/triggers.ts builds them from outboxKeysInsert): one row
// per statement and operation, its keys in `pks`, or in `pk` when there is one. The poller claims,
// stamps its planned batches, starts them and deletes them (docs/architecture.md, decision 4).
// Claimed rows stay locked (and invisible to other pollers, which skip them) until the claim
// commits; stamped rows are left to the poller that stamped them for a grace period.
import type { KeyColumn } from './catalog.js';
import { quoteIdent } from './ident.js';
import { HELD_STATES } from './pipeline-state.js';
import type { PoolClient, Queryable } from './pool.js';
import { keyText } from './source.js';

/** Still listened to by the poller: `verify --requeue`, a resume and operators wake it at once. */
export const NOTIFY_CHANNEL = 'embedsync_outbox';

/** How a single change enters the outbox; followed by the rows' `select` or `values`. */
export const OUTBOX_INSERT = 'insert into embedsync.outbox (pipeline, pk, op)';

/**
 * How a statement's changes enter the outbox: one row per operation, however many rows it changed.
 * `keys` is SQL yielding rows of (keys text[], op "char"); a null or empty array queues nothing, and a
 * lone key goes in `pk` as OUTBOX_INSERT would put it. Names are qualified: it runs in SECURITY
 * DEFINER functions.
 */
export const outboxKeysInsert = (pipeline: string, keys: string): string =>
  `insert into embedsync.outbox (pipeline, pk, pks, op)
    select ${pipeline},
           case when pg_catalog.cardinality(k.keys) operator(pg_catalog.=) 1 then k.keys[1] end,
           case when pg_catalog.cardinality(k.keys) operator(pg_catalog.>) 1 then k.keys end,
           k.op
      from (${keys}) k
     where pg_catalog.cardinality(k.keys) operator(pg_catalog.>) 0`;

/** Insert, update, delete, truncate ('*' as the key). */
export type OutboxOp = 'I' | 'U' | 'D' | 'T';

/** One claimed change: a key of an outbox row. */
export interface OutboxRow {
  id: number;
  pipeline: string;
  pk: string;
  op: OutboxOp;
  enqueuedAt: Date;
  /** For a key of a row of several (`pks`): its place among them, from 1, and how many there are. */
  part?: { index: number; of: number };
  /** A batch an earlier claim planned and stamped (stampBatches): its workflow id. */
  startedAs?: string;
}

/**
 * Oldest changes first, at most `limit` keys, skipping pipelines whose sync is paused or held (their
 * source table changed shape: src/capture/schema-check.ts), and batches another claim stamped less
 * than `stampGraceMs` ago (it is starting them). A row of many keys may be taken in part: its first
 * keys, the rest left for the next claim (deleteClaimed); a stamped batch is always taken whole,
 * past the limit if need be (a poller with a smaller limit may take one). No cursor: ids commit out
 * of order.
 */
export async function claimOutboxBatch(
  client: PoolClient,
  limit: number,
  stampGraceMs = 0,
): Promise<OutboxRow[]> {
  const { rows } = await client.query<{
    id: number;
    pipeline: string;
    pk: string;
    op: OutboxOp;
    enqueuedAt: Date;
    index: number | null;
    of: number | null;
    startedAs: string | null;
  }>(
    `with claimed as (
       select o.id, o.pipeline, o.pk, o.pks, o.op, o.enqueued_at, o.started_as
         from embedsync.outbox o
        where not exists (select 1 from embedsync.pipelines p
                           where p.name = o.pipeline and (p.sync_paused or p.state = any($2::text[])))
          and (o.started_at is null or o.started_at < now() - $3 * interval '1 millisecond')
        order by o.id
        limit $1::int
          for update of o skip locked)
     select id, pipeline, pk, op, "enqueuedAt", index, of, "startedAs"
       from (select c.id, c.pipeline, coalesce(k.pk, c.pk) as pk, c.op,
                    c.enqueued_at as "enqueuedAt", k.index::int as index,
                    cardinality(c.pks) as of, c.started_as as "startedAs",
                    row_number() over (order by c.id, k.index) as n
               from claimed c
               left join lateral unnest(
                 case when c.started_as is null then c.pks[1:$1::int] else c.pks end)
                 with ordinality as k(pk, index) on true) taken
      where n <= $1::int or "startedAs" is not null
      order by id, index`,
    [limit, HELD_STATES, stampGraceMs],
  );
  return rows.map(({ index, of, startedAs, ...change }) => ({
    ...change,
    ...(index === null || of === null ? {} : { part: { index, of } }),
    ...(startedAs === null ? {} : { startedAs }),
  }));
}

/** A planned batch, as stampBatches records it. */
export interface StampedBatch {
  workflowId: string;
  pipeline: string;
  keys: readonly string[];
  sweep: boolean;
  enqueuedAt: Date;
}

/**
 * Records each planned batch as one outbox row stamped with its workflow id, before the workflows
 * start; returns the rows' ids, in order. The claimed rows it stands for are deleted after
 * (deleteClaimed), in the same transaction.
 */
export async function stampBatches(
  client: PoolClient,
  batches: readonly StampedBatch[],
): Promise<number[]> {
  if (batches.length === 0) return [];
  const { rows } = await client.query<{ id: number }>(
    `insert into embedsync.outbox (pipeline, pk, pks, op, enqueued_at, started_as, started_at)
     select b.pipeline,
            case when b.sweep then '*' when cardinality(k.keys) = 1 then k.keys[1] end,
            case when not b.sweep and cardinality(k.keys) > 1 then k.keys end,
            case when b.sweep then 'T' else 'U' end::"char", b.enqueued_at, b.workflow_id, now()
       from unnest($1::text[], $2::jsonb[], $3::boolean[], $4::timestamptz[], $5::text[])
              with ordinality as b(pipeline, keys, sweep, enqueued_at, workflow_id, n)
      cross join lateral (select array(select jsonb_array_elements_text(b.keys)) as keys) k
      order by b.n
     returning id`,
    [
      batches.map((b) => b.pipeline),
      batches.map((b) => JSON.stringify(b.keys)),
      batches.map((b) => b.sweep),
      batches.map((b) => b.enqueuedAt.toISOString()),
      batches.map((b) => b.workflowId),
    ],
  );
  return rows.map((r) => r.id);
}

/**
 * Stamped rows this claim is starting: stamped now, so no other claim takes them meanwhile; or, a
 * start having failed (`now` false), free for the very next claim.
 */
export async function restamp(
  client: Queryable,
  ids: readonly number[],
  now = true,
): Promise<void> {
  if (ids.length === 0) return;
  await client.query(
    `update embedsync.outbox set started_at = case when $2 then now() else '-infinity' end
      where id = any($1::bigint[]) and started_as is not null`,
    [ids, now],
  );
}

/** The stamped rows of batches whose workflows have started. */
export async function deleteStarted(client: Queryable, ids: readonly number[]): Promise<void> {
  if (ids.length === 0) return;
  await client.query('delete from embedsync.outbox where id = any($1::bigint[])', [ids]);
}

/**
 * Deletes the rows a claim took, once their workflows have started; a row of which the claim took
 * only the first keys keeps the others, for the next claim.
 */
export async function deleteClaimed(
  client: PoolClient,
  claimed: readonly OutboxRow[],
): Promise<void> {
  // Keys are claimed from the first on, so the last one taken says how many.
  const last = new Map<number, { index: number; of: number }>();
  for (const c of claimed)
    if (c.part && c.part.index > (last.get(c.id)?.index ?? 0)) last.set(c.id, c.part);
  const partly = [...last].filter(([, p]) => p.index < p.of);
  const kept = new Set(partly.map(([id]) => id));
  const whole = [...new Set(claimed.map((c) => c.id))].filter((id) => !kept.has(id));
  await client.query('delete from embedsync.outbox where id = any($1::bigint[])', [whole]);
  if (partly.length === 0) return;
  await client.query(
    `update embedsync.outbox o set pks = o.pks[t.taken + 1:]
       from unnest($1::bigint[], $2::int[]) as t(id, taken) where o.id = t.id`,
    [partly.map(([id]) => id), partly.map(([, p]) => p.index)],
  );
}

/** Queues changes of the pipeline's keys, in the order given; returns how many were queued. */
export async function enqueueKeys(
  db: Queryable,
  pipeline: string,
  changes: readonly { pk: string; op: OutboxOp }[],
): Promise<number> {
  const { rowCount } = await db.query(
    `${OUTBOX_INSERT}
     select $1, k.pk, k.op::"char" from unnest($2::text[], $3::text[]) with ordinality as k(pk, op, n) order by k.n`,
    [pipeline, changes.map((c) => c.pk), changes.map((c) => c.op)],
  );
  return rowCount ?? 0;
}

/**
 * Queues a pipeline's changes read from the WAL (decision 29): one outbox row per run (a
 * transaction's keys of one operation), in order. A key arrives as its columns' texts; they are cast
 * to the key's types and turned into key text by keyText, exactly as the capture triggers do, under
 * the pool's KEY_TEXT_SETTINGS. A TRUNCATE's run queues '*'. Throws a data exception when a text no
 * longer parses as its column's type (the column was retyped).
 */
export async function enqueueKeyRuns(
  db: Queryable,
  p: { name: string; primaryKey: KeyColumn[] },
  runs: readonly { op: OutboxOp; keys: readonly (readonly string[])[] }[],
): Promise<number> {
  // One row per key (a TRUNCATE: one row of nulls), numbered by its run.
  const run: number[] = [];
  const ops: string[] = [];
  const columns: (string | null)[][] = p.primaryKey.map(() => []);
  runs.forEach((r, i) => {
    const keys = r.op === 'T' ? [p.primaryKey.map(() => null)] : r.keys;
    for (const key of keys) {
      run.push(i);
      ops.push(r.op);
      p.primaryKey.forEach((_, c) => columns[c]?.push(key[c] ?? null));
    }
  });
  if (run.length === 0) return 0;
  const names = p.primaryKey.map((_, c) => `c${c}`);
  const typed = p.primaryKey.map((k, c) => `u.c${c}::${k.type} as ${quoteIdent(k.name)}`);
  const arrays = p.primaryKey.map((_, c) => `$${c + 4}::text[]`);
  const { rowCount } = await db.query(
    outboxKeysInsert(
      '$1::text',
      `select case when r.op = 'T' then array['*'] else r.keys end as keys, r.op
         from (select k.run, min(k.op)::"char" as op,
                      array_agg(${keyText(p, 'k')} order by k.n) filter (where k.op <> 'T') as keys
                 from (select u.run, u.op, u.n, ${typed.join(', ')}
                         from unnest($2::int[], $3::text[], ${arrays.join(', ')})
                              with ordinality as u(run, op, ${names.join(', ')}, n)) k
                group by k.run order by k.run) r`,
    ),
    [p.name, run, ops, ...columns],
  );
  return rowCount ?? 0;
}

/** A removed pipeline's changes that were still waiting. */
export async function dropQueuedChanges(db: Queryable, pipeline: string): Promise<void> {
  await db.query('delete from embedsync.outbox where pipeline = $1', [pipeline]);
}

/** Wakes the pollers for the pipeline; in a transaction, at its commit. */
export async function wakePollers(db: Queryable, pipeline: string): Promise<void> {
  await db.query('select pg_notify($1, $2)', [NOTIFY_CHANNEL, pipeline]);
}
