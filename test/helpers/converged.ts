// A pipeline converged: nothing of it waits in the outbox, and verify finds every source row's
// vectors as its current content wants them (none missing, stale or orphaned).
import type { Pool } from '../../src/db/pool.js';
import { verifyPipeline, type VerifyReport } from '../../src/verify/verify.js';
import { waitFor } from './wait.js';

/** Waits until `pipeline` has converged; its clean verify report. */
export async function waitConverged(
  pool: Pool,
  pipeline: string,
  timeoutMs = 60_000,
): Promise<VerifyReport> {
  return waitFor(
    `pipeline ${pipeline} to converge`,
    async () => {
      const queued = await pool.query(
        'select 1 from embedsync.outbox where pipeline = $1 limit 1',
        [pipeline],
      );
      if ((queued.rowCount ?? 0) > 0) return false;
      const r = await verifyPipeline(pool, pipeline);
      return r.missing.length + r.stale.length + r.orphaned.length === 0 ? r : false;
    },
    timeoutMs,
  );
}
