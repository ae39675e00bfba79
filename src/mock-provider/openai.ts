// POST /v1/embeddings as OpenAI answers it: the same bodies, status codes and rate-limit headers.
import { randomUUID } from 'node:crypto';
import { featureHashEmbedding } from '../providers/offline.js';
import { formatReset, mockTokenCount } from './limits.js';
import type { MockContext, MockReply } from './types.js';

const OPENAI_MODELS: Record<string, { dimensions: number; reducible: boolean }> = {
  'text-embedding-3-small': { dimensions: 1536, reducible: true },
  'text-embedding-3-large': { dimensions: 3072, reducible: true },
  'text-embedding-ada-002': { dimensions: 1536, reducible: false },
};
const MAX_INPUTS = 2048;
const MAX_TOKENS_PER_INPUT = 8192;
const MAX_TOKENS_PER_REQUEST = 300_000;

export const error = (
  status: number,
  message: string,
  type: string,
  code: string | null,
  headers: Record<string, string> = {},
): MockReply => ({
  status,
  headers,
  body: { error: { message, type, param: null, code } },
});

const invalid = (message: string): MockReply => error(400, message, 'invalid_request_error', null);

/** What OpenAI shows of a wrong key: its ends. */
const mask = (key: string): string =>
  key.length <= 8
    ? '****'
    : `${key.slice(0, 3)}${'*'.repeat(Math.min(20, key.length - 7))}${key.slice(-4)}`;

export function authorize(
  ctx: MockContext,
  authorization: string | undefined,
): MockReply | undefined {
  const key = /^Bearer (.+)$/.exec(authorization ?? '')?.[1];
  if (!key) {
    return error(
      401,
      "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
      'invalid_request_error',
      null,
    );
  }
  if (ctx.options.apiKey !== undefined && key !== ctx.options.apiKey) {
    const shown = ctx.options.echoKeyInErrors ? key : mask(key);
    return error(
      401,
      `Incorrect API key provided: ${shown}. You can find your API key at https://platform.openai.com/account/api-keys.`,
      'invalid_request_error',
      'invalid_api_key',
    );
  }
  return undefined;
}

function encode(vector: number[], format: unknown): number[] | string {
  return format === 'base64'
    ? Buffer.from(new Float32Array(vector).buffer).toString('base64')
    : vector;
}

