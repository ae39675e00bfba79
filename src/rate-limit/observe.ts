// After each answer of a provider, a success or a 429: what it said of its budgets goes into the
// state every worker shares. Its buckets are lowered to what it said is left (embedsync.rate_buckets)
// and its token count, its limits and what was done are added to embedsync.rate_observations. The
// decisions are src/rate-limit/observed.ts's; the workers' plans follow the row (task-queues.ts).
import type { Pool } from '../db/pool.js';
import { recordObservation, type RateObservations } from '../db/rate-observations.js';
import type { ObservedLimits } from '../providers/types.js';
import { lowerBucket, type Buckets } from './buckets.js';
import { allowedLevels, nextTokenRatio } from './observed.js';

export interface Answer {
  provider: string;
  model: string;
  /** embedsync's token estimate of the request, and what its turn charged the tokens bucket. */
  estimate: number;
  charged: number;
  /** The tokens the provider counted (0 for a 429, which counts none). */
  reported: number;
  limits: ObservedLimits | undefined;
  rateLimited: boolean;
  /** The provider states its limits only in 429s (EmbeddingProvider.limitsOnlyWhenRateLimited). */
  limitsOnlyWhenRateLimited?: boolean | undefined;
  /** The buckets the request took its turn from; none: it was not paced. */
  buckets: Buckets | undefined;
  /** When the request was sent (ms since the epoch). */
  sentAt: number;
}

/**
 * Applies one answer. `now` is its arrival, given by a test; otherwise the request's time in flight
 * is read from this process's clock, and the buckets are refilled by the database's, as every turn
 * is.
 */
export async function observe(pool: Pool, answer: Answer, now?: number): Promise<RateObservations> {
  const buckets = { requests: answer.buckets?.requests, tokens: answer.buckets?.tokens };
  const arrived = now ?? Date.now();
  const at = now === undefined ? undefined : new Date(now);
  let lowered = 0;
  for (const { budget, level } of allowedLevels(answer.limits, buckets, answer.sentAt, arrived)) {
    const rate = buckets[budget];
    if (rate && (await lowerBucket(pool, answer.provider, budget, level, rate, at))) lowered += 1;
  }
  return recordObservation(
    pool,
    {
      provider: answer.provider,
      model: answer.model,
      estimated: answer.estimate,
      charged: answer.charged,
      reported: answer.reported,
      requestsPerMinute: answer.limits?.requestsPerMinute,
      tokensPerMinute: answer.limits?.tokensPerMinute,
      rateLimited: answer.rateLimited,
      limitsOnlyWhenRateLimited: answer.limitsOnlyWhenRateLimited,
      lowered,
    },
    (previous) => nextTokenRatio(previous, answer.estimate, answer.reported),
  );
}
