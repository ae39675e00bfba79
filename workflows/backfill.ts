// backfill: embeds a pipeline's existing rows (docs/architecture.md, decision 7). Rows already
// embedded with the same content are skipped by fetch, so a resumed or repeated backfill never pays
// for them again.
import {
  CancellationScope,
  ContinueAsNew,
  continueAsNew,
  isCancellation,
  patched,
} from '@temporalio/workflow';
import { groupDigits } from './progress.js';
import { activities, TableWalk, type WalkOptions, type WalkState } from './walk.js';

export interface BackfillInput extends Omit<WalkOptions, 'generation'> {
  /** Carried across continue-as-new; absent on the first run. */
  state?: WalkState;
}

export type BackfillState = WalkState;
export interface BackfillResult {
  processed: number;
  total: number;
  tokens: number;
  /** Time spent running (pauses excluded) and paused, over every run. */
  runningSeconds: number;
  pausedSeconds: number;
}

export async function backfill(input: BackfillInput): Promise<BackfillResult> {
  const { pipeline } = input;
  const batchPrefix = `backfill:${pipeline}:`;
  const walk = new TableWalk(input, batchPrefix, input.state);
  try {
    if (!input.state) {
      const summary = `Count the rows of ${pipeline}`;
      walk.state.total = await activities.startBackfill.executeWithOptions({ summary }, [
        { pipeline },
      ]);
    }
    await walk.walk((state) => continueAsNew<typeof backfill>({ ...input, state }));
    await walk.buildIndex();
    walk.phase = 'finishing';
    walk.showDetails();
    const { processed, total, tokens } = walk.state;
    await activities.finishBackfill.executeWithOptions(
      {
        summary: `Finish the backfill of ${pipeline} at ${groupDigits(processed)} rows; clear its staged batches`,
      },
      [{ pipeline, outcome: 'completed', batchPrefix, processed }],
    );
    walk.phase = 'done';
    return { processed, total, tokens, ...walk.times() };
  } catch (err) {
    if (isCancellation(err)) {
      await CancellationScope.nonCancellable(async () => {
        await walk.buildIndex();
        await activities.finishBackfill.executeWithOptions(
          { summary: `Stop the backfill of ${pipeline} (cancelled); clear its staged batches` },
          [{ pipeline, outcome: 'cancelled', batchPrefix }],
        );
      });
    } else if (!(err instanceof ContinueAsNew) && patched('backfill-ends-when-it-fails')) {
      // A batch failed for good (quota, credentials, dimensions): the pipeline must not stay
      // backfilling with no backfill running. Runs that failed before this returned nothing here.
      await walk.buildIndex();
      await activities.finishBackfill.executeWithOptions(
        { summary: `End the failed backfill of ${pipeline}: the pipeline is active again` },
        [{ pipeline, outcome: 'failed', batchPrefix }],
      );
    }
    throw err;
  }
}
