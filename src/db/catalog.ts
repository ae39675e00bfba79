// Terminology (docs/architecture.md, "Words"):
//   pipeline      one source table + one embedding config + one vector table; or, events-only,
//                 one source table whose changes go to sinks with nothing embedded
//   source table  the user's table; embedsync only adds triggers to it
//   vector table  one row per chunk of each source row
//   outbox        one row per captured change
//   batch         the source keys one sync workflow handles
//   generation    bumps whenever the embedding config changes; every vector row records it
//   content hash  hash of the exact text sent to the model plus the config's fingerprint
import {
  destinationColumn,
  type AnyPipelineConfig,
  type EventsPipelineConfig,
  type PipelineConfig,
} from '../config/pipeline.js';
import { fitIdent } from './ident.js';
import { wakePollers } from './outbox.js';
import type { PipelineState } from './pipeline-state.js';
import type { Pool, PoolClient, Queryable } from './pool.js';

export interface KeyColumn {
  name: string;
  /** As format_type() prints it, e.g. bigint, uuid, character varying(20). */
  type: string;
}

export interface Pipeline {
  name: string;
  sourceSchema: string;
  sourceTable: string;
  primaryKey: KeyColumn[];
  vectorSchema: string;
  vectorTable: string;
  config: PipelineConfig;
  generation: number;
  syncPaused: boolean;
  /** Written only through the state machine (src/db/pipeline-state.ts). */
  state: PipelineState;
  /** A changed config waiting for its re-embed, and the generation it will become. */
  pendingConfig: PipelineConfig | null;
  pendingGeneration: number | null;
}

/**
 * A pipeline with no embedding: its changes go straight to its sinks (decision 23). It has no
 * vectors, no generations beyond the first and no pending config.
 */
export interface EventsPipeline {
  eventsOnly: true;
  name: string;
  sourceSchema: string;
  sourceTable: string;
  primaryKey: KeyColumn[];
  config: EventsPipelineConfig;
  generation: number;
  syncPaused: boolean;
  state: PipelineState;
}

/** Any catalog row: what the poller, the sinks, status, apply and remove deal with. */
export type AnyPipeline = Pipeline | EventsPipeline;

export const isEventsPipeline = (p: AnyPipeline): p is EventsPipeline => 'eventsOnly' in p;

/** What embedding work (backfill, re-embed, verify, search, reindex, …) says of such a pipeline. */
export class EventsOnlyPipelineError extends Error {
  constructor(readonly pipeline: string) {
    super(
      `pipeline ${pipeline} is events-only: it embeds nothing and has no vectors (it delivers its table's changes to its sinks)`,
    );
    this.name = 'EventsOnlyPipelineError';
  }
}

export class PipelineNotFoundError extends Error {
  constructor(
    readonly pipeline: string,
    detail?: string,
  ) {
    super(
      detail ??
        `no pipeline named "${pipeline}" and no pipeline syncing a table of that name (npx embedsync pipelines lists them)`,
    );
    this.name = 'PipelineNotFoundError';
  }
}

interface PipelineRow {
  name: string;
  source_schema: string;
  source_table: string;
  primary_key: KeyColumn[];
  vector_schema: string | null;
  vector_table: string | null;
  config: AnyPipelineConfig;
  generation: number;
  sync_paused: boolean;
  state: PipelineState;
  pending_config: PipelineConfig | null;
  pending_generation: number | null;
}

const fromRow = (r: PipelineRow): AnyPipeline => {
  const common = {
    name: r.name,
    sourceSchema: r.source_schema,
    sourceTable: r.source_table,
    primaryKey: r.primary_key,
    generation: r.generation,
    syncPaused: r.sync_paused,
    state: r.state,
  };
  // Only an events-only pipeline has no vector table (upsertPipeline).
  if (r.vector_schema === null || r.vector_table === null)
    return { eventsOnly: true, ...common, config: r.config as EventsPipelineConfig };
  return {
    ...common,
    vectorSchema: r.vector_schema,
    vectorTable: r.vector_table,
    config: r.config as PipelineConfig,
    pendingConfig: r.pending_config,
    pendingGeneration: r.pending_generation,
  };
};

/** The pipeline of embedding work: an events-only one is refused, by name. */
function embedding(p: AnyPipeline): Pipeline {
  if (isEventsPipeline(p)) throw new EventsOnlyPipelineError(p.name);
  return p;
}

/** The table a re-embed builds the next generation in, before it swaps it in. */
export const swapTableName = (vectorTable: string): string => `${vectorTable}_swap`;

/**
 * The column a re-embed of a column pipeline builds the next generation in, beside the live one,
 * before it swaps it in by rename (docs/architecture.md, decision 20).
 */
