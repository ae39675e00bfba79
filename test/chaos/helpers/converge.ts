// What "the system converged" means after a crash, checked in the database and in Temporal.
import assert from 'node:assert/strict';
import type { Client } from '@temporalio/client';
import type { Pool } from '../../../src/db/pool.js';
import { verifyPipeline } from '../../../src/verify/verify.js';
import { waitFor } from '../../helpers/wait.js';

/**
 * How long recovery may take. An activity whose worker died, or whose task an overloaded Temporal
 * recorded as started but never delivered, is retried only when its timeout expires: 1 minute
 * without a heartbeat for embedding, 2 minutes start-to-close for the database stages
 * (workflows/batch.ts). Two such expiries in a row still fit.
 */
export const RECOVERY_MS = 270_000;

export interface PipelineState {
  rows: number;
  outbox: number;
  /** Staging rows left by batches: a finished batch leaves none. */
  staged: number;
  missing: string[];
  stale: string[];
  orphaned: string[];
}

export async function pipelineState(pool: Pool, pipeline = 'products'): Promise<PipelineState> {
  const { rows } = await pool.query<{ outbox: number; staged: number }>(
    `select (select count(*)::int from embedsync.outbox) as outbox,
            (select count(*)::int from embedsync.staged_rows) + (select count(*)::int from embedsync.staged_chunks) as staged`,
  );
  const report = await verifyPipeline(pool, pipeline);
  return {
    rows: report.rows,
    outbox: rows[0]?.outbox ?? -1,
    staged: rows[0]?.staged ?? -1,
    missing: report.missing,
    stale: report.stale,
    orphaned: report.orphaned,
  };
}

const describeState = (s: PipelineState): string =>
  `${s.rows} rows, outbox ${s.outbox}, staged ${s.staged}, missing ${s.missing.length} [${s.missing.slice(0, 10).join(' ')}], ` +
  `stale ${s.stale.length} [${s.stale.slice(0, 10).join(' ')}], orphaned ${s.orphaned.length} [${s.orphaned.slice(0, 10).join(' ')}]`;

const isConverged = (s: PipelineState): boolean =>
  s.outbox === 0 &&
  s.staged === 0 &&
  s.missing.length === 0 &&
  s.stale.length === 0 &&
  s.orphaned.length === 0;

/**
 * Waits until the outbox is drained, no batch is half done, and every source row has exactly the
 * vectors of its current content (verify). Fails with the last state seen.
 */
export async function waitForConvergence(pool: Pool, timeoutMs: number): Promise<PipelineState> {
  let last = 'nothing (the database never answered)';
  try {
    return await waitFor(
      'the pipeline to converge',
      async () => {
        const state = await pipelineState(pool);
        last = describeState(state);
        return isConverged(state) ? state : false;
      },
      timeoutMs,
      500,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last state: ${last}`, { cause: err });
  }
}

/**
 * Every sync workflow on the task queue ran to completion: none failed, timed out or was
 * terminated, which would have dropped the changes it had taken out of the outbox. Returns how many
 * ran.
 */
export async function assertSyncWorkflowsCompleted(
  client: Client,
  taskQueue: string,
  timeoutMs = 60_000,
): Promise<number> {
  const list = async (query: string): Promise<{ workflowId: string; status: string }[]> => {
    const found: { workflowId: string; status: string }[] = [];
    for await (const info of client.workflow.list({ query }))
      found.push({ workflowId: info.workflowId, status: info.status.name });
    return found;
  };
  await waitFor(
    'every sync workflow to close',
    async () =>
      (await list(`TaskQueue = "${taskQueue}" AND ExecutionStatus = "Running"`)).length === 0,
    timeoutMs,
    500,
  );
  const all = await list(`TaskQueue = "${taskQueue}"`);
  assert.deepEqual(
    all.filter((w) => w.status !== 'COMPLETED'),
    [],
    'sync workflows that did not complete',
  );
  assert.ok(all.length > 0, `no sync workflow ran on ${taskQueue}`);
  return all.length;
}
