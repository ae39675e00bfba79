// One batch through the four stages: fetch → chunk → embed → write. Shared by sync and backfill.
import { proxyActivities } from '@temporalio/workflow';
import type { Activities, EmbedActivities, FetchResult, WriteResult } from '../activities/index.js';
import { groupDigits } from './progress.js';

// Database stages retry until the database is back: a change is never given up on for an outage.
// The activities heartbeat every few seconds, so a lost attempt (worker killed, task dropped) is
// retried after the heartbeat timeout; start-to-close only bounds a slow but live one.
const activities = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '15 seconds',
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

export async function processBatch(batch: Batch, embedTaskQueue: string): Promise<BatchOutcome> {
  const ref = {
    pipeline: batch.pipeline,
    batchId: batch.batchId,
    ...(batch.generation === undefined ? {} : { generation: batch.generation }),
  };
  const { embedBatch } = proxyActivities<EmbedActivities>({
    taskQueue: embedTaskQueue,
    startToCloseTimeout: '10 minutes',
    heartbeatTimeout: '30 seconds',
    retry: { initialInterval: '1s', backoffCoefficient: 2, maximumInterval: '2 minutes' },
  });
  // Summaries are what the Web UI shows for each activity of the batch.
  const of = `${batch.pipeline}${batch.generation === undefined ? '' : ` (generation ${batch.generation})`}`;
  const fetched = await activities.fetchBatch.executeWithOptions(
    { summary: `Read ${rows(batch.keys.length)} of ${of}` },
    [{ ...ref, keys: batch.keys }],
  );
  let embedded = 0;
  let tokens = 0;
  if (fetched.embed > 0) {
    await activities.chunkBatch.executeWithOptions(
      { summary: `Chunk ${rows(fetched.embed)} of ${of}` },
      [ref],
    );
    // One paced call per rate-limit slot: the server limits activities per second on the provider's
    // queue, so each call sends one slot's worth of requests and says how much remains.
    const summary = `Embed the chunks of ${rows(fetched.embed)} of ${of}`;
    for (;;) {
      const result = await embedBatch.executeWithOptions({ summary }, [{ ...ref, paced: true }]);
      embedded += result.embedded;
      tokens += result.tokens;
      // Histories from before pacing carry no `remaining`: those calls embedded everything.
      if (!result.remaining) break;
    }
  }
  const summary = batch.sweep
    ? `Remove vectors of truncated rows of ${of}`
    : writeSummary(fetched, of);
  const measured = batch.enqueuedAt === undefined ? {} : { enqueuedAt: batch.enqueuedAt };
  const written = await activities.writeBatch.executeWithOptions({ summary }, [
    { ...ref, sweep: batch.sweep, ...measured },
  ]);
  return { ...written, embedded, tokens };
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
