// Where the time of a sync goes, read back from the workflows' own histories: for a sample of the
// sync workflows, the moments each stage started and finished, set against the commit and sighting
// of each key the workflow carried. Temporal's event times and our clock are the same machine's
// clock. A sync whose stages ran as activities on the task queues shows each one's started and
// completed events; one whose stages ran as local activities shows, in each stage's marker, the
// wall-clock time it was scheduled, so each stage is timed from its schedule to the next one's.
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
const SEGMENTS = {
  queued: [
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
  ],
  local: [
    'commit → workflow started (outbox, poller, start call)',
    'workflow started → workflow task started',
    'workflow task started → fetch scheduled (local)',
    'fetch (local activity)',
    'chunk (local activity)',
    'embed (local activity)',
    'write scheduled → seen by the watcher (write and commit)',
  ],
} as const;

type Shape = keyof typeof SEGMENTS;

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
  shape: Shape;
  keys: string[];
  /** The moments between the commit and the sighting, in the order of the shape's segments. */
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
  const samples = { queued: SEGMENTS.queued.map(() => []), local: SEGMENTS.local.map(() => []) };
  for (const t of timelines) {
    const into: number[][] = samples[t.shape];
    for (const pk of t.keys) {
      const s = byPk.get(pk);
      if (!s) continue;
      const moments = [s.committedAt, ...t.moments, s.visibleAt];
      for (let j = 0; j < into.length; j += 1)
        into[j]?.push((moments[j + 1] ?? 0) - (moments[j] ?? 0));
    }
  }
  // The segments of whichever shape the sampled syncs had (both, while old syncs finish).
  const shapes = (['queued', 'local'] as const).filter((shape) => samples[shape][0]?.length);
  return {
    workflows: ids.length,
    sampled: timelines.length,
    keysPerWorkflow: roundAll(distribution(timelines.map((t) => t.keys.length))),
    timeouts,
    segments: shapes.flatMap((shape) =>
      SEGMENTS[shape].map((segment, j) => ({
        segment,
        ms: roundAll(distribution(samples[shape][j] ?? [])),
      })),
    ),
  };
}

/**
 * The moments of one completed sync workflow, or undefined if it did not run all four stages once.
 */
function timeline(events: readonly HistoryEvent[]): Timeline | undefined {
  const startedEvent = events.find((e) => e.workflowExecutionStartedEventAttributes);
  const payload = startedEvent?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  if (!startedEvent || !payload) return undefined;
  const keys = defaultPayloadConverter.fromPayload<SyncInput>(payload).keys;
  const workflowStarted = tsToMs(startedEvent.eventTime);
  const local = localStages(events);
  if (local) return { shape: 'local', keys, moments: [workflowStarted, ...local] };
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
  const moments = [workflowStarted];
  for (const stage of STAGES) {
    const s = started.get(stage);
    const c = completed.get(stage);
    if (s === undefined || c === undefined) return undefined;
    moments.push(s, c);
  }
  return { shape: 'queued', keys, moments };
}

/**
 * First workflow task started, then when each local stage was scheduled (its marker's
 * original_schedule_time, the worker's wall clock); undefined without a marker for every stage.
 */
function localStages(events: readonly HistoryEvent[]): number[] | undefined {
  const taskStarted = events.find((e) => e.workflowTaskStartedEventAttributes);
  const scheduled = new Map<string, number>();
  for (const e of events) {
    const marker = e.markerRecordedEventAttributes;
    const data = marker?.markerName === 'core_local_activity' ? marker.details?.data : undefined;
    const payload = data?.payloads?.[0];
    if (!payload) continue;
    const facts = defaultPayloadConverter.fromPayload<LocalActivityMarker>(payload);
    const at = facts.original_schedule_time;
    if (at && !scheduled.has(facts.activity_type))
      scheduled.set(facts.activity_type, at.seconds * 1000 + at.nanos / 1e6);
  }
  if (!taskStarted || scheduled.size === 0) return undefined;
  const moments = [tsToMs(taskStarted.eventTime)];
  for (const stage of STAGES) {
    const at = scheduled.get(stage);
    if (at === undefined) return undefined;
    moments.push(at);
  }
  return moments;
}

/** What the Temporal SDK's core records in a local activity's marker (its `data` detail). */
interface LocalActivityMarker {
  activity_type: string;
  original_schedule_time?: { seconds: number; nanos: number } | null;
}
