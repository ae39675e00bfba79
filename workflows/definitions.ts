// Signals, queries and shapes shared by the workflows and the commands that talk to them.
import { defineQuery, defineSignal } from '@temporalio/workflow';

export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');

export interface BackfillProgress {
  /**
   * pausing: asked to pause, letting the batches in flight finish; paused: holding, nothing in
   * flight. indexing: every row is written; the vector table's HNSW index, left out while the walk
   * filled an empty table, is being built.
   */
  phase: 'counting' | 'running' | 'pausing' | 'paused' | 'indexing' | 'finishing' | 'done';
  processed: number;
  total: number | null;
  /** Rows per second of running time (pauses excluded); null until a page has finished. */
  rowsPerSecond: number | null;
  /**
   * Running seconds still to go at that rate; null while pausing or paused, or before a rate is
   * known.
   */
  etaSeconds: number | null;
  /**
   * Time spent running and paused so far, across continue-as-new; a pause counts once it took
   * effect.
   */
  runningSeconds: number;
  pausedSeconds: number;
  paused: boolean;
  /** The last key written: the backfill resumes after it. */
  cursor: string | null;
  /** A batch-mode backfill's parts (workflows/batch-backfill.ts); absent for a walk. */
  parts?: BatchPartsProgress;
}

/** A batch-mode backfill's parts, counted. */
export interface BatchPartsProgress {
  /** Sent to the provider's Batch API so far. */
  submitted: number;
  /** Of those, running at the provider now. */
  inProgress: number;
  /** Written into the vector table. */
  completed: number;
  /** Request lines (rows) the provider refused, dead-lettered. */
  failedLines: number;
  /** Tokens the written parts paid for, at the batch price. */
  tokens: number;
}

export const progressQuery = defineQuery<BackfillProgress>('progress');
