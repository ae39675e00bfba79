// reembed: builds the pending generation in <vector table>_swap while the live table keeps serving,
// then swaps it in with one short transaction (docs/architecture.md, decision 8). Changes that
// arrive meanwhile are written to both tables by the sync workflows, so the swap table is caught up
// when the walk ends.
import { CancellationScope, continueAsNew, isCancellation, patched } from '@temporalio/workflow';
import { groupDigits } from './progress.js';
import { activities, TableWalk, type WalkOptions, type WalkState } from './walk.js';

export interface ReembedInput extends WalkOptions {
  generation: number;
  state?: WalkState;
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
  const steps = reembedSteps();
  const ref = { pipeline, generation };
  try {
    if (!input.state) {
      const prepare = `Prepare the re-embed of ${pipeline} as generation ${generation}: create its swap table`;
      await steps.prepare.executeWithOptions({ summary: prepare }, [ref]);
      const count = `Count the rows of ${pipeline}`;
      walk.state.total = await activities.countSourceRows.executeWithOptions({ summary: count }, [
        { pipeline },
      ]);
    }
    await walk.walk((state) => continueAsNew<typeof reembed>({ ...input, state }));
    await walk.buildIndex();
    walk.phase = 'finishing';
    walk.showDetails();
    const { processed, total, tokens } = walk.state;
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
    walk.phase = 'done';
    return { generation, processed, total, tokens, ...walk.times() };
  } catch (err) {
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
