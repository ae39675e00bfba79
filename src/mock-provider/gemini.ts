// The Gemini API's embedding methods as Google answers them, for the @google/genai SDK:
//   POST /v1/models/{model}:batchEmbedContents      { requests: [{ model, content, taskType, … }] }
//                                                    → { embeddings: [{ values }] }
//   POST /v1/models/{model}:embedContent             { content, taskType, … } → { embedding: { values } }
// (and the same under /v1beta/, the version Google's own examples use).
// The key comes in x-goog-api-key (or ?key=). Errors are google.rpc.Status bodies with their
// details: ErrorInfo for a wrong key, QuotaFailure and RetryInfo for a 429. No rate-limit headers,
// as Google sends none. Vectors are the offline provider's, shortened (not unit length) below 3072
// dimensions as Gemini's reduced ones are. Past 2,048 tokens (counted as characters ÷ 4) an input is
// refused: what the real API does then is not documented, and embedsync must never send one.
import { featureHashEmbedding } from '../providers/offline.js';
import type { MockContext, MockReply } from './types.js';

const MODELS: Record<string, { dimensions: number; min: number }> = {
  'gemini-embedding-001': { dimensions: 3072, min: 128 },
};
const MAX_REQUESTS = 100;
const MAX_TOKENS_PER_INPUT = 2048;
const TASK_TYPES = [
  'TASK_TYPE_UNSPECIFIED',
  'RETRIEVAL_QUERY',
  'RETRIEVAL_DOCUMENT',
  'SEMANTIC_SIMILARITY',
  'CLASSIFICATION',
  'CLUSTERING',
  'QUESTION_ANSWERING',
  'FACT_VERIFICATION',
  'CODE_RETRIEVAL_QUERY',
];
const RATE_LIMITS_URL = 'https://ai.google.dev/gemini-api/docs/rate-limits';

/** "A token is about 4 characters", as Google's documentation says. */
const tokensOf = (text: string): number => Math.ceil(Array.from(text).length / 4);

export type GeminiMethod = 'batchEmbedContents' | 'embedContent';

/** The model and method of a Gemini API path, or undefined for another path. */
export function geminiRoute(path: string): { model: string; method: GeminiMethod } | undefined {
  const match = /^\/(v1|v1beta)\/models\/([^/:]+):(batchEmbedContents|embedContent)$/.exec(path);
  if (!match?.[2] || !match[3]) return undefined;
  return { model: decodeURIComponent(match[2]), method: match[3] as GeminiMethod };
}

/** A google.rpc.Status answer. */
export function googleError(
  code: number,
  status: string,
  message: string,
  details: Record<string, unknown>[] = [],
): MockReply {
  return {
    status: code,
    body: { error: { code, message, status, ...(details.length > 0 ? { details } : {}) } },
  };
}

const invalid = (message: string): MockReply => googleError(400, 'INVALID_ARGUMENT', message);
const detail = (type: string, fields: Record<string, unknown>): Record<string, unknown> => ({
  '@type': `type.googleapis.com/google.rpc.${type}`,
  ...fields,
});
/** A protobuf Duration in JSON: "13s", "1.5s". */
const duration = (ms: number): string => `${Number((ms / 1000).toFixed(3))}s`;

function keyError(ctx: MockContext, key: string | undefined): MockReply | undefined {
  if (!key)
    return googleError(
      403,
      'PERMISSION_DENIED',
      "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
    );
  if (ctx.options.apiKey === undefined || key === ctx.options.apiKey) return undefined;
  const message = 'API key not valid. Please pass a valid API key.';
  return googleError(400, 'INVALID_ARGUMENT', message, [
    detail('ErrorInfo', {
      reason: 'API_KEY_INVALID',
      domain: 'googleapis.com',
      metadata: { service: 'generativelanguage.googleapis.com' },
    }),
    detail('LocalizedMessage', { locale: 'en-US', message }),
    // Google's debug detail quotes the refused key.
    ...(ctx.options.echoKeyInErrors
      ? [detail('DebugInfo', { detail: `Invalid API key: ${key}` })]
      : []),
  ]);
}

/** A 429 RESOURCE_EXHAUSTED naming the violated quota, with the wait in RetryInfo. */
export function quotaExceeded(
  model: string,
  quota: { metric: string; id: string; value?: number },
  waitMs: number,
): MockReply {
  const message = `You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: ${RATE_LIMITS_URL}. To monitor your current usage, head to: https://ai.dev/usage?tab=rate-limit. \n* Quota exceeded for metric: generativelanguage.googleapis.com/${quota.metric}, limit: ${quota.value ?? 0}, model: ${model}\nPlease retry in ${duration(waitMs)}.`;
  return googleError(429, 'RESOURCE_EXHAUSTED', message, [
    detail('Help', {
      links: [{ description: 'Learn more about Gemini API quotas', url: RATE_LIMITS_URL }],
    }),
    detail('QuotaFailure', {
      violations: [
        {
          quotaMetric: `generativelanguage.googleapis.com/${quota.metric}`,
          quotaId: quota.id,
          quotaDimensions: { location: 'global', model },
          ...(quota.value === undefined ? {} : { quotaValue: String(quota.value) }),
        },
      ],
    }),
    detail('RetryInfo', { retryDelay: duration(waitMs) }),
  ]);
}

const PER_MINUTE = {
  requests: {
    metric: 'embed_content_requests',
    id: 'EmbedContentRequestsPerMinutePerProjectPerModel',
  },
  tokens: {
    metric: 'embed_content_input_token_count',
    id: 'EmbedContentInputTokensPerModelPerMinute',
  },
} as const;

interface EmbedRequest {
  text: string | undefined;
  model: unknown;
  taskType: unknown;
  outputDimensionality: unknown;
}

