// batchBackfill: a backfill through the provider's Batch API, at half the online price within 24
// hours (docs/architecture.md, decision 17): BatchParts (workflows/batch-parts.ts) submits, polls
// and writes the parts; this starts and finishes it like a backfill and builds the HNSW index at
// the end like a walk. Same workflow id as an online backfill (backfill:<pipeline>), so pause,
// resume, status and the progress query work alike.
import {
  CancellationScope,
  ContinueAsNew,
  continueAsNew,
  isCancellation,
} from '@temporalio/workflow';
import { BatchParts, type BatchPartsOptions, type BatchPartsState } from './batch-parts.js';
import { groupDigits } from './progress.js';
import { activities } from './walk.js';

export interface BatchBackfillInput extends Omit<BatchPartsOptions, 'generation'> {
  /** Carried across continue-as-new; absent on the first run. */
  state?: BatchBackfillState;
}

export type BatchBackfillState = BatchPartsState;

export interface BatchBackfillResult {
  processed: number;
  total: number;
  tokens: number;
  parts: number;
  deadLettered: number;
  /** Since the start, waiting included (the batch runs at the provider meanwhile). */
  runningSeconds: number;
  pausedSeconds: number;
}

export async function batchBackfill(input: BatchBackfillInput): Promise<BatchBackfillResult> {
  const { pipeline } = input;
  const work = new BatchParts(input, input.state);
  const batchPrefix = `batch:${work.state.backfill}`;
  try {
    if (!input.state) {
      work.state.total = await activities.startBackfill.executeWithOptions(
        { summary: `Count the rows of ${pipeline}; batch mode` },
        [{ pipeline }],
      );
    }
    await work.run((state) => continueAsNew<typeof batchBackfill>({ ...input, state }));
    await work.buildIndex();
    work.phase = 'finishing';
    work.showDetails();
    const { processed, total, tokens, completedParts, failedLines } = work.state;
    await activities.finishBackfill.executeWithOptions(
      { summary: `Finish the batch backfill of ${pipeline} at ${groupDigits(processed)} rows` },
      [{ pipeline, outcome: 'completed', batchPrefix, processed }],
    );
    work.phase = 'done';
    work.showDetails();
    const { runningSeconds } = work.progress(Date.now());
    return {
      processed,
      total,
      tokens,
      parts: completedParts,
      deadLettered: failedLines,
      runningSeconds,
      pausedSeconds: 0,
    };
  } catch (err) {
    if (!(err instanceof ContinueAsNew)) {
      const outcome = isCancellation(err) ? 'cancelled' : 'failed';
      // However it ends, the provider's batches in flight stop being paid for, the pipeline is
      // active again and has its index.
      await CancellationScope.nonCancellable(async () => {
        await work.cancelInFlight(true);
        await work.buildIndex();
        await activities.finishBackfill.executeWithOptions(
          { summary: `Stop the batch backfill of ${pipeline} (${outcome})` },
          [{ pipeline, outcome, batchPrefix }],
        );
      });
    }
    throw err;
  }
}
