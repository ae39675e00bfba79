// The mock provider's knobs, and what it records of each request it answers.

export interface MockProviderOptions {
  /** Added before every answer. */
  latencyMs?: number;
  /**
   * Per-minute budgets per model, kept as token buckets; exceeding one answers 429
   * (ThrottlingException).
   */
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  /**
   * How the OpenAI and Voyage protocols count an input's tokens, for the budget and for usage:
   * cl100k (default, as OpenAI counts for its own models) or bytes/4 (UTF-8 bytes ÷ 4, rounded up,
   * as some compatible servers estimate), to stand for a provider that counts differently from
   * embedsync's tokenizer.
   */
  tokenCounting?: TokenCounting;
  /**
   * Which retry hint an OpenAI 429 carries besides the x-ratelimit-* headers; a Voyage 429 carries
   * retry-after or retry-after-ms, and nothing for reset-headers (Voyage sends no x-ratelimit-*).
   */
  retryHint?: 'retry-after' | 'retry-after-ms' | 'reset-headers';
  /** Inputs containing this text are refused as invalid (400 / ValidationException). */
  poisonMarker?: string;
  /** OpenAI, Gemini and Voyage: the only key accepted (default: any non-empty key). */
  apiKey?: string;
  /**
   * Echo a rejected key whole in the 401 body (the real API masks it; some compatible servers do
   * not); Gemini: quote it in a DebugInfo detail, as Google's does.
   */
  echoKeyInErrors?: boolean;
  /** Fraction of requests answered with a 503. */
  errorRate?: number;
  /**
   * Models an OpenAI-compatible server might serve beyond OpenAI's own: name → dimensions, or its
   * dimensions and input limit.
   */
  models?: Record<string, number | MockModel>;
  /** OpenAI's Batch API (src/mock-provider/batches.ts). Lines with poisonMarker fail. */
  batch?: MockBatchOptions;
  /**
   * OpenAI protocol: answer encoding_format "base64" with a 400, as a compatible server that knows
   * only floats may.
   */
  floatOnly?: boolean;
}

/** A model of a compatible server (vLLM, TEI, Ollama serving e5, bge, nomic, …). */
export interface MockModel {
  dimensions: number;
  /**
   * The most tokens (counted as tokenCounting says) one input may hold; a longer one is refused
   * with a 413, as TEI refuses it when truncation is off.
   */
  maxInputTokens?: number;
}

export interface MockBatchOptions {
  /** How long after creation a batch may complete (default 0: at the next reads). */
  completionMs?: number;
  /** The clock completionMs is measured on (default Date.now): tests move it by hand. */
  clock?: () => number;
  /**
   * The account's enqueued-token limit per model: a batch created while the tokens of those still
   * in flight and its own pass it fails with token_limit_exceeded.
   */
  enqueuedTokenLimit?: number;
  /**
   * Create the next this many batches but answer their create call with a 500, as a client killed
   * before the reply arrived would see it.
   */
  loseCreateReplies?: number;
  /**
   * The batch's window runs out after this many lines: the rest go to its error file as
   * batch_expired, and it ends expired, as OpenAI's do.
   */
  expireAfterLines?: number;
}

export type TokenCounting = 'cl100k' | 'bytes/4';
export const TOKEN_COUNTINGS: readonly TokenCounting[] = ['cl100k', 'bytes/4'];

export type MockFault =
  | { kind: 'server-error'; status?: number }
  /** A 429 (ThrottlingException) asking for this delay (default 1 s). */
  | { kind: 'rate-limit'; retryAfterMs?: number }
  /**
   * OpenAI: 429 insufficient_quota. Bedrock: ServiceQuotaExceededException. Gemini: 429 on a
   * per-day quota. Voyage: a 429 saying the credits are exhausted.
   */
  | { kind: 'quota' }
  /** Vectors one dimension short. */
  | { kind: 'wrong-dimensions' };

export interface RecordedRequest {
  at: number;
  api: 'openai' | 'bedrock' | 'gemini' | 'voyage';
  /** As sent: Bedrock model ids arrive URL-encoded (amazon.titan-embed-text-v2%3A0). */
  path: string;
  model: string;
  inputs: string[];
  status: number;
  /** The request carried a well-formed SigV4 Authorization header (Bedrock). */
  signed?: boolean;
  /** The SigV4 credential scope's region (Bedrock). */
  region?: string;
  /** What the request asked for: dimensions, encoding_format, input_type, … */
  params: Record<string, unknown>;
  /** The batch this was a line of (OpenAI's Batch API), answered when the batch completed. */
  batch?: string;
}

export interface MockReply {
  status: number;
  headers?: Record<string, string>;
  body: unknown;
}

/** What a protocol handler sees of the server. */
export interface MockContext {
  options: MockProviderOptions;
  /** The next injected fault, if any (consumed). */
  takeFault(): MockFault | undefined;
  /** Checks and charges the model's budgets; returns the wait if over. */
  charge(
    model: string,
    tokens: number,
  ):
    | { ok: true; headers: Record<string, string> }
    | { ok: false; waitMs: number; budget: 'requests' | 'tokens'; headers: Record<string, string> };
  record(request: Omit<RecordedRequest, 'at' | 'path'>): void;
}
