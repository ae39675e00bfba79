// The second search stage (docs/architecture.md, decision 28): the nearest candidates reordered by
// the pipeline's rerank model, each hit carrying the model's score, cut to the limit. The model is
// whichever provider the config names: Bedrock's, or a cross-encoder in this process (local,
// decision 30). A search has no Temporal retry policy behind it, so a throttled or unavailable
// model is retried here, within a bound that keeps a search interactive.
import type { RerankConfig } from '../config/pipeline.js';
import type { Pipeline } from '../db/catalog.js';
import {
  ModelUnavailableError,
  ProviderAuthError,
  ProviderError,
  ProviderUnavailableError,
  RateLimitedError,
} from '../providers/errors.js';
import { DEFAULT_LOCAL_RERANK_MODEL } from '../providers/local-models.js';
import { rateLimitDelay } from '../providers/retry-hints.js';
import { getProvider, type ProviderRegistry, type RerankResponse } from '../providers/types.js';
import type { SearchHit } from './query.js';

/** Requests to the model for one search, the first included. */
export const RERANK_ATTEMPTS = 4;
/** Longest a search waits, in all, between attempts; a longer hint is not waited for. */
export const RERANK_MAX_WAIT_MS = 15_000;

export class RerankError extends Error {
  override name = 'RerankError';
}

/** The pipeline's rerank config; asking to rerank without one is an error that says what to add. */
export function rerankConfigOf(p: Pipeline): RerankConfig {
  const config = p.config.rerank;
  if (!config)
    throw new RerankError(
      `pipeline ${p.name} has no rerank model: add rerank: { provider: local, model: ${DEFAULT_LOCAL_RERANK_MODEL} } (or a Bedrock model) to its config and apply it`,
    );
  return config;
}

/** How many of the nearest results the model reorders: the configured candidates, or the limit. */
export const candidatesFor = (config: RerankConfig, limit: number): number =>
  Math.max(limit, config.candidates);

/**
 * The wait before trying again after `attempt` failed with `err`, or undefined to give up. A
 * throttle waits its hint or backs off exponentially with jitter (as the embed activities do); an
 * outage backs off the same way; anything else is the request's fault and is not sent again.
 */
export function rerankRetryDelay(
  err: unknown,
  attempt: number,
  waitedMs: number,
  random: () => number = Math.random,
): number | undefined {
  if (attempt >= RERANK_ATTEMPTS) return undefined;
  let delay: number;
  if (err instanceof RateLimitedError) delay = rateLimitDelay(err.retryAfterMs, attempt, random);
  else if (err instanceof ProviderUnavailableError)
    delay = rateLimitDelay(undefined, attempt, random);
  else return undefined;
  return waitedMs + delay > RERANK_MAX_WAIT_MS ? undefined : delay;
}

/**
 * The hits in the model's order (most relevant first, ties as the model listed them), each with its
 * score, at most `limit`.
 */
export function orderHits(
  hits: readonly SearchHit[],
  results: RerankResponse['results'],
  limit: number,
): SearchHit[] {
  return [...results]
    .sort((a, b) => b.relevanceScore - a.relevanceScore)
    .slice(0, limit)
    .flatMap((r) => {
      const hit = hits[r.index];
      return hit ? [{ ...hit, rerankScore: r.relevanceScore }] : [];
    });
}

export interface RerankDeps {
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

const wait = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Reorders a search's candidates (each hit's chunk is its document) with the pipeline's model. */
export async function rerankHits(
  providers: ProviderRegistry,
  p: Pipeline,
  query: string,
  hits: readonly SearchHit[],
  limit: number,
  deps: RerankDeps = {},
): Promise<SearchHit[]> {
  const config = rerankConfigOf(p);
  if (hits.length === 0) return [];
  const provider = getProvider(providers, config.provider);
  if (!provider.rerank) throw new RerankError(`provider ${config.provider} has no rerank models`);
  const request = {
    query,
    documents: hits.map((h) => h.chunk),
    topN: Math.min(limit, hits.length),
    rerank: config,
  };
  let waited = 0;
  for (let attempt = 1; ; attempt += 1) {
    try {
      const { results } = await provider.rerank(request);
      return orderHits(hits, results, limit);
    } catch (err) {
      const delay = rerankRetryDelay(err, attempt, waited, deps.random);
      if (delay === undefined) throw rerankFailure(config.model, err, attempt);
      waited += delay;
      await (deps.sleep ?? wait)(delay);
    }
  }
}

/** One line naming the model and what went wrong; provider messages are already scrubbed. */
function rerankFailure(model: string, err: unknown, attempts: number): unknown {
  if (!(err instanceof ProviderError)) return err;
  const detail = err.message.replace(/\s+/g, ' ').trim();
  const tries = attempts === 1 ? '1 attempt' : `${attempts} attempts`;
  if (err instanceof RateLimitedError)
    return new RerankError(
      `rerank model ${model} is throttled: gave up after ${tries} (${detail})`,
    );
  if (err instanceof ProviderUnavailableError)
    return new RerankError(`rerank model ${model} is unavailable after ${tries} (${detail})`);
  if (err instanceof ProviderAuthError)
    return new RerankError(
      `${err.provider} refused the credentials for rerank model ${model} (${detail})`,
    );
  if (err instanceof ModelUnavailableError)
    return new RerankError(`rerank model ${model} cannot be used (${detail})`);
  return new RerankError(`rerank model ${model} refused the request (${detail})`);
}
