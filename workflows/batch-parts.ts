// Whole-table work through the provider's Batch API (docs/architecture.md, decision 17), shared by
// the batch-mode backfill and re-embed: the table cut into parts, each one provider batch, a new
// part submitted only while the tokens in flight and its own fit in the account's enqueued-token
// limit; durable timers between polls (no activity held for hours); each completed part written
// through the walk's compare-and-set write. Pause stops new parts; the parts in flight go on.
import {
  ApplicationFailure,
  condition,
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

export interface BatchPartsOptions {
  pipeline: string;
  /** Absent: the live generation; a re-embed's pending one writes its swap table. */
  generation?: number;
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
}

interface InFlightPart {
  part: number;
  tokens: number;
  rows: number;
  /** Refused for the enqueued-token limit: sent again once there is room. */
  refused?: boolean;
}

/** Carried across continue-as-new. */
export interface BatchPartsState {
  /** Names the parts in embedsync.batch_parts: the workflow id and its first run's. */
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

// Each step is short: the waiting is the workflow's timers, not an activity.
const steps = proxyActivities<Activities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

// Building a vector table's HNSW index takes minutes on a large table: a timeout of its own.
const indexActivities = proxyActivities<Activities>({
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

export class BatchParts {
  phase: BackfillProgress['phase'];
  readonly state: BatchPartsState;

  constructor(
    private readonly options: BatchPartsOptions,
    carried?: BatchPartsState,
  ) {
    const info = workflowInfo();
    this.state = carried ?? {
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
    this.phase = carried ? 'running' : 'counting';
    setHandler(pauseSignal, () => {
      this.state.paused = true;
      this.showDetails();
    });
    setHandler(resumeSignal, () => {
      this.state.paused = false;
      this.showDetails();
    });
    setHandler(progressQuery, () => this.progress(workflowInfo().unsafe.now()));
  }

  parts(): BatchPartsProgress {
    const s = this.state;
    return {
      submitted: s.completedParts + s.inFlight.length,
      inProgress: s.inFlight.length,
      completed: s.completedParts,
      failedLines: s.failedLines,
      tokens: s.tokens,
    };
  }

  /** Where the work is at `now`: workflow time in workflow code, the real clock in the query. */
  progress(now: number): BackfillProgress {
    const s = this.state;
    const waiting = s.inFlight.length === 0 ? 'paused' : 'pausing';
    return {
      phase: s.paused && this.phase === 'running' ? waiting : this.phase,
      processed: s.processed,
      total: this.phase === 'counting' ? null : Math.max(s.total, s.processed),
      rowsPerSecond: null,
      etaSeconds: null,
      runningSeconds: Math.max(0, Math.round((now - s.startedAt) / 1000)),
      pausedSeconds: 0,
      paused: s.paused,
      cursor: s.cursor,
      parts: this.parts(),
    };
  }

  /** The Web UI's current details: the parts submitted, in progress and completed. */
  showDetails(): void {
    const p = this.progress(Date.now());
    const c = this.parts();
    const rows = `${groupDigits(p.processed)} of ${groupDigits(p.total ?? 0)} rows`;
    const held = p.phase === 'paused' ? 'paused: ' : p.phase === 'pausing' ? 'pausing: ' : '';
    setCurrentDetails(
      `Batch mode, ${held}${c.submitted} parts submitted, ${c.inProgress} in progress, ${c.completed} completed · ${rows} · ${groupDigits(c.tokens)} tokens`,
    );
  }

  /**
   * Submits, polls and writes parts until the table is done; calls continueAsNew (which does not
   * return) when history grows.
   */
  async run(continueAsNew: (state: BatchPartsState) => Promise<never>): Promise<void> {
    const { pipeline } = this.options;
    const s = this.state;
    this.phase = 'running';
    this.showDetails();
    for (;;) {
      // Parts refused for the enqueued-token limit go again first, once nothing else is queued.
      for (const p of s.inFlight.filter((x) => x.refused)) {
        if (s.inFlight.some((x) => !x.refused)) break;
        await steps.resubmitBatchPart.executeWithOptions(
          { summary: `Submit part ${p.part} of ${pipeline} again` },
          [this.ref(p.part)],
        );
        p.refused = false;
      }
      while (!s.paused && !s.exhausted && this.room() > 0) await this.submit();
      if (s.inFlight.length === 0) {
        if (s.exhausted) {
          s.total = s.processed;
          return;
        }
        if (s.paused) {
          this.showDetails();
          // Waits on the signal alone: no timer churn while paused.
          await condition(() => !s.paused);
          this.showDetails();
          continue;
        }
      }
      await sleep(`${this.options.pollSeconds} seconds`);
      for (const p of [...s.inFlight]) if (!p.refused) await this.poll(p);
      const info = workflowInfo();
      if (
        info.continueAsNewSuggested ||
        info.historyLength > (this.options.maxHistoryEvents ?? 8000)
      ) {
        await continueAsNew(s);
      }
    }
  }

  private ref(part: number) {
    const { pipeline, generation } = this.options;
    return {
      pipeline,
      backfill: this.state.backfill,
      part,
      ...(generation === undefined ? {} : { generation }),
    };
  }

  private room(): number {
    const used = this.state.inFlight.reduce((sum, p) => sum + p.tokens, 0);
    return nextPartBudget(used, this.options.enqueuedTokenLimit, this.options.partTokens);
  }

  private async submit(): Promise<void> {
    const s = this.state;
    const n = s.nextPart;
    const maxTokens = this.room();
    const sent = await steps.submitBatchPart.executeWithOptions(
      {
        summary: `Gather part ${n} of ${this.options.pipeline} (at most ${groupDigits(maxTokens)} tokens), record it, create its batch`,
      },
      [
        {
          ...this.ref(n),
          after: s.cursor,
          maxTokens,
          ...(this.options.partInputs ? { maxInputs: this.options.partInputs } : {}),
        },
      ],
    );
    s.cursor = sent.cursor;
    s.exhausted = sent.exhausted;
    // Rows already in step count as done at once; the sent ones once their part is written.
    s.processed += sent.scanned - sent.rows;
    if (sent.rows > 0) {
      s.inFlight.push({ part: n, tokens: sent.tokens, rows: sent.rows });
      s.nextPart += 1;
    }
    this.showDetails();
  }

  private async poll(p: InFlightPart): Promise<void> {
    const { pipeline } = this.options;
    const s = this.state;
    const polled = await steps.pollBatchPart.executeWithOptions(
      { summary: `Poll part ${p.part} of ${pipeline}` },
      [this.ref(p.part)],
    );
    if (polled.phase === 'running') return;
    if (polled.phase === 'failed' && polled.errorCode === 'token_limit_exceeded') {
      p.refused = true;
      return;
    }
    if (polled.phase === 'failed' || polled.phase === 'cancelled') {
      const why = `${polled.errorCode ?? polled.status}: ${polled.errorMessage ?? 'no output'}`;
      await steps.failBatchPart.executeWithOptions(
        { summary: `Record part ${p.part} of ${pipeline} as failed` },
        [{ ...this.ref(p.part), error: why }],
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
      [this.ref(p.part)],
    );
    s.inFlight = s.inFlight.filter((x) => x.part !== p.part);
    s.completedParts += 1;
    s.processed += p.rows;
    s.tokens += written.tokens;
    s.failedLines += written.deadLettered;
    const { cursor, processed, total } = s;
    const checkpoint = await activities.checkpointBackfill.executeWithOptions(
      { summary: `Checkpoint ${pipeline} at ${groupDigits(processed)} rows` },
      [{ pipeline, cursor, processed, tokens: written.tokens, total }],
    );
    s.total = checkpoint.total;
    this.showDetails();
  }

  /** Builds the vector table's HNSW index if the work left it out (an empty table at its start). */
  async buildIndex(): Promise<void> {
    const { pipeline, generation } = this.options;
    const phase = this.phase;
    this.phase = 'indexing';
    this.showDetails();
    await indexActivities.buildVectorIndex.executeWithOptions(
      { summary: `Build the HNSW index of ${pipeline}'s vector table if the batches left it out` },
      [{ pipeline, ...(generation === undefined ? {} : { generation }) }],
    );
    this.phase = phase;
  }

  /**
   * Cancels the provider's batches still in flight: for every way the work ends but completing.
   * Parts the provider had already completed are paid for, so they are written (`write`) rather
   * than thrown away; a re-embed being abandoned has nowhere to write them.
   */
  async cancelInFlight(write: boolean): Promise<void> {
    const { pipeline, generation } = this.options;
    const { completed } = await steps.cancelBatchParts.executeWithOptions(
      { summary: `Cancel the provider's batches of ${pipeline} still in flight` },
      [
        {
          pipeline,
          backfill: this.state.backfill,
          ...(generation === undefined ? {} : { generation }),
        },
      ],
    );
    if (!write) return;
    for (const part of completed) {
      await steps.writeBatchPart.executeWithOptions(
        { summary: `Write part ${part} of ${pipeline}, completed and paid for before the end` },
        [this.ref(part)],
      );
    }
  }
}
