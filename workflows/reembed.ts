// reembed: builds the pending generation in <vector table>_swap while the live table keeps serving,
// then swaps it in with one short transaction (docs/architecture.md, decision 8). Changes that
// arrive meanwhile are written to both tables by the sync workflows, so the swap table is caught up
// when the walk ends.
import {
  CancellationScope,
  ContinueAsNew,
  continueAsNew,
  isCancellation,
  patched,
} from '@temporalio/workflow';
import { BatchParts, type BatchPartsOptions, type BatchPartsState } from './batch-parts.js';
import { groupDigits } from './progress.js';
import { activities, TableWalk, type WalkOptions, type WalkState } from './walk.js';

export interface ReembedInput extends WalkOptions {
  generation: number;
  state?: WalkState;
  /** Batch mode: the table goes through the provider's Batch API instead of a walk. */
  batch?: Omit<BatchPartsOptions, 'pipeline' | 'generation'>;
  /** Batch mode's state, carried across continue-as-new. */
  batchState?: BatchPartsState;
}

export interface ReembedResult {
  generation: number;
  processed: number;
  total: number;
  tokens: number;
  /** Time spent running (pauses excluded) and paused, over every run. */
  runningSeconds: number;
  pausedSeconds: number;
}

/**
 * The re-embed's steps. Runs recorded before they had names of their own replay with the old ones
 * (prepareSwap, cutOverSwap, abandonSwap, and the backfill's finish), which the worker still
 * registers.
 */
function reembedSteps() {
  if (patched('reembed-steps')) {
    const { prepareReembed, swapInGeneration, abandonReembed, finishReembed } = activities;
    return {
      prepare: prepareReembed,
      swap: swapInGeneration,
      abandon: abandonReembed,
      finish: finishReembed,
    };
  }
  const { prepareSwap, cutOverSwap, abandonSwap, finishBackfill } = activities;
  return { prepare: prepareSwap, swap: cutOverSwap, abandon: abandonSwap, finish: finishBackfill };
}

export async function reembed(input: ReembedInput): Promise<ReembedResult> {
  const { pipeline, generation } = input;
  // The workflow id's prefix: swap:<pipeline>:<generation> (src/temporal/names.ts).
  const batchPrefix = `swap:${pipeline}:${generation}:`;
  const walk = new TableWalk(input, batchPrefix, input.state);
  // Runs started before batch mode carry no `batch` and never ask (decision 17).
  const work =
    input.batch && patched('reembed-batch-mode')
      ? new BatchParts({ ...input.batch, pipeline, generation }, input.batchState)
      : undefined;
  const steps = reembedSteps();
  const ref = { pipeline, generation };
  try {
    if (!input.state && !input.batchState) {
      const prepare = `Prepare the re-embed of ${pipeline} as generation ${generation}: create its swap table`;
      await steps.prepare.executeWithOptions({ summary: prepare }, [ref]);
      const count = `Count the rows of ${pipeline}`;
      const total = await activities.countSourceRows.executeWithOptions({ summary: count }, [
        { pipeline },
      ]);
      if (work) work.state.total = total;
      else walk.state.total = total;
    }
    if (work) {
      await work.run((batchState) => continueAsNew<typeof reembed>({ ...input, batchState }));
      await work.buildIndex();
      work.phase = 'finishing';
      work.showDetails();
    } else {
      await walk.walk((state) => continueAsNew<typeof reembed>({ ...input, state }));
      await walk.buildIndex();
      walk.phase = 'finishing';
      walk.showDetails();
    }
    const { processed, total, tokens } = work ? work.state : walk.state;
    await steps.swap.executeWithOptions(
      {
        summary: `Swap generation ${generation} of ${pipeline} in: rename the tables in one transaction`,
      },
      [ref],
    );
    await steps.finish.executeWithOptions(
      {
        summary: `Finish the re-embed of ${pipeline} at ${groupDigits(processed)} rows; clear its staged batches`,
      },
      [{ pipeline, outcome: 'completed', batchPrefix, processed }],
    );
    if (work) {
      work.phase = 'done';
      const { runningSeconds } = work.progress(Date.now());
      return { generation, processed, total, tokens, runningSeconds, pausedSeconds: 0 };
    }
    walk.phase = 'done';
    return { generation, processed, total, tokens, ...walk.times() };
  } catch (err) {
    if (work && !(err instanceof ContinueAsNew)) {
      // The provider's batches in flight stop being paid for, whatever ended the re-embed.
      await CancellationScope.nonCancellable(() => work.cancelInFlight(false));
    }
    if (isCancellation(err)) {
      await CancellationScope.nonCancellable(() =>
        steps.abandon.executeWithOptions(
          {
            summary: `Abandon the re-embed of ${pipeline} as generation ${generation} (cancelled): drop its swap table`,
          },
          [ref],
        ),
      );
    }
    throw err;
  }
}
