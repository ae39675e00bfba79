// One batch through the four stages: fetch → chunk → embed → write. Shared by sync and backfill.
import {
  ActivityFailure,
  ApplicationFailure,
  proxyActivities,
  proxyLocalActivities,
} from '@temporalio/workflow';
import type {
  Activities,
  BatchRef,
  EmbedActivities,
  EmbedResult,
  FetchResult,
  WriteResult,
} from '../activities/index.js';
import { groupDigits } from './progress.js';

// Database stages retry until the database is back: a change is never given up on for an outage.
// The activities heartbeat every few seconds, so a lost attempt (worker killed, task dropped) is
// retried after the heartbeat timeout; start-to-close only bounds a slow but live one.
const activities = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

// The same stages as local activities, run by the worker that runs the workflow, in its workflow
// task: no server round trip between stages (docs/architecture.md, decision 2). A lost attempt
// (worker killed) is re-run when the workflow task times out and another worker replays it.
const local = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

export interface BatchOutcome extends WriteResult {
  embedded: number;
  tokens: number;
}

export interface Batch {
  pipeline: string;
  batchId: string;
  keys: string[];
  sweep: boolean;
  /** Absent: the live generation. */
  generation?: number;
  /** A sync's earliest outbox entry (ISO 8601), passed to the write for the latency metric. */
  enqueuedAt?: string;
}

export interface BatchOptions {
  /**
   * Run fetch, chunk and write as local activities, and embed too unless the provider's requests are
   * paced by its task queue (a sync's path; a walk keeps its batches on the task queues).
   */
  local?: boolean;
}

export async function processBatch(
  batch: Batch,
  embedTaskQueue: string,
  options: BatchOptions = {},
): Promise<BatchOutcome> {
  const isLocal = options.local === true;
  const stages = isLocal ? local : activities;
  const settled = <T>(type: string, result: Promise<T>): Promise<T> =>
    isLocal ? asActivityFailure(type, result) : result;
  const ref = {
    pipeline: batch.pipeline,
    batchId: batch.batchId,
    ...(batch.generation === undefined ? {} : { generation: batch.generation }),
  };
  // Summaries are what the Web UI shows for each activity of the batch.
  const of = `${batch.pipeline}${batch.generation === undefined ? '' : ` (generation ${batch.generation})`}`;
  const fetched = await settled(
    'fetchBatch',
    stages.fetchBatch.executeWithOptions({ summary: `Read ${rows(batch.keys.length)} of ${of}` }, [
      { ...ref, keys: batch.keys },
    ]),
  );
  let embedded = { embedded: 0, tokens: 0 };
  if (fetched.embed > 0) {
    await settled(
      'chunkBatch',
      stages.chunkBatch.executeWithOptions({ summary: `Chunk ${rows(fetched.embed)} of ${of}` }, [
        ref,
      ]),
    );
    const summary = `Embed the chunks of ${rows(fetched.embed)} of ${of}`;
    embedded = await embedStage(ref, summary, embedTaskQueue, isLocal);
  }
  const summary = batch.sweep
    ? `Remove vectors of truncated rows of ${of}`
    : writeSummary(fetched, of);
  const measured = batch.enqueuedAt === undefined ? {} : { enqueuedAt: batch.enqueuedAt };
  const written = await settled(
    'writeBatch',
    stages.writeBatch.executeWithOptions({ summary }, [
      { ...ref, sweep: batch.sweep, ...measured },
    ]),
  );
  return { ...written, ...embedded };
}

/** The embed stage: here when it may be, else paced on the provider's task queue. */
async function embedStage(
  ref: BatchRef,
  summary: string,
  embedTaskQueue: string,
  isLocal: boolean,
): Promise<{ embedded: number; tokens: number }> {
  const counts = { embedded: 0, tokens: 0 };
  const add = (result: EmbedResult): void => {
    counts.embedded += result.embedded;
    counts.tokens += result.tokens;
  };
  if (isLocal) {
    // In the workflow task, unless the provider's requests are paced by its task queue's rate or
    // the provider is not hosted by this worker: then the call declines, embedding nothing.
    const here = await asActivityFailure(
      'embedBatch',
      local.embedBatch.executeWithOptions({ summary }, [{ ...ref, local: true }]),
    );
    add(here);
    if (!here.declined) return counts;
  }
  const { embedBatch } = proxyActivities<EmbedActivities>({
    taskQueue: embedTaskQueue,
    startToCloseTimeout: '10 minutes',
    heartbeatTimeout: '30 seconds',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '2 minutes' },
  });
  // One paced call per rate-limit slot: the server limits activities per second on the provider's
  // queue, so each call sends one slot's worth of requests and says how much remains.
  for (;;) {
    const result = await embedBatch.executeWithOptions({ summary }, [{ ...ref, paced: true }]);
    add(result);
    // Histories from before pacing carry no `remaining`: those calls embedded everything.
    if (!result.remaining) return counts;
  }
}

/**
 * A local activity's failure reaches the workflow bare, an activity's on a task queue inside an
 * ActivityFailure: wrapped alike, so that a sync keeps the keys of a batch that failed for good
 * (workflows/sync.ts) and its failure reads the same whichever way its stages ran.
 */
async function asActivityFailure<T>(activityType: string, result: Promise<T>): Promise<T> {
  try {
    return await result;
  } catch (err) {
    if (!(err instanceof ApplicationFailure)) throw err;
    const retryState = err.nonRetryable ? 'NON_RETRYABLE_FAILURE' : 'MAXIMUM_ATTEMPTS_REACHED';
    const message = 'Local activity failed';
    throw new ActivityFailure(message, activityType, undefined, retryState, undefined, err);
  }
}

const rows = (n: number, what = ''): string =>
  `${groupDigits(n)} ${what}${n === 1 ? 'row' : 'rows'}`;

/**
 * What the write will do with what fetch found: changed rows get their new chunks, unchanged ones
 * their metadata brought up to date (it is the only thing that can have moved), and gone ones lose
 * their vectors.
 */
function writeSummary(fetched: FetchResult, of: string): string {
  const { embed, keep, delete: gone } = fetched;
  if (embed === 0 && gone === 0) {
    if (keep === 0) return `Nothing to write for ${of}`;
    return `Refresh the metadata of ${rows(keep, 'unchanged ')} of ${of}: nothing to re-embed`;
  }
  const parts = [
    ...(embed > 0 ? [`write ${rows(embed, 'changed ')}`] : []),
    ...(keep > 0 ? [`refresh the metadata of ${groupDigits(keep)} unchanged`] : []),
    ...(gone > 0 ? [`delete the vectors of ${rows(gone, 'removed ')}`] : []),
  ].join(', ');
  return `${parts.charAt(0).toUpperCase()}${parts.slice(1)} in the vector table of ${of}`;
}
