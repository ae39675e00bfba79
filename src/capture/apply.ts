// Applying a pipeline file: validate every pipeline against the database, then install the
// catalog rows, vector tables and capture triggers, all in one transaction: all or nothing.
import {
  canonicalJson,
  captureMode,
  embedColumns,
  embeddingFingerprint,
  ConfigError,
  isEventsOnly,
  type AnyPipelineConfig,
  type EventsPipelineConfig,
  type PipelineConfig,
} from '../config/pipeline.js';
import {
  deletePipeline,
  findAnyPipeline,
  getAnyPipeline,
  getPipeline,
  isEventsPipeline,
  upsertPipeline,
  vectorTableOwner,
  type AnyPipeline,
  type EventsPipeline,
  type Pipeline,
} from '../db/catalog.js';
import { sinkColumns } from '../sinks/payload.js';
import { parseTableName, qualified } from '../db/ident.js';
import { dropQueuedChanges } from '../db/outbox.js';
import { dropStaleKeys, marksChanges } from '../db/stale-keys.js';
import { withTransaction, type Pool, type PoolClient } from '../db/pool.js';
import {
  baseState,
  CATALOG_LOCK,
  changeState,
  INITIAL_STATE,
  nextState,
  type BaseState,
  type StateEvent,
} from '../db/pipeline-state.js';
import { vectorsPlace } from '../db/destination.js';
import { readProviderEnv } from '../config/env.js';
import { checkEmbeddingModel } from '../providers/models.js';
import { checkRerankModel } from '../providers/bedrock-rerank.js';
import { checkLocalRerankModel } from '../providers/local-models.js';
import { OpenAIProvider } from '../providers/openai.js';
import {
  checkProbedDimensions,
  needsProbe,
  probeWith,
  type DimensionsProbe,
} from '../providers/probe.js';
import { prepareDestinationColumn } from './destination-column.js';
import { buildIndex } from './vector-index.js';
import { buildTextIndex, checkTextSearchLanguage } from './text-index.js';
import { inspectTable, isEmbeddable, vectorColumnType, type TableInfo } from './inspect.js';
import { currentSourceTable, reconcileSource } from './schema-check.js';
import { installCaptureSql, removeCaptureSql } from './triggers.js';
import { createVectorTableSql, createViewSql, vectorColumnSql, viewName } from './vector-table.js';
import { deleteFailedDeliveries } from '../db/deliveries.js';
import {
  anyLogicalCapture,
  awaitCaptureSlotRead,
  captureSlotExists,
  dropCaptureSlotIfUnused,
  ensureCaptureSlot,
  mixedCaptureTables,
  replicaIdentityGap,
  syncCapturePublication,
  walLevel,
} from '../db/capture-slot.js';
import { logicalCaptureRefusal } from './capture-mode.js';

export type ApplyOutcome = 'created' | 'updated' | 'unchanged' | 'reembed pending';
export interface ApplyResult {
  pipeline: string;
  outcome: ApplyOutcome;
  vectorTable: string;
  /**
   * Where its vectors are: the vector table, or a column pipeline's column (`vectorsPlace`); empty
   * for an events-only pipeline, which has none.
   */
  vectors: string;
  /** Why the pipeline is still held after this apply (schema_changed), with the fix. */
  heldBecause?: string;
}

export interface ApplyOptions {
  /** OPENAI_BASE_URL: the server of OpenAI pipelines that name none; default the environment's. */
  openaiBaseURL?: string;
  /**
   * How a model embedsync does not know is asked for its dimensions (decision 26); false: it is not
   * asked, its declared dimensions are taken on trust (`apply --no-probe`). Default: one request
   * through the OpenAI provider.
   */
  probe?: DimensionsProbe | false;
}

