// A pipeline's Temporal Schedules (docs/architecture.md, decision 24): `verify:<pipeline>` and
// `reindex:<pipeline>`, each starting the upkeep workflow on an interval from the pipeline's
// `upkeep` config. apply makes Temporal's schedules match the config, remove deletes them. The Web
// UI's Schedules page shows them, their recent runs (each run's result is what it found) and lets a
// user pause them; apply never undoes such a pause.
import {
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  type Client,
  type ScheduleOptionsStartWorkflowAction,
} from '@temporalio/client';
import { durationSeconds, type PipelineConfig } from '../config/pipeline.js';
import type { upkeep, UpkeepInput, UpkeepResult } from '../../workflows/upkeep.js';
import { EMBED_KIND, EMBED_PIPELINE } from './names.js';

export type UpkeepKind = 'verify' | 'reindex';
export const UPKEEP_KINDS: readonly UpkeepKind[] = ['verify', 'reindex'];

/** verify:products, reindex:products: the schedule's id, and the prefix of its runs' ids. */
export const upkeepScheduleId = (kind: UpkeepKind, pipeline: string): string =>
  `${kind}:${pipeline}`;

/** What one schedule should be, decided from the config alone. */
export interface WantedSchedule {
  id: string;
  kind: UpkeepKind;
  pipeline: string;
  everySeconds: number;
  input: UpkeepInput;
  /** One line for the Web UI: what each run does. */
  summary: string;
}

/** The schedules a pipeline's config asks for: none without `upkeep`. */
export function wantedSchedules(config: Pick<PipelineConfig, 'name' | 'upkeep'>): WantedSchedule[] {
  const u = config.upkeep;
  const pipeline = config.name;
  const wanted: WantedSchedule[] = [];
  if (u?.verifyEvery !== undefined)
    wanted.push({
      id: upkeepScheduleId('verify', pipeline),
      kind: 'verify',
      pipeline,
      everySeconds: durationSeconds(u.verifyEvery),
      input: { pipeline, verify: { requeue: u.requeue } },
      summary: `embedsync verify of pipeline ${pipeline} every ${u.verifyEvery}${u.requeue ? ', re-queueing what it finds' : ''}`,
    });
  if (u?.reindexEvery !== undefined)
    wanted.push({
      id: upkeepScheduleId('reindex', pipeline),
      kind: 'reindex',
      pipeline,
      everySeconds: durationSeconds(u.reindexEvery),
      input: { pipeline, reindex: true },
      summary: `embedsync reindex (concurrently) of pipeline ${pipeline}'s HNSW index every ${u.reindexEvery}`,
    });
  return wanted;
}

export type ScheduleOutcome = 'created' | 'updated' | 'deleted';
export interface ScheduleChange {
  id: string;
  outcome: ScheduleOutcome;
  /** A schedule a user paused stays paused: apply says so. */
  paused?: boolean;
}

/**
 * Makes Temporal's schedules match each pipeline's config: creates what is missing, updates what
 * exists (keeping its paused state and note), deletes what the config no longer asks for.
 */
export async function syncSchedules(
  client: Client,
  taskQueue: string,
  configs: readonly Pick<PipelineConfig, 'name' | 'upkeep'>[],
): Promise<ScheduleChange[]> {
  const changes: ScheduleChange[] = [];
  for (const config of configs) {
    const wanted = wantedSchedules(config);
    for (const w of wanted) changes.push(await putSchedule(client, taskQueue, w));
    for (const kind of UPKEEP_KINDS)
      if (!wanted.some((w) => w.kind === kind)) {
        const id = upkeepScheduleId(kind, config.name);
        if (await deleteSchedule(client, id)) changes.push({ id, outcome: 'deleted' });
      }
  }
  return changes;
}

/** Deletes a removed pipeline's schedules; returns the ids deleted. */
export async function deleteSchedules(client: Client, pipeline: string): Promise<string[]> {
  const deleted: string[] = [];
  for (const kind of UPKEEP_KINDS) {
    const id = upkeepScheduleId(kind, pipeline);
    if (await deleteSchedule(client, id)) deleted.push(id);
  }
  return deleted;
}

