// One interface for every embedding provider. Secrets stay inside the provider object:
// nothing here crosses into workflow history or logs.
import type { ProviderRateLimit } from '../config/env.js';
import type { EmbeddingConfig, RerankConfig } from '../config/pipeline.js';

export type InputType = 'document' | 'query';

export interface EmbedRequest {
  model: string;
  dimensions: number;
  inputType: InputType;
  texts: string[];
  /** The pipeline's embedding config, for provider options (baseURL, region, normalize, …). */
  embedding?: EmbeddingConfig;
  /** Aborts the call when the activity is cancelled. */
  signal?: AbortSignal;
}

export interface EmbedResponse {
  vectors: number[][];
  /** Tokens the provider counted (or an estimate where it reports none). */
  tokens: number;
  /** What the provider said of its rate limits with this answer; none where it says nothing. */
  limits?: ObservedLimits;
}

/**
 * A provider's own word on its requests- and tokens-per-minute budgets, as one answer (a success or
 * a 429) reported them (OpenAI's x-ratelimit-* headers). Tokens are in the provider's count.
 */
export interface ObservedLimits {
  /** The budget per minute (x-ratelimit-limit-*). */
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  /** What is left of it now (x-ratelimit-remaining-*). */
  remainingRequests?: number;
  remainingTokens?: number;
  /** Milliseconds until the budget is whole again (x-ratelimit-reset-*). */
  resetRequestsMs?: number;
  resetTokensMs?: number;
}

export interface EmbeddingProvider {
  /** Matches `embedding.provider` in a pipeline config. */
  readonly name: string;
  /** Most texts one request may carry. */
  readonly maxInputsPerRequest: number;
  /** Deployment-wide limits from the environment; pipelines may declare stricter ones. */
  readonly rateLimit?: ProviderRateLimit;
  /**
   * The provider states its limits only when it refuses a request (Gemini's 429), so a success
   * that states none does not mean it keeps none: what was learned stands until it lapses.
   */
  readonly limitsOnlyWhenRateLimited?: boolean;
  embed(request: EmbedRequest): Promise<EmbedResponse>;
  /** Providers with rerank models (Bedrock): the second search stage (src/search/rerank.ts). */
  rerank?(request: RerankRequest): Promise<RerankResponse>;
}

export interface RerankRequest {
  query: string;
  documents: string[];
  /** Results wanted, the most relevant first. */
  topN: number;
  /** The pipeline's rerank config: model, region, endpoint. */
  rerank: RerankConfig;
  signal?: AbortSignal;
}

export interface RerankResponse {
  /** Most relevant first; index is the document's place in the request. */
  results: { index: number; relevanceScore: number }[];
}

export type ProviderRegistry = ReadonlyMap<string, EmbeddingProvider>;

export class ProviderNotConfiguredError extends Error {
  constructor(readonly provider: string) {
    super(`no embedding provider "${provider}" is configured in this worker`);
    this.name = 'ProviderNotConfiguredError';
  }
}

export function getProvider(registry: ProviderRegistry, name: string): EmbeddingProvider {
  const provider = registry.get(name);
  if (!provider) throw new ProviderNotConfiguredError(name);
  return provider;
}
