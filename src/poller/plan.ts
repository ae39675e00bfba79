// Turning claimed outbox rows into sync batches: pure, so it is tested without a database.
import { createHash } from 'node:crypto';
import { syncWorkflowId } from '../temporal/names.js';
import type { OutboxRow } from '../db/outbox.js';

export interface PlannedBatch {
  workflowId: string;
  pipeline: string;
  keys: string[];
  sweep: boolean;
  /** The outbox rows this batch accounts for; deleted once its workflow has started. */
  outboxIds: number[];
  /** When the earliest of those rows entered the outbox. */
  enqueuedAt: Date;
}

/**
 * One batch per pipeline per `batchSize` distinct keys. The workflow id is derived from the exact
 * set of outbox ids (and, for the keys of a row of several, the keys themselves: such a row may be
 * split over batches and claims), so re-claiming the same rows after a crash names the same
 * workflow ("already started" is then success), while a different set of rows can never be
 * mistaken for it.
 */
export function planBatches(
  rows: readonly OutboxRow[],
  batchSize: (pipeline: string) => number,
  instanceId: string,
): PlannedBatch[] {
  const byPipeline = new Map<string, OutboxRow[]>();
  for (const row of rows) {
    const list = byPipeline.get(row.pipeline) ?? [];
    list.push(row);
    byPipeline.set(row.pipeline, list);
  }
  const batches: PlannedBatch[] = [];
  for (const [pipeline, list] of byPipeline) {
    const truncates = list.filter((r) => r.op === 'T');
    if (truncates.length > 0) batches.push(makeBatch(instanceId, pipeline, [], true, truncates));

    const rowsByKey = new Map<string, OutboxRow[]>();
    for (const row of list) {
      if (row.op === 'T') continue;
      const rows = rowsByKey.get(row.pk) ?? [];
      rows.push(row);
      rowsByKey.set(row.pk, rows);
    }
    const keys = [...rowsByKey.keys()];
    const size = batchSize(pipeline);
    for (let i = 0; i < keys.length; i += size) {
      const slice = keys.slice(i, i + size);
      batches.push(
        makeBatch(
          instanceId,
          pipeline,
          slice,
          false,
          slice.flatMap((k) => rowsByKey.get(k) ?? []),
        ),
      );
    }
  }
  return batches;
}

// The instance id enters the digest so that two databases sharing a namespace never collide.
function makeBatch(
  instanceId: string,
  pipeline: string,
  keys: string[],
  sweep: boolean,
  rows: OutboxRow[],
): PlannedBatch {
  const sorted = [...new Set(rows.map((r) => r.id))].sort((a, b) => a - b);
  const parts = rows.filter((r) => r.part).map((r) => r.pk);
  const digest = createHash('sha1')
    .update(`${instanceId}:${sorted.join(',')}${parts.length > 0 ? `:${parts.join(',')}` : ''}`)
    .digest('hex')
    .slice(0, 8);
  const enqueuedAt = new Date(Math.min(...rows.map((r) => r.enqueuedAt.getTime())));
  const workflowId = syncWorkflowId(pipeline, sorted[0] ?? 0, digest);
  return { workflowId, pipeline, keys, sweep, outboxIds: sorted, enqueuedAt };
}

/**
 * The batches an earlier claim stamped (one outbox row each, always claimed whole:
 * src/db/outbox.ts): the same workflow ids, so a claim after a crash starts or finds started exactly
 * the work that claim planned.
 */
export function planStamped(rows: readonly OutboxRow[]): PlannedBatch[] {
  const byId = new Map<number, OutboxRow[]>();
  for (const row of rows) {
    if (row.startedAs === undefined) continue;
    byId.set(row.id, [...(byId.get(row.id) ?? []), row]);
  }
  const batches: PlannedBatch[] = [];
  for (const [id, list] of byId) {
    const first = list[0];
    if (!first?.startedAs) continue;
    const sweep = first.op === 'T';
    batches.push({
      workflowId: first.startedAs,
      pipeline: first.pipeline,
      keys: sweep ? [] : list.map((r) => r.pk),
      sweep,
      outboxIds: [id],
      enqueuedAt: first.enqueuedAt,
    });
  }
  return batches;
}
