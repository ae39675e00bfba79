// syncChanges: one batch of captured changes through fetch → chunk → embed → write.
// Texts and vectors stay in Postgres (staging tables); only keys and counts pass through here.
import { workflowInfo } from '@temporalio/workflow';
import type { WriteResult } from '../activities/index.js';
import { processBatch } from './batch.js';

export interface SyncInput {
  pipeline: string;
  keys: string[];
  /** A TRUNCATE was captured: also remove vectors of rows no longer in the source. */
  sweep: boolean;
  /** The provider's embedding task queue. */
  embedTaskQueue: string;
}

export interface SyncResult extends WriteResult {
  keys: number;
  embedded: number;
  tokens: number;
}

export async function syncChanges(input: SyncInput): Promise<SyncResult> {
  const batch = { pipeline: input.pipeline, batchId: workflowInfo().workflowId, keys: input.keys, sweep: input.sweep };
  const outcome = await processBatch(batch, input.embedTaskQueue);
  return { ...outcome, keys: input.keys.length };
}
