// One embedding request as every embedding activity sends it: within the model's size limits, after
// taking its turn from the provider's shared buckets (src/rate-limit/buckets.ts), heartbeating while
// in flight, counted in the worker's metrics, and with a 429 holding the whole fleet back for as
// long as the provider asked; every answer's word on the budgets goes into the shared pacing
// (src/rate-limit/observe.ts). Used by the batch stage (activities/embed.ts) and the walk's batches
// (activities/walk-batch.ts); what each does with the vectors is its own.
import { Context } from '@temporalio/activity';
import type { Pipeline } from '../src/db/catalog.js';
import type { Pool } from '../src/db/pool.js';
import { recordFailure, recordSuccess } from '../src/db/provider-health.js';
import { recordSpend, type SpendMode } from '../src/db/token-ledger.js';
import type { RequestOutcome } from '../src/metrics/worker.js';
import { InvalidInputError, RateLimitedError } from '../src/providers/errors.js';
import { modelFacts, type ModelFacts } from '../src/providers/models.js';
import type { RequestLimits } from '../src/providers/requests.js';
import { getProvider, type EmbeddingProvider } from '../src/providers/types.js';
import {
  chargedTokens,
  hasBuckets,
  holdBack,
  MAX_TURN_WAIT_MS,
  observe,
  takeTurn,
  type Answer,
  type Buckets,
  type RatePlan,
} from '../src/rate-limit/index.js';
import type { ActivityDeps } from './deps.js';
import { DimensionMismatchError, isRetryable, requestOutcome } from './errors.js';

/** An input of a request: its text, its size in the model's unit and its token estimate. */
export interface RequestInput {
  chunk: string;
  size: number;
  tokens: number;
}

export interface ProviderCall {
  provider: EmbeddingProvider;
  facts: ModelFacts;
  plan: RatePlan | undefined;
  /** How large one request may be. */
  limits: RequestLimits;
  /** Sends one request; its vectors, in order, and the tokens the provider counted. */
  send(inputs: readonly RequestInput[]): Promise<{ vectors: number[][]; tokens: number }>;
}

/** A request as sent: its token estimate, what it was charged, and when it went. */
type Sent = Pick<Answer, 'estimate' | 'charged' | 'sentAt'>;

// Heartbeats while a request is in flight, so a slow provider is not mistaken for a dead worker.
const HEARTBEAT_EVERY_MS = 5000;

