// What a source table's DDL means for its pipeline, decided from the catalog row and what
// pg_catalog says now: pure, so it is tested without a database. src/capture/schema-check.ts acts
// on the verdict.
import {
  captureMode,
  destinationColumn,
  embedColumns,
  isEventsOnly,
  type AnyPipelineConfig,
  type PipelineConfig,
  type SinkConfig,
} from '../config/pipeline.js';
import { sinkColumns } from '../sinks/payload.js';
import type { KeyColumn } from '../db/catalog.js';
import type { BaseState, HeldState } from '../db/pipeline-state.js';
import { isEmbeddable, type ColumnInfo } from './inspect.js';

export interface LiveColumn extends ColumnInfo {
  attnum: number;
}

/** The source table as it is now, found by its oid. */
export interface LiveTable {
  relid: number;
  schema: string;
  table: string;
  columns: LiveColumn[];
  primaryKey: KeyColumn[];
  /** Whether the table is in the publication of logical capture (decision 29). */
  published?: boolean;
  /** Why its updates and deletes cannot be published (no primary key, REPLICA IDENTITY NOTHING). */
  replicaIdentityGap?: string;
}

/** What the catalog remembers of a pipeline's source. */
export interface CatalogSource {
  name: string;
  sourceSchema: string;
  sourceTable: string;
  primaryKey: KeyColumn[];
  /** An events-only pipeline's reads only its key. */
  config: AnyPipelineConfig;
  pendingConfig: PipelineConfig | null;
  /** The state the pipeline is in, or returns to once its hold ends. */
  baseState: BaseState;
  /** Attribute numbers of the columns read, when the table was last in shape; null before that. */
  sourceColumns: Record<string, number> | null;
}

export interface SchemaVerdict {
  /** The table's name now, when the catalog still has another: the pipeline follows it. */
  renamedTo?: { schema: string; table: string };
  /** Why syncs must wait, and the fix. */
  hold?: { state: HeldState; reason: string };
  /** Attribute numbers of the columns read, as they are now (those that exist). */
  columns?: Record<string, number>;
}

type Role = 'key' | 'embed' | 'metadata' | 'sink';

interface ReadColumn {
  column: string;
  role: Role;
  /** Read by the live generation's config; by the pending one's. */
  live: boolean;
  pending: boolean;
}

/**
 * Every column the pipeline reads, once, under its strongest role (key, then embed, then metadata,
 * then a sink's `columns`, which its deliveries read: decision 23).
 */
export function readColumns(
  p: Pick<CatalogSource, 'primaryKey' | 'config' | 'pendingConfig'>,
): ReadColumn[] {
  const byName = new Map<string, ReadColumn>();
  const add = (column: string, role: Role, which: 'live' | 'pending') => {
    const c = byName.get(column) ?? { column, role, live: false, pending: false };
    c[which] = true;
    byName.set(column, c);
  };
  for (const k of p.primaryKey) {
    add(k.name, 'key', 'live');
    if (p.pendingConfig) add(k.name, 'key', 'pending');
  }
  const configs: [PipelineConfig, 'live' | 'pending'][] = isEventsOnly(p.config)
    ? []
    : [[p.config, 'live']];
  if (p.pendingConfig) configs.push([p.pendingConfig, 'pending']);
  for (const [config, which] of configs)
    for (const c of embedColumns(config)) add(c.column, 'embed', which);
  for (const [config, which] of configs) for (const c of config.metadata) add(c, 'metadata', which);
  const sinks = (p.config as { sinks?: SinkConfig[] }).sinks ?? [];
  for (const column of sinks.flatMap(sinkColumns))
    if (!byName.has(column)) add(column, 'sink', 'live');
  return [...byName.values()];
}

export function judgeSchema(p: CatalogSource, live: LiveTable | undefined): SchemaVerdict {
  const was = `${p.sourceSchema}.${p.sourceTable}`;
  if (!live) {
    const then = isEventsOnly(p.config) ? '' : ` and npx embedsync backfill --table ${p.name}`;
    return {
      hold: {
        state: 'source_missing',
        reason:
          `table ${was} is gone: restore it, then run npx embedsync apply --config <file>${then}; ` +
          `or remove the pipeline: npx embedsync remove --table ${p.name}`,
      },
    };
  }
  const verdict: SchemaVerdict = {};
  if (live.schema !== p.sourceSchema || live.table !== p.sourceTable) {
    verdict.renamedTo = { schema: live.schema, table: live.table };
  }
  const table = `${live.schema}.${live.table}`;
  const byName = new Map(live.columns.map((c) => [c.name, c]));
  const byNumber = new Map(live.columns.map((c) => [c.attnum, c]));
  const columns: Record<string, number> = {};
  const problems: string[] = [];

  for (const c of readColumns(p)) {
    // A re-embed under way is the fix for columns only the live generation reads: its cut-over
    // drops them.
    if (p.baseState === 'reembedding' && !c.pending) continue;
    const now = byName.get(c.column);
    const column = `column "${c.column}" of ${table}`;
    if (now) {
      columns[c.column] = now.attnum;
      const key = p.primaryKey.find((k) => k.name === c.column);
      if (key && key.type !== now.type) {
        problems.push(
          `${column}, in its primary key, is now ${now.type} (was ${key.type}): ${fix(p, c)}`,
        );
      } else if (c.role === 'embed' && !isEmbeddable(now)) {
        const remedy = fix(p, c, 'remove it from', 'or change its type back');
        problems.push(`${column} is now ${now.type}, which has no text form to embed: ${remedy}`);
      }
      continue;
    }
    const recorded = p.sourceColumns?.[c.column];
    const renamed = recorded === undefined ? undefined : byNumber.get(recorded);
    if (renamed) {
      const remedy = fix(p, c, `rename it to "${renamed.name}" in`, 'or rename the column back');
      problems.push(`${column} was renamed to "${renamed.name}": ${remedy}`);
    } else {
      problems.push(`${column} is gone: ${fix(p, c, 'remove it from', 'or restore it')}`);
    }
  }
  const destination = destinationProblem(p, byName, byNumber, table);
  if (destination.attnum !== undefined) columns[destination.column] = destination.attnum;
  if (destination.problem) problems.push(destination.problem);
  const unpublished = publicationProblem(p, live, table);
  // A lost key of a logically captured table is said once, with the publication it left.
  const keyLost = unpublished !== undefined && live.primaryKey.length === 0;
  if (problems.length === 0 && !keyLost) {
    const declared = p.primaryKey.map((k) => k.name).join(', ');
    const actual = live.primaryKey.map((k) => k.name).join(', ');
    if (declared !== actual) {
      problems.push(
        `the primary key of ${table} is now (${actual}), not (${declared}): ${fix(p, { role: 'key' })}`,
      );
    }
  }
  if (unpublished) problems.push(unpublished);
  verdict.columns = columns;
  if (problems.length > 0) verdict.hold = { state: 'schema_changed', reason: problems.join('; ') };
  return verdict;
}

