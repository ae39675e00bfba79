// batchBackfill: a backfill through the provider's Batch API, at half the online price within 24
// hours (docs/architecture.md, decision 15). The table is cut into parts, each one provider batch;
// a new part is submitted only while the tokens in flight and its own fit in the account's
// enqueued-token limit. The workflow waits between polls on durable timers (no activity is held
// for hours), writes each completed part through the walk's compare-and-set write, and builds the
// HNSW index at the end like a walk. Same workflow id as an online backfill (backfill:<pipeline>),
// so pause, resume, status and the progress query work alike.
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  ContinueAsNew,
  continueAsNew,
  isCancellation,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { nextPartBudget } from '../src/batch/parts.js';
import {
  pauseSignal,
  progressQuery,
  resumeSignal,
  type BackfillProgress,
  type BatchPartsProgress,
} from './definitions.js';
import { groupDigits } from './progress.js';
import { activities } from './walk.js';

export interface BatchBackfillInput {
  pipeline: string;
  /** The account's enqueued-token limit for the model (OpenAI's batch queue limit). */
  enqueuedTokenLimit: number;
  /** Tokens one part may carry (default: the whole limit, so parts run in turn). */
  partTokens?: number;
  /** Inputs one part may carry (default and at most OpenAI's 50,000). */
  partInputs?: number;
  /** Seconds between polls of the batches in flight. */
  pollSeconds: number;
  /** Continue as new after this many history events even if the server has not suggested it. */
  maxHistoryEvents?: number;
  /** Carried across continue-as-new; absent on the first run. */
  state?: BatchBackfillState;
}

interface InFlightPart {
  part: number;
  tokens: number;
  rows: number;
  /** Refused for the enqueued-token limit: sent again once there is room. */
  refused?: boolean;
}

export interface BatchBackfillState {
  /** Names the parts in embedsync.batch_parts: the first run's id. */
  backfill: string;
  cursor: string | null;
  exhausted: boolean;
  nextPart: number;
  inFlight: InFlightPart[];
  processed: number;
  total: number;
  tokens: number;
  completedParts: number;
  failedLines: number;
  paused: boolean;
  startedAt: number;
}

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

