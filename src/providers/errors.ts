// What can go wrong with a provider, in embedsync's terms. Each provider translates its SDK's
// errors into these; the embed activity turns them into Temporal failures (activities/errors.ts).
// Messages are scrubbed of credentials first: they end up in workflow history and logs.
import type { ObservedLimits } from './types.js';

export abstract class ProviderError extends Error {
  constructor(
    readonly provider: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Too many requests or tokens for now (429, Bedrock throttling). Retried after the provider's hint.
 */
export class RateLimitedError extends ProviderError {
  override name = 'RateLimitedError';
  constructor(
    provider: string,
    message: string,
    readonly retryAfterMs: number | undefined,
    /** What the 429 said of the provider's budgets (OpenAI's x-ratelimit-* headers). */
    readonly limits?: ObservedLimits,
  ) {
    super(provider, message);
  }
}

/** The account has no quota or credit left; retrying cannot help until someone pays. */
export class QuotaExhaustedError extends ProviderError {
  override name = 'QuotaExhaustedError';
}

/** Missing, wrong or unauthorised credentials (401/403). */
export class ProviderAuthError extends ProviderError {
  override name = 'ProviderAuthError';
}

/** The model does not exist or this account cannot use it. */
export class ModelUnavailableError extends ProviderError {
  override name = 'ModelUnavailableError';
}

/**
 * The provider refused the request's content (400): one input may be to blame, so the batch is
 * bisected.
 */
export class InvalidInputError extends ProviderError {
  override name = 'InvalidInputError';
}

/**
 * A 4xx the provider gives no better name for: the request itself is wrong; retrying sends it
 * again.
 */
export class ProviderRejectedError extends ProviderError {
  override name = 'ProviderRejectedError';
}

/** 5xx, timeouts, connection failures: worth retrying. */
export class ProviderUnavailableError extends ProviderError {
  override name = 'ProviderUnavailableError';
}

// OpenAI keys (sk-…, sk-proj-…), AWS access key ids and Google API keys (AIza…). A real server
// masks all but the ends of a wrong key in its 401 message; a compatible server may echo it whole,
// and Google's error details may carry the key it refused.
const KEY_SHAPES = [
  /\bsk-[A-Za-z0-9_*.-]{6,}/g,
  /\b(AKIA|ASIA)[A-Z0-9]{16}\b/g,
  /\bAIza[0-9A-Za-z_-]{35}/g,
];

/**
 * Removes credentials from a message: the ones the provider holds, and anything shaped like a key.
 */
export function scrub(message: string, secrets: readonly (string | undefined)[] = []): string {
  let out = message;
  for (const secret of secrets)
    if (secret && secret.length >= 4) out = out.split(secret).join('[redacted]');
  for (const shape of KEY_SHAPES) out = out.replace(shape, '[redacted]');
  return out;
}

/**
 * Several inputs refused and none accepted: the request is at fault (a parameter, the model), not
 * an input.
 */
export class RequestRefusedError extends ProviderError {
  override name = 'RequestRefusedError';
}
