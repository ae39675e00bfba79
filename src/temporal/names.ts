// Names that the Web UI, the CLI and the code must agree on.
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const EMBED_PIPELINE = defineSearchAttributeKey(
  'EmbedPipeline',
  SearchAttributeType.KEYWORD,
);
export const EMBED_KIND = defineSearchAttributeKey('EmbedKind', SearchAttributeType.KEYWORD);
export const SEARCH_ATTRIBUTES = [EMBED_PIPELINE, EMBED_KIND] as const;

/** The EmbedKind search attribute (re-embeds started before it was 'reembed' carry 'swap'). */
export type WorkflowKind = 'sync' | 'backfill' | 'reembed' | 'upkeep';

/**
 * Embedding activities of one provider share a task queue, so the server can rate-limit them
 * fleet-wide.
 */
export const embedTaskQueue = (taskQueue: string, provider: string): string =>
  `${taskQueue}-embed-${provider}`;

/**
 * Deliveries to sinks run on a task queue of their own, whose workers run only a few at once: a
 * delivery holds a database connection while it sends, and a slow webhook must not take every
 * connection a worker's syncs need (decision 23).
 */
export const sinkTaskQueue = (taskQueue: string): string => `${taskQueue}-sinks`;

/** sync:products:18231-9f2c01: the first outbox id of the batch, and a digest of all its ids. */
export const syncWorkflowId = (pipeline: string, firstOutboxId: number, digest: string): string =>
  `sync:${pipeline}:${firstOutboxId}-${digest}`;

/** One backfill per pipeline at a time: starting another attaches to the running one. */
export const backfillWorkflowId = (pipeline: string): string => `backfill:${pipeline}`;

/**
 * The re-embed that builds one generation: swap:products:2. The id keeps the prefix it was first
 * given, so a running re-embed is still found, and a second start attaches to it.
 */
export const reembedWorkflowId = (pipeline: string, generation: number): string =>
  `swap:${pipeline}:${generation}`;

export function webUiWorkflowUrl(uiBase: string, namespace: string, workflowId: string): string {
  return `${uiBase.replace(/\/$/, '')}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}
