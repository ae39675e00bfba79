// The activities of embedsync, built by a factory so tests can inject their own pool and providers.
import { createBackfillActivities } from './backfill.js';
import { createBatchBackfillActivities } from './batch-backfill.js';
import { createChunkBatch } from './chunk.js';
import { createDeadLetterActivities } from './dead-letters.js';
import { createDeliverActivities } from './deliver.js';
import type { ActivityDeps } from './deps.js';
import { createEmbedBatch } from './embed.js';
import { createFetchBatch } from './fetch.js';
import { recordingFailures } from './failures.js';
import { createReembedActivities } from './reembed.js';
import { createUpkeepActivities } from './upkeep.js';
import { createVectorIndexActivities } from './vector-index.js';
import { createWalkBatch } from './walk-batch.js';
import { createWriteBatch } from './write.js';

export type { ActivityDeps } from './deps.js';
export * from './types.js';
export type { DeliverInput, DeliverResult } from './deliver.js';

// Each failed attempt is recorded where status and SQL see it (activities/failures.ts).
export function createActivities(deps: ActivityDeps) {
  return {
    ...recordingFailures(deps, {
      fetchBatch: createFetchBatch(deps),
      chunkBatch: createChunkBatch(deps),
      writeBatch: createWriteBatch(deps),
      // For a sync's local embed (workflows/batch.ts); paced embeds run on the provider's queue.
      embedBatch: createEmbedBatch(deps),
      ...createBackfillActivities(deps),
      ...createBatchBackfillActivities(deps),
      ...createReembedActivities(deps),
      ...createVectorIndexActivities(deps),
      ...createDeadLetterActivities(deps),
    }),
    // Not a sync batch's stages: a failed upkeep run is the schedule's to show, not a stuck batch.
    ...createUpkeepActivities(deps),
    // A sync's first delivery to a sink, as a local activity; it never fails (decision 23).
    deliverChangesFirst: createDeliverActivities(deps).deliverChangesFirst,
  };
}

/**
 * Embedding runs on a task queue of its own per provider, so its rate can be limited server-side:
 * the batch stage, and a table walk's batch, which embeds and writes in one activity.
 */
export function createEmbedActivities(deps: ActivityDeps) {
  return recordingFailures(deps, {
    embedBatch: createEmbedBatch(deps),
    walkBatch: createWalkBatch(deps),
  });
}

/**
 * Deliveries to sinks run on the sinks' task queue, a few at once per worker (decision 23). A
 * delivery that keeps failing shows as a stuck batch at its stage, like the sync's stages.
 */
export function createSinkActivities(deps: ActivityDeps) {
  return recordingFailures(deps, { deliverChanges: createDeliverActivities(deps).deliverChanges });
}

export type Activities = ReturnType<typeof createActivities> &
  ReturnType<typeof createSinkActivities>;
export type EmbedActivities = ReturnType<typeof createEmbedActivities>;
