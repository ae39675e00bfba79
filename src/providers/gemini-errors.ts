// The Gemini API's errors in embedsync's terms. Google answers with a google.rpc.Status:
//   { "error": { "code": 429, "message": "…", "status": "RESOURCE_EXHAUSTED", "details": [
//       { "@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
//           { "quotaMetric": "…/embed_content_requests", "quotaId": "…PerMinute…", "quotaValue": "3000" } ] },
//       { "@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "13s" } ] } }
// A 429 is a per-minute rate limit (retried after RetryInfo's delay) unless a violated quota is a
// daily one or is zero: then waiting seconds cannot help, and it is an exhausted quota. A wrong key
// is a 400 INVALID_ARGUMENT whose ErrorInfo reason is API_KEY_INVALID: credentials, not an input.
import {
  InvalidInputError,
  ModelUnavailableError,
  ProviderAuthError,
  ProviderRejectedError,
  ProviderUnavailableError,
  QuotaExhaustedError,
  RateLimitedError,
  scrub,
} from './errors.js';
import { parseResetDuration } from './retry-hints.js';
import type { ObservedLimits } from './types.js';

const PROVIDER = 'gemini';
const TYPE_PREFIX = 'type.googleapis.com/google.rpc.';

export interface QuotaViolation {
  quotaMetric?: string;
  quotaId?: string;
  quotaValue?: string;
}

/** The parts of a google.rpc.Status that decide what an error is. */
export interface GoogleStatus {
  code: number;
  status: string;
  message: string;
  /** ErrorInfo reasons: API_KEY_INVALID, … */
  reasons: string[];
  violations: QuotaViolation[];
  /** RetryInfo.retryDelay, in milliseconds. */
  retryDelayMs: number | undefined;
}

type Detail = Record<string, unknown> & { '@type'?: string };

/** The error body as the API sends it (or as the SDK quotes it in ApiError.message). */
export function parseStatus(httpStatus: number, body: string): GoogleStatus {
  let error: Record<string, unknown> = {};
  try {
    const parsed = JSON.parse(body) as { error?: Record<string, unknown> };
    if (parsed.error && typeof parsed.error === 'object') error = parsed.error;
  } catch {
    // Not JSON (a proxy's page): the status code alone classifies it.
  }
  const details = Array.isArray(error.details) ? (error.details as Detail[]) : [];
  const ofType = (t: string) => details.filter((d) => d['@type'] === `${TYPE_PREFIX}${t}`);
  const retryDelay = ofType('RetryInfo')[0]?.retryDelay;
  return {
    code: typeof error.code === 'number' ? error.code : httpStatus,
    status: typeof error.status === 'string' ? error.status : '',
    message:
      typeof error.message === 'string'
        ? error.message.trim()
        : body.trim() || `HTTP ${httpStatus}`,
    reasons: ofType('ErrorInfo').flatMap((d) => (typeof d.reason === 'string' ? [d.reason] : [])),
    violations: ofType('QuotaFailure').flatMap((d) =>
      Array.isArray(d.violations) ? (d.violations as QuotaViolation[]) : [],
    ),
    retryDelayMs: typeof retryDelay === 'string' ? parseResetDuration(retryDelay) : undefined,
  };
}

const perDay = (v: QuotaViolation): boolean => /PerDay/i.test(v.quotaId ?? '');
const perMinute = (v: QuotaViolation): boolean => /PerMinute/i.test(v.quotaId ?? '');
const isTokens = (v: QuotaViolation): boolean =>
  /token/i.test(`${v.quotaId ?? ''} ${v.quotaMetric ?? ''}`);

/** A quota that waiting a minute cannot refill: a daily one, or one of zero (no free tier). */
export function exhaustedQuota(violations: readonly QuotaViolation[]): QuotaViolation | undefined {
  return violations.find((v) => perDay(v) || v.quotaValue?.trim() === '0');
}

/**
 * What a 429's violated per-minute quotas say of the budgets: their limits. Google sends no
 * rate-limit headers, so this is all it ever says of its limits. Nothing is said of what is left:
 * RetryInfo's delay, which holds every worker back, is its word on when to send again.
 */
export function limitsFromViolations(
  violations: readonly QuotaViolation[],
): ObservedLimits | undefined {
  const limits: ObservedLimits = {};
  for (const v of violations.filter(perMinute)) {
    const value = Number(v.quotaValue);
    if (v.quotaValue === undefined || !Number.isFinite(value) || value <= 0) continue;
    if (isTokens(v)) limits.tokensPerMinute = Math.min(limits.tokensPerMinute ?? Infinity, value);
    else limits.requestsPerMinute = Math.min(limits.requestsPerMinute ?? Infinity, value);
  }
  return Object.keys(limits).length > 0 ? limits : undefined;
}

/** Google's 429 message also names the wait: "… Please retry in 47.174066935s." */
function retryDelayFromText(message: string): number | undefined {
  const match = /retry in (\d+(?:\.\d+)?(?:ms|s))/i.exec(message);
  return match?.[1] ? parseResetDuration(match[1]) : undefined;
}

/** A Gemini API error answer, classified. `secrets` are removed from the message. */
export function translateStatus(
  httpStatus: number,
  body: string,
  secrets: readonly (string | undefined)[],
): Error {
  const s = parseStatus(httpStatus, body);
  // Only the status and its message: DebugInfo details may quote the refused key.
  const message = scrub(`${s.code}${s.status ? ` ${s.status}` : ''}: ${s.message}`, secrets);
  if (httpStatus === 429 || s.status === 'RESOURCE_EXHAUSTED') {
    const exhausted = exhaustedQuota(s.violations);
    if (exhausted)
      return new QuotaExhaustedError(
        PROVIDER,
        `${message} (quota ${exhausted.quotaId ?? exhausted.quotaMetric ?? 'unnamed'}${exhausted.quotaValue === undefined ? '' : ` of ${exhausted.quotaValue}`}: retrying cannot help until it resets or is raised)`,
      );
    return new RateLimitedError(
      PROVIDER,
      message,
      s.retryDelayMs ?? retryDelayFromText(s.message),
      limitsFromViolations(s.violations),
    );
  }
  if (
    s.reasons.some((r) => /^API_KEY_/.test(r)) ||
    httpStatus === 401 ||
    httpStatus === 403 ||
    s.status === 'UNAUTHENTICATED' ||
    s.status === 'PERMISSION_DENIED'
  )
    return new ProviderAuthError(PROVIDER, message);
  if (httpStatus === 404 || s.status === 'NOT_FOUND')
    return new ModelUnavailableError(PROVIDER, message);
  // FAILED_PRECONDITION (billing, an unsupported location) is the account's state, not an input's.
  if ((httpStatus === 400 && s.status !== 'FAILED_PRECONDITION') || httpStatus === 413)
    return new InvalidInputError(PROVIDER, message);
  if (httpStatus === 408 || httpStatus === 409 || httpStatus === 499 || httpStatus >= 500)
    return new ProviderUnavailableError(PROVIDER, message);
  return new ProviderRejectedError(PROVIDER, message);
}
