// POST /v1/embeddings as Voyage AI answers it: {input, model, input_type, output_dimension,
// truncation, output_dtype, encoding_format} in, {object: 'list', data, model, usage: {total_tokens}}
// out, and errors as {"detail": "…"}. Served under /voyage/v1, so that OpenAI's /v1/embeddings on the
// same port stays OpenAI's. Voyage sends no x-ratelimit-* headers; a 429 carries the retry hint the
// mock's `retryHint` names.
import { featureHashEmbedding } from '../providers/offline.js';
import { mockTokenCount } from './limits.js';
import type { MockContext, MockReply } from './types.js';

/** The models served, with the per-request token totals Voyage documents for them. */
const VOYAGE_MODELS: Record<string, { maxTokensPerRequest: number }> = {
  'voyage-3.5': { maxTokensPerRequest: 320_000 },
  'voyage-3.5-lite': { maxTokensPerRequest: 1_000_000 },
  'voyage-3-large': { maxTokensPerRequest: 120_000 },
  'voyage-code-3': { maxTokensPerRequest: 120_000 },
  'voyage-4': { maxTokensPerRequest: 320_000 },
  'voyage-4-lite': { maxTokensPerRequest: 1_000_000 },
  'voyage-4-large': { maxTokensPerRequest: 120_000 },
};
const DIMENSIONS = [256, 512, 1024, 2048];
const DEFAULT_DIMENSIONS = 1024;
const CONTEXT_LENGTH = 32_000;
const MAX_INPUTS = 1000;

export const VOYAGE_PATH = '/voyage/v1/embeddings';

const detail = (status: number, text: string, headers: Record<string, string> = {}): MockReply => ({
  status,
  headers,
  body: { detail: text },
});

function encode(vector: number[], format: unknown): number[] | string {
  return format === 'base64'
    ? Buffer.from(new Float32Array(vector).buffer).toString('base64')
    : vector;
}

function retryHeaders(ctx: MockContext, waitMs: number): Record<string, string> {
  switch (ctx.options.retryHint ?? 'retry-after') {
    case 'retry-after':
      return { 'retry-after': String(Math.max(1, Math.ceil(waitMs / 1000))) };
    case 'retry-after-ms':
      return { 'retry-after-ms': String(waitMs) };
    default:
      return {};
  }
}

export function handleVoyage(
  ctx: MockContext,
  authorization: string | undefined,
  body: unknown,
): MockReply {
  const request = (body ?? {}) as Record<string, unknown>;
  const model = typeof request.model === 'string' ? request.model : '';
  const raw = request.input;
  const inputs =
    typeof raw === 'string'
      ? [raw]
      : Array.isArray(raw) && raw.every((i) => typeof i === 'string')
        ? raw
        : undefined;
  const params = Object.fromEntries(Object.entries(request).filter(([k]) => k !== 'input'));
  const reply = answer();
  ctx.record({ api: 'voyage', model, inputs: inputs ?? [], status: reply.status, params });
  return reply;

  function answer(): MockReply {
    const key = /^Bearer (.+)$/.exec(authorization ?? '')?.[1];
    if (!key || (ctx.options.apiKey !== undefined && key !== ctx.options.apiKey))
      return detail(
        401,
        ctx.options.echoKeyInErrors && key
          ? `Provided API key is invalid: ${key}`
          : 'Provided API key is invalid.',
      );
    const known = VOYAGE_MODELS[model];
    if (!known)
      return detail(
        400,
        `Model ${model} is not supported. Supported models are ${Object.keys(VOYAGE_MODELS).join(', ')}.`,
      );
    if (!inputs) return detail(400, 'input must be a string or a list of strings.');
    if (inputs.length === 0 || inputs.length > MAX_INPUTS)
      return detail(
        400,
        `The batch size limit is ${MAX_INPUTS}. Your batch size is ${inputs.length}.`,
      );
    const inputType = request.input_type ?? null;
    if (inputType !== null && inputType !== 'query' && inputType !== 'document')
      return detail(
        400,
        `input_type ${JSON.stringify(inputType)} is invalid: use null, "query" or "document".`,
      );
    let dimensions = DEFAULT_DIMENSIONS;
    if (request.output_dimension !== undefined && request.output_dimension !== null) {
      const d = Number(request.output_dimension);
      if (!DIMENSIONS.includes(d))
        return detail(
          400,
          `output_dimension ${JSON.stringify(request.output_dimension)} is not supported for ${model}: use one of ${DIMENSIONS.join(', ')}.`,
        );
      dimensions = d;
    }
    const dtype = request.output_dtype ?? 'float';
    if (dtype !== 'float')
      return detail(400, `output_dtype ${JSON.stringify(dtype)}: this server answers float only.`);
    if (request.encoding_format !== undefined && request.encoding_format !== null) {
      if (request.encoding_format !== 'base64')
        return detail(400, 'encoding_format must be null or "base64".');
    }
    // Voyage truncates by default; asked not to, it refuses an over-long input instead.
    const truncate = request.truncation !== false;
    const counts = inputs.map((t) =>
      Math.min(mockTokenCount(t, ctx.options.tokenCounting), truncate ? CONTEXT_LENGTH : Infinity),
    );
    const tooLong = counts.findIndex((n) => n > CONTEXT_LENGTH);
    if (tooLong >= 0)
      return detail(
        400,
        `Request to model '${model}' failed. The example at index ${tooLong} in your batch has too many tokens and does not fit into the model's context window of ${CONTEXT_LENGTH} tokens. Please lower the number of tokens in the listed example(s) or use truncation.`,
      );
    const tokens = counts.reduce((a, b) => a + b, 0);
    if (tokens > known.maxTokensPerRequest)
      return detail(
        400,
        `Request to model '${model}' failed. The max allowed tokens per submitted batch is ${known.maxTokensPerRequest}. Your batch has ${tokens} tokens after truncation. Please lower the number of tokens in the batch.`,
      );
    const marker = ctx.options.poisonMarker;
    const poisoned = marker ? inputs.findIndex((t) => t.includes(marker)) : -1;
    if (poisoned >= 0)
      return detail(
        400,
        `Request to model '${model}' failed. The example at index ${poisoned} in your batch cannot be processed.`,
      );

    const fault = ctx.takeFault();
    if (fault?.kind === 'server-error')
      return detail(fault.status ?? 500, 'An internal server error occurred.');
    if (fault?.kind === 'quota')
      return detail(
        429,
        'Your organization has exhausted its usage credits. Please add a payment method or purchase credits in the billing page of the Voyage dashboard to continue.',
      );
    const charge =
      fault?.kind === 'rate-limit'
        ? { ok: false as const, waitMs: fault.retryAfterMs ?? 1000 }
        : ctx.charge(`voyage/${model}`, tokens);
    if (!charge.ok)
      return detail(
        429,
        `Rate limit exceeded for ${model}. Please retry after a brief wait.`,
        retryHeaders(ctx, charge.waitMs),
      );

    if (fault?.kind === 'wrong-dimensions') dimensions -= 1;
    const data = inputs.map((text, index) => ({
      object: 'embedding',
      embedding: encode(featureHashEmbedding(text, dimensions), request.encoding_format),
      index,
    }));
    return {
      status: 200,
      body: { object: 'list', data, model, usage: { total_tokens: tokens } },
    };
  }
}