export async function applyPipelines(
  pool: Pool,
  configs: readonly AnyPipelineConfig[],
  options: ApplyOptions = {},
): Promise<ApplyResult[]> {
  // Read only where an OpenAI pipeline may need it: a bad variable of another provider's is the
  // worker's to report.
  const openaiBaseURL =
    'openaiBaseURL' in options || !configs.some((c) => c.embedding?.provider === 'openai')
      ? options.openaiBaseURL
      : readProviderEnv().openai.baseURL;
  // Asked before the transaction: no catalog lock is held while a server answers.
  await probeUnknownModels(configs, openaiBaseURL, options.probe);
  const logical = await prepareLogicalCapture(pool, configs);
  const applied = withTransaction(pool, async (client) => {
    await client.query('select pg_advisory_xact_lock($1)', [CATALOG_LOCK]);
    // Dropped by a remove between the two: the changes of this commit on would be lost.
    if (logical && !(await captureSlotExists(client)))
      throw new Error('the replication slot of logical capture was dropped meanwhile; apply again');
    const results: ApplyResult[] = [];
    for (const [i, config] of configs.entries()) {
      try {
        results.push(
          isEventsOnly(config)
            ? await applyEventsOnly(client, config)
            : await applyOne(client, config, openaiBaseURL),
        );
      } catch (err) {
        throw inPipeline(i, err);
      }
    }
    const mixed = (await mixedCaptureTables(client))[0];
    if (mixed)
      throw new ConfigError(
        'source.capture',
        `pipelines ${mixed.pipelines.join(', ')} sync ${mixed.table} and differ in source.capture; a table is captured one way: give them the same`,
      );
    // In the same commit as the triggers dropped or installed: a change is captured one way or the
    // other (the slot already exists), at worst both.
    await syncCapturePublication(client);
    return results;
  });
  // A refused apply leaves no slot it made behind: a slot nobody reads keeps WAL.
  const results = await applied.catch(async (err: unknown) => {
    if (logical) await dropCaptureSlotIfUnused(pool).catch(() => undefined);
    throw err;
  });
  // The last logical pipeline back on triggers: the slot goes once a poller's reader has queued
  // what it held (with no poller running, after 10 s; a backfill covers what it held then).
  if (!logical && (await captureSlotExists(pool)) && !(await anyLogicalCapture(pool))) {
    const read = await awaitCaptureSlotRead(pool, 10_000);
    if (!read)
      throw new Error(
        'the pipelines went back to triggers, but no poller read what the replication slot still held within 10 s: ' +
          'start a poller and apply again (which drops the slot once read), or drop it yourself and backfill',
      );
    await dropCaptureSlotIfUnused(pool);
  }
  // Indexes of tables that hold rows are built concurrently, which no transaction may hold
  // (decisions 14, 18 and 27): the application's queries and embedsync's writes go on meanwhile. A
  // CREATE INDEX in the transaction, even IF NOT EXISTS, would take a SHARE lock on the table and
  // wait for its writers, with every query that arrives queued behind it. Each is a no-op when the
  // index is there and valid.
  for (const config of configs) {
    if (isEventsOnly(config)) continue;
    const p = await getPipeline(pool, config.name);
    await buildIndex(pool, p); // a column pipeline's only if destination.index asks for it
    await buildTextIndex(pool, p);
  }
  return results;
}

/** A pipeline's config error, named by its place in the file. */
function inPipeline(i: number, err: unknown): unknown {
  return err instanceof ConfigError
    ? new ConfigError(`pipelines[${i}]${err.field ? `.${err.field}` : ''}`, err.detail)
    : err;
}

/**
 * Every model embedsync does not know, checked against its server: it must have one, and answer
 * with the dimensions the pipeline declares.
 */
async function probeUnknownModels(
  configs: readonly AnyPipelineConfig[],
  openaiBaseURL: string | undefined,
  probe: DimensionsProbe | false | undefined,
): Promise<void> {
  if (probe === false) return;
  for (const [i, config] of configs.entries()) {
    if (isEventsOnly(config) || !needsProbe(config.embedding)) continue;
    try {
      checkEmbeddingModel(config, openaiBaseURL);
      const server = config.embedding.baseURL ?? openaiBaseURL ?? '';
      const ask = probe ?? probeWith(new OpenAIProvider({ baseURL: server }));
      await checkProbedDimensions(config.embedding, server, ask);
    } catch (err) {
      throw inPipeline(i, err);
    }
  }
}

/**
 * Refuses a logical pipeline the server or its config cannot serve, then creates the slot (and its
 * publication) before apply's transaction: a slot cannot be created in one that has written, and it
 * must exist before the triggers go so that no change falls between. True when a pipeline captures
 * logically.
 */
