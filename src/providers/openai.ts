// OpenAI's embeddings API, and OpenAI-compatible servers (Ollama, vLLM, TEI, LM Studio) by baseURL.
// The SDK's own retries are off: the embed activity's retry policy is the one layer that retries,
// with the delay the server asked for.
import OpenAI from 'openai';
import { readSecret, type ProviderEnv } from '../config/env.js';
import type { OpenAIEmbeddingConfig } from '../config/pipeline.js';
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
import {
  explicitRetryDelay,
  observedLimits,
  resetDelay,
  retryDelayFromMessage,
} from './retry-hints.js';
import type { EmbeddingProvider, EmbedRequest, EmbedResponse, InputType } from './types.js';

const DEFAULT_BASE_URL = 'https://api.openai.com/v1';

// Below the embed activity's heartbeat timeout, so a hung request fails as a timeout and is
// retried.
const REQUEST_TIMEOUT_MS = 50_000;

interface ClientEntry {
  client: OpenAI;
  apiKey: string | undefined;
  /** The server refused base64 once: an unset encodingFormat asks it for floats. */
  floatOnly?: boolean;
}

export class OpenAIProvider implements EmbeddingProvider {
  readonly name = 'openai';
  readonly maxInputsPerRequest = 2048;
  readonly rateLimit: ProviderEnv['openai'];
  private readonly clients = new Map<string, ClientEntry>();

  constructor(env: ProviderEnv['openai'] = {}) {
    this.rateLimit = env;
  }

  async embed(request: EmbedRequest): Promise<EmbedResponse> {
    const config = this.config(request);
    const facts = modelFacts(config);
    const entry = this.client(config);
    const { client, apiKey } = entry;
    const send = (format: 'float' | 'base64') =>
      client.embeddings
        .create(
          {
            model: config.model,
            input: withPrefix(config, request.inputType, request.texts),
            // Always sent: without it the SDK asks for base64 and misreads servers that answer with
            // floats. decode() reads either answer.
            encoding_format: format,
            ...(reducesDimensions(facts, request.dimensions)
              ? { dimensions: request.dimensions }
              : {}),
          },
          { signal: request.signal },
        )
        .withResponse();
    // Unset: base64, a quarter of float's bytes and a fraction of its formatting and parsing on
    // both ends. A server that refuses it is asked for floats, from then on.
    const chosen = config.encodingFormat ?? (entry.floatOnly ? 'float' : 'base64');
    // With the answer's headers: their x-ratelimit-* say how much of the budget is left.
    let answer: { data: OpenAI.CreateEmbeddingResponse; response: Response };
    try {
      try {
        answer = await send(chosen);
      } catch (err) {
        if (config.encodingFormat !== undefined || chosen === 'float' || !refusesBase64(err))
          throw err;
        entry.floatOnly = true;
        answer = await send('float');
      }
    } catch (err) {
      throw translate(err, [apiKey]);
    }
    const { data: response, response: http } = answer;
    const vectors = [...response.data]
      .sort((a, b) => a.index - b.index)
      .map((d) => decode(d.embedding));
    const limits = observedLimits((name) => http.headers.get(name));
    return { vectors, tokens: response.usage?.prompt_tokens ?? 0, ...(limits ? { limits } : {}) };
  }

  private config(request: EmbedRequest): OpenAIEmbeddingConfig {
    if (request.embedding?.provider === 'openai') return request.embedding;
    return {
      provider: 'openai',
      model: request.model,
      dimensions: request.dimensions,
      apiKeyEnv: 'OPENAI_API_KEY',
    };
  }

