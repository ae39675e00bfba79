// The schema check: each pipeline's source table as pg_catalog has it now, judged against the
// catalog (src/capture/schema-drift.ts), and the verdict carried out: a renamed table is followed,
// a pipeline whose table lost what it reads is held with the fix, and one whose table is back in
// shape resumes. The poller runs it every few seconds and status before it shows anything: one
// catalog query for all pipelines, and a transaction only for those whose verdict changes
// something.
import {
  followRenamedSource,
  getAnyPipeline,
  isEventsPipeline,
  recordSourceIdentity,
  type KeyColumn,
} from '../db/catalog.js';
import { requeueFailedBatchesNow } from '../db/dead-letters.js';
import {
  CATALOG_LOCK,
  changeState,
  isHeld,
  type BaseState,
  type PipelineState,
} from '../db/pipeline-state.js';
import { withTransaction, type Pool, type PoolClient } from '../db/pool.js';
import type { Logger } from '../log.js';
import type { PipelineConfig } from '../config/pipeline.js';
import {
  judgeSchema,
  type CatalogSource,
  type LiveColumn,
  type LiveTable,
  type SchemaVerdict,
} from './schema-drift.js';
import { installCaptureSql } from './triggers.js';
import { CAPTURE_PUBLICATION } from '../db/capture-slot.js';
import { createViewSql } from './vector-table.js';

interface SourceRow extends CatalogSource {
  state: PipelineState;
  stateReason: string | null;
  sourceRelid: number | null;
  live: LiveTable | undefined;
}

interface Row {
  name: string;
  source_schema: string;
  source_table: string;
  primary_key: KeyColumn[];
  config: PipelineConfig;
  pending_config: PipelineConfig | null;
  state: PipelineState;
  base_state: BaseState;
  state_reason: string | null;
  source_columns: Record<string, number> | null;
  source_relid: number | null;
  live_relid: number | null;
  live_schema: string | null;
  live_table: string | null;
  live_columns: LiveColumn[] | null;
  live_primary_key: KeyColumn[] | null;
  live_published: boolean | null;
  live_replica_identity_gap: string | null;
}

// The table is found by its oid; by name only for a row that has none yet (recorded before oids
// were).
const SOURCE_OID = `coalesce(p.source_relid,
  to_regclass(quote_ident(p.source_schema) || '.' || quote_ident(p.source_table))::oid)`;

// The schema check's own read: each pipeline joined with its source table as pg_catalog has it now
// (columns, primary key), one query for all pipelines. It only reads the catalog; what the check
// writes there goes through src/db/catalog.ts and the state machine.
const SOURCES_SQL = `
  select p.name, p.source_schema, p.source_table, p.primary_key, p.config, p.pending_config, p.state,
         coalesce(p.held_state, p.state) as base_state, p.state_reason, p.source_columns, p.source_relid,
         c.oid as live_relid, n.nspname as live_schema, c.relname as live_table,
         (select jsonb_agg(jsonb_build_object('name', a.attname, 'attnum', a.attnum,
                   'type', format_type(a.atttypid, a.atttypmod), 'typname', t.typname, 'category', t.typcategory)
                   order by a.attnum)
            from pg_attribute a join pg_type t on t.oid = a.atttypid
           where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped) as live_columns,
         (select coalesce(jsonb_agg(jsonb_build_object('name', a.attname, 'type', format_type(a.atttypid, a.atttypmod))
                   order by k.ord), '[]')
            from pg_index i
            cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
            join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
           where i.indrelid = c.oid and i.indisprimary) as live_primary_key,
         exists (select 1 from pg_publication_rel r join pg_publication pub on pub.oid = r.prpubid
                  where pub.pubname = '${CAPTURE_PUBLICATION}' and r.prrelid = c.oid) as live_published,
         embedsync.replica_identity_gap(c.oid) as live_replica_identity_gap
    from embedsync.pipelines p
    left join pg_class c
      on c.oid = ${SOURCE_OID}
     and c.relkind in ('r', 'p')
    left join pg_namespace n on n.oid = c.relnamespace
   where $1::text is null or p.name = $1
   order by p.name`;

async function readSources(
  db: Pool | PoolClient,
  name?: string,
  lock = false,
): Promise<SourceRow[]> {
  const { rows } = await db.query<Row>(`${SOURCES_SQL}${lock ? ' for update of p' : ''}`, [
    name ?? null,
  ]);
  return rows.map((r) => ({
    name: r.name,
    sourceSchema: r.source_schema,
    sourceTable: r.source_table,
    primaryKey: r.primary_key,
    config: r.config,
    pendingConfig: r.pending_config,
    baseState: r.base_state,
    sourceColumns: r.source_columns,
    state: r.state,
    stateReason: r.state_reason,
    sourceRelid: r.source_relid,
    live:
      r.live_relid === null || r.live_schema === null || r.live_table === null
        ? undefined
        : {
            relid: r.live_relid,
            schema: r.live_schema,
            table: r.live_table,
            columns: r.live_columns ?? [],
            primaryKey: r.live_primary_key ?? [],
            published: r.live_published ?? false,
            replicaIdentityGap: r.live_replica_identity_gap ?? undefined,
          },
  }));
}

export interface SchemaCheckResult {
  pipeline: string;
  verdict: SchemaVerdict;
  /** What the check did, in words; empty when the pipeline was left as it was. */
  changes: string[];
}

/** Whether carrying out the verdict would change anything: most checks find nothing to do. */
function needsAction(row: SourceRow, verdict: SchemaVerdict): boolean {
  if (verdict.renamedTo) return true;
  if (verdict.hold)
    return row.state !== verdict.hold.state || row.stateReason !== verdict.hold.reason;
  if (isHeld(row.state)) return true;
  if (!row.live) return false;
  return row.sourceRelid !== row.live.relid || !sameColumns(row.sourceColumns, verdict.columns);
}

