// Signals, queries and shapes shared by the workflows and the commands that talk to them.
import { defineQuery, defineSignal } from '@temporalio/workflow';

export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');

export interface BackfillProgress {
  /** pausing: asked to pause, letting the batches in flight finish; paused: holding, nothing in flight. */
  phase: 'counting' | 'running' | 'pausing' | 'paused' | 'finishing' | 'done';
  processed: number;
  total: number | null;
  /** Over the current run; null until a page has finished. */
  rowsPerSecond: number | null;
  etaSeconds: number | null;
  paused: boolean;
  /** The last key written: the backfill resumes after it. */
  cursor: string | null;
}

export const progressQuery = defineQuery<BackfillProgress>('progress');
