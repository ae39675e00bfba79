// Delivering one batch's changes to one sink (docs/architecture.md, decision 23): read which keys
// have a row now (upsert) or not (delete), with the columns the sink names, under the sink's locks
// on those keys, and send while holding them, so a row's states reach the sink in commit order.
// The sync workflow calls it after the write has committed (activities/deliver.ts); `redeliver`
// and the poller call it for a delivery kept as a dead letter.
import type { Client } from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import type { SinkConfig } from '../config/pipeline.js';
import type { AnyPipeline } from '../db/catalog.js';
import { clearFailedDelivery, recordFailedDelivery, type Change } from '../db/deliveries.js';
import { lockSinkKeys } from '../db/key-locks.js';
import { withTransaction, type Pool } from '../db/pool.js';
import { readRowStates } from '../db/source.js';
import {
  describeSink,
  IDEMPOTENCY_HEADER,
  notifyPayloads,
  SIGNATURE_HEADER,
  signBody,
  sinkColumns,
  webhookVerdict,
  type ChangeEvent,
} from './payload.js';

/** How long a webhook has to answer before the attempt counts as failed (and is retried). */
export const WEBHOOK_TIMEOUT_MS = 10_000;

/** A failure worth another try: the sink is down, slow or busy. Its message names no secret. */
export class SinkUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SinkUnavailableError';
  }
}

export interface DeliveryDeps {
  pool: Pool;
  /** Starts a workflow sink's workflows; needed only by a pipeline that has one. */
  temporal?: Client;
  env?: NodeJS.ProcessEnv;
}

export interface DeliveryRequest {
  pipeline: AnyPipeline;
  sink: number;
  deliveryId: string;
  keys: readonly string[];
  /** A TRUNCATE's delivery (decision 23). */
  truncated: boolean;
}

export type DeliveryOutcome =
  { delivered: true; changes: number } | { delivered: false; changes: number; error: string };

/** A pipeline's sinks; a config stored before sinks existed has none. */
export function configuredSinks(p: AnyPipeline): SinkConfig[] {
  return (p.config as { sinks?: SinkConfig[] }).sinks ?? [];
}

export async function deliverToSink(
  deps: DeliveryDeps,
  request: DeliveryRequest,
): Promise<DeliveryOutcome> {
  const { pipeline: p, sink: index, deliveryId, keys, truncated } = request;
  const sink = configuredSinks(p)[index];
  if (!sink) {
    // The sink was removed from the config since: nobody is left to deliver to.
    return { delivered: true, changes: 0 };
  }
  const outcome = await withTransaction(deps.pool, async (client) => {
    await lockSinkKeys(client, p.name, index, keys);
    const present = await readRowStates(client, p, keys, sinkColumns(sink));
    const columns = sinkColumns(sink).length > 0;
    const changes = keys.map((key) => {
      const values = present.get(key);
      const change: ChangeEvent['changes'][number] = {
        key,
        operation: values ? 'upsert' : 'delete',
      };
      if (columns && values) change.columns = values;
      return change;
    });
    const event: ChangeEvent = {
      deliveryId,
      pipeline: p.name,
      generation: p.generation,
      ...(truncated ? { truncated: true as const } : {}),
      changes,
    };
    if ('notify' in sink) {
      // Sent when this short transaction commits: never the user's, never the capture's.
      await client.query('select pg_notify($1, payload) from unnest($2::text[]) as payload', [
        sink.notify,
        notifyPayloads(event),
      ]);
      return { delivered: true as const, changes: changes.length };
    }
    if ('workflow' in sink) {
      await startSinkWorkflow(deps, sink.workflow, event);
      return { delivered: true as const, changes: changes.length };
    }
    const error = await postWebhook(deps, sink.webhook, event);
    return error === undefined
      ? { delivered: true as const, changes: changes.length }
      : { delivered: false as const, changes: changes.length, error, event };
  });
  if (outcome.delivered) {
    await clearFailedDelivery(deps.pool, deliveryId);
    return outcome;
  }
  const kept = outcome.event.changes.map(({ key, operation }): Change => ({ key, operation }));
  await recordFailedDelivery(deps.pool, {
    deliveryId,
    pipeline: p.name,
    sink: index,
    generation: p.generation,
    changes: kept,
    truncated,
    error: outcome.error,
  });
  return { delivered: false, changes: outcome.changes, error: outcome.error };
}

/**
 * One POST. Returns undefined when delivered, the refusal when the receiver refused it for good
 * (4xx other than 408 and 429); throws SinkUnavailableError for a failure worth retrying.
 */
async function postWebhook(
  deps: DeliveryDeps,
  webhook: Extract<SinkConfig, { webhook: unknown }>['webhook'],
  event: ChangeEvent,
): Promise<string | undefined> {
  const where = describeSink({ webhook });
  const secret = (deps.env ?? process.env)[webhook.secretEnv];
  if (!secret) return `${where}: ${webhook.secretEnv} is not set, so the delivery cannot be signed`;
  const body = JSON.stringify(event);
  let status: number;
  let answer: string;
  try {
    const response = await fetch(webhook.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        [SIGNATURE_HEADER]: signBody(body, secret),
        [IDEMPOTENCY_HEADER]: event.deliveryId,
      },
      body,
      signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS),
      // A redirect is answered as what it is, a 3xx: refused, kept as a dead letter.
      redirect: 'manual',
    });
    status = response.status;
    answer = (await response.text().catch(() => '')).slice(0, 200);
  } catch (err) {
    throw new SinkUnavailableError(`${where}: ${reason(err)}`);
  }
  const verdict = webhookVerdict(status);
  if (verdict === 'delivered') return undefined;
  const said = `${where} answered ${status}${answer ? `: ${answer}` : ''}`;
  if (verdict === 'retry') throw new SinkUnavailableError(said);
  return said;
}

/** Why a request failed, from fetch's error and its cause (ECONNREFUSED, a timeout, …). */
function reason(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  if (err.name === 'TimeoutError') return `no answer within ${WEBHOOK_TIMEOUT_MS / 1000} s`;
  const cause = err.cause as { code?: unknown; message?: unknown } | undefined;
  const detail = typeof cause?.code === 'string' ? cause.code : cause?.message;
  return typeof detail === 'string' ? `${err.message} (${detail})` : err.message;
}

/**
 * Starts the user's workflow once per delivery: its id is `<pipeline>:<delivery id>` and an id
 * already used (running or closed) is refused by Temporal, so a retried delivery starts nothing.
 */
async function startSinkWorkflow(
  deps: DeliveryDeps,
  workflow: Extract<SinkConfig, { workflow: unknown }>['workflow'],
  event: ChangeEvent,
): Promise<void> {
  if (!deps.temporal) throw new SinkUnavailableError('no Temporal client to start workflows with');
  try {
    await deps.temporal.workflow.start(workflow.type, {
      taskQueue: workflow.taskQueue,
      workflowId: `${event.pipeline}:${event.deliveryId}`,
      workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      args: [event],
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) return;
    throw err;
  }
}
