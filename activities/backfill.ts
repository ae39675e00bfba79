// The backfill's own activities: count, page through keys, checkpoint, finish. The batches
// themselves go through the same four stages as change sync.
import { clearBatchFailures, clearBatchFailuresByPrefix } from '../src/db/batch-failures.js';
import { deferIndexIfEmpty } from '../src/capture/vector-index.js';
import { getPipeline } from '../src/db/catalog.js';
import { changeState } from '../src/db/pipeline-state.js';
import { countKeysAfter, countSourceRows, readKeyPage } from '../src/db/source.js';
import { clearBatchesByPrefix } from '../src/db/staging.js';
import {
  recordCheckpoint,
  recordWalkCompleted,
  resetWalkProgress,
} from '../src/db/walk-progress.js';
import type { ActivityDeps } from './deps.js';
import { classified } from './errors.js';
import type { CheckpointResult } from './types.js';
import { followingSchemaChanges } from './schema.js';
import { callingWorkflow } from './workflow.js';

export interface ScanInput {
  pipeline: string;
  after: string | null;
  limit: number;
}
export interface CheckpointInput {
  pipeline: string;
  cursor: string | null;
  processed: number;
  tokens: number;
  /**
   * The walk's total so far; absent in checkpoints scheduled before totals were kept up to date.
   */
  total?: number;
  /** Count the keys after the cursor up to this many. */
  countAhead?: number;
}
export interface FinishInput {
  pipeline: string;
  outcome: 'completed' | 'cancelled' | 'failed';
  batchPrefix: string;
  /** Rows the completed walk went through: the total, whatever was counted at the start. */
  processed?: number;
}

/**
 * The walk's total once a checkpoint has counted up to `cap` keys after the cursor. Fewer than
 * `cap`: that is all that is left, so the total is exact (rows added or removed meanwhile
 * included). Otherwise the estimate holds, raised if the walk has already gone further than it.
 */
export function totalAfterCount(
  estimate: number,
  processed: number,
  ahead: number,
  cap: number,
): number {
  return ahead < cap ? processed + ahead : Math.max(estimate, processed + ahead);
}

export function createBackfillActivities(deps: ActivityDeps) {
  const { pool, log } = deps;
  // A walk follows a renamed source table like a sync does (activities/schema.ts).
  const countRows = (pipeline: string): Promise<number> =>
    followingSchemaChanges(deps, pipeline, async () =>
      countSourceRows(pool, await getPipeline(pool, pipeline)),
    );
  const countAhead = (pipeline: string, after: string | null, cap: number): Promise<number> =>
    followingSchemaChanges(deps, pipeline, async () =>
      countKeysAfter(pool, await getPipeline(pool, pipeline), after, cap),
    );
  return {
    /** How many rows the pipeline's source has. */
    async countSourceRows({ pipeline }: { pipeline: string }): Promise<number> {
      return classified(() => countRows(pipeline));
    },

    /**
     * Marks the pipeline as backfilling and returns how many rows its source has. A first backfill
     * (an empty vector table) loads without the HNSW index; the walk builds it at its end.
     */
    async startBackfill({ pipeline }: { pipeline: string }): Promise<number> {
      return classified(async () => {
        const total = await countRows(pipeline);
        await resetWalkProgress(pool, pipeline, total);
        await changeState(pool, pipeline, { name: 'backfillStarted' });
        const deferred = await deferIndexIfEmpty(pool, await getPipeline(pool, pipeline));
        log.info({ pipeline, total, indexDeferred: deferred }, 'backfill started');
        return total;
      });
    },

    /** The next page of source keys after `after`, in primary key order (keyset: never OFFSET). */
    async scanKeys({ pipeline, after, limit }: ScanInput): Promise<string[]> {
      return classified(() =>
        followingSchemaChanges(deps, pipeline, async () =>
          readKeyPage(pool, await getPipeline(pool, pipeline), after, limit),
        ),
      );
    },

    /**
     * Records the cursor and counters in the catalog, where `npx embedsync status` and SQL see
     * them, and brings the total up to date: rows added or removed since the start move it, exactly
     * so near the end.
     */
    async checkpointBackfill(input: CheckpointInput): Promise<CheckpointResult> {
      const { pipeline, cursor, processed, tokens, countAhead: cap = 0 } = input;
      const estimate = input.total ?? processed;
      return classified(async () => {
        const ahead = cap > 0 ? await countAhead(pipeline, cursor, cap) : 0;
        const next =
          cap > 0
            ? totalAfterCount(estimate, processed, ahead, cap)
            : Math.max(estimate, processed);
        await recordCheckpoint(pool, pipeline, { cursor, processed, tokens, total: next });
        return { ahead, total: next };
      });
    },

    /**
     * Leaves the pipeline consistent however the backfill ended, and clears what its batches
     * staged.
     */
    async finishBackfill(input: FinishInput): Promise<void> {
      // Only a backfill's own state is undone (a held pipeline's underneath the hold). Re-embeds
      // started before they had a finish of their own end here too: their swap already set the
      // state, which this then leaves as it is.
      await changeState(pool, input.pipeline, { name: 'backfillFinished' });
      // A failed walk keeps its failed batch, staged and recorded, so status shows what failed and
      // where; the next backfill of the pipeline clears both when it ends.
      if (input.outcome !== 'failed') await endWalk(deps, input);
      log.info({ pipeline: input.pipeline, outcome: input.outcome }, 'backfill finished');
    },
  };
}

/**
 * What a table walk (backfill or re-embed) leaves when it ends: its counters if it completed,
 * nothing staged by its batches, no failures recorded for them or for its own stages.
 */
export async function endWalk(
  { pool }: ActivityDeps,
  { pipeline, outcome, batchPrefix, processed }: FinishInput,
): Promise<void> {
  if (outcome === 'completed' && processed !== undefined) {
    await recordWalkCompleted(pool, pipeline, processed);
  }
  await clearBatchesByPrefix(pool, batchPrefix);
  // Its batches and its own stages (scan, checkpoint: recorded under the workflow id) have ended.
  await clearBatchFailuresByPrefix(pool, pipeline, batchPrefix);
  await clearBatchFailures(pool, pipeline, callingWorkflow().workflowId);
}
