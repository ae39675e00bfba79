// Failures are classified once, here, at the activity edge.
import { ApplicationFailure } from '@temporalio/activity';
import { ConfigError } from '../src/config/pipeline.js';
import { PipelineNotFoundError } from '../src/db/catalog.js';
import { ProviderNotConfiguredError } from '../src/providers/types.js';

export class DimensionMismatchError extends Error {
  constructor(readonly expected: number, readonly actual: number) {
    super(`the provider returned ${actual}-dimension vectors; the pipeline stores ${expected}`);
    this.name = 'DimensionMismatchError';
  }
}

const NON_RETRYABLE = [PipelineNotFoundError, ProviderNotConfiguredError, DimensionMismatchError, ConfigError];

/** Runs an activity body, turning errors that retrying cannot fix into non-retryable failures. */
export async function classified<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof Error && NON_RETRYABLE.some((type) => err instanceof type)) {
      throw ApplicationFailure.nonRetryable(err.message, err.name);
    }
    throw err;
  }
}
