// reembed: builds the pending generation in <vector table>_swap while the live table keeps serving,
// then swaps it in with one short transaction (DESIGN decision 8). Changes that arrive meanwhile
// are written to both tables by the sync workflows, so the swap table is caught up when the walk
// ends.
import { CancellationScope, continueAsNew, isCancellation } from '@temporalio/workflow';
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

export async function reembed(input: ReembedInput): Promise<ReembedResult> {
  const { pipeline, generation } = input;
  const batchPrefix = `swap:${pipeline}:${generation}:`;
  const walk = new TableWalk(input, batchPrefix, input.state);
  const swap = { pipeline, generation };
  try {
    if (!input.state) {
      const prepare = `Create the swap table of ${pipeline} for generation ${generation}`;
      await activities.prepareSwap.executeWithOptions({ summary: prepare }, [swap]);
      const count = `Count the rows of ${pipeline}`;
      walk.state.total = await activities.countSourceRows.executeWithOptions({ summary: count }, [
        { pipeline },
      ]);
    }
    await walk.walk((state) => continueAsNew<typeof reembed>({ ...input, state }));
    walk.phase = 'finishing';
    walk.showDetails();
    const { processed, total, tokens } = walk.state;
    await activities.cutOverSwap.executeWithOptions(
      {
        summary: `Swap generation ${generation} of ${pipeline} in: rename the tables in one transaction`,
      },
      [swap],
    );
    await activities.finishBackfill.executeWithOptions(
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
        activities.abandonSwap.executeWithOptions(
          {
            summary: `Abandon generation ${generation} of ${pipeline} (cancelled): drop its swap table`,
          },
          [swap],
        ),
      );
    }
    throw err;
  }
}
