// Sync workflows still running when a benchmark ends: described for the results (they are the rows
// that never arrived), then terminated, because their database is about to be dropped and their
// activities would otherwise retry against it for as long as the Temporal server keeps them.
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import type { Pool } from '../../src/db/pool.js';

const { PendingActivityState } = proto.temporal.api.enums.v1;

export interface Leftover {
  workflowId: string;
  pendingActivities: Array<{
    activity: string;
    state: string;
    attempt: number;
    lastFailure: string | undefined;
  }>;
}

/**
 * graceMs: how long to let workflows that are merely finishing (last workflow task) complete first.
 */
export async function terminateLeftovers(
  client: Client,
  taskQueue: string,
  graceMs = 0,
): Promise<Leftover[]> {
  const query = `TaskQueue = "${taskQueue}" AND ExecutionStatus = "Running"`;
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && (await client.workflow.count(query)).count > 0)
    await new Promise((r) => setTimeout(r, 250));
  const leftovers: Leftover[] = [];
  for await (const wf of client.workflow.list({ query })) {
    const handle = client.workflow.getHandle(wf.workflowId);
    const described = await handle.describe().catch(() => undefined);
    // The list comes from visibility, which may lag; the workflow itself has the last word.
    if (described && described.status.name !== 'RUNNING') continue;
    leftovers.push({
      workflowId: wf.workflowId,
      pendingActivities: (described?.raw.pendingActivities ?? []).map((a) => ({
        activity: a.activityType?.name ?? '?',
        state: PendingActivityState[a.state ?? 0] ?? String(a.state),
        attempt: a.attempt ?? 0,
        lastFailure: a.lastFailure?.message ?? undefined,
      })),
    });
    await handle.terminate('the benchmark finished and drops its database').catch(() => undefined);
  }
  return leftovers;
}

export interface WorkerSession {
  state: string | null;
  waitEvent: string | null;
  /** Seconds since its current (or last) query started. */
  querySeconds: number | null;
  query: string;
}

/**
 * What the worker's database sessions are doing while rows are missing: one stuck on a lock or a
 * long query points at the database; all idle means the work is not in the worker's hands at all.
 */
export async function workerSessions(pool: Pool): Promise<WorkerSession[]> {
  const { rows } = await pool.query<WorkerSession>(
    `select state, wait_event_type || ':' || wait_event as "waitEvent",
            round(extract(epoch from clock_timestamp() - query_start)::numeric, 1)::float8
              as "querySeconds",
            left(regexp_replace(query, '\\s+', ' ', 'g'), 160) as query
       from pg_stat_activity
      where datname = current_database() and application_name = 'embedsync-worker'
      order by query_start`,
  );
  return rows;
}