export const shadowColumnName = (column: string): string => fitIdent(column, '_next');

/** The pending config as its generation writes it: a column pipeline into the shadow column. */
function buildingConfig(config: PipelineConfig): PipelineConfig {
  const column = destinationColumn(config);
  if (column === undefined || !config.destination) return config;
  return { ...config, destination: { ...config.destination, column: shadowColumnName(column) } };
}

/**
 * The pipeline as one generation sees it: the live generation writes the vector table with the live
 * config; the pending one (during a re-embed) writes the swap table with the new config, and a
 * column pipeline's pending one writes the shadow column (its config names it as the destination).
 * Any other generation is gone: its work is dropped, because a newer generation already covers it.
 */
export function atGeneration(p: Pipeline, generation: number | undefined): Pipeline | undefined {
  if (generation === undefined || generation === p.generation) return p;
  if (generation === p.pendingGeneration && p.pendingConfig && p.state === 'reembedding') {
    return {
      ...p,
      config: buildingConfig(p.pendingConfig),
      generation,
      vectorTable: swapTableName(p.vectorTable),
    };
  }
  return undefined;
}

/** A pipeline that embeds; EventsOnlyPipelineError for an events-only one. */
export async function getPipeline(
  db: Pool | PoolClient,
  name: string,
  lock: '' | 'for share' | 'for update' = '',
): Promise<Pipeline> {
  return embedding(await getAnyPipeline(db, name, lock));
}

export async function getAnyPipeline(
  db: Pool | PoolClient,
  name: string,
  lock: '' | 'for share' | 'for update' = '',
): Promise<AnyPipeline> {
  const { rows } = await db.query<PipelineRow>(
    `select * from embedsync.pipelines where name = $1 ${lock}`,
    [name],
  );
  const row = rows[0];
  if (!row) throw new PipelineNotFoundError(name);
  return fromRow(row);
}

/** A pipeline that embeds, or undefined; EventsOnlyPipelineError for an events-only one. */
export async function findPipeline(
  db: Pool | PoolClient,
  name: string,
): Promise<Pipeline | undefined> {
  const p = await findAnyPipeline(db, name);
  return p && embedding(p);
}

export async function findAnyPipeline(
  db: Pool | PoolClient,
  name: string,
): Promise<AnyPipeline | undefined> {
  const { rows } = await db.query<PipelineRow>(
    'select * from embedsync.pipelines where name = $1',
    [name],
  );
  return rows[0] && fromRow(rows[0]);
}

/** The pipelines that embed, by name. */
export async function listPipelines(db: Pool | PoolClient): Promise<Pipeline[]> {
  return (await listAnyPipelines(db)).filter((p): p is Pipeline => !isEventsPipeline(p));
}

export async function listAnyPipelines(db: Pool | PoolClient): Promise<AnyPipeline[]> {
  const { rows } = await db.query<PipelineRow>('select * from embedsync.pipelines order by name');
  return rows.map(fromRow);
}

/**
 * Every pipeline with its source table's oid, and whether it captures logically (decision 29): what
 * the WAL reader matches decoded changes against. All of them, not only the logical ones: a change
 * decoded was of a table in the publication when it was written, and is still to be queued after
 * its pipeline has been switched back to triggers.
 */
export async function listCapturePipelines(db: Queryable): Promise<
  {
    name: string;
    relid: number;
    keyColumns: string[];
    primaryKey: KeyColumn[];
    logical: boolean;
  }[]
> {
  const { rows } = await db.query<{
    name: string;
    relid: string;
    primary_key: KeyColumn[];
    logical: boolean;
  }>(
    `select name, source_relid::text as relid, primary_key,
            coalesce(config -> 'source' ->> 'capture' = 'logical', false) as logical
       from embedsync.pipelines where source_relid is not null order by name`,
  );
  return rows.map((r) => ({
    name: r.name,
    relid: Number(r.relid),
    keyColumns: r.primary_key.map((k) => k.name),
    primaryKey: r.primary_key,
    logical: r.logical,
  }));
}

/** This installation's id (see embedsync.settings). */
export async function instanceId(db: Pool | PoolClient): Promise<string> {
  const { rows } = await db.query<{ value: string }>(
    `select value from embedsync.settings where key = 'instance_id'`,
  );
  if (!rows[0]) throw new Error('embedsync.settings has no instance_id: run the migrations');
  return rows[0].value;
}

/**
 * What users type after --table: a pipeline name, or a source table (schema-qualified or not) that
 * exactly one pipeline syncs.
 */
export async function resolvePipeline(
  db: Pool | PoolClient,
  tableOrName: string,
): Promise<Pipeline> {
  return embedding(await resolveAnyPipeline(db, tableOrName));
}

