// How long a provider asks us to wait after a 429, and what it says of its budgets in every answer,
// from its response headers.
//   retry-after-ms: 1500                      (OpenAI, non-standard but exact)
//   retry-after: 2 | Wed, 21 Oct 2026 07:28:00 GMT
//   x-ratelimit-reset-requests: 1s, x-ratelimit-reset-tokens: 6m0s, 120ms   (OpenAI)

import type { ObservedLimits } from './types.js';

export type HeaderLookup = (name: string) => string | null | undefined;

/** "6m0s", "1.5s", "120ms", "1h2m3s" → milliseconds. */
export function parseResetDuration(value: string): number | undefined {
  const parts = [...value.trim().matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== value.trim()) return undefined;
  const unit: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
  return Math.ceil(parts.reduce((sum, p) => sum + Number(p[1]) * (unit[p[2] ?? ''] ?? 0), 0));
}

function retryAfter(value: string, now: number): number | undefined {
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Math.ceil(Number(value) * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** An explicit wait: retry-after-ms, else retry-after (seconds or an HTTP date). */
export function explicitRetryDelay(header: HeaderLookup, now = Date.now()): number | undefined {
  const ms = header('retry-after-ms');
  if (ms && /^\d+(\.\d+)?$/.test(ms.trim())) return Math.ceil(Number(ms));
  const after = header('retry-after');
  return after ? retryAfter(after, now) : undefined;
}

/**
 * The reset of whichever budget is exhausted (both, if the headers do not say which: the later
 * one).
 */
export function resetDelay(header: HeaderLookup): number | undefined {
  const resets = (['requests', 'tokens'] as const).map((budget) => ({
    exhausted: header(`x-ratelimit-remaining-${budget}`)?.trim() === '0',
    delay: parseResetDuration(header(`x-ratelimit-reset-${budget}`) ?? ''),
  }));
  const known = resets.filter((r) => r.delay !== undefined);
  const chosen = known.some((r) => r.exhausted) ? known.filter((r) => r.exhausted) : known;
  if (chosen.length === 0) return undefined;
  return Math.max(...chosen.map((r) => r.delay ?? 0));
}

/** OpenAI's 429 message names the wait exactly: "… Please try again in 1.02s." */
export function retryDelayFromMessage(message: string): number | undefined {
  const match = /try again in (\S+?)\.?(\s|$)/i.exec(message);
  return match?.[1] ? parseResetDuration(match[1]) : undefined;
}

/**
 * The wait a 429 asks for, or undefined if it gives no hint: an explicit header, else a budget's
 * reset.
 */
export function retryDelayFromHeaders(header: HeaderLookup, now = Date.now()): number | undefined {
  return explicitRetryDelay(header, now) ?? resetDelay(header);
}

/**
 * When to try a rate-limited request again. With a hint: the hint plus up to a fifth more (at most
 * 2 s), so workers told the same instant do not return together. Without one (Bedrock): exponential
 * from 1 s, capped at a minute, with full jitter over its upper half.
 */
export function rateLimitDelay(
  hintMs: number | undefined,
  attempt: number,
  random: () => number = Math.random,
): number {
  if (hintMs !== undefined) return Math.ceil(hintMs + random() * Math.min(hintMs * 0.2, 2000));
  const ceiling = Math.min(60_000, 1000 * 2 ** Math.max(0, attempt - 1));
  return Math.ceil(ceiling / 2 + (random() * ceiling) / 2);
}

const count = (value: string | null | undefined): number | undefined => {
  const n = value === null || value === undefined ? NaN : Number(value.trim());
  return value?.trim() && Number.isFinite(n) && n >= 0 ? n : undefined;
};

/**
 * The x-ratelimit-limit-*, -remaining-* and -reset-* headers of an answer (OpenAI sends them with
 * every one); undefined when there are none.
 */
export function observedLimits(header: HeaderLookup): ObservedLimits | undefined {
  const found: ObservedLimits = {
    requestsPerMinute: count(header('x-ratelimit-limit-requests')),
    tokensPerMinute: count(header('x-ratelimit-limit-tokens')),
    remainingRequests: count(header('x-ratelimit-remaining-requests')),
    remainingTokens: count(header('x-ratelimit-remaining-tokens')),
    resetRequestsMs: parseResetDuration(header('x-ratelimit-reset-requests') ?? ''),
    resetTokensMs: parseResetDuration(header('x-ratelimit-reset-tokens') ?? ''),
  };
  const given = Object.entries(found).filter(([, v]) => v !== undefined);
  return given.length > 0 ? Object.fromEntries(given) : undefined;
}
