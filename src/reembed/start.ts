// Starting (or attaching to) the re-embed of a pipeline's pending config: for the CLI and tests.
import { WorkflowIdConflictPolicy, type Client, type WorkflowHandle } from '@temporalio/client';
import {
  DEFAULT_ENQUEUED_TOKENS,
  DEFAULT_POLL_SECONDS,
  DEFAULT_WINDOW,
  ownHandle,
  walkBatchSize,
  type BackfillOptions,
} from '../backfill/start.js';
import { BatchNotOfferedError } from '../providers/openai-batch.js';
import type { Pipeline } from '../db/catalog.js';
import {
  EMBED_KIND,
  EMBED_PIPELINE,
  embedTaskQueue,
  reembedWorkflowId,
} from '../temporal/names.js';
import type { reembed, ReembedInput } from '../../workflows/index.js';

/**
 * Starts (or attaches to) the re-embed of the pipeline's pending config: its workflow id is
 * `swap:<pipeline>:<generation>`.
 */
export async function startReembed(
  client: Client,
  p: Pipeline,
  options: BackfillOptions & {
    /** Batch mode, through the provider's Batch API (decision 17); absent: a walk. */
    batch?: { enqueuedTokens?: number; pollSeconds?: number; partTokens?: number };
  },
): Promise<WorkflowHandle<typeof reembed>> {
  if (!p.pendingConfig || p.pendingGeneration === null) {
    throw new NothingToReembedError(p.name);
  }
  const e = p.pendingConfig.embedding;
  if (options.batch && e.provider !== 'openai') throw new BatchNotOfferedError(p.name, e.provider);
  const configured = p.pendingConfig.backfill;
  const batch = options.batch && {
    enqueuedTokenLimit:
      options.batch.enqueuedTokens ?? configured?.enqueuedTokens ?? DEFAULT_ENQUEUED_TOKENS,
    pollSeconds: options.batch.pollSeconds ?? configured?.pollSeconds ?? DEFAULT_POLL_SECONDS,
    ...(options.batch.partTokens ? { partTokens: options.batch.partTokens } : {}),
    ...(options.maxHistoryEvents ? { maxHistoryEvents: options.maxHistoryEvents } : {}),
  };
  const input: ReembedInput = {
    pipeline: p.name,
    generation: p.pendingGeneration,
    embedTaskQueue: embedTaskQueue(options.taskQueue, e.provider),
    batchSize: options.batchSize ?? walkBatchSize(p.pendingConfig.batchSize),
    window: options.window ?? DEFAULT_WINDOW,
    ...(options.maxHistoryEvents ? { maxHistoryEvents: options.maxHistoryEvents } : {}),
    ...(batch ? { batch } : {}),
  };
  return ownHandle(
    await client.workflow.start<typeof reembed>('reembed', {
      taskQueue: options.taskQueue,
      workflowId: reembedWorkflowId(p.name, p.pendingGeneration),
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
      args: [input],
      typedSearchAttributes: [
        { key: EMBED_PIPELINE, value: p.name },
        { key: EMBED_KIND, value: 'reembed' },
      ],
      staticSummary: `Re-embed ${p.name} as generation ${p.pendingGeneration}: ${options.rows.toLocaleString('en-US')} rows, ${e.model}, ${e.dimensions} dims`,
      memo: { instanceId: options.instanceId },
    }),
    options.instanceId,
  );
}

export class NothingToReembedError extends Error {
  constructor(readonly pipeline: string) {
    super(
      `pipeline "${pipeline}" has no pending config change to re-embed: change its embedding config and apply the file first`,
    );
    this.name = 'NothingToReembedError';
  }
}
