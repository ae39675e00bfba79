// Where the time of a sync goes, read back from the workflows' own histories: for a sample of the
// sync workflows, the moments each stage started and finished, set against the commit and sighting
// of each key the workflow carried. Temporal's event times and our clock are the same machine's
// clock.
import type { Client, WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { tsToMs } from '@temporalio/common/lib/time.js';
import type { SyncInput } from '../../workflows/index.js';
import { distribution, roundAll, type Distribution } from './stats.js';
import type { Sighting } from './watcher.js';

type History = Awaited<ReturnType<WorkflowHandle['fetchHistory']>>;
type HistoryEvent = NonNullable<History['events']>[number];

const STAGES = ['fetchBatch', 'chunkBatch', 'embedBatch', 'writeBatch'] as const;

/** Consecutive moments in the life of one key; each segment is the time between two of them. */
const SEGMENTS = [
  'commit → workflow started (outbox, poller, start call)',
  'workflow started → fetch started (first workflow task)',
  'fetch running',
  'fetch done → chunk started',
  'chunk running',
  'chunk done → embed started (embed task queue)',
  'embed running',
  'embed done → write started',
  'write running',
  'write done → seen by the watcher',
] as const;

export interface Breakdown {
  workflows: number;
  sampled: number;
  keysPerWorkflow: Distribution;
  /**
   * Tasks the worker took but did not finish in time, in the sampled histories: each costs a
   * timeout.
   */
  timeouts: { workflowTask: number; activity: number };
  /** Milliseconds, over the sampled keys. */
  segments: Array<{ segment: string; ms: Distribution }>;
}

interface Timeline {
  keys: string[];
  /** workflow started, then started/completed of each stage in order. */
  moments: number[];
}

/** `since`: only workflows started from then on (the measured load, not the warm-up). */
export async function syncBreakdown(
  client: Client,
  taskQueue: string,
  since: number,
  sightings: readonly Sighting[],
  sampleSize = 200,
): Promise<Breakdown> {
  const ids: string[] = [];
  const query = `TaskQueue = "${taskQueue}" AND WorkflowType = "syncChanges" AND StartTime >= "${new Date(since).toISOString()}"`;
  for await (const wf of client.workflow.list({ query })) ids.push(wf.workflowId);
  const step = Math.max(1, ids.length / sampleSize);
  const sample = Array.from(
    { length: Math.min(sampleSize, ids.length) },
    (_, i) => ids[Math.floor(i * step)] ?? '',
  );
  const timelines: Timeline[] = [];
  const timeouts = { workflowTask: 0, activity: 0 };
  for (let i = 0; i < sample.length; i += 8) {
    const histories = await Promise.all(
      sample.slice(i, i + 8).map((id) => client.workflow.getHandle(id).fetchHistory()),
    );
    for (const h of histories) {
      const events = h.events ?? [];
      timeouts.workflowTask += events.filter((e) => e.workflowTaskTimedOutEventAttributes).length;
      timeouts.activity += events.filter((e) => e.activityTaskTimedOutEventAttributes).length;
      const t = timeline(events);
      if (t) timelines.push(t);
    }
  }
  const byPk = new Map(sightings.map((s) => [s.pk, s]));
  const samples: number[][] = SEGMENTS.map(() => []);
  for (const t of timelines) {
    for (const pk of t.keys) {
      const s = byPk.get(pk);
      if (!s) continue;
      const moments = [s.committedAt, ...t.moments, s.visibleAt];
      for (let j = 0; j < SEGMENTS.length; j += 1)
        samples[j]?.push((moments[j + 1] ?? 0) - (moments[j] ?? 0));
    }
  }
  return {
    workflows: ids.length,
    sampled: timelines.length,
    keysPerWorkflow: roundAll(distribution(timelines.map((t) => t.keys.length))),
    timeouts,
    segments: SEGMENTS.map((segment, j) => ({
      segment,
      ms: roundAll(distribution(samples[j] ?? [])),
    })),
  };
}

/**
 * The moments of one completed sync workflow, or undefined if it did not run all four stages once.
 */
function timeline(events: readonly HistoryEvent[]): Timeline | undefined {
  const startedEvent = events.find((e) => e.workflowExecutionStartedEventAttributes);
  const payload = startedEvent?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  if (!startedEvent || !payload) return undefined;
  const input = defaultPayloadConverter.fromPayload<SyncInput>(payload);
  const stageOf = new Map<string, string>();
  const started = new Map<string, number>();
  const completed = new Map<string, number>();
  for (const e of events) {
    const at = tsToMs(e.eventTime);
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) stageOf.set(String(e.eventId), scheduled.activityType?.name ?? '');
    const s = e.activityTaskStartedEventAttributes;
    if (s) started.set(stageOf.get(String(s.scheduledEventId)) ?? '', at);
    const c = e.activityTaskCompletedEventAttributes;
    if (c) completed.set(stageOf.get(String(c.scheduledEventId)) ?? '', at);
  }
  const moments = [tsToMs(startedEvent.eventTime)];
  for (const stage of STAGES) {
    const s = started.get(stage);
    const c = completed.get(stage);
    if (s === undefined || c === undefined) return undefined;
    moments.push(s, c);
  }
  return { keys: input.keys, moments };
}
