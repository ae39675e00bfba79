// How each pipeline's provider has been answering (embedsync.provider_health, sql/000005): failures
// in a row and the last error, so a provider that keeps failing shows in `npx embedsync status`. A
// healthy pipeline writes its row at most every few seconds, not once a request.
import type { Pool } from '../db/pool.js';

const SUCCESS_EVERY = '10 seconds';
const MAX_ERROR_LENGTH = 500;

export async function recordSuccess(pool: Pool, pipeline: string): Promise<void> {
  await pool.query(
    `insert into embedsync.provider_health as h (pipeline, last_success_at) values ($1, now())
     on conflict (pipeline) do update set failures_in_a_row = 0, last_success_at = now()
      where h.failures_in_a_row > 0 or h.last_success_at is null or h.last_success_at < now() - interval '${SUCCESS_EVERY}'`,
    [pipeline],
  );
}

/**
 * `error` is already scrubbed of credentials (provider errors are). `retryable`: false if never
 * tried again.
 */
export async function recordFailure(
  pool: Pool,
  pipeline: string,
  error: Error,
  retryable: boolean,
): Promise<void> {
  const text = `${error.name}: ${error.message}`.slice(0, MAX_ERROR_LENGTH);
  await pool.query(
    `insert into embedsync.provider_health as h
       (pipeline, failures_in_a_row, last_error, last_error_at, last_error_retryable) values ($1, 1, $2, now(), $3)
     on conflict (pipeline) do update
       set failures_in_a_row = h.failures_in_a_row + 1, last_error = $2, last_error_at = now(),
           last_error_retryable = $3`,
    [pipeline, text, retryable],
  );
}