export function handleOpenAI(
  ctx: MockContext,
  authorization: string | undefined,
  body: unknown,
): MockReply {
  const denied = authorize(ctx, authorization);
  const request = (body ?? {}) as Record<string, unknown>;
  const model = typeof request.model === 'string' ? request.model : '';
  const rawInput = request.input;
  const inputs =
    typeof rawInput === 'string'
      ? [rawInput]
      : Array.isArray(rawInput) && rawInput.every((i) => typeof i === 'string')
        ? rawInput
        : undefined;
  const params = { dimensions: request.dimensions, encoding_format: request.encoding_format };
  const reply = answer();
  ctx.record({ api: 'openai', model, inputs: inputs ?? [], status: reply.status, params });
  return reply;

  function answer(): MockReply {
    if (denied) return denied;
    const served = ctx.options.models?.[model];
    const extra = typeof served === 'number' ? { dimensions: served } : served;
    const known =
      OPENAI_MODELS[model] ??
      (extra ? { dimensions: extra.dimensions, reducible: false } : undefined);
    if (!known)
      return error(
        404,
        `The model \`${model}\` does not exist or you do not have access to it.`,
        'invalid_request_error',
        'model_not_found',
      );
    if (request.encoding_format === 'base64' && ctx.options.floatOnly)
      return invalid(
        "Invalid value for 'encoding_format': 'base64'. Supported values are: 'float'.",
      );
    if (!inputs)
      return invalid(
        "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
      );
    if (inputs.length === 0 || inputs.length > MAX_INPUTS)
      return invalid(`'$.input' must have between 1 and ${MAX_INPUTS} items.`);
    const empty = inputs.findIndex((t) => t === '');
    if (empty >= 0)
      return invalid(
        `'$.input[${empty}]' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.`,
      );
    let dimensions = known.dimensions;
    if (request.dimensions !== undefined) {
      if (!known.reducible) return invalid('This model does not support specifying dimensions.');
      const d = Number(request.dimensions);
      if (!Number.isInteger(d) || d < 1 || d > known.dimensions)
        return invalid(
          `Invalid value for 'dimensions' = ${JSON.stringify(request.dimensions)}. Must be between 1 and ${known.dimensions}.`,
        );
      dimensions = d;
    }
    const counts = inputs.map((t) => mockTokenCount(t, ctx.options.tokenCounting));
    const limit = extra?.maxInputTokens;
    const over = limit === undefined ? -1 : counts.findIndex((n) => n > limit);
    if (over >= 0)
      return error(
        413,
        `Input validation error: \`inputs\` must have less than ${limit} tokens. Given: ${counts[over]}`,
        'invalid_request_error',
        null,
      );
    const tooLong = counts.findIndex((n) => n > MAX_TOKENS_PER_INPUT);
    if (tooLong >= 0) {
      const n = counts[tooLong] ?? 0;
      return invalid(
        `This model's maximum context length is ${MAX_TOKENS_PER_INPUT} tokens, however you requested ${n} tokens (${n} in your prompt; 0 for the completion). Please reduce your prompt; or completion length.`,
      );
    }
    const tokens = counts.reduce((a, b) => a + b, 0);
    if (tokens > MAX_TOKENS_PER_REQUEST)
      return invalid(
        `Requested ${tokens} tokens, max ${MAX_TOKENS_PER_REQUEST} tokens per request`,
      );
    const marker = ctx.options.poisonMarker;
    const poisoned = marker ? inputs.findIndex((t) => t.includes(marker)) : -1;
    if (poisoned >= 0)
      return invalid(
        `'$.input[${poisoned}]' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.`,
      );

    const fault = ctx.takeFault();
    if (fault?.kind === 'server-error')
      return error(
        fault.status ?? 500,
        'The server had an error while processing your request. Sorry about that!',
        'server_error',
        null,
      );
    if (fault?.kind === 'quota') {
      return error(
        429,
        'You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.',
        'insufficient_quota',
        'insufficient_quota',
      );
    }
    const charge =
      fault?.kind === 'rate-limit'
        ? {
            ok: false as const,
            waitMs: fault.retryAfterMs ?? 1000,
            budget: 'requests' as const,
            headers: injectedLimitHeaders(fault.retryAfterMs ?? 1000),
          }
        : ctx.charge(model, tokens);
    if (!charge.ok)
      return rateLimited(ctx, model, charge.budget, charge.waitMs, tokens, charge.headers);

    if (fault?.kind === 'wrong-dimensions') dimensions = dimensions > 1 ? dimensions - 1 : 2;
    const data = inputs.map((text, index) => ({
      object: 'embedding',
      index,
      embedding: encode(featureHashEmbedding(text, dimensions), request.encoding_format),
    }));
    return {
      status: 200,
      headers: {
        ...charge.headers,
        'openai-model': model,
        'openai-processing-ms': '1',
        'x-request-id': `req_${randomUUID().replace(/-/g, '')}`,
      },
      body: { object: 'list', data, model, usage: { prompt_tokens: tokens, total_tokens: tokens } },
    };
  }
}

function rateLimited(
  ctx: MockContext,
  model: string,
  budget: 'requests' | 'tokens',
  waitMs: number,
  tokens: number,
  headers: Record<string, string>,
): MockReply {
  const hint = ctx.options.retryHint ?? 'retry-after';
  const retry: Record<string, string> =
    hint === 'retry-after'
      ? { 'retry-after': String(Math.max(1, Math.ceil(waitMs / 1000))) }
      : hint === 'retry-after-ms'
        ? { 'retry-after-ms': String(waitMs) }
        : {};
  const which = budget === 'requests' ? 'requests per min (RPM)' : 'tokens per min (TPM)';
  const limit = budget === 'requests' ? ctx.options.requestsPerMinute : ctx.options.tokensPerMinute;
  const message = `Rate limit reached for ${model} in organization org-mock on ${which}: Limit ${limit ?? 0}, Requested ${budget === 'requests' ? 1 : tokens}. Please try again in ${(waitMs / 1000).toFixed(3)}s. Visit https://platform.openai.com/account/rate-limits to learn more.`;
  return error(429, message, budget, 'rate_limit_exceeded', { ...headers, ...retry });
}

const injectedLimitHeaders = (waitMs: number): Record<string, string> => ({
  'x-ratelimit-remaining-requests': '0',
  'x-ratelimit-reset-requests': formatReset(waitMs),
});
