// Voyage AI's embeddings API (POST /v1/embeddings) through its official SDK, `voyageai`. On Node 18+
// the SDK uses the built-in fetch, takes a base URL, and its errors carry the status code, the body
// and the response headers, which is all the retry classification needs (docs/architecture.md,
// decision 22). Its own retries are off: the embed activity's retry policy is the one layer that
// retries, with the delay the server asked for.
import { VoyageAIClient, VoyageAIError, VoyageAITimeoutError } from 'voyageai';
import { readSecret, type ProviderEnv } from '../config/env.js';
import type { VoyageEmbeddingConfig } from '../config/pipeline.js';
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
import { modelFacts, reducesDimensions } from './models.js';
import { observedLimits, retryDelayFromHeaders, type HeaderLookup } from './retry-hints.js';
import type { EmbeddingProvider, EmbedRequest, EmbedResponse } from './types.js';

const DEFAULT_BASE_URL = 'https://api.voyageai.com/v1';
// Below the embed activity's heartbeat timeout, so a hung request fails as a timeout and is
// retried. The SDK (0.4.0) clears its timeout timer only when an answer arrives: after a connection
// failure or a cancellation the timer stays armed for this long, and can delay a stopping process's
// exit until it fires.
const REQUEST_TIMEOUT_SECONDS = 50;

export class VoyageProvider implements EmbeddingProvider {
  readonly name = 'voyage';
  readonly maxInputsPerRequest = 1000;
  readonly rateLimit: ProviderEnv['voyage'];
  private readonly clients = new Map<
    string,
    { client: VoyageAIClient; apiKey: string | undefined; baseUrl: string }
  >();

  constructor(
    env: ProviderEnv['voyage'] = {},
    private readonly timeoutSeconds = REQUEST_TIMEOUT_SECONDS,
  ) {
    this.rateLimit = env;
  }

  async embed(request: EmbedRequest): Promise<EmbedResponse> {
    const config = this.config(request);
    const facts = modelFacts(config);
    const { client, apiKey, baseUrl } = this.client(config);
    let answer;
    try {
      answer = await client
        .embed(
          {
            model: config.model,
            input: request.texts,
            inputType: request.inputType,
            // Never cut an input silently: one too long is refused, and isolated to its row.
            truncation: false,
            outputDtype: 'float',
            ...(reducesDimensions(facts, request.dimensions)
              ? { outputDimension: request.dimensions }
              : {}),
          },
          { abortSignal: request.signal, maxRetries: 0 },
        )
        .withRawResponse();
    } catch (err) {
      throw translate(err, [apiKey], baseUrl);
    }
    const data = [...(answer.data.data ?? [])].sort((a, b) => (a.index ?? 0) - (b.index ?? 0));
    if (data.length !== request.texts.length || data.some((d) => !Array.isArray(d.embedding)))
      throw new ProviderUnavailableError(
        this.name,
        `${config.model} answered ${data.length} embeddings for ${request.texts.length} inputs`,
      );
    const vectors = data.map((d) => d.embedding ?? []);
    // Voyage sends no x-ratelimit-* headers today; a proxy in front of it that does is heeded.
    const headers = answer.rawResponse.headers;
    const limits = observedLimits((name) => headers.get(name));
    // Voyage counts every request's tokens in usage.total_tokens; a server that does not is
    // estimated like the budget (3 characters a token).
    const tokens =
      answer.data.usage?.totalTokens ??
      request.texts.reduce((sum, t) => sum + Math.ceil(Array.from(t).length / 3), 0);
    return { vectors, tokens, ...(limits ? { limits } : {}) };
  }

  private config(request: EmbedRequest): VoyageEmbeddingConfig {
    if (request.embedding?.provider === 'voyage') return request.embedding;
    return {
      provider: 'voyage',
      model: request.model,
      dimensions: request.dimensions,
      apiKeyEnv: 'VOYAGE_API_KEY',
    };
  }

  // One client per server and key variable. The key is read here, from the environment, and kept
  // only inside the client; no config, workflow input or log line ever holds it.
  private client(config: VoyageEmbeddingConfig): {
    client: VoyageAIClient;
    apiKey: string | undefined;
    baseUrl: string;
  } {
    const baseUrl = config.baseURL ?? this.rateLimit.baseURL ?? DEFAULT_BASE_URL;
    const cacheKey = `${baseUrl}\n${config.apiKeyEnv}`;
    let entry = this.clients.get(cacheKey);
    if (!entry) {
      const apiKey = readSecret(config.apiKeyEnv);
      if (!apiKey && baseUrl === DEFAULT_BASE_URL)
        throw new ProviderAuthError(
          this.name,
          `${config.apiKeyEnv} is not set: the Voyage AI API key comes from the environment`,
        );
      entry = {
        client: new VoyageAIClient({
          apiKey: apiKey ?? 'none',
          baseUrl,
          maxRetries: 0,
          timeoutInSeconds: this.timeoutSeconds,
        }),
        apiKey,
        baseUrl,
      };
      this.clients.set(cacheKey, entry);
    }
    return entry;
  }
}

// How Voyage says that money, not pace, is the limit: a 402, or a 403/429 whose message speaks of
// billing. Retrying cannot help until someone pays or adds a payment method.
const QUOTA_WORDS = /quota|credit|billing|payment|balance|exhausted|insufficient funds/i;

/** Voyage's error bodies are {"detail": "…"}; anything else is shown as JSON. */
function detailOf(body: unknown): string {
  if (typeof body === 'string') return body;
  const detail = (body as { detail?: unknown } | undefined)?.detail;
  if (typeof detail === 'string') return detail;
  return body === undefined ? '' : (JSON.stringify(body) ?? '');
}

/**
 * The SDK's error in embedsync's terms (errors.ts), its message scrubbed of the key. Without an
 * answer the SDK keeps only fetch's message ("fetch failed"), not its cause, so the server is named.
 */
export function translate(
  err: unknown,
  secrets: (string | undefined)[],
  baseUrl = DEFAULT_BASE_URL,
): Error {
  const message = (text: string): string => scrub(text, secrets);
  if (err instanceof VoyageAITimeoutError)
    return new ProviderUnavailableError('voyage', message(`timed out: ${err.message}`));
  if (!(err instanceof VoyageAIError) || err.statusCode === undefined) {
    const text = err instanceof Error ? err.message : String(err);
    return new ProviderUnavailableError('voyage', message(`no answer from ${baseUrl}: ${text}`));
  }
  const status = err.statusCode;
  const detail = detailOf(err.body);
  const text = message(`${status}${detail ? `: ${detail}` : ''}`);
  const headers = err.rawResponse?.headers;
  const header: HeaderLookup = (name) => headers?.get(name);
  if (status === 402 || ((status === 403 || status === 429) && QUOTA_WORDS.test(detail)))
    return new QuotaExhaustedError('voyage', text);
  if (status === 429)
    return new RateLimitedError(
      'voyage',
      text,
      retryDelayFromHeaders(header),
      observedLimits(header),
    );
  if (status === 401 || status === 403) return new ProviderAuthError('voyage', text);
  if (status === 404) return new ModelUnavailableError('voyage', text);
  if (status === 400 || status === 413 || status === 422)
    return new InvalidInputError('voyage', text);
  if (status === 408 || status === 409 || status >= 500)
    return new ProviderUnavailableError('voyage', text);
  return new ProviderRejectedError('voyage', text);
}