async function prepareLogicalCapture(
  pool: Pool,
  configs: readonly AnyPipelineConfig[],
): Promise<boolean> {
  if (!configs.some((c) => captureMode(c) === 'logical')) return false;
  const level = await walLevel(pool);
  for (const [i, config] of configs.entries()) {
    const refusal = logicalCaptureRefusal(config, level);
    if (refusal) throw inPipeline(i, refusal);
  }
  await ensureCaptureSlot(pool);
  return true;
}

async function applyOne(
  client: PoolClient,
  config: PipelineConfig,
  openaiBaseURL: string | undefined,
): Promise<ApplyResult> {
  const { schema, table } = parseSource(config);
  // A renamed source table is followed first, so the config may name it by its new name.
  await reconcileSource(client, config.name);
  const found = await findAnyPipeline(client, config.name);
  if (found && isEventsPipeline(found)) throw kindChange(found);
  const existing = found;
  const info = await inspectTable(client, schema, table);
  if (!info) throw new ConfigError('source.table', missingTable(`${schema}.${table}`, existing));
  const primaryKey = checkPrimaryKey(config, info);
  await checkReplicaIdentity(client, config, info);
  checkColumns(config, info);
  checkSinkColumns(config, info);
  // Dimensions the model cannot produce, or chunks longer than it takes, are refused here, not row
  // by row.
  checkEmbeddingModel(config, openaiBaseURL);
  checkRerankModel(config);
  checkLocalRerankModel(config);
  await checkTextSearchLanguage(client, { config });

  const vector = config.vectorTable
    ? parseTableName(config.vectorTable)
    : { schema, table: `${config.name}_embeddings` };
  // A held pipeline is planned from the state it returns to (the hold stays); the schema check below
  // decides whether it does.
  const base = existing && {
    ...existing,
    state: (await baseState(client, existing.name)) ?? INITIAL_STATE,
  };
  const candidate: Pipeline = {
    name: config.name,
    sourceSchema: schema,
    sourceTable: table,
    primaryKey,
    vectorSchema: vector.schema,
    vectorTable: vector.table,
    config,
    generation: existing?.generation ?? 1,
    syncPaused: existing?.syncPaused ?? false,
    state: existing?.state ?? INITIAL_STATE,
    pendingConfig: null,
    pendingGeneration: null,
  };
  if (existing) checkChange(existing, candidate);
  await checkVectorTable(client, candidate, existing);
  const { next, event } = base ? planChange(base, candidate) : { next: candidate };
  // Checked against the live config: a changed type or dimension waits for its re-embed, which
  // builds the new column beside the live one (decision 20).
  await prepareDestinationColumn(client, next, info);

  // A new table's HNSW index is made with it (instant: it is empty); one that exists keeps its own,
  // or gets it concurrently after the commit.
  const newTable = (await vectorColumnType(client, vector.schema, vector.table)) === undefined;
  // A new pipeline starts in the state column's default; an existing one moves by its event below.
  await upsertPipeline(client, next, info.relid);
  if (event) await changeState(client, next.name, event, { required: true });
  for (const sql of [
    ...createVectorTableSql(next, { index: newTable }),
    ...createViewSql(next, [...info.columns.keys()]),
  ])
    await client.query(sql);
  for (const sql of installCaptureSql(next)) await client.query(sql);
  // A pipeline that no longer clears keeps no marks (decision 19).
  if (!marksChanges(next)) await dropStaleKeys(client, next.name);
  // Before the check: a logically captured table that had lost its replica identity is put back
  // once it has one, which lifts the hold that named apply as the fix.
  await syncCapturePublication(client);
  // Validated against the live table: lifts a hold the new config fixes, or says what still needs
  // doing.
  const check = await reconcileSource(client, config.name);

  const outcome: ApplyOutcome = !existing
    ? 'created'
    : next.pendingConfig && !sameConfig(existing.pendingConfig, next.pendingConfig)
      ? 'reembed pending'
      : sameConfig(existing.config, next.config) &&
          sameConfig(existing.pendingConfig, next.pendingConfig)
        ? 'unchanged'
        : 'updated';
  const hold = check?.verdict.hold;
  const vectorTable = `${vector.schema}.${vector.table}`;
  return {
    pipeline: config.name,
    outcome,
    vectorTable,
    vectors: vectorsPlace(next),
    ...(hold ? { heldBecause: hold.reason } : {}),
  };
}