function readRequest(raw: unknown): EmbedRequest {
  const r = (raw ?? {}) as Record<string, unknown>;
  const parts = ((r.content ?? {}) as { parts?: unknown }).parts;
  const texts = Array.isArray(parts)
    ? parts.map((p) => (p as { text?: unknown }).text).filter((t) => typeof t === 'string')
    : [];
  return {
    text: texts.length > 0 ? texts.join('') : undefined,
    model: r.model,
    taskType: r.taskType,
    outputDimensionality: r.outputDimensionality,
  };
}

export function handleGemini(
  ctx: MockContext,
  route: { model: string; method: GeminiMethod },
  key: { value: string | undefined; in: 'x-goog-api-key' | 'key' | 'none' },
  body: unknown,
): MockReply {
  const raw = (body ?? {}) as Record<string, unknown>;
  const batch = route.method === 'batchEmbedContents';
  const requests = batch
    ? Array.isArray(raw.requests)
      ? raw.requests.map(readRequest)
      : undefined
    : [readRequest({ model: `models/${route.model}`, ...raw })];
  const first = requests?.[0];
  const reply = answer();
  ctx.record({
    api: 'gemini',
    model: route.model,
    inputs: (requests ?? []).map((r) => r.text ?? ''),
    status: reply.status,
    params: {
      method: route.method,
      taskType: first?.taskType,
      outputDimensionality: first?.outputDimensionality,
      auth: key.in,
    },
  });
  return reply;

  function answer(): MockReply {
    const denied = keyError(ctx, key.value);
    if (denied) return denied;
    const known = MODELS[route.model];
    if (!known)
      return googleError(
        404,
        'NOT_FOUND',
        `models/${route.model} is not found for API version v1, or is not supported for ${route.method}. Call ListModels to see the list of available models and their supported methods.`,
      );
    const where = (i: number, field: string) =>
      batch
        ? `* BatchEmbedContentsRequest.requests[${i}].${field}`
        : `* EmbedContentRequest.${field}`;
    if (!requests || requests.length === 0)
      return invalid('* BatchEmbedContentsRequest.requests: at least one request is required\n');
    if (requests.length > MAX_REQUESTS)
      return invalid(
        `* BatchEmbedContentsRequest.requests: at most ${MAX_REQUESTS} requests can be in one batch\n`,
      );
    let dimensions = known.dimensions;
    for (const [i, r] of requests.entries()) {
      if (r.model !== `models/${route.model}`)
        return invalid(
          `${where(i, 'model')}: the model must be models/${route.model}, as in the URL\n`,
        );
      if (!r.text) return invalid(`${where(i, 'content')}: contains an empty Part\n`);
      if (
        r.taskType !== undefined &&
        (typeof r.taskType !== 'string' || !TASK_TYPES.includes(r.taskType))
      )
        return invalid(
          `Invalid value at '${batch ? `requests[${i}].` : ''}task_type' (type.googleapis.com/google.ai.generativelanguage.v1beta.TaskType), ${JSON.stringify(r.taskType)}`,
        );
      if (r.outputDimensionality !== undefined) {
        const d = Number(r.outputDimensionality);
        if (!Number.isInteger(d) || d < known.min || d > known.dimensions)
          return invalid(
            `${where(i, 'output_dimensionality')}: must be between ${known.min} and ${known.dimensions}, got ${JSON.stringify(r.outputDimensionality)}\n`,
          );
        dimensions = d;
      }
    }
    const texts = requests.map((r) => r.text ?? '');
    const counts = texts.map(tokensOf);
    const over = counts.findIndex((n) => n > MAX_TOKENS_PER_INPUT);
    if (over >= 0)
      return invalid(
        `${where(over, 'content')}: the input token count (${counts[over]}) exceeds the maximum number of tokens allowed (${MAX_TOKENS_PER_INPUT}).\n`,
      );
    const marker = ctx.options.poisonMarker;
    if (marker && texts.some((t) => t.includes(marker)))
      return invalid('Request contains an invalid argument.');

    const fault = ctx.takeFault();
    if (fault?.kind === 'server-error')
      return fault.status === 503
        ? googleError(503, 'UNAVAILABLE', 'The model is overloaded. Please try again later.')
        : googleError(
            fault.status ?? 500,
            'INTERNAL',
            'An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting',
          );
    if (fault?.kind === 'quota')
      // A daily quota: its RetryInfo names a wait all the same, as Google's does.
      return quotaExceeded(
        route.model,
        {
          metric: 'embed_content_requests',
          id: 'EmbedContentRequestsPerDayPerProjectPerModel',
          value: 1000,
        },
        13_000,
      );
    const tokens = counts.reduce((a, b) => a + b, 0);
    if (fault?.kind === 'rate-limit')
      return quotaExceeded(
        route.model,
        { ...PER_MINUTE.requests, value: ctx.options.requestsPerMinute },
        fault.retryAfterMs ?? 1000,
      );
    const charge = ctx.charge(`gemini/${route.model}`, tokens);
    if (!charge.ok) {
      const value =
        charge.budget === 'requests' ? ctx.options.requestsPerMinute : ctx.options.tokensPerMinute;
      return quotaExceeded(route.model, { ...PER_MINUTE[charge.budget], value }, charge.waitMs);
    }

    if (fault?.kind === 'wrong-dimensions') dimensions -= 1;
    // Only the full size comes normalised.
    const scale = dimensions === known.dimensions ? 1 : 0.6;
    const values = texts.map((t) => featureHashEmbedding(t, dimensions).map((v) => v * scale));
    return {
      status: 200,
      body: batch
        ? { embeddings: values.map((v) => ({ values: v })) }
        : { embedding: { values: values[0] ?? [] } },
    };
  }
}
