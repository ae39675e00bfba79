// Delivering a sync batch's changes to one of its pipeline's sinks, after the batch's write has
// committed (docs/architecture.md, decision 23). Only the keys arrive through the workflow's
// history; what each key's row is now, and any columns the sink names, are read here. A failure
// worth retrying (a webhook's 5xx, 408, 429, a timeout, a refused connection) is thrown and Temporal
// retries it with backoff; a webhook's refusal is kept in embedsync.failed_deliveries instead.
import { Context } from '@temporalio/activity';
import { findAnyPipeline } from '../src/db/catalog.js';
import { isSchemaError } from '../src/capture/schema-check.js';
import { deliverToSink, SinkUnavailableError, type DeliveryOutcome } from '../src/sinks/deliver.js';
import { DEFAULT_SINK_CONCURRENCY, DeliverySlots } from '../src/sinks/slots.js';
import type { ActivityDeps } from './deps.js';

export interface DeliverInput {
  pipeline: string;
  /** The sink's place in the pipeline's list. */
  sink: number;
  /** The delivery id, `<sync workflow id>/<sink>` (deliveryId): also names it in stuck batches. */
  batchId: string;
  keys: string[];
  /** The batch is a TRUNCATE: every row before it is gone (its keys are not known). */
  truncated?: boolean;
}

export interface DeliverResult {
  deliveryId: string;
  changes: number;
  /** The sink refused it for good: kept as a dead letter (shown by status, sent again later). */
  deadLettered: boolean;
}

/** A first attempt's answer: delivered, or left to the sinks' task queue, and why. */
export type FirstDeliveryResult = DeliverResult | { deliveryId: string; deferred: string };

export function createDeliverActivities(deps: ActivityDeps) {
  const slots = deps.deliverySlots ?? new DeliverySlots(DEFAULT_SINK_CONCURRENCY);
  return {
    /** A delivery on the sinks' task queue: retried with backoff until the sink takes it. */
    deliverChanges: async (input: DeliverInput): Promise<DeliverResult> => {
      const release = await slots.take(Context.current().cancellationSignal);
      try {
        return await deliverOnce(deps, input);
      } finally {
        release();
      }
    },

    /**
     * A sync's first attempt, as a local activity in the sync's own workflow task: no round trip
     * through the server before the sink hears of the change. It never fails: with no slot free, or
     * on any failure, it says so and the sync hands the delivery to the sinks' task queue.
     */
    deliverChangesFirst: async (input: DeliverInput): Promise<FirstDeliveryResult> => {
      const release = slots.tryTake();
      if (!release) return { deliveryId: input.batchId, deferred: 'every delivery slot is taken' };
      try {
        return await deliverOnce(deps, input);
      } catch (err) {
        const deferred = err instanceof Error ? err.message : String(err);
        deps.log.debug(
          { pipeline: input.pipeline, deliveryId: input.batchId, error: deferred },
          'a first delivery failed; the sinks task queue retries it',
        );
        return { deliveryId: input.batchId, deferred };
      } finally {
        release();
      }
    },
  };
}

async function deliverOnce(
  { pool, log }: ActivityDeps,
  input: DeliverInput,
): Promise<DeliverResult> {
  const id = input.batchId;
  const p = await findAnyPipeline(pool, input.pipeline);
  // A removed pipeline has no sinks left to tell.
  if (!p) return { deliveryId: id, changes: 0, deadLettered: false };
  const outcome: DeliveryOutcome = await deliverToSink(
    { pool, temporal: Context.current().client },
    {
      pipeline: p,
      sink: input.sink,
      deliveryId: id,
      keys: input.keys,
      truncated: input.truncated ?? false,
    },
  ).catch((err: unknown) => {
    // A column the sink names was dropped or renamed: the schema check holds the pipeline and
    // says so; this delivery is tried again (reading the config afresh) until it is fixed.
    if (isSchemaError(err))
      throw new SinkUnavailableError(
        `sink ${input.sink} of ${p.name} reads a column its table no longer has: ${(err as Error).message}`,
      );
    throw err;
  });
  if (!outcome.delivered) {
    log.warn(
      { pipeline: p.name, deliveryId: id, error: outcome.error },
      'a sink refused a delivery; it is kept in embedsync.failed_deliveries',
    );
  }
  return { deliveryId: id, changes: outcome.changes, deadLettered: !outcome.delivered };
}
