// The re-embed's own steps (docs/architecture.md, decision 8): the pending generation is built in
// <vector table>_swap while the live table keeps serving; then the swap, one short transaction,
// renames live → old and swap → live, switches the pipeline's generation, and drops old. A column
// pipeline's generation is built in a shadow column of the source table beside its record in
// <record table>_swap, and the swap renames both (decision 20). Every step that takes a lock on the
// user's table waits for it at most lock_timeout at a time (withShortLocks).
import { ApplicationFailure } from '@temporalio/activity';
import {
  atGeneration,
  getPipeline,
  swapTableName,
  switchGeneration,
  type Pipeline,
} from '../src/db/catalog.js';
import { inspectTable } from '../src/capture/inspect.js';
import {
  addShadowColumn,
  columnTarget,
  dropShadowColumn,
  lockSourceTable,
  swapShadowColumn,
} from '../src/capture/shadow-column.js';
import { buildIndex } from '../src/capture/vector-index.js';
import { createTextIndexSql, buildTextIndex, textIndexName } from '../src/capture/text-index.js';
import { destinationColumn } from '../src/config/pipeline.js';
import { withShortLocks } from '../src/db/lock-retry.js';
import { reconcileSource, SchemaChangedError } from '../src/capture/schema-check.js';
import { installCaptureSql } from '../src/capture/triggers.js';
import {
  createHnswIndexSql,
  createVectorTableSql,
  createViewSql,
  hnswName,
  pkeyName,
  viewName,
} from '../src/capture/vector-table.js';
import { qualified, quoteIdent } from '../src/db/ident.js';
import { requeueFailedBatchesNow } from '../src/db/dead-letters.js';
import { CATALOG_LOCK, changeState } from '../src/db/pipeline-state.js';
import { settleAfterSwap } from '../src/db/stale-keys.js';
import type { PoolClient } from '../src/db/pool.js';
import { endWalk, type FinishInput } from './backfill.js';
import type { ActivityDeps } from './deps.js';
import { classified } from './errors.js';

export interface ReembedRef {
  pipeline: string;
  generation: number;
}

/**
 * Retrying cannot make a generation pending again: the config moved on, or another re-embed
 * finished.
 */
const nothingToReembed = (pipeline: string, detail: string): ApplicationFailure =>
  ApplicationFailure.nonRetryable(`pipeline "${pipeline}": ${detail}`, 'NothingToReembed');

