// Starting (or attaching to) a pipeline's backfill, for the CLI, the dev command and the tests.
import { WorkflowIdConflictPolicy, type Client, type WorkflowHandle } from '@temporalio/client';
import type { Pipeline } from '../db/catalog.js';
import { EMBED_KIND, EMBED_PIPELINE, backfillWorkflowId, embedTaskQueue } from '../temporal/names.js';
import type { backfill, BackfillInput } from '../../workflows/index.js';

export interface BackfillOptions {
  taskQueue: string;
  /** Rows in the source, for the summary shown in the Web UI. */
  rows: number;
  window?: number;
  batchSize?: number;
  maxHistoryEvents?: number;
}

export async function startBackfill(client: Client, p: Pipeline, options: BackfillOptions): Promise<WorkflowHandle<typeof backfill>> {
  const e = p.config.embedding;
  const input: BackfillInput = {
    pipeline: p.name,
    embedTaskQueue: embedTaskQueue(options.taskQueue, e.provider),
    batchSize: options.batchSize ?? p.config.batchSize,
    window: options.window ?? 4,
    ...(options.maxHistoryEvents ? { maxHistoryEvents: options.maxHistoryEvents } : {}),
  };
  return client.workflow.start<typeof backfill>('backfill', {
    taskQueue: options.taskQueue,
    workflowId: backfillWorkflowId(p.name),
    // A second start while one runs attaches to it instead of failing or starting another.
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
    args: [input],
    typedSearchAttributes: [
      { key: EMBED_PIPELINE, value: p.name },
      { key: EMBED_KIND, value: 'backfill' },
    ],
    staticSummary: `Backfill ${p.name}: ${options.rows.toLocaleString('en-US')} rows, ${e.model}, ${e.dimensions} dims`,
  });
}
