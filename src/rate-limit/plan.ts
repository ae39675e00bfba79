// How a provider's requests are paced so that they fill its requests-per-minute and
// tokens-per-minute budgets without overrunning either, however many workers share them.
//
// - Requests per minute: the provider's embedding task queue is limited to so many activities per
//   second, which the Temporal server enforces across every worker of the queue. A paced embed
//   activity sends one request (a few, for models that take one text per call). The server spreads
//   that rate over the queue's partitions, which let their tasks go in bursts; so each request also
//   takes its turn from the provider's requests bucket in the database, which keeps the pace exact.
// - Tokens per minute: every request first takes its tokens from the provider's tokens bucket in
//   the database (sql/000004_rate_buckets.sql), which all workers share, and waits its turn when the
//   bucket is empty. So requests can be as large as the model takes: a request's size does not
//   decide the pace.
// - The limits are the strictest of those the environment and the pipelines declare and those the
//   provider itself reports in its answers (learned: src/rate-limit/observed.ts); with none at all,
//   requests go unpaced.
import type { ProviderRateLimit } from '../config/env.js';
import type { PipelineConfig } from '../config/pipeline.js';
import { modelFacts } from '../providers/models.js';
import type { EmbeddingProvider } from '../providers/types.js';

export interface RatePlan {
  /**
   * The limits in force: the strictest of the environment's, every pipeline's and the ones learned
   * from the provider.
   */
  limit: ProviderRateLimit;
  /** The limits the provider reported in its answers, as far as they are known. */
  learned: ProviderRateLimit;
  /** The queue's activities per second; undefined when no requests-per-minute limit is declared. */
  activitiesPerSecond: number | undefined;
  /** Requests one paced embed activity may send: one task-queue slot's worth. */
  requestsPerActivity: number;
  /** Most tokens (estimated, for models measured in characters) one request may carry. */
  tokensPerRequest: number;
  /** The shared buckets; undefined where no such limit is declared. */
  requests: BucketRate | undefined;
  tokens: BucketRate | undefined;
}

export interface BucketRate {
  perSecond: number;
  /** What the bucket holds when full: how far ahead of the rate an idle fleet may send at once. */
  burst: number;
}

// Models that take one text per call (Titan) would otherwise cost one activity per chunk.
const SINGLE_INPUT_REQUESTS_PER_ACTIVITY = 8;
// A full bucket holds this many seconds of the budget: an idle fleet sends its first requests at
// once, yet no minute ever carries more than the budget and one second's worth, and a provider that
// enforces its limit per second (OpenAI may) is not overrun either.
const BURST_SECONDS = 1;

const declared = (config: PipelineConfig): ProviderRateLimit =>
  config.embedding.provider === 'offline' || config.embedding.provider === 'local'
    ? {}
    : config.embedding;

const strictest = (values: (number | undefined)[]): number | undefined => {
  const given = values.filter((v): v is number => v !== undefined);
  return given.length > 0 ? Math.min(...given) : undefined;
};

export function planProviderQueue(
  provider: Pick<EmbeddingProvider, 'rateLimit' | 'maxInputsPerRequest'>,
  pipelines: readonly PipelineConfig[],
  learned: ProviderRateLimit = {},
): RatePlan {
  const shapes = pipelines.flatMap((config) => {
    try {
      return [{ config, facts: modelFacts(config.embedding) }];
    } catch {
      return []; // an unknown model fails its own batches; it must not stop the worker
    }
  });
  const limit: ProviderRateLimit = {
    requestsPerMinute: strictest([
      provider.rateLimit?.requestsPerMinute,
      ...shapes.map((s) => declared(s.config).requestsPerMinute),
      learned.requestsPerMinute,
    ]),
    tokensPerMinute: strictest([
      provider.rateLimit?.tokensPerMinute,
      ...shapes.map((s) => declared(s.config).tokensPerMinute),
      learned.tokensPerMinute,
    ]),
  };
  const { requestsPerMinute: rpm, tokensPerMinute: tpm } = limit;
  const singleInput =
    Math.min(provider.maxInputsPerRequest, ...shapes.map((s) => s.facts.maxInputsPerRequest)) === 1;
  const requestsPerActivity = singleInput ? SINGLE_INPUT_REQUESTS_PER_ACTIVITY : 1;
  // A request larger than a minute's budget would be refused outright ("Requested 629204 tokens,
  // max 600000").
  const tokensPerRequest = Math.min(
    tpm ?? Infinity,
    ...shapes.map((s) => s.facts.maxTokensPerRequest),
  );
  return {
    limit,
    learned,
    requestsPerActivity,
    tokensPerRequest,
    activitiesPerSecond: rpm === undefined ? undefined : rpm / 60 / requestsPerActivity,
    // At least one whole request, however low the rate.
    requests:
      rpm === undefined
        ? undefined
        : { perSecond: rpm / 60, burst: Math.max(1, (rpm / 60) * BURST_SECONDS) },
    tokens:
      tpm === undefined ? undefined : { perSecond: tpm / 60, burst: (tpm / 60) * BURST_SECONDS },
  };
}

/** Whether two plans pace the same way. */
export function samePlan(a: RatePlan | undefined, b: RatePlan | undefined): boolean {
  return (
    a?.activitiesPerSecond === b?.activitiesPerSecond &&
    a?.tokensPerRequest === b?.tokensPerRequest &&
    a?.requestsPerActivity === b?.requestsPerActivity &&
    a?.tokens?.perSecond === b?.tokens?.perSecond &&
    a?.requests?.perSecond === b?.requests?.perSecond
  );
}