  // One client per server and key variable. The key is read here, from the environment, and kept
  // only inside the client; no config, workflow input or log line ever holds it. The Batch API's
  // calls (openai-batch.ts) share it.
  client(config: OpenAIEmbeddingConfig): ClientEntry {
    const baseURL = config.baseURL ?? this.rateLimit.baseURL ?? DEFAULT_BASE_URL;
    const cacheKey = `${baseURL}\n${config.apiKeyEnv}`;
    let entry = this.clients.get(cacheKey);
    if (!entry) {
      const apiKey = readSecret(config.apiKeyEnv);
      // Compatible servers often need no key; OpenAI itself answers a missing one with a clear 401.
      if (!apiKey && baseURL === DEFAULT_BASE_URL)
        throw new ProviderAuthError(
          this.name,
          `${config.apiKeyEnv} is not set: the OpenAI API key comes from the environment`,
        );
      entry = {
        client: new OpenAI({
          apiKey: apiKey ?? 'none',
          baseURL,
          maxRetries: 0,
          timeout: REQUEST_TIMEOUT_MS,
        }),
        apiKey,
      };
      this.clients.set(cacheKey, entry);
    }
    return entry;
  }
}

/**
 * The texts as the model wants them: e5- and bge-style models are trained with a prefix that tells
 * a search query from a passage to be found (decision 26). Stored chunks stay without it.
 */
export function withPrefix(
  config: OpenAIEmbeddingConfig,
  inputType: InputType,
  texts: readonly string[],
): string[] {
  const prefix = (inputType === 'query' ? config.queryPrefix : config.documentPrefix) ?? '';
  return prefix === '' ? [...texts] : texts.map((t) => prefix + t);
}

/** float: an array; base64: little-endian float32s, as the API sends them. */
export function decode(embedding: number[] | string): number[] {
  if (typeof embedding !== 'string') return embedding;
  const bytes = Buffer.from(embedding, 'base64');
  const floats = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  // A plain loop: Array.from over a typed array took six times as long (measured, 512 dimensions).
  const vector = new Array<number>(floats.length);
  for (let i = 0; i < floats.length; i++) vector[i] = floats[i] as number;
  return vector;
}

/** A compatible server's 400 or 422 for an encoding_format it does not know. */
function refusesBase64(err: unknown): boolean {
  return (
    err instanceof OpenAI.APIError &&
    (err.status === 400 || err.status === 422) &&
    /encoding_format|base64/i.test(err.message)
  );
}

/** The SDK's error in embedsync's terms (errors.ts), its message scrubbed of the key. */
export function translate(err: unknown, secrets: (string | undefined)[]): Error {
  const message = (text: string): string => scrub(text, secrets);
  if (err instanceof OpenAI.APIConnectionError)
    return new ProviderUnavailableError(
      'openai',
      message(`cannot reach the server: ${err.message}`),
    );
  if (!(err instanceof OpenAI.APIError))
    return new ProviderUnavailableError(
      'openai',
      message(err instanceof Error ? err.message : String(err)),
    );
  const text = message(err.message);
  // The SDK types these loosely (any); they are a status code and a fetch Headers.
  const status = err.status as number | undefined;
  const headers = err.headers as Headers | undefined;
  if (status === undefined) return new ProviderUnavailableError('openai', text);
  if (status === 429) {
    if (err.code === 'insufficient_quota' || err.type === 'insufficient_quota')
      return new QuotaExhaustedError('openai', text);
    const header = (name: string): string | null | undefined => headers?.get(name);
    // The message's "try again in 1.02s" is the wait for this request; a reset is the wait for a
    // full budget.
    return new RateLimitedError(
      'openai',
      text,
      explicitRetryDelay(header) ?? retryDelayFromMessage(text) ?? resetDelay(header),
      observedLimits(header),
    );
  }
  if (status === 401 || status === 403) return new ProviderAuthError('openai', text);
  if (status === 404) return new ModelUnavailableError('openai', text);
  if (status === 400 || status === 413 || status === 422)
    return new InvalidInputError('openai', text);
  if (status === 408 || status === 409 || status >= 500)
    return new ProviderUnavailableError('openai', text);
  return new ProviderRejectedError('openai', text);
}
