// Starting (or attaching to) a pipeline's backfill, for the CLI, the dev command and the tests; and
// what every whole-table walk's start shares (the re-embed's is src/reembed/start.ts).
import { WorkflowIdConflictPolicy, type Client, type WorkflowHandle } from '@temporalio/client';
import type { Pipeline } from '../db/catalog.js';
import {
  EMBED_KIND,
  EMBED_PIPELINE,
  backfillWorkflowId,
  embedTaskQueue,
} from '../temporal/names.js';
import type {
  backfill,
  BackfillInput,
  batchBackfill,
  BatchBackfillInput,
} from '../../workflows/index.js';
import { BatchNotOfferedError } from '../providers/openai-batch.js';

/**
 * Batches a backfill or re-embed keeps in flight. On a 2-core machine running the worker,
 * PostgreSQL and the Temporal dev server, 8 backfilled about 23 % more rows/s than 4, and 16 no
 * more than 8.
 */
export const DEFAULT_WINDOW = 8;

/**
 * Keys in a walk's batch, at least: a walk's batch is one activity that embeds and writes its rows,
 * so larger batches mean fewer activities, transactions and requests for the same rows (OpenAI
 * takes 2,048 inputs a request). A pipeline's larger batchSize is kept.
 */
export const WALK_BATCH_SIZE = 500;

/** The batch size of a walk over a pipeline whose config has this batchSize. */
export const walkBatchSize = (batchSize: number): number => Math.max(batchSize, WALK_BATCH_SIZE);

export interface BackfillOptions {
  taskQueue: string;
  /**
   * This database's installation id (catalog instanceId): workflow ids are per namespace, not per
   * database.
   */
  instanceId: string;
  /** Rows in the source, for the summary shown in the Web UI. */
  rows: number;
  window?: number;
  batchSize?: number;
  maxHistoryEvents?: number;
}

export async function startBackfill(
  client: Client,
  p: Pipeline,
  options: BackfillOptions,
): Promise<WorkflowHandle<typeof backfill>> {
  const e = p.config.embedding;
  const input: BackfillInput = {
    pipeline: p.name,
    embedTaskQueue: embedTaskQueue(options.taskQueue, e.provider),
    batchSize: options.batchSize ?? walkBatchSize(p.config.batchSize),
    window: options.window ?? DEFAULT_WINDOW,
    ...(options.maxHistoryEvents ? { maxHistoryEvents: options.maxHistoryEvents } : {}),
  };
  return ownHandle(
    await client.workflow.start<typeof backfill>('backfill', {
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
      memo: { instanceId: options.instanceId },
    }),
    options.instanceId,
  );
}

/**
 * The enqueued-token limit a batch backfill keeps under when neither the pipeline nor the command
 * says: OpenAI's lowest tier for its embedding models. Set yours (the account's limits page) with
 * `backfill.enqueuedTokens` or `--enqueued-tokens`.
 */
export const DEFAULT_ENQUEUED_TOKENS = 3_000_000;
/** Seconds between polls of a batch backfill's provider batches. */
export const DEFAULT_POLL_SECONDS = 60;

export interface BatchBackfillOptions {
  taskQueue: string;
  instanceId: string;
  rows: number;
  enqueuedTokens?: number;
  /** Tokens per part (default: the whole enqueued-token limit: parts run in turn). */
  partTokens?: number;
  partInputs?: number;
  pollSeconds?: number;
  maxHistoryEvents?: number;
}

/** Whether a backfill of this pipeline runs in batch mode: the command's word, else the config's. */
export const batchMode = (p: Pipeline, flag: boolean | undefined): boolean =>
  flag ?? p.config.backfill?.mode === 'batch';

/**
 * Starts (or attaches to) a backfill through the provider's Batch API. Same workflow id as an
 * online backfill: one backfill per pipeline at a time, whichever its mode.
 */
export async function startBatchBackfill(
  client: Client,
  p: Pipeline,
  options: BatchBackfillOptions,
): Promise<WorkflowHandle<typeof batchBackfill>> {
  const e = p.config.embedding;
  if (e.provider !== 'openai') throw new BatchNotOfferedError(p.name, e.provider);
  const configured = p.config.backfill;
  const input: BatchBackfillInput = {
    pipeline: p.name,
    enqueuedTokenLimit:
      options.enqueuedTokens ?? configured?.enqueuedTokens ?? DEFAULT_ENQUEUED_TOKENS,
    pollSeconds: options.pollSeconds ?? configured?.pollSeconds ?? DEFAULT_POLL_SECONDS,
    ...(options.partTokens ? { partTokens: options.partTokens } : {}),
    ...(options.partInputs ? { partInputs: options.partInputs } : {}),
    ...(options.maxHistoryEvents ? { maxHistoryEvents: options.maxHistoryEvents } : {}),
  };
  return ownHandle(
    await client.workflow.start<typeof batchBackfill>('batchBackfill', {
      taskQueue: options.taskQueue,
      workflowId: backfillWorkflowId(p.name),
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
      args: [input],
      typedSearchAttributes: [
        { key: EMBED_PIPELINE, value: p.name },
        { key: EMBED_KIND, value: 'backfill' },
      ],
      staticSummary: `Backfill ${p.name} in batch mode (OpenAI Batch API): ${options.rows.toLocaleString('en-US')} rows, ${e.model}, ${e.dimensions} dims`,
      memo: { instanceId: options.instanceId },
    }),
    options.instanceId,
  );
}

/**
 * Starting attaches to a running workflow of the same id; make sure it is this database's. Two
 * databases sharing a namespace would otherwise attach to each other's backfills.
 */
export async function ownHandle<H extends WorkflowHandle>(
  handle: H,
  instanceId: string,
): Promise<H> {
  const { memo } = await handle.describe();
  const owner = memo?.instanceId;
  if (owner !== instanceId) throw new ForeignWorkflowError(handle.workflowId, String(owner));
  return handle;
}

export class ForeignWorkflowError extends Error {
  constructor(
    readonly workflowId: string,
    readonly owner: string,
  ) {
    super(
      `workflow ${workflowId} is running for another database (instance ${owner}) in this Temporal namespace; give each deployment a namespace of its own`,
    );
    this.name = 'ForeignWorkflowError';
  }
}
