// What the provider's own answers change in the pacing: the decisions, pure (the clock is a
// parameter); src/rate-limit/observe.ts applies them to the shared state in the database.
//
// - Token ratio: a provider may count a text's tokens differently from embedsync's tokenizer (other
//   models, other tokenizers, per-request overheads). Each answer's count (usage.prompt_tokens) over
//   the request's estimate is a sample; their smoothed, bounded value is the ratio, and every
//   request charges the tokens bucket its estimate × the ratio: the bucket then counts as the
//   provider does.
// - Bucket correction: the provider says what is left of its budget (x-ratelimit-remaining-*). When
//   that is less than the bucket holds (other clients share the account, or the ratio is not yet
//   learned), the bucket is lowered to it, less what the fleet sent while this request was in flight
//   (the provider had not counted those yet).
// - Learned limits: the budgets the provider reports (x-ratelimit-limit-*) are limits like the
//   declared ones; the strictest of all applies (src/rate-limit/plan.ts). With none declared they are
//   the only pacing there is.
import type { ProviderRateLimit } from '../config/env.js';
import type { ObservedLimits } from '../providers/types.js';
import type { BucketRate } from './plan.js';

/** The provider's token count ÷ embedsync's estimate, and how many answers it was learned from. */
export interface TokenRatio {
  ratio: number;
  samples: number;
}

/**
 * A ratio outside these bounds is not a tokenizer's difference but a misreport (a server that
 * answers usage 0, or counts bytes as tokens); it is clamped, not believed.
 */
export const RATIO_BOUNDS = { min: 0.5, max: 4 } as const;
/**
 * The weight of the newest sample once there are enough: a text mix that changes moves the ratio
 * within a few dozen answers, and one odd request moves it little. The first samples are averaged
 * evenly, so the first answers already set it.
 */
export const RATIO_SMOOTHING = 0.1;

const clampRatio = (r: number): number => Math.min(RATIO_BOUNDS.max, Math.max(RATIO_BOUNDS.min, r));

/** The ratio after one more answer; unchanged when the answer says nothing of its count. */
export function nextTokenRatio(
  previous: TokenRatio,
  estimate: number,
  reported: number,
): TokenRatio {
  if (!(estimate > 0) || !(reported > 0)) return previous;
  const sample = clampRatio(reported / estimate);
  const weight = Math.max(RATIO_SMOOTHING, 1 / (previous.samples + 1));
  return {
    ratio: clampRatio(previous.ratio + weight * (sample - previous.ratio)),
    samples: previous.samples + 1,
  };
}

/** What a request of `estimate` tokens takes from the tokens bucket: the provider's count. */
export const chargedTokens = (estimate: number, ratio: number): number =>
  estimate * clampRatio(ratio);

export type Budget = 'requests' | 'tokens';

/** A bucket the provider's answer says holds too much, and the level to lower it to. */
export interface Lowering {
  budget: Budget;
  level: number;
}

/**
 * The levels the provider's answer allows each bucket: what it said was left, less what the fleet
 * may have sent since this request went out. Requests sent meanwhile took their turns from the
 * bucket, but the provider had not counted them when it answered; at most the bucket's rate over
 * the request's time in flight went out (more only from a full bucket, which a provider near its
 * limit never sees). `sentAt` and `now` are the request's send and its answer's arrival.
 */
export function allowedLevels(
  limits: ObservedLimits | undefined,
  buckets: Partial<Record<Budget, BucketRate>>,
  sentAt: number,
  now: number,
): Lowering[] {
  const inFlightSeconds = Math.max(0, now - sentAt) / 1000;
  const remaining: Record<Budget, number | undefined> = {
    requests: limits?.remainingRequests,
    tokens: limits?.remainingTokens,
  };
  return (['requests', 'tokens'] as const).flatMap((budget) => {
    const rate = buckets[budget];
    const left = remaining[budget];
    if (!rate || left === undefined) return [];
    // Below the burst only: above it the bucket can hold no more anyway.
    const level = left - rate.perSecond * inFlightSeconds;
    return level < rate.burst ? [{ budget, level }] : [];
  });
}

/** A provider+model's stored observations, as the workers read them. */
export interface LearnedLimits extends ProviderRateLimit {
  provider: string;
  model: string;
  /** When the provider last reported them. */
  limitsSeenAt: Date | null;
}

/**
 * How long reported limits stand without being reported again: a pipeline moved to another server
 * of the same provider name (a baseURL changed) must not be paced by the old one's limits for ever.
 * Every answer of a server that reports limits renews them.
 */
export const LEARNED_LIMITS_STAND_MS = 60 * 60 * 1000;

/**
 * A provider's learned limits: the strictest any of its models reported within the last
 * LEARNED_LIMITS_STAND_MS. The buckets are per provider, so a provider whose models have budgets of
 * their own is paced by the smallest.
 */
export function providerLearnedLimits(
  rows: readonly LearnedLimits[],
  provider: string,
  now: number,
): ProviderRateLimit {
  const mine = rows.filter(
    (r) =>
      r.provider === provider &&
      r.limitsSeenAt !== null &&
      now - r.limitsSeenAt.getTime() <= LEARNED_LIMITS_STAND_MS,
  );
  const least = (values: (number | undefined)[]): number | undefined => {
    const given = values.filter((v): v is number => v !== undefined && v > 0);
    return given.length > 0 ? Math.min(...given) : undefined;
  };
  return {
    requestsPerMinute: least(mine.map((r) => r.requestsPerMinute)),
    tokensPerMinute: least(mine.map((r) => r.tokensPerMinute)),
  };
}