// Each step is short: the waiting is the workflow's timers, not an activity.
const steps = proxyActivities<Activities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1 minute' },
});
const indexActivities = proxyActivities<Activities>({
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

export async function batchBackfill(input: BatchBackfillInput): Promise<BatchBackfillResult> {
  const { pipeline } = input;
  const info = workflowInfo();
  const state: BatchBackfillState = input.state ?? {
    backfill: `${info.workflowId}@${info.firstExecutionRunId.slice(0, 8)}`,
    cursor: null,
    exhausted: false,
    nextPart: 0,
    inFlight: [],
    processed: 0,
    total: 0,
    tokens: 0,
    completedParts: 0,
    failedLines: 0,
    paused: false,
    startedAt: Date.now(),
  };
  let phase: BackfillProgress['phase'] = input.state ? 'running' : 'counting';
  const parts = (): BatchPartsProgress => ({
    submitted: state.completedParts + state.inFlight.length,
    inProgress: state.inFlight.length,
    completed: state.completedParts,
    failedLines: state.failedLines,
    tokens: state.tokens,
  });
  const progress = (now: number): BackfillProgress => {
    const shown =
      state.paused && phase === 'running'
        ? state.inFlight.length === 0
          ? 'paused'
          : 'pausing'
        : phase;
    return {
      phase: shown,
      processed: state.processed,
      total: phase === 'counting' ? null : Math.max(state.total, state.processed),
      rowsPerSecond: null,
      etaSeconds: null,
      runningSeconds: Math.max(0, Math.round((now - state.startedAt) / 1000)),
      pausedSeconds: 0,
      paused: state.paused,
      cursor: state.cursor,
      parts: parts(),
    };
  };
  const showDetails = (): void => {
    const p = progress(Date.now());
    const c = parts();
    const rows = `${groupDigits(p.processed)} of ${groupDigits(p.total ?? 0)} rows`;
    const held = p.phase === 'paused' ? 'paused: ' : p.phase === 'pausing' ? 'pausing: ' : '';
    setCurrentDetails(
      `Batch mode, ${held}${c.submitted} parts submitted, ${c.inProgress} in progress, ${c.completed} completed · ${rows} · ${groupDigits(c.tokens)} tokens`,
    );
  };
  setHandler(pauseSignal, () => {
    state.paused = true;
    showDetails();
  });
  setHandler(resumeSignal, () => {
    state.paused = false;
    showDetails();
  });
  setHandler(progressQuery, () => progress(workflowInfo().unsafe.now()));

  const part = (n: number) => ({ pipeline, backfill: state.backfill, part: n });
  const inFlightTokens = (): number => state.inFlight.reduce((sum, p) => sum + p.tokens, 0);
  const room = (): number =>
    nextPartBudget(inFlightTokens(), input.enqueuedTokenLimit, input.partTokens);

  const buildIndex = async (): Promise<void> => {
    phase = 'indexing';
    showDetails();
    await indexActivities.buildVectorIndex.executeWithOptions(
      { summary: `Build the HNSW index of ${pipeline}'s vector table if the backfill left it out` },
      [{ pipeline }],
    );
  };

  try {
    if (!input.state) {
      state.total = await activities.startBackfill.executeWithOptions(
        { summary: `Count the rows of ${pipeline}; batch mode` },
        [{ pipeline }],
      );
    }
    phase = 'running';
    showDetails();
    for (;;) {
      // Parts refused for the enqueued-token limit go again first, once nothing else is queued.
      for (const p of state.inFlight.filter((x) => x.refused)) {
        if (state.inFlight.some((x) => !x.refused)) break;
        await steps.resubmitBatchPart.executeWithOptions(
          { summary: `Submit part ${p.part} of ${pipeline} again` },
          [part(p.part)],
        );
        p.refused = false;
      }
      while (!state.paused && !state.exhausted && room() > 0) {
        const n = state.nextPart;
        const maxTokens = room();
        const sent = await steps.submitBatchPart.executeWithOptions(
          {
            summary: `Gather part ${n} of ${pipeline} (at most ${groupDigits(maxTokens)} tokens), record it, create its batch`,
          },
          [
            {
              ...part(n),
              after: state.cursor,
              maxTokens,
              ...(input.partInputs ? { maxInputs: input.partInputs } : {}),
            },
          ],
        );
        state.cursor = sent.cursor;
        state.exhausted = sent.exhausted;
        // Rows already in step count as done at once; the sent ones once their part is written.
        state.processed += sent.scanned - sent.rows;
        if (sent.rows > 0) {
          state.inFlight.push({ part: n, tokens: sent.tokens, rows: sent.rows });
          state.nextPart += 1;
        }
        showDetails();
      }
      if (state.inFlight.length === 0) {
        if (state.exhausted) break;
        if (state.paused) {
          showDetails();
          await condition(() => !state.paused);
          showDetails();
          continue;
        }
      }
      await sleep(`${input.pollSeconds} seconds`);
      for (const p of [...state.inFlight]) {
        if (p.refused) continue;
        const polled = await steps.pollBatchPart.executeWithOptions(
          { summary: `Poll part ${p.part} of ${pipeline}` },
          [part(p.part)],
        );
        if (polled.phase === 'running') continue;
        if (polled.phase === 'failed' && polled.errorCode === 'token_limit_exceeded') {
          p.refused = true;
          continue;
        }
        if (polled.phase === 'failed' || polled.phase === 'cancelled') {
          const why = `${polled.errorCode ?? polled.status}: ${polled.errorMessage ?? 'no output'}`;
          await steps.failBatchPart.executeWithOptions(
            { summary: `Record part ${p.part} of ${pipeline} as failed` },
            [{ ...part(p.part), error: why }],
          );
          throw ApplicationFailure.nonRetryable(
            `the provider's batch for part ${p.part} of ${pipeline} ended ${polled.status}: ${why}`,
            'BatchFailedError',
          );
        }
        // completed, or expired with what it finished: write what there is.
        const written = await steps.writeBatchPart.executeWithOptions(
          {
            summary: `Write part ${p.part} of ${pipeline}: ${groupDigits(polled.completed)} lines, ${groupDigits(polled.failed)} failed`,
          },
          [part(p.part)],
        );
        state.inFlight = state.inFlight.filter((x) => x.part !== p.part);
        state.completedParts += 1;
        state.processed += p.rows;
        state.tokens += written.tokens;
        state.failedLines += written.deadLettered;
        const { cursor, processed, total } = state;
        const checkpoint = await activities.checkpointBackfill.executeWithOptions(
          { summary: `Checkpoint ${pipeline} at ${groupDigits(processed)} rows` },
          [{ pipeline, cursor, processed, tokens: written.tokens, total }],
        );
        state.total = checkpoint.total;
        showDetails();
      }
      const now = workflowInfo();
      if (now.continueAsNewSuggested || now.historyLength > (input.maxHistoryEvents ?? 8000)) {
        await continueAsNew<typeof batchBackfill>({ ...input, state });
      }
    }
    state.total = state.processed;
    await buildIndex();
    phase = 'finishing';
    showDetails();
    await activities.finishBackfill.executeWithOptions(
      {
        summary: `Finish the batch backfill of ${pipeline} at ${groupDigits(state.processed)} rows`,
      },
      [
        {
          pipeline,
          outcome: 'completed',
          batchPrefix: `batch:${state.backfill}`,
          processed: state.processed,
        },
      ],
    );
    phase = 'done';
    showDetails();
    return {
      processed: state.processed,
      total: state.total,
      tokens: state.tokens,
      parts: state.completedParts,
      deadLettered: state.failedLines,
      runningSeconds: progress(Date.now()).runningSeconds,
      pausedSeconds: 0,
    };
  } catch (err) {
    const outcome = isCancellation(err) ? 'cancelled' : 'failed';
    if (!(err instanceof ContinueAsNew)) {
      // Whatever way it ends, the provider's batches in flight stop being paid for, the pipeline
      // is active again and has its index.
      await CancellationScope.nonCancellable(async () => {
        await steps.cancelBatchParts.executeWithOptions(
          { summary: `Cancel the provider's batches of ${pipeline} still in flight` },
          [{ pipeline, backfill: state.backfill }],
        );
        await buildIndex();
        await activities.finishBackfill.executeWithOptions(
          { summary: `Stop the batch backfill of ${pipeline} (${outcome})` },
          [{ pipeline, outcome, batchPrefix: `batch:${state.backfill}` }],
        );
      });
    }
    throw err;
  }
}
