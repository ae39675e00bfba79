// Turning claimed outbox rows into sync batches: pure, so it is tested without a database.
import { createHash } from 'node:crypto';
import { syncWorkflowId } from '../temporal/names.js';
import type { OutboxRow } from './claim.js';

export interface PlannedBatch {
  workflowId: string;
  pipeline: string;
  keys: string[];
  sweep: boolean;
  /** The outbox rows this batch accounts for; deleted once its workflow has started. */
  outboxIds: number[];
}

/**
 * One batch per pipeline per `batchSize` distinct keys. The workflow id is derived from the exact set
 * of outbox ids, so re-claiming the same rows after a crash names the same workflow ("already started"
 * is then success), while a different set of rows can never be mistaken for it.
 */
export function planBatches(rows: readonly OutboxRow[], batchSize: (pipeline: string) => number, instanceId: string): PlannedBatch[] {
  const byPipeline = new Map<string, OutboxRow[]>();
  for (const row of rows) {
    const list = byPipeline.get(row.pipeline) ?? [];
    list.push(row);
    byPipeline.set(row.pipeline, list);
  }
  const batches: PlannedBatch[] = [];
  for (const [pipeline, list] of byPipeline) {
    const truncates = list.filter((r) => r.op === 'T');
    if (truncates.length > 0) batches.push(makeBatch(instanceId, pipeline, [], true, truncates.map((r) => r.id)));

    const idsByKey = new Map<string, number[]>();
    for (const row of list) {
      if (row.op === 'T') continue;
      const ids = idsByKey.get(row.pk) ?? [];
      ids.push(row.id);
      idsByKey.set(row.pk, ids);
    }
    const keys = [...idsByKey.keys()];
    const size = batchSize(pipeline);
    for (let i = 0; i < keys.length; i += size) {
      const slice = keys.slice(i, i + size);
      batches.push(makeBatch(instanceId, pipeline, slice, false, slice.flatMap((k) => idsByKey.get(k) ?? [])));
    }
  }
  return batches;
}

// The instance id enters the digest so that two databases sharing a namespace never collide.
function makeBatch(instanceId: string, pipeline: string, keys: string[], sweep: boolean, ids: number[]): PlannedBatch {
  const sorted = [...ids].sort((a, b) => a - b);
  const digest = createHash('sha1').update(`${instanceId}:${sorted.join(',')}`).digest('hex').slice(0, 8);
  return { workflowId: syncWorkflowId(pipeline, sorted[0] ?? 0, digest), pipeline, keys, sweep, outboxIds: sorted };
}
