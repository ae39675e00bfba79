// How fast a provider's embedding task queue may go, and how much one request may carry, so that
// requests fill the requests-per-minute and tokens-per-minute budgets without overrunning either.
//
// The queue's rate is enforced by the Temporal server across all workers (maxTaskQueueActivitiesPerSecond),
// so it is the one place that sees the whole fleet. A paced embed activity sends one slot's worth of
// requests (one request; a few for models that take one text per call) and no request carries more
// than tokensPerRequest. Then, per second:
//     activities × requestsPerActivity ≤ RPM / 60      and      requests × tokensPerRequest ≤ TPM / 60.
// tokensPerRequest is as small as the budgets allow (TPM / RPM) but never smaller than the largest
// chunk, which must fit in a request of its own; a larger floor means fewer, fuller requests.
import type { ProviderRateLimit } from '../config/env.js';
import type { PipelineConfig } from '../config/pipeline.js';
import { modelFacts, type ModelFacts } from './models.js';
import type { EmbeddingProvider, RequestBudget } from './types.js';

export interface RatePlan extends RequestBudget {
  /** The queue's maxTaskQueueActivitiesPerSecond; undefined when no limit is declared. */
  activitiesPerSecond: number | undefined;
  /** The limits in force: the strictest of the environment's and every pipeline's. */
  limit: ProviderRateLimit;
}

// Models that take one text per call (Titan) would otherwise cost one activity per chunk.
const SINGLE_INPUT_REQUESTS_PER_ACTIVITY = 8;
// Chunk size when no pipeline of the provider exists yet: the config's default.
const DEFAULT_CHUNK_SIZE = 2000;

const declared = (config: PipelineConfig): ProviderRateLimit => (config.embedding.provider === 'offline' ? {} : config.embedding);

const strictest = (values: (number | undefined)[]): number | undefined => {
  const given = values.filter((v): v is number => v !== undefined);
  return given.length > 0 ? Math.min(...given) : undefined;
};

/** The largest chunk a pipeline makes, in (estimated) tokens. */
function largestChunkTokens(config: PipelineConfig, facts: ModelFacts): number {
  return facts.unit === 'tokens' ? config.chunking.size : Math.ceil(config.chunking.size / 3);
}

export function planProviderQueue(provider: Pick<EmbeddingProvider, 'rateLimit' | 'maxInputsPerRequest'>, pipelines: readonly PipelineConfig[]): RatePlan {
  const shapes = pipelines.flatMap((config) => {
    try {
      const facts = modelFacts(config.embedding);
      return [{ config, facts, chunk: largestChunkTokens(config, facts) }];
    } catch {
      return []; // an unknown model fails its own batches; it must not stop the worker
    }
  });
  const limit: ProviderRateLimit = {
    requestsPerMinute: strictest([provider.rateLimit?.requestsPerMinute, ...shapes.map((s) => declared(s.config).requestsPerMinute)]),
    tokensPerMinute: strictest([provider.rateLimit?.tokensPerMinute, ...shapes.map((s) => declared(s.config).tokensPerMinute)]),
  };
  const largestChunk = Math.max(...shapes.map((s) => s.chunk), shapes.length === 0 ? DEFAULT_CHUNK_SIZE : 0);
  const requestCap = Math.min(...shapes.map((s) => s.facts.maxTokensPerRequest));
  const singleInput = Math.min(provider.maxInputsPerRequest, ...shapes.map((s) => s.facts.maxInputsPerRequest)) === 1;
  const requestsPerActivity = singleInput ? SINGLE_INPUT_REQUESTS_PER_ACTIVITY : 1;
  const { requestsPerMinute: rpm, tokensPerMinute: tpm } = limit;

  let tokensPerRequest = requestCap;
  if (singleInput) tokensPerRequest = largestChunk;
  else if (tpm !== undefined) tokensPerRequest = Math.min(requestCap, Math.max(largestChunk, Math.floor(tpm / (rpm ?? Infinity))));

  const requestsPerMinute = strictest([rpm, tpm === undefined ? undefined : tpm / tokensPerRequest]);
  const requestsPerSecond = requestsPerMinute === undefined ? undefined : requestsPerMinute / 60;
  return {
    limit,
    tokensPerRequest,
    requestsPerActivity,
    activitiesPerSecond: requestsPerSecond === undefined ? undefined : requestsPerSecond / requestsPerActivity,
  };
}

/** The provider as one embedding queue's worker sees it: with the request budget of its plan. */
export function withBudget(provider: EmbeddingProvider, plan: RatePlan): EmbeddingProvider {
  return {
    name: provider.name,
    maxInputsPerRequest: provider.maxInputsPerRequest,
    rateLimit: plan.limit,
    budget: { tokensPerRequest: plan.tokensPerRequest, requestsPerActivity: plan.requestsPerActivity },
    embed: (request) => provider.embed(request),
  };
}
