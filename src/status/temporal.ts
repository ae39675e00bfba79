// What Temporal knows about a pipeline: its running workflows (the same visibility query the Web UI
// sends) and where its backfill is (the workflow's own progress query).
import { WorkflowNotFoundError, type Client, type WorkflowHandle } from '@temporalio/client';
import { progressQuery, type BackfillProgress } from '../../workflows/definitions.js';
import type { backfill, batchBackfill, reembed } from '../../workflows/index.js';
import {
  EMBED_KIND,
  backfillWorkflowId,
  reembedWorkflowId,
  webUiWorkflowUrl,
} from '../temporal/names.js';
import { upkeepStatus, type UpkeepScheduleStatus } from '../temporal/schedules.js';

/**
 * A backfill (online or batch mode) or a re-embed: all answer the progress query and take
 * pause/resume.
 */
export type TableWalkHandle =
  | WorkflowHandle<typeof backfill>
  | WorkflowHandle<typeof batchBackfill>
  | WorkflowHandle<typeof reembed>;

export interface WebUi {
  base: string;
  namespace: string;
}

export interface RunningWorkflow {
  workflowId: string;
  kind: string | null;
  startedAt: Date;
  url: string;
}

export interface RunningBackfill {
  workflowId: string;
  url: string;
  /** Null when no worker answered the query in time. */
  progress: BackfillProgress | null;
}

export interface PipelineWorkflows {
  /** All running workflows of the pipeline; `listed` holds the oldest few. */
  running: number;
  listed: RunningWorkflow[];
  /** The Web UI's list of every workflow of the pipeline. */
  listUrl: string;
  backfill: RunningBackfill | null;
  /** The pipeline's upkeep schedules and what their latest runs found (decision 24). */
  upkeep: UpkeepScheduleStatus[];
}

/**
 * Search attribute values are typed by us (pipeline names are [a-z0-9_]), so no escaping is needed.
 */
export const pipelineQuery = (pipeline: string): string => `EmbedPipeline = "${pipeline}"`;
export const runningQuery = (pipeline: string): string =>
  `${pipelineQuery(pipeline)} AND ExecutionStatus = "Running"`;

export const webUiListUrl = (ui: WebUi, query: string): string =>
  `${ui.base.replace(/\/$/, '')}/namespaces/${encodeURIComponent(ui.namespace)}/workflows?query=${encodeURIComponent(query)}`;

/** A query waits for a worker to answer; with none polling it would hang, so it gets a deadline. */
const QUERY_DEADLINE_MS = 3000;

export async function queryProgress(
  client: Client,
  handle: TableWalkHandle,
  ms = QUERY_DEADLINE_MS,
): Promise<BackfillProgress | null> {
  try {
    return await client.withDeadline(Date.now() + ms, () => handle.query(progressQuery));
  } catch {
    return null;
  }
}

/**
 * The pipeline's running table walk, if any: its backfill, or the re-embed building its pending
 * generation. Both answer the same signals and progress query. Describe is authoritative;
 * visibility may lag.
 */
export async function runningBackfill(
  client: Client,
  pipeline: string,
  pendingGeneration?: number | null,
): Promise<WorkflowHandle<typeof backfill> | undefined> {
  const ids = [
    backfillWorkflowId(pipeline),
    ...(pendingGeneration ? [reembedWorkflowId(pipeline, pendingGeneration)] : []),
  ];
  for (const id of ids) {
    const handle = client.workflow.getHandle<typeof backfill>(id);
    try {
      const d = await handle.describe();
      if (d.status.name === 'RUNNING') return handle;
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) throw err;
    }
  }
  return undefined;
}

export async function pipelineWorkflows(
  client: Client,
  ui: WebUi,
  pipeline: string,
  pendingGeneration: number | null,
  limit = 10,
): Promise<PipelineWorkflows> {
  const query = runningQuery(pipeline);
  const listed: RunningWorkflow[] = [];
  for await (const w of client.workflow.list({ query, pageSize: limit })) {
    listed.push({
      workflowId: w.workflowId,
      kind: w.typedSearchAttributes.get(EMBED_KIND) ?? null,
      startedAt: w.startTime,
      url: webUiWorkflowUrl(ui.base, ui.namespace, w.workflowId),
    });
    if (listed.length >= limit) break;
  }
  const running =
    listed.length < limit ? listed.length : (await client.workflow.count(query)).count;
  const handle = await runningBackfill(client, pipeline, pendingGeneration);
  const backfillFacts = handle
    ? {
        workflowId: handle.workflowId,
        url: webUiWorkflowUrl(ui.base, ui.namespace, handle.workflowId),
        progress: await queryProgress(client, handle),
      }
    : null;
  return {
    running,
    listed,
    listUrl: webUiListUrl(ui, pipelineQuery(pipeline)),
    backfill: backfillFacts,
    upkeep: await upkeepStatus(client, pipeline),
  };
}
