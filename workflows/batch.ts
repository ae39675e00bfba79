// One batch through the four stages: fetch → chunk → embed → write. Shared by sync and backfill.
import {
  ActivityFailure,
  ApplicationFailure,
  proxyActivities,
  proxyLocalActivities,
  TimeoutFailure,
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

/** Attempts of a stage as a local activity before it goes on as an activity on the task queue. */
export const LOCAL_ATTEMPTS = 3;

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
// (worker killed) is re-run when the workflow task times out and another worker replays it. A few
// quick attempts only: a stage still failing after them goes on as an activity (localFirst).
const local = proxyLocalActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '500ms', backoffCoefficient: 2, maximumAttempts: LOCAL_ATTEMPTS },
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
  const run = <T>(type: string, here: () => Promise<T>, queued: () => Promise<T>): Promise<T> =>
    isLocal ? localFirst(type, here, queued) : queued();
  const ref = {
    pipeline: batch.pipeline,
    batchId: batch.batchId,
    ...(batch.generation === undefined ? {} : { generation: batch.generation }),
  };
  // Summaries are what the Web UI shows for each activity of the batch.
  const of = `${batch.pipeline}${batch.generation === undefined ? '' : ` (generation ${batch.generation})`}`;
  const read = { summary: `Read ${rows(batch.keys.length)} of ${of}` };
  const toFetch = { ...ref, keys: batch.keys };
  const fetched = await run(
    'fetchBatch',
    () => local.fetchBatch.executeWithOptions(read, [toFetch]),
    () => activities.fetchBatch.executeWithOptions(read, [toFetch]),
  );
  let embedded = { embedded: 0, tokens: 0 };
  if (fetched.embed > 0) {
    const chunk = { summary: `Chunk ${rows(fetched.embed)} of ${of}` };
    await run(
      'chunkBatch',
      () => local.chunkBatch.executeWithOptions(chunk, [ref]),
      () => activities.chunkBatch.executeWithOptions(chunk, [ref]),
    );
    const summary = `Embed the chunks of ${rows(fetched.embed)} of ${of}`;
    embedded = await embedStage(ref, summary, embedTaskQueue, isLocal);
  }
  const write = {
    summary: batch.sweep ? `Remove vectors of truncated rows of ${of}` : writeSummary(fetched, of),
  };
  const measured = batch.enqueuedAt === undefined ? {} : { enqueuedAt: batch.enqueuedAt };
  const toWrite = { ...ref, sweep: batch.sweep, ...measured };
  const written = await run(
    'writeBatch',
    () => local.writeBatch.executeWithOptions(write, [toWrite]),
    () => activities.writeBatch.executeWithOptions(write, [toWrite]),
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
    const here = await localFirst(
      'embedBatch',
      () => local.embedBatch.executeWithOptions({ summary }, [{ ...ref, local: true }]),
      // Still failing here: the paced loop on the provider's queue takes over.
      () => Promise.resolve({ ...NOTHING_EMBEDDED, declined: true }),
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

const NOTHING_EMBEDDED = { embedded: 0, tokens: 0, requests: 0, remaining: 0, deadLettered: 0 };

/**
 * Runs a stage as a local activity. One still failing after its LOCAL_ATTEMPTS (the database or
 * the provider is out) goes on as an activity on the task queue, whose retries add nothing to the
 * history however long the outage lasts (a local activity waiting to retry keeps its workflow task
 * alive by completing it, a few events every 8 s). A failure that is not retried fails the stage
 * as it would on the queue: a local activity's reaches the workflow without its ActivityFailure,
 * which is added here, so that a sync keeps the keys of a batch that failed for good
 * (workflows/sync.ts) and its failure reads the same whichever way its stages ran.
 */
async function localFirst<T>(
  activityType: string,
  here: () => Promise<T>,
  queued: () => Promise<T>,
): Promise<T> {
  try {
    return await here();
  } catch (err) {
    if (err instanceof ApplicationFailure && err.nonRetryable) {
      const state = 'NON_RETRYABLE_FAILURE';
      const message = 'Local activity failed';
      throw new ActivityFailure(message, activityType, undefined, state, undefined, err);
    }
    const timedOut = err instanceof ActivityFailure && err.cause instanceof TimeoutFailure;
    if (err instanceof ApplicationFailure || timedOut) return queued();
    throw err;
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