/** `mode`: what the tokens are paid for, in the token ledger (src/db/token-ledger.ts). */
export function providerCall(
  { pool, providers, log, rates, metrics }: ActivityDeps,
  p: Pipeline,
  mode: SpendMode,
  heartbeat: () => void,
): ProviderCall {
  const ctx = Context.current();
  const embedding = p.config.embedding;
  const provider = getProvider(providers, embedding.provider);
  const facts = modelFacts(embedding);
  const plan = rates?.plan(provider.name);
  const limits = {
    maxInputs: Math.min(provider.maxInputsPerRequest, facts.maxInputsPerRequest),
    maxTokens: Math.min(facts.maxTokensPerRequest, plan?.tokensPerRequest ?? Infinity),
  };
  const buckets = hasBuckets(plan) ? plan : undefined;
  // Keeping the provider's record must never fail the batch.
  const health = (recording: Promise<void>) =>
    recording.catch((err: unknown) =>
      log.warn({ err, pipeline: p.name }, "could not record the provider's health"),
    );
  const learn = (
    answer: Omit<Answer, 'provider' | 'model' | 'buckets' | 'limitsOnlyWhenRateLimited'>,
  ) =>
    observe(pool, {
      ...answer,
      provider: provider.name,
      model: embedding.model,
      buckets,
      limitsOnlyWhenRateLimited: provider.limitsOnlyWhenRateLimited,
    })
      .then((observed) => rates?.learn?.(observed))
      .catch((err: unknown) =>
        log.warn({ err, pipeline: p.name }, "could not record the provider's rate limits"),
      );
  const failed = async (err: unknown, sent?: Sent): Promise<never> => {
    if (err instanceof RateLimitedError && buckets && err.retryAfterMs !== undefined)
      await holdBack(pool, provider.name, err.retryAfterMs, buckets);
    if (err instanceof RateLimitedError && sent)
      await learn({ ...sent, reported: 0, limits: err.limits, rateLimited: true });
    // A refused input is the input's fault; a cancelled request is nobody's.
    if (
      err instanceof Error &&
      !(err instanceof InvalidInputError) &&
      !ctx.cancellationSignal.aborted
    ) {
      await health(recordFailure(pool, p.name, err, isRetryable(err)));
    }
    throw err;
  };
  const send: ProviderCall['send'] = async (inputs) => {
    // Longer than the model takes (chunking should have prevented it): never sent to be cut short.
    if (inputs.some((c) => c.size > facts.maxInputSize)) {
      throw new InvalidInputError(
        provider.name,
        `a chunk is longer than ${embedding.model} takes (${facts.maxInputSize} ${facts.unit}); it was not sent, so it could not be cut short`,
      );
    }
    const estimate = inputs.reduce((sum, c) => sum + c.tokens, 0);
    // Charged as the provider counts, as far as its answers have shown.
    const charged = chargedTokens(
      estimate,
      rates?.tokenRatio?.(provider.name, embedding.model) ?? 1,
    );
    if (buckets) {
      const waitMs = await awaitTurn(pool, provider.name, charged, buckets);
      metrics?.rateBucketWait.observe({ provider: provider.name }, waitMs / 1000);
    }
    const sent: Sent = { estimate, charged: buckets?.tokens ? charged : 0, sentAt: Date.now() };
    const request = provider.embed({
      model: embedding.model,
      dimensions: embedding.dimensions,
      inputType: 'document',
      texts: inputs.map((c) => c.chunk),
      embedding,
      signal: ctx.cancellationSignal,
    });
    const beat = setInterval(heartbeat, HEARTBEAT_EVERY_MS);
    const counted = (outcome: RequestOutcome): void =>
      metrics?.providerRequests.inc({ pipeline: p.name, provider: provider.name, outcome });
    const {
      vectors,
      tokens,
      limits: said,
    } = await request
      .then(
        (response) => {
          counted('ok');
          return response;
        },
        (err: unknown) => {
          // A request this activity cancelled got no answer to count.
          if (!ctx.cancellationSignal.aborted) counted(requestOutcome(err));
          return failed(err, sent);
        },
      )
      .finally(() => clearInterval(beat));
    // Nothing to learn where nothing is paced and the provider says nothing of its limits
    // (offline, a local server): those requests keep their latency.
    if (buckets || said)
      await learn({ ...sent, reported: tokens, limits: said, rateLimited: false });
    const wrong = vectors.find((v) => v.length !== embedding.dimensions);
    if (wrong || vectors.length !== inputs.length)
      await failed(
        new DimensionMismatchError(
          embedding.dimensions,
          wrong?.length ?? -1,
          `${provider.name}/${embedding.model}`,
        ),
      );
    await health(recordSuccess(pool, p.name));
    await recordSpend(pool, {
      pipeline: p.name,
      generation: p.generation,
      mode,
      provider: provider.name,
      model: embedding.model,
      tokens,
      requests: 1,
      texts: inputs.length,
      reused: 0,
    }).catch((err: unknown) =>
      // Paid for already: failing here would have a retry pay again.
      log.warn({ err, pipeline: p.name, tokens }, 'could not record the tokens paid'),
    );
    metrics?.tokensEmbedded.inc({ pipeline: p.name, provider: provider.name }, tokens);
    return { vectors, tokens };
  };
  return { provider, facts, plan, limits, send };
}

/**
 * Waits for the request's turn in the provider's shared buckets. A turn further off than an
 * activity should wait is not taken: the activity backs off (retried after that delay) instead.
 */
async function awaitTurn(
  pool: Pool,
  provider: string,
  tokens: number,
  buckets: Buckets,
): Promise<number> {
  const turn = await takeTurn(pool, provider, tokens, buckets);
  if (!turn.taken) {
    throw new RateLimitedError(
      provider,
      `the rate budget is taken for the next ${Math.round((turn.retryAfterMs + MAX_TURN_WAIT_MS) / 1000)} s; backing off`,
      turn.retryAfterMs,
    );
  }
  // Cancellable; the activity heartbeats meanwhile (classified).
  if (turn.waitMs > 0) await Context.current().sleep(turn.waitMs);
  return turn.waitMs;
}