/**
 * An events-only pipeline (decision 23): the capture and the catalog row, no vector table. Every
 * change of every column is delivered, so its UPDATE capture compares no columns.
 */
async function applyEventsOnly(
  client: PoolClient,
  config: EventsPipelineConfig,
): Promise<ApplyResult> {
  const { schema, table } = parseSource(config);
  await reconcileSource(client, config.name);
  const existing = await findAnyPipeline(client, config.name);
  if (existing && !isEventsPipeline(existing)) throw kindChange(existing);
  const info = await inspectTable(client, schema, table);
  if (!info) throw new ConfigError('source.table', missingTable(`${schema}.${table}`, existing));
  const primaryKey = checkPrimaryKey(config, info);
  await checkReplicaIdentity(client, config, info);
  checkSinkColumns(config, info);
  if (existing && (existing.sourceSchema !== schema || existing.sourceTable !== table)) {
    throw new ConfigError(
      'source.table',
      `pipeline "${config.name}" already syncs ${existing.sourceSchema}.${existing.sourceTable}; remove it before pointing it elsewhere`,
    );
  }
  const next: EventsPipeline = {
    eventsOnly: true,
    name: config.name,
    sourceSchema: schema,
    sourceTable: table,
    primaryKey,
    config,
    generation: existing?.generation ?? 1,
    syncPaused: existing?.syncPaused ?? false,
    state: existing?.state ?? INITIAL_STATE,
  };
  await upsertPipeline(client, next, info.relid);
  for (const sql of installCaptureSql(next)) await client.query(sql);
  // Before the check: a logically captured table that had lost its replica identity is put back
  // once it has one, which lifts the hold that named apply as the fix.
  await syncCapturePublication(client);
  const check = await reconcileSource(client, config.name);
  const outcome: ApplyOutcome = !existing
    ? 'created'
    : canonicalJson(existing.config) === canonicalJson(config)
      ? 'unchanged'
      : 'updated';
  const hold = check?.verdict.hold;
  return {
    pipeline: config.name,
    outcome,
    vectorTable: '',
    vectors: '',
    ...(hold ? { heldBecause: hold.reason } : {}),
  };
}

/** A pipeline does not turn from embedding to events-only or back in place. */
function kindChange(existing: AnyPipeline): ConfigError {
  const was = isEventsPipeline(existing)
    ? 'delivers change events only'
    : `embeds into ${existing.vectorSchema}.${existing.vectorTable}`;
  return new ConfigError(
    isEventsPipeline(existing) ? 'embedding' : 'sinks',
    `pipeline "${existing.name}" ${was}; to change that, remove it (npx embedsync remove --table ${existing.name}) and apply it again`,
  );
}

/** The columns a sink's deliveries carry must be columns of the table. */
function checkSinkColumns(config: AnyPipelineConfig, info: TableInfo): void {
  const sinks = config.sinks;
  sinks.forEach((sink, i) => {
    const kind = 'notify' in sink ? 'notify' : 'webhook' in sink ? 'webhook' : 'workflow';
    sinkColumns(sink).forEach((column, j) => {
      if (!info.columns.has(column))
        throw new ConfigError(
          `sinks[${i}].${kind}.columns[${j}]`,
          `column "${column}" does not exist in ${info.schema}.${info.table}`,
        );
    });
  });
}

function missingTable(name: string, existing: AnyPipeline | undefined): string {
  if (!existing) return `table ${name} does not exist`;
  const now = `${existing.sourceSchema}.${existing.sourceTable}`;
  if (existing.state === 'source_missing') {
    const remove = `npx embedsync remove --table ${existing.name}`;
    return `table ${name} does not exist (it was dropped): restore it, or remove the pipeline: ${remove}`;
  }
  if (now !== name) {
    return (
      `table ${name} does not exist: it was renamed to ${now}, which pipeline "${existing.name}" follows; ` +
      `point source.table at ${now}`
    );
  }
  return `table ${name} does not exist`;
}

