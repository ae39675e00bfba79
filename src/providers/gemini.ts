// Google's Gemini API (the Developer API, with an API key) through the official @google/genai SDK:
// models.embedContent with many texts, which the SDK sends as one batchEmbedContents request.
// Documents go as RETRIEVAL_DOCUMENT, search queries as RETRIEVAL_QUERY. The SDK retries nothing
// unless asked (no retryOptions): the embed activity's retry policy is the one layer that retries.
// Vertex AI is not offered.
import { ApiError, GoogleGenAI } from '@google/genai';
import { readSecret, type ProviderEnv } from '../config/env.js';
import type { GeminiEmbeddingConfig } from '../config/pipeline.js';
import { ProviderAuthError, ProviderUnavailableError, scrub } from './errors.js';
import { translateStatus } from './gemini-errors.js';
import { baseModelId } from './models.js';
import type { EmbeddingProvider, EmbedRequest, EmbedResponse, InputType } from './types.js';

// Below the embed activity's heartbeat timeout, so a hung request fails as a timeout and is
// retried.
const REQUEST_TIMEOUT_MS = 50_000;
/**
 * The variables Google's SDK reads the key from, in its order: GOOGLE_API_KEY wins when both are
 * set, as the SDK's own warning then says.
 */
export const GEMINI_KEY_VARIABLES = ['GOOGLE_API_KEY', 'GEMINI_API_KEY'] as const;

const TASK_TYPES: Record<InputType, string> = {
  document: 'RETRIEVAL_DOCUMENT',
  query: 'RETRIEVAL_QUERY',
};

/**
 * A unit vector in the direction of `values`. Gemini normalises only its full 3072 dimensions;
 * reduced ones come shorter than 1 (docs/architecture.md, decision 21).
 */
export function normalise(values: readonly number[]): number[] {
  const norm = Math.sqrt(values.reduce((sum, v) => sum + v * v, 0));
  return norm > 0 ? values.map((v) => v / norm) : [...values];
}

export class GeminiProvider implements EmbeddingProvider {
  readonly name = 'gemini';
  readonly maxInputsPerRequest = 100;
  readonly rateLimit: ProviderEnv['gemini'];
  // Google sends no rate-limit headers; a 429's QuotaFailure is where it names its limits.
  readonly limitsOnlyWhenRateLimited = true;
  private readonly clients = new Map<string, { client: GoogleGenAI; apiKey: string }>();

  constructor(env: ProviderEnv['gemini'] = {}) {
    this.rateLimit = env;
  }

  async embed(request: EmbedRequest): Promise<EmbedResponse> {
    const config = this.config(request);
    const { client, apiKey } = this.client(config);
    let answer;
    try {
      answer = await client.models.embedContent({
        model: baseModelId('gemini', config.model),
        contents: request.texts,
        config: {
          taskType: TASK_TYPES[request.inputType],
          // Always sent: the pipeline's dimensions, whatever the model's default.
          outputDimensionality: request.dimensions,
          ...(request.signal ? { abortSignal: request.signal } : {}),
        },
      });
    } catch (err) {
      throw translate(err, [apiKey]);
    }
    const embeddings = answer.embeddings ?? [];
    if (embeddings.some((e) => !Array.isArray(e.values)))
      throw new ProviderUnavailableError(this.name, `${config.model} answered without values`);
    const vectors = embeddings.map((e) => normalise(e.values ?? []));
    // The API reports no token count for embeddings: the estimate the tokens budget is charged
    // (3 characters a token) stands for it, in the ledger too.
    const tokens =
      answer.usageMetadata?.promptTokenCount ??
      request.texts.reduce((sum, t) => sum + Math.ceil(Array.from(t).length / 3), 0);
    return { vectors, tokens };
  }

  private config(request: EmbedRequest): GeminiEmbeddingConfig {
    if (request.embedding?.provider === 'gemini') return request.embedding;
    return { provider: 'gemini', model: request.model, dimensions: request.dimensions };
  }

  // One client per server and key variable. The key is read here, from the environment, and kept
  // only inside the client; no config, workflow input or log line ever holds it.
  private client(config: GeminiEmbeddingConfig): { client: GoogleGenAI; apiKey: string } {
    const baseUrl = config.baseURL ?? this.rateLimit.baseURL;
    const variables = config.apiKeyEnv ? [config.apiKeyEnv] : GEMINI_KEY_VARIABLES;
    const cacheKey = `${baseUrl ?? ''}\n${variables.join(',')}`;
    let entry = this.clients.get(cacheKey);
    if (!entry) {
      const apiKey = variables.map((v) => readSecret(v)).find((k) => k !== undefined);
      if (!apiKey)
        throw new ProviderAuthError(
          this.name,
          `${variables.length > 1 ? `neither ${variables.join(' nor ')} is set` : `${variables.join('')} is not set`}: the Gemini API key comes from the environment`,
        );
      entry = {
        client: new GoogleGenAI({
          apiKey,
          // Explicit, so GOOGLE_GENAI_USE_VERTEXAI in the environment cannot switch backends.
          vertexai: false,
          httpOptions: { timeout: REQUEST_TIMEOUT_MS, ...(baseUrl ? { baseUrl } : {}) },
        }),
        apiKey,
      };
      this.clients.set(cacheKey, entry);
    }
    return entry;
  }
}

/** The SDK's error in embedsync's terms (errors.ts), its message scrubbed of the key. */
export function translate(err: unknown, secrets: (string | undefined)[]): Error {
  // ApiError's message is the error body as the server sent it.
  if (err instanceof ApiError) return translateStatus(err.status, err.message, secrets);
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  const cause = err instanceof Error && err.cause instanceof Error ? ` (${err.cause.message})` : '';
  return new ProviderUnavailableError(
    'gemini',
    scrub(`cannot reach the server: ${text}${cause}`, secrets),
  );
}
