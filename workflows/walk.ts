// Walking a whole table: keyset pages of primary keys, a window of batches in flight that slides,
// checkpoints as batches finish, pause/resume signals, a progress query, continue-as-new, and the
// vector table's HNSW index built at the end if the walk left it out.
// Shared by the backfill and the re-embed (which walks the table for the pending generation).
import {
  condition,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities, CheckpointResult, EmbedActivities } from '../activities/index.js';
import { processBatch } from './batch.js';
import { BatchWindow } from './window.js';
import { pauseSignal, progressQuery, resumeSignal, type BackfillProgress } from './definitions.js';
import {
  clip,
  clockTotals,
  groupDigits,
  startClock,
  switchClock,
  walkDetails,
  walkRate,
  type WalkClock,
} from './progress.js';

export interface WalkOptions {
  pipeline: string;
  /** Absent: the live generation. */
  generation?: number;
  embedTaskQueue: string;
  /** Keys per batch. */
  batchSize: number;
  /** Batches in flight at once. */
  window: number;
  /** Continue as new after this many history events even if the server has not suggested it yet. */
  maxHistoryEvents?: number;
}

/**
 * Carried across continue-as-new. Fields added later are optional: runs that carried none still
 * replay.
 */
export interface WalkState {
  cursor: string | null;
  processed: number;
  total: number;
  tokens: number;
  pages: number;
  paused: boolean;
  /** Time spent running and paused by the earlier runs. */
  runningSeconds?: number;
  pausedSeconds?: number;
  /** `processed` when the running time began to be kept: the rate counts the rows walked since. */
  timedFrom?: number;
  /** Batches started so far: names the next one's staging. */
  batches?: number;
}

/**
 * Keys a checkpoint counts after the cursor, in pages: enough to make the total exact near the end,
 * cheaply.
 */
const COUNT_AHEAD_PAGES = 4;

/** A run continues as new past this size even before the server suggests it (its limit: 50 MiB). */
const MAX_HISTORY_BYTES = 3 * 2 ** 20;

// The walk's own database stages (scan, checkpoint, start and finish), retried like a batch's.
export const activities = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

