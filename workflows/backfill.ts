// backfill: embeds a pipeline's existing rows (DESIGN decision 7). Rows already embedded with the same
// content are skipped by fetch, so a resumed or repeated backfill never pays for them again.
import { CancellationScope, continueAsNew, isCancellation } from '@temporalio/workflow';
import { control, TableWalk, type WalkOptions, type WalkState } from './walk.js';

export interface BackfillInput extends Omit<WalkOptions, 'generation'> {
  /** Carried across continue-as-new; absent on the first run. */
  state?: WalkState;
}

export type BackfillState = WalkState;
export interface BackfillResult { processed: number; total: number; tokens: number }

export async function backfill(input: BackfillInput): Promise<BackfillResult> {
  const { pipeline } = input;
  const batchPrefix = `backfill:${pipeline}:`;
  const walk = new TableWalk(input, batchPrefix, input.state);
  try {
    if (!input.state) walk.state.total = await control.startBackfill({ pipeline });
    await walk.walk((state) => continueAsNew<typeof backfill>({ ...input, state }));
    walk.phase = 'finishing';
    await control.finishBackfill({ pipeline, outcome: 'completed', batchPrefix });
    walk.phase = 'done';
    return { processed: walk.state.processed, total: walk.state.total, tokens: walk.state.tokens };
  } catch (err) {
    if (isCancellation(err)) {
      await CancellationScope.nonCancellable(() => control.finishBackfill({ pipeline, outcome: 'cancelled', batchPrefix }));
    }
    throw err;
  }
}