const sameConfig = (a: PipelineConfig | null, b: PipelineConfig | null): boolean =>
  canonicalJson(a) === canonicalJson(b);

/**
 * A change of what is embedded does not touch the live generation: the new config waits as the
 * pending one until a re-embed builds it in a table of its own and swaps it in. Anything else
 * (metadata, batch size) applies in place.
 */
function planChange(
  existing: Pipeline & { state: BaseState },
  candidate: Pipeline,
): { next: Pipeline; event?: StateEvent } {
  const reembed = embeddingFingerprint(existing.config) !== embeddingFingerprint(candidate.config);
  if (
    existing.state === 'reembedding' &&
    !sameConfig(existing.pendingConfig, reembed ? candidate.config : null)
  ) {
    throw new ConfigError(
      'embedding',
      `a re-embed of "${candidate.name}" to generation ${existing.pendingGeneration} is running; let it finish (or cancel it) before changing the config again`,
    );
  }
  const withdrawn = !reembed && existing.state === 'reembed_pending';
  // The same change applied again while its re-embed runs leaves the re-embed as it is.
  const due = reembed && existing.state !== 'reembedding';
  const event: StateEvent | undefined = withdrawn
    ? { name: 'reembedWithdrawn' }
    : due
      ? { name: 'reembedDue' }
      : undefined;
  const from = { state: existing.state, heldState: null };
  const state = event ? nextState(existing.name, from, event).state : existing.state;
  const next: Pipeline = reembed
    ? {
        ...candidate,
        // How changes are captured is no part of what is embedded: it changes now, not at the swap.
        config: { ...existing.config, source: candidate.config.source },
        pendingConfig: candidate.config,
        pendingGeneration: existing.pendingGeneration ?? existing.generation + 1,
        state,
      }
    : { ...candidate, state };
  return event ? { next, event } : { next };
}

function parseSource(config: AnyPipelineConfig): { schema: string; table: string } {
  try {
    return parseTableName(config.source.table);
  } catch (err) {
    throw new ConfigError('source.table', (err as Error).message);
  }
}

function checkPrimaryKey(config: AnyPipelineConfig, info: TableInfo): Pipeline['primaryKey'] {
  const name = `${info.schema}.${info.table}`;
  if (info.primaryKey.length === 0) {
    throw new ConfigError(
      'source.table',
      `table ${name} has no primary key; embedsync needs one to tell rows apart`,
    );
  }
  const declared = config.source.primaryKey;
  const actual = info.primaryKey.map((k) => k.name);
  if (declared && declared.join(',') !== actual.join(',')) {
    throw new ConfigError(
      'source.primaryKey',
      `is [${declared.join(', ')}] but the primary key of ${name} is [${actual.join(', ')}]`,
    );
  }
  return info.primaryKey;
}

/**
 * A logically captured table needs a replica identity: in the publication without one, every UPDATE
 * and DELETE of it fails. Refused before anything changes, so no table is left captured neither by
 * its triggers nor through the publication.
 */
async function checkReplicaIdentity(
  client: PoolClient,
  config: AnyPipelineConfig,
  info: TableInfo,
): Promise<void> {
  if (captureMode(config) !== 'logical') return;
  const gap = await replicaIdentityGap(client, info.relid);
  if (gap)
    throw new ConfigError(
      'source.capture',
      `table ${info.schema}.${info.table} cannot be captured logically: ${gap}, and its updates and deletes would fail in a publication: ` +
        'run ALTER TABLE … REPLICA IDENTITY DEFAULT (or FULL), or use capture: trigger',
    );
}

function checkColumns(config: PipelineConfig, info: TableInfo): void {
  const name = `${info.schema}.${info.table}`;
  embedColumns(config).forEach((c, i) => {
    const col = info.columns.get(c.column);
    if (!col)
      throw new ConfigError(
        `embed.columns[${i}]`,
        `column "${c.column}" does not exist in ${name}`,
      );
    if (!isEmbeddable(col))
      throw new ConfigError(
        `embed.columns[${i}]`,
        `column "${c.column}" has type ${col.type}, which has no text form to embed`,
      );
  });
  config.metadata.forEach((c, i) => {
    if (!info.columns.has(c))
      throw new ConfigError(`metadata[${i}]`, `column "${c}" does not exist in ${name}`);
  });
}

