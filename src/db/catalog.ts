// Terminology (docs/architecture.md, "Words"):
//   pipeline      one source table + one embedding config + one vector table
//   source table  the user's table; embedsync only adds triggers to it
//   vector table  one row per chunk of each source row
//   outbox        one row per captured change
//   batch         the source keys one sync workflow handles
//   generation    bumps whenever the embedding config changes; every vector row records it
//   content hash  hash of the exact text sent to the model plus the config's fingerprint
import type { PipelineConfig } from '../config/pipeline.js';
import type { PipelineState } from './pipeline-state.js';
import type { Pool, PoolClient } from './pool.js';

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
  vector_schema: string;
  vector_table: string;
  config: PipelineConfig;
  generation: number;
  sync_paused: boolean;
  state: PipelineState;
  pending_config: PipelineConfig | null;
  pending_generation: number | null;
}

const fromRow = (r: PipelineRow): Pipeline => ({
  name: r.name,
  sourceSchema: r.source_schema,
  sourceTable: r.source_table,
  primaryKey: r.primary_key,
  vectorSchema: r.vector_schema,
  vectorTable: r.vector_table,
  config: r.config,
  generation: r.generation,
  syncPaused: r.sync_paused,
  state: r.state,
  pendingConfig: r.pending_config,
  pendingGeneration: r.pending_generation,
});

/** The table a re-embed builds the next generation in, before it swaps it in. */
export const swapTableName = (vectorTable: string): string => `${vectorTable}_swap`;

/**
 * The pipeline as one generation sees it: the live generation writes the vector table with the live
 * config; the pending one (during a re-embed) writes the swap table with the new config. Any other
 * generation is gone: its work is dropped, because a newer generation already covers it.
 */
export function atGeneration(p: Pipeline, generation: number | undefined): Pipeline | undefined {
  if (generation === undefined || generation === p.generation) return p;
  if (generation === p.pendingGeneration && p.pendingConfig && p.state === 'reembedding') {
    return { ...p, config: p.pendingConfig, generation, vectorTable: swapTableName(p.vectorTable) };
  }
  return undefined;
}

export async function getPipeline(
  db: Pool | PoolClient,
  name: string,
  lock: '' | 'for share' | 'for update' = '',
): Promise<Pipeline> {
  const { rows } = await db.query<PipelineRow>(
    `select * from embedsync.pipelines where name = $1 ${lock}`,
    [name],
  );
  const row = rows[0];
  if (!row) throw new PipelineNotFoundError(name);
  return fromRow(row);
}

export async function findPipeline(
  db: Pool | PoolClient,
  name: string,
): Promise<Pipeline | undefined> {
  const { rows } = await db.query<PipelineRow>(
    'select * from embedsync.pipelines where name = $1',
    [name],
  );
  return rows[0] && fromRow(rows[0]);
}

export async function listPipelines(db: Pool | PoolClient): Promise<Pipeline[]> {
  const { rows } = await db.query<PipelineRow>('select * from embedsync.pipelines order by name');
  return rows.map(fromRow);
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
  const byName = await findPipeline(db, tableOrName);
  if (byName) return byName;
  const [schema, table] = tableOrName.includes('.')
    ? tableOrName.split('.', 2)
    : [undefined, tableOrName];
  const matches = (await listPipelines(db)).filter(
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