// Building a vector table's HNSW index takes minutes on a large table: a timeout of its own. It
// heartbeats while it builds, so a lost attempt is retried soon.
const indexActivities = proxyActivities<Activities>({
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

export class TableWalk {
  phase: BackfillProgress['phase'];
  readonly state: WalkState;
  private paused: boolean;
  /** True while waiting for resume, with no batch in flight. */
  private holding = false;
  /** Rows processed by earlier runs, when this run's window started. */
  private processedBefore = 0;
  /**
   * Running time excludes the paused spans: from the pause taking effect (holding) to the resume.
   */
  private clock: WalkClock;

  constructor(
    private readonly options: WalkOptions,
    readonly batchPrefix: string,
    carried?: WalkState,
  ) {
    this.state = carried ?? {
      cursor: null,
      processed: 0,
      total: 0,
      tokens: 0,
      pages: 0,
      paused: false,
      runningSeconds: 0,
      pausedSeconds: 0,
    };
    // A run carried over from before the running time was kept times the rows from here on.
    this.state.timedFrom ??= this.state.processed;
    this.clock = startClock(Date.now(), this.state);
    this.phase = carried ? 'running' : 'counting';
    this.paused = this.state.paused;
    setHandler(pauseSignal, () => {
      this.paused = true;
      this.showDetails();
    });
    setHandler(resumeSignal, () => {
      this.paused = false;
      this.showDetails();
    });
    // A query does not advance workflow time (Date.now() is the last task's): it reads the real
    // clock, which is safe because queries are not replayed.
    setHandler(progressQuery, () => this.progress(workflowInfo().unsafe.now()));
  }

  /** Where the walk is at `now`: workflow time in workflow code, the real clock in the query. */
  progress(now: number): BackfillProgress {
    const { processed, cursor } = this.state;
    const { runningSeconds, pausedSeconds } = clockTotals(this.clock, now);
    const phase =
      this.paused && this.phase === 'running' ? (this.holding ? 'paused' : 'pausing') : this.phase;
    // Rows added meanwhile can take the walk past the count it started from: never show more done
    // than in all.
    const total = Math.max(this.state.total, processed);
    const timedFrom = this.state.timedFrom ?? 0;
    const rate = walkRate({ processed, total, timedFrom, runningSeconds, paused: this.paused });
    return {
      phase,
      processed,
      total: this.phase === 'counting' ? null : total,
      ...rate,
      runningSeconds,
      pausedSeconds,
      paused: this.paused,
      cursor,
    };
  }

  /**
   * Builds the vector table's HNSW index if the walk left it out (it started on an empty table):
   * whatever way the walk ends, the pipeline is not left without it. Walks recorded before the
   * index was deferred did not ask.
   */
  async buildIndex(): Promise<void> {
    if (!patched('walk-deferred-index')) return;
    const { pipeline, generation } = this.options;
    const phase = this.phase;
    this.phase = 'indexing';
    this.showDetails();
    await indexActivities.buildVectorIndex.executeWithOptions(
      { summary: `Build the HNSW index of ${pipeline}'s vector table if the walk left it out` },
      [{ pipeline, ...(generation === undefined ? {} : { generation }) }],
    );
    this.phase = phase;
    this.showDetails();
  }

  /** The running and paused time so far, for the result and for continue-as-new. */
  times(): { runningSeconds: number; pausedSeconds: number } {
    return clockTotals(this.clock, Date.now());
  }

  /** The Web UI's current details. */
  showDetails(): void {
    setCurrentDetails(walkDetails(this.progress(Date.now())));
  }

  /**
   * Walks to the end of the table; calls continueAsNew (which does not return) when history grows.
   */
  async walk(continueAsNew: (state: WalkState) => Promise<never>): Promise<void> {
    this.phase = 'running';
    if (patched('walk-sliding-window')) return this.walkWindow(continueAsNew);
    return this.walkByPages(continueAsNew);
  }

  /** The pause takes effect with nothing in flight: its time stops counting as running. */
  private async hold(): Promise<void> {
    this.holding = true;
    this.clock = switchClock(this.clock, Date.now(), true);
    this.showDetails();
    // Waits on the signal alone: no timer churn while paused.
    await condition(() => !this.paused);
    this.holding = false;
    this.clock = switchClock(this.clock, Date.now(), false);
    this.showDetails();
  }

  /**
   * A window of batches that slides: a new batch starts as soon as any one finishes, each batch one
   * activity (activities/walk-batch.ts). The cursor recorded is the end of the batches finished
   * from the start (BatchWindow); before continuing as new, the batches in flight finish, so the
   * next run starts exactly after them.
   */
  private async walkWindow(continueAsNew: (state: WalkState) => Promise<never>): Promise<void> {
    const { pipeline, batchSize, window } = this.options;
    const batches = new BatchWindow();
    let buffer: string[] = [];
    let scannedTo = this.state.cursor;
    let exhausted = false;
    let wakes = 0;
    let failure: Error | undefined;
    let checkpointed = 0;
    const due = (): boolean => {
      const info = workflowInfo();
      return (
        info.continueAsNewSuggested ||
        info.historyLength > (this.options.maxHistoryEvents ?? 8000) ||
        info.historySize > MAX_HISTORY_BYTES
      );
    };
    const checkpoint = async (): Promise<void> => {
      const run = batches.finishedRun();
      checkpointed = run.batches;
      this.state.cursor = run.cursor ?? this.state.cursor;
      const { cursor, processed, tokens, total } = this.state;
      const result = await activities.checkpointBackfill.executeWithOptions(
        { summary: `Checkpoint ${pipeline} at ${groupDigits(processed)} rows` },
        [
          {
            pipeline,
            cursor,
            processed,
            tokens,
            total,
            countAhead: COUNT_AHEAD_PAGES * batchSize * window,
          },
        ],
      );
      this.state.total = result.total;
      this.state.pages += 1;
      this.showDetails();
    };
    // While the walk goes on, a checkpoint runs beside the batches instead of holding the window.
    let recording: Promise<void> | undefined;
    const checkpointBeside = (): void => {
      recording = checkpoint().then(
        () => {
          recording = undefined;
        },
        (err: unknown) => {
          failure ??= err instanceof Error ? err : new Error(String(err));
          wakes += 1;
        },
      );
    };
    const checkpointNow = async (): Promise<void> => {
      if (recording) await recording;
      if (failure !== undefined) throw failure;
      await checkpoint();
    };
    const launch = (keys: string[]): void => {
      const slot = batches.launch(keys);
      const batchId = `${this.batchPrefix}b${this.state.batches ?? 0}`;
      this.state.batches = (this.state.batches ?? 0) + 1;
      this.runBatch(batchId, keys).then(
        (tokens) => {
          batches.finish(slot);
          this.state.tokens += tokens;
          this.state.processed = this.processedBefore + batches.finishedRows;
          wakes += 1;
        },
        (err: unknown) => {
          failure ??= err instanceof Error ? err : new Error(String(err));
          wakes += 1;
        },
      );
    };
    this.processedBefore = this.state.processed;
    for (;;) {
      if (this.paused && batches.inFlight === 0) {
        if (batches.finishedRun().batches > checkpointed) await checkpointNow();
        await this.hold();
      }
      while (!this.paused && !due() && batches.inFlight < window) {
        if (buffer.length === 0 && !exhausted) {
          const after = scannedTo === null ? 'from the start' : `after ${clip(scannedTo)}`;
          const limit = batchSize * window;
          buffer = await activities.scanKeys.executeWithOptions(
            { summary: `Find the next ${groupDigits(limit)} keys of ${pipeline} ${after}` },
            [{ pipeline, after: scannedTo, limit }],
          );
          exhausted = buffer.length < limit;
          scannedTo = buffer[buffer.length - 1] ?? scannedTo;
        }
        if (buffer.length === 0) break;
        launch(buffer.splice(0, batchSize));
      }
      if (batches.inFlight === 0) {
        if (buffer.length === 0 && exhausted) {
          await checkpointNow();
          // The walk went through everything there was: that is the total, whatever was counted.
          this.state.total = this.state.processed;
          return;
        }
        if (due()) {
          await checkpointNow();
          await continueAsNew({ ...this.state, ...this.times(), paused: this.paused });
        }
        if (this.paused) continue;
      }
      const seen = wakes;
      await condition(() => wakes > seen);
      if (failure !== undefined) throw failure;
      if (!recording && batches.finishedRun().batches - checkpointed >= window) checkpointBeside();
    }
  }

  /** One batch: its activity, called again while a paced call leaves rows to embed. */
  private async runBatch(batchId: string, keys: string[]): Promise<number> {
    const { pipeline, generation, embedTaskQueue } = this.options;
    const { walkBatch } = proxyActivities<EmbedActivities>({
      taskQueue: embedTaskQueue,
      startToCloseTimeout: '10 minutes',
      heartbeatTimeout: '30 seconds',
      retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '2 minutes' },
    });
    const of = `${pipeline}${generation === undefined ? '' : ` (generation ${generation})`}`;
    const from = clip(keys[0] ?? '', 20);
    const summary = `Read ${groupDigits(keys.length)} rows of ${of} from key ${from}, embed those that changed and write their vectors`;
    const input = {
      pipeline,
      batchId,
      keys,
      paced: true,
      ...(generation === undefined ? {} : { generation }),
    };
    let tokens = 0;
    for (;;) {
      const result = await walkBatch.executeWithOptions({ summary }, [input]);
      tokens += result.tokens;
      if (result.remaining === 0) return tokens;
    }
  }

  /** The walk as it ran before its window slid: one page of batches at a time. */
  private async walkByPages(continueAsNew: (state: WalkState) => Promise<never>): Promise<void> {
    const { pipeline, generation, embedTaskQueue, batchSize, window } = this.options;
    for (;;) {
      if (this.paused) {
        // The pause takes effect now, with nothing in flight: its time stops counting as running.
        this.holding = true;
        this.clock = switchClock(this.clock, Date.now(), true);
        this.showDetails();
        // Waits on the signal alone: no timer churn while paused.
        await condition(() => !this.paused);
        this.holding = false;
        this.clock = switchClock(this.clock, Date.now(), false);
        this.showDetails();
      }
      const limit = batchSize * window;
      const after =
        this.state.cursor === null ? 'from the start' : `after ${clip(this.state.cursor)}`;
      const keys = await activities.scanKeys.executeWithOptions(
        { summary: `Find the next ${groupDigits(limit)} keys of ${pipeline} ${after}` },
        [{ pipeline, after: this.state.cursor, limit }],
      );
      if (keys.length === 0) {
        // The walk went through everything there was: that is the total, whatever was counted at
        // the start.
        this.state.total = this.state.processed;
        return;
      }
      const page = this.state.pages;
      const outcomes = await Promise.all(
        slices(keys, batchSize).map((slice, i) =>
          processBatch(
            {
              pipeline,
              batchId: `${this.batchPrefix}${page}-${i}`,
              keys: slice,
              sweep: false,
              ...(generation === undefined ? {} : { generation }),
            },
            embedTaskQueue,
          ),
        ),
      );
      const tokens = outcomes.reduce((sum, o) => sum + o.tokens, 0);
      this.state.cursor = keys[keys.length - 1] ?? this.state.cursor;
      this.state.processed += keys.length;
      this.state.pages += 1;
      this.state.tokens += tokens;
      const { cursor, processed, total } = this.state;
      const checkpoint: CheckpointResult | undefined =
        await activities.checkpointBackfill.executeWithOptions(
          { summary: `Checkpoint ${pipeline} at ${groupDigits(processed)} rows` },
          [{ pipeline, cursor, processed, tokens, total, countAhead: COUNT_AHEAD_PAGES * limit }],
        );
      // Checkpoints recorded before they counted the rows ahead returned nothing: the total stays.
      if (checkpoint) this.state.total = checkpoint.total;
      this.showDetails();
      const info = workflowInfo();
      if (
        info.continueAsNewSuggested ||
        info.historyLength > (this.options.maxHistoryEvents ?? 8000)
      ) {
        await continueAsNew({ ...this.state, ...this.times(), paused: this.paused });
      }
    }
  }
}

function slices<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