function checkChange(existing: Pipeline, next: Pipeline): void {
  if (existing.sourceSchema !== next.sourceSchema || existing.sourceTable !== next.sourceTable) {
    throw new ConfigError(
      'source.table',
      `pipeline "${next.name}" already syncs ${existing.sourceSchema}.${existing.sourceTable}; remove it before pointing it elsewhere`,
    );
  }
  if (existing.config.destination?.column !== next.config.destination?.column) {
    const was = existing.config.destination?.column;
    throw new ConfigError(
      'destination',
      `pipeline "${next.name}" writes its vectors to ${was ? `the column ${was}` : `${existing.vectorSchema}.${existing.vectorTable}`}; ` +
        `its destination cannot change: remove the pipeline and apply it again, then backfill`,
    );
  }
  if (existing.vectorSchema !== next.vectorSchema || existing.vectorTable !== next.vectorTable) {
    throw new ConfigError(
      'vectorTable',
      `pipeline "${next.name}" writes to ${existing.vectorSchema}.${existing.vectorTable}; the vector table cannot be renamed`,
    );
  }
}

async function checkVectorTable(
  client: PoolClient,
  p: Pipeline,
  existing: Pipeline | undefined,
): Promise<void> {
  const owner = await vectorTableOwner(client, p.vectorSchema, p.vectorTable, p.name);
  if (owner)
    throw new ConfigError(
      'vectorTable',
      `${p.vectorSchema}.${p.vectorTable} already belongs to pipeline "${owner}"`,
    );
  const type = await vectorColumnType(client, p.vectorSchema, p.vectorTable);
  if (type === undefined || existing) return;
  // A column pipeline's table is a record, without vectors: one left behind is adopted as it is.
  if (p.config.destination) {
    if (type === null) return;
    throw new ConfigError(
      'vectorTable',
      `${p.vectorSchema}.${p.vectorTable} already exists as a vector table; a column pipeline keeps its record there: drop it, or name the pipeline otherwise`,
    );
  }
  // A table left behind by a removed pipeline is adopted only if its vectors have the same shape.
  if (type !== vectorColumnSql(p)) {
    throw new ConfigError(
      'vectorTable',
      `${p.vectorSchema}.${p.vectorTable} already exists with embedding ${type ?? 'missing'}, not ${vectorColumnSql(p)}`,
    );
  }
}

/**
 * Removes a pipeline's triggers, queued changes and catalog row; keeps its vector table unless
 * asked.
 */
export async function removePipeline(
  pool: Pool,
  name: string,
  options: { dropVectorTable?: boolean } = {},
): Promise<AnyPipeline> {
  const removed = await withTransaction(pool, async (client) => {
    await client.query('select pg_advisory_xact_lock($1)', [CATALOG_LOCK]);
    const p = await getAnyPipeline(client, name, 'for update');
    // Triggers are dropped from the table under its current name; if it is gone, so are they.
    const now = await currentSourceTable(client, name);
    const source = now
      ? { sourceSchema: now.schema, sourceTable: now.table }
      : { sourceSchema: p.sourceSchema, sourceTable: p.sourceTable };
    for (const sql of removeCaptureSql({ ...p, ...source })) await client.query(sql);
    await dropQueuedChanges(client, name);
    await dropStaleKeys(client, name);
    await deleteFailedDeliveries(client, name);
    await deletePipeline(client, name);
    await syncCapturePublication(client);
    if (options.dropVectorTable && !isEventsPipeline(p)) {
      await client.query(`drop view if exists ${qualified(p.vectorSchema, viewName(p))}`);
      await client.query(`drop table if exists ${qualified(p.vectorSchema, p.vectorTable)}`);
    }
    return { ...p, ...source };
  });
  // The last logical pipeline takes the slot with it: a slot nobody reads keeps WAL until the disk
  // is full (decision 29). One switched back to triggers left it to be read to the end.
  await dropCaptureSlotIfUnused(pool);
  return removed;
}
