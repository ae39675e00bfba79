// Sending the deliveries a sink refused again (decision 23): the poller does it for those whose
// wait is over, `embedsync redeliver` for all of a pipeline's at once. Each is delivered as a sync
// delivers it, from its keys: the rows' states (and any columns) are read afresh, under the same
// delivery id, so a receiver that took an earlier attempt after all can drop it by its id.
import type { Client } from '@temporalio/client';
import { findAnyPipeline } from '../db/catalog.js';
import { claimFailedDeliveries, clearFailedDelivery } from '../db/deliveries.js';
import type { Pool } from '../db/pool.js';
import { deliverToSink, WEBHOOK_TIMEOUT_MS } from './deliver.js';

export interface RedeliveryResult {
  delivered: number;
  /** Refused again (or still failing): kept, with a longer wait. */
  failed: number;
  errors: string[];
}

/**
 * Sends the claimed deliveries one after another (a row's deliveries keep their order). A delivery
 * still failing is kept: refused, with its new error and a doubled wait; unreachable, as it was,
 * to be claimed again once the claim's hold has passed.
 */
export async function redeliver(
  deps: { pool: Pool; temporal?: Client },
  options: { pipeline?: string; due: boolean; limit?: number },
): Promise<RedeliveryResult> {
  const claimed = await claimFailedDeliveries(deps.pool, {
    ...(options.pipeline ? { pipeline: options.pipeline } : {}),
    due: options.due,
    limit: options.limit ?? 20,
    holdMs: 4 * WEBHOOK_TIMEOUT_MS,
  });
  const result: RedeliveryResult = { delivered: 0, failed: 0, errors: [] };
  for (const d of claimed) {
    const p = await findAnyPipeline(deps.pool, d.pipeline);
    if (!p) {
      await clearFailedDelivery(deps.pool, d.deliveryId);
      continue;
    }
    try {
      const outcome = await deliverToSink(deps, {
        pipeline: p,
        sink: d.sink,
        deliveryId: d.deliveryId,
        keys: d.changes.map((c) => c.key),
        truncated: d.truncated,
      });
      if (outcome.delivered) result.delivered += 1;
      else {
        result.failed += 1;
        result.errors.push(`${d.deliveryId}: ${outcome.error}`);
      }
    } catch (err) {
      result.failed += 1;
      result.errors.push(`${d.deliveryId}: ${(err as Error).message}`);
    }
  }
  return result;
}
