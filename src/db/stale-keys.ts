// embedsync.stale_keys (sql/000018): every query of that table (docs/architecture.md, decision 19).
// With onContentChange: clear, a key whose content changed is marked in the user's transaction and
// left out of the view and of search until its vectors are written again. The capture functions
// insert with staleKeysInsert; a writer settles the keys it wrote, in its transaction, deleting only
// the marks its read of the source could see; search and the view read staleKeyFilter.
import {
  destinationColumn,
  isEventsOnly,
  type AnyPipelineConfig,
  type PipelineConfig,
} from '../config/pipeline.js';
import type { Pipeline } from './catalog.js';
import type { EmbeddedHead } from '../batch/decide.js';
import { qualified, quoteLiteral } from './ident.js';
import type { PoolClient, Queryable } from './pool.js';
import { keyMatches, readSourceRows } from './source.js';
import { readEmbeddedHeads } from './vectors.js';

/** The key that stands for every key of the pipeline: a TRUNCATE marks it. */
export const ALL_KEYS = '*';

/**
 * A config whose stale vectors are hidden by marks: it clears, into a vector table. (In column mode
 * the vector itself is set to NULL, src/capture/triggers.ts.)
 */
export const clearsOnChange = (
  config: Pick<PipelineConfig, 'onContentChange' | 'destination'>,
): boolean => config.onContentChange === 'clear' && destinationColumn(config) === undefined;

/**
 * Whether capture marks changed keys: the live config clears. A re-embed to a config that clears
 * starts clearing at its swap; one away from clear drops the marks there (settleAfterSwap).
 */
export const marksChanges = (p: { config: AnyPipelineConfig }): boolean =>
  !isEventsOnly(p.config) && clearsOnChange(p.config);

/**
 * SQL for a capture function: marks the keys yielded by `keys` (SQL yielding rows of one text
 * column `pk`), with the user's transaction id. A plain insert: no conflict to wait on. Qualified
 * names: it runs in SECURITY DEFINER functions.
 */
export const staleKeysInsert = (pipeline: string, keys: string): string =>
  `insert into embedsync.stale_keys (pipeline, pk, xid)
    select ${pipeline}, s.pk, pg_catalog.pg_current_xact_id() from (${keys}) s(pk)`;

/**
 * SQL true when the row `alias` (with its key text in `alias.pk`) is not marked stale; only for a
 * pipeline whose live config clears.
 */
export const staleKeyFilter = (p: Pick<Pipeline, 'name'>, alias: string): string =>
  `not exists (select 1 from embedsync.stale_keys m
                where m.pipeline = ${quoteLiteral(p.name)} and m.pk in (${alias}.pk, '${ALL_KEYS}'))`;

/**
 * The snapshot of this statement, taken under the key locks just before the source rows are read
 * again: a transaction it sees as committed is seen by that read (a later statement's snapshot), so
 * its content is what gets written.
 */
export async function readSnapshot(db: Queryable): Promise<string> {
  const { rows } = await db.query<{ s: string }>('select pg_current_snapshot()::text as s');
  return rows[0]?.s ?? '';
}

/**
 * After a write to the live generation, in its transaction: the keys among `keys` that have no
 * vectors now, or vectors of their content as read (`current`, read after `snapshot`), lose the
 * marks `snapshot` sees. A row left with other vectors (refused, a dead letter; dropped as stale,
 * even a deleted row's, whose key may be inserted again) keeps its marks, and so does a change
 * committed after the read. Returns how many marks went.
 */
export async function settleStaleKeys(
  db: Queryable,
  p: Pipeline,
  keys: readonly string[],
  current: ReadonlyMap<string, { contentHash: string }>,
  snapshot: string,
): Promise<number> {
  if (!clearsOnChange(p.config) || keys.length === 0) return 0;
  const heads: Map<string, EmbeddedHead> = await readEmbeddedHeads(db, p, keys);
  const settled = keys.filter((k) => {
    const head = heads.get(k);
    if (!head) return true; // nothing left to serve
    const row = current.get(k);
    return head.contentHash === row?.contentHash && head.generation === p.generation;
  });
  if (settled.length === 0) return 0;
  const { rowCount } = await db.query(
    `delete from embedsync.stale_keys
      where pipeline = $1 and pk = any($2::text[]) and pg_visible_in_snapshot(xid, $3::pg_snapshot)`,
    [p.name, settled, snapshot],
  );
  return rowCount ?? 0;
}

/**
 * After a TRUNCATE's sweep, under the pipeline's exclusive lock: the marks `snapshot` sees of keys
 * no longer in the source table, and of every key (the TRUNCATE's own).
 */
export async function sweepStaleKeys(
  db: Queryable,
  p: Pipeline,
  snapshot: string,
): Promise<number> {
  const { rowCount } = await db.query(
    `delete from embedsync.stale_keys m
      where m.pipeline = $1 and pg_visible_in_snapshot(m.xid, $2::pg_snapshot)
        and case when m.pk = '${ALL_KEYS}' then true  -- a case, so '*' is never cast to the key type
                 else not exists (select 1 from ${qualified(p.sourceSchema, p.sourceTable)} s
                                   where ${keyMatches(p, 's', 'm.pk')}) end`,
    [p.name, snapshot],
  );
  return rowCount ?? 0;
}

/** Every mark of the pipeline: it is removed, or no longer clears. */
export async function dropStaleKeys(db: Queryable, pipeline: string): Promise<void> {
  await db.query('delete from embedsync.stale_keys where pipeline = $1', [pipeline]);
}

/** How many of the pipeline's keys are hidden now (null: every key, after a TRUNCATE). */
export async function countStaleKeys(db: Queryable, pipeline: string): Promise<number | null> {
  const { rows } = await db.query<{ n: number; all: boolean }>(
    `select count(distinct pk)::int as n, bool_or(pk = '${ALL_KEYS}') as all
       from embedsync.stale_keys where pipeline = $1`,
    [pipeline],
  );
  return rows[0]?.all ? null : (rows[0]?.n ?? 0);
}

/**
 * At a re-embed's swap, writers held back: the new live table was written by the re-embed, which
 * settles nothing, so the marked keys whose new vectors match their content are settled now; a
 * config that no longer clears leaves no marks.
 */
export async function settleAfterSwap(db: PoolClient, live: Pipeline): Promise<void> {
  if (!clearsOnChange(live.config)) return dropStaleKeys(db, live.name);
  const snapshot = await readSnapshot(db);
  const { rows } = await db.query<{ pk: string }>(
    `select distinct pk from embedsync.stale_keys
      where pipeline = $1 and pk <> '${ALL_KEYS}' and pg_visible_in_snapshot(xid, $2::pg_snapshot)`,
    [live.name, snapshot],
  );
  const keys = rows.map((r) => r.pk);
  if (keys.length === 0) return;
  const current = new Map((await readSourceRows(db, live, keys)).map((r) => [r.pk, r]));
  await settleStaleKeys(db, live, keys, current, snapshot);
}
