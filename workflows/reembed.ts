// reembed: builds the pending generation in <vector table>_swap while the live table keeps serving,
// then swaps it in with one short transaction (DESIGN decision 8). Changes that arrive meanwhile are
// written to both tables by the sync workflows, so the swap table is caught up when the walk ends.
import { CancellationScope, continueAsNew, isCancellation } from '@temporalio/workflow';
import { control, TableWalk, type WalkOptions, type WalkState } from './walk.js';

export interface ReembedInput extends WalkOptions {
  generation: number;
  state?: WalkState;
}

export interface ReembedResult { generation: number; processed: number; total: number; tokens: number }

export async function reembed(input: ReembedInput): Promise<ReembedResult> {
  const { pipeline, generation } = input;
  const batchPrefix = `swap:${pipeline}:${generation}:`;
  const walk = new TableWalk(input, batchPrefix, input.state);
  try {
    if (!input.state) {
      await control.prepareSwap({ pipeline, generation });
      walk.state.total = await control.countSourceRows({ pipeline });
    }
    await walk.walk((state) => continueAsNew<typeof reembed>({ ...input, state }));
    walk.phase = 'finishing';
    await control.cutOverSwap({ pipeline, generation });
    await control.finishBackfill({ pipeline, outcome: 'completed', batchPrefix });
    walk.phase = 'done';
    return { generation, processed: walk.state.processed, total: walk.state.total, tokens: walk.state.tokens };
  } catch (err) {
    if (isCancellation(err)) {
      await CancellationScope.nonCancellable(() => control.abandonSwap({ pipeline, generation }));
    }
    throw err;
  }
}
