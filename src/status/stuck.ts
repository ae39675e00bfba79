// Batches stuck at a stage (embedsync.stuck_batches, sql/000009), with their workflow's Web UI
// link. When Temporal can be asked, a record whose run no longer runs is a leftover (a terminated
// workflow): dropped.
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { clearLeftover, readStuckBatches, type StuckBatch } from '../db/batch-failures.js';
import type { Pool } from '../db/pool.js';
import { webUiWorkflowUrl } from '../temporal/names.js';
import type { WebUi } from './temporal.js';

/** A stuck batch as status shows it: the view's row, with its workflow's Web UI link. */
export type StuckBatchStatus = Omit<StuckBatch, 'pipeline' | 'runId'> & { url: string };

/**
 * Describing every stuck workflow costs a round trip each: beyond these, records wait for their
 * expiry.
 */
const CROSS_CHECK_AT_MOST = 20;

/** The pipelines' stuck batches, by pipeline. */
export async function readStuck(
  pool: Pool,
  ui: WebUi,
  client: Client | undefined,
  pipeline?: string,
): Promise<Map<string, StuckBatchStatus[]>> {
  const stuck = await readStuckBatches(pool, pipeline);
  const byPipeline = new Map<string, StuckBatchStatus[]>();
  for (const [i, b] of stuck.entries()) {
    if (client && i < CROSS_CHECK_AT_MOST && b.retryable && (await isLeftover(client, b))) {
      await clearLeftover(pool, b);
      continue;
    }
    const list = byPipeline.get(b.pipeline) ?? [];
    list.push({
      batchId: b.batchId,
      workflowId: b.workflowId,
      stage: b.stage,
      attempts: b.attempts,
      errorClass: b.errorClass,
      lastError: b.lastError,
      retryable: b.retryable,
      since: b.since,
      lastFailedAt: b.lastFailedAt,
      url: webUiWorkflowUrl(ui.base, ui.namespace, b.workflowId),
    });
    byPipeline.set(b.pipeline, list);
  }
  return byPipeline;
}

/**
 * A retrying stage whose run is gone (terminated, or replaced by another run) will never clear its
 * record.
 */
async function isLeftover(client: Client, b: StuckBatch): Promise<boolean> {
  try {
    const d = await client.workflow.getHandle(b.workflowId).describe();
    return d.status.name !== 'RUNNING' || (b.runId !== null && d.runId !== b.runId);
  } catch (err) {
    // Temporal unreachable or slow: it cannot tell, so the record stays (until it expires).
    return err instanceof WorkflowNotFoundError;
  }
}

/** One line of a stuck batch's error: the first line, trimmed to `max` characters. */
export function oneLine(error: string, max = 160): string {
  const line = (error.split('\n')[0] ?? '').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}