const sameColumns = (
  a: Record<string, number> | null,
  b: Record<string, number> | undefined,
): boolean =>
  JSON.stringify(Object.entries(a ?? {}).sort()) === JSON.stringify(Object.entries(b ?? {}).sort());

export interface CheckOptions {
  log?: Logger;
  pipeline?: string;
  /**
   * Wait for an apply or a re-embed step under way (default); else leave a pipeline that needs
   * acting on to the next look.
   */
  wait?: boolean;
}

/**
 * Checks every pipeline (or one), acting only where something changed; safe to run from several
 * processes.
 */
export async function checkSourceSchemas(
  pool: Pool,
  { log, pipeline, wait = true }: CheckOptions = {},
): Promise<SchemaCheckResult[]> {
  const results: SchemaCheckResult[] = [];
  for (const row of await readSources(pool, pipeline)) {
    const verdict = judgeSchema(row, row.live);
    if (!needsAction(row, verdict)) {
      results.push({ pipeline: row.name, verdict, changes: [] });
      continue;
    }
    const acted = await withTransaction(pool, (client) =>
      reconcileSource(client, row.name, log, wait),
    );
    results.push(acted ?? { pipeline: row.name, verdict, changes: [] });
  }
  return results;
}

/**
 * Judges one pipeline and carries out the verdict, in the caller's transaction (apply and the
 * re-embed run it in theirs). Undefined when there is no such pipeline, or (not waiting) when the
 * catalog is busy.
 */
export async function reconcileSource(
  client: PoolClient,
  pipeline: string,
  log?: Logger,
  wait = true,
): Promise<SchemaCheckResult | undefined> {
  if (wait) {
    await client.query('select pg_advisory_xact_lock($1)', [CATALOG_LOCK]);
  } else {
    const { rows } = await client.query<{ ok: boolean }>(
      'select pg_try_advisory_xact_lock($1) as ok',
      [CATALOG_LOCK],
    );
    if (!rows[0]?.ok) return undefined;
  }
  const [row] = await readSources(client, pipeline, true);
  if (!row) return undefined;
  const verdict = judgeSchema(row, row.live);
  const changes: string[] = [];
  if (!needsAction(row, verdict)) return { pipeline, verdict, changes };
  const { live } = row;
  if (verdict.renamedTo) {
    const { schema, table } = verdict.renamedTo;
    await followRenamedSource(client, pipeline, { schema, table });
    changes.push(
      `follows its source table, renamed from ${row.sourceSchema}.${row.sourceTable} to ${schema}.${table}`,
    );
  }
  if (live) {
    // The oid always; the columns' numbers only while they are all there, so a renamed one is still
    // known.
    await recordSourceIdentity(
      client,
      pipeline,
      live.relid,
      verdict.hold ? null : (verdict.columns ?? {}),
    );
  }
  let resumed = false;
  if (verdict.hold) {
    if (row.state !== verdict.hold.state || row.stateReason !== verdict.hold.reason) {
      const { state: hold, reason } = verdict.hold;
      await changeState(client, pipeline, { name: 'held', hold, reason });
      changes.push(`${verdict.hold.state}: ${verdict.hold.reason}`);
    }
  } else {
    const state = (await changeState(client, pipeline, { name: 'released' }))?.state;
    if (state) changes.push(`its source table is in shape again: back to ${state}`);
    resumed = state !== undefined || verdict.renamedTo !== undefined;
  }
  if (live && changes.length > 0) {
    const p = await getAnyPipeline(client, pipeline);
    // Triggers follow a renamed table by themselves; installing them again keeps them as apply
    // would.
    if (resumed) for (const sql of installCaptureSql(p)) await client.query(sql);
    // A dropped column takes the view with it (cascade): it is made again from the columns there
    // are. An events-only pipeline has none.
    if (!isEventsPipeline(p))
      for (const sql of createViewSql(
        p,
        live.columns.map((c) => c.name),
      ))
        await client.query(sql);
    // Batches that failed on the old shape are sent round again now, not after their backoff.
    if (resumed) await requeueFailedBatchesNow(client, pipeline);
  }
  for (const change of changes) {
    if (verdict.hold)
      log?.warn({ pipeline, source: live ? `${live.schema}.${live.table}` : undefined }, change);
    else log?.info({ pipeline }, change);
  }
  return { pipeline, verdict, changes };
}

/** Where the pipeline's source table is now, found by its oid; undefined when it is gone. */
export async function currentSourceTable(
  db: Pool | PoolClient,
  pipeline: string,
): Promise<{ schema: string; table: string } | undefined> {
  const { rows } = await db.query<{ schema: string; table: string }>(
    `select n.nspname as schema, c.relname as table
       from embedsync.pipelines p
       join pg_class c on c.oid = ${SOURCE_OID}
       join pg_namespace n on n.oid = c.relnamespace
      where p.name = $1`,
    [pipeline],
  );
  return rows[0];
}

// undefined_column, undefined_table: what a query on a source table that changed shape fails with.
const SCHEMA_ERROR_CODES = new Set(['42703', '42P01']);

export const isSchemaError = (err: unknown): boolean =>
  err instanceof Error && 'code' in err && SCHEMA_ERROR_CODES.has(String(err.code));

/** A batch met a source table that no longer has what the pipeline reads; retrying cannot help. */
export class SchemaChangedError extends Error {
  constructor(
    readonly pipeline: string,
    detail: string,
  ) {
    super(`pipeline "${pipeline}": ${detail}`);
    this.name = 'SchemaChangedError';
  }
}