export function createReembedActivities(deps: ActivityDeps) {
  const { pool, log, indexBuildMemory } = deps;
  const steps = {
    /**
     * Creates the swap table for the pending generation (and a column pipeline's shadow column);
     * the pipeline is reembedding.
     */
    async prepareReembed({ pipeline, generation }: ReembedRef): Promise<void> {
      const what = `prepare the re-embed of ${pipeline}`;
      return classified(async () => {
        await withShortLocks(pool, what, async (client) => {
          // Before the row lock, in the order apply and the schema check take them.
          await client.query('select pg_advisory_xact_lock($1)', [CATALOG_LOCK]);
          const p = await getPipeline(client, pipeline, 'for update');
          if (p.generation === generation) return; // already swapped in: a retry after success
          if (p.pendingGeneration !== generation || !p.pendingConfig) {
            throw nothingToReembed(
              pipeline,
              `generation ${generation} is not the pending one (${p.pendingGeneration ?? 'none'})`,
            );
          }
          const swap = { ...p, config: p.pendingConfig, vectorTable: swapTableName(p.vectorTable) };
          if (p.state !== 'reembedding') {
            // Whatever an abandoned attempt left behind is rebuilt from nothing.
            await client.query(
              `drop table if exists ${qualified(p.vectorSchema, swap.vectorTable)}`,
            );
          }
          // Filled by the walk: its HNSW index is built once the walk is through
          // (buildVectorIndex), not maintained row by row.
          for (const sql of createVectorTableSql(swap, { index: false })) await client.query(sql);
          const column = columnTarget(p, p.pendingConfig);
          if (column) {
            const fresh = p.state !== 'reembedding';
            await addShadowColumn(client, column, { pipeline, generation }, { fresh });
          }
          // From a hold too: a re-embed is the fix for columns only the live generation reads.
          await changeState(client, pipeline, { name: 'reembedStarted' }, { required: true });
          const reembedding = await inSchema(client, pipeline, log);
          // Changes to the pending config's columns must be captured from now on.
          for (const sql of installCaptureSql(reembedding)) await client.query(sql);
          log.info({ pipeline, generation }, 're-embed started');
        });
      });
    },

    /**
     * The swap, the re-embed's last step, in one transaction: readers block for its duration, never
     * fail, never mix.
     */
    async swapInGeneration({ pipeline, generation }: ReembedRef): Promise<void> {
      const what = `swap generation ${generation} of ${pipeline} in`;
      return classified(async () => {
        // A column's index is built concurrently, outside the swap: a build inside it would hold
        // the user's writes for its whole length.
        const building = atGeneration(await getPipeline(pool, pipeline), generation);
        if (building && destinationColumn(building.config) !== undefined)
          await buildIndex(pool, building, indexBuildMemory);
        // So is the swap table's full-text index, if the walk's end did not build it (decision 27).
        if (building) await buildTextIndex(pool, building);
        const swapped = await withShortLocks(pool, what, async (client) => {
          await client.query('select pg_advisory_xact_lock($1)', [CATALOG_LOCK]);
          // FOR UPDATE waits for in-flight writes (they hold the row FOR SHARE) and holds back new
          // ones.
          const locked = await getPipeline(client, pipeline, 'for update');
          if (locked.generation === generation) return false;
          const column = locked.pendingConfig && columnTarget(locked, locked.pendingConfig);
          // Before the schema check, whose capture install would take a weaker lock on it first.
          if (column) await lockSourceTable(client, pipeline);
          const p = await inSchema(client, pipeline, log);
          const next = atGeneration(p, generation);
          if (!next || !p.pendingConfig)
            throw nothingToReembed(pipeline, `generation ${generation} is not being built`);
          const target = columnTarget(p, p.pendingConfig);
          if (target) {
            await swapShadowColumn(client, target, { pipeline, generation });
          } else {
            // Never swap in a table without its index: a walk that skipped building it builds it
            // here.
            await client.query(createHnswIndexSql(next));
            await client.query(createTextIndexSql(next));
          }
          await renameTables(client, p);
          const info = await inspectTable(client, p.sourceSchema, p.sourceTable);
          const live: Pipeline = { ...p, config: p.pendingConfig, generation };
          for (const sql of createViewSql(live, [...(info?.columns.keys() ?? [])]))
            await client.query(sql);
          await switchGeneration(client, pipeline);
          // The marks the re-embed's writes could not settle (decision 19).
          await settleAfterSwap(client, live);
          await changeState(client, pipeline, { name: 'reembedFinished' }, { required: true });
          // Capture now watches what the new generation reads, and nothing its predecessor alone
          // read.
          const captured: Pipeline = {
            ...live,
            pendingConfig: null,
            pendingGeneration: null,
            state: 'active',
          };
          for (const sql of installCaptureSql(captured)) await client.query(sql);
          await reconcileSource(client, pipeline, log);
          // Live batches that failed on columns the new generation no longer reads are sent round
          // again now.
          await requeueFailedBatchesNow(client, pipeline);
          return true;
        });
        if (swapped.result) {
          const { attempts, ms } = swapped;
          log.info({ pipeline, generation, attempts, ms }, 're-embed swapped in');
        }
      });
    },

    /**
     * Gives up a re-embed (cancelled): drops the swap table (and a column pipeline's shadow column);
     * the config change stays pending.
     */
    async abandonReembed({ pipeline, generation }: ReembedRef): Promise<void> {
      await withShortLocks(pool, `abandon the re-embed of ${pipeline}`, async (client) => {
        const p = await getPipeline(client, pipeline, 'for update');
        if (p.pendingGeneration !== generation) return;
        await client.query(
          `drop table if exists ${qualified(p.vectorSchema, swapTableName(p.vectorTable))}`,
        );
        const column = p.pendingConfig && columnTarget(p, p.pendingConfig);
        if (column) await dropShadowColumn(client, column, { pipeline, generation });
        await changeState(client, pipeline, { name: 'reembedAbandoned' });
      });
    },

    /** The re-embed's end, its generation live (the swap set the state): clears what it staged. */
    async finishReembed(input: FinishInput): Promise<void> {
      await endWalk(deps, input);
      log.info({ pipeline: input.pipeline, outcome: input.outcome }, 're-embed finished');
    },
  };
  return {
    ...steps,
    // Re-embeds started before the steps had these names schedule them by their old ones (the
    // activity types in their histories): registered under both until none of those runs remain.
    prepareSwap: (ref: ReembedRef) => steps.prepareReembed(ref),
    cutOverSwap: (ref: ReembedRef) => steps.swapInGeneration(ref),
    abandonSwap: (ref: ReembedRef) => steps.abandonReembed(ref),
  };
}

/**
 * The pipeline after the schema check (a renamed source table followed); fails the step if it is
 * held.
 */
async function inSchema(
  client: PoolClient,
  pipeline: string,
  log: ActivityDeps['log'],
): Promise<Pipeline> {
  const check = await reconcileSource(client, pipeline, log);
  if (check?.verdict.hold) throw new SchemaChangedError(pipeline, check.verdict.hold.reason);
  return getPipeline(client, pipeline);
}

async function renameTables(client: PoolClient, p: Pipeline): Promise<void> {
  const schema = quoteIdent(p.vectorSchema);
  const live = p.vectorTable;
  const swap = swapTableName(live);
  const old = `${live}_old`;
  await client.query(`drop view if exists ${qualified(p.vectorSchema, viewName(p))}`);
  await client.query(`drop table if exists ${qualified(p.vectorSchema, old)}`);
  await client.query(`alter table ${qualified(p.vectorSchema, live)} rename to ${quoteIdent(old)}`);
  await client.query(
    `alter table ${qualified(p.vectorSchema, swap)} rename to ${quoteIdent(live)}`,
  );
  await client.query(`drop table ${qualified(p.vectorSchema, old)}`);
  // Index names follow the table's, so the next re-embed can build its own under the usual names.
  await client.query(
    `alter index ${schema}.${quoteIdent(pkeyName(swap))} rename to ${quoteIdent(pkeyName(live))}`,
  );
  // A column pipeline's record table has no HNSW index: its index is on the column.
  await client.query(
    `alter index if exists ${schema}.${quoteIdent(hnswName(swap))} rename to ${quoteIdent(hnswName(live))}`,
  );
  await client.query(
    `alter index if exists ${schema}.${quoteIdent(textIndexName(swap))} rename to ${quoteIdent(textIndexName(live))}`,
  );
}
