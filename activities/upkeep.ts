// The scheduled upkeep of a pipeline (workflows/upkeep.ts): its index rebuilt concurrently
// (src/capture/reindex.ts), and verify, re-queueing what it finds if asked (src/verify/).
import { reindexPipeline, type ReindexResult } from '../src/capture/reindex.js';
import { getPipeline } from '../src/db/catalog.js';
import { requeueReport } from '../src/verify/requeue.js';
import { verifyPipeline } from '../src/verify/verify.js';
import type { ActivityDeps } from './deps.js';
import { classified } from './errors.js';

/** What a scheduled verify found: counts, a few keys of each kind, and how many were re-queued. */
export interface UpkeepVerifyResult {
  pipeline: string;
  rows: number;
  missing: number;
  stale: number;
  orphaned: number;
  /** Up to EXAMPLES differing keys, for the Web UI's view of the run. */
  examples: string[];
  /** How many changes were queued for the sync; absent when requeue is off. */
  requeued?: number;
}

const EXAMPLES = 10;

export function createUpkeepActivities({ pool, log, indexBuildMemory }: ActivityDeps) {
  return {
    async reindexPipeline({ pipeline }: { pipeline: string }): Promise<ReindexResult> {
      return classified(async () => {
        const r = await reindexPipeline(pool, await getPipeline(pool, pipeline), indexBuildMemory);
        log.info({ ...r }, 'vector index rebuilt');
        return r;
      });
    },

    async verifyPipeline({
      pipeline,
      requeue,
    }: {
      pipeline: string;
      requeue: boolean;
    }): Promise<UpkeepVerifyResult> {
      return classified(async () => {
        const report = await verifyPipeline(pool, pipeline);
        const differing = [...report.missing, ...report.stale, ...report.orphaned];
        const result: UpkeepVerifyResult = {
          pipeline,
          rows: report.rows,
          missing: report.missing.length,
          stale: report.stale.length,
          orphaned: report.orphaned.length,
          examples: differing.slice(0, EXAMPLES),
        };
        if (requeue) result.requeued = await requeueReport(pool, report);
        if (differing.length > 0) log.warn({ ...result }, 'scheduled verify found differences');
        return result;
      });
    },
  };
}
