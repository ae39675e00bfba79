// The size of each run of a workflow that continues as new: events and encoded bytes of its
// history, the two quantities the Temporal server limits (warns at 10,240 events / 10 MiB, fails at
// 51,200 / 50 MiB).
import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';

const { History } = proto.temporal.api.history.v1;
type HistoryEvent = proto.temporal.api.history.v1.IHistoryEvent;
const { EventType } = proto.temporal.api.enums.v1;

export interface RunSize {
  runId: string;
  events: number;
  bytes: number;
}

/**
 * Follows the chain of runs from the first (each continued-as-new run names the next), so no run is
 * missed while the visibility store catches up; then checks the chain against the visibility list.
 */
export async function runSizes(
  client: Client,
  workflowId: string,
  firstRunId: string,
): Promise<{ runs: RunSize[]; listed: number }> {
  const runs: RunSize[] = [];
  let runId: string | undefined = firstRunId;
  while (runId) {
    const history: proto.temporal.api.history.v1.IHistory = await client.workflow
      .getHandle(workflowId, runId)
      .fetchHistory();
    const events: HistoryEvent[] = history.events ?? [];
    runs.push({ runId, events: events.length, bytes: History.encode(history).finish().length });
    const last: HistoryEvent | undefined = events[events.length - 1];
    runId =
      last?.eventType === EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        ? (last.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined)
        : undefined;
  }
  let listed = 0;
  for await (const wf of client.workflow.list({ query: `WorkflowId = "${workflowId}"` }))
    if (wf.workflowId === workflowId) listed += 1;
  return { runs, listed };
}

/**
 * Seconds the last run of a workflow spent in the activities of one type, from each one's first
 * attempt's start to its completion; undefined if it ran none.
 */
export async function activitySeconds(
  client: Client,
  workflowId: string,
  activityType: string,
): Promise<number | undefined> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const scheduled = new Set<string>();
  const started = new Map<string, number>();
  let total: number | undefined;
  const at = (e: HistoryEvent): number =>
    Number(e.eventTime?.seconds ?? 0) * 1000 + Math.round((e.eventTime?.nanos ?? 0) / 1e6);
  for (const e of history.events ?? []) {
    const id = String(e.eventId ?? '');
    if (e.activityTaskScheduledEventAttributes?.activityType?.name === activityType)
      scheduled.add(id);
    const start = e.activityTaskStartedEventAttributes;
    if (start && scheduled.has(String(start.scheduledEventId ?? ''))) {
      started.set(String(start.scheduledEventId ?? ''), at(e));
    }
    const done = e.activityTaskCompletedEventAttributes;
    const from = done ? started.get(String(done.scheduledEventId ?? '')) : undefined;
    if (from !== undefined) total = (total ?? 0) + (at(e) - from) / 1000;
  }
  return total === undefined ? undefined : Math.round(total * 10) / 10;
}
