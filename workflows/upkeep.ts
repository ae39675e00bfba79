// upkeep: what a pipeline's Temporal Schedules start (src/temporal/schedules.ts, decision 24): a
// verify, re-queueing what it finds if asked, and/or a concurrent rebuild of its index. Its result
// is the record of the run: the Web UI's Schedules page lists the recent runs, and status reads the
// last one.
import { proxyActivities } from '@temporalio/workflow';
import type { createUpkeepActivities, UpkeepVerifyResult } from '../activities/upkeep.js';
import type { ReindexResult } from '../src/capture/reindex.js';

export interface UpkeepInput {
  pipeline: string;
  verify?: { requeue: boolean };
  reindex?: boolean;
}

export interface UpkeepResult {
  verify?: UpkeepVerifyResult;
  reindex?: ReindexResult;
}

// A rebuild of a large index runs for a long time in one statement; the activity heartbeats
// meanwhile, so a lost worker is noticed soon.
const { reindexPipeline, verifyPipeline } = proxyActivities<
  ReturnType<typeof createUpkeepActivities>
>({
  startToCloseTimeout: '12h',
  heartbeatTimeout: '1m',
  retry: { maximumAttempts: 3, initialInterval: '30s' },
});

export async function upkeep(input: UpkeepInput): Promise<UpkeepResult> {
  const result: UpkeepResult = {};
  if (input.verify)
    result.verify = await verifyPipeline({
      pipeline: input.pipeline,
      requeue: input.verify.requeue,
    });
  if (input.reindex) result.reindex = await reindexPipeline({ pipeline: input.pipeline });
  return result;
}
