// Delivering a sync batch's changes to one of its pipeline's sinks, after the batch's write has
// committed (docs/architecture.md, decision 23). Only the keys arrive through the workflow's
// history; what each key's row is now, and any columns the sink names, are read here. A failure
// worth retrying (a webhook's 5xx, 408, 429, a timeout, a refused connection) is thrown and Temporal
// retries it with backoff; a webhook's refusal is kept in embedsync.failed_deliveries instead.
import { Context } from '@temporalio/activity';
import { findAnyPipeline } from '../src/db/catalog.js';
import { isSchemaError } from '../src/capture/schema-check.js';
import { deliverToSink, SinkUnavailableError, type DeliveryOutcome } from '../src/sinks/deliver.js';
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

export function createDeliverActivities({ pool, log }: ActivityDeps) {
  return {
    async deliverChanges(input: DeliverInput): Promise<DeliverResult> {
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
    },
  };
}
