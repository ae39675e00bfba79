// A batch that failed for good (quota exhausted, credentials refused, …) must not lose its
// changes: its outbox rows are gone, so its keys are recorded as dead letters, where
// `npx embedsync status` counts them. The poller sends them round again, less and less often
// (src/db/dead-letters.ts), and `npx embedsync verify --requeue` at once. What the batch had
// staged is of no more use: a retry reads the rows afresh, under a batch of its own.
import { clearBatchFailures, clearBatchFailuresByPrefix } from '../src/db/batch-failures.js';
import { recordFailedBatch } from '../src/db/dead-letters.js';
import { withTransaction } from '../src/db/pool.js';
import { clearSyncBatches } from '../src/db/staging.js';
import type { ActivityDeps } from './deps.js';
import { callingWorkflow } from './workflow.js';

export interface FailedBatch {
  pipeline: string;
  keys: string[];
  generation?: number;
  error: string;
}

export function createDeadLetterActivities({ pool, log }: ActivityDeps) {
  return {
    async deadLetterBatch({ pipeline, keys, generation, error }: FailedBatch): Promise<void> {
      // A sync's batches are named after its workflow: `<id>`, and `<id>:g<generation>` during a
      // re-embed.
      const workflowId = callingWorkflow().workflowId;
      await withTransaction(pool, async (client) => {
        await recordFailedBatch(client, pipeline, keys, generation, error);
        await clearSyncBatches(client, workflowId);
        // The batch has ended: it is a dead letter now, no longer stuck.
        await clearBatchFailures(client, pipeline, workflowId);
        await clearBatchFailuresByPrefix(client, pipeline, `${workflowId}:g`);
      });
      log.error(
        { pipeline, keys: keys.length, error },
        'a sync batch failed for good; its keys are in embedsync.dead_letters',
      );
    },
  };
}
