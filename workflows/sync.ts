// syncChanges: one batch of captured changes through fetch → chunk → embed → write.
// Texts and vectors stay in Postgres (staging tables); only keys and counts pass through here.
import {
  ActivityFailure,
  ApplicationFailure,
  patched,
  proxyActivities,
  proxyLocalActivities,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities, DeliverInput, WriteResult } from '../activities/index.js';
import { processBatch, type BatchOutcome } from './batch.js';
import { sinkTaskQueue } from '../src/temporal/names.js';
import { clip, groupDigits } from './progress.js';

export interface SyncTarget {
  generation: number;
  /** The embedding task queue of that generation's provider. */
  embedTaskQueue: string;
}

export interface SyncInput {
  pipeline: string;
  keys: string[];
  /** A TRUNCATE was captured: also remove vectors of rows no longer in the source. */
  sweep: boolean;
  /** The live generation's embedding task queue (kept for syncs started before targets existed). */
  embedTaskQueue: string;
  /** The generations to write: the live one, and the pending one while a re-embed builds it. */
  targets?: SyncTarget[];
  /**
   * When the batch's earliest change entered the outbox (ISO 8601): the write measures the latency
   * from it.
   */
  enqueuedAt?: string;
  /**
   * An events-only pipeline's batch (decision 23): nothing to embed or write, only its sinks to
   * tell.
   */
  events?: { sinks: number };
}

export interface SyncResult extends WriteResult {
  keys: number;
  embedded: number;
  tokens: number;
}

// Keeping a failed batch's keys as dead letters: the one activity a sync calls outside its batch.
const activities = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumInterval: '1 minute' },
});

export async function syncChanges(input: SyncInput): Promise<SyncResult> {
  try {
    return await sync(input);
  } catch (err) {
    // Retrying cannot fix it (quota, credentials, …) and the outbox rows are gone: keep the keys.
    if (
      err instanceof ActivityFailure &&
      err.cause instanceof ApplicationFailure &&
      err.cause.nonRetryable
    ) {
      const n = input.keys.length;
      const keys = `${groupDigits(n)} ${n === 1 ? 'key' : 'keys'} of ${input.pipeline}`;
      await activities.deadLetterBatch.executeWithOptions(
        { summary: `Keep ${keys} as dead letters: ${clip(err.cause.message, 80)}` },
        [{ pipeline: input.pipeline, keys: input.keys, error: err.cause.message }],
      );
    }
    throw err;
  }
}

async function sync(input: SyncInput): Promise<SyncResult> {
  const id = workflowInfo().workflowId;
  const base = { pipeline: input.pipeline, keys: input.keys, sweep: input.sweep };
  // Only the live table's write measures latency, so a sync counts once during a re-embed too.
  const measured = input.enqueuedAt === undefined ? {} : { enqueuedAt: input.enqueuedAt };
  // The stages as local activities, in the workflow's own task (docs/architecture.md, decision 2);
  // syncs started before ran them as activities on the task queues and replay that way.
  const options = { local: patched('sync-local-stages') };
  if (input.events) {
    await deliver(input, input.events.sinks);
    return { ...NOTHING_WRITTEN, keys: input.keys.length, embedded: 0, tokens: 0 };
  }
  if (!input.targets || input.targets.length === 0) {
    const batch = { ...base, ...measured, batchId: id };
    const outcome = await processBatch(batch, input.embedTaskQueue, options);
    await deliver(input, outcome.sinks ?? 0);
    return { ...outcome, keys: input.keys.length };
  }
  // During a re-embed, each change is written to the live table and to the one being built.
  const outcomes = await Promise.all(
    input.targets.map((t, i) => {
      const batchId = i === 0 ? id : `${id}:g${t.generation}`;
      const batch = { ...base, ...(i === 0 ? measured : {}), batchId, generation: t.generation };
      return processBatch(batch, t.embedTaskQueue, options);
    }),
  );
  const live = outcomes[0] as BatchOutcome;
  await deliver(input, live.sinks ?? 0);
  return {
    ...live,
    keys: input.keys.length,
    embedded: sum(outcomes, 'embedded'),
    tokens: sum(outcomes, 'tokens'),
  };
}

// Telling the pipeline's sinks: an activity per sink once the write has committed, retried with
// backoff while the sink is down; only the keys pass through here (decision 23). Writes that report
// no sinks (every write before sinks existed) schedule nothing, so their histories replay as they
// were; the patch marks the change for those that do.
// A lost attempt (worker killed) is retried after start-to-close: a webhook answers within 10 s.
// They run on the sinks' task queue, where each worker runs only a few at once; a delivery waiting
// for its turn waits there, in the queue, not against its start-to-close.
const sinkActivities = () =>
  proxyActivities<Activities>({
    taskQueue: sinkTaskQueue(workflowInfo().taskQueue),
    startToCloseTimeout: '30 seconds',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '1 minute' },
  });

// The first attempt runs here, as a local activity in the sync's own workflow task, when the worker
// has a delivery slot free: the sink hears of the change without a round trip through the server
// for an activity on another task queue (measured: that round trip was most of the latency). It
// never fails; anything but a delivery (no slot free, the sink down, a timeout) leaves the
// delivery to the sinks' task queue, with its retries. Beyond the webhook's 10 s to answer.
const firstDeliveries = proxyLocalActivities<Activities>({
  startToCloseTimeout: '15 seconds',
  retry: { maximumAttempts: 1 },
});

async function deliver(input: SyncInput, sinks: number): Promise<void> {
  if (sinks === 0 || !patched('sync-sinks')) return;
  const id = workflowInfo().workflowId;
  const n = input.keys.length;
  const changes = input.sweep
    ? `the TRUNCATE of ${input.pipeline}`
    : `${groupDigits(n)} ${n === 1 ? 'change' : 'changes'} of ${input.pipeline}`;
  const deliveries = sinkActivities();
  // Syncs started before first attempts existed scheduled every delivery on the sinks' queue.
  const firstHere = patched('sync-sinks-first-attempt-local');
  await Promise.all(
    Array.from({ length: sinks }, async (_, sink) => {
      const summary = `Deliver ${changes} to sink ${sink}`;
      const args: DeliverInput = {
        pipeline: input.pipeline,
        sink,
        batchId: deliveryId(id, sink),
        keys: input.keys,
        ...(input.sweep ? { truncated: true } : {}),
      };
      if (firstHere) {
        const first = await firstDeliveries.deliverChangesFirst
          .executeWithOptions({ summary: `${summary}, first attempt` }, [args])
          .catch((err: unknown) => {
            // Timed out (or lost): the queue's attempts take over.
            if (err instanceof ActivityFailure || err instanceof ApplicationFailure)
              return undefined;
            throw err;
          });
        if (first && !('deferred' in first)) return;
      }
      await deliveries.deliverChanges.executeWithOptions({ summary }, [args]);
    }),
  );
}

/** The delivery id receivers deduplicate by: the sync's workflow id and the sink's place. */
const deliveryId = (workflowId: string, sink: number): string => `${workflowId}/${sink}`;

const NOTHING_WRITTEN = { written: 0, metadataUpdated: 0, deleted: 0, stale: 0, swept: 0 };

const sum = (outcomes: BatchOutcome[], field: 'embedded' | 'tokens'): number =>
  outcomes.reduce((n, o) => n + o[field], 0);