/**
 * A logically captured table out of the publication: the event trigger of sql/000022 took it out
 * when it lost its replica identity, so the application's updates and deletes go on; none of its
 * changes are captured until apply puts it back, and a backfill and verify --requeue then catch
 * them up.
 */
function publicationProblem(p: CatalogSource, live: LiveTable, table: string): string | undefined {
  if (captureMode(p.config) !== 'logical' || (live.published === true && !live.replicaIdentityGap))
    return undefined;
  const apply = 'npx embedsync apply --config <file>';
  // A backfill embeds the rows as they are; the vectors of rows deleted meanwhile are verify's to
  // find. An events-only pipeline's missed changes are not delivered.
  const then = isEventsOnly(p.config)
    ? ' (changes made meanwhile are not delivered)'
    : `, then npx embedsync backfill --table ${p.name} (it catches up the rows written meanwhile) ` +
      `and npx embedsync verify --table ${p.name} --requeue (it removes the vectors of rows deleted meanwhile)`;
  if (live.replicaIdentityGap)
    return (
      `${table} cannot be captured logically: ${live.replicaIdentityGap}, and its updates and deletes would fail in the publication, ` +
      `so it is out of it and its changes are not captured: restore its primary key (or set REPLICA IDENTITY DEFAULT), run ${apply} (it puts the table back)${then}`
    );
  return `${table} is not in the publication of logical capture, so its changes are not captured: run ${apply} (it puts the table back)${then}`;
}

/** The commands that put the pipeline right once the column is dealt with. */
function fix(
  p: CatalogSource,
  c: Pick<ReadColumn, 'role'> & Partial<ReadColumn>,
  edit = '',
  otherwise = '',
): string {
  const apply = 'npx embedsync apply --config <file>';
  if (c.role === 'key' && isEventsOnly(p.config))
    return `run ${apply} (it reads the primary key again)`;
  if (c.role === 'key') {
    const backfill = `npx embedsync backfill --table ${p.name}`;
    return `run ${apply} (it reads the primary key again), then ${backfill} (the rows' keys changed)`;
  }
  if (c.role === 'sink')
    return `${edit} the columns of the pipeline's sinks (${otherwise}), then run ${apply}`;
  const field = c.role === 'embed' ? 'embed.columns' : 'metadata';
  // A config that no longer reads it is already pending: the re-embed swaps it in.
  if (c.live && c.pending === false && p.pendingConfig) {
    return `the live generation still reads it, the pending config does not: run npx embedsync reembed --table ${p.name}`;
  }
  const then = c.role === 'embed' ? ` and npx embedsync reembed --table ${p.name}` : '';
  return `${edit} the pipeline's ${field} (${otherwise}), then run ${apply}${then}`;
}

/**
 * A column pipeline's destination column (decision 18): not read as content, so its changes never
 * reach the capture, but a write into a column that is gone or holds other vectors would fail, so
 * the pipeline waits, naming it and the fix.
 */
function destinationProblem(
  p: CatalogSource,
  byName: ReadonlyMap<string, LiveColumn>,
  byNumber: ReadonlyMap<number, LiveColumn>,
  table: string,
): { column: string; attnum?: number; problem?: string } {
  if (isEventsOnly(p.config)) return { column: '' };
  const column = destinationColumn(p.config);
  if (column === undefined) return { column: '' };
  const name = `column "${column}" of ${table}, the pipeline's destination,`;
  const apply = 'npx embedsync apply --config <file>';
  const backfill = `npx embedsync backfill --table ${p.name}`;
  const want = `${p.config.vectorType}(${p.config.embedding.dimensions})`;
  const now = byName.get(column);
  if (now) {
    if (now.type === want) return { column, attnum: now.attnum };
    return {
      column,
      attnum: now.attnum,
      problem: `${name} is now ${now.type}, not ${want}: change it back, or drop it and run ${apply} (it adds the column), then ${backfill}`,
    };
  }
  const recorded = p.sourceColumns?.[column];
  const renamed = recorded === undefined ? undefined : byNumber.get(recorded);
  if (renamed)
    return {
      column,
      problem: `${name} was renamed to "${renamed.name}": rename it back (a pipeline's destination cannot change)`,
    };
  return {
    column,
    problem: `${name} is gone: run ${apply} (it adds the column again), then ${backfill}`,
  };
}
