// Walking a whole table: keyset pages of primary keys, a bounded window of batches in flight,
// a checkpoint after every page, pause/resume signals, a progress query, continue-as-new.
// Shared by the backfill and the re-embed (which walks the table for the pending generation).
import { condition, proxyActivities, setCurrentDetails, setHandler, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { processBatch } from './batch.js';
import { pauseSignal, progressQuery, resumeSignal, type BackfillProgress } from './definitions.js';

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

/** Carried across continue-as-new. */
export interface WalkState {
  cursor: string | null;
  processed: number;
  total: number;
  tokens: number;
  pages: number;
  paused: boolean;
}

export const control = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

export class TableWalk {
  phase: BackfillProgress['phase'];
  readonly state: WalkState;
  private paused: boolean;
  /** True while waiting for resume, with no batch in flight. */
  private holding = false;
  private readonly runStarted = Date.now();
  private readonly runStartProcessed: number;

  constructor(private readonly options: WalkOptions, readonly batchPrefix: string, carried?: WalkState) {
    this.state = carried ?? { cursor: null, processed: 0, total: 0, tokens: 0, pages: 0, paused: false };
    this.phase = carried ? 'running' : 'counting';
    this.paused = this.state.paused;
    this.runStartProcessed = this.state.processed;
    setHandler(pauseSignal, () => void (this.paused = true));
    setHandler(resumeSignal, () => void (this.paused = false));
    setHandler(progressQuery, () => this.progress());
  }

  progress(): BackfillProgress {
    const elapsed = (Date.now() - this.runStarted) / 1000;
    const done = this.state.processed - this.runStartProcessed;
    const rate = elapsed > 0 && done > 0 ? done / elapsed : null;
    const left = Math.max(this.state.total - this.state.processed, 0);
    const phase = this.paused && this.phase === 'running' ? (this.holding ? 'paused' : 'pausing') : this.phase;
    const total = this.phase === 'counting' ? null : this.state.total;
    return { phase, processed: this.state.processed, total, rowsPerSecond: rate, etaSeconds: rate ? left / rate : null, paused: this.paused, cursor: this.state.cursor };
  }

  /** Walks to the end of the table; calls continueAsNew (which does not return) when history grows. */
  async walk(continueAsNew: (state: WalkState) => Promise<never>): Promise<void> {
    const { pipeline, generation, embedTaskQueue, batchSize, window } = this.options;
    this.phase = 'running';
    for (;;) {
      if (this.paused) {
        setCurrentDetails(`Paused at ${this.state.processed} of ${this.state.total} rows`);
        // Waits on the signal alone: no timer churn while paused.
        this.holding = true;
        await condition(() => !this.paused);
        this.holding = false;
      }
      const keys = await control.scanKeys({ pipeline, after: this.state.cursor, limit: batchSize * window });
      if (keys.length === 0) return;
      const page = this.state.pages;
      const outcomes = await Promise.all(
        slices(keys, batchSize).map((slice, i) =>
          processBatch({ pipeline, batchId: `${this.batchPrefix}${page}-${i}`, keys: slice, sweep: false, ...(generation === undefined ? {} : { generation }) }, embedTaskQueue),
        ),
      );
      const tokens = outcomes.reduce((sum, o) => sum + o.tokens, 0);
      this.state.cursor = keys[keys.length - 1] ?? this.state.cursor;
      this.state.processed += keys.length;
      this.state.pages += 1;
      this.state.tokens += tokens;
      await control.checkpointBackfill({ pipeline, cursor: this.state.cursor, processed: this.state.processed, tokens });
      setCurrentDetails(`${this.state.processed} of ${this.state.total} rows embedded`);
      const info = workflowInfo();
      if (info.continueAsNewSuggested || info.historyLength > (this.options.maxHistoryEvents ?? 8000)) {
        await continueAsNew({ ...this.state, paused: this.paused });
      }
    }
  }
}

function slices<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
