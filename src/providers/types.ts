// One interface for every embedding provider. Secrets stay inside the provider object:
// nothing here crosses into workflow history or logs.
import type { ProviderRateLimit } from '../config/env.js';
import type { EmbeddingConfig } from '../config/pipeline.js';

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
}

export interface EmbeddingProvider {
  /** Matches `embedding.provider` in a pipeline config. */
  readonly name: string;
  /** Most texts one request may carry. */
  readonly maxInputsPerRequest: number;
  /** Deployment-wide limits from the environment; pipelines may declare stricter ones. */
  readonly rateLimit?: ProviderRateLimit;
  embed(request: EmbedRequest): Promise<EmbedResponse>;
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
