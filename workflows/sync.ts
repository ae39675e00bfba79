// syncChanges: one batch of captured changes through fetch → chunk → embed → write.
// Texts and vectors stay in Postgres (staging tables); only keys and counts pass through here.
import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { Activities, EmbedActivities, FetchResult, WriteResult } from '../activities/index.js';

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

// Database stages retry until the database is back: a change is never given up on for an outage.
const { fetchBatch, chunkBatch, writeBatch } = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

export async function syncChanges(input: SyncInput): Promise<SyncResult> {
  const batch = { pipeline: input.pipeline, batchId: workflowInfo().workflowId };
  const { embedBatch } = proxyActivities<EmbedActivities>({
    taskQueue: input.embedTaskQueue,
    startToCloseTimeout: '10 minutes',
    heartbeatTimeout: '1 minute',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '2 minutes' },
  });

  const fetched: FetchResult = await fetchBatch({ ...batch, keys: input.keys });
  let embedded = 0;
  let tokens = 0;
  if (fetched.embed > 0) {
    await chunkBatch(batch);
    const result = await embedBatch(batch);
    embedded = result.embedded;
    tokens = result.tokens;
  }
  const written = await writeBatch({ ...batch, sweep: input.sweep });
  return { ...written, keys: input.keys.length, embedded, tokens };
}