function action(
  taskQueue: string,
  w: WantedSchedule,
): ScheduleOptionsStartWorkflowAction<typeof upkeep> {
  return {
    type: 'startWorkflow',
    workflowType: 'upkeep',
    // Temporal adds each run's scheduled time: verify:products-2026-11-30T06:00:00Z.
    workflowId: w.id,
    taskQueue,
    args: [w.input],
    typedSearchAttributes: [
      { key: EMBED_PIPELINE, value: w.pipeline },
      { key: EMBED_KIND, value: 'upkeep' },
    ],
    staticSummary: w.summary,
  };
}

async function putSchedule(
  client: Client,
  taskQueue: string,
  w: WantedSchedule,
): Promise<ScheduleChange> {
  const spec = { intervals: [{ every: `${w.everySeconds}s` as const }] };
  const policies = {
    // One run at a time: a verify still reading a big table is not joined by the next.
    overlap: ScheduleOverlapPolicy.SKIP,
    // After an outage, one late run, not every run missed.
    catchupWindow: '1m',
  };
  try {
    const handle = client.schedule.getHandle(w.id);
    let paused = false;
    await handle.update((prev) => {
      paused = prev.state.paused;
      return {
        ...prev,
        spec,
        action: action(taskQueue, w),
        policies: { ...prev.policies, ...policies },
        // The user's pause (and its note) stays as it is.
        state: { paused: prev.state.paused, ...(prev.state.note ? { note: prev.state.note } : {}) },
      };
    });
    return { id: w.id, outcome: 'updated', ...(paused ? { paused } : {}) };
  } catch (err) {
    if (!(err instanceof ScheduleNotFoundError)) throw err;
  }
  await client.schedule.create({
    scheduleId: w.id,
    spec,
    action: action(taskQueue, w),
    policies,
    memo: { pipeline: w.pipeline, upkeep: w.kind, summary: w.summary },
    typedSearchAttributes: [{ key: EMBED_PIPELINE, value: w.pipeline }],
    state: { note: `created by embedsync apply: ${w.summary}` },
  });
  return { id: w.id, outcome: 'created' };
}

async function deleteSchedule(client: Client, id: string): Promise<boolean> {
  try {
    await client.schedule.getHandle(id).delete();
    return true;
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return false;
    throw err;
  }
}

/** What status says of one of a pipeline's schedules. */
export interface UpkeepScheduleStatus {
  id: string;
  kind: UpkeepKind;
  everySeconds: number | null;
  paused: boolean;
  note: string | null;
  nextRunAt: Date | null;
  /** The latest run: when it started, and its result once it has completed. */
  lastRun: {
    workflowId: string;
    startedAt: Date;
    status: string;
    result: UpkeepResult | null;
  } | null;
}

/** The pipeline's schedules as Temporal has them, with what their latest run found. */
export async function upkeepStatus(
  client: Client,
  pipeline: string,
): Promise<UpkeepScheduleStatus[]> {
  const found: UpkeepScheduleStatus[] = [];
  for (const kind of UPKEEP_KINDS) {
    const id = upkeepScheduleId(kind, pipeline);
    let d;
    try {
      d = await client.schedule.getHandle(id).describe();
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) continue;
      throw err;
    }
    const every = d.spec.intervals?.[0]?.every;
    const last = d.info.recentActions.at(-1);
    let lastRun: UpkeepScheduleStatus['lastRun'] = null;
    if (last) {
      const run = client.workflow.getHandle<typeof upkeep>(last.action.workflow.workflowId);
      const status = (await run.describe()).status.name;
      lastRun = {
        workflowId: run.workflowId,
        startedAt: last.takenAt,
        status,
        result: status === 'COMPLETED' ? await run.result() : null,
      };
    }
    found.push({
      id,
      kind,
      everySeconds: typeof every === 'number' ? every / 1000 : null,
      paused: d.state.paused,
      note: d.state.note ?? null,
      nextRunAt: d.info.nextActionTimes[0] ?? null,
      lastRun,
    });
  }
  return found;
}
