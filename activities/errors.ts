// Failures are classified once, here, at the activity edge: retryable (the retry policy's backoff),
// rate-limited (retried after the provider's hint, with jitter), or non-retryable.
import { ApplicationFailure, Context } from '@temporalio/activity';
import { isSchemaError, SchemaChangedError } from '../src/capture/schema-check.js';
import { ShadowColumnMissingError, ShadowColumnTakenError } from '../src/capture/shadow-column.js';
import { ConfigError } from '../src/config/pipeline.js';
import { EventsOnlyPipelineError, PipelineNotFoundError } from '../src/db/catalog.js';
import { StateTransitionError } from '../src/db/pipeline-state.js';
import {
  InvalidInputError,
  ModelUnavailableError,
  ProviderAuthError,
  ProviderRejectedError,
  ProviderUnavailableError,
  QuotaExhaustedError,
  RateLimitedError,
  RequestRefusedError,
} from '../src/providers/errors.js';
import type { RequestOutcome } from '../src/metrics/worker.js';
import { rateLimitDelay } from '../src/providers/retry-hints.js';
import { ProviderNotConfiguredError } from '../src/providers/types.js';

export class DimensionMismatchError extends Error {
  constructor(
    readonly expected: number,
    readonly actual: number,
    /** The provider and model, as "openai/multilingual-e5-small". */
    readonly model?: string,
  ) {
    super(
      actual < 0
        ? `${model ?? 'the provider'} answered with fewer vectors than it was sent texts`
        : `${model ?? 'the provider'} returned ${actual}-dimension vectors, but the pipeline stores ${expected} (embedding.dimensions): declare dimensions: ${actual}, apply, and re-embed`,
    );
    this.name = 'DimensionMismatchError';
  }
}

// Retrying sends the same request to the same answer: no quota, bad credentials, an unknown model,
// wrong dimensions, a request the provider refuses whatever its inputs, a source table that lost a
// column, a pipeline in a state the step does not apply to, a re-embed's column name taken by the
// user or its shadow column gone (a view pinning the live column is retried: dropping it is the fix).
const NON_RETRYABLE = [
  PipelineNotFoundError,
  EventsOnlyPipelineError,
  StateTransitionError,
  ProviderNotConfiguredError,
  DimensionMismatchError,
  ConfigError,
  SchemaChangedError,
  ShadowColumnTakenError,
  ShadowColumnMissingError,
  QuotaExhaustedError,
  ProviderAuthError,
  ModelUnavailableError,
  InvalidInputError,
  RequestRefusedError,
  ProviderRejectedError,
];

function attempt(): number {
  try {
    return Context.current().info.attempt;
  } catch {
    return 1; // outside an activity (unit tests)
  }
}

/** The Temporal failure for an error. Provider messages are already scrubbed of credentials. */
export function toFailure(err: unknown): unknown {
  if (err instanceof RateLimitedError) {
    return ApplicationFailure.create({
      message: err.message,
      type: err.name,
      nextRetryDelay: rateLimitDelay(err.retryAfterMs, attempt()),
    });
  }
  // As a failure of our own making, so the SDK's stack and request details stay out of history.
  if (err instanceof ProviderUnavailableError)
    return ApplicationFailure.retryable(err.message, err.name);
  if (err instanceof Error && NON_RETRYABLE.some((type) => err instanceof type)) {
    return ApplicationFailure.nonRetryable(err.message, err.name);
  }
  // A missing column or table (undefined_column, undefined_table) stays missing until someone acts.
  if (err instanceof Error && isSchemaError(err)) {
    return ApplicationFailure.nonRetryable(err.message, 'SchemaChangedError');
  }
  return err;
}

/** Whether Temporal tries the error again once it has crossed the activity edge. */
export function isRetryable(err: unknown): boolean {
  const failure = toFailure(err);
  return !(failure instanceof ApplicationFailure && failure.nonRetryable);
}

/** How a failed provider request counts in embedsync_provider_requests_total: as it is retried. */
export function requestOutcome(err: unknown): Exclude<RequestOutcome, 'ok'> {
  if (err instanceof RateLimitedError) return 'rate_limited';
  if (err instanceof Error && NON_RETRYABLE.some((type) => err instanceof type)) return 'refused';
  return 'retryable';
}

/** Runs an activity body, turning its errors into the failures above. */
export async function classified<T>(fn: () => Promise<T>): Promise<T> {
  // Heartbeats while the body runs, so a lost or crashed attempt is retried after the workflow's
  // short heartbeat timeout rather than its long start-to-close timeout (which a big write may
  // need).
  const context = Context.current();
  const beat = setInterval(() => heartbeat(context), HEARTBEAT_EVERY_MS);
  try {
    return await fn();
  } catch (err) {
    throw toFailure(err);
  } finally {
    clearInterval(beat);
  }
}

const HEARTBEAT_EVERY_MS = 3000;

/**
 * Heartbeats an activity on a task queue. A local activity has no heartbeat to send: the workflow
 * task it runs in is what times out when its worker is lost.
 */
export function heartbeat(context: Context, details?: unknown): void {
  if (!context.info.isLocal) context.heartbeat(details);
}