export async function resolveAnyPipeline(
  db: Pool | PoolClient,
  tableOrName: string,
): Promise<AnyPipeline> {
  const byName = await findAnyPipeline(db, tableOrName);
  if (byName) return byName;
  const [schema, table] = tableOrName.includes('.')
    ? tableOrName.split('.', 2)
    : [undefined, tableOrName];
  const matches = (await listAnyPipelines(db)).filter(
    (p) => p.sourceTable === table && (schema === undefined || p.sourceSchema === schema),
  );
  if (matches.length === 1 && matches[0]) return matches[0];
  if (matches.length > 1) {
    throw new PipelineNotFoundError(
      tableOrName,
      `several pipelines sync ${tableOrName} (${matches.map((p) => p.name).join(', ')}): name one`,
    );
  }
  throw new PipelineNotFoundError(tableOrName);
}

/** The pipeline other than `except` whose vector table this is, if any. */
export async function vectorTableOwner(
  db: Queryable,
  schema: string,
  table: string,
  except: string,
): Promise<string | undefined> {
  const { rows } = await db.query<{ name: string }>(
    'select name from embedsync.pipelines where vector_schema = $1 and vector_table = $2 and name <> $3',
    [schema, table, except],
  );
  return rows[0]?.name;
}

// The catalog's writes. The state columns are the state machine's (src/db/pipeline-state.ts); the
// table walk's counters are src/db/walk-progress.ts's.

/**
 * Records an applied pipeline: a new one starts in the state column's default, an existing one
 * keeps its state (apply moves it by an event) and its source table's name (the schema check
 * follows renames).
 */
export async function upsertPipeline(
  db: Queryable,
  p: AnyPipeline,
  sourceRelid: number,
): Promise<void> {
  const vectors = isEventsPipeline(p)
    ? { vectorSchema: null, vectorTable: null, pendingConfig: null, pendingGeneration: null }
    : p;
  await db.query(
    `insert into embedsync.pipelines
       (name, source_schema, source_table, primary_key, vector_schema, vector_table, config, pending_config,
        pending_generation, source_relid)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     on conflict (name) do update
       set config = excluded.config, primary_key = excluded.primary_key, pending_config = excluded.pending_config,
           pending_generation = excluded.pending_generation, source_relid = excluded.source_relid,
           updated_at = now()`,
    [
      p.name,
      p.sourceSchema,
      p.sourceTable,
      JSON.stringify(p.primaryKey),
      vectors.vectorSchema,
      vectors.vectorTable,
      JSON.stringify(p.config),
      vectors.pendingConfig && JSON.stringify(vectors.pendingConfig),
      vectors.pendingGeneration,
      sourceRelid,
    ],
  );
}

/** The pipeline's catalog row; removing its capture and queued changes is the caller's. */
export async function deletePipeline(db: Queryable, name: string): Promise<void> {
  await db.query('delete from embedsync.pipelines where name = $1', [name]);
}

/** A renamed or moved source table is followed (docs/architecture.md, decision 12). */
export async function followRenamedSource(
  db: Queryable,
  pipeline: string,
  to: { schema: string; table: string },
): Promise<void> {
  await db.query(
    'update embedsync.pipelines set source_schema = $2, source_table = $3, updated_at = now() where name = $1',
    [pipeline, to.schema, to.table],
  );
}

/**
 * The source table's oid, and its columns' numbers (null keeps the ones recorded, so a renamed
 * column is still known).
 */
export async function recordSourceIdentity(
  db: Queryable,
  pipeline: string,
  relid: number,
  columns: Record<string, number> | null,
): Promise<void> {
  await db.query(
    'update embedsync.pipelines set source_relid = $2, source_columns = coalesce($3, source_columns) where name = $1',
    [pipeline, relid, columns && JSON.stringify(columns)],
  );
}

/**
 * Sets the pipeline's sync pause; false when it already was in that state. Resuming wakes the
 * pollers at once: the changes that accumulated meanwhile are waiting.
 */
export async function setSyncPaused(
  pool: Pool,
  pipeline: string,
  paused: boolean,
): Promise<boolean> {
  const { rowCount } = await pool.query(
    `update embedsync.pipelines set sync_paused = $2, updated_at = now()
      where name = $1 and sync_paused <> $2`,
    [pipeline, paused],
  );
  const changed = (rowCount ?? 0) > 0;
  if (changed && !paused) await wakePollers(pool, pipeline);
  return changed;
}

/** The re-embed's swap: the pending generation and its config become the live ones. */
export async function switchGeneration(db: Queryable, pipeline: string): Promise<void> {
  await db.query(
    `update embedsync.pipelines
        set config = pending_config, generation = pending_generation, pending_config = null,
            pending_generation = null, updated_at = now()
      where name = $1`,
    [pipeline],
  );
}
